"""W4: checking model outputs, 10,000 rows (also 1, 100 and 1M) of
``{"label", "prob", "scores": [5 floats], "id", "meta": {...}}``.

The reference: its ``check_io`` on a backend whose execute returns the
precomputed rows (a ``json.dumps`` per row is its serializability check).
packflow: the backend's rows through ``packflow.serialize.check_and_dump_lines``,
the same checks as ``check_io`` (length, list of dicts, serializable) made while
writing the JSON Lines, in one pass; ``check_io`` and ``dumps_lines`` are also
timed alone. Peers:
``orjson.dumps`` and ``msgspec.json.encode`` of the same rows."""

from __future__ import annotations

import json

import pytest
from conftest import (
    BASE_N,
    BIG_N,
    BIG_ROUNDS,
    PACKAGE,
    REFERENCE,
    SIZES,
    outputs,
    peer_only,
    record_peak_memory,
    require,
    run,
    serialize_lines,
    size_label,
    skip_big_when_quick,
    tag,
)

from packflow import InferenceBackend


class Precomputed(InferenceBackend):
    """Returns the rows it was given at construction, whatever the inputs."""

    rows: list[dict] = []

    def execute(self, inputs):
        return self.rows


def _backend(rows: list[dict]) -> Precomputed:
    backend = Precomputed()
    backend.rows = rows
    return backend


def _inputs(n: int) -> list[dict]:
    return [{"i": i} for i in range(n)]


def _group(n: int) -> str:
    return f"W4 output check {size_label(n)}"


def _rounds(n: int):
    return BIG_ROUNDS if n >= BIG_N else None


def _memory(benchmark, n, fn, *args):
    if n >= BASE_N:
        record_peak_memory(benchmark, fn, *args)


def _lines_equal(payload: bytes, rows: list[dict]) -> None:
    lines = payload.splitlines()
    assert len(lines) == len(rows)
    step = max(1, len(rows) // 1000)  # every row up to 10k, a sample above
    for i in range(0, len(rows), step):
        assert json.loads(lines[i]) == rows[i]


@pytest.mark.parametrize("n", SIZES, ids=size_label)
def test_w4_packflow(benchmark, n):
    """Ours: one-pass check + JSON Lines; the reference: check_io (it writes nothing)."""
    skip_big_when_quick(benchmark, n)
    require(lambda: _backend([{}]).check_io([{}]), "the output check")
    rows = outputs(n)
    backend, inputs = _backend(rows), _inputs(n)
    tag(benchmark, "W4", _group(n), PACKAGE, n)
    if REFERENCE:
        out = run(benchmark, backend.check_io, inputs, rounds=_rounds(n))
        assert out is rows
        _memory(benchmark, n, backend.check_io, inputs)
        return
    from packflow.serialize import check_and_dump_lines

    def check_and_write(batch):
        return check_and_dump_lines(backend(batch), len(batch))

    payload = run(benchmark, check_and_write, inputs, rounds=_rounds(n))
    _lines_equal(payload, rows)
    _memory(benchmark, n, check_and_write, inputs)


@pytest.mark.parametrize("n", [BASE_N], ids=size_label)
def test_w4_packflow_check_io(benchmark, n):
    """The check alone, as the reference does it."""
    peer_only()
    require(lambda: _backend([{}]).check_io([{}]), "the output check")
    rows = outputs(n)
    backend, inputs = _backend(rows), _inputs(n)
    tag(benchmark, "W4", _group(n), "packflow check_io", n)
    assert run(benchmark, backend.check_io, inputs) is rows


@pytest.mark.parametrize("n", [BASE_N], ids=size_label)
def test_w4_packflow_dumps_lines(benchmark, n):
    """The writing alone."""
    peer_only()
    require(lambda: serialize_lines()([{"a": 1}]), "packflow.serialize")
    tag(benchmark, "W4", _group(n), "packflow dumps_lines", n)
    rows = outputs(n)
    _lines_equal(run(benchmark, serialize_lines(), rows), rows)


@pytest.mark.parametrize("n", SIZES, ids=size_label)
def test_w4_orjson(benchmark, n):
    peer_only()
    orjson = pytest.importorskip("orjson")
    skip_big_when_quick(benchmark, n)
    tag(benchmark, "W4", _group(n), "orjson.dumps", n)
    rows = outputs(n)
    payload = run(benchmark, orjson.dumps, rows, rounds=_rounds(n))
    if n <= BASE_N:
        assert orjson.loads(payload) == rows
    _memory(benchmark, n, orjson.dumps, rows)


@pytest.mark.parametrize("n", SIZES, ids=size_label)
def test_w4_msgspec(benchmark, n):
    peer_only()
    msgspec = pytest.importorskip("msgspec")
    skip_big_when_quick(benchmark, n)
    tag(benchmark, "W4", _group(n), "msgspec.json.encode", n)
    rows = outputs(n)
    encode = msgspec.json.encode
    payload = run(benchmark, encode, rows, rounds=_rounds(n))
    if n <= BASE_N:
        assert msgspec.json.decode(payload) == rows
    _memory(benchmark, n, encode, rows)
