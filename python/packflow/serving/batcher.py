"""Dynamic batching: the rows of concurrent requests share backend calls.

Requests queue their rows as JSON Lines, or, from a door that has already
read numeric tensors into the feature cells of a numpy backend, as
:class:`packflow._core.FeatureRows` (a batch holds rows of one kind). One
task on the event loop cuts a batch of at most ``max_batch_rows`` rows as
soon as the model is free, with whatever is queued: while a batch runs, the
next one fills, so the batch size follows the load and a lone request runs at
once. ``max_wait`` (0 by default) lets a row wait that long for company once
the model is free, for a model whose call costs about the same for one row as
for many. A request larger than the room left is split at a row boundary and
finishes in a later batch. The batch runs through the
:class:`~packflow.engine.BatchEngine` on one worker thread, so the event loop
never waits on the model, and the next batch fills while it runs. Each request
then gets its own output lines, in order, or its first failing row: a row that
fails fails only its own request, because the engine retries a failed batch row
by row.

The queue is bounded in rows (a request that does not fit is refused at once,
to be retried) and every request has a deadline, after which it is answered
with a timeout and its rows still queued are dropped.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import heapq
import itertools
import math
import queue
import threading
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from typing import Any, Optional

from packflow import _core
from packflow.constants import (
    SERVE_MAX_BATCH_ROWS,
    SERVE_MAX_QUEUE_ROWS,
    SERVE_MAX_WAIT_MS,
    SERVE_REQUEST_TIMEOUT_S,
)
from packflow.engine import BatchEngine, BatchResult, ErrorRow
from packflow.logger import get_logger

__all__ = ["Batcher", "Job", "Outcome", "QueueFull"]


class QueueFull(Exception):
    """The queue has no room for the request's rows now (``retry_after``
    seconds is a guess at when it will), or never will (``retry_after`` None)."""

    def __init__(self, message: str, retry_after: Optional[int]):
        super().__init__(message)
        self.retry_after = retry_after


class Outcome(enum.Enum):
    DONE = "done"  # every row gave an output: Job.lines
    FAILED = "failed"  # a row failed: Job.error, Job.error_row
    TIMED_OUT = "timed out"
    CRASHED = "crashed"  # the batch raised what the engine does not catch: Job.error
    GONE = "gone"  # the client disconnected: nobody to answer


class Job:
    """One request's rows on their way through the batcher."""

    __slots__ = (
        "data",
        "rows",
        "arrived",
        "deadline",
        "offset",
        "taken",
        "finished_rows",
        "lines",
        "error",
        "error_row",
        "future",
        "owner",
    )

    def __init__(
        self,
        data: bytes | _core.FeatureRows,
        rows: int,
        arrived: float,
        future: asyncio.Future,
        deadline: float,
        owner: Optional[Batcher] = None,
    ):
        self.data = data
        self.rows = rows
        self.arrived = arrived  # when its rows were queued
        self.deadline = deadline  # when it times out (loop time)
        self.offset = 0  # bytes of data (rows of feature rows) already handed to batches
        self.taken = 0  # rows already handed to batches
        self.finished_rows = 0
        self.lines: list[bytes] = []
        self.error: Optional[ErrorRow] = None
        self.error_row = 0  # the failing row's index within the request
        self.future = future  # resolved with an Outcome
        self.owner = owner  # the batcher it was submitted to

    def abandon(self) -> None:
        """Its client went away: see :meth:`Batcher.abandon`."""
        if self.owner is not None:
            self.owner.abandon(self)


class _Part:
    """The rows ``[row, row + rows)`` of a job, at lines ``[line, line + rows)``
    of a batch."""

    __slots__ = ("job", "line", "rows", "row")

    def __init__(self, job: Job, line: int, rows: int, row: int):
        self.job = job
        self.line = line
        self.rows = rows
        self.row = row


