"""``LineReader``: cut a byte stream (a file, gzip, a pipe) into batches of
complete JSON Lines for the batch engine.

The buffer is a ``bytearray`` cut from the front (CPython moves its start, it
does not copy what remains), so each byte is copied once into its batch, and a
line that is still arriving is searched for its newline only in the new bytes:
time is linear in the input whatever the line lengths. A line longer than
``max_line_bytes`` is not kept: its first bytes become an error row (step
``read``) and the rest is skipped as it arrives, so memory stays bounded.
"""

from __future__ import annotations

import os
import select
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Optional

from packflow import _core
from packflow.constants import RUN_BATCH_SIZE, RUN_MAX_WAIT_MS
from packflow.engine.batch import ErrorRow

__all__ = ["DEFAULT_MAX_LINE_BYTES", "InputReadError", "LineBatch", "LineReader"]

#: Longest line kept by default (64 MiB); longer lines become error rows.
DEFAULT_MAX_LINE_BYTES = 64 << 20
#: How much of an over-long line its error row keeps as ``raw``.
RAW_PREFIX_BYTES = 1024
CHUNK_BYTES = 1 << 20


class InputReadError(Exception):
    """The input stream failed mid-way (a truncated or corrupt gzip file, an I/O
    error). ``line`` is the number of the first line not handed out; every
    complete line before it was handed out before this was raised."""

    def __init__(self, line: int, cause: BaseException):
        super().__init__(f"reading failed at line {line}: {cause}")
        self.line = line
        self.cause = cause


@dataclass(frozen=True)
class LineBatch:
    """Complete lines (``data``, numbered from ``first_line``), or a line the
    reader refused (``rejected``, with empty ``data``). ``lines`` is how many
    input lines the batch covers, blank ones included."""

    data: bytes
    first_line: int
    rejected: Optional[ErrorRow] = None
    lines: int = 0
    #: Where the batch lies in the stream: the offset of its first byte and
    #: the offset just past its last line (its newline included).
    start: int = 0
    end: int = 0

    @property
    def last_line(self) -> int:
        """The number of the batch's last line."""
        return self.first_line + self.lines - 1


