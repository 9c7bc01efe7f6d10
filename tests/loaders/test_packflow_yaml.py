"""PackflowConfig: fields, reading packflow.yaml (with line/field errors), writing it,
archive names, and apply_env_vars."""

from __future__ import annotations

import logging
import os
import pickle
import re
import subprocess
import sys

import pytest
import yaml
from pydantic import ValidationError

from packflow import __version__
from packflow.exceptions import PackflowConfigError
from packflow.loaders import PackflowConfig, apply_env_vars
from packflow.loaders.packflow_yaml import (
    NAME_PATTERN,
    PackflowConfigSyntaxError,
    PackflowConfigTypeError,
    PackflowConfigValidationError,
    load_packflow_config,
    normalize_archive_name,
)
from tests.support.reference import run_reference_script


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


def notes(exc: BaseException) -> str:
    return "\n".join(getattr(exc, "__notes__", ()))


def test_malformed_yaml_is_a_yaml_error_naming_file_line_and_column(tmp_path):
    write_yaml(tmp_path, "name: demo\nversion: [1,\n")
    with pytest.raises(PackflowConfigSyntaxError) as info:
        PackflowConfig.from_project_path(tmp_path)
    error = info.value
    assert isinstance(error, yaml.MarkedYAMLError)
    assert isinstance(error, PackflowConfigError) and isinstance(error, ValueError)
    assert f'in "{tmp_path / "packflow.yaml"}", line 3, column 1' in str(error)
    assert "expected the node content, but found '<stream end>'" in str(error)
    assert (error.path, error.line) == (tmp_path / "packflow.yaml", 3)


def test_bad_indentation_names_its_line(tmp_path):
    write_yaml(tmp_path, "name: demo\nenv:\n  A: x\n B: y\n")
    with pytest.raises(PackflowConfigSyntaxError, match=r"line 4, column 2"):
        PackflowConfig.from_project_path(tmp_path)


@pytest.mark.parametrize("text", ["", "\n", "# only a comment\n"])
def test_empty_file_is_a_type_error(tmp_path, text):
    write_yaml(tmp_path, text)
    with pytest.raises(PackflowConfigTypeError, match="is empty: it needs at least a 'name'"):
        PackflowConfig.from_project_path(tmp_path)
    with pytest.raises(TypeError):
        PackflowConfig.from_project_path(tmp_path)


@pytest.mark.parametrize(("text", "kind"), [("- a\n- b\n", "list"), ("just text\n", "str")])
def test_top_level_must_be_a_mapping(tmp_path, text, kind):
    write_yaml(tmp_path, text)
    with pytest.raises(
        PackflowConfigTypeError, match=f"line 1: the top level must be a mapping.*{kind}"
    ) as info:
        PackflowConfig.from_project_path(tmp_path)
    assert isinstance(info.value, TypeError) and info.value.line == 1


def test_invalid_fields_are_a_validation_error_with_their_lines(tmp_path):
    write_yaml(tmp_path, "name: 1abc\nversion: '1'\nloader: foo\nbogus: 1\n")
    with pytest.raises(ValidationError) as info:
        PackflowConfig.from_project_path(tmp_path)
    error = info.value
    assert isinstance(error, PackflowConfigValidationError)
    assert isinstance(error, PackflowConfigError)
    assert str(error).startswith("3 validation errors for PackflowConfig\nname\n")
    assert [e["loc"] for e in error.errors()] == [("name",), ("loader",), ("bogus",)]
    assert error.path == tmp_path / "packflow.yaml"
    assert [(p.field, p.line) for p in error.problems] == [
        ("name", 1),
        ("loader", 3),
        ("bogus", 4),
    ]
    note = notes(error)
    assert note.startswith(f"{tmp_path / 'packflow.yaml'} has 3 problems:\n")
    assert "line 1, field 'name': must start with a letter" in note
    assert "(got '1abc')" in note
    assert "line 3, field 'loader': Input should be 'local' or 'module' (got 'foo')" in note
    assert "line 4, field 'bogus': is not a packflow.yaml field" in note