class _ModelThread:
    """The one thread that runs batches through the engine (one engine serves
    one caller at a time). A daemon thread: a model stuck in a batch does not
    keep the process alive once the server has given up on it."""

    def __init__(self, engine: BatchEngine, loop: asyncio.AbstractEventLoop):
        self._engine = engine
        self._loop = loop
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name="packflow-model", daemon=True)
        self._thread.start()

    def run(self, data: bytes | _core.FeatureRows) -> asyncio.Future:
        future = self._loop.create_future()
        self._inbox.put((data, future))
        return future

    def stop(self) -> None:
        self._inbox.put(None)

    def _work(self) -> None:
        process, process_rows = self._engine.process, self._engine.process_rows
        call_soon = self._loop.call_soon_threadsafe
        while True:
            item = self._inbox.get()
            if item is None:
                return
            data, future = item
            try:
                result = process(data, 1) if type(data) is bytes else process_rows(data, 1)
            except BaseException as exc:  # noqa: BLE001 - handed to the requests
                try:
                    call_soon(_settle, future, None, exc)
                except RuntimeError:  # the loop is closed: nobody is waiting
                    return
                continue
            try:
                call_soon(_settle, future, result, None)
            except RuntimeError:
                return


def _joined(chunks: list[Any]) -> bytes | _core.FeatureRows:
    """A batch's data from its parts' chunks (all lines, or all feature rows)."""
    if len(chunks) == 1 and type(chunks[0]) is not memoryview:
        return chunks[0]
    if type(chunks[0]) is _core.FeatureRows:
        return _core.FeatureRows.join(chunks)
    return b"".join(chunks)


def _settle(future: asyncio.Future, result: Any, exc: Optional[BaseException]) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)


def _wake(future: Optional[asyncio.Future]) -> None:
    if future is not None and not future.done():
        future.set_result(None)


