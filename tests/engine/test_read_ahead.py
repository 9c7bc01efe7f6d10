"""Reading the next batch while this one runs (src/read_ahead.rs): a batch
read ahead gives exactly what reading it in its own call gives, a pass is
taken only by the call on the very bytes, first line and digit limit it was
read for, and the runners read ahead only where taking the next batch never
waits."""

from __future__ import annotations

import io
import json
import os
import sys
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from packflow import InferenceBackend
from packflow.engine import BatchEngine
from packflow.engine.runner import StreamRunner, _batches_of_items
from packflow.runner import run_stream


class Scores(InferenceBackend):
    """One score per row; rows whose first feature is negative fail."""

    def execute(self, inputs):
        if isinstance(inputs, list):
            raise AssertionError("the numpy preprocessor gives an array")
        if (np.asarray(inputs[:, 0], dtype=float) < 0).any():
            raise ValueError("negative")
        return [{"s": float(x)} for x in np.asarray(inputs, dtype=float).sum(axis=1)]


def backend() -> Scores:
    return Scores(input_format="numpy", feature_names=["a", "b.c"])


def as_tuple(result):
    return (result.output, result.errors, result.read, result.written, list(result.line_numbers))


def _row(a, c) -> bytes:
    return json.dumps({"a": a, "b": {"c": c}}).encode()


ROW = st.builds(
    _row, st.one_of(st.integers(-2, 10**6), st.floats(-1, 1e6, allow_nan=False)), st.integers(0, 9)
)
ODD = st.sampled_from(
    [
        b'{"a": "text", "b": {"c": 1}}',  # a cell the text reader cannot take
        b'{"a": 1}',  # a missing feature
        b"not json",
        b"[1, 2]",
        b"",
        b"  ",
        b'{"a": 1, "b": {"c": 2}} extra',
        b'{"a": 1e400, "b": {"c": 1}}',
        b'{"a": \xff, "b": {"c": 1}}',  # not UTF-8
        b'{"a": 123456789012345678901234567890, "b": {"c": 1}}',
    ]
)
LINE = st.one_of(ROW, ODD)
BATCHES = st.lists(st.lists(LINE, min_size=0, max_size=12), min_size=1, max_size=6)


def buffers(batches):
    out, line = [], 1
    for lines in batches:
        data = b"".join(x + b"\n" for x in lines)
        out.append((data, line))
        line += len(lines)
    return out


def assert_same_with_and_without_ahead(batches) -> None:
    """Each batch through one engine handed the next batch ahead, and through
    another engine without: the same results and step counts."""
    bufs = buffers(batches)
    plain, ahead = BatchEngine(backend()), BatchEngine(backend())
    for i, (data, first) in enumerate(bufs):
        following = bufs[i + 1] if i + 1 < len(bufs) else None
        want = plain.process(data, first)
        got = ahead.process(data, first, ahead=following)
        assert as_tuple(got) == as_tuple(want)
    counts = {step: s["count"] for step, s in ahead.backend.get_stats().items()}
    assert counts == {step: s["count"] for step, s in plain.backend.get_stats().items()}


@settings(max_examples=150, deadline=None)
@given(BATCHES)
def test_reading_ahead_gives_what_reading_in_the_call_gives(batches):
    assert_same_with_and_without_ahead(batches)


# Batches long enough to be read ahead in several pieces (src/read_ahead.rs
# cuts about every 32 KiB): long runs of good rows with a few odd lines
# between them; no row fails there (each failing row is searched for), the
# small batches above cover those.
GOOD_ROW = st.builds(_row, st.integers(0, 10**6), st.integers(0, 9))
BIG_BATCH = st.lists(
    st.one_of(st.tuples(GOOD_ROW, st.integers(1, 3000)), st.tuples(ODD, st.integers(1, 2))),
    min_size=1,
    max_size=6,
).map(lambda runs: [line for line, n in runs for _ in range(n)])


@settings(max_examples=40, deadline=None)
@given(st.lists(BIG_BATCH, min_size=2, max_size=3))
def test_a_batch_read_in_pieces_gives_what_reading_it_whole_gives(batches):
    assert_same_with_and_without_ahead(batches)


def test_a_pass_is_taken_only_by_its_own_bytes_first_line_and_limit():
    engine = BatchEngine(backend())
    data = b'{"a": 1, "b": {"c": 2}}\n{"a": 3, "b": {"c": 4}}\n'
    other = b'{"a": 5, "b": {"c": 6}}\n'
    # Read ahead as lines 1-2, run as lines 10-11: numbered as asked.
    engine.process(other, 1, ahead=(data, 1))
    assert engine.process(data, 10).line_numbers == [10, 11]
    # Read ahead, then another batch comes first: each gives its own rows.
    engine.process(other, 1, ahead=(data, 1))
    assert engine.process(other, 7).output == b'{"s":11.0}\n'
    assert engine.process(data, 1).output == b'{"s":3.0}\n{"s":7.0}\n'
    # An equal but different bytes object is read afresh (same result).
    twin = bytes(bytearray(data))
    engine.process(other, 1, ahead=(data, 1))
    assert engine.process(twin, 1).output == b'{"s":3.0}\n{"s":7.0}\n'


