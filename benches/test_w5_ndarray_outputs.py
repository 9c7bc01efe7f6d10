"""W5: ndarray outputs, a 10,000 x 10 float32 array made into output rows.

packflow: ``ensure_valid_output`` plus writing the rows as JSON Lines
(``packflow.serialize``); also ``ensure_valid_output`` alone. The reference:
``ensure_valid_output``. Peer: ``orjson.dumps(arr, option=OPT_SERIALIZE_NUMPY)``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import BASE_N, PACKAGE, REFERENCE, peer_only, require, run, serialize_lines, tag

from packflow.utils import ensure_valid_output

GROUP = "W5 ndarray outputs 10k"


def _array() -> np.ndarray:
    return np.random.default_rng(0).random((BASE_N, 10), dtype=np.float32)


def _rows_ok(rows: list[dict], arr: np.ndarray) -> None:
    assert len(rows) == len(arr)
    assert rows[0].keys() == {"output"}
    assert np.array_equal(np.array([r["output"] for r in rows], dtype=np.float32), arr)


def test_w5_packflow(benchmark):
    """Ours: ensure_valid_output + JSON Lines; the reference: ensure_valid_output."""
    tag(benchmark, "W5", GROUP, PACKAGE, BASE_N)
    arr = _array()
    if REFERENCE:
        rows = run(benchmark, ensure_valid_output, arr)
        _rows_ok(rows, arr)
        return
    require(lambda: ensure_valid_output(np.zeros((1, 1))), "ensure_valid_output")
    require(lambda: serialize_lines()([{"a": 1}]), "packflow.serialize")
    write = serialize_lines()

    def convert_and_write(a):
        return write(ensure_valid_output(a))

    payload = run(benchmark, convert_and_write, arr)
    _rows_ok([json.loads(line) for line in payload.splitlines()], arr)


def test_w5_ensure_valid_output(benchmark):
    """Ours doing what the reference does: ensure_valid_output alone."""
    peer_only()
    require(lambda: ensure_valid_output(np.zeros((1, 1))), "ensure_valid_output")
    tag(benchmark, "W5", GROUP, "packflow ensure_valid_output", BASE_N)
    arr = _array()
    _rows_ok(run(benchmark, ensure_valid_output, arr), arr)


def test_w5_orjson_numpy(benchmark):
    peer_only()
    orjson = pytest.importorskip("orjson")
    tag(benchmark, "W5", GROUP, "orjson OPT_SERIALIZE_NUMPY", BASE_N)
    arr = _array()
    payload = run(benchmark, orjson.dumps, arr, option=orjson.OPT_SERIALIZE_NUMPY)
    assert np.array_equal(np.array(orjson.loads(payload), dtype=np.float32), arr)
