"""``WorkerPool``: batches of JSON Lines run by worker processes, each with its own
:class:`~packflow.engine.BatchEngine`, their results handed back in input order.

The parent only moves bytes: it sends each batch's raw lines down a pipe, and a
worker (``worker_process.py``) parses, runs the backend, checks and writes the
outputs (all of ``BatchEngine.process``) and sends back the
:class:`BatchResult`. A worker that
dies has its batch retried once on a fresh worker; a second death turns the
batch's rows into error rows with step ``worker`` (``BatchEngine.fail_batch``).
The per-step statistics of the workers are merged into one set.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import multiprocessing
import os
import pickle
import selectors
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Optional

from packflow import _core
from packflow.engine import worker_process as wire
from packflow.engine.batch import BatchEngine, BatchResult
from packflow.engine.file_ranges import FileRange, RangeSpec, fail_range, segment_path
from packflow.engine.reader import LineBatch
from packflow.engine.worker_setup import (
    AUTO_MIN_INPUT_BYTES,
    WorkerStartError,
    usable_cores,
    workers_count,
)

__all__ = [
    "AUTO_MIN_INPUT_BYTES",
    "WorkerPool",
    "WorkerStartError",
    "usable_cores",
    "workers_count",
]

#: Pipe capacity asked for (Linux; 1 MiB is the unprivileged maximum), so a
#: batch usually crosses in one write instead of 16 wake-ups of 64 KiB.
_PIPE_BYTES = 1 << 20
#: Batches a worker holds at once: the one it runs and the next, so it never
#: waits for the parent between batches.
_DEPTH = 2
#: A worker's second death while running a batch dead-letters the batch.
_MAX_DEATHS = 2


def _grow_pipe(fd: int) -> None:
    try:
        import fcntl

        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
    except (ImportError, AttributeError, OSError):
        pass  # not Linux, or over the system's limit: the default size works


def _describe_exit(exitcode: Optional[int]) -> str:
    if exitcode is None:
        return "still running"
    if exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"


def _open_descriptors() -> Optional[list[int]]:
    """The descriptors open in this process, listed from /proc (Linux) or
    /dev/fd; None where neither lists them. Taken just before a fork, all of
    them are still open when it happens (the pool forks only while no other
    thread runs), so the numbers the fork itself opens are not among them."""
    for directory in ("/proc/self/fd", "/dev/fd"):
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        listed = []
        for name in names:
            fd = int(name)
            try:
                os.fstat(fd)  # the listing's own descriptor is closed by now
            except OSError:
                continue
            listed.append(fd)
        return listed
    return None


class _Worker:
    """The parent's handle on one worker process and its two pipes."""

    def __init__(
        self,
        ctx: Any,
        load: Callable[[], Any],
        allow_nan: bool,
        name: str,
    ):
        batches_r, batches_w = ctx.Pipe(duplex=False)
        results_r, results_w = ctx.Pipe(duplex=False)
        # A forked worker starts with copies of this process's descriptors and
        # closes them, but the standard streams and its own ends of its pipes:
        # holding another worker's batch pipe, this end of its own, or any
        # pipe of this process to another one, would keep that pipe's reader
        # from ever seeing the end of its input.
        inherited: list[int] = []
        if ctx.get_start_method() == "fork":
            own = {batches_r.fileno(), results_w.fileno()}
            inherited = [fd for fd in _open_descriptors() or () if fd > 2 and fd not in own]
        self.process = ctx.Process(
            target=wire.worker_main,
            args=(load, allow_nan, batches_r, results_w, inherited),
            name=name,
        )
        try:
            with warnings.catch_warnings():
                # Python 3.12+ warns that forking a process with threads may
                # deadlock the child. The pool forks only when no other Python
                # thread runs; the native ones are numpy's OpenBLAS pool, which
                # OpenBLAS stops around a fork (its own atfork handler), and the
                # child takes no lock another thread could hold before it loads
                # the backend itself.
                warnings.filterwarnings("ignore", r".*fork\(\)", DeprecationWarning)
                self.process.start()
        finally:
            # The worker has its own copies; ours would hide its end of stream.
            batches_r.close()
            results_w.close()
        self.batches, self.results = batches_w, results_r
        self.send_fd, self.recv_fd = batches_w.fileno(), results_r.fileno()
        _grow_pipe(self.send_fd)
        _grow_pipe(self.recv_fd)
        os.set_blocking(self.send_fd, False)
        os.set_blocking(self.recv_fd, False)
        self.reader = wire.FrameReader()
        self.ready = False
        self.exited = False
        #: Asked for its step statistics, not answered yet.
        self.stats_due = False
        #: Sequence numbers of the batches sent, oldest (the running one) first.
        self.outstanding: collections.deque[int] = collections.deque()
        #: A retried batch waiting for this (fresh) worker.
        self.bound: collections.deque[int] = collections.deque()
        #: Bytes written to nobody yet (the pipe was full).
        self.unsent: collections.deque[memoryview] = collections.deque()

    @property
    def load(self) -> int:
        return len(self.outstanding)

    def close_input(self) -> None:
        """End of stream for the worker: it finishes what it holds and exits."""
        self.unsent.clear()
        self.batches.close()

    def close(self) -> None:
        for conn in (self.batches, self.results):
            conn.close()


