"""PackflowProject: create from the template, load_config, validate, export; and the whole
path create -> validate -> export -> inspect -> load back from the archive."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

import packflow
from packflow import InferenceBackend, __version__
from packflow.exceptions import PackflowConfigError
from packflow.loaders import InferenceBackendLoader
from packflow.loaders.archive import MANIFEST_NAME, inspect_archive
from packflow.project import PackflowProject
from tests.support.sample_projects import (
    PASSTHROUGH,
    isolated_import_state,
    make_passthrough,
    write_project,
)

TEMPLATE_FILES = [
    ".gitignore",
    "LICENSE.txt",
    "MODEL_CARD.md",
    "README.md",
    "inference.py",
    "packflow.yaml",
    "requirements.txt",
    "tests.py",
]


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with isolated_import_state(tmp_path_factory.getbasetemp()):
        yield


def test_packflow_exposes_the_project_class_lazily():
    assert packflow.PackflowProject is PackflowProject
    with pytest.raises(AttributeError):
        packflow.NotAThing  # noqa: B018


# --- create ----------------------------------------------------------------------------


def test_create_writes_the_template(tmp_path):
    project = PackflowProject.create("demo-proj")
    assert project.base_dir == tmp_path / "demo-proj"
    assert repr(project) == f"PackflowProject @ {tmp_path / 'demo-proj'}"
    assert project.has_packflow_config
    assert sorted(p.name for p in project.base_dir.iterdir()) == TEMPLATE_FILES
    assert stat.S_IMODE(project.base_dir.stat().st_mode) == 0o755
    for path in project.base_dir.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert (project.base_dir / "requirements.txt").read_text() == f"packflow=={__version__}\n"
    assert (project.base_dir / "README.md").read_text().startswith("# demo-proj\n")
    config = yaml.safe_load((project.base_dir / "packflow.yaml").read_text())
    assert config["name"] == "demo-proj"
    assert config["version"] == "0.1.0"
    assert config["inference_backend"] == "inference:Backend"
    assert config["loader"] == "local"


def test_create_with_config_data():
    project = PackflowProject.create(
        "demo",
        config_data={
            "version": "2.0.0",
            "description": "d",
            "maintainers": ["a@b.c"],
            "env": {"A": "1"},
        },
    )
    config = project.load_config()
    assert (config.version, config.description, config.maintainers) == ("2.0.0", "d", ["a@b.c"])
    assert os.environ["A"] == "1"


def test_create_selected_optional_files():
    project = PackflowProject.create("demo", optional_files=["README.md"])
    names = sorted(p.name for p in project.base_dir.iterdir())
    assert names == ["README.md", "inference.py", "packflow.yaml", "requirements.txt"]


def test_create_refuses_unknown_optional_files_and_templates(tmp_path):
    with pytest.raises(ValueError, match="Unknown optional file"):
        PackflowProject.create("demo", optional_files=["SECRETS.md"])
    with pytest.raises(ValueError, match="Unknown project template"):
        PackflowProject.create("demo", template="fancy")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["1abc", "a b", "../escape", "a/b", ""])
def test_create_refuses_invalid_names(tmp_path, name):
    with pytest.raises(ValidationError):
        PackflowProject.create(name)
    assert list(tmp_path.iterdir()) == []


def test_create_refuses_an_existing_directory_without_force(tmp_path):
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "mine.txt").write_text("keep")
    with pytest.raises(FileExistsError, match=r"^\[Errno 17\] File exists: ") as raised:
        PackflowProject.create("demo")
    assert "packflow create --force" in raised.value.__notes__[0]
    project = PackflowProject.create("demo", force=True)
    assert (project.base_dir / "mine.txt").read_text() == "keep"
    assert (project.base_dir / "inference.py").is_file()


def test_create_refuses_a_file_in_the_way(tmp_path):
    (tmp_path / "demo").write_text("file")
    with pytest.raises(FileExistsError, match="not a directory"):
        PackflowProject.create("demo", force=True)


def test_failed_create_removes_the_directory_it_made(tmp_path, monkeypatch):
    from packflow.loaders.packflow_yaml import PackflowConfig

    def broken(self, base_dir):
        raise OSError("disk full")

    monkeypatch.setattr(PackflowConfig, "write_requirements", broken)
    with pytest.raises(OSError, match="disk full"):
        PackflowProject.create("demo")
    assert not (tmp_path / "demo").exists()

    (tmp_path / "kept").mkdir()
    with pytest.raises(OSError, match="disk full"):
        PackflowProject.create("kept", force=True)
    assert (tmp_path / "kept").is_dir()  # existed before: not removed


def test_load_config_errors():
    with pytest.raises(FileNotFoundError, match="Not a packflow project"):
        PackflowProject(".").load_config()
    Path("packflow.yaml").write_text("name: ok\nloader: nope\n")
    with pytest.raises(PackflowConfigError, match="line 2, field 'loader'"):
        PackflowProject(".").load_config()


# --- export ----------------------------------------------------------------------------


def test_export_writes_a_verified_archive(tmp_path):
    project_dir = write_project(tmp_path / "p", name="my-model", version="1.2.0")
    (project_dir / ".gitignore").write_text("*.log\n")
    (project_dir / "debug.log").write_text("noise")
    (project_dir / "__pycache__").mkdir()
    (project_dir / "__pycache__" / "x.pyc").write_bytes(b"\0")
    project = PackflowProject(project_dir)
    archive = project.export(tmp_path / "dist")
    assert archive == tmp_path / "dist" / "my_model-1.2.0.zip"
    with zipfile.ZipFile(archive) as zf:
        names = zf.namelist()
    assert names == [
        ".gitignore",
        "LICENSE.txt",
        "MODEL_CARD.md",
        "README.md",
        "inference.py",
        "packflow.yaml",
        "requirements.txt",
        MANIFEST_NAME,
    ]
    assert project.export_warnings == []
    assert [f["path"] for f in project.export_manifest["files"]] == names[:-1]
    report = inspect_archive(archive)
    assert report.ok and report.warnings == []


def test_export_defaults_to_the_working_directory(tmp_path):
    write_project(tmp_path / "p")
    os.chdir(tmp_path / "p")
    archive = PackflowProject(".").export()
    assert archive == tmp_path / "p" / "sample-0.1.0.zip"
    # Exporting again inside the project leaves the previous archive out.
    again = PackflowProject(".").export()
    with zipfile.ZipFile(again) as zf:
        assert not any(n.endswith(".zip") for n in zf.namelist())


def test_two_exports_are_byte_identical(tmp_path):
    project_dir = write_project(tmp_path / "p")
    first = PackflowProject(project_dir).export(tmp_path / "one").read_bytes()
    for path in project_dir.rglob("*"):
        os.utime(path, (1_600_000_000, 1_600_000_000))
    (project_dir / "__pycache__").mkdir(exist_ok=True)
    second = PackflowProject(project_dir).export(tmp_path / "two").read_bytes()
    assert first == second


def test_export_records_warnings(tmp_path):
    project_dir = write_project(tmp_path / "p", description="")
    os.symlink("/etc/hostname", project_dir / "host")
    project = PackflowProject(project_dir)
    project.export(tmp_path)
    assert project.export_warnings[0].startswith("'description' is empty")
    assert "Skipped 'host': it is a symlink to" in project.export_warnings[1]


def test_export_is_blocked_by_validation_errors(tmp_path):
    project_dir = write_project(tmp_path / "p", backend="raise ImportError('torch')\n")
    with pytest.raises(
        ValueError, match="Export blocked due to validation errors:\n  - 'inference_backend'"
    ):
        PackflowProject(project_dir).export(tmp_path / "dist")
    assert not (tmp_path / "dist").exists()


def test_export_is_blocked_when_gitignore_hides_a_needed_file(tmp_path):
    project_dir = write_project(tmp_path / "p")
    (project_dir / ".gitignore").write_text("inference.py\n")
    with pytest.raises(ValueError, match="'inference.py' would be left out of the archive"):
        PackflowProject(project_dir).export(tmp_path)


def test_export_without_packflow_yaml(tmp_path):
    with pytest.raises(FileNotFoundError, match="Not a packflow project"):
        PackflowProject(tmp_path).export()


def test_export_keeps_its_checks_and_verbose_logs_instead_of_printing(tmp_path, capsys, caplog):
    project_dir = write_project(tmp_path / "p")
    project = PackflowProject(project_dir)
    with caplog.at_level(logging.INFO, logger="packflow"):
        project.export(tmp_path, verbose=True)
    assert capsys.readouterr() == ("", "")
    assert {check.section for check in project.export_checks} >= {"Smoke load", "Required files"}
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name == "packflow.project")
    assert f"Exporting {project_dir}" in logged
    assert "Smoke load: ✓ inference_backend" in logged
    assert "Archive contents (6 files + packflow.lock): LICENSE.txt, MODEL_CARD.md" in logged


def test_a_blocked_export_keeps_its_checks(tmp_path):
    project_dir = write_project(tmp_path / "p", requirements="numpy\n")
    project = PackflowProject(project_dir)
    with pytest.raises(ValueError, match="Export blocked"):
        project.export(tmp_path)
    assert [c.subject for c in project.export_checks if c.level == "error"] == ["packflow"]


def test_export_files_lists_what_export_takes(tmp_path):
    project_dir = write_project(tmp_path / "p")
    assert "inference.py" in PackflowProject(project_dir).export_files()


# --- the whole path --------------------------------------------------------------------


def test_create_validate_export_inspect_and_load_from_the_archive(tmp_path):
    project = PackflowProject.create(
        "round-trip",
        config_data={
            "description": "Round trip",
            "maintainers": ["a@b.c"],
            "backend_config": dict(PASSTHROUGH),
        },
    )
    errors, warnings = project.validate_required_files()
    assert errors == []
    assert sorted(w.split("'")[1] for w in warnings) == [
        "LICENSE.txt",
        "MODEL_CARD.md",
        "README.md",
    ]

    archive = project.export(tmp_path / "dist")
    assert archive.name == "round_trip-0.1.0.zip"
    report = inspect_archive(archive)
    assert report.ok
    assert [f.path for f in report.files] == TEMPLATE_FILES

    backend = InferenceBackendLoader.from_archive(archive)
    assert isinstance(backend, InferenceBackend)
    assert type(backend).__name__ == "Backend"
    assert type(backend).backend_config_model.__name__ == "Config"


def test_the_default_template_validates_and_its_tests_pass(tmp_path):
    project = PackflowProject.create(
        "plain", config_data={"description": "d", "maintainers": ["a@b.c"]}
    )
    errors, _ = project.validate_required_files()
    assert errors == []
    backend = InferenceBackendLoader.from_project(project.base_dir)
    assert backend([{"a": 1, "b": 2}]) == [{"field_count": 2}]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests.py"],
        cwd=project.base_dir,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_template_backend_loads(tmp_path):
    project = PackflowProject.create("plain")
    make_passthrough(project.base_dir)
    backend = InferenceBackendLoader.from_project(project.base_dir)
    assert type(backend).__name__ == "Backend"
    assert backend.model is None  # set by the template's initialize()


@pytest.mark.parametrize(
    ("statement", "absent"),
    [
        ("import packflow", {"yaml", "pathspec", "click", "packflow.project", "packflow.loaders"}),
        ("import packflow.loaders", {"pathspec", "click", "packflow.project"}),
        ("from packflow.cli import cli", {"yaml", "pathspec", "packflow.project"}),
    ],
)
def test_imports_stay_light(statement, absent):
    code = (
        f"{statement}\nimport sys\nprint(sorted(m for m in {sorted(absent)!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
