"""Archives: reproducible writing, the SHA-256 manifest, verification, safe extraction,
hostile zips, and InferenceBackendLoader.from_archive."""

from __future__ import annotations

import gc
import hashlib
import io
import json
import os
import stat
import sys
import zipfile
from pathlib import Path

import pytest

from packflow.exceptions import PackflowArchiveError
from packflow.loaders import InferenceBackendLoader
from packflow.loaders.archive import (
    DEFAULT_LIMITS,
    FIXED_TIMESTAMP,
    MANIFEST_NAME,
    ArchiveLimits,
    extract_archive,
    inspect_archive,
    sha256_file,
    unsafe_entry_reason,
    write_archive,
)
from tests.support.sample_projects import write_project

# Hostile inputs (tests/conftest.py): part of `make test-matrix` on every Python.
pytestmark = pytest.mark.hostile


def sources(tmp_path: Path, files: dict[str, bytes]) -> list[tuple[str, Path]]:
    pairs = []
    for name, data in files.items():
        path = tmp_path / "src" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        pairs.append((name, path))
    return pairs


FILES = {"b.txt": b"bee\n", "a/inner.py": b"x = 1\n", "packflow.yaml": b"name: demo\n"}


# --- writing ---------------------------------------------------------------------------


def test_entries_are_sorted_with_fixed_metadata_and_manifest_last(tmp_path):
    archive = tmp_path / "out.zip"
    write_archive(archive, sources(tmp_path, FILES), "demo", "1.0")
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
    assert [i.filename for i in infos] == ["a/inner.py", "b.txt", "packflow.yaml", MANIFEST_NAME]
    for info in infos:
        assert info.date_time == FIXED_TIMESTAMP
        assert info.compress_type == zipfile.ZIP_DEFLATED
        assert stat.S_IMODE(info.external_attr >> 16) == 0o644
        assert stat.S_ISREG(info.external_attr >> 16)