@dataclass
class _Slot:
    """A batch (or a range of the input file) the pool holds, from the feeder
    until it is handed back."""

    item: Any
    result: Optional[Any] = None
    done: bool = False
    deaths: int = 0
    #: A range whose worker died, split into one slot per batch, and their ids.
    parts: Optional[list[_Slot]] = None
    part_ids: tuple[int, ...] = ()

    @property
    def finished(self) -> bool:
        return all(p.done for p in self.parts) if self.parts is not None else self.done

    def handed(self) -> list[tuple[Any, Any]]:
        slots = self.parts if self.parts is not None else [self]
        return [(s.item, s.result) for s in slots]


class _Feeder(threading.Thread):
    """Pulls batches from the caller's iterable on its own thread, so a source
    that waits (a quiet pipe, a broker) never holds back results that are ready,
    and never more than ``limit`` batches ahead of what has been handed back."""

    def __init__(self, source: Iterable[LineBatch], limit: int, wake: Callable[[], None]):
        super().__init__(name="packflow-feeder", daemon=True)
        self.source = iter(source)
        self.limit = limit
        self.wake = wake
        self.cond = threading.Condition()
        self.held = 0
        self.ready: collections.deque[LineBatch] = collections.deque()
        self.finished = False
        self.cancelled = False
        self.error: Optional[BaseException] = None

    def run(self) -> None:
        try:
            while True:
                with self.cond:
                    while self.held >= self.limit and not self.cancelled:
                        self.cond.wait()
                    if self.cancelled:
                        return
                    self.held += 1
                try:
                    batch = next(self.source)
                except StopIteration:
                    return
                with self.cond:
                    self.ready.append(batch)
                self.wake()
        except BaseException as exc:  # noqa: BLE001 - raised again by map() on the main thread
            self.error = exc
        finally:
            with self.cond:
                self.finished = True
            self.wake()

    def take(self) -> list[LineBatch]:
        with self.cond:
            batches = list(self.ready)
            self.ready.clear()
            return batches

    def release(self) -> None:
        with self.cond:
            self.held -= 1
            self.cond.notify()

    def cancel(self) -> None:
        with self.cond:
            self.cancelled = True
            self.cond.notify()


