"""A million calls of each hot function keep memory flat and leave no extra
references on their inputs (a leaked reference per call would show in either)."""

from __future__ import annotations

import gc
import sys

import numpy as np
import pytest

from packflow import InferenceBackend, _core
from packflow.utils import (
    ensure_valid_output,
    flatten_dict,
    get_nested_field,
    get_nested_field_direct,
    records_to_ndarray,
)

CALLS = 1_000_000


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    import resource

    return pages * resource.getpagesize()


class Echo(InferenceBackend):
    def execute(self, inputs):
        return inputs


class Rows(InferenceBackend):
    def execute(self, inputs):
        return [{"row": r} for r in inputs.tolist()]


EVENT = {"src": {"ip": "10.0.0.1", "port": 443, "geo": {"lat": 1.5}}, "tags": ["a"], "n": 7}
ROWS = [EVENT]
OUT = [{"label": "x", "p": 0.5, "s": [1, 2.5], "m": {"ok": True}}]
ARR = np.arange(6, dtype=np.float32).reshape(2, 3)


def hot_calls():
    backend = Echo(feature_names=["src.port", "n"], rename_fields={"tags": "t"})
    numpy_backend = Rows(input_format="numpy", feature_names=["src.port", "src.geo.lat", "n"])
    calls = {
        "backend records": lambda: backend(ROWS),
        "backend numpy": lambda: numpy_backend(ROWS),
        "flatten_dict": lambda: flatten_dict(EVENT),
        "get_nested_field": lambda: get_nested_field(EVENT, "src.geo.lat"),
        "get_nested_field_direct": lambda: get_nested_field_direct(EVENT, "src.port"),
        "records_to_ndarray": lambda: records_to_ndarray(ROWS, ["src.port", "n"]),
        "check_outputs": lambda: _core.check_outputs(OUT, 1),
        "dumps_lines": lambda: _core.dumps_lines(OUT),
        "ensure_valid_output": lambda: ensure_valid_output(ARR),
    }
    return calls


@pytest.mark.parametrize("name", list(hot_calls()))
def test_a_million_calls_keep_memory_flat(name):
    call = hot_calls()[name]
    tracked = [EVENT, EVENT["src"], ROWS, OUT, OUT[0], ARR]
    for _ in range(50_000):
        call()
    gc.collect()
    refs_before = [sys.getrefcount(o) for o in tracked]
    before = rss_bytes()
    for _ in range(CALLS):
        call()
    gc.collect()
    grown = rss_bytes() - before
    assert [sys.getrefcount(o) for o in tracked] == refs_before
    assert grown < 8 * 1024 * 1024, f"{name}: RSS grew {grown / 1e6:.1f} MB over {CALLS} calls"
