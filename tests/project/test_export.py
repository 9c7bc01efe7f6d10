"""Which files an export takes: default excludes, .gitignore rules, symlinks, old archives."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from packflow.project.export import collect_export_files


def touch(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(name)


def selected(root: Path, stem: str = "demo", output: Path | None = None) -> list[str]:
    return collect_export_files(root, stem, output).paths


def test_default_excludes(tmp_path):
    touch(
        tmp_path,
        "inference.py",
        "pkg/mod.py",
        ".git/config",
        ".hg/store",
        ".svn/entries",
        "__pycache__/inference.cpython-311.pyc",
        "pkg/__pycache__/mod.cpython-311.pyc",
        ".venv/bin/python",
        "venv/lib/x.py",
        ".tox/py/x",
        ".mypy_cache/x",
        ".pytest_cache/v",
        ".ruff_cache/x",
        ".hypothesis/examples/x",
        "node_modules/left-pad/index.js",
        ".idea/workspace.xml",
        ".vscode/settings.json",
        "mypkg.egg-info/PKG-INFO",
        "stale.pyc",
        "stale.pyo",
        ".DS_Store",
    )
    assert selected(tmp_path) == ["inference.py", "pkg/mod.py"]


def test_virtualenv_under_any_name_is_excluded(tmp_path):
    touch(tmp_path, "inference.py", "myenv/pyvenv.cfg", "myenv/lib/site.py")
    assert selected(tmp_path) == ["inference.py"]


def test_gitignore_rules(tmp_path):
    touch(
        tmp_path,
        "inference.py",
        "notes.log",
        "keep.log",
        "build/out.bin",
        "data/raw/big.csv",
        "data/small.csv",
        "secrets.env",
    )
    (tmp_path / ".gitignore").write_text(
        "# comment\n*.log\n!keep.log\nbuild/\ndata/raw/\n/secrets.env\n"
    )
    assert selected(tmp_path) == [".gitignore", "data/small.csv", "inference.py", "keep.log"]


def test_nested_gitignore_applies_below_its_folder_and_can_re_include(tmp_path):
    touch(
        tmp_path, "inference.py", "a.tmp", "sub/b.tmp", "sub/c.txt", "sub/keep.tmp", "other/d.txt"
    )
    (tmp_path / ".gitignore").write_text("*.tmp\n")
    (tmp_path / "sub" / ".gitignore").write_text("c.txt\n!keep.tmp\n")
    assert selected(tmp_path) == [
        ".gitignore",
        "inference.py",
        "other/d.txt",
        "sub/.gitignore",
        "sub/keep.tmp",
    ]


def test_ignored_folder_cannot_be_re_included_below(tmp_path):
    touch(tmp_path, "inference.py", "cache/x.txt")
    (tmp_path / ".gitignore").write_text("cache/\n!cache/x.txt\n")
    assert selected(tmp_path) == [".gitignore", "inference.py"]


def test_old_archives_and_the_output_are_left_out(tmp_path):
    touch(
        tmp_path,
        "inference.py",
        "demo-0.1.0.zip",
        "demo-0.2.0.zip",
        "data/demo-0.1.0.zip",
        "other.zip",
    )
    output = tmp_path / "out" / "demo-0.3.0.zip"
    touch(tmp_path, "out/demo-0.3.0.zip", "out/demo-0.2.0.zip", "out/readme.txt")
    # A zip named like an export deeper in the project may be the model's own
    # data: only a packflow manifest inside marks it as an archive there.
    assert selected(tmp_path, "demo", output) == [
        "data/demo-0.1.0.zip",
        "inference.py",
        "other.zip",
        "out/readme.txt",
    ]


def test_build_folders_at_the_root_are_left_out_deeper_ones_kept(tmp_path):
    touch(tmp_path, "inference.py", "dist/x.whl", "build/lib/a.py", "pkg/build/data.bin")
    assert selected(tmp_path) == ["inference.py", "pkg/build/data.bin"]


def test_a_packflow_archive_under_any_name_is_left_out_with_a_warning(tmp_path):
    touch(tmp_path, "inference.py", "weights.zip")
    with zipfile.ZipFile(tmp_path / "weights.zip", "w") as data:  # a data zip: kept
        data.writestr("w.bin", b"\0")
    (tmp_path / "models").mkdir()
    with zipfile.ZipFile(tmp_path / "models" / "renamed.zip", "w") as archive:
        archive.writestr("inference.py", "x")
        archive.writestr("packflow.lock", "{}")
    touch(tmp_path, "broken.zip")  # not a zip at all: kept, no crash
    selection = collect_export_files(tmp_path, "demo")
    assert selection.paths == ["broken.zip", "inference.py", "weights.zip"]
    assert selection.warnings == [
        "Skipped 'models/renamed.zip': it is a packflow archive (it holds packflow.lock); "
        "archives are not packed into archives."
    ]


def test_a_project_lock_file_is_replaced_with_a_warning(tmp_path):
    touch(tmp_path, "inference.py", "packflow.lock", "sub/packflow.lock")
    selection = collect_export_files(tmp_path, "demo")
    assert selection.paths == ["inference.py", "sub/packflow.lock"]
    assert selection.warnings == [
        "Skipped 'packflow.lock': the archive's own packflow.lock manifest takes its place."
    ]


def test_symlinks_never_leave_the_project(tmp_path):
    outside = tmp_path / "outside"
    touch(outside, "secret.txt", "dir/also-secret.txt")
    project = tmp_path / "project"
    touch(project, "inference.py", "weights/model.bin")
    os.symlink(outside / "secret.txt", project / "leak.txt")
    os.symlink(outside / "dir", project / "leakdir")
    os.symlink(project / "weights" / "model.bin", project / "current.bin")
    os.symlink(project / "missing", project / "dangling")
    selection = collect_export_files(project, "demo")
    assert selection.paths == ["current.bin", "inference.py", "weights/model.bin"]
    # The in-project link is stored as a regular file with the target's contents.
    assert dict(selection.files)["current.bin"] == (project / "weights" / "model.bin").resolve()
    assert sorted(selection.warnings) == sorted(
        [
            f"Skipped 'leak.txt': it is a symlink to {(outside / 'secret.txt').resolve()}, "
            "outside the project.",
            "Skipped 'leakdir': symlinked folders are not exported.",
            "Skipped 'dangling': it is a symlink to something that is not a file.",
        ]
    )


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_special_files_are_skipped(tmp_path):
    touch(tmp_path, "inference.py")
    os.mkfifo(tmp_path / "pipe")
    selection = collect_export_files(tmp_path, "demo")
    assert selection.paths == ["inference.py"]
    assert selection.warnings == ["Skipped 'pipe': not a regular file."]


def test_paths_are_relative_posix_and_sorted(tmp_path):
    touch(tmp_path, "z.py", "a/b/c.py", "A.py", "ünï/côde.py")
    paths = selected(tmp_path)
    assert paths == sorted(paths)
    assert all(not p.startswith("/") and ".." not in p.split("/") for p in paths)
    assert "ünï/côde.py" in paths
