"""PackflowConfig: fields, reading packflow.yaml (with line/field errors), writing it,
archive names, and apply_env_vars."""

from __future__ import annotations

import logging
import os
import sys

import pytest
import yaml
from pydantic import ValidationError

from packflow import __version__
from packflow.exceptions import PackflowConfigError
from packflow.loaders import PackflowConfig, apply_env_vars
from packflow.loaders.config import NAME_PATTERN, load_packflow_config, normalize_archive_name

from reference import run_reference_script


def write_yaml(directory, text: str):
    (directory / "packflow.yaml").write_text(text, encoding="utf-8")
    return directory


# --- the model -------------------------------------------------------------------------


def test_defaults():
    config = PackflowConfig(name="demo")
    info = sys.version_info
    assert config.model_dump() == {
        "name": "demo",
        "version": "0.1.0",
        "description": "",
        "maintainers": [],
        "inference_backend": "inference:Backend",
        "loader": "local",
        "python_version": f"{info.major}.{info.minor}.{info.micro}",
        "env": {},
        "backend_config": {},
        "extra": {},
    }


@pytest.mark.parametrize("name", ["a", "Demo", "my-project", "my_project2", "x-1_y"])
def test_valid_names(name):
    assert PackflowConfig(name=name).name == name


@pytest.mark.parametrize("name", ["", "1abc", "-x", "_x", "has space", "a/b", "a.b", "ü"])
def test_invalid_names(name):
    with pytest.raises(ValidationError):
        PackflowConfig(name=name)


@pytest.mark.parametrize("backend", ["", "inference", "a:b:c", ":B", "a:"])
def test_invalid_inference_backend(backend):
    with pytest.raises(ValidationError):
        PackflowConfig(name="x", inference_backend=backend)


def test_unknown_fields_and_loaders_are_refused():
    with pytest.raises(ValidationError):
        PackflowConfig(name="x", bogus=1)
    with pytest.raises(ValidationError):
        PackflowConfig(name="x", loader="remote")


# --- reading packflow.yaml -------------------------------------------------------------


def test_from_project_path_reads_every_section(tmp_path):
    write_yaml(
        tmp_path,
        "name: demo\nversion: '2.0'\ndescription: d\nmaintainers: [a@b.c]\n"
        "inference_backend: pkg.mod:Model\nloader: module\npython_version: '3.11'\n"
        "env:\n  MODEL_DIR: /models\nbackend_config:\n  threshold: 0.7\n"
        "extra:\n  team: search\n",
    )
    config = PackflowConfig.from_project_path(tmp_path)
    assert config.version == "2.0"
    assert config.inference_backend == "pkg.mod:Model"
    assert config.loader == "module"
    assert config.env == {"MODEL_DIR": "/models"}
    assert config.backend_config == {"threshold": 0.7}
    assert config.extra == {"team": "search"}


def test_from_project_path_accepts_a_relative_path(tmp_path, monkeypatch):
    (tmp_path / "proj").mkdir()
    write_yaml(tmp_path / "proj", "name: rel\n")
    monkeypatch.chdir(tmp_path)
    assert PackflowConfig.from_project_path("proj").name == "rel"
    assert load_packflow_config("proj").name == "rel"


def test_missing_packflow_yaml_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="Not a packflow project") as info:
        PackflowConfig.from_project_path(tmp_path)
    assert str(tmp_path) in str(info.value)
    assert "packflow create" in str(info.value)


def test_load_packflow_config_needs_a_directory(tmp_path):
    with pytest.raises(NotADirectoryError):
        load_packflow_config(tmp_path / "nope")


def test_malformed_yaml_names_line_and_column(tmp_path):
    write_yaml(tmp_path, "name: demo\nversion: [1,\n")
    with pytest.raises(PackflowConfigError) as info:
        PackflowConfig.from_project_path(tmp_path)
    message = str(info.value)
    assert "packflow.yaml line 3, column 1: invalid YAML" in message
    assert isinstance(info.value, ValueError)


