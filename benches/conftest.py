"""Shared setup of the benchmark suite.

The same files run against this package (in .venv) and against the reference
``packflow==0.4.1`` (in .venv-reference): both import as ``packflow``, so the
suite uses only the public API and tells which one it is measuring by whether
``packflow._core`` exists. Peers (orjson, msgspec, pandas, hand-written Python)
run only next to this package. ``benches/run.py`` runs both and makes the table.
"""

from __future__ import annotations

import ctypes
import gc
import importlib.util
import sys
import tracemalloc
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest

import packflow

REPO = Path(__file__).resolve().parents[1]

#: True when the suite runs against the reference packflow 0.4.1.
REFERENCE = importlib.util.find_spec("packflow._core") is None
#: Name of the contender measured by the tests that run in both venvs.
PACKAGE = "reference" if REFERENCE else "packflow"

#: Batch sizes of the scaling runs (W2, W3, W4); the workload's own size is 10k.
SIZES = [1, 100, 10_000, 1_000_000]
BASE_N = 10_000
BIG_N = 1_000_000
#: Rounds of one call for the slow cases (the 1M batches, the reference's W3 and W6).
BIG_ROUNDS = 5


def _load_sample_data():
    # The reference venv cannot import packflow.sample_data (it is ours), and the
    # file imports nothing from packflow, so load it by path in both runs.
    path = REPO / "python" / "packflow" / "sample_data.py"
    spec = importlib.util.spec_from_file_location("packflow_bench_data", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


data = _load_sample_data()


def _quiet_reference_logs() -> None:
    # The reference logs through loguru at each backend construction.
    try:
        from loguru import logger
    except ImportError:
        return
    logger.remove()


if REFERENCE:
    _quiet_reference_logs()


def size_label(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


@lru_cache(maxsize=4)
def events(n: int) -> list[dict]:
    return data.sample_events(n)


@lru_cache(maxsize=2)
def flat(n: int) -> list[dict]:
    return data.flat_records(n)


@lru_cache(maxsize=4)
def outputs(n: int) -> list[dict]:
    return data.sample_outputs(n)


@pytest.fixture(autouse=True, scope="module")
def _drop_data_after_module():
    """The 1M batches take gigabytes: keep data only while one module runs."""
    yield
    events.cache_clear()
    flat.cache_clear()
    outputs.cache_clear()
    gc.collect()


def peer_only() -> None:
    """Peers run next to this package only; the reference run skips them."""
    if REFERENCE:
        pytest.skip("peer: measured in the packflow run only")


def require(probe: Callable[[], Any], what: str) -> None:
    """Skip when ``what`` of this package is not built yet (a ``_core`` function
    that has not landed). Never skips in the reference run."""
    if REFERENCE:
        return
    try:
        probe()
    except AttributeError as exc:
        if "_core" in str(exc) or "serialize" in str(exc):
            pytest.skip(f"{what} is not in this build yet ({exc})")
        raise
    except ImportError as exc:
        pytest.skip(f"{what} is not in this build yet ({exc})")


def skip_big_when_quick(benchmark, n: int) -> None:
    """With --benchmark-disable (CI's quick run) the 1M batches would only cost time."""
    if n >= BIG_N and benchmark.disabled:
        pytest.skip("1,000,000-row batch: only in real benchmark runs")


def skip_reference_big(n: int, why: str) -> None:
    if REFERENCE and n >= BIG_N:
        pytest.skip(f"reference at 1,000,000 rows: {why}")


def tag(benchmark, workload: str, group: str, contender: str, n: int | None = None) -> None:
    """Name the benchmark for run.py: its group (one table row), its contender."""
    benchmark.group = group
    benchmark.extra_info["workload"] = workload
    benchmark.extra_info["contender"] = contender
    benchmark.extra_info["packflow_version"] = packflow.__version__
    if n is not None:
        benchmark.extra_info["n"] = n


def run(
    benchmark, fn: Callable[..., Any], *args: Any, rounds: int | None = None, **kwargs: Any
) -> Any:
    """``benchmark(fn, *args, **kwargs)``; with ``rounds``, exactly that many rounds
    of one call (for the slow cases, where pytest-benchmark's calibration is no help)."""
    if rounds is not None:
        return benchmark.pedantic(fn, args=args, kwargs=kwargs, rounds=rounds, iterations=1)
    return benchmark(fn, *args, **kwargs)


def serialize_lines() -> Callable[[list], bytes]:
    """This package's one-pass output check + JSON Lines writer (not in the reference)."""
    from packflow import serialize

    return serialize.dumps_lines


def _malloc_trim() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def record_peak_memory(benchmark, fn: Callable[..., Any], *args: Any) -> None:
    """Peak memory of one more call of ``fn``, in ``extra_info``: the growth of the
    resident set (``peak_rss_mb``: everything, Rust buffers included) and the
    peak of Python-traced allocations (``peak_traced_mb``, tracemalloc)."""
    if benchmark.disabled:
        return
    gc.collect()
    _malloc_trim()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS
        rss_before = _status_kb("VmRSS")
        result = fn(*args)
        hwm = _status_kb("VmHWM")
        del result
        if rss_before is not None and hwm is not None:
            benchmark.extra_info["peak_rss_mb"] = round((hwm - rss_before) / 1024, 1)
    except OSError:
        pass
    gc.collect()
    tracemalloc.start()
    try:
        result = fn(*args)
        benchmark.extra_info["peak_traced_mb"] = round(
            tracemalloc.get_traced_memory()[1] / 2**20, 1
        )
        del result
    finally:
        tracemalloc.stop()
    gc.collect()


def pytest_report_header(config) -> str:
    where = Path(packflow.__file__).parent
    return (
        f"packflow {packflow.__version__} ({PACKAGE}) from {where}; python {sys.version.split()[0]}"
    )