def test_manifest_lists_size_and_sha256_of_every_file(tmp_path):
    archive = tmp_path / "out.zip"
    manifest = write_archive(archive, sources(tmp_path, FILES), "demo", "1.0")
    with zipfile.ZipFile(archive) as zf:
        stored = json.loads(zf.read(MANIFEST_NAME))
    assert stored == manifest
    assert stored["format"] == "packflow-archive-manifest"
    assert stored["format_version"] == 1
    assert (stored["name"], stored["version"]) == ("demo", "1.0")
    assert stored["files"] == [
        {"path": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        for name, data in sorted(FILES.items())
    ]


def test_same_files_give_the_same_bytes(tmp_path):
    pairs = sources(tmp_path, FILES)
    write_archive(tmp_path / "one.zip", pairs, "demo", "1.0")
    for _, path in pairs:  # other timestamps, other order: same archive
        os.utime(path, (1_000_000_000, 1_000_000_000))
    write_archive(tmp_path / "two.zip", list(reversed(pairs)), "demo", "1.0")
    assert (tmp_path / "one.zip").read_bytes() == (tmp_path / "two.zip").read_bytes()


def test_executable_bit_is_kept(tmp_path):
    pairs = sources(tmp_path, {"run.sh": b"#!/bin/sh\n"})
    pairs[0][1].chmod(0o755)
    write_archive(tmp_path / "out.zip", pairs, "demo", "1.0")
    with zipfile.ZipFile(tmp_path / "out.zip") as zf:
        assert stat.S_IMODE(zf.getinfo("run.sh").external_attr >> 16) == 0o755


def test_failed_write_leaves_no_file(tmp_path):
    pairs = sources(tmp_path, FILES) + [("gone.txt", tmp_path / "does-not-exist")]
    with pytest.raises(FileNotFoundError):
        write_archive(tmp_path / "out.zip", pairs, "demo", "1.0")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_sha256_file(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    assert sha256_file(path) == hashlib.sha256(b"abc").hexdigest()


# --- inspecting ------------------------------------------------------------------------


def test_inspect_a_good_archive(tmp_path):
    write_archive(tmp_path / "out.zip", sources(tmp_path, FILES), "demo", "1.0")
    report = inspect_archive(tmp_path / "out.zip")
    assert report.ok and report.problems == [] and report.warnings == []
    assert [f.path for f in report.files] == sorted(FILES)
    assert report.manifest["name"] == "demo"


def rewrite(archive: Path, change) -> None:
    """Rebuild ``archive`` with ``change(name, data) -> (name, data) | None`` applied."""
    with zipfile.ZipFile(archive) as zf:
        entries = [(i.filename, zf.read(i)) for i in zf.infolist()]
    with zipfile.ZipFile(archive, "w") as zf:
        for name, data in entries:
            changed = change(name, data)
            if changed is not None:
                zf.writestr(*changed)


def test_tampered_file_fails_verification(tmp_path):
    archive = tmp_path / "out.zip"
    write_archive(archive, sources(tmp_path, FILES), "demo", "1.0")
    rewrite(archive, lambda n, d: (n, b"bad\n" if n == "b.txt" else d))
    report = inspect_archive(archive)
    assert not report.ok
    assert len(report.problems) == 1
    assert "'b.txt' does not match its SHA-256 in packflow.lock" in report.problems[0]


def test_size_change_is_reported(tmp_path):
    archive = tmp_path / "out.zip"
    write_archive(archive, sources(tmp_path, FILES), "demo", "1.0")
    rewrite(archive, lambda n, d: (n, d + b"more" if n == "b.txt" else d))
    assert "'b.txt' has 8 bytes, packflow.lock says 4" in inspect_archive(archive).problems


def test_missing_and_unlisted_files_are_reported(tmp_path):
    archive = tmp_path / "out.zip"
    write_archive(archive, sources(tmp_path, FILES), "demo", "1.0")
    rewrite(
        archive, lambda n, d: None if n == "b.txt" else ("extra.txt" if n == "a/inner.py" else n, d)
    )
    problems = inspect_archive(archive).problems
    assert "'b.txt' is listed in packflow.lock but missing from the archive" in problems
    assert "'a/inner.py' is listed in packflow.lock but missing from the archive" in problems
    assert "'extra.txt' is in the archive but not listed in packflow.lock" in problems


@pytest.mark.parametrize("manifest", [b"not json", b"{}", b'{"files": [{"path": "x"}]}', b"[]"])
def test_invalid_manifest(tmp_path, manifest):
    archive = tmp_path / "out.zip"
    write_archive(archive, sources(tmp_path, FILES), "demo", "1.0")
    rewrite(archive, lambda n, d: (n, manifest if n == MANIFEST_NAME else d))
    (problem,) = inspect_archive(archive).problems
    assert problem.startswith("packflow.lock is not a valid manifest")


def test_archive_without_manifest_is_a_warning(tmp_path):
    with zipfile.ZipFile(tmp_path / "old.zip", "w") as zf:
        zf.writestr("packflow.yaml", "name: old\n")
    report = inspect_archive(tmp_path / "old.zip")
    assert report.ok
    assert report.manifest is None
    assert "no packflow.lock manifest" in report.warnings[0]


def test_not_a_zip(tmp_path):
    (tmp_path / "fake.zip").write_text("hello")
    with pytest.raises(PackflowArchiveError, match="not a valid zip archive"):
        inspect_archive(tmp_path / "fake.zip")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        inspect_archive(tmp_path / "missing.zip")
    with pytest.raises(PackflowArchiveError, match="is a directory"):
        inspect_archive(tmp_path)


# --- hostile archives ------------------------------------------------------------------


def hostile_zip(path: Path, name: str, mode: int | None = None, data: bytes = b"pwned\n") -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("packflow.yaml", "name: evil\n")
        info = zipfile.ZipInfo(name)
        if mode is not None:
            info.create_system = 3
            info.external_attr = mode << 16
        zf.writestr(info, data)
    return path


HOSTILE = [
    ("../evil.py", None, "contains '..'"),
    ("a/../../evil.py", None, "contains '..'"),
    ("a/b/../../../evil.py", None, "contains '..'"),
    ("..", None, "contains '..'"),
    ("/etc/evil.py", None, "is an absolute path"),
    ("//server/share/evil.py", None, "is an absolute path"),
    ("C:/evil.py", None, "is an absolute path"),
    ("c:evil.py", None, "is an absolute path"),
    ("..\\evil.py", None, "contains '\\'"),
    ("a\\..\\..\\evil.py", None, "contains '\\'"),
    ("link", stat.S_IFLNK | 0o777, "is a symbolic link"),
    ("dir/link.py", stat.S_IFLNK | 0o777, "is a symbolic link"),
    ("fifo", stat.S_IFIFO | 0o644, "is not a regular file or directory"),
    ("device", stat.S_IFCHR | 0o644, "is not a regular file or directory"),
    ("/", None, "has an empty name"),
]


@pytest.mark.parametrize(("name", "mode", "reason"), HOSTILE)
def test_hostile_entries_are_refused_before_anything_is_written(tmp_path, name, mode, reason):
    archive = hostile_zip(tmp_path / "evil.zip", name, mode, data=b"/etc/passwd")
    report = inspect_archive(archive)
    assert not report.ok
    assert any(reason in p and repr(name) in p for p in report.problems), report.problems

    target = tmp_path / "extract" / "here"
    with pytest.raises(PackflowArchiveError, match="Refusing to extract") as info:
        extract_archive(archive, target)
    assert reason in str(info.value)
    assert not target.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.zip"]


@pytest.mark.parametrize(("name", "mode", "reason"), HOSTILE[:3] + HOSTILE[4:5] + HOSTILE[10:11])
def test_from_archive_refuses_hostile_zips(tmp_path, name, mode, reason):
    archive = hostile_zip(tmp_path / "evil.zip", name, mode)
    with pytest.raises(PackflowArchiveError, match="Refusing to extract"):
        InferenceBackendLoader.from_archive(archive)
    assert not (tmp_path.parent / "evil.py").exists()


def test_duplicate_entries_are_refused(tmp_path):
    with zipfile.ZipFile(tmp_path / "dup.zip", "w") as zf:
        zf.writestr("inference.py", "good = 1\n")
        with pytest.warns(UserWarning, match="Duplicate name"):
            zf.writestr("inference.py", "evil = 1\n")
    problems = inspect_archive(tmp_path / "dup.zip").problems
    assert problems == ["entry 'inference.py' appears more than once"]


def test_encrypted_entries_are_refused(tmp_path):
    archive = hostile_zip(tmp_path / "enc.zip", "secret.py")
    raw = bytearray(archive.read_bytes())
    # Set the "encrypted" flag bit of the entry in the central directory.
    offset = raw.rindex(b"PK\x01\x02")
    raw[offset + 8] |= 0x1
    archive.write_bytes(bytes(raw))
    assert any("is encrypted" in p for p in inspect_archive(archive).problems)


def test_unsafe_entry_reason_accepts_ordinary_entries():
    assert unsafe_entry_reason(zipfile.ZipInfo("a/b/c.py")) is None
    assert unsafe_entry_reason(zipfile.ZipInfo("dir/")) is None
    assert unsafe_entry_reason(zipfile.ZipInfo("a..b/c..py")) is None  # dots inside names
    info = zipfile.ZipInfo("run.sh")
    info.external_attr = (stat.S_IFREG | 0o755) << 16
    assert unsafe_entry_reason(info) is None


# --- entries that cannot all be written (issue 13, item 10) ---------------------------


def plain_zip(path: Path, names: list[str], data: bytes = b"x = 1\n") -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("packflow.yaml", "name: demo\n")
        for name in names:
            zf.writestr(name, b"" if name.endswith("/") else data)
    return path


def assert_refused_before_writing(archive: Path, target: Path, fragment: str) -> None:
    with pytest.raises(PackflowArchiveError, match="Refusing to extract") as info:
        extract_archive(archive, target)
    assert fragment in str(info.value)
    assert not target.exists()


@pytest.mark.parametrize(
    ("names", "problem"),
    [
        (["a", "a/b"], "entry 'a' is a file, but 'a/b' needs a folder of that name"),
        (["a/b", "a"], "entry 'a' is a file, but 'a/b' needs a folder of that name"),
        (["x/a", "x/a/b/c.py"], "entry 'x/a' is a file, but 'x/a/b/c.py' needs a folder"),
        (["pkg/", "pkg/mod.py", "pkg/mod.py/x"], "entry 'pkg/mod.py' is a file, but"),
    ],
)
def test_a_file_and_a_folder_of_the_same_name_are_refused_up_front(tmp_path, names, problem):
    archive = plain_zip(tmp_path / "clash.zip", names)
    assert any(problem in p for p in inspect_archive(archive).problems)
    assert_refused_before_writing(archive, tmp_path / "x", problem)


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("d/" + "x" * 253 + ".py", "has a name part of 256 bytes (file systems allow 255)"),
        ("é" * 128, "has a name part of 256 bytes"),
        ("/".join(["y" * 200] * 21), "is a path of 4,220 bytes (the limit is 4,095)"),
    ],
)
def test_names_too_long_for_a_file_system_are_refused_up_front(tmp_path, name, problem):
    archive = plain_zip(tmp_path / "long.zip", [name])
    assert any(problem in p for p in inspect_archive(archive).problems)
    assert_refused_before_writing(archive, tmp_path / "x", problem)