def test_bad_indentation_names_its_line(tmp_path):
    write_yaml(tmp_path, "name: demo\nenv:\n  A: x\n B: y\n")
    with pytest.raises(PackflowConfigError, match=r"line 4, column 2: invalid YAML"):
        PackflowConfig.from_project_path(tmp_path)


@pytest.mark.parametrize("text", ["", "\n", "# only a comment\n"])
def test_empty_file(tmp_path, text):
    write_yaml(tmp_path, text)
    with pytest.raises(PackflowConfigError, match="is empty: it needs at least a 'name'"):
        PackflowConfig.from_project_path(tmp_path)


@pytest.mark.parametrize(("text", "kind"), [("- a\n- b\n", "list"), ("just text\n", "str")])
def test_top_level_must_be_a_mapping(tmp_path, text, kind):
    write_yaml(tmp_path, text)
    with pytest.raises(
        PackflowConfigError, match=f"line 1: the top level must be a mapping.*{kind}"
    ):
        PackflowConfig.from_project_path(tmp_path)


def test_invalid_fields_are_listed_with_their_lines(tmp_path):
    write_yaml(tmp_path, "name: 1abc\nversion: '1'\nloader: foo\nbogus: 1\n")
    with pytest.raises(PackflowConfigError) as info:
        PackflowConfig.from_project_path(tmp_path)
    message = str(info.value)
    assert "has 3 problems" in message
    assert "line 1, field 'name': must start with a letter" in message
    assert "(got '1abc')" in message
    assert "line 3, field 'loader': Input should be 'local' or 'module' (got 'foo')" in message
    assert "line 4, field 'bogus': is not a packflow.yaml field" in message
    assert isinstance(info.value.__cause__, ValidationError)


def test_single_problem_is_one_line(tmp_path):
    write_yaml(tmp_path, "name: demo\n\ninference_backend: a:b:c\n")
    with pytest.raises(PackflowConfigError) as info:
        PackflowConfig.from_project_path(tmp_path)
    message = str(info.value)
    assert "\n" not in message
    assert message.endswith(
        "packflow.yaml line 3, field 'inference_backend': must be 'module:Object' with exactly "
        "one colon, e.g. 'inference:Backend' (got 'a:b:c')"
    )


def test_missing_name_is_required(tmp_path):
    write_yaml(tmp_path, "version: '1.0'\n")
    with pytest.raises(PackflowConfigError, match="field 'name': is required"):
        PackflowConfig.from_project_path(tmp_path)


def test_numbers_where_strings_belong_suggest_quotes(tmp_path):
    write_yaml(tmp_path, "name: demo\nversion: 1.10\nenv:\n  PORT: 8080\n")
    with pytest.raises(PackflowConfigError) as info:
        PackflowConfig.from_project_path(tmp_path)
    message = str(info.value)
    assert "line 2, field 'version'" in message
    assert "(got 1.1)" in message  # what YAML made of 1.10: the reason to quote it
    assert "line 4, field 'env.PORT'" in message
    assert message.count("put the value in quotes") == 2


def test_nested_list_item_is_located(tmp_path):
    write_yaml(tmp_path, "name: demo\nmaintainers:\n  - a@b.c\n  - 42\n")
    with pytest.raises(PackflowConfigError, match=r"line 4, field 'maintainers.1'"):
        PackflowConfig.from_project_path(tmp_path)


def test_duplicate_field_is_an_error(tmp_path):
    write_yaml(tmp_path, "name: a\nversion: '1'\nname: b\n")
    with pytest.raises(
        PackflowConfigError, match=r"line 3: field 'name' is given twice \(first on line 1\)"
    ):
        PackflowConfig.from_project_path(tmp_path)


def test_not_utf8(tmp_path):
    (tmp_path / "packflow.yaml").write_bytes(b"name: \xff\xfe\n")
    with pytest.raises(PackflowConfigError, match="not UTF-8"):
        PackflowConfig.from_project_path(tmp_path)


