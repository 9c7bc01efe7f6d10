"""``packflow run`` on a real broker (tansu on 127.0.0.1): every input ends up
once in the output topic or the dead-letter topic, with its key and
coordinates; nothing is lost after a kill -9 or a SIGTERM; order per key.

Each run is a subprocess, as a user starts it; every wait is bounded."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest

pytest.importorskip("confluent_kafka", reason="the kafka extra (confluent-kafka) is missing")

from tests.support import tansu  # noqa: E402
from tests.support.kafka_io import (  # noqa: E402
    BACKEND,
    committed,
    create_topics,
    events,
    produce,
    read_all,
    unique,
)
from tests.support.sample_projects import write_project  # noqa: E402
from tests.support.tansu import FAST_GROUP  # noqa: E402
from tests.support.testkit import PACKFLOW  # noqa: E402

PARTITIONS = 4


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    return write_project(tmp_path / "proj", backend=BACKEND)


@pytest.fixture()
def kafka_config(tmp_path: Path) -> Path:
    path = tmp_path / "kafka.properties"
    lines = ["# tansu answers a JoinGroup after half the session timeout"]
    lines += [f"consumer.{k}={v}" for k, v in FAST_GROUP.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


class Topics:
    def __init__(self, bootstrap: str):
        self.bootstrap = bootstrap
        self.input, self.output, self.dlq = unique("in"), unique("out"), unique("dlq")
        self.group = unique("group")
        create_topics(bootstrap, PARTITIONS, self.input, self.output, self.dlq)

    def url(self, topic: str) -> str:
        return f"kafka://{self.bootstrap}/{topic}"

    def args(self, project: Path, config: Path, *extra: object) -> list[str]:
        return [
            str(project),
            "-i",
            self.url(self.input),
            "--group",
            self.group,
            "-o",
            self.url(self.output),
            "--errors",
            self.url(self.dlq),
            "--kafka-config",
            str(config),
            *map(str, extra),
        ]


def start(args: list, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        PACKFLOW + ["run", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )


def finish(proc: subprocess.Popen, timeout_s: float = 90) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f"packflow run did not end within {timeout_s} s: {err.decode()[-3000:]}")
    return proc.returncode, err.decode()


def wait_for_progress(stats: Path, proc: subprocess.Popen, produced: int, timeout_s: float = 60):
    """Until the run's --stats file says ``produced`` outputs were acknowledged."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
        try:
            if json.loads(stats.read_text())["produced"] >= produced:
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.1)
    proc.kill()
    pytest.fail(f"no {produced} outputs within {timeout_s} s")


def inputs_by_n(topics: Topics, count: int) -> dict[int, tuple[int, int, bytes, bytes]]:
    """Each event's ``(partition, offset, key, value)`` as the broker holds it."""
    found = read_all(topics.bootstrap, topics.input, PARTITIONS, at_least=count)
    assert len(found) == count
    by_value = {value: n for n, (_, value) in enumerate(events(count))}
    return {by_value[r.value]: (r.partition, r.offset, r.key, r.value) for r in found}


def outcome(topics: Topics, at_least: int) -> tuple[list, list]:
    outputs = read_all(topics.bootstrap, topics.output, PARTITIONS, at_least=at_least)
    letters = read_all(topics.bootstrap, topics.dlq, PARTITIONS)
    return outputs, letters


def n_of_dead_letter(value: bytes, inputs: dict) -> int:
    raw = json.loads(value)["raw"].encode()
    return next(n for n, (_, _, _, v) in inputs.items() if v == raw)


