"""Faults of the Kafka door found in review (issue 20), on the real broker:

- one input whose dead letter (or output) is over the producer's message size
  stopped the run with exit 74 before its offset, on every restart (a poison
  pill: the partition never moved on, and its earlier outputs were sent again
  at each restart);
- a gzip file output acknowledged what was still in the gzip buffer: after a
  kill -9 the offsets were committed and the file was empty (lost);
- with ``partition.assignment.strategy=cooperative-sticky`` an incremental
  assignment replaced the set of partitions held: the ones kept were never
  committed again, and ``--stop-when-idle`` said done (exit 0);
- with the broker gone, the group session lost made the run hold nothing,
  which ``--stop-when-idle`` took for idle: exit 0 with outputs that never
  reached the broker;
- a value with a raw newline inside a string (not JSON) was run as if it held
  a space; dead letters of refused values came after the engine's, out of
  input order.
"""

from __future__ import annotations

import json
import signal
import time
import zlib
from pathlib import Path

import pytest

pytest.importorskip("confluent_kafka", reason="the kafka extra (confluent-kafka) is missing")

from tests.conftest import tansu_binary  # noqa: E402
from tests.kafka.test_door import Topics, finish, start  # noqa: E402
from tests.support import tansu  # noqa: E402
from tests.support.kafka_io import BACKEND, committed, produce, read_all  # noqa: E402
from tests.support.sample_projects import write_project  # noqa: E402
from tests.support.tansu import FAST_GROUP  # noqa: E402

PARTITIONS = 4

#: Outputs three times the input's ``s``.
ECHO = """
from packflow import InferenceBackend


class Backend(InferenceBackend):
    def execute(self, inputs):
        return [{"n": r["n"], "s": r.get("s", "") * 3} for r in inputs]
"""


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    return write_project(tmp_path / "proj", backend=BACKEND)


def config(tmp_path: Path, *extra: str) -> Path:
    path = tmp_path / "kafka.properties"
    lines = [f"consumer.{k}={v}" for k, v in FAST_GROUP.items()] + list(extra)
    path.write_text("\n".join(lines) + "\n")
    return path


def ns(records) -> list[int]:
    return [json.loads(r.value)["n"] for r in records]


def test_a_dead_letter_over_the_message_size_is_cut_not_a_stop(broker, project, tmp_path):
    topics = Topics(broker.bootstrap)
    # Not JSON; as a dead letter each quote is escaped: about 1.2 MB of JSON.
    items = [(b"a", b'{"n": 1}'), (b"b", b'"' * 600_000), (b"c", b'{"n": 3}')]
    produce(broker.bootstrap, topics.input, items)
    args = topics.args(project, config(tmp_path), "--stop-when-idle", 1)
    code, err = finish(start(args))
    assert code == 0, err
    assert sorted(ns(read_all(broker.bootstrap, topics.output, PARTITIONS))) == [1, 3]
    (letter,) = read_all(broker.bootstrap, topics.dlq, PARTITIONS)
    body = json.loads(letter.value)
    assert body["step"] == "parse" and body["raw_truncated"] is True
    inputs = read_all(broker.bootstrap, topics.input, PARTITIONS)
    (bad,) = [r for r in inputs if r.key == b"b"]
    assert letter.headers["packflow-partition"] == str(bad.partition).encode()
    assert letter.headers["packflow-offset"] == str(bad.offset).encode()
    ends = {p: 0 for p in range(PARTITIONS)}
    for r in inputs:
        ends[r.partition] = max(ends[r.partition], r.offset + 1)
    got = committed(broker.bootstrap, topics.group, topics.input, PARTITIONS)
    assert {p: got[p] for p in ends if ends[p]} == {p: e for p, e in ends.items() if e}


def test_an_output_over_the_message_size_is_a_dead_letter(broker, tmp_path):
    project = write_project(tmp_path / "echo", backend=ECHO)
    topics = Topics(broker.bootstrap)
    big = json.dumps({"n": 2, "s": "x" * 400_000}).encode()  # its output: 1.2 MB
    produce(broker.bootstrap, topics.input, [(b"a", b'{"n": 1}'), (b"a", big), (b"a", b'{"n": 3}')])
    code, err = finish(start(topics.args(project, config(tmp_path), "--stop-when-idle", 1)))
    assert code == 0, err
    assert ns(read_all(broker.bootstrap, topics.output, PARTITIONS)) == [1, 3]
    (letter,) = read_all(broker.bootstrap, topics.dlq, PARTITIONS)
    assert json.loads(letter.value)["step"] == "write"
    assert letter.key == b"a"


