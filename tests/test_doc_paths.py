"""A source path named in the README, the docs or the stub is a promise: it exists."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# A repo-relative file name, not inside a longer path or a URL.
PATH = re.compile(
    r"(?<![A-Za-z0-9_./-])((?:src|python/packflow|tests|benches|examples|fuzz)/"
    r"[A-Za-z0-9_./-]+\.(?:rs|pyi|py|toml|yaml))\b"
)


def _documents() -> list[Path]:
    return [
        REPO / "README.md",
        *sorted((REPO / "docs").glob("*.md")),
        REPO / "python" / "packflow" / "_core.pyi",
    ]


def test_the_scan_finds_paths():
    assert PATH.findall("see src/jsonl/mod.rs and (src/a.rs), not x/src/b.rs") == [
        "src/jsonl/mod.rs",
        "src/a.rs",
    ]


def test_every_named_source_path_exists():
    missing = sorted(
        f"{doc.relative_to(REPO)}: {path}"
        for doc in _documents()
        for path in set(PATH.findall(doc.read_text(encoding="utf-8")))
        if not (REPO / path).exists()
    )
    assert missing == []
