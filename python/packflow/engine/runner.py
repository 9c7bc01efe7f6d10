"""Run a stream of JSON Lines through a backend in micro-batches.

Each batch goes through :class:`packflow.engine.BatchEngine` (one Rust parse, one
backend call, one Rust check-and-write); this module moves its results to the
sinks and keeps the run's summary. Every input line ends up in exactly one
place: the output (one line per good input line, in input order) or the errors
sink (a JSON line naming the line number, the raw line, the step, the error and
its exception type), in input order too.
"""

from __future__ import annotations

import functools
import itertools
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field, replace
from typing import Any, BinaryIO, Optional, Union

from packflow import _core
from packflow.constants import RUN_BATCH_SIZE
from packflow.engine.batch import BatchEngine, BatchResult, ErrorRow, errors_to_jsonl
from packflow.engine.reader import LineBatch

__all__ = ["BatchTimeout", "RunSummary", "StreamRunner", "run_stream"]

#: Most characters of the first error's message kept in the summary.
_FIRST_ERROR_CHARS = 1000


@dataclass
class RunSummary:
    """What a run did. ``read == written + errors`` always holds."""

    read: int = 0
    written: int = 0
    errors: int = 0
    batches: int = 0
    #: From the start of the run, loading the backend (or starting the
    #: workers) included when the runner was told when that began.
    wall_seconds: float = 0.0
    rows_per_second: float = 0.0
    steps: dict[str, dict[str, float]] = field(default_factory=dict)
    interrupted_by: Optional[str] = None
    #: The last input line whose result (output or error row) was written; a
    #: stopped run resumes with ``--skip-lines last_line``.
    last_line: int = 0
    #: False while the run is in progress (in a progress snapshot).
    complete: bool = True
    #: The first rejected row in input order, without its raw line: ``line``,
    #: ``step``, ``error`` and ``error_type`` (``None`` when no row failed).
    first_error: Optional[dict[str, Any]] = None
    #: The part of ``wall_seconds`` spent before the first batch could start:
    #: loading the backend, or starting the worker processes.
    startup_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def format(self) -> str:
        """A short human summary (several lines)."""
        startup = f" (start-up {self.startup_seconds:.3f} s)" if self.startup_seconds else ""
        lines = [
            f"rows read {self.read}, written {self.written}, errors {self.errors}",
            f"wall {self.wall_seconds:.3f} s{startup}, {self.rows_per_second:,.0f} rows/s, "
            f"{self.batches} batches",
        ]
        for step, s in self.steps.items():
            lines.append(
                f"  {step:<17} p50 {s['p50_ms']:.3f} ms  p99 {s['p99_ms']:.3f} ms  "
                f"({int(s['count'])} calls)"
            )
        if self.interrupted_by:
            lines.append(f"interrupted by {self.interrupted_by}")
        return "\n".join(lines)


class BatchTimeout(BaseException):
    """Raised by the SIGALRM handler inside a batch that ran past its timeout.
    A ``BaseException``, so the engine never turns it into row errors."""


def _raise_batch_timeout(signum: int, frame: Any) -> None:
    raise BatchTimeout


