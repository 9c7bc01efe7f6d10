"""Project archives: writing them reproducibly, verifying them, extracting them safely.

An archive holds the project's files at relative paths plus ``packflow.lock``, a
JSON manifest listing every file with its size and SHA-256. Entries are sorted
and carry a fixed timestamp and mode, so the same files give the same bytes.
Reading refuses entries that would land outside the target directory.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import posixpath
import re
import shutil
import stat
import tempfile
import weakref
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from packflow import constants
from packflow._version import __version__
from packflow.exceptions import PackflowArchiveError

MANIFEST_NAME = constants.ARCHIVE_MANIFEST_NAME
MANIFEST_FORMAT = "packflow-archive-manifest"
MANIFEST_FORMAT_VERSION = 1
# The earliest time a zip header can hold; used for every entry.
FIXED_TIMESTAMP = (1980, 1, 1, 0, 0, 0)
_CHUNK = 1 << 20
_UNIX = 3


@dataclass(frozen=True)
class ManifestEntry:
    """One file of an archive: its relative path, size in bytes and SHA-256 (hex)."""

    path: str
    size: int
    sha256: str

    def as_dict(self) -> dict:
        return {"path": self.path, "sha256": self.sha256, "size": self.size}


@dataclass
class ArchiveReport:
    """What :func:`inspect_archive` found. ``problems`` make the archive unusable;
    ``warnings`` do not (an archive without a manifest cannot be verified)."""

    path: Path
    manifest: dict | None
    files: list[ManifestEntry] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


# --- writing ---------------------------------------------------------------------------


def write_archive(
    destination: Union[str, Path],
    files: Iterable[tuple[str, Path]],
    name: str,
    version: str,
) -> dict:
    """Write ``files`` (``(archive path, source file)`` pairs) and the manifest to
    ``destination``; return the manifest.

    The archive is written next to ``destination`` under a temporary name and
    moved into place at the end, so a failed export leaves no partial file.
    """
    destination = Path(destination)
    entries: list[ManifestEntry] = []
    fd, tmp_name = tempfile.mkstemp(
        prefix=".packflow-export-", suffix=".zip.part", dir=destination.parent
    )
    try:
        with os.fdopen(fd, "wb") as raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as zf:
            for arcname, source in sorted(files, key=lambda pair: pair[0]):
                entries.append(_write_file(zf, arcname, Path(source)))
            manifest = {
                "format": MANIFEST_FORMAT,
                "format_version": MANIFEST_FORMAT_VERSION,
                "name": name,
                "version": version,
                "packflow_version": __version__,
                "files": [entry.as_dict() for entry in entries],
            }
            text = json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
            zf.writestr(_zip_info(MANIFEST_NAME, executable=False), text.encode("utf-8"))
        os.replace(tmp_name, destination)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return manifest


def _zip_info(arcname: str, executable: bool) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(arcname, date_time=FIXED_TIMESTAMP)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = _UNIX
    info.external_attr = (stat.S_IFREG | (0o755 if executable else 0o644)) << 16
    return info


def _write_file(zf: zipfile.ZipFile, arcname: str, source: Path) -> ManifestEntry:
    st = source.stat()
    info = _zip_info(arcname, executable=bool(st.st_mode & 0o111))
    info.file_size = st.st_size
    digest = hashlib.sha256()
    size = 0
    with (
        source.open("rb") as src,
        zf.open(info, "w", force_zip64=st.st_size > zipfile.ZIP64_LIMIT) as dst,
    ):
        while chunk := src.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            dst.write(chunk)
    return ManifestEntry(arcname, size, digest.hexdigest())


def sha256_file(path: Union[str, Path]) -> str:
    """SHA-256 (hex) of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# --- checking entries ------------------------------------------------------------------

_DRIVE = re.compile(r"^[A-Za-z]:")


