"""BackendConfig and the hierarchy: defaults < kwargs < BACKEND_CONFIG_FILE_PATH file."""

from __future__ import annotations

import json
import logging

import pydantic
import pytest

from packflow.backend.configuration import (
    BackendConfig,
    InputFormats,
    deep_merge,
    load_backend_configuration,
)
from packflow.constants import BACKEND_CONFIG_PATH_ENV_VAR_NAME


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


@pytest.mark.parametrize(
    "content",
    ["{not json", json.dumps({"other": 1}), json.dumps([1, 2]), json.dumps({"configs": 3})],
)
def test_bad_override_file_is_logged_and_ignored(tmp_path, monkeypatch, caplog, content):
    write_override(tmp_path, monkeypatch, content)
    with caplog.at_level(logging.WARNING, logger="packflow"):
        c = load_backend_configuration(Custom, threshold=0.9)
    assert c.threshold == 0.9
    assert any("ignoring" in r.getMessage() for r in caplog.records)


def test_missing_override_file_is_ignored(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv(BACKEND_CONFIG_PATH_ENV_VAR_NAME, str(tmp_path / "nope.json"))
    with caplog.at_level(logging.WARNING, logger="packflow"):
        assert load_backend_configuration(threshold=1).verbose is False
    assert any("does not exist" in r.getMessage() for r in caplog.records)


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