def test_single_problem_is_one_note_line(tmp_path):
    write_yaml(tmp_path, "name: demo\n\ninference_backend: a:b:c\n")
    with pytest.raises(PackflowConfigValidationError) as info:
        PackflowConfig.from_project_path(tmp_path)
    assert notes(info.value) == (
        f"{tmp_path / 'packflow.yaml'} line 3, field 'inference_backend': must be "
        "'module:Object' with exactly one colon, e.g. 'inference:Backend' (got 'a:b:c')"
    )


def test_missing_name_is_required(tmp_path):
    write_yaml(tmp_path, "version: '1.0'\n")
    with pytest.raises(PackflowConfigValidationError) as info:
        PackflowConfig.from_project_path(tmp_path)
    assert notes(info.value).endswith("packflow.yaml field 'name': is required")
    assert info.value.problems[0].line is None


def test_numbers_where_strings_belong_suggest_quotes(tmp_path):
    write_yaml(tmp_path, "name: demo\nversion: 1.10\nenv:\n  PORT: 8080\n")
    with pytest.raises(PackflowConfigValidationError) as info:
        PackflowConfig.from_project_path(tmp_path)
    note = notes(info.value)
    assert "line 2, field 'version'" in note
    assert "(got 1.1)" in note  # what YAML made of 1.10: the reason to quote it
    assert "line 4, field 'env.PORT'" in note
    assert note.count("put the value in quotes") == 2


def test_nested_list_item_is_located(tmp_path):
    write_yaml(tmp_path, "name: demo\nmaintainers:\n  - a@b.c\n  - 42\n")
    with pytest.raises(PackflowConfigValidationError) as info:
        PackflowConfig.from_project_path(tmp_path)
    assert "line 4, field 'maintainers.1'" in notes(info.value)


def test_duplicate_field_is_an_error(tmp_path):
    write_yaml(tmp_path, "name: a\nversion: '1'\nname: b\n")
    with pytest.raises(
        PackflowConfigError, match=r"line 3: field 'name' is given twice \(first on line 1\)"
    ):
        PackflowConfig.from_project_path(tmp_path)


def test_not_utf8(tmp_path):
    (tmp_path / "packflow.yaml").write_bytes(b"name: demo\ndescription: \xff\xfe\n")
    with pytest.raises(PackflowConfigError, match="line 2: not UTF-8") as info:
        PackflowConfig.from_project_path(tmp_path)
    assert info.value.line == 2


@pytest.mark.parametrize(
    ("text", "kind", "line"),
    [
        ("name: [x\n", "Parser", 2),
        ("name: x\n  y: z\n", "Scanner", 2),
        ("name: x\n---\nname: y\n", "Composer", 2),
        ("name: x\n? [a, b]\n: 1\n", "Constructor", 2),
        ("name: x\nb: \x07\n", "Reader", 2),
    ],
)
def test_each_yaml_error_keeps_its_pyyaml_type_and_pickles(tmp_path, text, kind, line):
    write_yaml(tmp_path, text)
    with pytest.raises(PackflowConfigSyntaxError) as info:
        PackflowConfig.from_project_path(tmp_path)
    error = info.value
    assert type(error).__name__ == f"PackflowConfig{kind}Error"
    assert f"{kind}Error" in {c.__name__ for c in type(error).__mro__[1:]}
    assert error.line == line
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), str(copy)) == (type(error), str(error))


def test_multiple_documents_are_refused(tmp_path):
    write_yaml(tmp_path, "name: a\n---\nname: b\n")
    with pytest.raises(PackflowConfigSyntaxError, match="expected a single document"):
        PackflowConfig.from_project_path(tmp_path)


# --- hostile files ---------------------------------------------------------------------