def unsafe_entry_reason(info: zipfile.ZipInfo) -> str | None:
    """Why extracting this entry could write outside the target, or ``None`` if it can't."""
    name = info.filename
    if not name.strip("/"):
        return "has an empty name"
    if "\\" in name:
        return "contains '\\' (zip entry paths use '/'; it could be read as a directory separator)"
    if name.startswith("/") or _DRIVE.match(name):
        return "is an absolute path"
    if ".." in name.split("/"):
        return "contains '..' and would escape the target directory"
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        return "is a symbolic link"
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
        return "is not a regular file or directory"
    if info.flag_bits & 0x1:
        return "is encrypted"
    return None


def _normalized(name: str) -> str:
    return posixpath.normpath(name.rstrip("/"))


def _open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"Archive {path} does not exist") from None
    except IsADirectoryError:
        raise PackflowArchiveError(f"{path} is a directory, not a zip archive") from None
    except zipfile.BadZipFile as exc:
        raise PackflowArchiveError(f"{path} is not a valid zip archive ({exc})") from None


def _entry_problems(zf: zipfile.ZipFile) -> list[str]:
    problems = []
    seen: set[str] = set()
    for info in zf.infolist():
        reason = unsafe_entry_reason(info)
        if reason:
            problems.append(f"entry {info.filename!r} {reason}")
            continue
        key = _normalized(info.filename)
        if key in seen:
            problems.append(f"entry {info.filename!r} appears more than once")
        seen.add(key)
    return problems


# --- inspecting ------------------------------------------------------------------------


def inspect_archive(archive_path: Union[str, Path]) -> ArchiveReport:
    """Check every entry of an archive and compare its contents with ``packflow.lock``.

    Raises only when the file is missing or not a zip; everything else ends up in
    the report's ``problems`` (refuse the archive) or ``warnings``.
    """
    path = Path(archive_path)
    with _open_zip(path) as zf:
        return _inspect(zf, path)


def _inspect(zf: zipfile.ZipFile, path: Path) -> ArchiveReport:
    report = ArchiveReport(path=path, manifest=None, problems=_entry_problems(zf))
    if report.problems:
        return report
    actual = {}
    for info in zf.infolist():
        if info.is_dir() or info.filename == MANIFEST_NAME:
            continue
        try:
            actual[info.filename] = _hash_member(zf, info)
        except (zipfile.BadZipFile, OSError, RuntimeError, EOFError) as exc:
            report.problems.append(f"entry {info.filename!r} cannot be read ({exc})")
    report.files = sorted(actual.values(), key=lambda entry: entry.path)
    _compare_with_manifest(zf, report, actual)
    return report


def _hash_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> ManifestEntry:
    digest = hashlib.sha256()
    size = 0
    with zf.open(info) as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return ManifestEntry(info.filename, size, digest.hexdigest())


def _compare_with_manifest(zf: zipfile.ZipFile, report: ArchiveReport, actual: dict) -> None:
    if MANIFEST_NAME not in zf.namelist():
        report.warnings.append(
            f"the archive has no {MANIFEST_NAME} manifest (made by Packflow 0.4 or another "
            "tool?): its contents cannot be verified"
        )
        return
    try:
        manifest = json.loads(zf.read(MANIFEST_NAME).decode("utf-8"))
        listed = {
            item["path"]: ManifestEntry(item["path"], int(item["size"]), str(item["sha256"]))
            for item in manifest["files"]
        }
    except (ValueError, KeyError, TypeError) as exc:
        report.problems.append(
            f"{MANIFEST_NAME} is not a valid manifest ({type(exc).__name__}: {exc})"
        )
        return
    report.manifest = manifest
    for path_, expected in sorted(listed.items()):
        found = actual.get(path_)
        if found is None:
            report.problems.append(
                f"{path_!r} is listed in {MANIFEST_NAME} but missing from the archive"
            )
        elif found.size != expected.size:
            report.problems.append(
                f"{path_!r} has {found.size} bytes, {MANIFEST_NAME} says {expected.size}"
            )
        elif found.sha256 != expected.sha256.lower():
            report.problems.append(
                f"{path_!r} does not match its SHA-256 in {MANIFEST_NAME} "
                f"(expected {expected.sha256}, got {found.sha256})"
            )
    for path_ in sorted(set(actual) - set(listed)):
        report.problems.append(f"{path_!r} is in the archive but not listed in {MANIFEST_NAME}")