class WorkerPool:
    """``workers`` processes, each running a :class:`BatchEngine` over the backend
    that ``load()`` returns; :meth:`map` runs batches of raw JSON Lines through
    them and hands the results back in input order.

    ``load`` is called once in each worker (so ``initialize()`` runs once per
    worker) and must be picklable: a module-level function or class, or a
    ``functools.partial`` of one, such as
    ``partial(InferenceBackendLoader.from_path, project, **config)``. Workers are
    started with ``multiprocessing``'s ``spawn`` method (``context`` may name
    ``forkserver``), so a script that creates a pool needs the usual
    ``if __name__ == "__main__":`` guard.

    ``context="fork"`` (POSIX) forks the workers :meth:`start` starts from this
    process, so they begin with its imports done (numpy, pydantic, packflow: a
    few tenths of a second each fresh interpreter spends) and load the backend
    themselves. It is for a process that runs no other Python thread when it
    calls :meth:`start` (``packflow run`` is one); when another thread runs
    then (or where the open descriptors cannot be listed), the workers are
    spawned instead. A worker that replaces one that
    died mid-run is always spawned: by then the caller may run threads. A
    forked worker closes every descriptor it inherited but the standard
    streams (so no pipe of this process stays open in it), and, as
    ``multiprocessing``'s forked children do, it ends without running
    ``atexit`` handlers.

    At most ``max_in_flight`` batches (default: 4 per worker) are held between
    the caller's iterable and the results handed back, whatever the input size.
    Use the pool as a context manager, or call :meth:`start` and then
    :meth:`close` (or :meth:`kill`).
    """

    def __init__(
        self,
        load: Callable[[], Any],
        workers: int = 2,
        *,
        allow_nan: bool = False,
        max_in_flight: Optional[int] = None,
        context: str = "spawn",
    ):
        if workers < 1:
            raise ValueError("workers must be at least 1")
        if max_in_flight is not None and max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        try:
            pickle.dumps(load)
        except Exception as exc:
            raise TypeError(
                f"load must be picklable (a module-level function or class, or a "
                f"functools.partial of one) to reach the worker processes: {exc}"
            ) from exc
        self.load = load
        self.workers = workers
        self.allow_nan = allow_nan
        self.max_in_flight = max_in_flight or 4 * workers
        #: How :meth:`start` starts workers, and how a replacement is started.
        self._start_ctx = multiprocessing.get_context(context)
        self._ctx = multiprocessing.get_context("spawn" if context == "fork" else context)
        self._pool: list[_Worker] = []
        self._pending: collections.deque[int] = collections.deque()
        #: Every slot that can be sent to a worker, by its id (a range split
        #: after a death has one id per part).
        self._work: dict[int, _Slot] = {}
        self._ranges: Optional[tuple[Any, Optional[float]]] = None
        self._selector: Optional[selectors.BaseSelector] = None
        self._wake_r = self._wake_w = -1
        self._stats = _core.StepStats()
        self._started = False
        self._closed = False
        self._stop_now = False
        self._spawned = 0
        self._next_seq = 0
        self._mapping = False

    def __repr__(self) -> str:
        return f"WorkerPool({self.load!r}, workers={self.workers})"

    def __enter__(self) -> WorkerPool:
        if not self._started:
            self.start()
        return self

    def __exit__(self, exc_type: Any, *_exc: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.kill()

    # -- life cycle -----------------------------------------------------------

    def start(self) -> None:
        """Start the workers and wait until each has loaded the backend. Raises
        :class:`WorkerStartError` (after stopping the others) if one cannot."""
        if self._started:
            raise RuntimeError("the pool is already started")
        self._started = True
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, ("wake", None))
        atexit.register(self.kill)
        ctx = self._start_ctx
        if ctx.get_start_method() == "fork" and (
            threading.active_count() > 1  # it might hold a lock the child needs
            or _open_descriptors() is None  # what the child must close is unknown
        ):
            ctx = self._ctx
        try:
            for _ in range(self.workers):
                self._spawn(ctx)
            while not all(w.ready for w in self._pool):
                self._poll()
        except BaseException:
            self.kill()
            raise

    def close(self, timeout: float = 60.0) -> None:
        """Let each worker finish what it holds, send its last step statistics
        and exit (a spawned one running its ``atexit`` handlers, which a kill
        would skip); a worker still running after ``timeout`` seconds is
        killed."""
        if self._closed or not self._started:
            return
        for w in self._pool:
            self._unregister(w.send_fd)
            w.close_input()
        deadline = time.monotonic() + timeout
        try:
            while self._pool and time.monotonic() < deadline:
                self._poll(timeout=max(0.0, deadline - time.monotonic()), respawn=False)
        except WorkerStartError:
            pass  # a replacement that could not load had no batch left to run
        finally:
            self.kill()

    def kill(self) -> None:
        """Stop every worker at once (SIGKILL) and release the pipes."""
        if self._closed or not self._started:
            return
        self._closed = True
        atexit.unregister(self.kill)
        for w in self._pool:
            if w.process.is_alive():
                w.process.kill()
        for w in self._pool:
            w.process.join()
            w.close()
            w.process.close()
        self._pool.clear()
        if self._selector is not None:
            self._selector.close()
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)
        # A late stop_now() (a signal after the run) must not write to a reused fd.
        self._wake_r = self._wake_w = -1

    def stop_now(self) -> None:
        """Make :meth:`map` end at once, without the results still in flight; the
        workers are killed. Safe to call from a signal handler."""
        self._stop_now = True
        self._wake()

    @property
    def pids(self) -> list[int]:
        """Process ids of the running workers (for monitoring)."""
        return [w.process.pid for w in self._pool if w.process.pid is not None]

    def get_stats(self) -> dict[str, dict[str, float]]:
        """Per step, the statistics of all the workers (see
        :meth:`packflow.InferenceBackend.get_stats`), merged: complete once a
        :meth:`map` has ended. A worker that died takes with it those of the
        batches it ran since then."""
        return self._stats.stats()

    # -- running batches ------------------------------------------------------

    def map(
        self, batches: Iterable[LineBatch]
    ) -> Iterator[tuple[LineBatch, Optional[BatchResult]]]:
        """Each batch with its :class:`BatchResult`, in the order of ``batches``;
        a batch the reader refused (``batch.rejected`` set) comes back with
        ``None``, in its place.

        ``batches`` is consumed on a background thread. When it ends (or raises,
        or the caller stops asking), the batches already taken are finished
        and handed back first (an exception is raised after them). Raises
        :class:`WorkerStartError` when a fresh worker, started in place of one
        that died, cannot load the backend.
        """
        return self._map(batches, None)

    def map_ranges(
        self,
        ranges: Iterable[FileRange],
        spec: RangeSpec,
        *,
        batch_timeout_s: Optional[float] = None,
    ) -> Iterator[tuple[FileRange, Any]]:
        """Like :meth:`map`, for ranges of a regular file that each worker reads
        itself (see ``file_ranges.py``): each range comes back with a
        :class:`RangeResult` (its outputs in a segment file in
        ``spec.segment_dir``, which the caller joins and removes). A range whose
        worker died is run again batch by batch; a batch that kills two workers
        on its own comes back as a :class:`BatchResult` of error rows (step
        ``worker``), in its place. ``batch_timeout_s`` interrupts a
        batch in its worker (its rows become error rows with step
        ``timeout``)."""
        return self._map(ranges, (spec, batch_timeout_s))

    def _map(
        self, items: Iterable[Any], ranges: Optional[tuple[Any, Optional[float]]]
    ) -> Iterator[tuple[Any, Any]]:
        if not self._started or self._closed:
            raise RuntimeError("the pool is not running: start() it first")
        if self._mapping:
            raise RuntimeError("the pool is already running a map()")
        self._mapping = True
        self._ranges = ranges
        feeder = _Feeder(items, self.max_in_flight, self._wake)
        slots: dict[int, _Slot] = {}
        # Sequence numbers never repeat, so a late result of an abandoned map()
        # cannot be taken for one of this map's batches.
        taken = handed = self._next_seq
        feeder.start()
        try:
            while not self._stop_now:
                for item in feeder.take():
                    slot = slots[taken] = _Slot(item)
                    if getattr(item, "rejected", None) is None:
                        self._work[taken] = slot
                        self._pending.append(taken)
                    else:
                        slot.done = True
                    taken += 1
                    self._next_seq = taken
                self._dispatch()
                while handed in slots and slots[handed].finished and not self._stop_now:
                    slot = slots.pop(handed)
                    self._work.pop(handed, None)
                    for part_id in slot.part_ids:
                        self._work.pop(part_id, None)
                    handed += 1
                    feeder.release()
                    yield from slot.handed()
                if feeder.finished and not slots and not feeder.ready:
                    self._collect_stats()
                    if feeder.error is not None:
                        raise feeder.error
                    return
                self._poll()
            self.kill()
        except WorkerStartError:
            self.kill()
            raise
        finally:
            self._mapping = False
            feeder.cancel()
            self._pending.clear()
            self._work.clear()
            # A reader blocked on a quiet pipe ends at its next poll; do not wait.
            feeder.join(timeout=1.0)

    def _collect_stats(self) -> None:
        """Ask every idle worker for its step statistics and wait for them."""
        for w in self._pool:
            if w.ready and not w.outstanding:
                w.stats_due = True
                w.unsent.append(memoryview(wire.HEADER.pack(wire.SEND_STATS, 0, 0, 0)))
                self._flush(w)
        while any(w.stats_due for w in self._pool) and not self._stop_now:
            self._poll()

    # -- the event loop -------------------------------------------------------

    def _wake(self) -> None:
        if self._wake_w < 0:
            return
        try:
            os.write(self._wake_w, b"\0")
        except (BlockingIOError, OSError):
            pass  # already awake, or closed

    def _spawn(self, ctx: Any = None) -> _Worker:
        self._spawned += 1
        w = _Worker(ctx or self._ctx, self.load, self.allow_nan, f"packflow-worker-{self._spawned}")
        self._pool.append(w)
        assert self._selector is not None
        self._selector.register(w.recv_fd, selectors.EVENT_READ, ("recv", w))
        self._selector.register(w.process.sentinel, selectors.EVENT_READ, ("exit", w))
        return w

    def _unregister(self, fd: int) -> None:
        assert self._selector is not None
        try:
            self._selector.unregister(fd)
        except (KeyError, ValueError):
            pass

    def _dispatch(self) -> None:
        for w in self._pool:
            while w.bound and w.ready and w.load < _DEPTH:
                self._send(w, w.bound.popleft())
        while self._pending:
            ready = [w for w in self._pool if w.ready and not w.bound]
            w = min(ready, key=lambda w: w.load, default=None)
            if w is None or w.load >= _DEPTH:
                return
            self._send(w, self._pending.popleft())

    def _send(self, w: _Worker, seq: int) -> None:
        item = self._work[seq].item
        if self._ranges is None:
            kind, payload = wire.BATCH, item.data
        else:
            spec, timeout = self._ranges
            kind, payload = wire.RANGE, pickle.dumps((spec, item, timeout))
        header = wire.HEADER.pack(kind, seq, item.first_line, len(payload))
        w.outstanding.append(seq)
        w.unsent.extend((memoryview(header), memoryview(payload)))
        self._flush(w)

    def _flush(self, w: _Worker) -> None:
        """Write what the worker's pipe takes now; wait for it to drain otherwise."""
        assert self._selector is not None
        while w.unsent:
            try:
                n = os.writev(w.send_fd, list(w.unsent)[:64])
            except BlockingIOError:
                break
            except (BrokenPipeError, OSError):
                # The worker is dying; its exit is handled when its sentinel fires.
                w.unsent.clear()
                break
            while n:
                head = w.unsent[0]
                if n >= len(head):
                    n -= len(head)
                    w.unsent.popleft()
                else:
                    w.unsent[0] = head[n:]
                    n = 0
        key = self._selector.get_map().get(w.send_fd)
        if w.unsent and key is None:
            self._selector.register(w.send_fd, selectors.EVENT_WRITE, ("send", w))
        elif not w.unsent and key is not None:
            self._selector.unregister(w.send_fd)

    def _poll(self, timeout: Optional[float] = 1.0, respawn: bool = True) -> None:
        assert self._selector is not None
        for key, _events in self._selector.select(timeout):
            what, w = key.data
            if w is not None and w.exited:
                continue  # an earlier event of this round closed its pipes
            if what == "wake":
                try:
                    while os.read(self._wake_r, 4096):
                        pass
                except BlockingIOError:
                    pass
            elif what == "send":
                self._flush(w)
            elif what == "recv":
                self._receive(w)
            elif what == "exit":
                self._on_exit(w, respawn)

    def _receive(self, w: _Worker) -> None:
        frames, ended = w.reader.read(w.recv_fd)
        for kind, seq, _arg, payload in frames:
            if kind == wire.RESULT:
                # A worker runs its batches in the order it got them.
                if w.outstanding and w.outstanding[0] == seq:
                    w.outstanding.popleft()
                slot = self._work.get(seq)
                if slot is not None and not slot.done:
                    slot.result = pickle.loads(payload)
                    slot.done = True
            elif kind == wire.READY:
                w.ready = True
            elif kind == wire.STATS:
                self._stats.merge_stats(pickle.loads(payload))
                w.stats_due = False
            elif kind == wire.FAILED:
                error_type, message, text = pickle.loads(payload)
                raise WorkerStartError(message, error_type, text)
        if ended:
            self._unregister(w.recv_fd)

    def _on_exit(self, w: _Worker, respawn: bool) -> None:
        """A worker's process ended: keep what it sent, then retry or dead-letter
        the batch it was running and hand its other batches on."""
        self._receive(w)  # the frames it wrote before it went
        w.process.join()
        w.exited = True
        self._unregister(w.recv_fd)
        self._unregister(w.send_fd)
        self._unregister(w.process.sentinel)
        how = _describe_exit(w.process.exitcode)
        self._pool.remove(w)
        w.close()
        w.process.close()
        if not w.ready:
            raise WorkerStartError(f"a worker process ended ({how}) before it loaded the backend")
        if not respawn:
            return
        replacement = self._spawn()
        running = [seq for seq in w.outstanding if seq in self._work]
        # Retried batches it had not started yet wait for the next fresh worker.
        replacement.bound.extend(seq for seq in w.bound if seq in self._work)
        if not running:
            return
        head = running.pop(0)
        slot = self._work[head]
        slot.deaths += 1
        if self._ranges is not None:
            # What the dead worker wrote of the range's outputs is not used.
            with contextlib.suppress(OSError):
                os.unlink(segment_path(self._ranges[0], head))
        if self._ranges is not None and len(slot.item.batches) > 1:
            # Which of the range's batches killed it is not known: each is run
            # again on its own, and one that kills two workers is dead-lettered.
            self._split(head, slot)
        elif slot.deaths >= _MAX_DEATHS:
            message = f"the worker process running this batch died twice ({how})"
            slot.result = self._dead_letter(slot.item, message)
            slot.done = True
        else:
            replacement.bound.appendleft(head)
        # The batches queued behind it never started: back to the front of the line.
        self._pending.extendleft(reversed(running))

    def _split(self, seq: int, slot: _Slot) -> None:
        del self._work[seq]
        # The death is nobody's yet: each batch gets its own two chances.
        slot.parts = [_Slot(part) for part in slot.item.split()]
        ids = []
        for part in slot.parts:
            ids.append(self._next_seq)
            self._work[self._next_seq] = part
            self._next_seq += 1
        slot.part_ids = tuple(ids)
        self._pending.extendleft(reversed(ids))

    def _dead_letter(self, item: Any, message: str) -> BatchResult:
        if self._ranges is None:
            return BatchEngine.fail_batch(item.data, item.first_line, "worker", message)
        return fail_range(self._ranges[0], item, message)
