"""Smoke run of benches/workers.py (tiny inputs, one round), so the workers
benchmark cannot rot; its figures come from `make bench-workers`."""

from __future__ import annotations

import importlib.util
import sys

import pytest
from conftest import REFERENCE, REPO


def test_workers_benchmark_runs(capsys):
    if REFERENCE:
        pytest.skip("packflow run --workers is this package's")
    spec = importlib.util.spec_from_file_location("bench_workers", REPO / "benches" / "workers.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    assert module.main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "| CPU-bound toy | 10,000 |" in out and "| light (W6) | 10,000 |" in out
