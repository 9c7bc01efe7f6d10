"""``packflow run`` on Kafka: a topic read in a consumer group, in micro-batches
through the batch engine, outputs and dead letters sent to topics (or files),
offsets committed at least once (docs/kafka.md).

Needs this package's ``kafka`` extra (confluent-kafka); ``import packflow``
does not import it. :mod:`packflow.kafka.address` and
:mod:`packflow.kafka.offsets` need no Kafka client.
"""

from __future__ import annotations

from packflow.kafka.address import (
    KafkaAddress,
    KafkaConfigError,
    is_kafka_url,
    parse_kafka_url,
    read_kafka_config,
)
from packflow.kafka.offsets import OffsetTracker, Ticket

__all__ = [
    "KafkaAddress",
    "KafkaConfigError",
    "OffsetTracker",
    "Ticket",
    "is_kafka_url",
    "parse_kafka_url",
    "read_kafka_config",
]
