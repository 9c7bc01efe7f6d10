"""Line batching helpers against plain-Python versions of the same rules."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from packflow import _core


def py_batch_end(data: bytes, max_lines: int, start: int = 0) -> tuple[int, int]:
    pos = min(start, len(data))
    end, n = pos, 0
    while n < max_lines:
        i = data.find(b"\n", pos)
        if i < 0:
            break
        pos = end = i + 1
        n += 1
    return end, n


def py_join(items: list[bytes]) -> bytes:
    return b"".join(x if x.endswith(b"\n") else x + b"\n" for x in items)


@given(st.binary(max_size=200), st.integers(0, 20), st.integers(0, 250))
def test_line_batch_end_matches_python(data, max_lines, start):
    assert _core.line_batch_end(data, max_lines, start) == py_batch_end(data, max_lines, start)


@given(st.lists(st.binary(max_size=30), max_size=20))
def test_join_lines_matches_python(items):
    assert _core.join_lines(items) == py_join(items)


def test_examples():
    assert _core.line_batch_end(b"a\nbb\nccc", 10) == (5, 2)
    assert _core.line_batch_end(b"a\nbb\nccc", 1, 2) == (5, 1)
    assert _core.join_lines([b"a", b"b\n", b""]) == b"a\nb\n\n"


@pytest.mark.parametrize("bad", [["s"], [1], [bytearray(b"x")], [None]])
def test_join_lines_rejects_non_bytes(bad):
    with pytest.raises(TypeError, match="bytes"):
        _core.join_lines(bad)


def test_line_batch_end_rejects_non_bytes():
    with pytest.raises(TypeError):
        _core.line_batch_end("a\n", 1)
    with pytest.raises(OverflowError):
        _core.line_batch_end(b"a\n", -1)
