"""JSON Lines parsing from several threads at once: the shared key cache (taken
with a non-blocking lock, a fresh one when another thread holds it) and the
array scan that runs without the GIL give every thread the single-threaded
result; and since that scan reads the batch without the GIL, a mutable buffer
(which another thread could resize meanwhile) is refused."""

from __future__ import annotations

import sys
import threading

import pytest

from packflow.jsonl import parse_lines, parse_lines_to_ndarray
from packflow.sample_data import NUMERIC_FEATURES, sample_lines

THREADS = 6
ROUNDS = 15


def batches() -> list[bytes]:
    return [b"".join(sample_lines(200, seed=s, malformed_every=17)) for s in range(THREADS)]


def summary(data: bytes):
    parsed = parse_lines(data)
    arr = parse_lines_to_ndarray(data, NUMERIC_FEATURES, ".")
    return (
        parsed.records,
        parsed.line_numbers,
        parsed.errors,
        None if arr is None else (arr.array.tobytes(), arr.array.shape, arr.errors),
    )


def test_threads_parse_alike():
    data = batches()
    want = [summary(d) for d in data]
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            for _ in range(ROUNDS):
                assert summary(data[k]) == want[k]
        except BaseException as e:
            errors.append(e)

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
            assert not t.is_alive(), "a parser thread is stuck"
    finally:
        sys.setswitchinterval(old)
    assert not errors, errors[0]
    assert any(w[3] is not None for w in want), "the array path was never taken"


@pytest.mark.parametrize(
    "data",
    [bytearray(b'{"a": 1}\n'), memoryview(bytearray(b'{"a": 1}\n'))],
    ids=["bytearray", "memoryview"],
)
def test_mutable_buffers_are_refused(data):
    with pytest.raises(TypeError):
        parse_lines_to_ndarray(data, ["a"], ".")
    with pytest.raises(TypeError):
        parse_lines(data)
