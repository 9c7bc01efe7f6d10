"""W3 and W3b: records to a 2-D ndarray with ``packflow.utils.records_to_ndarray``.
W3: firewall events x the 9 nested numeric features (also at 1, 100, 10k and 1M
events); W3b: 10k flat records x 16 floats. Peers: ``numpy.array`` of rows
gathered by hand, and (W3b) ``numpy.array`` of a ready list of lists."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import (
    BASE_N,
    BIG_N,
    BIG_ROUNDS,
    PACKAGE,
    REFERENCE,
    SIZES,
    data,
    events,
    flat,
    peer_only,
    record_peak_memory,
    require,
    run,
    size_label,
    skip_big_when_quick,
    skip_reference_big,
    tag,
)

from packflow.utils import records_to_ndarray

FEATURES = list(data.NUMERIC_FEATURES)
FLAT_FEATURES = [f"f{j}" for j in range(16)]


def gather_nested(records: list[dict]) -> np.ndarray:
    return np.array(
        [
            [
                r["ts"],
                r["src"]["port"],
                r["src"]["geo"]["lat"],
                r["src"]["geo"]["lon"],
                r["dst"]["port"],
                r["bytes"]["in"],
                r["bytes"]["out"],
                r["rule"]["id"],
                r["score"],
            ]
            for r in records
        ]
    )


def gather_flat(records: list[dict]) -> np.ndarray:
    names = FLAT_FEATURES
    return np.array([[r[k] for k in names] for r in records])


def _same(a: np.ndarray, b: np.ndarray) -> None:
    assert a.dtype == b.dtype
    assert a.shape == b.shape
    assert np.array_equal(a, b)


def _memory(benchmark, n, fn, *args):
    if n >= BASE_N:
        record_peak_memory(benchmark, fn, *args)


@pytest.mark.parametrize("n", SIZES, ids=size_label)
def test_w3_packflow(benchmark, n):
    skip_big_when_quick(benchmark, n)
    skip_reference_big(n, "about 140 s per call")
    require(lambda: records_to_ndarray([{"a": 1}], ["a"]), "records_to_ndarray")
    tag(benchmark, "W3", f"W3 records to ndarray {size_label(n)}", PACKAGE, n)
    records = events(n)
    slow = (REFERENCE and n >= BASE_N) or n >= BIG_N
    arr = run(benchmark, records_to_ndarray, records, FEATURES, rounds=BIG_ROUNDS if slow else None)
    if n <= BASE_N:
        _same(arr, gather_nested(records))
    else:
        _same(arr[-100:], gather_nested(records[-100:]))
    _memory(benchmark, n, records_to_ndarray, records, FEATURES)


@pytest.mark.parametrize("n", SIZES, ids=size_label)
def test_w3_numpy_gathered(benchmark, n):
    peer_only()
    skip_big_when_quick(benchmark, n)
    tag(benchmark, "W3", f"W3 records to ndarray {size_label(n)}", "numpy.array(gathered rows)", n)
    records = events(n)
    arr = run(benchmark, gather_nested, records, rounds=BIG_ROUNDS if n >= BIG_N else None)
    assert arr.shape == (n, len(FEATURES)) and arr.dtype == np.float64
    _memory(benchmark, n, gather_nested, records)


def test_w3b_packflow(benchmark):
    require(lambda: records_to_ndarray([{"a": 1}], ["a"]), "records_to_ndarray")
    tag(benchmark, "W3b", "W3b flat records to ndarray 10k", PACKAGE, BASE_N)
    records = flat(BASE_N)
    arr = run(benchmark, records_to_ndarray, records, FLAT_FEATURES)
    _same(arr, gather_flat(records))


def test_w3b_numpy_gathered(benchmark):
    peer_only()
    tag(benchmark, "W3b", "W3b flat records to ndarray 10k", "numpy.array(gathered rows)", BASE_N)
    records = flat(BASE_N)
    arr = run(benchmark, gather_flat, records)
    assert arr.shape == (BASE_N, 16)


def test_w3b_numpy_list_of_lists(benchmark):
    """Only the conversion: the list of lists is built before timing."""
    peer_only()
    tag(benchmark, "W3b", "W3b flat records to ndarray 10k", "numpy.array(list of lists)", BASE_N)
    records = flat(BASE_N)
    rows = [[r[k] for k in FLAT_FEATURES] for r in records]
    arr = run(benchmark, np.array, rows)
    _same(arr, gather_flat(records))