class StreamRunner:
    """Feeds batches of JSON Lines bytes to a :class:`BatchEngine` and writes
    the results: outputs to ``sink``, error rows to ``errors`` (``None`` drops
    them after counting). Rows count as written only once their bytes were
    written without error. The summary's step statistics come from
    ``backend.get_stats()``; a :class:`~packflow.engine.WorkerPool` (whose
    results are passed to :meth:`write`) has one that merges its workers'.

    ``batch_timeout_s``: a batch still running after this many seconds is
    interrupted (SIGALRM; main thread only) and its rows become error rows with
    step ``timeout``. The backend is interrupted wherever it was, so a backend
    with state that must stay consistent should not rely on this.

    ``started``: the :func:`time.perf_counter` value at which the run began,
    before the backend was loaded or the workers started; the summary's wall
    time counts from it, and ``startup_seconds`` is the time until this runner
    was made. By default the run begins now.
    """

    def __init__(
        self,
        backend: Any,
        sink: BinaryIO,
        errors: Optional[BinaryIO] = None,
        *,
        flush_each_batch: bool = True,
        engine: Optional[BatchEngine] = None,
        batch_timeout_s: Optional[float] = None,
        write_guard: Optional[AbstractContextManager[Any]] = None,
        started: Optional[float] = None,
    ):
        if batch_timeout_s is not None:
            if batch_timeout_s <= 0:
                raise ValueError("batch_timeout_s must be positive")
            if threading.current_thread() is not threading.main_thread():
                raise ValueError("batch_timeout_s works only in the main thread (it uses SIGALRM)")
        self.batch_timeout_s = batch_timeout_s
        self._guard = write_guard if write_guard is not None else nullcontext()
        self.backend = backend
        self.engine = engine if engine is not None else BatchEngine(backend)
        self.sink = sink
        self.errors_sink = errors
        self.flush_each_batch = flush_each_batch
        self.summary = RunSummary()
        now = time.perf_counter()
        self._started = now if started is None else started
        self.summary.startup_seconds = now - self._started

    def process(self, data: bytes, first_line: int) -> BatchResult:
        """Run one buffer of complete lines (numbered from ``first_line``)."""
        result = self._run(data, first_line)
        self.write(result)
        return result

    def process_batch(self, batch: LineBatch, following: Optional[LineBatch] = None) -> None:
        """Run one batch from a :class:`~packflow.engine.LineReader` (or write
        the line it refused), then note its last line as done. ``following``,
        the batch that comes next when it has been read already, is read
        ahead while this one runs (see :meth:`BatchEngine.process`)."""
        if batch.rejected is not None:
            self.reject(batch.rejected)
        else:
            ahead = None
            if following is not None and following.rejected is None:
                ahead = (following.data, following.first_line)
            self.write(self._run(batch.data, batch.first_line, ahead))
        self.summary.last_line = batch.last_line

    def run(
        self,
        batches: Iterable[Any],
        *,
        through: Optional[Callable[[Iterable[Any]], Iterator[tuple[Any, Any]]]] = None,
        should_stop: Optional[Callable[[], bool]] = None,
        on_batch: Optional[Callable[[RunSummary], None]] = None,
        read_ahead: bool = False,
    ) -> bool:
        """The run's one batch loop: every front door (``packflow run``,
        :func:`run_stream`, in one process or over workers) writes its results
        through here, in input order, counting them from each
        :class:`BatchResult`. Returns whether ``should_stop`` ended the run.

        Without ``through``, each :class:`LineBatch` runs in this process. With
        it (a :class:`~packflow.engine.WorkerPool`'s ``map`` or ``map_ranges``),
        ``through(items)`` hands back ``(item, result)`` pairs in order and this
        loop only writes them. ``should_stop`` is polled after each batch is
        written: in one process the run ends there; through workers no more
        items are taken, and those already taken are finished and written.
        ``on_batch`` sees the running summary after each write.

        ``read_ahead`` (in one process): take the next item before running
        this one, so that its text is read while this one runs. Only for
        sources where taking an item never waits on the outside world (a
        regular file, lines in memory): on a pipe or a broker it would hold
        each batch's output back until the next batch arrived.
        """
        stopped = False

        def taken() -> Iterator[Any]:
            # Checked before each item is taken: an item taken is an item written.
            for item in batches:
                if stopped:
                    return
                yield item

        if through is not None:
            pairs = through(taken())
        elif read_ahead:
            pairs = _with_next(batches)
        else:
            pairs = ((b, None) for b in batches)
        for item, result in pairs:
            if through is None:
                self.process_batch(item, result)
            else:
                self.record(result)
                self.summary.last_line = item.last_line
            if on_batch is not None:
                on_batch(self.summary)
            if not stopped and should_stop is not None and should_stop():
                stopped = True
                if through is None:
                    break
        return stopped

    def record(self, result: Any) -> None:
        """Write a result handed back by workers: a :class:`BatchResult`, or a
        range's result (outputs in a segment file) that knows how to write
        itself through this runner (``result.write_to(runner)``)."""
        if isinstance(result, BatchResult):
            self.write(result)
        else:
            result.write_to(self)

    def _run(
        self, data: bytes, first_line: int, ahead: Optional[tuple[bytes, int]] = None
    ) -> BatchResult:
        if self.batch_timeout_s is None:
            return self.engine.process(data, first_line, ahead=ahead)
        previous = signal.signal(signal.SIGALRM, _raise_batch_timeout)
        signal.setitimer(signal.ITIMER_REAL, self.batch_timeout_s)
        try:
            return self.engine.process(data, first_line, ahead=ahead)
        except BatchTimeout:
            message = f"the batch took longer than {self.batch_timeout_s:g} s (--batch-timeout-s)"
            return BatchEngine.fail_batch(data, first_line, "timeout", message)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)

    def write(self, result: BatchResult) -> None:
        """Write one batch's outputs and error rows, then count them (inside
        ``write_guard``, so an interruption never splits a write from its count)."""
        with self._guard:
            if result.errors:
                self._write_errors(result.errors)
            if result.output:
                self.sink.write(result.output)
            if self.flush_each_batch:
                self.sink.flush()
            # Counted from what the engine read, so the check in finish() can
            # catch a batch whose outputs and error rows do not add up.
            self.summary.read += result.read
            self.summary.written += result.written
            self.summary.batches += 1

    def write_segment(self, result: Any) -> None:
        """Write a range run by a worker (a
        :class:`~packflow.engine.file_ranges.RangeResult`): its error rows, then
        its output, copied from its segment file into the sink by the kernel
        when the sink offers ``copy_from(fd, size)``; the segment is removed."""
        with self._guard:
            if result.errors:
                self._write_errors(result.errors)
            if result.size:
                fd = os.open(result.segment, os.O_RDONLY)
                try:
                    copy_from = getattr(self.sink, "copy_from", None)
                    if copy_from is not None:
                        copy_from(fd, result.size)
                    else:
                        _copy_by_chunks(fd, result.size, self.sink)
                finally:
                    os.close(fd)
            if self.flush_each_batch:
                self.sink.flush()
            self.summary.read += result.read
            self.summary.written += result.written
            self.summary.batches += result.batches
        try:
            os.unlink(result.segment)
        except OSError:
            pass

    def reject(self, row: ErrorRow) -> None:
        """Record a line that never reached the engine (e.g. over the reader's
        length limit)."""
        with self._guard:
            self._write_errors([row])
            self.summary.read += 1

    def _write_errors(self, rows: list[ErrorRow]) -> None:
        if self.summary.first_error is None and rows:
            first = rows[0]
            # Without the raw line, which may be megabytes; the message cut likewise.
            self.summary.first_error = {
                "line": first.line,
                "step": first.step,
                "error": first.error[:_FIRST_ERROR_CHARS],
                "error_type": first.error_type,
            }
        if self.errors_sink is not None:
            self.errors_sink.write(errors_to_jsonl(rows))
            if self.flush_each_batch:
                self.errors_sink.flush()
        self.summary.errors += len(rows)

    def snapshot(self) -> RunSummary:
        """The summary so far, for a progress file (``complete`` false)."""
        s = replace(self.summary, steps=self.backend.get_stats(), complete=False)
        s.wall_seconds = time.perf_counter() - self._started
        s.rows_per_second = s.read / s.wall_seconds if s.wall_seconds > 0 else 0.0
        return s

    def finish(self, interrupted_by: Optional[str] = None, flush: bool = True) -> RunSummary:
        """Flush the sinks (unless ``flush`` is false, for a sink that has gone
        away) and fill in the timing part of the summary."""
        for sink in (self.sink, self.errors_sink) if flush else ():
            if sink is not None:
                sink.flush()
        s = self.summary
        s.wall_seconds = time.perf_counter() - self._started
        s.rows_per_second = s.read / s.wall_seconds if s.wall_seconds > 0 else 0.0
        s.steps = self.backend.get_stats()
        s.interrupted_by = interrupted_by
        if s.read != s.written + s.errors:
            raise RuntimeError(
                f"accounting error: read {s.read} != written {s.written} + errors {s.errors}"
            )
        return s


