"""Which files of a project go into its archive.

Left out: version-control, cache and virtualenv folders, the build folders at
the project root (``dist/``, ``build/``), compiled Python files, whatever the
project's ``.gitignore`` files ignore, earlier archives of the project (by name
where exports are written, and any zip holding a packflow manifest wherever it
lies), and symlinks that
leave the project (a symlink to a file inside it is stored as a regular file).
"""

from __future__ import annotations

import fnmatch
import os
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from packflow import constants

EXCLUDED_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        ".bzr",
        "__pycache__",
        ".venv",
        "venv",
        ".tox",
        ".nox",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".hypothesis",
        ".benchmarks",
        ".ipynb_checkpoints",
        ".eggs",
        ".idea",
        ".vscode",
        "node_modules",
    }
)
# Left out at the project root only: where builds and `packflow export -o dist` write.
# Deeper folders of these names may be the backend's own (a package's build/ data).
ROOT_BUILD_DIRS = frozenset({"dist", "build"})
# Matched against the name of every file and folder.
EXCLUDED_PATTERNS = ("*.pyc", "*.pyo", "*.egg-info", ".DS_Store", ".packflow-export-*")


@dataclass
class ExportSelection:
    """``files``: (archive path, source) pairs, sorted; ``warnings``: what was skipped and why."""

    files: list[tuple[str, Path]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def paths(self) -> list[str]:
        return [arcname for arcname, _ in self.files]


class _IgnoreRules:
    """The rules of every ``.gitignore`` met so far, outermost first.

    Git's rule: the last pattern that matches a path decides, and deeper files
    come after the ones above them.
    """

    def __init__(self) -> None:
        self._rules: list[tuple[str, object]] = []  # (directory prefix, pathspec pattern)

    def add_file(self, gitignore: Path, rel_dir: str) -> None:
        import pathspec

        lines = gitignore.read_text(encoding="utf-8", errors="replace").splitlines()
        prefix = f"{rel_dir}/" if rel_dir else ""
        for pattern in pathspec.GitIgnoreSpec.from_lines(lines).patterns:
            if pattern.include is not None:
                self._rules.append((prefix, pattern))

    def ignored(self, rel_path: str, is_dir: bool) -> bool:
        decision = False
        for prefix, pattern in self._rules:
            if not rel_path.startswith(prefix):
                continue
            candidate = rel_path[len(prefix) :] + ("/" if is_dir else "")
            if pattern.match_file(candidate):
                decision = bool(pattern.include)
        return decision


def _excluded_name(name: str) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in EXCLUDED_PATTERNS)


def collect_export_files(
    project_dir: Path, archive_stem: str, output_file: Path | None = None
) -> ExportSelection:
    """The files of ``project_dir`` to archive.

    ``archive_stem`` is the normalized project name: ``<stem>-*.zip`` at the
    project root or next to ``output_file`` are earlier exports and stay out, as
    do ``output_file`` itself and any zip holding a packflow manifest (with a
    warning: an ordinary data zip of the project is kept).
    """
    root = Path(os.path.realpath(project_dir))
    output = Path(os.path.realpath(output_file)) if output_file is not None else None
    output_dir = output.parent if output is not None else None
    selection = ExportSelection()
    rules = _IgnoreRules()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        rel_dir = here.relative_to(root).as_posix()
        rel_dir = "" if rel_dir == "." else rel_dir
        if ".gitignore" in filenames:
            rules.add_file(here / ".gitignore", rel_dir)

        kept_dirs = []
        for name in sorted(dirnames):
            rel = f"{rel_dir}/{name}" if rel_dir else name
            path = here / name
            if name in EXCLUDED_DIRS or _excluded_name(name) or rules.ignored(rel, is_dir=True):
                continue
            if not rel_dir and name in ROOT_BUILD_DIRS:
                continue
            if path.is_symlink():
                selection.warnings.append(f"Skipped '{rel}': symlinked folders are not exported.")
                continue
            if (path / "pyvenv.cfg").is_file():
                continue  # a virtualenv under another name
            kept_dirs.append(name)
        dirnames[:] = kept_dirs

        for name in sorted(filenames):
            rel = f"{rel_dir}/{name}" if rel_dir else name
            path = here / name
            if _excluded_name(name) or rules.ignored(rel, is_dir=False):
                continue
            if (not rel_dir or here == output_dir) and fnmatch.fnmatch(
                name, f"{archive_stem}-*.zip"
            ):
                continue  # an earlier export of this project, where exports are written
            if name.lower().endswith(".zip") and _is_packflow_archive(path):
                selection.warnings.append(
                    f"Skipped '{rel}': it is a packflow archive (it holds "
                    f"{constants.ARCHIVE_MANIFEST_NAME}); archives are not packed into archives."
                )
                continue
            if not rel_dir and name == constants.ARCHIVE_MANIFEST_NAME:
                selection.warnings.append(
                    f"Skipped '{rel}': the archive's own {name} manifest takes its place."
                )
                continue
            source = _regular_file(path, root, rel, selection.warnings)
            if source is None or (output is not None and source == output):
                continue
            selection.files.append((rel, source))
    selection.files.sort(key=lambda pair: pair[0])
    return selection


def _is_packflow_archive(path: Path) -> bool:
    """Whether ``path`` is a zip whose root holds packflow's manifest (only its
    central directory is read)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any(
                info.filename == constants.ARCHIVE_MANIFEST_NAME for info in archive.infolist()
            )
    except (OSError, zipfile.BadZipFile, ValueError):
        return False


def _regular_file(path: Path, root: Path, rel: str, warnings: list[str]) -> Path | None:
    """The file to read for ``path``: itself, or the in-project target of a symlink."""
    if path.is_symlink():
        target = Path(os.path.realpath(path))
        if not target.is_relative_to(root):
            warnings.append(f"Skipped '{rel}': it is a symlink to {target}, outside the project.")
            return None
        if not target.is_file():
            warnings.append(f"Skipped '{rel}': it is a symlink to something that is not a file.")
            return None
        return target
    try:
        mode = path.lstat().st_mode
    except OSError:
        return None
    if not stat.S_ISREG(mode):
        warnings.append(f"Skipped '{rel}': not a regular file.")
        return None
    return Path(os.path.realpath(path))
