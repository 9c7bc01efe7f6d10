"""The validation checks: required files, packflow.yaml fields, requirements, recommended
documents, the smoke load; and their agreement with the reference on the same projects."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest

from packflow import __version__
from packflow.loaders import PackflowConfig
from packflow.project import PackflowProject
from packflow.project.checks import Check, config_checks, python_version_check, split_levels
from tests.support.reference import run_reference_script
from tests.support.sample_projects import BACKEND_SOURCE, DOCS, write_project


def validate(directory, config=True):
    project = PackflowProject(directory)
    loaded = PackflowConfig.from_project_path(directory) if config else None
    return project.validate_required_files(config=loaded)


def test_a_complete_project_passes(tmp_path):
    assert validate(write_project(tmp_path)) == ([], [])


def test_config_is_read_when_not_given(tmp_path):
    write_project(tmp_path, description="")
    errors, warnings = validate(tmp_path, config=False)
    assert errors == []
    assert warnings == ["'description' is empty. A description is recommended before distributing."]


def test_unreadable_config_is_an_error_when_not_given(tmp_path):
    write_project(tmp_path)
    (tmp_path / "packflow.yaml").write_text("name: 1bad\n")
    errors, _ = validate(tmp_path, config=False)
    assert len(errors) == 1
    assert "line 1, field 'name'" in errors[0]


@pytest.mark.parametrize("missing", ["packflow.yaml", "requirements.txt"])
def test_required_files(tmp_path, missing):
    write_project(tmp_path)
    config = PackflowConfig.from_project_path(tmp_path)
    (tmp_path / missing).unlink()
    errors, _ = PackflowProject(tmp_path).validate_required_files(config=config)
    assert errors == [f"Required file '{missing}' is missing."]


def test_empty_version_is_an_error(tmp_path):
    write_project(tmp_path, version="")
    errors, _ = validate(tmp_path)
    assert errors == ["'version' is required for export but is empty."]


def test_empty_metadata_are_warnings(tmp_path):
    write_project(tmp_path, description="  ", maintainers=[" "])
    errors, warnings = validate(tmp_path)
    assert errors == []
    assert [w.split("'")[1] for w in warnings] == ["description", "maintainers"]


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        (f"{sys.version_info.major}.{sys.version_info.minor}", "ok"),
        (f"{sys.version_info.major}.{sys.version_info.minor}.99", "ok"),
        ("2.7.18", "warning"),
        (f"{sys.version_info.major}.{sys.version_info.minor + 1}.0", "warning"),
        ("latest", "warning"),
        ("", "warning"),
    ],
)
def test_python_version(version, expected):
    check = python_version_check(PackflowConfig(name="x", python_version=version))
    assert check.level == expected
    if expected == "warning":  # Packflow 0.4.1's words, as check_python_version says them
        assert check.message.startswith(
            ("packflow.yaml specifies Python ", "Could not parse python_version")
        )


def test_requirements_must_name_packflow(tmp_path):
    write_project(tmp_path, requirements="# packflow comes later\nnumpy\n")
    errors, _ = validate(tmp_path)
    assert errors == [
        "'packflow' is not listed in requirements.txt. The backend cannot run without it."
    ]


@pytest.mark.parametrize(
    "line", ["packflow", "Packflow>=0.4", "packflow[extra]", f"packflow=={__version__}"]
)
def test_requirement_forms_of_packflow(tmp_path, line):
    write_project(tmp_path, requirements=f"{line}\n")
    assert validate(tmp_path) == ([], [])


def test_requirement_warnings(tmp_path):
    write_project(
        tmp_path,
        requirements=(
            "packflow==0.0.1\n"
            "pyyaml==0.0.1\n"
            "not-installed-pf-test-pkg>=1\n"
            "click  # used by the CLI\n"
            "-r other.txt\n"
            "--index-url https://example.com/simple\n"
            "windows-only-pkg; sys_platform == 'win32'\n"
        ),
    )
    errors, warnings = validate(tmp_path)
    assert errors == []
    assert warnings == [
        f"'packflow' is required as 'packflow==0.0.1' but {__version__} is installed.",
        "'pyyaml' is required as 'pyyaml==0.0.1' but "
        + __import__("importlib.metadata").metadata.version("pyyaml")
        + " is installed.",
        "'not-installed-pf-test-pkg' from requirements.txt is not installed in this environment.",
    ]


@pytest.mark.parametrize("name", ["README.md", "MODEL_CARD.md", "LICENSE.txt"])
def test_recommended_file_missing_or_empty(tmp_path, name):
    write_project(tmp_path)
    (tmp_path / name).unlink()
    assert validate(tmp_path) == ([], [f"Recommended file '{name}' is missing."])
    (tmp_path / name).write_text("\n  \n")
    assert validate(tmp_path) == ([], [f"'{name}' is empty."])


def test_unedited_templates_are_warnings(tmp_path):
    from packflow.project.templates import rendered_template_text

    docs = {n: rendered_template_text(n, "sample") for n in DOCS}
    write_project(tmp_path, docs=docs)
    _, warnings = validate(tmp_path)
    # The license template is empty, as Packflow 0.4.1's is: "empty" says it all.
    assert sorted(warnings) == sorted(
        f"'{n}' is empty."
        if n == "LICENSE.txt"
        else f"'{n}' appears to be unchanged from template."
        for n in DOCS
    )


def test_packflow_04_templates_are_recognised(tmp_path):
    docs = dict(DOCS)
    docs["README.md"] = "# Project Name\n\nBrief description of the analytic.\n"
    docs["MODEL_CARD.md"] = "# Model Card\n\n{introduction}\n"
    write_project(tmp_path, docs=docs)
    _, warnings = validate(tmp_path)
    assert [w.split("'")[1] for w in warnings] == ["MODEL_CARD.md", "README.md"]


def test_missing_backend_file_is_one_error(tmp_path):
    write_project(tmp_path, backend=None)
    errors, _ = validate(tmp_path)
    assert len(errors) == 1
    assert errors[0] == (
        "Inference backend file 'inference.py' is missing. "
        "Required for local loader with inference_backend 'inference:Backend'."
    )


def test_backend_file_in_a_subdirectory(tmp_path):
    write_project(
        tmp_path, backend_file="models/scorer.py", inference_backend="models.scorer:Backend"
    )
    assert validate(tmp_path) == ([], [])
    (tmp_path / "models" / "scorer.py").unlink()
    errors, _ = validate(tmp_path)
    assert errors[0].startswith("Inference backend file 'models/scorer.py' is missing.")


def test_backend_raising_on_import_shows_the_last_frame(tmp_path):
    write_project(tmp_path, backend="import os\n\nraise OSError('model file missing')\n")
    errors, _ = validate(tmp_path)
    assert len(errors) == 1
    assert errors[0].startswith("'inference_backend' failed the smoke load: Unable to load")
    assert "error: model file missing (importing " in errors[0]
    assert "raised OSError (at " in errors[0]
    assert "inference.py, line 3, in <module>: raise OSError('model file missing')" in errors[0]


def test_backend_that_is_not_an_inference_backend(tmp_path):
    write_project(tmp_path, backend="class Backend:\n    pass\n")
    errors, _ = validate(tmp_path)
    assert len(errors) == 1
    assert "does not subclass packflow.InferenceBackend" in errors[0]


def test_backend_whose_constructor_fails(tmp_path):
    write_project(tmp_path, backend_config={"threshold": "not a number"})
    errors, _ = validate(tmp_path)
    assert len(errors) == 1
    assert "failed the smoke load: ValidationError" in errors[0]
    assert "threshold" in errors[0]


def test_smoke_load_output_is_silenced(tmp_path, capsys):
    noisy = (
        "print('hello from import')\nimport sys\nprint('err', file=sys.stderr)\n" + BACKEND_SOURCE
    )
    write_project(tmp_path, backend=noisy)
    assert validate(tmp_path) == ([], [])
    captured = capsys.readouterr()
    assert captured.out == captured.err == ""


def test_verbose_logs_every_check_and_prints_nothing(tmp_path, capsys, caplog):
    write_project(tmp_path, description="")
    with caplog.at_level(logging.INFO, logger="packflow"):
        PackflowProject(tmp_path).validate_required_files(verbose=True)
    assert capsys.readouterr() == ("", "")
    logged = [r.getMessage() for r in caplog.records if r.name == "packflow.project"]
    for line in (
        "Required files: ✓ packflow.yaml: present",
        "packflow.yaml: ⚠ 'description' is empty. A description is recommended before "
        "distributing.",
        "packflow.yaml: ✓ inference.py: backend file present",
        "Smoke load: ✓ inference_backend: InferenceBackendLoader.from_project",
        "Recommended files: ✓ README.md: present",
    ):
        assert line in logged


def test_check_describe():
    assert Check("s", "name", "ok", "demo").describe() == "✓ name: demo"
    assert Check("s", "x", "warning", "'x' is empty.").describe() == "⚠ 'x' is empty."
    assert Check("s", "x", "error", "'x' is missing.").describe() == "✗ 'x' is missing."


def test_split_levels():
    checks = [
        Check("s", "a", "ok", "fine"),
        Check("s", "b", "warning", "w1"),
        Check("s", "c", "error", "e1"),
        Check("s", "d", "warning", "w2"),
    ]
    assert split_levels(checks) == (["e1"], ["w1", "w2"])


# --- against the reference -------------------------------------------------------------

_REFERENCE_VALIDATE = """
from packflow.loaders import PackflowConfig
from packflow.project import PackflowProject
result = []
for directory in payload:
    config = PackflowConfig.from_project_path(directory)
    result.append(PackflowProject(directory).validate_required_files(config=config))
