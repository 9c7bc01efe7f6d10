"""``KafkaRun``: the loop of ``packflow run`` on a topic. Consume a batch, run
it through the batch engine (the same one call per batch as a file), send
each output and dead letter with its input's key and coordinates, serve the
broker's acknowledgements while the next batch runs, and commit each
partition up to the first message not yet acknowledged.

At least once: an offset is committed only once every earlier message of its
partition is durable (:mod:`packflow.kafka.offsets`). What is consumed but not
durable is capped (messages and bytes); at the cap, consumption waits for the
broker. On a revocation, and when the run stops, what is in flight is given
``drain_timeout_s`` to be acknowledged, and what is done is committed.
"""

from __future__ import annotations

import collections
import queue
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Optional

from packflow.engine import BatchEngine, BatchResult, ErrorRow, LineBatch
from packflow.engine.runner import RunSummary
from packflow.kafka.offsets import OffsetTracker
from packflow.kafka.sink import BatchAck, Delivery, Outlet, Producers, dead_letter, fits
from packflow.kafka.source import KafkaBatch, KafkaDoorError, KafkaSource

__all__ = ["KafkaRun", "KafkaSummary"]


@dataclass
class KafkaSummary(RunSummary):
    """A run's summary with what the Kafka side did: messages consumed,
    outputs and dead letters acknowledged, and per input partition the
    committed offset and the lag (high watermark less committed; None when
    unknown). ``read`` counts the messages that were run or refused."""

    consumed: int = 0
    produced: int = 0
    dead_lettered: int = 0
    partitions: dict[str, dict[str, Optional[int]]] = field(default_factory=dict)
    commit_failures: int = 0
    #: Messages still unacknowledged when the run ended (inputs not committed).
    unacknowledged: int = 0
    #: From joining the group to holding partitions (the broker's wait, part
    #: of ``wall_seconds``); None when no partition came.
    group_join_seconds: Optional[float] = None

    def format(self) -> str:
        lines = [
            super().format(),
            f"kafka: consumed {self.consumed}, produced {self.produced}, "
            f"dead-lettered {self.dead_lettered}"
            + (
                f", group join {self.group_join_seconds:.3f} s"
                if self.group_join_seconds is not None
                else ""
            )
            + (f", {self.unacknowledged} unacknowledged" if self.unacknowledged else "")
            + (f", {self.commit_failures} failed commits" if self.commit_failures else ""),
        ]
        for name, p in self.partitions.items():
            lag = "?" if p["lag"] is None else p["lag"]
            lines.append(f"  partition {name:<6} committed {p['committed']}  lag {lag}")
        return "\n".join(lines)