def test_longest_names_that_fit_are_extracted(tmp_path):
    name = "d/" + "x" * 252 + ".py"
    extract_archive(plain_zip(tmp_path / "ok.zip", [name]), tmp_path / "x")
    assert (tmp_path / "x" / name).is_file()


def test_a_path_too_long_under_the_target_is_refused_up_front(tmp_path):
    # Fine in the archive (4,000 bytes) but not below a deep target directory.
    name = "/".join(["z" * 199] * 20)
    archive = plain_zip(tmp_path / "deep.zip", [name])
    assert inspect_archive(archive).ok
    target = tmp_path.joinpath(*["t" * 50] * 4)
    assert_refused_before_writing(archive, target, "would be a path of")


def test_a_failure_midway_removes_what_was_written(tmp_path, monkeypatch):
    import packflow.loaders.archive as archive_module

    archive = plain_zip(tmp_path / "ok.zip", ["a.py", "b/c.py", "d.py"])
    real = archive_module._member_chunks
    reads = []

    def disk_full(zf, info):
        reads.append(info.filename)
        if len(reads) == 4 + 3:  # the checks read the 4 entries; then 2 are written
            raise OSError(28, "No space left on device")
        yield from real(zf, info)

    monkeypatch.setattr(archive_module, "_member_chunks", disk_full)
    (tmp_path / "empty").mkdir()
    for target in (tmp_path / "new", tmp_path / "empty"):
        reads.clear()
        with pytest.raises(OSError, match="No space left"):
            extract_archive(archive, target)
        assert len(reads) == 7
        assert not target.exists() if target.name == "new" else not any(target.iterdir())


