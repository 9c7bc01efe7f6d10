"""A source path named in the README, the docs, the stub or the benchmark scripts
that write docs/performance.md is a promise: it exists."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# A repo-relative file name, or a source folder written with its trailing slash
# (fuzz/corpus/ and the like are made by runs, not committed), not inside a
# longer path or a URL.
PATH = re.compile(
    r"(?<![A-Za-z0-9_./-])("
    r"(?:src|python/packflow|tests|benches|examples|fuzz)/[A-Za-z0-9_./-]+\.(?:rs|pyi|py|toml|yaml)\b"
    r"|(?:src|python/packflow|tests)/(?:[A-Za-z0-9_-]+/)+(?![A-Za-z0-9_.-]))"
)

BENCH_WRITERS = ("run.py", "workers.py", "compare_builds.py", "serve/run.py", "v2/run.py")


def _documents() -> list[Path]:
    return [
        REPO / "README.md",
        *sorted((REPO / "docs").glob("*.md")),
        REPO / "python" / "packflow" / "_core.pyi",
        # They write their sections of docs/performance.md, paths included.
        *(REPO / "benches" / name for name in BENCH_WRITERS),
    ]


def test_the_scan_finds_paths():
    assert PATH.findall("see src/jsonl/mod.rs and (src/a.rs), not x/src/b.rs") == [
        "src/jsonl/mod.rs",
        "src/a.rs",
    ]
    assert PATH.findall("in src/serialize/, `src/jsonl/scanner/` and src/flatten/mod.rs") == [
        "src/serialize/",
        "src/jsonl/scanner/",
        "src/flatten/mod.rs",
    ]
    assert PATH.findall("src/records/plan and http://x/src/y/") == []


def test_the_scan_reads_the_benchmark_scripts():
    assert {p.relative_to(REPO).as_posix() for p in _documents()} >= {
        "python/packflow/_core.pyi",
        "docs/performance.md",
        "benches/run.py",
    }


def test_every_named_source_path_exists():
    missing = sorted(
        f"{doc.relative_to(REPO)}: {path}"
        for doc in _documents()
        for path in set(PATH.findall(doc.read_text(encoding="utf-8")))
        if not (REPO / path).exists()
    )
    assert missing == []
