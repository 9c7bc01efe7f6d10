"""Where a Kafka door points: ``kafka://HOST:PORT[,HOST:PORT...]/TOPIC`` URLs,
and the ``--kafka-config`` file of librdkafka properties (security, SASL,
TLS files) that goes with them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Union

__all__ = [
    "KafkaAddress",
    "KafkaConfigError",
    "is_kafka_url",
    "parse_kafka_url",
    "read_kafka_config",
]

SCHEME = "kafka://"
# Kafka's own rule for topic names.
_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")
_HOST_PORT = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):([0-9]{1,5})")
#: Properties a Kafka door sets itself; a config file may not change them, since
#: the guarantees (at least once, order per key) rest on them.
RESERVED = frozenset(
    {
        "bootstrap.servers",
        "group.id",
        "enable.auto.commit",
        "enable.auto.offset.store",
        "enable.partition.eof",
        "on_commit",
        "error_cb",
    }
)


class KafkaConfigError(ValueError):
    """A Kafka URL or config file that cannot be used; the text says why."""


@dataclass(frozen=True)
class KafkaAddress:
    """A broker list (``bootstrap.servers``) and a topic."""

    bootstrap: str
    topic: str

    def __str__(self) -> str:
        return f"{SCHEME}{self.bootstrap}/{self.topic}"


def is_kafka_url(value: object) -> bool:
    return isinstance(value, str) and value.startswith(SCHEME)


def parse_kafka_url(url: str) -> KafkaAddress:
    """``kafka://HOST:PORT/TOPIC`` (several ``HOST:PORT`` separated by commas)."""
    if not is_kafka_url(url):
        raise KafkaConfigError(f"{url!r} is not a kafka:// URL")
    servers, slash, topic = url[len(SCHEME) :].partition("/")
    if not slash or not topic:
        raise KafkaConfigError(f"{url!r} names no topic (kafka://HOST:PORT/TOPIC)")
    if not _TOPIC.fullmatch(topic):
        raise KafkaConfigError(
            f"{topic!r} is not a Kafka topic name (letters, digits, '.', '_', '-'; 1 to 249)"
        )
    hosts = servers.split(",")
    for host in hosts:
        match = _HOST_PORT.fullmatch(host)
        if match is None or not 0 < int(match.group(2)) < 65536:
            raise KafkaConfigError(f"{host!r} in {url!r} is not HOST:PORT")
    return KafkaAddress(",".join(hosts), topic)


def read_kafka_config(path: str) -> dict[str, Union[str, int]]:
    """librdkafka properties from a file of ``key=value`` lines (``#`` and
    ``!`` start comments, blank lines are skipped), as a Java client's
    ``.properties`` file holds them. A key may start with ``consumer.`` or
    ``producer.`` to apply to one side only (the caller splits them)."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise KafkaConfigError(f"could not read {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise KafkaConfigError(f"{path} is not UTF-8 text") from exc
    found: dict[str, Union[str, int]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line[0] in "#!":
            continue
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise KafkaConfigError(f"{path}, line {number}: expected key=value, got {line!r}")
        side, _, bare = key.partition(".")
        if key in RESERVED or (side in ("consumer", "producer") and bare in RESERVED):
            raise KafkaConfigError(
                f"{path}, line {number}: {key} is set by packflow run "
                "(from the URL, --group, or for its delivery guarantees)"
            )
        weak = _WEAKENING.get(bare if side in ("consumer", "producer") else key)
        if weak is not None and value.lower() not in weak[0]:
            raise KafkaConfigError(f"{path}, line {number}: {key}={value} {weak[1]}")
        found[key] = value
    return found


#: Properties a file may set only to values that keep the guarantees: the
#: values allowed, and why.
_WEAKENING = {
    "acks": (
        {"all", "-1"},
        "would let a message count as delivered before the broker has it stored "
        "(at least once needs acks=all)",
    ),
    "request.required.acks": (
        {"all", "-1"},
        "would let a message count as delivered before the broker has it stored "
        "(at least once needs acks=all)",
    ),
    "enable.idempotence": (
        {"true"},
        "would let the producer's retries reorder or duplicate a partition's "
        "messages (order per key needs idempotence)",
    ),
}
