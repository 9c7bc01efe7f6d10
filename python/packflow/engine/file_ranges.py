"""A regular input file run by workers that read it themselves: the parent cuts
the file into byte ranges of whole batches, each worker reads its ranges with
its own :class:`LineReader` and writes their outputs to a segment file, and
the parent joins the segments into the sink in order (``copy_file_range``: a
row's bytes never pass through the parent's Python).

The parent's cut is the batching one process makes of the same file (its
reader runs over the file in ``cut_only`` mode), and a worker reads a range
in chunks that end where one process's chunks end (multiples of the chunk
size from the start of the file), so each worker's batches, over-long lines
and line numbers are exactly those of one process: the outputs, error rows and
counts are byte for byte the same.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, Optional

from packflow.engine.batch import BatchEngine, BatchResult, ErrorRow
from packflow.engine.reader import CHUNK_BYTES, LineBatch, LineReader

__all__ = [
    "FileRange",
    "RangeResult",
    "RangeSpec",
    "cut_ranges",
    "fail_range",
    "make_segment_dir",
    "range_bytes_for",
    "remove_segment_dir",
    "run_range",
]

#: Output bytes a range aims at, about: big enough that the per-range cost
#: (a message each way, a segment file, a copy call) is small against the rows,
#: small enough that a stop, a death or the last range leaves little to redo.
RANGE_BYTES = 4 << 20


@dataclass(frozen=True)
class RangeSpec:
    """What every range of one run shares: the input file, the reader's
    settings, and the directory the segment files go to."""

    path: str
    batch_size: int
    max_line_bytes: int
    segment_dir: str
    chunk_bytes: int = CHUNK_BYTES
    #: About how many input bytes a range holds (whole batches, at least one).
    range_bytes: int = RANGE_BYTES


@dataclass(frozen=True)
class FileRange:
    """Whole batches of the input: bytes ``start:end``, lines ``first_line`` to
    ``last_line``. ``batches`` are the spans of the batches it holds (from
    the parent's cut), so a range whose worker died can be retried batch by
    batch."""

    start: int
    end: int
    first_line: int
    lines: int
    batches: tuple[tuple[int, int, int, int], ...] = ()

    @property
    def last_line(self) -> int:
        return self.first_line + self.lines - 1

    def split(self) -> list[FileRange]:
        """One range per batch."""
        return [FileRange(s, e, first, n, ((s, e, first, n),)) for s, e, first, n in self.batches]


@dataclass
class RangeResult:
    """A range's results: its output lines are in ``segment`` (``size`` bytes),
    its error rows here, in line order."""

    segment: str
    size: int
    errors: list[ErrorRow]
    read: int
    written: int
    batches: int

    def write_to(self, runner: Any) -> None:
        """Write through a :class:`~packflow.engine.runner.StreamRunner`."""
        runner.write_segment(self)


def cut_ranges(
    stream: BinaryIO,
    spec: RangeSpec,
    *,
    skip_lines: int = 0,
    should_stop: Optional[Callable[[], bool]] = None,
    input_bytes: Optional[int] = None,
    workers: int = 1,
) -> Iterator[FileRange]:
    """The ranges of ``stream`` (the input file, read from its start): runs of
    whole batches of about ``spec.range_bytes`` each. Given the input's size
    and the number of ``workers``, the ranges shrink towards the end (none
    holds more than a ``2 * workers``-th of what is left, down to one batch),
    so that the workers run out of input at about the same time instead of
    one finishing a whole last range while the others wait."""
    reader = LineReader(
        stream,
        batch_size=spec.batch_size,
        max_line_bytes=spec.max_line_bytes,
        chunk_bytes=spec.chunk_bytes,
        skip_lines=skip_lines,
        should_stop=should_stop,
        cut_only=True,
    )
    held: list[LineBatch] = []
    for batch in reader:
        held.append(batch)
        start = held[0].start
        limit = spec.range_bytes
        if input_bytes is not None:
            limit = min(limit, (input_bytes - start) // (2 * max(1, workers)))
        if batch.end - start >= limit:
            yield _range_of(held)
            held = []
    if held:
        yield _range_of(held)


def _range_of(batches: list[LineBatch]) -> FileRange:
    spans = tuple((b.start, b.end, b.first_line, b.lines) for b in batches)
    lines = sum(b.lines for b in batches)
    return FileRange(batches[0].start, batches[-1].end, batches[0].first_line, lines, spans)


class _RangeFile:
    """Bytes ``start:end`` of a file, read like a file from its start: each read
    ends at the next multiple of the size asked for (counted from the start
    of the file), where one process's reads of the whole file end."""

    def __init__(self, fd: int, start: int, end: int):
        self.fd, self.pos, self.end = fd, start, end

    def read(self, n: int) -> bytes:
        stop = min(self.end, (self.pos // n + 1) * n)
        if stop <= self.pos:
            return b""
        data = os.pread(self.fd, stop - self.pos, self.pos)
        self.pos += len(data)
        return data


def _range_reader(fd: int, spec: RangeSpec, part: FileRange) -> LineReader:
    return LineReader(
        _RangeFile(fd, part.start, part.end),  # type: ignore[arg-type]
        batch_size=spec.batch_size,
        max_line_bytes=spec.max_line_bytes,
        chunk_bytes=spec.chunk_bytes,
        first_line=part.first_line,
    )


def segment_path(spec: RangeSpec, seq: int) -> str:
    return os.path.join(spec.segment_dir, f"{seq}.jsonl")


class _Timeout(BaseException):
    """A batch ran past ``--batch-timeout-s`` (raised by SIGALRM)."""


def _raise_timeout(_signum: int, _frame: Any) -> None:
    raise _Timeout


def run_range(
    engine: BatchEngine,
    fd: int,
    spec: RangeSpec,
    part: FileRange,
    seq: int,
    batch_timeout_s: Optional[float] = None,
) -> RangeResult:
    """In a worker: run the range's batches through ``engine`` and write their
    outputs to the range's segment file."""
    path = segment_path(spec, seq)
    out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    errors: list[ErrorRow] = []
    read = written = batches = size = 0
    try:
        for batch in _range_reader(fd, spec, part):
            if batch.rejected is not None:
                errors.append(batch.rejected)
                read += 1
                continue
            result = _process(engine, batch, batch_timeout_s)
            errors.extend(result.errors)
            read += result.read
            written += result.written
            batches += 1
            view = memoryview(result.output)
            size += len(view)
            while view:
                view = view[os.write(out, view) :]
    finally:
        os.close(out)
    return RangeResult(path, size, errors, read, written, batches)


def _process(engine: BatchEngine, batch: LineBatch, timeout: Optional[float]) -> BatchResult:
    if timeout is None:
        return engine.process(batch.data, batch.first_line)
    previous = signal.signal(signal.SIGALRM, _raise_timeout)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        return engine.process(batch.data, batch.first_line)
    except _Timeout:
        message = f"the batch took longer than {timeout:g} s (--batch-timeout-s)"
        return BatchEngine.fail_batch(batch.data, batch.first_line, "timeout", message)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def fail_range(spec: RangeSpec, part: FileRange, error: str) -> BatchResult:
    """In the parent: a range no worker could finish, its rows as error rows
    with step ``worker`` (a line the reader refuses keeps its ``read`` row)."""
    rows: list[ErrorRow] = []
    read = 0
    with open(spec.path, "rb", buffering=0) as fh:
        for batch in _range_reader(fh.fileno(), spec, part):
            if batch.rejected is not None:
                rows.append(batch.rejected)
                read += 1
                continue
            failed = BatchEngine.fail_batch(batch.data, batch.first_line, "worker", error)
            rows.extend(failed.errors)
            read += failed.read
    return BatchResult(b"", rows, read, 0, [])


def range_bytes_for(input_bytes: int, workers: int) -> int:
    """A range size for an input of ``input_bytes``: :data:`RANGE_BYTES`, or
    less for a small file, so that each worker gets several ranges (and none
    waits idle while another runs the one range there is)."""
    return max(1, min(RANGE_BYTES, input_bytes // (8 * workers)))


def make_segment_dir(near: Optional[str]) -> str:
    """A private directory for the segment files: next to ``near`` (the output
    file, so the join is a copy within one file system) when it is a file,
    else in the system's temporary directory."""
    directory = None
    if near is not None and near != "-" and not near.endswith(".gz"):
        directory = os.path.dirname(os.path.abspath(near))
    try:
        return tempfile.mkdtemp(prefix=".packflow-segments-", dir=directory)
    except OSError:
        return tempfile.mkdtemp(prefix="packflow-segments-")


def remove_segment_dir(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)
