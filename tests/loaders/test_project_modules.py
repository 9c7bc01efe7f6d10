"""Two projects in one process: each imports its own modules, or loading is refused
loudly; an archive's env and sys.path entry do not outlive it (issue 13, item 12)."""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path

import pytest

from packflow.exceptions import InferenceBackendLoadError
from packflow.loaders import InferenceBackendLoader
from packflow.loaders.project_modules import provided_names
from packflow.project import PackflowProject
from tests.support.sample_projects import write_project

BACKEND = """\
import helpers
from packflow import InferenceBackend


class Backend(InferenceBackend):
    def execute(self, inputs):
        import helpers as late  # imported when called, not when loaded
        return [{"loaded": helpers.WHO, "late": late.WHO} for _ in inputs]
"""


def project(tmp_path: Path, label: str, helper: str) -> Path:
    directory = write_project(tmp_path / label, backend=BACKEND, name=label)
    (directory / "helpers.py").write_text(f"WHO = {helper!r}\n")
    return directory


def archive(tmp_path: Path, label: str, helper: str) -> Path:
    return PackflowProject(project(tmp_path, label, helper)).export(tmp_path / "dist")


def answer(backend) -> dict:
    return backend({"x": 1})


def test_two_archives_with_their_own_helpers_are_refused_while_both_in_use(tmp_path):
    first_zip, second_zip = archive(tmp_path, "first", "first"), archive(tmp_path, "second", "2")
    first = InferenceBackendLoader.from_archive(first_zip)
    with pytest.raises(InferenceBackendLoadError) as info:
        InferenceBackendLoader.from_archive(second_zip)
    message = str(info.value)
    assert "'helpers'" in message and "one module per name per process" in message
    assert answer(first) == {"loaded": "first", "late": "first"}

    # Once the first is released, the second imports its own helpers.
    first_dir = Path(sys.modules["helpers"].__file__).parent
    del first
    gc.collect()
    assert not first_dir.exists()
    assert str(first_dir) not in sys.path
    assert "helpers" not in sys.modules
    second = InferenceBackendLoader.from_archive(second_zip)
    assert answer(second) == {"loaded": "2", "late": "2"}


def test_archives_with_identical_helpers_each_import_their_own(tmp_path):
    one_zip, two_zip = archive(tmp_path, "one", "same"), archive(tmp_path, "two", "same")
    one = InferenceBackendLoader.from_archive(one_zip)
    one_helpers = sys.modules["helpers"]
    two = InferenceBackendLoader.from_archive(two_zip)
    assert sys.modules["helpers"] is not one_helpers
    assert answer(one) == answer(two) == {"loaded": "same", "late": "same"}


def test_two_project_directories_follow_the_same_rule(tmp_path):
    first = InferenceBackendLoader.from_project(project(tmp_path, "first", "first"))
    second_dir = project(tmp_path, "second", "second")
    with pytest.raises(InferenceBackendLoadError, match="'helpers'"):
        InferenceBackendLoader.from_project(second_dir)
    del first
    gc.collect()
    second = InferenceBackendLoader.from_project(second_dir)
    assert answer(second) == {"loaded": "second", "late": "second"}
    assert str(tmp_path / "first") not in sys.path  # it would answer the second's imports


def test_the_same_project_can_be_loaded_twice(tmp_path):
    directory = project(tmp_path, "again", "again")
    one = InferenceBackendLoader.from_project(directory)
    two = InferenceBackendLoader.from_project(directory)
    assert answer(one) == answer(two) == {"loaded": "again", "late": "again"}


def test_the_backend_module_itself_is_not_a_clash(tmp_path):
    # Every template project has inference.py; the local loader runs it afresh.
    one = InferenceBackendLoader.from_project(write_project(tmp_path / "one"))
    two = InferenceBackendLoader.from_project(write_project(tmp_path / "two"))
    assert type(one) is not type(two)


def test_a_failed_archive_load_leaves_no_module_or_path_behind(tmp_path):
    directory = project(tmp_path, "broken", "broken")
    (directory / "inference.py").write_text("import helpers\nraise RuntimeError('no weights')\n")
    files = [(p.name, p) for p in directory.iterdir()]
    from packflow.loaders.archive import write_archive

    write_archive(tmp_path / "broken.zip", files, "broken", "0.1.0")
    before = list(sys.path)
    with pytest.raises(InferenceBackendLoadError, match="no weights"):
        InferenceBackendLoader.from_archive(tmp_path / "broken.zip")
    assert "helpers" not in sys.modules
    # Nothing added (a load may drop the directories of earlier projects that are
    # no longer in use, so the list can be shorter, in the same order).
    assert [entry for entry in before if entry in sys.path] == sys.path


ENV_BACKEND = """\
import os
from packflow import InferenceBackend


class Backend(InferenceBackend):
    def initialize(self):
        self.seen = {k: os.environ.get(k) for k in ("PATH", "PF_ARCHIVE_ONLY")}

    def execute(self, inputs):
        return inputs
"""


def test_an_archive_env_applies_while_loading_only(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.delenv("PF_ARCHIVE_ONLY", raising=False)
    directory = write_project(
        tmp_path / "envy",
        backend=ENV_BACKEND,
        env={"PATH": "./bin", "PF_ARCHIVE_ONLY": "1"},
    )
    backend = InferenceBackendLoader.from_archive(PackflowProject(directory).export(tmp_path))
    assert backend.seen == {"PATH": "./bin", "PF_ARCHIVE_ONLY": "1"}
    assert os.environ["PATH"] == "/usr/bin:/bin"
    assert "PF_ARCHIVE_ONLY" not in os.environ


def test_provided_names(tmp_path):
    for name in ("helpers.py", "inference.py", "fast.cpython-311-x86_64-linux-gnu.so", "x.txt"):
        (tmp_path / name).write_text("")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "not-a-name").mkdir()
    assert provided_names(tmp_path) == {"helpers", "inference", "fast", "pkg"}
