"""`packflow export` as a user runs it from inside the project, more than once."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

PACKFLOW = [sys.executable, "-m", "packflow.cli"]


def packflow(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    done = subprocess.run(
        PACKFLOW + list(args), cwd=cwd, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.mark.parametrize("keep_gitignore", [True, False], ids=["with-gitignore", "without"])
def test_exporting_again_never_packs_the_earlier_archives(tmp_path, keep_gitignore):
    packflow("create", "my-model", "--no-input", cwd=tmp_path)
    project = tmp_path / "my-model"
    assert (project / ".gitignore").is_file()
    if not keep_gitignore:
        (project / ".gitignore").unlink()
    packflow("export", "-o", "dist", cwd=project)
    packflow("export", cwd=project)  # into the project folder itself
    packflow("export", "-o", "dist", cwd=project)  # and once more where the first went
    for archive in (project / "my_model-0.1.0.zip", project / "dist" / "my_model-0.1.0.zip"):
        names = zipfile.ZipFile(archive).namelist()
        assert not [n for n in names if n.endswith(".zip")], names
        assert not [n for n in names if n.startswith("dist/")], names
        assert "inference.py" in names and "packflow.lock" in names


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_the_archive_follows_the_umask_like_every_output(tmp_path, umask):
    packflow("create", "my-model", "--no-input", cwd=tmp_path)
    subprocess.run(
        [*PACKFLOW, "export", "-o", "dist"],
        cwd=tmp_path / "my-model",
        check=True,
        capture_output=True,
        timeout=120,
        preexec_fn=lambda: os.umask(umask),
    )
    archive = tmp_path / "my-model" / "dist" / "my_model-0.1.0.zip"
    assert stat.S_IMODE(archive.stat().st_mode) == 0o666 & ~umask