def test_a_gzip_output_holds_what_is_committed_after_kill_9(broker, project, tmp_path):
    topics = Topics(broker.bootstrap)
    count = 2000
    produce(broker.bootstrap, topics.input, [(b"k", b'{"n": %d}' % n) for n in range(count)])
    out = tmp_path / "out.jsonl.gz"
    args = topics.args(project, config(tmp_path))
    args = args[: args.index("-o")] + ["-o", str(out)]  # no --errors: all inputs are good
    proc = start(args)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done = committed(broker.bootstrap, topics.group, topics.input, PARTITIONS)
        if sum(max(0, v) for v in done.values()) >= count:
            break
        assert proc.poll() is None
        time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    done = committed(broker.bootstrap, topics.group, topics.input, PARTITIONS)
    lines = zlib.decompressobj(31).decompress(out.read_bytes()).splitlines()
    assert len(lines) >= sum(max(0, v) for v in done.values()) == count


def test_cooperative_assignment_commits_the_partitions_kept(broker, project, tmp_path):
    topics = Topics(broker.bootstrap)
    cfg = config(tmp_path, "consumer.partition.assignment.strategy=cooperative-sticky")

    def events(lo: int, hi: int) -> list:
        return [(b"k%d" % n, b'{"n": %d}' % n) for n in range(lo, hi)]

    produce(broker.bootstrap, topics.input, events(0, 400))
    first = start(topics.args(project, cfg, "--stop-when-idle", 6))
    time.sleep(5)
    second = start(topics.args(project, cfg))
    time.sleep(6)  # the second member holds some partitions now
    produce(broker.bootstrap, topics.input, events(400, 800))
    time.sleep(3)
    second.send_signal(signal.SIGTERM)
    assert finish(second)[0] == 143
    time.sleep(1)  # the first gets them back: an incremental assignment
    produce(broker.bootstrap, topics.input, events(800, 1200))
    code, err = finish(first)
    assert code == 0, err
    ends = {p: 0 for p in range(PARTITIONS)}
    for r in read_all(broker.bootstrap, topics.input, PARTITIONS, at_least=1200):
        ends[r.partition] = max(ends[r.partition], r.offset + 1)
    assert committed(broker.bootstrap, topics.group, topics.input, PARTITIONS) == ends


def test_a_broker_gone_is_not_idle(project, tmp_path):
    server = tansu.Broker(tansu_binary(), tmp_path / "gone.log")
    try:
        server.wait_ready()
        topics = Topics(server.bootstrap)
        produce(server.bootstrap, topics.input, [(b"k", b'{"n": %d}' % n) for n in range(3000)])
        cfg = config(tmp_path, "producer.message.timeout.ms=5000")
        args = topics.args(project, cfg, "--stop-when-idle", 2, "--batch-size", 100)
        proc = start(args, env={"KAFKA_TEST_DELAY_S": "0.003"})
        time.sleep(4)
        server.process.kill()
        server.process.wait(10)
        code, err = finish(proc, timeout_s=60)
        # Outputs were never acknowledged: not a success.
        assert code == 74, err
    finally:
        server.stop()


def test_multi_line_values_and_the_order_of_dead_letters(broker, project, tmp_path):
    topics = Topics(broker.bootstrap)
    items = [
        (b"k", b'{"n": 1,\n "s": "x"}'),  # pretty-printed: JSON
        (b"k", b'{"n": 2, "s": "a\nb"}'),  # a raw newline inside a string: not JSON
        (b"k", b'{"n": 3'),  # the engine's parse error
        (b"k", b""),  # refused before the engine
        (b"k", b'{"n": 5}'),
    ]
    produce(broker.bootstrap, topics.input, items)
    code, err = finish(start(topics.args(project, config(tmp_path), "--stop-when-idle", 1)))
    assert code == 0, err
    assert ns(read_all(broker.bootstrap, topics.output, PARTITIONS)) == [1, 5]
    letters = read_all(broker.bootstrap, topics.dlq, PARTITIONS)
    offsets = [int(r.headers["packflow-offset"]) for r in letters]
    assert offsets == sorted(offsets) and len(offsets) == 3
    first = json.loads(letters[0].value)
    assert first["step"] == "parse" and "invalid JSON" in first["error"]