# --- limits (issue 13, item 11) --------------------------------------------------------


def declare_size(archive: Path, name: str, size: int) -> None:
    """Rewrite the uncompressed size ``name`` declares, in its local header and in the
    central directory, without changing its data."""
    raw = bytearray(archive.read_bytes())
    encoded = name.encode()
    # (signature, offset of the uncompressed size, of the name length, of the name)
    for signature, size_at, length_at, name_at in (
        (b"PK\x03\x04", 22, 26, 30),
        (b"PK\x01\x02", 24, 28, 46),
    ):
        start = 0
        while (start := raw.find(signature, start)) != -1:
            length = int.from_bytes(raw[start + length_at : start + length_at + 2], "little")
            if raw[start + name_at : start + name_at + length] == encoded:
                raw[start + size_at : start + size_at + 4] = size.to_bytes(4, "little")
            start += 4
    archive.write_bytes(bytes(raw))


def test_declare_size_helper(tmp_path):
    archive = plain_zip(tmp_path / "a.zip", ["w.bin"])
    declare_size(archive, "w.bin", 4_000_000_000)
    with zipfile.ZipFile(archive) as zf:
        assert zf.getinfo("w.bin").file_size == 4_000_000_000


def test_an_archive_declaring_4_gb_is_refused_without_reading_it(tmp_path, monkeypatch):
    archive = plain_zip(tmp_path / "bomb.zip", ["weights.bin"], data=bytes(4 << 20))
    assert archive.stat().st_size < 10_000
    declare_size(archive, "weights.bin", 4_000_000_000)
    monkeypatch.setattr(zipfile.ZipFile, "open", _refuse_reads)
    problems = inspect_archive(archive).problems
    assert (
        "the archive would extract to 4,000,000,011 bytes, more than the limit of 2,147,483,648"
        in problems
    )
    assert any("entry 'weights.bin' expands" in p and "zip bomb" in p for p in problems)
    assert_refused_before_writing(archive, tmp_path / "x", "more than the limit")