def test_multiple_documents_are_refused(tmp_path):
    write_yaml(tmp_path, "name: a\n---\nname: b\n")
    with pytest.raises(PackflowConfigError, match="invalid YAML"):
        PackflowConfig.from_project_path(tmp_path)


# --- writing ---------------------------------------------------------------------------


def test_write_yaml_round_trips_and_orders_sections(tmp_path):
    config = PackflowConfig(
        name="demo",
        description="Scores things",
        maintainers=["a@b.c"],
        env={"A": "1"},
        backend_config={"threshold": 0.5, "nested": {"x": [1, 2]}},
        extra={"team": "x"},
    )
    path = config.write_yaml(tmp_path)
    assert path == tmp_path.resolve() / "packflow.yaml"
    text = path.read_text()
    order = [
        text.index(h) for h in ("METADATA", "RUNTIME", "ENVIRONMENT", "BACKEND CONFIG", "CUSTOM")
    ]
    assert order == sorted(order)
    assert text.index("name:") < text.index("inference_backend:") < text.index("env:")
    assert PackflowConfig.from_project_path(tmp_path) == config


def test_write_yaml_leaves_out_empty_optional_sections(tmp_path):
    text = PackflowConfig(name="demo").write_yaml(tmp_path).read_text()
    assert "METADATA" in text and "RUNTIME" in text
    for absent in ("ENVIRONMENT", "BACKEND CONFIG", "CUSTOM", "env:", "extra:"):
        assert absent not in text


def test_write_yaml_keeps_unicode_readable(tmp_path):
    PackflowConfig(name="demo", description="Détecte les anomalies").write_yaml(tmp_path)
    assert "Détecte" in (tmp_path / "packflow.yaml").read_text(encoding="utf-8")


def test_write_requirements_pins_this_packflow(tmp_path):
    path = PackflowConfig(name="demo").write_requirements(tmp_path)
    assert path.read_text() == f"packflow=={__version__}\n"


@pytest.mark.parametrize(
    ("name", "version", "file_name"),
    [
        ("demo", "0.1.0", "demo-0.1.0.zip"),
        ("my-cool-model", "1.2.3rc1", "my_cool_model-1.2.3rc1.zip"),
        ("Under_score", "2024.01", "Under_score-2024.01.zip"),
    ],
)
def test_archive_file_name(tmp_path, name, version, file_name):
    config = PackflowConfig(name=name, version=version)
    assert config.archive_file_name(tmp_path) == tmp_path.resolve() / file_name
    assert normalize_archive_name(name) == file_name.rsplit("-", 1)[0]


@pytest.mark.parametrize("version", ["", "../../etc", "1/2", "a\\b", ".."])
def test_archive_file_name_refuses_versions_that_are_not_file_name_safe(tmp_path, version):
    with pytest.raises(ValueError, match="cannot be used in an archive file name"):
        PackflowConfig(name="demo", version=version).archive_file_name(tmp_path)


def test_name_pattern_constant():
    assert NAME_PATTERN == r"^[A-Za-z][A-Za-z0-9_-]*$"


# --- environment -----------------------------------------------------------------------


def test_apply_env_vars_sets_and_warns_on_overwrite(monkeypatch, caplog):
    monkeypatch.setenv("PF_TEST_SAME", "x")
    monkeypatch.setenv("PF_TEST_OTHER", "old")
    monkeypatch.delenv("PF_TEST_NEW", raising=False)
    config = PackflowConfig(
        name="demo", env={"PF_TEST_SAME": "x", "PF_TEST_OTHER": "new", "PF_TEST_NEW": "1"}
    )
    with caplog.at_level(logging.WARNING, logger="packflow"):
        apply_env_vars(config)
    assert os.environ["PF_TEST_NEW"] == "1"
    assert os.environ["PF_TEST_OTHER"] == "new"
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert "PF_TEST_OTHER" in warnings[0] and "'old'" in warnings[0] and "'new'" in warnings[0]


# --- against the reference -------------------------------------------------------------

