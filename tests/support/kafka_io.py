"""Putting messages on a topic and reading them back, for the Kafka tests.

Counts come from what was delivered and read, never from high watermarks
(tansu under-counts those, see tests/support/tansu.py). Every wait is bounded.
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass
from typing import Optional

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

_names = itertools.count()

#: The backend of the Kafka runs: doubles ``n``; a row with ``fail`` fails
#: (step execute); ``KAFKA_TEST_DELAY_S`` slows it down, per row (so that the
#: engine's retries of a failed batch add little); ``KAFKA_TEST_PIDS`` names a
#: folder where each process that runs a batch leaves a file; with
#: ``KAFKA_TEST_HANG`` (a file it creates first), the batch of event 1500 hangs.
BACKEND = """
import os, time
from packflow import InferenceBackend


class Backend(InferenceBackend):
    def execute(self, inputs):
        if os.environ.get("KAFKA_TEST_PIDS"):  # which processes ran batches
            open(os.path.join(os.environ["KAFKA_TEST_PIDS"], str(os.getpid())), "w").close()
        hang = os.environ.get("KAFKA_TEST_HANG")
        if hang and any(r.get("n") == 1500 for r in inputs):
            open(hang, "w").close()
            time.sleep(120)
        delay = float(os.environ.get("KAFKA_TEST_DELAY_S", "0"))
        if delay:
            time.sleep(delay * len(inputs))
        for r in inputs:
            if r.get("fail"):
                raise ValueError(f"event {r['n']} fails on purpose")
        return [{"n": r["n"], "twice": 2 * r["n"]} for r in inputs]
"""


def events(count: int) -> list[tuple[bytes, bytes]]:
    """``(key, value)``: 13 keys; some values not JSON, some rows that fail in
    the backend, an empty value and a pretty-printed (multi-line) document."""
    items = []
    for n in range(count):
        key = f"k{n % 13}".encode()
        if n % 97 == 5:
            value = b'{"n": %d, oops' % n
        elif n % 101 == 7:
            value = json.dumps({"n": n, "fail": True}).encode()
        elif n == 11:
            value = b""
        elif n == 12:
            value = json.dumps({"n": n}, indent=2).encode()
        else:
            value = json.dumps({"n": n, "bytes": n * 3}).encode()
        items.append((key, value))
    return items


def unique(prefix: str) -> str:
    """A topic or group name no other test of this session uses."""
    return f"{prefix}-{int(time.time() * 1000) % 10**9}-{next(_names)}"


def create_topics(bootstrap: str, partitions: int, *names: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(n, partitions, 1) for n in names])
    for future in futures.values():
        future.result(timeout=15)


def produce(bootstrap: str, topic: str, items: list[tuple[Optional[bytes], bytes]]) -> int:
    """Send ``(key, value)`` pairs; how many the broker acknowledged."""
    acked = []
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for key, value in items:
        while True:
            try:
                producer.produce(topic, value, key, on_delivery=lambda e, _m: acked.append(e))
                break
            except BufferError:
                producer.poll(0.1)
    left = producer.flush(30)
    assert left == 0, f"{left} messages not acknowledged"
    assert all(e is None for e in acked), [e for e in acked if e is not None][:3]
    return len(acked)


@dataclass(frozen=True)
class Record:
    partition: int
    offset: int
    key: Optional[bytes]
    value: bytes
    headers: dict[str, bytes]


def read_all(
    bootstrap: str, topic: str, partitions: int, *, at_least: int = 0, timeout_s: float = 30
) -> list[Record]:
    """Every message of ``topic``, read from the start of each partition (no
    group: nothing to join) until each partition reported its end and at
    least ``at_least`` messages came, or ``timeout_s`` passed."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique("reader"),
            "enable.partition.eof": True,
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    found: list[Record] = []
    at_end: set[int] = set()
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            for msg in consumer.consume(1000, 0.2):
                err = msg.error()
                if err is not None:
                    assert err.code() == KafkaError._PARTITION_EOF, err
                    at_end.add(msg.partition())
                    continue
                at_end.discard(msg.partition())
                found.append(
                    Record(
                        msg.partition(),
                        msg.offset(),
                        msg.key(),
                        msg.value(),
                        dict(msg.headers() or []),
                    )
                )
            if len(at_end) == partitions and len(found) >= at_least:
                break
    finally:
        consumer.close()
    return found


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    """The group's committed offset per partition (-1001: none)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        got = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
    finally:
        consumer.close()
    return {tp.partition: tp.offset for tp in got}