# --- extracting ------------------------------------------------------------------------


def extract_archive(archive_path: Union[str, Path], target_dir: Union[str, Path]) -> ArchiveReport:
    """Verify an archive, then extract it into ``target_dir`` (absent or empty).

    Nothing is written when an entry is unsafe or the contents do not match the
    manifest: :class:`~packflow.exceptions.PackflowArchiveError` lists every problem.
    """
    path = Path(archive_path)
    target = Path(target_dir)
    # One open archive for checking and extracting: what was checked is what is written.
    with _open_zip(path) as zf:
        report = _inspect(zf, path)
        if report.problems:
            raise PackflowArchiveError(
                f"Refusing to extract {path}:\n" + "\n".join(f"  - {p}" for p in report.problems)
            )
        if target.exists() and (not target.is_dir() or any(target.iterdir())):
            raise PackflowArchiveError(
                f"Cannot extract into {target}: it must be an empty directory"
            )
        target.mkdir(parents=True, exist_ok=True)
        root = Path(os.path.realpath(target))
        for info in zf.infolist():
            _extract_member(zf, info, root)
    return report


def _extract_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, root: Path) -> None:
    parts = [p for p in _normalized(info.filename).split("/") if p not in ("", ".")]
    if not parts:
        return
    destination = root.joinpath(*parts)
    if info.is_dir():
        destination.mkdir(parents=True, exist_ok=True)
        return
    destination.parent.mkdir(parents=True, exist_ok=True)
    # Belt and braces: the resolved parent must still be inside the target.
    if not Path(os.path.realpath(destination.parent)).is_relative_to(root):
        raise PackflowArchiveError(f"entry {info.filename!r} would be written outside {root}")
    executable = bool((info.external_attr >> 16) & 0o111)
    with zf.open(info) as src, open(destination, "xb") as dst:
        shutil.copyfileobj(src, dst, _CHUNK)
    os.chmod(destination, 0o755 if executable else 0o644)


def _project_root(extracted: Path) -> Path:
    """The directory holding packflow.yaml: the root, or a single top-level folder."""
    if (extracted / constants.PACKAGING_CONFIG_NAME).is_file():
        return extracted
    children = [p for p in extracted.iterdir() if p.name != MANIFEST_NAME]
    if len(children) == 1 and (children[0] / constants.PACKAGING_CONFIG_NAME).is_file():
        return children[0]
    raise FileNotFoundError(
        f"The archive has no {constants.PACKAGING_CONFIG_NAME} at its root: "
        "it is not an exported packflow project"
    )


def load_from_archive(
    loader_cls: Any,
    archive_path: Union[str, Path],
    extract_dir: Union[str, Path, None],
    backend_kwargs: dict,
) -> Any:
    """Implementation of :meth:`InferenceBackendLoader.from_archive`."""
    temporary = extract_dir is None
    target = Path(tempfile.mkdtemp(prefix="packflow-archive-")) if temporary else Path(extract_dir)
    try:
        extract_archive(archive_path, target)
        backend = loader_cls.from_project(_project_root(target), **backend_kwargs)
    except BaseException:
        if temporary:
            shutil.rmtree(target, ignore_errors=True)
        raise
    if temporary:
        try:
            weakref.finalize(backend, shutil.rmtree, str(target), True)
        except TypeError:  # not weak-referenceable (__slots__ without __weakref__)
            atexit.register(shutil.rmtree, str(target), True)
    return backend