@pytest.mark.parametrize("workers", [1, 2])
def test_every_input_lands_once_with_its_key_and_coordinates(
    broker, project, kafka_config, tmp_path, workers
):
    topics = Topics(broker.bootstrap)
    count = 3000
    produce(broker.bootstrap, topics.input, events(count))
    stats = tmp_path / "stats.json"
    args = topics.args(project, kafka_config, "--stop-when-idle", 1, "--stats", stats)
    pids = tmp_path / "pids"
    pids.mkdir()
    proc = start(args + ["--batch-size", 250, "--workers", workers], {"KAFKA_TEST_PIDS": str(pids)})
    code, err = finish(proc)
    assert code == 0, err
    ran = {int(p.name) for p in pids.iterdir()}
    assert ran == {proc.pid} if workers == 1 else (len(ran) == workers and proc.pid not in ran)

    inputs = inputs_by_n(topics, count)
    outputs, letters = outcome(topics, at_least=1)
    out_ns = [json.loads(r.value)["n"] for r in outputs]
    letter_ns = [n_of_dead_letter(r.value, inputs) for r in letters]
    assert sorted(out_ns + letter_ns) == list(range(count))  # each exactly once
    bad = {n for n in range(count) if n % 97 == 5 or n % 101 == 7 or n == 11}
    assert set(letter_ns) == bad

    for record, n in [*zip(outputs, out_ns), *zip(letters, letter_ns)]:
        partition, offset, key, _ = inputs[n]
        assert record.key == key
        assert record.headers == {
            "packflow-topic": topics.input.encode(),
            "packflow-partition": str(partition).encode(),
            "packflow-offset": str(offset).encode(),
        }
    for record, n in zip(outputs, out_ns):
        assert json.loads(record.value) == {"n": n, "twice": 2 * n}
    for record, n in zip(letters, letter_ns):
        letter = json.loads(record.value)
        assert letter["raw"].encode() == inputs[n][3]
        partition, offset = inputs[n][:2]
        assert (letter["topic"], letter["partition"], letter["offset"]) == (
            topics.input,
            partition,
            offset,
        )
        if n == 11:
            assert (letter["step"], letter["error_type"]) == ("parse", None)
            assert "empty" in letter["error"]
        elif n % 97 == 5:
            assert (letter["step"], letter["error_type"]) == ("parse", None)
        else:
            assert (letter["step"], letter["error_type"]) == ("execute", "ValueError")
            assert f"event {n} fails on purpose" in letter["error"]

    # Order per key: one key's outputs come in the order of its inputs.
    by_key = defaultdict(list)
    for record, n in sorted(zip(outputs, out_ns), key=lambda x: (x[0].partition, x[0].offset)):
        by_key[record.key].append(n)
    assert all(ns == sorted(ns) for ns in by_key.values())

    # Everything committed, and the summary says so.
    ends = Counter(p for p, *_ in inputs.values())
    assert committed(broker.bootstrap, topics.group, topics.input, PARTITIONS) == {
        p: ends[p] for p in range(PARTITIONS)
    }
    summary = json.loads(stats.read_text())
    assert (summary["consumed"], summary["read"]) == (count, count)
    assert (summary["produced"], summary["dead_lettered"]) == (count - len(bad), len(bad))
    assert summary["partitions"] == {
        str(p): {"committed": ends[p], "lag": summary["partitions"][str(p)]["lag"]}
        for p in range(PARTITIONS)
    }
    assert "kafka: consumed 3000" in err


def test_kill_9_and_a_restart_in_the_group_lose_nothing(broker, project, kafka_config, tmp_path):
    topics = Topics(broker.bootstrap)
    count, in_flight, batch = 4000, 400, 100
    produce(broker.bootstrap, topics.input, events(count))
    stats = tmp_path / "stats.json"
    args = topics.args(
        project,
        kafka_config,
        "--batch-size",
        batch,
        "--max-in-flight",
        in_flight,
        "--stats",
        stats,
        "--stats-every-s",
        0.1,
    )
    proc = start(args, env={"KAFKA_TEST_DELAY_S": "0.0005"})
    wait_for_progress(stats, proc, 800)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    first = json.loads(stats.read_text())["produced"]
    assert first < count - 1000  # killed mid-stream

    # The dead member keeps its partitions until its session times out.
    code, err = finish(start(args[:-4] + ["--stop-when-idle", 1]))
    assert code == 0, err
    inputs = inputs_by_n(topics, count)
    outputs, letters = outcome(topics, at_least=1)
    seen = Counter(json.loads(r.value)["n"] for r in outputs)
    seen.update(n_of_dead_letter(r.value, inputs) for r in letters)
    assert set(seen) == set(range(count))  # none lost
    duplicates = sum(seen.values()) - count
    # At most what was consumed and not committed: the in-flight cap, plus the
    # batch whose commit was on its way.
    assert duplicates <= in_flight + batch, duplicates


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_drains_commits_and_leaves_the_group(
    broker, project, kafka_config, tmp_path, workers
):
    topics = Topics(broker.bootstrap)
    count = 3000
    produce(broker.bootstrap, topics.input, events(count))
    stats = tmp_path / "stats.json"
    args = topics.args(
        project, kafka_config, "--batch-size", 100, "--stats", stats, "--stats-every-s", 0.1
    )
    proc = start(args + ["--workers", workers], env={"KAFKA_TEST_DELAY_S": "0.0005"})
    wait_for_progress(stats, proc, 500)
    proc.send_signal(signal.SIGTERM)
    code, err = finish(proc, timeout_s=40)
    assert code == 143, err
    assert "interrupted by SIGTERM" in err
    summary = json.loads(stats.read_text())
    assert summary["unacknowledged"] == 0 and summary["complete"]
    done = summary["produced"] + summary["dead_lettered"]
    assert done == summary["consumed"] < count
    offsets = committed(broker.bootstrap, topics.group, topics.input, PARTITIONS)
    # Everything consumed was committed (-1001: a partition not read yet).
    assert sum(max(0, o) for o in offsets.values()) == done

    # The group was left: a second member takes every partition at once and
    # reads exactly the rest.
    started = time.monotonic()
    code, err = finish(start(args[:-4] + ["--stop-when-idle", 1]))
    assert code == 0, err
    assert time.monotonic() - started < 30
    inputs = inputs_by_n(topics, count)
    outputs, letters = outcome(topics, at_least=1)
    seen = Counter(json.loads(r.value)["n"] for r in outputs)
    seen.update(n_of_dead_letter(r.value, inputs) for r in letters)
    assert seen == Counter(range(count))  # all, and none twice


