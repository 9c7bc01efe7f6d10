"""Project archives: writing them reproducibly, verifying them, extracting them safely.

An archive holds the project's files at relative paths plus ``packflow.lock``, a
JSON manifest listing every file with its size and SHA-256. Entries are sorted
and carry a fixed timestamp and mode, so the same files give the same bytes.
Reading refuses entries that would land outside the target directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

from packflow import constants
from packflow._version import __version__
from packflow.exceptions import PackflowArchiveError
from packflow.files import output_mode

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
        os.fchmod(fd, output_mode())  # the archive's mode, not the temporary file's 0600
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


# --- limits ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ArchiveLimits:
    """What an archive may hold before it is refused, checked from its central
    directory before anything is read or written.

    The sizes are those the archive declares; reading stops at the first byte past
    an entry's declared size, so an archive cannot write more than it declares.
    """

    #: Sum of the declared uncompressed sizes of all entries.
    max_total_bytes: int = 2 << 30
    #: Entries, files and folders together.
    max_files: int = 10_000
    #: Declared size of ``packflow.lock``: it is read into memory.
    max_manifest_bytes: int = 16 << 20
    #: Uncompressed size / compressed size of one entry; entries of at most
    #: ``ratio_exempt_bytes`` are exempt (a small file of spaces compresses well).
    max_compression_ratio: float = 500.0
    ratio_exempt_bytes: int = 1 << 20


DEFAULT_LIMITS = ArchiveLimits()
_MAX_LISTED = 20  # compression problems listed one by one
#: Longest name of one path component, in bytes (what Linux and macOS allow).
MAX_NAME_BYTES = 255
#: Longest path, in bytes with its terminating NUL (Linux's PATH_MAX).
MAX_PATH_BYTES = 4096


def _limit_problems(zf: zipfile.ZipFile, limits: ArchiveLimits) -> list[str]:
    infos = zf.infolist()
    problems = []
    if len(infos) > limits.max_files:
        problems.append(
            f"the archive has {len(infos):,} entries, more than the limit of {limits.max_files:,}"
        )
    total = sum(info.file_size for info in infos)
    if total > limits.max_total_bytes:
        problems.append(
            f"the archive would extract to {total:,} bytes, more than the limit of "
            f"{limits.max_total_bytes:,}"
        )
    bombs = []
    for info in infos:
        if info.filename == MANIFEST_NAME and info.file_size > limits.max_manifest_bytes:
            problems.append(
                f"{MANIFEST_NAME} is {info.file_size:,} bytes, more than the limit of "
                f"{limits.max_manifest_bytes:,}"
            )
        if info.file_size > limits.ratio_exempt_bytes and (
            info.file_size > limits.max_compression_ratio * max(info.compress_size, 1)
        ):
            bombs.append(
                f"entry {info.filename!r} expands {info.compress_size:,} bytes to "
                f"{info.file_size:,} (more than {limits.max_compression_ratio:g} times): "
                "refusing what looks like a zip bomb"
            )
    if len(bombs) > _MAX_LISTED:
        bombs[_MAX_LISTED:] = [f"... and {len(bombs) - _MAX_LISTED:,} more such entries"]
    return problems + bombs


# --- checking entries ------------------------------------------------------------------

_DRIVE = re.compile(r"^[A-Za-z]:")


def unsafe_entry_reason(info: zipfile.ZipInfo) -> str | None:
    """Why extracting this entry could write outside the target, or could not be
    written at all; ``None`` if it can be."""
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
    long_part = next((p for p in name.split("/") if len(os.fsencode(p)) > MAX_NAME_BYTES), None)
    if long_part is not None:
        return (
            f"has a name part of {len(os.fsencode(long_part)):,} bytes "
            f"(file systems allow {MAX_NAME_BYTES})"
        )
    size = len(os.fsencode(name))
    if size >= MAX_PATH_BYTES:
        return f"is a path of {size:,} bytes (the limit is {MAX_PATH_BYTES - 1:,})"
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
    files: dict[str, str] = {}  # normalized path -> entry name, for files
    folders: dict[str, str] = {}  # normalized path -> an entry that needs that folder
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
        if info.is_dir():
            folders.setdefault(key, info.filename)
        else:
            files[key] = info.filename
        parent = posixpath.dirname(key)
        while parent:
            folders.setdefault(parent, info.filename)
            parent = posixpath.dirname(parent)
    for key in sorted(files.keys() & folders.keys()):
        if folders[key] != files[key]:
            problems.append(
                f"entry {files[key]!r} is a file, but {folders[key]!r} needs a folder of that name"
            )
    return problems


# --- inspecting ------------------------------------------------------------------------


def inspect_archive(
    archive_path: Union[str, Path], limits: ArchiveLimits | None = None
) -> ArchiveReport:
    """Check every entry of an archive and compare its contents with ``packflow.lock``.

    ``limits`` (default :data:`DEFAULT_LIMITS`) are checked first, from the central
    directory; an archive over them is not read further. Raises only when the
    file is missing or not a zip; everything else ends up in the report's
    ``problems`` (refuse the archive) or ``warnings``.
    """
    path = Path(archive_path)
    with _open_zip(path) as zf:
        return _inspect(zf, path, limits or DEFAULT_LIMITS)


def _inspect(zf: zipfile.ZipFile, path: Path, limits: ArchiveLimits) -> ArchiveReport:
    report = ArchiveReport(path=path, manifest=None, problems=_limit_problems(zf, limits))
    if report.problems:
        return report  # read nothing of an archive over the limits
    report.problems = _entry_problems(zf)
    if report.problems:
        return report
    actual = {}
    for info in zf.infolist():
        if info.is_dir() or info.filename == MANIFEST_NAME:
            continue
        try:
            actual[info.filename] = _hash_member(zf, info)
        except (zipfile.BadZipFile, OSError, RuntimeError, EOFError, PackflowArchiveError) as exc:
            report.problems.append(f"entry {info.filename!r} cannot be read ({exc})")
    report.files = sorted(actual.values(), key=lambda entry: entry.path)
    _compare_with_manifest(zf, report, actual)
    return report


def _member_chunks(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> Iterator[bytes]:
    """The bytes of an entry, refusing any byte past its declared size: the
    central directory's sizes are what the limits were checked against."""
    left = info.file_size
    with zf.open(info) as fh:
        while chunk := fh.read(min(_CHUNK, left + 1)):
            if len(chunk) > left:
                raise PackflowArchiveError(
                    f"entry {info.filename!r} holds more than the {info.file_size:,} bytes "
                    "its header declares"
                )
            left -= len(chunk)
            yield chunk