class LineReader:
    """Iterate over :class:`LineBatch` es of at most ``batch_size`` lines.

    ``live``: the stream is a pipe or terminal; lines that have arrived are
    handed on once the oldest has waited ``max_wait_ms``, instead of waiting for
    a full batch. ``should_stop`` is polled between reads; when it returns true
    the reader ends after the lines it holds complete (a partial last line is
    dropped and not counted). ``next_line`` is the number of the next line the
    reader will hand out (lines it has not handed out are not counted).

    ``skip_lines``: pass over the first lines without handing them out (to
    resume a run); numbering still counts them, so line numbers match the file.
    A read that fails (a corrupt gzip stream, an I/O error) hands out the
    complete lines held, then raises :class:`InputReadError`.

    ``first_line``: the number of the stream's first line (a part of a file
    read on its own). ``cut_only``: hand out where the batches lie
    (``start``, ``end``, line numbers) with empty ``data``, for a reader that
    only cuts a file into ranges other processes read.
    """

    def __init__(
        self,
        stream: BinaryIO,
        *,
        batch_size: int = RUN_BATCH_SIZE,
        live: bool = False,
        max_wait_ms: float = RUN_MAX_WAIT_MS,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        should_stop: Optional[Callable[[], bool]] = None,
        chunk_bytes: int = CHUNK_BYTES,
        skip_lines: int = 0,
        first_line: int = 1,
        cut_only: bool = False,
    ):
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if max_line_bytes < 1:
            raise ValueError("max_line_bytes must be at least 1")
        self.stream = stream
        self.batch_size = batch_size
        self.live = live
        self.max_wait = max_wait_ms / 1000
        self.max_line_bytes = max_line_bytes
        self.should_stop = should_stop or (lambda: False)
        self.chunk_bytes = chunk_bytes
        if skip_lines < 0:
            raise ValueError("skip_lines must not be negative")
        self.skip_lines = skip_lines
        self.next_line = first_line
        self.cut_only = cut_only
        self.bytes_read = 0
        self._buf = bytearray()
        self._end = 0  # just past the last known complete line in _buf
        self._count = 0  # complete lines in _buf[:_end]
        self._scan = 0  # no newline in _buf[_end:_scan]
        self._deadline: Optional[float] = None

    # -- buffer bookkeeping ---------------------------------------------------

    def _find_lines(self) -> None:
        want = self.batch_size - self._count
        if want <= 0 or self._scan >= len(self._buf):
            return
        end, n = _core.line_batch_end(self._buf, want, self._scan)
        if n:
            self._end, self._count = end, self._count + n
        self._scan = end if n == want else len(self._buf)

    def _take(self) -> LineBatch:
        """Hand out the complete lines held; the oldest remaining byte's wait
        starts afresh."""
        end, n = self._end, self._count
        start = self.bytes_read - len(self._buf)
        if self.cut_only:
            data = b""
        else:
            with memoryview(self._buf) as view:
                data = view[:end].tobytes()
        del self._buf[:end]  # moves the start: no copy of the remainder
        batch = LineBatch(data, self.next_line, lines=n, start=start, end=start + end)
        self.next_line += n
        self._end = self._count = 0
        self._scan -= end
        self._deadline = time.monotonic() + self.max_wait if self._buf else None
        return batch

    def _partial_too_long(self) -> bool:
        return len(self._buf) - self._end > self.max_line_bytes

    # -- reading --------------------------------------------------------------

    def _read(self) -> Optional[bytes]:
        """The next chunk; b"" at the end; None when a live stream had nothing
        within the wait."""
        if not self.live:
            return self.stream.read(self.chunk_bytes)
        timeout = 0.1
        if self._deadline is not None:
            timeout = max(0.0, min(0.1, self._deadline - time.monotonic()))
        fd = self.stream.fileno()
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            return None
        return os.read(fd, self.chunk_bytes)

    def _skip_long_line(self) -> Iterator[LineBatch]:
        """The partial line at ``_end`` is over the limit: keep its first bytes
        for the error row, drop the rest up to and including its newline."""
        line_no = self.next_line
        start = self.bytes_read - len(self._buf) + self._end
        raw = bytes(self._buf[self._end : self._end + RAW_PREFIX_BYTES])
        length = len(self._buf) - self._end
        del self._buf[:]
        self._end = self._count = self._scan = 0
        ended_by = "newline"
        while True:
            chunk = self._read()
            if chunk is None:
                if self.should_stop():
                    return
                continue
            if not chunk:
                ended_by = "end of input"
                break
            self.bytes_read += len(chunk)
            newline = chunk.find(b"\n")
            if newline < 0:
                length += len(chunk)
                continue
            length += newline
            self._buf += memoryview(chunk)[newline + 1 :]
            break
        self.next_line += 1
        self._deadline = time.monotonic() + self.max_wait if self._buf else None
        message = (
            f"line {line_no} is longer than the limit of {self.max_line_bytes} bytes "
            f"(at least {length} bytes before its {ended_by}); its first "
            f"{len(raw)} bytes are kept as raw"
        )
        end = self.bytes_read - len(self._buf)
        row = ErrorRow(line_no, raw, "read", message)
        yield LineBatch(b"", line_no, row, lines=1, start=start, end=end)

    def _skip(self) -> None:
        """Drop the first ``skip_lines`` lines as they arrive (never more than a
        chunk in memory)."""
        left = self.skip_lines
        while left:
            chunk = self._read()
            if chunk is None:
                if self.should_stop():
                    return
                continue
            if not chunk:
                self.next_line += self.skip_lines - left
                return
            self.bytes_read += len(chunk)
            count = chunk.count(b"\n")
            if count < left:
                left -= count
                continue
            pos = -1
            for _ in range(left):
                pos = chunk.index(b"\n", pos + 1)
            self._buf += memoryview(chunk)[pos + 1 :]
            left = 0
        self.next_line += self.skip_lines

    def __iter__(self) -> Iterator[LineBatch]:
        try:
            self._skip()
            yield from self._batches()
        except InputReadError:
            raise
        except (OSError, EOFError, ValueError, zlib.error) as exc:
            # Whatever complete lines were held go out first (nothing read is
            # lost), then the failure with the line it stopped at.
            self._find_lines()
            while self._count:
                yield self._take()
                self._find_lines()
            raise InputReadError(self.next_line, exc) from exc

    def _batches(self) -> Iterator[LineBatch]:
        eof = False
        while True:
            self._find_lines()
            while self._count >= self.batch_size:
                yield self._take()
                self._find_lines()
            if self._partial_too_long():
                if self._count:
                    yield self._take()
                yield from self._skip_long_line()
                continue
            if eof:
                if self._count:
                    yield self._take()
                if self._buf:
                    # A last line without a newline still counts.
                    data, first = bytes(self._buf), self.next_line
                    start = self.bytes_read - len(data)
                    del self._buf[:]
                    self.next_line += 1
                    if self.cut_only:
                        data = b""
                    yield LineBatch(data, first, lines=1, start=start, end=self.bytes_read)
                return
            if self.should_stop():
                if self._count:
                    yield self._take()
                return
            chunk = self._read()
            if chunk is None:
                # A live stream went quiet: hand on what has waited long enough.
                if (
                    self._count
                    and self._deadline is not None
                    and time.monotonic() >= self._deadline
                ):
                    yield self._take()
                continue
            if not chunk:
                eof = True
                continue
            self.bytes_read += len(chunk)
            if self._deadline is None:
                self._deadline = time.monotonic() + self.max_wait
            self._buf += chunk