def billion_laughs(levels: int) -> str:
    lines = ["name: bomb", "extra:", '  l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, levels + 1):
        lines.append(f"  l{level}: &l{level} [" + ",".join([f"*l{level - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_at_once(tmp_path):
    # 470 bytes standing for ~39 million values. The check runs in a child with
    # bounded memory and time: walking the aliases would exhaust both.
    text = billion_laughs(7)
    assert len(text) < 600
    write_yaml(tmp_path, text)
    code = (
        "import resource, sys, time\n"
        "resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))\n"
        "from packflow.exceptions import PackflowConfigError\n"
        "from packflow.loaders import PackflowConfig\n"
        "start = time.perf_counter()\n"
        "try:\n"
        "    PackflowConfig.from_project_path(sys.argv[1])\n"
        "except PackflowConfigError as exc:\n"
        "    print(round(time.perf_counter() - start, 3), exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    seconds, message = done.stdout.split(" ", 1)
    assert float(seconds) < 1.0
    assert re.search(
        r"packflow\.yaml line \d: its YAML aliases \(\*name\) stand for more than 100,000", message
    )


def test_aliases_within_the_limit_are_read_like_yaml_does(tmp_path):
    write_yaml(
        tmp_path,
        "name: demo\nbackend_config:\n  base: &base {threshold: 0.5, tags: [a, b]}\n"
        "  other:\n    <<: *base\n    label: x\n  again: *base\n"
        "extra:\n  l0: &l0 [1, 2]\n  l1: [*l0, *l0, *l0]\n",
    )
    config = PackflowConfig.from_project_path(tmp_path)
    assert config.backend_config["other"] == {"threshold": 0.5, "tags": ["a", "b"], "label": "x"}
    assert config.backend_config["again"] == config.backend_config["base"]
    assert config.extra["l1"] == [[1, 2]] * 3
    write_yaml(tmp_path, billion_laughs(4))  # 8 * 9**4 = 52,488 lols: under the limit
    assert len(PackflowConfig.from_project_path(tmp_path).extra["l4"]) == 9


def test_invalid_field_under_an_alias_is_located_at_the_alias(tmp_path):
    write_yaml(tmp_path, "name: demo\nextra:\n  x: &bad [1]\nmaintainers: *bad\n")
    with pytest.raises(PackflowConfigValidationError) as info:
        PackflowConfig.from_project_path(tmp_path)
    assert "line 4, field 'maintainers.0'" in notes(info.value)


def test_a_self_referencing_alias_is_refused(tmp_path):
    write_yaml(tmp_path, "name: demo\nextra: &loop\n  me: *loop\n")
    with pytest.raises(PackflowConfigError, match="line 2: the value anchored here contains an"):
        PackflowConfig.from_project_path(tmp_path)


def test_deep_nesting_is_a_config_error_not_a_recursion_error(tmp_path):
    write_yaml(tmp_path, "name: demo\nextra:\n  x: " + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(PackflowConfigError, match="nested too deeply"):
        PackflowConfig.from_project_path(tmp_path)


def test_an_oversized_file_is_refused_without_reading_it(tmp_path, monkeypatch):
    import packflow.loaders.yaml_reader as yaml_reader

    monkeypatch.setattr(yaml_reader, "MAX_FILE_BYTES", 64)
    write_yaml(tmp_path, "name: demo\ndescription: " + "x" * 100 + "\n")
    with pytest.raises(PackflowConfigError, match="packflow.yaml is larger than"):
        PackflowConfig.from_project_path(tmp_path)


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_a_packflow_yaml_that_is_not_a_file_is_refused_without_blocking(tmp_path, kind):
    target = tmp_path / "packflow.yaml"
    os.mkfifo(target) if kind == "fifo" else target.mkdir()
    with pytest.raises(PackflowConfigError, match="is not a regular file"):
        PackflowConfig.from_project_path(tmp_path)


_REFERENCE_ERRORS = """
from packflow.loaders import PackflowConfig
result = []
for directory in payload:
    try:
        PackflowConfig.from_project_path(directory)
        result.append(None)
    except Exception as exc:
        result.append(([c.__name__ for c in type(exc).__mro__], str(exc)))
"""


def test_errors_keep_the_reference_types_and_messages(tmp_path):
    texts = {
        "fields": "name: 1abc\nversion: 1.1\nloader: remote\n",
        "missing": "version: '1.0'\n",
        "syntax": "name: [demo\n",
        "indent": "name: demo\nenv:\n  A: x\n B: y\n",
        "documents": "name: a\n---\nname: b\n",
        "empty": "",
        "list": "- a\n",
    }
    directories = []
    for label, text in texts.items():
        (tmp_path / label).mkdir()
        directories.append(write_yaml(tmp_path / label, text))
    expected = run_reference_script(_REFERENCE_ERRORS, [str(d) for d in directories])
    for directory, (ref_types, ref_message) in zip(directories, expected):
        with pytest.raises(Exception) as info:
            PackflowConfig.from_project_path(directory)
        error = info.value
        ref_type = ref_types[0]
        assert ref_type in {c.__name__ for c in type(error).__mro__}, (directory, ref_type)
        assert isinstance(error, PackflowConfigError)
        if ref_type != "TypeError":  # the reference's TypeError is about `**None`
            assert ref_message in str(error), directory


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
from packflow.loaders import PackflowConfig
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
from packflow.loaders import PackflowConfig
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


# -- Packflow 0.4's module path, packflow.loaders.config --------------------------------

_REFERENCE_CONFIG_MODULE = """
import platform

import packflow.loaders
import packflow.loaders.config as m
result = {
    "python_version": platform.python_version(),
    "names": sorted(n for n in dir(m) if not n.startswith("_")),
    "METADATA_KEYS": m.METADATA_KEYS,
    "RUNTIME_CONFIG_KEYS": m.RUNTIME_CONFIG_KEYS,
    "NAME_PATTERN": m.NAME_PATTERN,
    "get_python_version": m.get_python_version(),
    "normalize_archive_name": [m.normalize_archive_name(n) for n in payload],
    "model_is_the_package_one": m.PackflowConfig is packflow.loaders.PackflowConfig,
}
"""


def test_the_0_4_module_path_re_exports_the_model():
    import platform

    import packflow.loaders
    import packflow.loaders.config as ours

    names = ["my-model", "My Model 2", "a_b", "x"]
    ref = run_reference_script(_REFERENCE_CONFIG_MODULE, names)
    assert set(ours.__all__) <= set(ref["names"])
    for name in ("METADATA_KEYS", "RUNTIME_CONFIG_KEYS", "NAME_PATTERN"):
        assert getattr(ours, name) == ref[name], name
    # Each names the interpreter it runs on (the matrix runs other Pythons
    # than the reference's).
    assert ref["get_python_version"] == ref["python_version"]
    assert ours.get_python_version() == platform.python_version()
    assert [ours.normalize_archive_name(n) for n in names] == ref["normalize_archive_name"]
    assert ref["model_is_the_package_one"]
    assert ours.PackflowConfig is packflow.loaders.PackflowConfig


def test_the_module_keeps_every_name_it_had_before_the_reader_and_errors_moved_out():
    import packflow.loaders.config_errors as config_errors
    import packflow.loaders.packflow_yaml as packflow_yaml
    import packflow.loaders.yaml_reader as yaml_reader

    assert sorted(packflow_yaml.__all__) == sorted(
        [
            *("INFERENCE_BACKEND_PATTERN", "MAX_FILE_BYTES", "MAX_VALUES", "NAME_PATTERN"),
            *("FieldProblem", "PackflowConfig", "PackflowConfigComposerError"),
            *("PackflowConfigConstructorError", "PackflowConfigParserError"),
            *("PackflowConfigReaderError", "PackflowConfigScannerError"),
            *("PackflowConfigSyntaxError", "PackflowConfigTypeError"),
            *("PackflowConfigValidationError", "apply_env_vars", "get_python_version"),
            *("load_packflow_config", "normalize_archive_name", "python_version_warning"),
            *("read_raw_config", "restore_env"),
        ]
    )
    for name in packflow_yaml.__all__:
        moved = getattr(config_errors, name, None) or getattr(yaml_reader, name, None)
        if moved is not None:
            assert getattr(packflow_yaml, name) is moved, name