def _refuse_reads(self, *args, **kwargs):
    raise AssertionError("an entry was read")


def test_a_high_compression_ratio_is_refused(tmp_path):
    archive = tmp_path / "zeros.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("packflow.yaml", "name: demo\n")
        zf.writestr("zeros.bin", bytes(16 << 20))
    (problem,) = inspect_archive(archive).problems
    assert problem.startswith("entry 'zeros.bin' expands ")
    assert "to 16,777,216 (more than 500 times): refusing what looks like a zip bomb" in problem
    assert inspect_archive(archive, ArchiveLimits(max_compression_ratio=2000)).ok


def test_too_many_entries_are_refused_before_reading(tmp_path, monkeypatch):
    archive = plain_zip(tmp_path / "many.zip", [f"f{i}.txt" for i in range(10_000)], data=b"")
    monkeypatch.setattr(zipfile.ZipFile, "open", _refuse_reads)
    assert inspect_archive(archive).problems == [
        "the archive has 10,001 entries, more than the limit of 10,000"
    ]
    assert_refused_before_writing(archive, tmp_path / "x", "10,001 entries")


def test_limits_are_parameters(tmp_path):
    archive = tmp_path / "out.zip"
    write_archive(archive, sources(tmp_path, FILES), "demo", "1.0")  # 4 entries, ~420 bytes
    assert inspect_archive(archive, ArchiveLimits(max_files=4)).ok
    assert not inspect_archive(archive, ArchiveLimits(max_files=3)).ok
    assert not inspect_archive(archive, ArchiveLimits(max_total_bytes=100)).ok
    (problem,) = inspect_archive(archive, ArchiveLimits(max_manifest_bytes=100)).problems
    assert problem.startswith("packflow.lock is ") and "more than the limit of 100" in problem
    with pytest.raises(PackflowArchiveError, match="more than the limit of 3"):
        extract_archive(archive, tmp_path / "x", ArchiveLimits(max_files=3))
    assert not (tmp_path / "x").exists()
    assert DEFAULT_LIMITS == ArchiveLimits()
    assert (DEFAULT_LIMITS.max_total_bytes, DEFAULT_LIMITS.max_files) == (2 << 30, 10_000)
    assert (DEFAULT_LIMITS.max_manifest_bytes, DEFAULT_LIMITS.max_compression_ratio) == (
        16 << 20,
        500,
    )


