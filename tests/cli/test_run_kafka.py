"""``packflow run`` with kafka:// URLs: usage errors before anything connects,
a broker that does not answer or lacks the topic, and a Kafka input written
to files."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("confluent_kafka", reason="the kafka extra (confluent-kafka) is missing")

from tests.support.kafka_io import BACKEND, create_topics, events, produce, read_all, unique  # noqa: E402
from tests.support.sample_projects import write_project  # noqa: E402
from tests.support.tansu import FAST_GROUP  # noqa: E402
from tests.support.testkit import run_cli  # noqa: E402


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    return write_project(tmp_path / "proj", backend=BACKEND)


@pytest.fixture()
def fast_group(tmp_path: Path) -> Path:
    path = tmp_path / "kafka.properties"
    path.write_text("".join(f"consumer.{k}={v}\n" for k, v in FAST_GROUP.items()))
    return path


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["-i", "kafka://127.0.0.1:9/t"], "needs --group"),
        (["-i", "kafka://127.0.0.1:9/t", "--group", "g", "--workers", "0"], "--workers"),
        (["-i", "kafka://127.0.0.1:9/t", "--group", "g", "--skip-lines", "3"], "--skip-lines"),
        (["-i", "kafka://127.0.0.1/t", "--group", "g"], "is not HOST:PORT"),
        (["-i", "kafka://127.0.0.1:9/t", "--group", "g", "-o", "kafka://h/x"], "HOST:PORT"),
        (["-i", "in.jsonl", "--group", "g"], "--group needs a Kafka input"),
        (["-i", "in.jsonl", "--stop-when-idle", "1"], "--stop-when-idle needs a Kafka input"),
        (["-i", "in.jsonl", "-o", "kafka://127.0.0.1:9/t", "--workers", "2"], "--workers"),
        (["-i", "in.jsonl", "--kafka-config", "in.jsonl"], "needs a kafka:// input or output"),
    ],
)
def test_usage_errors_come_before_any_connection(project, tmp_path, args, says):
    (tmp_path / "in.jsonl").write_text('{"n": 1}\n')
    done = run_cli([project, *args], timeout=60, cwd=tmp_path, text=True)
    assert done.returncode == 2, done.stderr
    assert says in done.stderr


def test_a_bad_kafka_config_file_is_a_usage_error(project, tmp_path):
    config = tmp_path / "bad.properties"
    config.write_text("enable.auto.commit=true\n")
    args = ["-i", "kafka://127.0.0.1:9/t", "--group", "g", "--kafka-config", config]
    done = run_cli([project, *args], timeout=60, text=True)
    assert done.returncode == 2
    assert "enable.auto.commit is set by packflow run" in done.stderr


def test_a_broker_that_does_not_answer_ends_the_run(project):
    started = time.monotonic()
    url = f"kafka://127.0.0.1:{_closed_port()}/events"
    done = run_cli([project, "-i", url, "--group", "g"], timeout=60, text=True)
    assert done.returncode == 74, done.stderr
    assert "no answer from the Kafka broker" in done.stderr
    assert time.monotonic() - started < 40


def test_a_missing_topic_is_named(broker, project):
    url = f"kafka://{broker.bootstrap}/{unique('missing')}"
    done = run_cli([project, "-i", url, "--group", "g"], timeout=60, text=True)
    assert done.returncode == 2, done.stderr
    assert "missing" in done.stderr and "-i/--input" in done.stderr

    real = unique("real")
    create_topics(broker.bootstrap, 1, real)
    args = ["-i", f"kafka://{broker.bootstrap}/{real}", "--group", "g", "-o", url]
    args += ["--stop-when-idle", 0]
    done = run_cli([project, *args], timeout=60, text=True)
    assert done.returncode == 2, done.stderr
    assert "-o/--output" in done.stderr


def test_a_kafka_input_into_files(broker, project, fast_group, tmp_path):
    topic = unique("in")
    create_topics(broker.bootstrap, 2, topic)
    count = 500
    produce(broker.bootstrap, topic, events(count))
    out, errors = tmp_path / "out.jsonl", tmp_path / "errors.jsonl"
    args = [project, "-i", f"kafka://{broker.bootstrap}/{topic}", "--group", unique("g")]
    args += ["-o", out, "--errors", errors, "--kafka-config", fast_group, "--stop-when-idle", 0.5]
    done = run_cli(args, timeout=90, text=True)
    assert done.returncode == 0, done.stderr
    outputs = [json.loads(line) for line in out.read_text().splitlines()]
    letters = [json.loads(line) for line in errors.read_text().splitlines()]
    assert len(outputs) + len(letters) == count
    assert sorted(o["n"] for o in outputs) == sorted(
        n for n in range(count) if not (n % 97 == 5 or n % 101 == 7 or n == 11)
    )
    assert {(d["topic"], d["partition"]) for d in letters} <= {(topic, 0), (topic, 1)}
    assert {d["step"] for d in letters} == {"parse", "execute"}
    assert "partition 0" in done.stderr and "partition 1" in done.stderr


def test_a_file_input_into_topics(broker, project, tmp_path):
    out, dlq = unique("out"), unique("dlq")
    create_topics(broker.bootstrap, 2, out, dlq)
    count = 400
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"".join(v.replace(b"\n", b" ") + b"\n" for _, v in events(count)))
    url = f"kafka://{broker.bootstrap}"
    args = [project, "-i", source, "-o", f"{url}/{out}", "--errors", f"{url}/{dlq}"]
    done = run_cli(args, timeout=90, text=True)
    assert done.returncode == 0, done.stderr
    outputs = read_all(broker.bootstrap, out, 2, at_least=1)
    letters = read_all(broker.bootstrap, dlq, 2)
    assert len(outputs) + len(letters) == count - 1  # the empty value is a blank line
    assert sorted(json.loads(r.value)["n"] for r in outputs) == sorted(
        n for n in range(count) if not (n % 97 == 5 or n % 101 == 7 or n == 11)
    )
    rows = [json.loads(r.value) for r in letters]
    assert sorted(r["line"] for r in rows) == sorted(
        n + 1 for n in range(count) if n % 97 == 5 or n % 101 == 7
    )
    assert all(r.key is None and r.headers == {} for r in outputs)


def test_an_empty_topic_stops_when_idle_and_a_closed_pipe_stops_quietly(
    broker, project, fast_group, tmp_path
):
    empty, full = unique("empty"), unique("full")
    create_topics(broker.bootstrap, 3, empty, full)
    url = f"kafka://{broker.bootstrap}"
    args = [project, "-i", f"{url}/{empty}", "--group", unique("g"), "-o", tmp_path / "o.jsonl"]
    args += ["--kafka-config", fast_group, "--stop-when-idle", 0.5]
    started = time.monotonic()
    done = run_cli(args, timeout=60, text=True)
    assert done.returncode == 0, done.stderr
    assert "kafka: consumed 0" in done.stderr
    assert time.monotonic() - started < 30

    produce(broker.bootstrap, full, events(3000))
    command = " ".join(
        ["'" + str(a) + "'" for a in [sys.executable, "-m", "packflow.cli", "run", project]]
        + ["-i", f"{url}/{full}", "--group", unique("g"), "--kafka-config", str(fast_group)]
        + ["--stop-when-idle", "0.5", "--batch-size", "10", "|", "head", "-n", "3"]
    )
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 3
    assert "interrupted by closed output" in done.stderr
    assert "Traceback" not in done.stderr


def test_without_the_kafka_extra_the_command_says_how_to_install_it(project):
    script = (
        "import sys; sys.modules['confluent_kafka'] = None\n"
        "from packflow.cli import cli\n"
        "cli(['run', sys.argv[1], '-i', 'kafka://127.0.0.1:9/t', '--group', 'g'])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(project)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1, done.stderr
    assert "Kafka needs confluent-kafka" in done.stderr
    assert "-m pip install 'confluent-kafka>=2.4'" in done.stderr


def test_a_failed_last_commit_is_an_io_error_not_a_clean_stop(capsys):
    """Everything delivered, but the broker refused the final commit: the
    inputs will be read again, which a batch job's exit status must say."""
    from types import SimpleNamespace

    from packflow.cli.run_kafka import _loop

    class Door:
        forced = False
        drain_timeout_s = 1.0

        def __init__(self, fail: bool):
            self.fail = fail
            self.source = SimpleNamespace(commit_failures=2)  # earlier ones are superseded
            self.delivery = SimpleNamespace(failure=None)

        def run(self, stopping, on_batch):
            return None

        def stop(self, forced):
            if self.fail:
                self.source.commit_failures += 1

        def finish(self, interrupted_by):
            return SimpleNamespace(unacknowledged=0, interrupted_by=interrupted_by)

    signals = SimpleNamespace(stopping=False, first=None, hold=lambda: None)
    summary, code = _loop(Door(fail=False), signals, None, 60.0)
    assert code == 0 and summary.interrupted_by is None
    summary, code = _loop(Door(fail=True), signals, None, 60.0)
    assert code == 74 and summary.interrupted_by == "Kafka error"
    assert "the last commit of the input offsets failed" in capsys.readouterr().err