class KafkaRun:
    """One run over ``source``; outputs to ``outputs``, dead letters to
    ``dead_letters``; ``producers`` serve the acknowledgements of both when
    they are topics. ``guard`` (the run's signal handling) is held around a
    batch's sends, so a forced stop never splits a line written to a file.

    Batches run in this process through ``engine``, or in the processes of a
    started :class:`~packflow.engine.WorkerPool` (``pool``, whose ``map``
    hands the results back in order): then up to two batches per worker are
    with the workers while this process reads and sends. A revocation, and
    the stop, first wait for the batches with the workers and send them."""

    def __init__(
        self,
        engine: Optional[BatchEngine],
        backend: Any,
        source: KafkaSource,
        outputs: Outlet,
        dead_letters: Outlet,
        producers: Producers,
        delivery: Delivery,
        *,
        batch_size: int,
        max_wait_s: float,
        max_in_flight: int,
        max_in_flight_bytes: int,
        drain_timeout_s: float,
        stop_when_idle_s: Optional[float] = None,
        guard: Optional[AbstractContextManager[Any]] = None,
        started: Optional[float] = None,
        pool: Any = None,
    ):
        if (engine is None) == (pool is None):
            raise ValueError("give an engine or a worker pool, not both")
        self.engine = engine
        #: With workers: batches go to ``pool.map`` through a queue; the ones
        #: handed over and not yet sent, oldest first (results come in order).
        self._pool = pool
        self._queue: queue.SimpleQueue[Optional[LineBatch]] = queue.SimpleQueue()
        self._queued: collections.deque[KafkaBatch] = collections.deque()
        self._results: Any = None
        self._depth = 2 * pool.workers if pool is not None else 0
        self.backend = backend
        self.source = source
        self.tracker: OffsetTracker = source.tracker
        self.outputs = outputs
        self.dead_letters = dead_letters
        self.producers = producers
        self.delivery = delivery
        self.batch_size = batch_size
        self.max_wait_s = max_wait_s
        self.max_in_flight = max_in_flight
        self.max_in_flight_bytes = max_in_flight_bytes
        self.drain_timeout_s = drain_timeout_s
        self.stop_when_idle_s = stop_when_idle_s
        self._guard = guard if guard is not None else nullcontext()
        self.summary = KafkaSummary()
        now = time.perf_counter()
        self._started = now if started is None else started
        self.summary.startup_seconds = now - self._started
        #: Set when the run must end without waiting for anything more.
        self.forced = False
        #: Set once :meth:`stop` began (a second signal then only cuts its wait).
        self.stopping = False
        self.idle = False
        source.on_revoke = self._revoked

    # --- the loop -------------------------------------------------------------

    def run(
        self,
        should_stop: Callable[[], bool],
        on_batch: Optional[Callable[[KafkaSummary], None]] = None,
    ) -> None:
        """Until ``should_stop`` says so, or the partitions held have been at
        their end for ``stop_when_idle_s`` with nothing in flight. A failure
        of the broker side raises :class:`KafkaDoorError`; call :meth:`stop`
        after, in every case."""
        source = self.source
        source.subscribe()
        while not should_stop():
            room = self._room(should_stop)
            if room == 0:
                break
            if self._queued and len(self._queued) >= self._depth:
                self._take_result()  # the workers are busy: send what is done
            else:
                batch = source.next_batch(min(room, self.batch_size), self.max_wait_s)
                if batch is not None:
                    self._start(batch)
                elif self._queued:
                    self._take_result()
            self.producers.poll(0)
            self._check_delivery()
            self._commit(wait=False)
            if on_batch is not None:
                on_batch(self.summary)
            if self.stop_when_idle_s is not None and self.tracker.in_flight == 0:
                idle = source.idle_seconds()
                if idle is not None and idle >= self.stop_when_idle_s:
                    self.idle = True
                    break

    def _room(self, should_stop: Callable[[], bool]) -> int:
        """How many messages may be consumed now, waiting for acknowledgements
        while the cap is reached (0: stop was asked meanwhile)."""
        tracker = self.tracker
        while (
            tracker.in_flight >= self.max_in_flight
            or tracker.in_flight_bytes >= self.max_in_flight_bytes
        ):
            if should_stop():
                return 0
            if self._queued:
                # Part of what is in flight is still with the workers.
                self._take_result()
            else:
                self.producers.poll(0.05)
            self._check_delivery()
        return self.max_in_flight - tracker.in_flight

    def _start(self, batch: KafkaBatch) -> None:
        """Run the batch here and send its results, or hand it to the workers."""
        if not batch.messages:  # only refused messages: nothing to run
            self._send(batch, BatchResult(b"", [], 0, 0, []))
        elif self._pool is None:
            assert self.engine is not None
            self._send(batch, self.engine.process(batch.data, 1))
        else:
            if self._results is None:
                self._results = self._pool.map(iter(self._queue.get, None))
            self._queue.put(LineBatch(batch.data, 1, lines=len(batch.messages)))
            self._queued.append(batch)

    def _take_result(self) -> None:
        """Wait for the oldest batch with the workers, and send its results."""
        _item, result = next(self._results)
        self._send(self._queued.popleft(), result)

    def _finish_queued(self) -> None:
        while self._queued and not self.forced:
            self._take_result()

    def _send(self, batch: KafkaBatch, result: BatchResult) -> None:
        messages = batch.messages
        outputs = result.output.split(b"\n")[:-1] if result.output else []
        if result.read != len(messages) or len(outputs) != len(result.line_numbers):
            raise RuntimeError(
                f"accounting error: {len(messages)} messages, engine read {result.read}, "
                f"{len(outputs)} outputs for {len(result.line_numbers)} lines"
            )
        ack = BatchAck(self.tracker, batch.tickets, self.delivery)
        letters: list[bytes] = []
        behind: list[Any] = []
        errors = list(result.errors)
        line_numbers = result.line_numbers
        out_limit = getattr(self.outputs, "max_bytes", None)
        if out_limit is not None:
            # An output the topic cannot take is that input's failure (a dead
            # letter), not the run's: else every restart stops on it again.
            too_big = [
                i
                for i, (value, n) in enumerate(zip(outputs, line_numbers))
                if not fits(value, messages[n - 1], out_limit)
            ]
            if too_big:
                drop = set(too_big)
                for i in too_big:
                    n = line_numbers[i]
                    errors.append(
                        ErrorRow(
                            n,
                            b"",
                            "write",
                            f"the output is {len(outputs[i])} bytes, over the output "
                            f"topic's message size limit ({out_limit} bytes)",
                        )
                    )
                outputs = [v for i, v in enumerate(outputs) if i not in drop]
                line_numbers = [n for i, n in enumerate(line_numbers) if i not in drop]
        letter_limit = getattr(self.dead_letters, "max_bytes", None)
        failed = [(messages[row.line - 1], row) for row in errors] + list(batch.rejected)
        # In input order within each partition (order per key holds for dead
        # letters too): the engine's errors and the refused values interleave.
        failed.sort(key=lambda pair: (pair[0].partition(), pair[0].offset()))
        for msg, row in failed:
            letters.append(dead_letter(row, msg, letter_limit))
            behind.append(msg)
        ack.expect(len(outputs) + len(letters))
        with self._guard:
            self.outputs.send(outputs, [messages[n - 1] for n in line_numbers], ack.output)
            if letters:
                self.dead_letters.send(letters, behind, ack.dead_letter)
            ack.seal()
            s = self.summary
            s.read += batch.size
            s.written += len(outputs)
            s.errors += len(letters)
            s.batches += 1
            s.consumed = self.source.consumed
        if letters and s.first_error is None:
            msg, first = failed[0]
            s.first_error = {
                "line": None,
                "partition": msg.partition(),
                "offset": msg.offset(),
                "step": first.step,
                "error": first.error[:1000],
                "error_type": first.error_type,
            }

    def _check_delivery(self) -> None:
        if self.delivery.failure is not None:
            raise KafkaDoorError(f"a message could not be delivered: {self.delivery.failure}")

    def _commit(self, wait: bool) -> None:
        self.source.commit(self.tracker.positions(), wait)

    def _drain(self, timeout_s: float) -> int:
        """Serve acknowledgements until none is awaited or ``timeout_s`` passed,
        in short waits (a signal is handled between them); what is left."""
        deadline = time.monotonic() + timeout_s
        while True:
            left = self.producers.flush(min(0.2, max(0.0, deadline - time.monotonic())))
            if left == 0 or time.monotonic() >= deadline or self.forced:
                return left

    def _revoked(self, partitions: list[int]) -> None:
        # The batch that read them was sent before this consume call: only
        # acknowledgements can be outstanding. Wait for them, commit what is done.
        if self.forced:
            return
        self._finish_queued()
        self._drain(self.drain_timeout_s)
        positions = self.tracker.positions()
        self.source.commit({p: positions[p] for p in partitions if p in positions}, wait=True)

    # --- the end --------------------------------------------------------------

    def stop(self, forced: bool = False) -> None:
        """End the run: unless ``forced``, wait for what is in flight to be
        acknowledged (at most ``drain_timeout_s``) and commit what is done;
        then leave the group."""
        self.forced = self.forced or forced
        self.stopping = True
        try:
            self._finish_queued()
            if self._results is not None and not self.forced:
                self._queue.put(None)  # the end of the pool's map: its stats
                for _ in self._results:
                    pass
            if not self.forced:
                self._drain(self.drain_timeout_s)
            if not self.forced:
                self.outputs.flush()
                self.dead_letters.flush()
                self._commit(wait=True)
            self._note_partitions()
        finally:
            self.summary.unacknowledged = self.tracker.in_flight
            self.source.close()

    def _note_partitions(self) -> None:
        source = self.source
        lags = source.lag()
        names = sorted(set(source.committed) | set(lags))
        self.summary.partitions = {
            str(p): {"committed": source.committed.get(p), "lag": lags.get(p)} for p in names
        }

    def snapshot(self) -> KafkaSummary:
        """The summary so far (``complete`` false), for a progress file."""
        self._note_partitions()
        return self._timed(self.summary.__class__(**vars(self.summary)), complete=False)

    def finish(self, interrupted_by: Optional[str] = None) -> KafkaSummary:
        return self._timed(self.summary, complete=True, interrupted_by=interrupted_by)

    def _timed(
        self, s: KafkaSummary, complete: bool, interrupted_by: Optional[str] = None
    ) -> KafkaSummary:
        s.consumed = self.source.consumed
        s.produced = self.delivery.produced
        s.dead_lettered = self.delivery.dead_lettered
        s.commit_failures = self.source.commit_failures
        s.group_join_seconds = self.source.join_seconds
        s.wall_seconds = time.perf_counter() - self._started
        s.rows_per_second = s.read / s.wall_seconds if s.wall_seconds > 0 else 0.0
        s.steps = self.backend.get_stats()
        s.complete = complete
        s.interrupted_by = interrupted_by
        return s