_REFERENCE_PARSE = """
from pathlib import Path
from packflow.loaders.config import PackflowConfig
result = []
for directory in payload:
    try:
        config = PackflowConfig.from_project_path(directory)
        result.append(("ok", config.model_dump(), str(config.archive_file_name(directory))))
    except Exception as exc:
        result.append(("err", type(exc).__name__))
"""

PARSE_CASES = {
    "minimal": "name: demo\npython_version: '3.11.0'\n",
    "full": (
        "name: my-model\nversion: 2.0.1\ndescription: Finds things\nmaintainers: [a@b.c, d@e.f]\n"
        "inference_backend: pkg.mod:Model\nloader: module\npython_version: '3.10.4'\n"
        "env: {A: x}\nbackend_config: {threshold: 0.5, nested: {k: [1, 2]}}\nextra: {k: v}\n"
    ),
    "hyphens": "name: a-b-c\nversion: 1.0.0-rc.1\npython_version: '3.11.0'\n",
    "bad_name": "name: 1abc\n",
    "bad_backend": "name: x\ninference_backend: a:b:c\n",
    "bad_loader": "name: x\nloader: remote\n",
    "unknown_field": "name: x\nfoo: 1\n",
    "number_version": "name: x\nversion: 1.0\n",
    "missing_name": "version: '1.0'\n",
    "bad_yaml": "name: [x\n",
}


def test_parsing_matches_the_reference(tmp_path):
    directories = []
    for key, text in PARSE_CASES.items():
        directory = tmp_path / key
        directory.mkdir()
        write_yaml(directory, text)
        directories.append(str(directory))
    theirs = run_reference_script(_REFERENCE_PARSE, directories)
    for directory, ref in zip(directories, theirs):
        try:
            config = PackflowConfig.from_project_path(directory)
        except (ValueError, FileNotFoundError):
            # Ours: PackflowConfigError (a ValueError) for YAML and field problems alike.
            assert ref[0] == "err", directory
            assert ref[1] in {"ValidationError", "ScannerError", "ParserError"}
            continue
        assert ref[0] == "ok", directory
        assert config.model_dump() == ref[1]
        assert str(config.archive_file_name(directory)) == ref[2]


_REFERENCE_WRITE = """
from packflow.loaders.config import PackflowConfig
directory, data = payload
PackflowConfig(**data).write_yaml(directory)
result = None
"""


def test_written_yaml_reads_the_same_as_the_reference_one(tmp_path):
    data = {
        "name": "demo",
        "description": "d",
        "maintainers": ["a@b.c"],
        "python_version": "3.11.0",
        "env": {"A": "1"},
        "backend_config": {"x": {"y": [1, 2]}},
        "extra": {"k": "v"},
    }
    (tmp_path / "ours").mkdir()
    (tmp_path / "ref").mkdir()
    PackflowConfig(**data).write_yaml(tmp_path / "ours")
    run_reference_script(_REFERENCE_WRITE, (str(tmp_path / "ref"), data))
    ours = yaml.safe_load((tmp_path / "ours" / "packflow.yaml").read_text())
    theirs = yaml.safe_load((tmp_path / "ref" / "packflow.yaml").read_text())
    assert ours == theirs
    assert list(ours) == list(theirs)


# --- property: write_yaml then from_project_path gives the same config ------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_names = st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,15}", fullmatch=True)
_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=10,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    name=_names,
    version=_text,
    description=_text,
    maintainers=st.lists(_text, max_size=3),
    env=st.dictionaries(_text, _text, max_size=3),
    backend_config=st.dictionaries(_text, _json, max_size=3),
)
def test_write_then_read_round_trips(
    tmp_path, name, version, description, maintainers, env, backend_config
):
    config = PackflowConfig(
        name=name,
        version=version,
        description=description,
        maintainers=maintainers,
        env=env,
        backend_config=backend_config,
    )
    config.write_yaml(tmp_path)
    assert PackflowConfig.from_project_path(tmp_path) == config