def _copy_by_chunks(fd: int, size: int, sink: BinaryIO) -> None:
    """For a sink that is not a plain file descriptor (gzip, an in-memory buffer)."""
    offset = 0
    while offset < size:
        chunk = os.pread(fd, min(1 << 20, size - offset), offset)
        if not chunk:
            raise OSError(f"segment file ended at {offset} of {size} bytes")
        sink.write(chunk)
        offset += len(chunk)


def _with_next(items: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
    """Each item with the one after it (None after the last), the next one
    taken before the current one is handed out. When taking the next one
    fails (a read error), the current one is still handed out first, alone:
    what was read before the error is run and written as without reading
    ahead."""
    it = iter(items)
    current = next(it, _END)
    while current is not _END:
        try:
            following = next(it, _END)
        except Exception:
            yield current, None
            raise
        yield current, (None if following is _END else following)
        current = following


_END = object()


def _batches_of_items(source: Iterable[bytes], batch_size: int) -> Iterator[LineBatch]:
    """Batches of ``batch_size`` single-line items as one buffer; item ``i`` of
    the source is line ``i + 1``."""
    it = iter(source)
    line = 1
    while True:
        items = list(itertools.islice(it, batch_size))
        if not items:
            return
        yield LineBatch(_core.join_lines(items), line, lines=len(items))
        line += len(items)


def run_stream(
    backend: Any,
    source: Iterable[bytes],
    sink: BinaryIO,
    *,
    errors: Optional[BinaryIO] = None,
    batch_size: int = RUN_BATCH_SIZE,
    should_stop: Optional[Callable[[], bool]] = None,
    on_batch: Optional[Callable[[RunSummary], None]] = None,
    workers: Union[int, str] = 1,
    config: Optional[dict[str, Any]] = None,
) -> RunSummary:
    """Run ``source`` (an iterable of bytes, one JSON object per item: lines of a
    file, messages of a broker client) through ``backend`` in batches of up to
    ``batch_size`` items. Each good item gives one JSON line on ``sink`` (in
    order); each bad one a JSON line on ``errors`` (``{"line", "raw", "step",
    "error", "error_type"}``). ``should_stop`` is polled between batches;
    ``on_batch`` sees the running summary after each batch. Returns the final
    :class:`RunSummary`.

    A list or tuple ``source`` is read one batch ahead (the next batch's
    text is parsed while this one runs): items appended to a list during the
    run may then be missed; pass ``iter(source)`` (or a generator) to have
    items taken only as batches start.

    ``backend`` is an :class:`~packflow.InferenceBackend`, or the path of a
    project (a directory, or an archive from ``packflow export``) loaded with
    the ``config`` overrides. With ``workers`` above 1 (or ``"auto"``: one per
    usable core) it must be a path: each worker process loads the project
    once and runs whole batches, and the outputs and errors are the same, in
    the same order, as with one (see :class:`packflow.engine.WorkerPool`).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    started = time.perf_counter()
    n_workers = 1
    if workers != 1:
        from packflow.engine.workers import workers_count  # multiprocessing: only when asked

        n_workers = workers_count(workers)
    if isinstance(backend, (str, os.PathLike)):
        from packflow.loaders import InferenceBackendLoader  # yaml: only when a path is given

        load = functools.partial(
            InferenceBackendLoader.from_path, os.fspath(backend), **(config or {})
        )
        if n_workers > 1:
            return _run_stream_workers(
                load, n_workers, source, sink, errors, batch_size, should_stop, on_batch, started
            )
        backend = load()
    elif n_workers > 1 or config:
        raise TypeError(
            "workers and config need the project's path, not a backend object: "
            "each worker process loads the project itself"
        )
    runner = StreamRunner(backend, sink, errors, started=started)
    stopped = runner.run(
        _batches_of_items(source, batch_size),
        should_stop=should_stop,
        on_batch=on_batch,
        # Lines already in memory: taking the next batch never waits.
        read_ahead=isinstance(source, (list, tuple)),
    )
    return runner.finish(interrupted_by="stop request" if stopped else None)


def _run_stream_workers(
    load: Callable[[], Any],
    workers: int,
    source: Iterable[bytes],
    sink: BinaryIO,
    errors: Optional[BinaryIO],
    batch_size: int,
    should_stop: Optional[Callable[[], bool]],
    on_batch: Optional[Callable[[RunSummary], None]],
    started: float,
) -> RunSummary:
    """run_stream over a worker pool: once ``should_stop`` says so, no more items
    are taken and the batches in flight are finished and written."""
    from packflow.engine.workers import WorkerPool

    with WorkerPool(load, workers) as pool:
        runner = StreamRunner(pool, sink, errors, started=started)
        stopped = runner.run(
            _batches_of_items(source, batch_size),
            through=pool.map,
            should_stop=should_stop,
            on_batch=on_batch,
        )
        return runner.finish(interrupted_by="stop request" if stopped else None)