class Batcher:
    """Queues requests' rows and runs them in batches through ``engine``.

    Use from one event loop: :meth:`submit` a request's rows, await its
    ``Job.future`` for an :class:`Outcome`. ``observe_batch(rows, result)`` is
    called after each batch (for metrics). Started on first use; :meth:`close`
    answers everything queued, then stops the worker thread.
    """

    def __init__(
        self,
        engine: BatchEngine,
        *,
        max_batch_rows: int = SERVE_MAX_BATCH_ROWS,
        max_wait_s: float = SERVE_MAX_WAIT_MS / 1000,
        max_queue_rows: int = SERVE_MAX_QUEUE_ROWS,
        timeout_s: float = SERVE_REQUEST_TIMEOUT_S,
        observe_batch: Optional[Callable[[int, BatchResult], None]] = None,
    ):
        if max_batch_rows < 1 or max_queue_rows < 1:
            raise ValueError("max_batch_rows and max_queue_rows must be at least 1")
        if max_wait_s < 0 or timeout_s <= 0:
            raise ValueError("max_wait_s must be >= 0 and timeout_s > 0")
        self.engine = engine
        self.max_batch_rows = max_batch_rows
        self.max_wait_s = max_wait_s
        self.max_queue_rows = max_queue_rows
        self.timeout_s = timeout_s
        self.observe_batch = observe_batch
        #: Rows queued and not yet handed to a batch (of live requests).
        self.queued_rows = 0
        #: Requests submitted and not yet answered.
        self.pending = 0
        self._queue: collections.deque[Job] = collections.deque()
        # Every request not yet answered, as a heap by deadline (a deadline
        # counts from when the request began, before its body arrived, so
        # requests do not time out in the order they are queued); one timer,
        # set for the earliest, serves them all.
        self._unanswered: list[tuple[float, int, Job]] = []
        self._numbers = itertools.count()
        self._reaper: Optional[asyncio.TimerHandle] = None
        self._reaper_at = math.inf
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[_ModelThread] = None
        self._task: Optional[asyncio.Task] = None
        self._wakeup: Optional[asyncio.Future] = None
        self._waiting_for_first = False
        self._closing = False
        self._rows_per_s = 0.0  # smoothed throughput, for Retry-After
        #: When the batch running now started (loop time), None when idle.
        self._running_since: Optional[float] = None

    # -- the request side ---------------------------------------------------------

    def submit(
        self, data: bytes | _core.FeatureRows, rows: int, began: Optional[float] = None
    ) -> Job:
        """Queue ``rows`` rows (``data``: that many lines, newline-terminated,
        or :class:`~packflow._core.FeatureRows` of that many rows).
        Raises :class:`QueueFull` when they do not fit. The request times out
        ``timeout_s`` after ``began`` (the event loop's time at which the
        request started arriving; default: now)."""
        if self._closing:
            raise QueueFull("the server is shutting down", retry_after=1)
        if self._task is None:
            self._start()
        if rows > self.max_queue_rows:
            raise QueueFull(
                f"the request has {rows} rows; the queue holds at most "
                f"{self.max_queue_rows}: split it, or raise the server's limit "
                "(packflow serve --max-queue-rows, create_app's max_queue_rows)",
                retry_after=None,
            )
        if self.queued_rows + rows > self.max_queue_rows:
            raise QueueFull(
                f"the queue is full ({self.queued_rows} of {self.max_queue_rows} rows)",
                retry_after=self.retry_after(),
            )
        loop = self._loop
        assert loop is not None
        now = loop.time()
        deadline = (now if began is None else min(began, now)) + self.timeout_s
        job = Job(data, rows, now, loop.create_future(), deadline, self)
        unanswered = self._unanswered
        while unanswered and unanswered[0][2].future.done():  # answered ones leave as they come
            heapq.heappop(unanswered)
        heapq.heappush(unanswered, (deadline, next(self._numbers), job))
        if deadline < self._reaper_at:
            if self._reaper is not None:
                self._reaper.cancel()
            self._reaper = loop.call_at(deadline, self._reap)
            self._reaper_at = deadline
        self.pending += 1
        if rows == 0:
            self._finish(job, Outcome.DONE)
            return job
        self._queue.append(job)
        self.queued_rows += rows
        if self._waiting_for_first or self.queued_rows >= self.max_batch_rows:
            self._waiting_for_first = False
            _wake(self._wakeup)
        return job

    def abandon(self, job: Job) -> None:
        """The client of ``job`` went away: its rows not yet in a batch are
        dropped (rows in a running batch finish, their outputs discarded)."""
        self._finish(job, Outcome.GONE)

    def stuck_for(self, seconds: float) -> bool:
        """Whether the batch running now started more than ``seconds`` ago."""
        since = self._running_since
        return since is not None and self._loop is not None and self._loop.time() - since > seconds

    def retry_after(self) -> int:
        """Seconds until the queue has likely drained (1 to 60)."""
        if self._rows_per_s <= 0:
            return 1
        return int(min(60.0, max(1.0, self.queued_rows / self._rows_per_s + 0.5)))

    def _finish(self, job: Job, outcome: Outcome) -> None:
        if job.future.done():
            return
        # Rows not yet handed to a batch are dropped from the queue.
        self.queued_rows -= job.rows - job.taken
        job.taken = job.rows
        job.data = b""  # every row is run or dropped
        self.pending -= 1
        job.future.set_result(outcome)

    def _reap(self) -> None:
        """Time out the requests past their deadline; wake again at the next one."""
        loop = self._loop
        assert loop is not None
        self._reaper = None
        self._reaper_at = math.inf
        now = loop.time()
        unanswered = self._unanswered
        while unanswered:
            deadline, _, job = unanswered[0]
            if job.future.done():
                heapq.heappop(unanswered)
            elif deadline <= now:
                heapq.heappop(unanswered)
                self._finish(job, Outcome.TIMED_OUT)
            else:
                self._reaper = loop.call_at(deadline, self._reap)
                self._reaper_at = deadline
                return

    # -- the batch side -----------------------------------------------------------

    def _start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = _ModelThread(self.engine, self._loop)
        self._task = self._loop.create_task(self._run(), name="packflow-batcher")

    def _oldest(self) -> Optional[Job]:
        """The oldest request with rows still queued (answered ones are dropped)."""
        q = self._queue
        while q and q[0].future.done():
            q.popleft()
        return q[0] if q else None

    async def _sleep_until_woken(self, delay: Optional[float]) -> None:
        loop = self._loop
        assert loop is not None
        self._wakeup = loop.create_future()
        handle = loop.call_later(delay, _wake, self._wakeup) if delay is not None else None
        try:
            await self._wakeup
        finally:
            self._wakeup = None
            if handle is not None:
                handle.cancel()

    async def _run(self) -> None:
        loop = self._loop
        assert loop is not None and self._thread is not None
        while True:
            oldest = self._oldest()
            if oldest is None:
                if self._closing:
                    return
                self._waiting_for_first = True
                try:
                    await self._sleep_until_woken(None)
                finally:
                    self._waiting_for_first = False
                continue
            wait = oldest.arrived + self.max_wait_s - loop.time()
            if wait > 0 and self.queued_rows < self.max_batch_rows and not self._closing:
                await self._sleep_until_woken(wait)
                continue
            parts, chunks = self._cut()
            if not parts:
                continue
            data = _joined(chunks)
            started = loop.time()
            self._running_since = started
            try:
                result = await self._thread.run(data)
            except BaseException as exc:  # noqa: BLE001 - every request of the batch is told
                if isinstance(exc, asyncio.CancelledError):
                    raise
                await self._alone(parts, chunks, exc)
                continue
            finally:
                self._running_since = None
            try:
                self._deliver(parts, result)
            except Exception as exc:  # noqa: BLE001 - a bug here must not stop the batcher
                get_logger().exception("handing out a batch's outputs failed")
                self._crash(parts, exc)
                continue
            rows = sum(p.rows for p in parts)
            elapsed = max(loop.time() - started, 1e-6)
            # Smoothed rows/s of the model, to say when a full queue will drain.
            self._rows_per_s = 0.8 * self._rows_per_s + 0.2 * (rows / elapsed)
            if self.observe_batch is not None:
                self.observe_batch(rows, result)

    def _cut(self) -> tuple[list[_Part], list[Any]]:
        """Take up to ``max_batch_rows`` rows from the front of the queue: the
        parts and their rows (one chunk per part: bytes of lines, or feature
        rows). A batch takes rows of one kind, the oldest job's: jobs of the
        other kind are passed over (at most ``max_batch_rows`` of them, so a
        cut costs no more than the batch it makes), keep their order and go
        back to the front for the next batch. Were the cut to stop at the
        first of them, requests of both kinds arriving turn about would run
        one request a batch."""
        parts: list[_Part] = []
        chunks: list[Any] = []
        room = self.max_batch_rows
        line = 1
        q = self._queue
        kind = None
        passed: list[Job] = []
        while room and q:
            job = q[0]
            if job.future.done():
                q.popleft()
                continue
            data = job.data
            lines = type(data) is bytes
            if kind is None:
                kind = lines
            elif kind is not lines:
                if len(passed) == self.max_batch_rows:
                    break
                passed.append(q.popleft())
                continue
            left = job.rows - job.taken
            if not lines:
                take = min(left, room)
                end = job.taken + take
                if take == left:
                    q.popleft()
                chunks.append(data if take == job.rows else data.slice(job.taken, end))
            else:
                if left <= room:
                    take, end = left, len(data)
                    q.popleft()
                else:
                    take = room
                    end, _ = _core.line_batch_end(data, room, job.offset)
                if job.offset == 0 and end == len(data):
                    chunks.append(data)
                else:
                    chunks.append(memoryview(data)[job.offset : end])
            parts.append(_Part(job, line, take, job.taken))
            job.offset = end
            job.taken += take
            self.queued_rows -= take
            line += take
            room -= take
        q.extendleft(reversed(passed))
        return parts, chunks

    def _deliver(self, parts: list[_Part], result: BatchResult) -> None:
        """Hand each request its output lines, or its first failing row."""
        lines = result.output.split(b"\n")
        numbers = result.line_numbers
        failed: dict[int, tuple[int, ErrorRow]] = {}
        if result.errors:
            starts = [p.line for p in parts]
            for err in result.errors:
                part = parts[bisect_right(starts, err.line) - 1]
                row = part.row + (err.line - part.line)
                known = failed.get(id(part.job))
                if known is None or row < known[0]:
                    failed[id(part.job)] = (row, err)
        for part in parts:
            job = part.job
            if job.future.done():
                continue
            failure = failed.get(id(job))
            if failure is not None:
                job.error_row, job.error = failure
                self._finish(job, Outcome.FAILED)
                continue
            lo = bisect_left(numbers, part.line)
            hi = bisect_left(numbers, part.line + part.rows, lo)
            job.lines += lines[lo:hi]
            job.finished_rows += part.rows
            if job.finished_rows == job.rows:
                self._finish(job, Outcome.DONE)

    async def _alone(self, parts: list[_Part], chunks: list[Any], exc: BaseException) -> None:
        """The batch raised what the engine does not turn into row errors
        (``SystemExit`` or ``KeyboardInterrupt`` from a hook, a bug): each
        request's rows run again alone, so that only the requests whose own
        rows raise it fail."""
        log = get_logger()
        if len(parts) == 1:
            log.error(
                "a batch raised %s, which the engine does not turn into row errors; "
                "its request failed",
                type(exc).__name__,
                exc_info=(type(exc), exc, exc.__traceback__),
            )
            self._crash(parts, exc)
            return
        log.error(
            "a batch of %d requests raised %s, which the engine does not turn into row "
            "errors: each request's rows are run again alone",
            len(parts),
            type(exc).__name__,
            exc_info=(type(exc), exc, exc.__traceback__),
        )
        assert self._thread is not None
        for part, chunk in zip(parts, chunks):
            if part.job.future.done():
                continue
            alone = _Part(part.job, 1, part.rows, part.row)
            assert self._loop is not None
            # Each rerun is a batch of its own (for /readyz's hung-model check).
            self._running_since = self._loop.time()
            try:
                result = await self._thread.run(
                    chunk if type(chunk) is _core.FeatureRows else bytes(chunk)
                )
            except BaseException as again:  # noqa: BLE001 - this request is told
                if isinstance(again, asyncio.CancelledError):
                    raise
                log.error(
                    "a request's rows raised %s alone: that request failed", type(again).__name__
                )
                self._crash([alone], again)
                continue
            self._deliver([alone], result)
            if self.observe_batch is not None:
                self.observe_batch(part.rows, result)

    def _crash(self, parts: list[_Part], exc: BaseException) -> None:
        message = f"the batch failed: {type(exc).__name__}: {exc}"
        for part in parts:
            part.job.error = ErrorRow(part.line, b"", "run", message, type(exc).__name__)
            self._finish(part.job, Outcome.CRASHED)

    # -- shutting down ------------------------------------------------------------

    async def close(self, timeout_s: Optional[float] = None) -> None:
        """Answer every queued request, then stop the worker thread. After
        ``timeout_s`` (default: the request timeout) a batch still running is
        abandoned to its daemon thread."""
        self._closing = True
        task = self._task
        if task is None:
            return
        _wake(self._wakeup)
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout_s or self.timeout_s)
        except asyncio.TimeoutError:
            task.cancel()
        finally:
            if self._thread is not None:
                self._thread.stop()
