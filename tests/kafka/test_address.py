"""kafka:// URLs and --kafka-config files: what is accepted, and what each
refusal says."""

from __future__ import annotations

import pytest

from packflow.kafka.address import (
    KafkaAddress,
    KafkaConfigError,
    is_kafka_url,
    parse_kafka_url,
    read_kafka_config,
)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("kafka://127.0.0.1:9092/events", KafkaAddress("127.0.0.1:9092", "events")),
        ("kafka://a:1,b.example:9093/t.v-2_x", KafkaAddress("a:1,b.example:9093", "t.v-2_x")),
        ("kafka://[::1]:9092/e", KafkaAddress("[::1]:9092", "e")),
    ],
)
def test_good_urls(url, expected):
    assert parse_kafka_url(url) == expected
    assert str(expected) == url


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("kafka://host:9092", "names no topic"),
        ("kafka://host:9092/", "names no topic"),
        ("kafka://host/events", "is not HOST:PORT"),
        ("kafka://host:0/events", "is not HOST:PORT"),
        ("kafka://host:70000/events", "is not HOST:PORT"),
        ("kafka://host:9092/a/b", "is not a Kafka topic name"),
        ("kafka://host:9092/" + "x" * 250, "is not a Kafka topic name"),
        ("http://host:9092/events", "is not a kafka:// URL"),
    ],
)
def test_bad_urls_say_why(url, says):
    with pytest.raises(KafkaConfigError, match=says):
        parse_kafka_url(url)


def test_only_the_scheme_makes_a_kafka_url():
    assert is_kafka_url("kafka://h:1/t")
    assert not is_kafka_url("events.jsonl") and not is_kafka_url(None)


def test_config_file(tmp_path):
    path = tmp_path / "client.properties"
    path.write_text(
        "# TLS to the cluster\n! also a comment\n\nsecurity.protocol = SASL_SSL\n"
        "sasl.mechanism=PLAIN\nsasl.password=a=b\nproducer.acks=all\n"
    )
    assert read_kafka_config(str(path)) == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "PLAIN",
        "sasl.password": "a=b",
        "producer.acks": "all",
    }


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("no equals sign\n", "line 1: expected key=value"),
        ("a=1\n=2\n", "line 2: expected key=value"),
        ("enable.auto.commit=true\n", "enable.auto.commit is set by packflow run"),
        ("group.id=other\n", "group.id is set by packflow run"),
        ("consumer.enable.auto.commit=true\n", "is set by packflow run"),
        ("x=1\nproducer.acks=1\n", "line 2: producer.acks=1 would let a message count"),
        ("request.required.acks=0\n", "at least once needs acks=all"),
        ("producer.enable.idempotence=false\n", "order per key needs idempotence"),
    ],
)
def test_bad_config_files_say_where(tmp_path, text, says):
    path = tmp_path / "bad.properties"
    path.write_text(text)
    with pytest.raises(KafkaConfigError, match=says):
        read_kafka_config(str(path))


def test_unreadable_config(tmp_path):
    with pytest.raises(KafkaConfigError, match="could not read"):
        read_kafka_config(str(tmp_path / "missing.properties"))
    binary = tmp_path / "binary.properties"
    binary.write_bytes(b"\xff\xfe")
    with pytest.raises(KafkaConfigError, match="not UTF-8"):
        read_kafka_config(str(binary))
