"""Where a Kafka run's outputs and dead letters go, and when they count as
durable: a topic (durable once the broker acknowledged it, reported later by
a delivery callback) or a file (durable once written). A batch's offsets are
released to the commit only when all of its messages are durable.

Acknowledgements stay off the critical path: a topic sink only enqueues
(librdkafka sends in the background) and the callbacks are served between
batches; nothing waits for the broker unless the in-flight cap is reached or
the run is stopping.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, Optional, Protocol

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from packflow.engine import ErrorRow
from packflow.kafka.address import KafkaAddress
from packflow.kafka.offsets import OffsetTracker, Ticket
from packflow.kafka.source import KafkaDoorError, KafkaUnreachable, topic_partitions

__all__ = [
    "BatchAck",
    "Delivery",
    "FileOutlet",
    "Outlet",
    "DropOutlet",
    "Producers",
    "TopicLineSink",
    "TopicOutlet",
    "dead_letter",
]


#: librdkafka's default message.max.bytes.
DEFAULT_MESSAGE_MAX_BYTES = 1_000_000
#: What a message takes besides its value: record overhead, the three
#: packflow headers (the key is counted on its own).
_OVERHEAD = 512


def value_limit(producer_config: dict[str, Any]) -> int:
    """The longest value a producer with these properties sends."""
    return int(producer_config.get("message.max.bytes", DEFAULT_MESSAGE_MAX_BYTES))


def fits(value: bytes, msg: Message, max_bytes: int) -> bool:
    return len(value) + len(msg.key() or b"") + _OVERHEAD <= max_bytes


class Delivery:
    """What the run's outlets delivered (acknowledged) so far, and the first
    delivery that failed for good."""

    def __init__(self) -> None:
        self.produced = 0
        self.dead_lettered = 0
        self.failure: Optional[str] = None


class BatchAck:
    """Counts a batch's sends still unacknowledged (:meth:`expect` them
    before sending); at zero, after :meth:`seal`, its tickets are done. A
    failed send keeps them in flight for good: its input is never committed,
    and the run stops."""

    __slots__ = ("tracker", "tickets", "delivery", "left")

    def __init__(self, tracker: OffsetTracker, tickets: list[Ticket], delivery: Delivery):
        self.tracker = tracker
        self.tickets = tickets
        self.delivery = delivery
        self.left = 1  # the seal

    # One call per acknowledged message: kept to one Python frame.
    def output(self, err: Optional[KafkaError], _msg: Any = None) -> None:
        if err is not None:
            self._fail(err)
            return
        self.delivery.produced += 1
        self.left -= 1
        if self.left == 0:
            self._release()

    def dead_letter(self, err: Optional[KafkaError], _msg: Any = None) -> None:
        if err is not None:
            self._fail(err)
            return
        self.delivery.dead_lettered += 1
        self.left -= 1
        if self.left == 0:
            self._release()

    def _fail(self, err: KafkaError) -> None:
        if self.delivery.failure is None:
            self.delivery.failure = err.str()

    def _release(self) -> None:
        for ticket in self.tickets:
            self.tracker.done(ticket)

    def expect(self, sends: int) -> None:
        """``sends`` more messages will report to this batch."""
        self.left += sends

    def seal(self) -> None:
        """Every send of the batch was made."""
        self.left -= 1
        if self.left == 0:
            self._release()


class Outlet(Protocol):
    """Outputs, or dead letters, of a Kafka run."""

    def send(self, values: list[bytes], messages: list[Message], ack: Callable[..., None]) -> None:
        """One message per value; ``messages[i]`` is the input behind
        ``values[i]``; ``ack(None)`` once per value when it is durable
        (``ack(error)`` when it never will be)."""

    def flush(self) -> None: ...


class TopicOutlet:
    """Sends to a topic, each value with its input's key and three headers
    naming the input (``packflow-topic``, ``-partition``, ``-offset``)."""

    def __init__(
        self,
        producer: Producer,
        address: KafkaAddress,
        poll: Callable[[float], Any],
        max_bytes: int = DEFAULT_MESSAGE_MAX_BYTES,
    ):
        self.producer = producer
        self.topic = address.topic
        self.address = address
        self._poll = poll
        #: The producer's message.max.bytes: a message over it (value, key
        #: and headers) would be refused by produce() itself.
        self.max_bytes = max_bytes

    def send(self, values: list[bytes], messages: list[Message], ack: Callable[..., None]) -> None:
        if not values:
            return
        produce, topic = self.producer.produce, self.topic
        source = ("packflow-topic", messages[0].topic())  # a run reads one topic
        for value, msg in zip(values, messages):
            headers = [
                source,
                ("packflow-partition", str(msg.partition())),
                ("packflow-offset", str(msg.offset())),
            ]
            while True:
                try:
                    produce(topic, value, msg.key(), headers=headers, on_delivery=ack)
                    break
                except BufferError:
                    # librdkafka's queue is full: serve acknowledgements until
                    # there is room (order is kept: this value goes next).
                    self._poll(0.05)
                except KafkaException as exc:
                    raise KafkaDoorError(f"sending to {self.address}: {exc.args[0]}") from exc

    def flush(self) -> None:
        pass


class FileOutlet:
    """Writes JSON lines to a file sink (``write``/``flush``, e.g. the run
    command's); written is durable."""

    def __init__(self, sink: Any):
        self.sink = sink

    def send(self, values: list[bytes], messages: list[Message], ack: Callable[..., None]) -> None:
        if values:
            self.sink.write(b"\n".join(values) + b"\n")
            # A gzip sink holds what it compresses in memory: out to the file
            # before the inputs may be committed (a no-op for a plain file).
            self.sink.flush()
        for _ in values:
            ack(None)

    def flush(self) -> None:
        self.sink.flush()


class DropOutlet:
    """No ``--errors``: dead letters are counted and dropped, as ``run`` does."""

    def send(self, values: list[bytes], messages: list[Message], ack: Callable[..., None]) -> None:
        for _ in values:
            ack(None)

    def flush(self) -> None:
        pass


class Producers:
    """One producer per broker list the run writes to, created on first use.

    Idempotence is on by default, so that librdkafka's retries neither
    duplicate nor reorder a partition's messages (order per key)."""

    def __init__(self, config: dict[str, Any], logger: Any = None):
        self.config = config
        self.logger = logger
        self.by_servers: dict[str, Producer] = {}

    def get(self, address: KafkaAddress) -> Producer:
        producer = self.by_servers.get(address.bootstrap)
        if producer is None:
            settings: dict[str, Any] = {
                "enable.idempotence": True,
                "linger.ms": 5,
                # A typo in -o must not create a topic (Kafka's default does).
                "allow.auto.create.topics": False,
            }
            settings.update(self.config)
            settings["bootstrap.servers"] = address.bootstrap
            if self.logger is not None:
                settings["logger"] = self.logger
            producer = self.by_servers[address.bootstrap] = Producer(settings)
        return producer

    def check_topic(self, address: KafkaAddress, timeout_s: float) -> int:
        try:
            meta = self.get(address).list_topics(address.topic, timeout=timeout_s)
        except KafkaException as exc:
            raise KafkaUnreachable(
                f"no answer from the Kafka broker at {address.bootstrap} "
                f"within {timeout_s:g} s ({exc.args[0]})"
            ) from exc
        return topic_partitions(meta, address.topic, address.bootstrap)

    def poll(self, timeout_s: float = 0.0) -> None:
        """Serve delivery callbacks (waiting up to ``timeout_s`` for one)."""
        producers = list(self.by_servers.values())
        if not producers and timeout_s > 0:
            time.sleep(timeout_s)  # nothing to wait for but time (file outlets)
        for i, producer in enumerate(producers):
            producer.poll(timeout_s if i == 0 else 0)

    def waiting(self) -> int:
        """Messages handed to librdkafka and not yet acknowledged."""
        return sum(len(p) for p in self.by_servers.values())

    def flush(self, timeout_s: float) -> int:
        """Wait until everything sent is acknowledged, at most ``timeout_s``;
        how many messages are still waiting."""
        return sum(p.flush(timeout_s) for p in self.by_servers.values())


def dead_letter(row: ErrorRow, msg: Message, max_bytes: Optional[int] = None) -> bytes:
    """A dead letter's value: the input's coordinates, the step that failed,
    the error, its type and the input value as text (bytes that are not UTF-8
    as backslash escapes). With ``max_bytes`` (a topic's limit), ``raw`` is cut
    so that the letter fits, and ``raw_truncated`` says so: the headers name
    the input, which is still on its topic."""
    raw = msg.value() or b""
    letter = {
        "topic": msg.topic(),
        "partition": msg.partition(),
        "offset": msg.offset(),
        "step": row.step,
        "error": row.error,
        "error_type": row.error_type,
        "raw": raw.decode("utf-8", errors="backslashreplace"),
    }
    value = json.dumps(letter).encode()
    if max_bytes is None or fits(value, msg, max_bytes):
        return value
    # An input byte takes at most 6 bytes once escaped (\u0000).
    keep = max(0, (max_bytes - len(msg.key() or b"") - 2 * _OVERHEAD - 10_000 * 6) // 6)
    letter["error"] = row.error[:10_000]
    letter["raw"] = raw[:keep].decode("utf-8", errors="backslashreplace")
    letter["raw_truncated"] = True
    return json.dumps(letter).encode()


class TopicLineSink:
    """A file input's output (or errors) sent to a topic: each JSON line a
    message, without a key or headers (a line has neither). It has the
    methods of the run command's file sinks: :meth:`write` only enqueues and
    serves the acknowledgements that came; :meth:`flush` waits for all of
    them, at most ``timeout_s``, and raises :class:`OSError` for a message
    that was not, or could not be, delivered."""

    def __init__(self, producers: Producers, address: KafkaAddress, timeout_s: float):
        self.name = str(address)
        self.address = address
        self.producers = producers
        self.producer = producers.get(address)
        self.timeout_s = timeout_s
        self.delivered = 0
        self.failure: Optional[str] = None

    def _ack(self, err: Optional[KafkaError], _msg: Any = None) -> None:
        if err is None:
            self.delivered += 1
        elif self.failure is None:
            self.failure = err.str()

    def write(self, data: bytes) -> None:
        produce, topic, ack = self.producer.produce, self.address.topic, self._ack
        for line in data.splitlines():
            if not line:
                continue
            while True:
                try:
                    produce(topic, line, on_delivery=ack)
                    break
                except BufferError:
                    self.producer.poll(0.05)
                except KafkaException as exc:
                    raise OSError(f"sending to {self.address}: {exc.args[0]}") from exc
        self.producer.poll(0)
        self._check()

    def _check(self) -> None:
        if self.failure is not None:
            raise OSError(f"a message to {self.address} could not be delivered: {self.failure}")

    def flush(self) -> None:
        left = self.producer.flush(self.timeout_s)
        self._check()
        if left:
            raise OSError(
                f"{left} message(s) to {self.address} were not acknowledged "
                f"within {self.timeout_s:g} s"
            )

    def trim(self) -> None:
        """Nothing to cut: a message is whole or absent."""

    def close(self) -> None:
        self.producer.poll(0)