def _hash_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> ManifestEntry:
    digest = hashlib.sha256()
    size = 0
    for chunk in _member_chunks(zf, info):
        digest.update(chunk)
        size += len(chunk)
    return ManifestEntry(info.filename, size, digest.hexdigest())


def _read_manifest(zf: zipfile.ZipFile) -> tuple[dict, dict[str, ManifestEntry]]:
    """``(manifest, its files by path)``; ``ValueError`` (or ``KeyError``,
    ``TypeError``) when it is not a manifest."""
    info = zf.getinfo(MANIFEST_NAME)
    text = b"".join(_member_chunks(zf, info)).decode("utf-8")
    try:
        manifest = json.loads(text)
    except RecursionError:
        raise ValueError("it is nested too deeply to be a manifest") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), list):
        raise ValueError("it must be an object with a 'files' list")
    listed = {}
    for item in manifest["files"]:
        entry = ManifestEntry(str(item["path"]), int(item["size"]), str(item["sha256"]))
        listed[entry.path] = entry
    return manifest, listed


def _compare_with_manifest(zf: zipfile.ZipFile, report: ArchiveReport, actual: dict) -> None:
    if MANIFEST_NAME not in zf.namelist():
        report.warnings.append(
            f"the archive has no {MANIFEST_NAME} manifest (made by Packflow 0.4 or another "
            "tool?): its contents cannot be verified"
        )
        return
    try:
        manifest, listed = _read_manifest(zf)
    except (ValueError, KeyError, TypeError, zipfile.BadZipFile, PackflowArchiveError) as exc:
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


def extract_archive(
    archive_path: Union[str, Path],
    target_dir: Union[str, Path],
    limits: ArchiveLimits | None = None,
) -> ArchiveReport:
    """Verify an archive, then extract it into ``target_dir`` (absent or empty).

    Nothing is written when the archive is over ``limits`` (default
    :data:`DEFAULT_LIMITS`), an entry is unsafe or cannot be written (a file and a
    folder of the same name, a name or path too long), or the contents do not
    match the manifest: :class:`~packflow.exceptions.PackflowArchiveError` lists
    every problem. If writing fails midway all the same (a full disk), what was
    written is removed before the error propagates.
    """
    path = Path(archive_path)
    target = Path(target_dir)
    # One open archive for checking and extracting: what was checked is what is written.
    with _open_zip(path) as zf:
        report = _inspect(zf, path, limits or DEFAULT_LIMITS)
        if report.problems:
            raise PackflowArchiveError(
                f"Refusing to extract {path}:\n" + "\n".join(f"  - {p}" for p in report.problems)
            )
        if target.exists() and (not target.is_dir() or any(target.iterdir())):
            raise PackflowArchiveError(
                f"Cannot extract into {target}: it must be an empty directory"
            )
        too_long = _too_long_for(Path(os.path.realpath(target)), zf.infolist())
        if too_long:
            raise PackflowArchiveError(
                f"Refusing to extract {path} into {target}:\n"
                + "\n".join(f"  - {p}" for p in too_long)
            )
        created = not target.exists()
        target.mkdir(parents=True, exist_ok=True)
        root = Path(os.path.realpath(target))
        try:
            for info in zf.infolist():
                _extract_member(zf, info, root)
        except BaseException:
            _remove_extracted(root, created)
            raise
    return report


def _too_long_for(target: Path, infos: list[zipfile.ZipInfo]) -> list[str]:
    """Entries whose full path under ``target`` would be longer than the system allows."""
    probe = target
    while not probe.exists():
        probe = probe.parent
    try:
        path_max = os.pathconf(probe, "PC_PATH_MAX")
    except (AttributeError, OSError, ValueError):  # no pathconf (Windows)
        path_max = MAX_PATH_BYTES
    base = len(os.fsencode(str(target))) + 1
    return [
        f"entry {info.filename!r} would be a path of {base + len(os.fsencode(info.filename)):,} "
        f"bytes under {target} (the limit is {path_max - 1:,})"
        for info in infos
        if base + len(os.fsencode(info.filename.rstrip("/"))) >= path_max
    ]


def _remove_extracted(root: Path, created: bool) -> None:
    if created:
        shutil.rmtree(root, ignore_errors=True)
        return
    for child in root.iterdir():  # the target was empty: everything in it is ours
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


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
    with open(destination, "xb") as dst:
        for chunk in _member_chunks(zf, info):
            dst.write(chunk)
    os.chmod(destination, 0o755 if executable else 0o644)
