"""``KafkaSource``: a consumer in a group, read in micro-batches of JSON Lines
for the batch engine; each batch remembers the message behind each of its
lines (topic, partition, offset, key), so outputs and dead letters can carry
them and the offsets be committed once they are acknowledged.

It also knows what the run's stop rules need: which partitions it holds,
since when, and whether each is at its end (the end-of-partition event, not
the high watermark, which some brokers under-count).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Optional

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from packflow import _core
from packflow.engine import ErrorRow
from packflow.kafka.address import KafkaAddress
from packflow.kafka.offsets import OffsetTracker, Ticket

__all__ = ["KafkaBatch", "KafkaDoorError", "KafkaSource", "KafkaUnreachable"]

#: Consumer errors after which the run cannot go on (others, such as a broker
#: connection lost, librdkafka retries by itself).
_FATAL_CODES = frozenset(
    {
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
        KafkaError._UNKNOWN_TOPIC,
        KafkaError._UNKNOWN_PARTITION,
    }
)


class KafkaDoorError(Exception):
    """The broker refused or failed what the run needs (a missing topic, a
    delivery that failed for good); the text says what and where."""


class KafkaUnreachable(KafkaDoorError):
    """The broker did not answer in time."""


@dataclass
class KafkaBatch:
    """Messages consumed together. Line ``i`` of ``data`` (from 1) holds the
    value of ``messages[i - 1]``; ``rejected`` are messages that never reach
    the engine (an empty value, a value over the line limit), with their
    error rows; ``tickets`` track every message of the batch until its output
    or dead letter is acknowledged."""

    data: bytes
    messages: list[Message]
    rejected: list[tuple[Message, ErrorRow]] = field(default_factory=list)
    tickets: list[Ticket] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.messages) + len(self.rejected)


class KafkaSource:
    """Consume ``address.topic`` in ``group``.

    ``config``: librdkafka properties (the ``--kafka-config`` file's) laid
    over the defaults; the properties the guarantees rest on are set here and
    cannot be changed: offsets are committed only by :meth:`commit`, with the
    offsets given (never automatically), and end-of-partition events are on.
    A new group starts at the earliest offset unless ``auto.offset.reset``
    says otherwise. ``on_revoke(partitions)`` runs when the group takes
    partitions away, before they go (it commits what is done).
    """

    def __init__(
        self,
        address: KafkaAddress,
        group: str,
        tracker: OffsetTracker,
        *,
        config: Optional[dict[str, Any]] = None,
        max_value_bytes: int,
        logger: Any = None,
    ):
        self.address = address
        self.topic = address.topic
        self.tracker = tracker
        self.max_value_bytes = max_value_bytes
        settings: dict[str, Any] = {"auto.offset.reset": "earliest"}
        settings.update(config or {})
        settings.update(
            {
                "bootstrap.servers": address.bootstrap,
                "group.id": group,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "enable.partition.eof": True,
                "on_commit": self._on_commit,
            }
        )
        if logger is not None:
            settings["logger"] = logger
        self.consumer = Consumer(settings)
        self.on_revoke: Optional[Callable[[list[int]], None]] = None
        #: Partitions held now, and when the last assignment came.
        self.assigned: set[int] = set()
        self.assigned_at: Optional[float] = None
        #: From the subscription to the group's first assignment (the join).
        self.join_seconds: Optional[float] = None
        self._subscribed_at: Optional[float] = None
        #: Partitions whose end was reached since their last message.
        self.at_end: set[int] = set()
        self.last_message_at: Optional[float] = None
        #: The offsets the broker confirmed as committed, per partition.
        self.committed: dict[int, int] = {}
        self.commit_failures = 0
        self.consumed = 0
        self.closed = False

    # --- the group ------------------------------------------------------------

    def check_topic(self, timeout_s: float) -> int:
        """The topic's partition count; :class:`KafkaDoorError` when the broker
        does not answer in time or has no such topic."""
        try:
            meta = self.consumer.list_topics(self.topic, timeout=timeout_s)
        except KafkaException as exc:
            raise KafkaUnreachable(
                f"no answer from the Kafka broker at {self.address.bootstrap} "
                f"within {timeout_s:g} s ({exc.args[0]})"
            ) from exc
        return topic_partitions(meta, self.topic, self.address.bootstrap)

    def subscribe(self) -> None:
        self._subscribed_at = time.monotonic()
        self.consumer.subscribe(
            [self.topic], on_assign=self._assigned, on_revoke=self._revoked, on_lost=self._lost
        )

    def _assigned(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Added to what is held: with the cooperative protocol (a
        # partition.assignment.strategy of cooperative-sticky in
        # --kafka-config) an assignment lists only the partitions it adds;
        # with the eager one, the revocation of all came first (_forget).
        new = {tp.partition for tp in partitions}
        self.assigned |= new
        self.at_end -= new
        self.assigned_at = time.monotonic()
        if self.join_seconds is None and self._subscribed_at is not None:
            self.join_seconds = self.assigned_at - self._subscribed_at

    def _revoked(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        gone = [tp.partition for tp in partitions]
        if self.on_revoke is not None:
            self.on_revoke(gone)
        self._forget(gone)

    def _lost(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Another member may own them already: committing now could move its
        # offsets back. What is in flight will be read again by the new owner.
        self._forget([tp.partition for tp in partitions])

    def _forget(self, partitions: list[int]) -> None:
        for p in partitions:
            self.tracker.drop(p)
            self.assigned.discard(p)
            self.at_end.discard(p)
        if not self.assigned:
            # Holding nothing after a revocation (a rebalance under way, a
            # session lost with the broker gone) is not being idle: count
            # again from the next assignment (which may well be empty).
            self.assigned_at = None

    def idle_seconds(self) -> Optional[float]:
        """How long every partition held has been at its end with no new
        message, counted from the assignment at the earliest; None while a
        partition has more to read, or before the group assigned any."""
        if self.assigned_at is None or not self.assigned <= self.at_end:
            return None
        since = self.assigned_at
        if self.last_message_at is not None and self.last_message_at > since:
            since = self.last_message_at
        return time.monotonic() - since

    # --- reading --------------------------------------------------------------

    def next_batch(self, max_messages: int, timeout_s: float) -> Optional[KafkaBatch]:
        """Up to ``max_messages`` messages, waiting at most ``timeout_s`` for the
        batch to fill; None when none came."""
        try:
            got = self.consumer.consume(max_messages, timeout_s)
        except KafkaException as exc:
            raise KafkaDoorError(f"reading {self.address}: {exc.args[0]}") from exc
        if not got:
            return None
        values: list[bytes] = []
        messages: list[Message] = []
        rejected: list[tuple[Message, ErrorRow]] = []
        # partition -> [first offset, last offset, messages, bytes]; a
        # consume call hands out each partition's messages in runs, so the
        # offsets are looked at only where the partition changes.
        runs: dict[int, list[int]] = {}
        run: list[int] = []
        current = -1
        previous: Any = None
        limit = self.max_value_bytes
        for msg in got:
            err = msg.error()
            if err is not None:
                self._event(msg, err)
                current = -1  # a message after the end event clears it again
                continue
            p = msg.partition()
            if p != current:
                if previous is not None:
                    run[1] = previous.offset()
                run = runs.get(p)  # type: ignore[assignment]
                if run is None:
                    run = runs[p] = [msg.offset(), -1, 0, 0]
                self.at_end.discard(p)
                current = p
            previous = msg
            value = msg.value()
            size = 0 if value is None else len(value)
            run[2] += 1
            run[3] += size
            if not value or size > limit or value.isspace():
                rejected.append((msg, _refused(value, size, limit)))
                continue
            if b"\n" in value:
                # JSON allows a newline only as whitespace between tokens, so a
                # pretty-printed document stays the same document on one line;
                # one inside a string is not JSON, and a space there would
                # make it so: checked first (such values are rare).
                bad = _newline_in_string(value)
                if bad is not None:
                    rejected.append((msg, bad))
                    continue
                value = value.replace(b"\n", b" ")
            values.append(value)
            messages.append(msg)
        if previous is not None:
            run[1] = previous.offset()
        if not runs:
            return None
        self.last_message_at = time.monotonic()
        tickets = [self._take(p, run) for p, run in runs.items()]
        batch = KafkaBatch(_core.join_lines(values) if values else b"", messages, rejected, tickets)
        self.consumed += batch.size
        return batch

    def _take(self, partition: int, run: list[int]) -> Ticket:
        try:
            return self.tracker.take(partition, *run)
        except ValueError:
            # The consumer went back (a reset to an earlier offset): what was
            # in flight will be read again, so only the new run counts now.
            # Committing from it can only move the offset back: more read
            # twice, nothing skipped.
            self.tracker.drop(partition)
            return self.tracker.take(partition, *run)

    def _event(self, msg: Message, err: KafkaError) -> None:
        code = err.code()
        if code == KafkaError._PARTITION_EOF:
            self.at_end.add(msg.partition())
        elif err.fatal() or code in _FATAL_CODES:
            raise KafkaDoorError(f"reading {self.address}: {err.str()}")
        # Anything else (a broker connection lost, a leader moving) librdkafka
        # retries by itself; it reaches the log through the logger.

    # --- offsets --------------------------------------------------------------

    def commit(self, positions: dict[int, int], wait: bool) -> None:
        """Commit these offsets (``wait``: until the broker answers; a failure
        is counted, never raised: what is not committed is read again)."""
        todo = [
            TopicPartition(self.topic, p, off)
            for p, off in positions.items()
            if p in self.assigned and self.committed.get(p) != off
        ]
        if not todo:
            return
        try:
            done = self.consumer.commit(offsets=todo, asynchronous=not wait)
        except KafkaException:
            self.commit_failures += 1
            return
        if wait and done:
            self._record(done)

    def _on_commit(self, err: Optional[KafkaError], partitions: list[TopicPartition]) -> None:
        if err is not None and err.code() != KafkaError._NO_OFFSET:
            self.commit_failures += 1
        self._record(partitions)

    def _record(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            if tp.error is None and tp.offset >= 0 and tp.topic == self.topic:
                if tp.offset > self.committed.get(tp.partition, -1):
                    self.committed[tp.partition] = tp.offset

    def lag(self) -> dict[int, Optional[int]]:
        """Per partition held: the high watermark of the last fetch less the
        committed offset (no request: a query can wait behind a fetch the
        broker holds open)."""
        found: dict[int, Optional[int]] = {}
        for p in sorted(self.assigned):
            try:
                _low, high = self.consumer.get_watermark_offsets(
                    TopicPartition(self.topic, p), cached=True
                )
            except KafkaException:
                found[p] = None
                continue
            committed = self.committed.get(p)
            found[p] = None if high < 0 or committed is None else max(0, high - committed)
        return found

    def close(self) -> None:
        """Leave the group (the partitions go to the other members at once)."""
        if not self.closed:
            self.closed = True
            self.consumer.close()


def topic_partitions(meta: Any, topic: str, bootstrap: str) -> int:
    """The partition count of ``topic`` in a metadata answer, or why there is none."""
    found = meta.topics.get(topic)
    if found is None or found.error is not None:
        why = found.error.str() if found is not None else "not in the broker's answer"
        raise KafkaDoorError(f"topic {topic!r} on {bootstrap}: {why}")
    return len(found.partitions)


def _newline_in_string(value: bytes) -> Optional[ErrorRow]:
    """The parse error of a multi-line value that is not JSON (a raw newline
    inside a string, or any other fault), None when it is JSON."""
    try:
        json.loads(value)
    except ValueError as exc:
        return ErrorRow(0, value, "parse", f"invalid JSON: {exc}")
    return None


def _refused(value: Optional[bytes], size: int, limit: int) -> ErrorRow:
    raw = value or b""
    if size > limit:
        return ErrorRow(0, raw[:1024], "read", f"the message value is over {limit} bytes")
    return ErrorRow(0, raw, "parse", "the message value is empty")