def test_two_members_share_the_partitions_and_lose_nothing_when_one_dies(
    broker, project, kafka_config, tmp_path
):
    topics = Topics(broker.bootstrap)
    count, in_flight, batch = 4000, 300, 50
    produce(broker.bootstrap, topics.input, events(count))
    slow = {"KAFKA_TEST_DELAY_S": "0.001"}

    def member(name: str, *extra: object) -> tuple[subprocess.Popen, Path]:
        stats = tmp_path / f"{name}.json"
        args = topics.args(project, kafka_config, "--batch-size", batch)
        args += ["--max-in-flight", in_flight, "--stats", stats, "--stats-every-s", 0.1]
        return start(args + list(extra), env=slow), stats

    first, first_stats = member("first")
    wait_for_progress(first_stats, first, 300)
    # Long enough to outlast the first member's session after it dies (the
    # second is idle meanwhile on its own partitions).
    second, second_stats = member("second", "--stop-when-idle", 5)
    wait_for_progress(second_stats, second, 100)
    assert first.poll() is None
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    code, err = finish(second, timeout_s=120)
    assert code == 0, err
    # The second member held only some partitions while the first lived.
    assert json.loads(first_stats.read_text())["produced"] >= 300

    inputs = inputs_by_n(topics, count)
    outputs, letters = outcome(topics, at_least=1)
    seen = Counter(json.loads(r.value)["n"] for r in outputs)
    seen.update(n_of_dead_letter(r.value, inputs) for r in letters)
    assert set(seen) == set(range(count))  # none lost
    assert sum(seen.values()) - count <= in_flight + batch
    ends = Counter(p for p, *_ in inputs.values())
    assert committed(broker.bootstrap, topics.group, topics.input, PARTITIONS) == {
        p: ends[p] for p in range(PARTITIONS)
    }


def test_a_stalled_output_broker_caps_what_is_in_flight(broker, project, kafka_config, tmp_path):
    # The outputs go to a second broker, paused (SIGSTOP) mid-run: no
    # acknowledgement comes, so consumption must stop at the cap; resumed,
    # the run finishes and nothing is lost.
    topics = Topics(broker.bootstrap)
    count, cap, batch = 3000, 300, 50
    produce(broker.bootstrap, topics.input, events(count))
    outputs = tansu.Broker(tansu.find_binary(), tmp_path / "outputs.log")
    try:
        outputs.wait_ready()
        create_topics(outputs.bootstrap, PARTITIONS, topics.output)
        stats = tmp_path / "stats.json"
        args = topics.args(project, kafka_config, "--batch-size", batch, "--max-in-flight", cap)
        args[args.index("-o") + 1] = f"kafka://{outputs.bootstrap}/{topics.output}"
        args += ["--stats", stats, "--stats-every-s", 0.05, "--stop-when-idle", 1]
        proc = start(args, env={"KAFKA_TEST_DELAY_S": "0.0005"})
        wait_for_progress(stats, proc, 100)
        outputs.process.send_signal(signal.SIGSTOP)
        try:
            time.sleep(3)
            snapshot = json.loads(stats.read_text())
            assert proc.poll() is None
            assert snapshot["consumed"] - snapshot["produced"] - snapshot["dead_lettered"] <= cap
            assert snapshot["consumed"] < count
        finally:
            outputs.process.send_signal(signal.SIGCONT)
        code, err = finish(proc, timeout_s=90)
        assert code == 0, err
        written = read_all(outputs.bootstrap, topics.output, PARTITIONS, at_least=1)
        letters = read_all(broker.bootstrap, topics.dlq, PARTITIONS)
        inputs = inputs_by_n(topics, count)
        seen = Counter(json.loads(r.value)["n"] for r in written)
        seen.update(n_of_dead_letter(r.value, inputs) for r in letters)
        assert seen == Counter(range(count))
    finally:
        outputs.stop()


def test_a_second_sigterm_stops_at_once(broker, project, kafka_config, tmp_path):
    topics = Topics(broker.bootstrap)
    produce(broker.bootstrap, topics.input, events(2000))
    hanging = tmp_path / "hanging"
    proc = start(topics.args(project, kafka_config), env={"KAFKA_TEST_HANG": str(hanging)})
    deadline = time.monotonic() + 60
    while not hanging.exists():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    # The first signal waits for the batch in hand (which hangs); the second not.
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    assert proc.poll() is None
    stopped = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    code, err = finish(proc, timeout_s=30)
    assert code == 143, err
    assert time.monotonic() - stopped < 3
    assert "second signal" in err
    assert "Traceback" not in err