"""

# Words that say what a message is about, in the reference's messages and in ours.
_SUBJECTS = [
    "MODEL_CARD.md",
    "LICENSE.txt",
    "README.md",
    "description",
    "maintainers",
    "not-installed-pf-test-pkg",
    "pyyaml",
]


def subject(message: str) -> str:
    if "python_version" in message or "Python" in message:
        return "python_version"
    return next(s for s in _SUBJECTS if s in message)


def reference_cases(tmp_path):
    cases = {
        "complete": {},
        "empty_metadata": {"description": "", "maintainers": []},
        "old_python": {"python_version": "3.8.10"},
        "no_docs": {"docs": {}},
        "empty_docs": {"docs": {n: "" for n in DOCS}},
        "legacy_templates": {
            "docs": {
                **DOCS,
                "README.md": "# Project Name\nBrief description of the analytic.\n",
                "MODEL_CARD.md": "# Model Card\n{introduction}\n",
            }
        },
        "requirements": {"requirements": "packflow\npyyaml==0.0.1\nnot-installed-pf-test-pkg\n"},
        "no_packflow_requirement": {"requirements": "pyyaml\n"},
        "missing_backend": {"backend": None},
        "backend_raises": {"backend": "raise RuntimeError('boom')\n"},
        "not_a_backend": {"backend": "class Backend:\n    pass\n"},
    }
    directories = []
    for name, kwargs in cases.items():
        directories.append(str(write_project(tmp_path / name, name="sample", **kwargs)))
    return directories


def _reference_python_minor() -> str:
    out = subprocess.run(
        [os.environ["PACKFLOW_REFERENCE_PYTHON"], "-c", "import sys; print(*sys.version_info[:2])"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return out.stdout.strip().replace(" ", ".")


def test_validation_agrees_with_the_reference(tmp_path):
    directories = reference_cases(tmp_path)
    theirs = run_reference_script(_REFERENCE_VALIDATE, directories)
    # The projects name our Python; a reference running on another one (make
    # test-matrix) warns about python_version where we rightly do not.
    other_python = _reference_python_minor() != "{}.{}".format(*sys.version_info[:2])
    for directory, (ref_errors, ref_warnings) in zip(directories, theirs):
        errors, warnings = validate(directory)
        if other_python:
            ref_warnings = [w for w in ref_warnings if subject(w) != "python_version"]
            warnings = [w for w in warnings if subject(w) != "python_version"]
        # The reference may report one load failure twice (two smoke loads); we report it once.
        assert bool(errors) == bool(ref_errors), (directory, errors, ref_errors)
        assert sorted(map(subject, warnings)) == sorted(map(subject, ref_warnings)), (
            directory,
            warnings,
            ref_warnings,
        )


def test_dotted_backend_module_is_checked_at_its_real_path_unlike_the_reference(tmp_path):
    # Packflow 0.4 looks for 'models.scorer.py' although its LocalLoader loads
    # models/scorer.py: it refuses a project that loads. We check the loaded file.
    directory = write_project(
        tmp_path / "p", backend_file="models/scorer.py", inference_backend="models.scorer:Backend"
    )
    ((ref_errors, _),) = run_reference_script(_REFERENCE_VALIDATE, [str(directory)])
    assert ref_errors and "'models.scorer.py' is missing" in ref_errors[0]
    assert validate(directory) == ([], [])


def test_config_checks_alone_or_with_the_project(tmp_path):
    running = f"{sys.version_info.major}.{sys.version_info.minor}.0"
    config = PackflowConfig(name="x", version="", python_version=running)
    errors, warnings = split_levels(list(config_checks(config, None)))
    assert errors == ["'version' is required for export but is empty."]
    assert [w.split("'")[1] for w in warnings][:2] == ["description", "maintainers"]

    write_project(tmp_path, backend=None)
    errors, _ = split_levels(
        list(config_checks(PackflowConfig.from_project_path(tmp_path), tmp_path))
    )
    assert errors[0].startswith("Inference backend file 'inference.py' is missing.")


def test_checks_and_export_leave_the_environment_as_they_found_it(tmp_path, monkeypatch):
    monkeypatch.delenv("PF_CHECK_ONLY", raising=False)
    directory = write_project(tmp_path / "p", env={"PF_CHECK_ONLY": "1", "PATH": "./bin"})
    before = dict(os.environ)
    assert validate(directory) == ([], [])
    PackflowProject(directory).export(tmp_path / "dist")
    assert dict(os.environ) == before