def test_a_digit_limit_changed_after_reading_ahead_is_the_one_that_counts():
    engine = BatchEngine(backend())
    long_int = b'{"a": ' + b"9" * 5000 + b', "b": {"c": 1}}\n'
    before = sys.get_int_max_str_digits()
    try:
        # Read ahead under a limit that refuses the number as a parse error...
        sys.set_int_max_str_digits(4300)
        engine.process(b'{"a": 1, "b": {"c": 1}}\n', 1, ahead=(long_int, 2))
        assert engine.process(long_int, 2).errors[0].step == "parse"
        engine.process(b'{"a": 1, "b": {"c": 1}}\n', 1, ahead=(long_int, 2))
        # ...and run under one that lets it parse: the number reaches the
        # backend (in an object array, which its float conversion refuses).
        sys.set_int_max_str_digits(10000)
        result = engine.process(long_int, 2)
    finally:
        sys.set_int_max_str_digits(before)
    assert result.written == 0
    assert [e.step for e in result.errors] == ["execute"]


def test_records_backends_ignore_ahead():
    class Sum(InferenceBackend):
        def execute(self, inputs):
            return [{"s": r["a"]} for r in inputs]

    engine = BatchEngine(Sum(input_format="records"))
    first = engine.process(b'{"a": 1}\n', 1, ahead=(b'{"a": 2}\n', 2))
    assert first.output == b'{"s":1}\n'
    assert engine.process(b'{"a": 2}\n', 2).output == b'{"s":2}\n'


def test_ahead_must_be_bytes():
    engine = BatchEngine(backend())
    with pytest.raises(TypeError):
        engine.process(b'{"a": 1, "b": {"c": 1}}\n', 1, ahead=(bytearray(b"{}\n"), 2))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
def test_a_child_forked_while_reading_ahead_runs_the_batch_itself():
    engine = BatchEngine(backend())
    big = b"".join(b'{"a": %d, "b": {"c": 1}}\n' % i for i in range(200_000))
    engine.process(b'{"a": 1, "b": {"c": 1}}\n', 1, ahead=(big, 2))
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its copy of the pipeline has no reading thread
        try:
            os.close(r)
            result = engine.process(big, 2)
            os.write(w, b"%d" % result.written)
        finally:
            os._exit(0)
    os.close(w)
    # A child that joined a thread it does not have would wait forever.
    deadline = time.monotonic() + 60
    while os.waitpid(pid, os.WNOHANG) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung")
        time.sleep(0.01)
    with os.fdopen(r, "rb") as fh:
        told = fh.read()
    assert told == b"200000"
    assert engine.process(big, 2).written == 200_000


class Recorder(io.BytesIO):
    """A sink that notes how many source items had been taken at each write."""

    def __init__(self, taken):
        super().__init__()
        self.taken = taken
        self.seen: list[int] = []

    def write(self, data):
        self.seen.append(self.taken[0])
        return super().write(data)


def lines(n):
    return [b'{"a": %d, "b": {"c": 1}}' % i for i in range(n)]


def test_run_stream_reads_a_list_ahead_but_not_a_generator():
    taken = [0]

    def generate(items):
        for item in items:
            taken[0] += 1
            yield item

    sink = Recorder(taken)
    run_stream(backend(), generate(lines(6)), sink, batch_size=2)
    # Each batch is written before the next one is taken from a generator.
    assert sink.seen == [2, 4, 6]
    calls = []
    engine = BatchEngine(backend())
    original = engine.process

    def spy(data, first_line=1, *, ahead=None):
        calls.append(ahead is not None)
        return original(data, first_line, ahead=ahead)

    engine.process = spy
    runner = StreamRunner(engine.backend, io.BytesIO(), engine=engine)

    runner.run(_batches_of_items(lines(6), 2), read_ahead=True)
    assert calls == [True, True, False]
    assert runner.finish().written == 6


def test_a_read_error_after_a_batch_still_writes_that_batch():
    def batches():
        from packflow.engine.reader import LineBatch

        yield LineBatch(b'{"a": 1, "b": {"c": 1}}\n', 1, lines=1)
        raise OSError("the disk went away")

    out = io.BytesIO()
    runner = StreamRunner(backend(), out)
    with pytest.raises(OSError, match="went away"):
        runner.run(batches(), read_ahead=True)
    assert out.getvalue() == b'{"s":2.0}\n'
    assert runner.summary.written == 1


def test_run_stream_reading_ahead_matches_one_batch_at_a_time():
    source = lines(5000) + [b'{"a": -1, "b": {"c": 1}}', b"bad", b'{"a": "x", "b": {"c": 1}}']
    source = source[:2500] + source[5000:] + source[2500:5000]
    got, got_err = io.BytesIO(), io.BytesIO()
    run_stream(backend(), list(source), got, errors=got_err, batch_size=300)
    want, want_err = io.BytesIO(), io.BytesIO()
    run_stream(backend(), iter(source), want, errors=want_err, batch_size=300)
    assert got.getvalue() == want.getvalue()
    assert got_err.getvalue() == want_err.getvalue()
    assert len(got_err.getvalue().splitlines()) == 3
