"""LineReader: batches of complete lines cut from any chunking, line numbers,
over-long lines as bounded error rows, live streams handed on after the wait."""

from __future__ import annotations

import io
import os
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from packflow.engine import LineReader


class Chunked(io.RawIOBase):
    """A stream that returns the given chunks one read at a time."""

    def __init__(self, chunks):
        self.chunks = list(chunks)

    def readable(self):
        return True

    def read(self, n=-1):
        return self.chunks.pop(0) if self.chunks else b""


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:]) if b > a]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.binary(max_size=12).map(lambda b: b.replace(b"\n", b"")), max_size=40),
    st.booleans(),
    st.lists(st.integers(0, 10_000), max_size=20),
    st.integers(1, 7),
    st.integers(1, 9),
)
def test_batches_rebuild_the_stream(lines, trailing_newline, cuts, batch_size, limit):
    data = b"\n".join(lines) + (b"\n" if trailing_newline and lines else b"")
    reader = LineReader(Chunked(split_at(data, cuts)), batch_size=batch_size, max_line_bytes=limit)
    kept, rejected = {}, {}
    expect_line = 1
    for batch in reader:
        assert batch.first_line == expect_line
        if batch.rejected is not None:
            assert batch.data == b""
            rejected[batch.first_line] = batch.rejected
            expect_line += 1
            continue
        got = batch.data.split(b"\n")
        if batch.data.endswith(b"\n"):
            got.pop()
        assert 1 <= len(got) <= batch_size
        for i, line in enumerate(got):
            kept[batch.first_line + i] = line
        expect_line += len(got)
    # Every line is either handed out whole or rejected (when over the limit).
    numbered = dict(enumerate(lines, start=1))
    if data and not data.endswith(b"\n"):
        assert expect_line == len(lines) + 1
    for n, line in numbered.items():
        if n in rejected:
            assert len(line) > limit
            row = rejected[n]
            assert (row.line, row.step) == (n, "read")
            assert line.startswith(row.raw) and len(row.raw) <= 1024
        elif line or n < len(lines) or trailing_newline:
            assert kept.get(n) == line, n
    assert reader.next_line == expect_line


def test_a_huge_line_is_rejected_with_bounded_raw_and_the_stream_goes_on():
    huge = b'{"x": "' + b"a" * (5 << 20) + b'"}'
    data = b'{"a": 1}\n' + huge + b'\n{"b": 2}\n'
    chunks = [data[i : i + 65536] for i in range(0, len(data), 65536)]
    reader = LineReader(Chunked(chunks), batch_size=10, max_line_bytes=1 << 20)
    batches = list(reader)
    assert [b.data for b in batches] == [b'{"a": 1}\n', b"", b'{"b": 2}\n']
    row = batches[1].rejected
    assert row.line == 2 and row.step == "read" and len(row.raw) == 1024
    assert "longer than the limit of 1048576 bytes" in row.error
    assert [b.first_line for b in batches] == [1, 2, 3]
    # Nothing of the long line stays in the buffer.
    assert reader._buf == bytearray()


def test_a_huge_last_line_without_newline():
    data = b"1\n" + b"x" * 100
    batches = list(LineReader(Chunked([data[:50], data[50:]]), max_line_bytes=10))
    assert batches[0].data == b"1\n"
    assert batches[1].rejected.line == 2
    assert "end of input" in batches[1].rejected.error


def test_long_line_search_looks_only_at_new_bytes(monkeypatch):
    """A line arriving in many chunks is searched once per chunk, not rescanned
    from its start (the old reader was quadratic)."""
    from packflow import _core
    from packflow.engine import reader as reader_mod

    scanned = []
    real = _core.line_batch_end

    def spy(buf, want, start=0):
        scanned.append(len(buf) - start)
        return real(buf, want, start)

    monkeypatch.setattr(reader_mod._core, "line_batch_end", spy)
    chunks = [b"a" * 1000] * 200 + [b"\n"]
    batches = list(LineReader(Chunked(chunks), batch_size=5))
    assert batches[0].data == b"a" * 200_000 + b"\n"
    assert sum(scanned) <= 200_001 + 1000


def test_should_stop_hands_out_complete_lines_then_ends():
    stop = {"now": False}
    chunks = [b"1\n2\n3", b"\n4\n"]

    class Stream(Chunked):
        def read(self, n=-1):
            out = super().read(n)
            stop["now"] = True
            return out

    batches = list(LineReader(Stream(chunks), batch_size=10, should_stop=lambda: stop["now"]))
    assert [b.data for b in batches] == [b"1\n2\n"]


def test_bad_arguments():
    with pytest.raises(ValueError):
        LineReader(io.BytesIO(), batch_size=0)
    with pytest.raises(ValueError):
        LineReader(io.BytesIO(), max_line_bytes=0)


def test_live_stream_hands_on_lines_after_the_wait():
    r, w = os.pipe()
    got = []
    with os.fdopen(r, "rb", buffering=0) as stream:
        reader = LineReader(stream, batch_size=1000, live=True, max_wait_ms=30)

        def consume():
            for batch in reader:
                got.append((time.monotonic(), batch.data))

        t = threading.Thread(target=consume)
        t.start()
        sent = time.monotonic()
        os.write(w, b"1\n2\n")
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            time.sleep(0.01)
        assert got and got[0][1] == b"1\n2\n"
        assert got[0][0] - sent < 2.0
        os.write(w, b"3\n")
        os.close(w)
        t.join(5)
        assert not t.is_alive()
    assert [d for _, d in got] == [b"1\n2\n", b"3\n"]
