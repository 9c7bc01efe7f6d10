"""BackendConfig and the hierarchy: defaults < kwargs < BACKEND_CONFIG_FILE_PATH file."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pydantic
import pytest

from packflow.backend.configuration import (
    MAX_CONFIG_FILE_BYTES,
    BackendConfig,
    InputFormats,
    check_config_keys,
    deep_merge,
    load_backend_configuration,
)
from packflow.constants import BACKEND_CONFIG_PATH_ENV_VAR_NAME
from packflow.exceptions import PackflowConfigWarning, UnknownConfigKeysError


class Custom(BackendConfig):
    threshold: float = 0.5
    labels: list[str] = ["a", "b"]
    model: dict = {"name": "m", "params": {"depth": 3, "lr": 0.1}}


@pytest.fixture(autouse=True)
def no_override(monkeypatch):
    monkeypatch.delenv(BACKEND_CONFIG_PATH_ENV_VAR_NAME, raising=False)


def write_override(tmp_path, monkeypatch, content):
    path = tmp_path / "override.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    monkeypatch.setenv(BACKEND_CONFIG_PATH_ENV_VAR_NAME, str(path))
    return path


def test_defaults():
    c = load_backend_configuration()
    assert c.verbose is False
    assert c.input_format is InputFormats.RECORDS
    assert c.rename_fields == {} and c.feature_names == [] and c.output_keys == []
    assert c.flatten_nested_inputs is False and c.flatten_lists is False
    assert c.nested_field_delimiter == "." and c.ignore_delimiter_collisions is False


def test_kwargs_override_defaults():
    c = load_backend_configuration(Custom, threshold=0.9, input_format="numpy")
    assert c.threshold == 0.9 and c.input_format is InputFormats.NUMPY


def test_file_overrides_kwargs_with_deep_merge(tmp_path, monkeypatch):
    write_override(
        tmp_path,
        monkeypatch,
        {"configs": {"threshold": 0.7, "labels": ["z"], "model": {"params": {"depth": 5}}}},
    )
    c = load_backend_configuration(
        Custom, threshold=0.9, labels=["x", "y"], model={"name": "n", "params": {"lr": 1.0}}
    )
    assert c.threshold == 0.7
    assert c.labels == ["z"]  # lists are replaced
    assert c.model == {"name": "n", "params": {"lr": 1.0, "depth": 5}}  # dicts merge


def test_invalid_values_raise_pydantic_validation_error():
    with pytest.raises(pydantic.ValidationError):
        load_backend_configuration(input_format="parquet")
    with pytest.raises(pydantic.ValidationError):
        load_backend_configuration(Custom, threshold="high")


def test_file_can_make_config_invalid(tmp_path, monkeypatch):
    write_override(tmp_path, monkeypatch, {"configs": {"feature_names": "not-a-list"}})
    with pytest.raises(pydantic.ValidationError):
        load_backend_configuration()


def test_deep_merge_does_not_mutate():
    base = {"a": {"b": 1}, "l": [1]}
    over = {"a": {"c": 2}, "l": [2]}
    merged = deep_merge(base, over)
    assert merged == {"a": {"b": 1, "c": 2}, "l": [2]}
    assert base == {"a": {"b": 1}, "l": [1]} and over == {"a": {"c": 2}, "l": [2]}


def test_backend_sees_file_override(tmp_path, monkeypatch):
    from packflow import InferenceBackend

    class B(InferenceBackend):
        backend_config_model = Custom

        def execute(self, inputs):
            return inputs

    write_override(tmp_path, monkeypatch, {"configs": {"threshold": 0.25}})
    assert B(threshold=0.75).config.threshold == 0.25


# -- a bad BACKEND_CONFIG_FILE_PATH is said out loud (issue 13, item 14) ---------------


def override_warnings(recorded) -> list[str]:
    return [str(w.message) for w in recorded if issubclass(w.category, PackflowConfigWarning)]


@pytest.mark.parametrize(
    "content, expected",
    [
        ("{not json", "is not valid JSON"),
        (json.dumps({"other": 1}), "has no 'configs' object"),
        (json.dumps([1, 2]), "has no 'configs' object"),
        (json.dumps({"configs": 3}), "has no 'configs' object"),
        (b"\xff\xfe{}", "is not valid JSON"),
    ],
)
def test_bad_override_file_is_a_visible_warning(tmp_path, monkeypatch, content, expected):
    path = tmp_path / "override.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    monkeypatch.setenv(BACKEND_CONFIG_PATH_ENV_VAR_NAME, str(path))
    with pytest.warns(PackflowConfigWarning) as recorded:
        assert load_backend_configuration(Custom, threshold=0.9).threshold == 0.9
    (message,) = override_warnings(recorded)
    assert message.startswith(f"BACKEND_CONFIG_FILE_PATH={path} ")
    assert expected in message and message.endswith("; it is ignored")


def test_missing_override_file_is_a_visible_warning(tmp_path, monkeypatch):
    monkeypatch.setenv(BACKEND_CONFIG_PATH_ENV_VAR_NAME, str(tmp_path / "nope.json"))
    with pytest.warns(PackflowConfigWarning, match="does not exist; it is ignored"):
        assert load_backend_configuration(threshold=1).verbose is False


def test_a_directory_is_not_read(tmp_path, monkeypatch):
    monkeypatch.setenv(BACKEND_CONFIG_PATH_ENV_VAR_NAME, str(tmp_path))
    with pytest.warns(PackflowConfigWarning, match="is a directory, not a regular file"):
        assert load_backend_configuration().verbose is False


def test_a_fifo_does_not_hang(tmp_path):
    # Opening a FIFO for reading blocks until a writer comes; the check must not.
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    script = (
        "import warnings; warnings.simplefilter('always')\n"
        "from packflow.backend.configuration import load_backend_configuration\n"
        "print(load_backend_configuration().verbose)\n"
    )
    env = {**os.environ, BACKEND_CONFIG_PATH_ENV_VAR_NAME: str(fifo)}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "False\n"
    assert "is a FIFO, not a regular file; it is ignored" in done.stderr


def test_an_oversized_file_is_not_read(tmp_path, monkeypatch):
    path = tmp_path / "huge.json"
    with open(path, "wb") as fh:  # sparse: no disk, and nothing should read it
        fh.truncate(MAX_CONFIG_FILE_BYTES + 1)
    monkeypatch.setenv(BACKEND_CONFIG_PATH_ENV_VAR_NAME, str(path))
    with pytest.warns(PackflowConfigWarning, match=r"is larger than the 16 MiB limit"):
        assert load_backend_configuration().verbose is False


def test_a_file_at_the_limit_is_read(tmp_path, monkeypatch):
    body = json.dumps({"configs": {"verbose": True}}).encode()
    path = tmp_path / "big.json"
    path.write_bytes(body + b" " * (MAX_CONFIG_FILE_BYTES - len(body)))
    monkeypatch.setenv(BACKEND_CONFIG_PATH_ENV_VAR_NAME, str(path))
    assert load_backend_configuration().verbose is True


def test_an_empty_variable_means_no_file(monkeypatch, recwarn):
    monkeypatch.setenv(BACKEND_CONFIG_PATH_ENV_VAR_NAME, "")
    assert load_backend_configuration().verbose is False
    assert not override_warnings(recwarn)


def test_the_warning_is_also_logged(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv(BACKEND_CONFIG_PATH_ENV_VAR_NAME, str(tmp_path / "nope.json"))
    with caplog.at_level(logging.WARNING, logger="packflow"), pytest.warns(PackflowConfigWarning):
        load_backend_configuration()
    assert any("does not exist" in r.getMessage() for r in caplog.records)


# -- nested_field_delimiter and unknown keys (issue 13, item 14) -----------------------


def test_empty_delimiter_is_refused():
    with pytest.raises(pydantic.ValidationError, match="nested_field_delimiter must not be empty"):
        BackendConfig(nested_field_delimiter="")
    with pytest.raises(pydantic.ValidationError):
        load_backend_configuration(Custom, nested_field_delimiter="")


def test_unknown_keys_are_accepted_by_the_python_api_as_in_packflow_0_4(caplog):
    with caplog.at_level(logging.WARNING, logger="packflow"):
        config = load_backend_configuration(Custom, treshold=0.9)
    assert config.threshold == 0.5
    assert not hasattr(config, "treshold")
    assert any("'treshold'" in r.getMessage() for r in caplog.records)


def test_check_config_keys_names_the_unknown_and_the_known():
    check_config_keys(Custom, ["threshold", "verbose", "model"])
    with pytest.raises(UnknownConfigKeysError) as info:
        check_config_keys(Custom, ["treshold", "labels", "zzz"])
    message = str(info.value)
    assert message.startswith(
        "unknown config keys for Custom: 'treshold' (did you mean 'threshold'?), 'zzz'"
    )
    assert (
        "known keys: " in message and "threshold" in message and "nested_field_delimiter" in message
    )
    assert info.value.unknown == ["treshold", "zzz"]
    assert isinstance(info.value, ValueError)


def test_check_config_keys_takes_an_instance_or_a_model_that_allows_extras():
    check_config_keys(Custom(), ["threshold"])
    with pytest.raises(UnknownConfigKeysError, match="'nope'"):
        check_config_keys(Custom(), {"nope": 1})

    class Open(BackendConfig):
        model_config = pydantic.ConfigDict(extra="allow")

    check_config_keys(Open, ["anything"])


def test_check_config_keys_knows_aliases():
    class Aliased(BackendConfig):
        threshold: float = pydantic.Field(0.5, alias="thr")

    check_config_keys(Aliased, ["thr"])
    with pytest.raises(UnknownConfigKeysError):
        check_config_keys(Aliased, ["threshold"])


def test_packflow_run_shows_the_warning_on_stderr(tmp_path):
    from tests.support.sample_projects import write_project

    project = tmp_path / "project"
    write_project(project)
    env = {**os.environ, BACKEND_CONFIG_PATH_ENV_VAR_NAME: str(tmp_path / "missing.json")}
    done = subprocess.run(
        [str(Path(sys.executable).with_name("packflow")), "run", str(project)],
        input='{"a": 1}\n',
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == '{"a":1}\n'
    assert (
        f"PackflowConfigWarning: BACKEND_CONFIG_FILE_PATH={tmp_path / 'missing.json'} does not "
        "exist; it is ignored"
    ) in done.stderr