def test_a_1_gib_manifest_is_refused_without_reading_it(tmp_path, monkeypatch):
    archive = tmp_path / "out.zip"
    write_archive(archive, sources(tmp_path, FILES), "demo", "1.0")
    declare_size(archive, MANIFEST_NAME, 1 << 30)
    monkeypatch.setattr(zipfile.ZipFile, "open", _refuse_reads)
    problems = inspect_archive(archive).problems
    assert "packflow.lock is 1,073,741,824 bytes, more than the limit of 16,777,216" in problems


def test_an_entry_holding_more_than_it_declares_is_refused(tmp_path):
    archive = tmp_path / "out.zip"
    write_archive(archive, sources(tmp_path, FILES), "demo", "1.0")
    declare_size(archive, "b.txt", 2)  # it holds 4
    report = inspect_archive(archive)
    assert any(p.startswith("entry 'b.txt' cannot be read") for p in report.problems)
    assert_refused_before_writing(archive, tmp_path / "x", "'b.txt' cannot be read")


def test_reading_stops_at_the_first_byte_past_the_declared_size(tmp_path, monkeypatch):
    # zipfile itself stops at the declared size; a reader that did not must still
    # not get more than that through.
    archive = plain_zip(tmp_path / "a.zip", ["a.py"], data=b"12345")
    real_open = zipfile.ZipFile.open

    def generous(self, name, *args, **kwargs):
        info = name if isinstance(name, zipfile.ZipInfo) else self.getinfo(name)
        if info.filename == "a.py":
            return io.BytesIO(b"12345" + b"!" * (5 << 20))
        return real_open(self, name, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", generous)
    problem = "entry 'a.py' holds more than the 5 bytes its header declares"
    assert any(problem in p for p in inspect_archive(archive).problems)


def test_a_deeply_nested_manifest_is_an_archive_error(tmp_path):
    archive = tmp_path / "out.zip"
    write_archive(archive, sources(tmp_path, FILES), "demo", "1.0")
    rewrite(archive, lambda n, d: (n, b"[" * 100_000 if n == MANIFEST_NAME else d))
    (problem,) = inspect_archive(archive).problems
    assert problem.startswith("packflow.lock is not a valid manifest")
    assert "nested too deeply" in problem
    with pytest.raises(PackflowArchiveError, match="not a valid manifest"):
        InferenceBackendLoader.from_archive(archive)


# --- extracting and loading ------------------------------------------------------------


def test_extract_writes_files_with_plain_permissions(tmp_path):
    pairs = sources(tmp_path, {**FILES, "run.sh": b"#!/bin/sh\n"})
    pairs[-1][1].chmod(0o4755)  # setuid is not carried over
    write_archive(tmp_path / "out.zip", pairs, "demo", "1.0")
    extract_archive(tmp_path / "out.zip", tmp_path / "x")
    assert (tmp_path / "x" / "a" / "inner.py").read_bytes() == b"x = 1\n"
    assert stat.S_IMODE((tmp_path / "x" / "b.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "x" / "run.sh").stat().st_mode) == 0o755
    assert (tmp_path / "x" / MANIFEST_NAME).is_file()


def test_extract_refuses_a_non_empty_target(tmp_path):
    write_archive(tmp_path / "out.zip", sources(tmp_path, FILES), "demo", "1.0")
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    with pytest.raises(PackflowArchiveError, match="must be an empty directory"):
        extract_archive(tmp_path / "out.zip", tmp_path / "x")
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == ["keep.txt"]


def test_extract_refuses_a_tampered_archive(tmp_path):
    archive = tmp_path / "out.zip"
    write_archive(archive, sources(tmp_path, FILES), "demo", "1.0")
    rewrite(archive, lambda n, d: (n, b"evil" if n == "b.txt" else d))
    with pytest.raises(PackflowArchiveError, match="does not match its SHA-256"):
        extract_archive(archive, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def export_sample(tmp_path: Path, **fields) -> Path:
    from packflow.project import PackflowProject

    project = write_project(tmp_path / "project", **fields)
    return PackflowProject(project).export(tmp_path / "dist")


def test_from_archive_loads_the_backend_and_cleans_up(tmp_path):
    archive = export_sample(tmp_path, backend_config={"threshold": 0.25})
    backend = InferenceBackendLoader.from_archive(archive, label="kw")
    assert type(backend).__name__ == "Backend"
    assert backend.config.threshold == 0.25
    assert backend.config.label == "kw"
    extracted = Path(sys.modules[type(backend).__module__].__file__)
    assert extracted.parent.name.startswith("packflow-archive-")
    assert extracted.is_file()
    del backend
    gc.collect()
    assert not extracted.parent.exists()


def test_from_archive_into_a_chosen_directory_keeps_it(tmp_path):
    archive = export_sample(tmp_path)
    backend = InferenceBackendLoader.from_archive(archive, extract_dir=tmp_path / "deployed")
    assert type(backend).__name__ == "Backend"
    del backend
    gc.collect()
    assert (tmp_path / "deployed" / "inference.py").is_file()
    assert (tmp_path / "deployed" / MANIFEST_NAME).is_file()


def test_from_archive_of_a_packflow_04_archive_without_manifest(tmp_path):
    project = write_project(tmp_path / "project")
    with zipfile.ZipFile(tmp_path / "old.zip", "w") as zf:
        for path in sorted(project.iterdir()):
            zf.write(path, path.name)
    assert type(InferenceBackendLoader.from_archive(tmp_path / "old.zip")).__name__ == "Backend"


def test_from_archive_with_a_single_top_level_folder(tmp_path):
    project = write_project(tmp_path / "project")
    with zipfile.ZipFile(tmp_path / "folder.zip", "w") as zf:
        for path in sorted(project.iterdir()):
            zf.write(path, f"project/{path.name}")
    assert type(InferenceBackendLoader.from_archive(tmp_path / "folder.zip")).__name__ == "Backend"


def test_from_archive_without_packflow_yaml(tmp_path):
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as zf:
        zf.writestr("data.csv", "a,b\n")
    with pytest.raises(FileNotFoundError, match="no packflow.yaml at its root"):
        InferenceBackendLoader.from_archive(tmp_path / "other.zip")


def test_from_archive_failure_removes_the_temporary_directory(tmp_path, monkeypatch):
    import tempfile

    from packflow.exceptions import InferenceBackendLoadError

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    project = write_project(tmp_path / "project", backend="raise RuntimeError('no weights')\n")
    files = [(p.name, p) for p in project.iterdir()]
    write_archive(tmp_path / "broken.zip", files, "sample", "0.1.0")
    with pytest.raises(InferenceBackendLoadError, match="no weights"):
        InferenceBackendLoader.from_archive(tmp_path / "broken.zip")
    assert list((tmp_path / "tmp").iterdir()) == []


# --- property: extraction never writes outside the target ------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_segment = st.sampled_from(["..", ".", "", "a", "b.py", "C:", "\\", "..\\x", "é", "/"])
_entry_names = st.lists(
    st.lists(_segment, min_size=1, max_size=4).map("/".join), min_size=1, max_size=5
)


@pytest.mark.filterwarnings("ignore:Duplicate name")
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(names=_entry_names, symlink=st.booleans())
def test_extraction_stays_inside_the_target(tmp_path_factory, names, symlink):
    base = tmp_path_factory.mktemp("prop")
    archive = base / "x.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for index, name in enumerate(names):
            info = zipfile.ZipInfo(name)
            if symlink and index == 0:
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, f"entry {index}")
    target = base / "sandbox" / "target"
    try:
        extract_archive(archive, target)
    except PackflowArchiveError:
        assert not target.exists()  # refused before anything was written
    written = [p for p in base.rglob("*") if p.is_file() or p.is_symlink()]
    root = target.resolve()
    for path in written:
        assert path == archive or path.resolve().is_relative_to(root), path
        assert not path.is_symlink()
