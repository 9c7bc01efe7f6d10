"""The atheris harnesses (``fuzz/atheris``) replayed over their committed seed
corpus once, without atheris: they must keep running and passing between
fuzzing runs (``make fuzz`` does the fuzzing; docs/fuzzing.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

FUZZ = Path(__file__).resolve().parent.parent / "fuzz"
sys.path.insert(0, str(FUZZ / "atheris"))

from fuzz_harnesses import HARNESSES  # noqa: E402


@pytest.mark.parametrize("name", sorted(HARNESSES))
def test_harness_passes_its_seeds(name):
    seeds = sorted((FUZZ / "seeds" / "atheris" / name).iterdir())
    assert seeds, f"no seeds for {name}"
    for seed in seeds:
        HARNESSES[name](seed.read_bytes())


def test_every_harness_has_seeds():
    assert sorted(p.name for p in (FUZZ / "seeds" / "atheris").iterdir()) == sorted(HARNESSES)
