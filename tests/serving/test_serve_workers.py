"""`packflow serve --workers N`: N server processes on one port, a supervisor
that starts them, announces them once, forwards signals and replaces the dead,
and /metrics merged across the workers."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from click.testing import CliRunner

from packflow.loaders import InferenceBackendLoader
from packflow.serving.workers import label_worker, merge_metrics
from tests.serving.harness import (
    EXAMPLE,
    INIT_FAILS_BACKEND,
    ServerProcess,
    echo_expected,
    firewall_events,
    metric_samples,
)
from tests.serving.test_v2 import feature_matrix
from tests.support.sample_projects import write_project

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="--workers needs Linux's SO_REUSEPORT"
)

FIREWALL = "firewall-anomaly"


def children(pid: int) -> set[int]:
    """The processes whose parent is ``pid``."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name (in parentheses) may hold spaces: split after it.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout} s: {what}")


def fresh_get(port: int, path: str) -> int:
    """GET ``path`` on a new connection (the kernel picks the worker per
    connection); the status code."""
    with httpx.Client(timeout=10) as client:
        return client.get(f"http://127.0.0.1:{port}{path}").status_code


def requests_by_worker(url: str) -> dict[str, float]:
    """Requests each worker has counted, from the merged /metrics."""
    counts: dict[str, float] = {}
    samples = metric_samples(httpx.get(f"{url}/metrics", timeout=10).text, keep_model=True)
    for (name, labels), value in samples.items():
        if name == "packflow_requests_total":
            worker = dict(labels)["worker"]
            counts[worker] = counts.get(worker, 0) + value
    return counts


@pytest.fixture(scope="module")
def two_workers():
    args = ["--workers", "2", "--max-wait-ms", "5", "--grpc-port", "0"]
    with ServerProcess(EXAMPLE, *args) as server:
        yield server


def test_the_listening_line_names_one_port_and_the_workers(two_workers):
    line = two_workers.listening_line
    assert line.startswith(f"Listening on http://127.0.0.1:{two_workers.port} ")
    assert f"(model '{FIREWALL}') (2 workers)" in line
    assert two_workers.grpc_target is not None
    # One line, printed by the supervisor: the workers print none.
    assert len(children(two_workers.proc.pid)) == 2


def test_two_workers_answer_as_the_backend_does(two_workers):
    events = firewall_events(40, seed=7)
    expected = InferenceBackendLoader.from_project(EXAMPLE)(events)
    body = {
        "inputs": [
            {
                "name": "features",
                "datatype": "FP64",
                "shape": [40, 9],
                "data": feature_matrix(events).ravel().tolist(),
            }
        ]
    }
    # Fresh connections, so both workers answer some.
    for _ in range(6):
        with httpx.Client(base_url=two_workers.url, timeout=10) as http:
            assert http.post("/invocations", json=events).json() == expected
            answer = http.post(f"/v2/models/{FIREWALL}/infer", json=body)
            assert answer.status_code == 200, answer.text
            scores = {o["name"]: o["data"] for o in answer.json()["outputs"]}["anomaly_score"]
            np.testing.assert_allclose(scores, [r["anomaly_score"] for r in expected])


def test_two_workers_answer_over_grpc(two_workers):
    import tritonclient.grpc as triton

    events = firewall_events(12, seed=3)
    expected = InferenceBackendLoader.from_project(EXAMPLE)(events)
    for _ in range(4):  # a channel each: a connection each
        client = triton.InferenceServerClient(url=two_workers.grpc_target)
        try:
            t = triton.InferInput("features", [12, 9], "FP64")
            t.set_data_from_numpy(feature_matrix(events))
            scores = client.infer(FIREWALL, [t]).as_numpy("anomaly_score")
            np.testing.assert_allclose(scores, [r["anomaly_score"] for r in expected])
        finally:
            client.close()


def test_both_workers_take_connections_and_metrics_merge(two_workers):
    # Each new connection is hashed (by its source port) to one worker: among
    # 60, both surely get some.
    for _ in range(60):
        assert fresh_get(two_workers.port, "/healthz") == 200
    # Siblings' figures are up to a second old: wait (bounded) for both, and
    # for every request counted.
    wait_for(
        lambda: (lambda c: set(c) == {"0", "1"} and sum(c.values()) >= 60)(
            requests_by_worker(two_workers.url)
        ),
        15,
        "the 60 requests counted, under worker 0 and worker 1",
    )
    text = httpx.get(f"{two_workers.url}/metrics", timeout=10).text
    # One # HELP and # TYPE per family, every sample labelled by worker (the
    # parser refuses a family split in two).
    helps = [line for line in text.splitlines() if line.startswith("# HELP ")]
    assert len(helps) == len(set(helps))
    samples = metric_samples(text, keep_model=True)
    assert all("worker" in dict(labels) for _, labels in samples)
    workers = {dict(labels)["worker"] for name, labels in samples if name == "packflow_connections"}
    assert workers == {"0", "1"}


def test_label_and_merge_keep_the_text_format():
    one = (
        b"# HELP a_total A.\n# TYPE a_total counter\n"
        b'a_total{code="200"} 3\n# HELP g G.\n# TYPE g gauge\ng 1\n'
        b'# HELP h H.\n# TYPE h histogram\nh_bucket{le="+Inf"} 2\nh_sum 0.5\nh_count 2\n'
    )
    two = b'# HELP a_total A.\n# TYPE a_total counter\na_total{code="500"} 1\n'
    merged = merge_metrics([label_worker(one, 0), label_worker(two, 1)]).decode()
    assert merged.count("# HELP a_total") == 1
    samples = metric_samples(merged, keep_model=True)
    assert samples[("a_total", frozenset({("worker", "0"), ("code", "200")}))] == 3
    assert samples[("a_total", frozenset({("worker", "1"), ("code", "500")}))] == 1
    assert samples[("g", frozenset({("worker", "0")}))] == 1
    assert samples[("h_count", frozenset({("worker", "0")}))] == 2
    assert samples[("h_bucket", frozenset({("worker", "0"), ("le", "+Inf")}))] == 2
    # a_total's samples stay together, before g's.
    lines = merged.splitlines()
    assert lines.index('a_total{worker="1",code="500"} 1') < lines.index("# HELP g G.")


def test_sigterm_drains_every_worker_then_exits_0(echo_project):
    args = ["--workers", "2", "--config", "delay_s=0.3", "--max-batch-rows", "4"]
    server = ServerProcess(echo_project, *args, "--max-wait-ms", "1")
    try:
        url = server.url
        requests = [[{"id": 3 * i + j, "x": j} for j in range(3)] for i in range(16)]

        async def send_all_then_signal():
            # A client per request: connections on both workers.
            clients = [httpx.AsyncClient(timeout=30) for _ in requests]
            try:
                tasks = [
                    asyncio.ensure_future(c.post(f"{url}/invocations", json=rows))
                    for c, rows in zip(clients, requests)
                ]
                await asyncio.sleep(0.5)  # every request is queued or running
                server.signal(signal.SIGTERM)
                return await asyncio.gather(*tasks)
            finally:
                for c in clients:
                    await c.aclose()

        answers = asyncio.run(send_all_then_signal())
        for rows, answer in zip(requests, answers):
            assert answer.status_code == 200, answer.text
            assert answer.json() == echo_expected(rows)
        assert server.wait(30) == 0
        assert server.stderr().count("Drained and stopped on SIGTERM.") == 1
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/healthz", timeout=2)
    finally:
        server.kill()


def test_a_second_signal_stops_every_worker_at_once(echo_project):
    args = ["--workers", "2", "--config", "delay_s=20", "--max-wait-ms", "1"]
    server = ServerProcess(echo_project, *args)
    try:
        workers = children(server.proc.pid)
        socks = []
        body = b'{"id": 1, "x": 1}'
        for _ in range(8):  # some land on each worker
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            sock.sendall(
                b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            socks.append(sock)
        time.sleep(0.5)  # the batches are running (for 20 s)
        server.signal(signal.SIGTERM)
        time.sleep(0.5)
        assert server.proc.poll() is None  # draining: waits for the batches
        server.signal(signal.SIGINT)
        assert server.wait(15) == 1
        assert "Stopped at once on a second signal (SIGTERM first)." in server.stderr()
        wait_for(lambda: not any(alive(p) for p in workers), 15, "the workers exit")
        for sock in socks:
            sock.close()
    finally:
        server.kill()


def test_workers_do_not_outlive_a_killed_supervisor(echo_project):
    server = ServerProcess(echo_project, "--workers", "2")
    try:
        workers = children(server.proc.pid)
        assert len(workers) == 2
        argv = Path(f"/proc/{min(workers)}/cmdline").read_bytes().split(b"\0")
        folder = Path(json.loads(argv[argv.index(b"--worker-spec") + 1])["metrics_dir"])
        assert folder.is_dir()
        server.proc.kill()
        server.proc.wait(5)
        wait_for(lambda: not any(alive(p) for p in workers), 20, "the workers exit")
        # The last worker out removes the metrics folder the supervisor left.
        assert not folder.exists()
    finally:
        server.kill()


def test_a_killed_worker_is_replaced_and_the_server_goes_on(echo_project):
    server = ServerProcess(echo_project, "--workers", "2")
    try:
        first = children(server.proc.pid)
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        replaced = wait_for(
            lambda: (lambda now: now if len(now) == 2 and victim not in now else None)(
                children(server.proc.pid)
            ),
            15,
            "a new worker in the dead one's place",
        )
        assert first - {victim} < replaced
        stderr = wait_for(
            lambda: (lambda e: e if "again" in e else None)(server.stderr()), 10, "the log"
        )
        assert f"(pid {victim}) was killed by SIGKILL" in stderr
        # Whichever worker takes each new connection answers (the new one once
        # it listens; the other meanwhile).
        for i in range(40):
            with httpx.Client(timeout=10) as http:
                answer = http.post(f"{server.url}/invocations", json={"id": i, "x": i})
            assert answer.status_code == 200
            assert answer.json() == echo_expected([{"id": i, "x": i}])[0]
        assert server.proc.poll() is None
    finally:
        server.stop()
        server.kill()


def test_initialize_failing_exits_with_one_message(tmp_path):
    project = write_project(tmp_path / "broken", backend=INIT_FAILS_BACKEND)
    proc = subprocess.run(
        [sys.executable, "-m", "packflow.cli", "serve", str(project), "--port", "0"]
        + ["--workers", "3"],
        capture_output=True,
        timeout=90,
    )
    assert proc.returncode == 1
    assert b"Listening" not in proc.stdout
    assert proc.stderr.count(b"no weights at /models/missing.bin") == 1, proc.stderr


def test_a_port_in_use_exits_1(echo_project):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "packflow.cli", "serve", str(echo_project)]
            + ["--port", str(port), "--workers", "2"],
            capture_output=True,
            timeout=60,
        )
    assert proc.returncode == 1
    assert b"Listening" not in proc.stdout
    assert f"could not listen on 127.0.0.1:{port}".encode() in proc.stderr


def test_a_port_held_by_another_workers_server_is_in_use(echo_project):
    # Its workers listen with SO_REUSEPORT: a second server of the same user
    # could join their group unnoticed; it is refused instead.
    with ServerProcess(echo_project, "--workers", "2") as server:
        proc = subprocess.run(
            [sys.executable, "-m", "packflow.cli", "serve", str(echo_project)]
            + ["--port", str(server.port), "--workers", "2"],
            capture_output=True,
            timeout=60,
        )
    assert proc.returncode == 1
    assert f"could not listen on 127.0.0.1:{server.port}".encode() in proc.stderr


def test_without_reuse_port_several_workers_are_a_usage_error(echo_project, monkeypatch):
    from packflow.cli import cli
    from packflow.serving import workers

    monkeypatch.setattr(workers, "reuse_port_spreads", lambda: False)
    result = CliRunner().invoke(cli, ["serve", str(echo_project), "--workers", "2"])
    assert result.exit_code == 2
    assert "SO_REUSEPORT" in result.output


def _fake_worker(body: str):
    """A Supervisor command: Python that gets ``status`` (its status pipe)
    and ``watch`` (the supervisor's pipe) and runs ``body``."""

    def command(index: int, watch_fd: int, status_fd: int) -> list[str]:
        prelude = (
            f"import json, os, sys, time\nindex, watch, status = {index}, {watch_fd}, {status_fd}\n"
        )
        return [sys.executable, "-c", prelude + body]

    return command


def test_workers_that_keep_dying_stop_the_supervisor(caplog):
    from packflow.serving.workers import MAX_DEATHS, Supervisor, WorkerFailed

    # Each listens, then dies a moment later: replaced until the limit.
    listens_then_dies = (
        "os.write(status, b'{\"listening\": true}\\n')\ntime.sleep(0.3)\nsys.exit(3)\n"
    )
    announced = []
    supervisor = Supervisor(2, _fake_worker(listens_then_dies))
    with pytest.raises(WorkerFailed) as failed:
        supervisor.run(lambda: announced.append(True))
    assert announced == [True]
    assert failed.value.code == 1
    assert f"{MAX_DEATHS} workers died within 60 s" in failed.value.message
    logged = [r.getMessage() for r in caplog.records]
    assert sum("exited with code 3" in m for m in logged) == MAX_DEATHS
    assert not supervisor.workers


def test_a_worker_that_cannot_start_gives_its_message_and_code():
    from packflow.serving.workers import Supervisor, WorkerFailed

    # Worker 1 reports its error; worker 0 would listen but is never announced.
    body = (
        "if index == 1:\n"
        "    os.write(status, json.dumps({'error': 'port taken', 'code': 4}).encode() + b'\\n')\n"
        "    sys.exit(4)\n"
        "time.sleep(30)\n"
    )
    announced = []
    supervisor = Supervisor(2, _fake_worker(body))
    with pytest.raises(WorkerFailed) as failed:
        supervisor.run(lambda: announced.append(True))
    assert (failed.value.message, failed.value.code) == ("port taken", 4)
    assert announced == []
    assert not supervisor.workers  # worker 0 was stopped


def test_an_unknown_config_key_is_a_usage_error_shown_once(echo_project):
    proc = subprocess.run(
        [sys.executable, "-m", "packflow.cli", "serve", str(echo_project), "--port", "0"]
        + ["--workers", "2", "--config", "no_such_key=1"],
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.count(b"no_such_key") == 1, proc.stderr


# initialize() takes `init_s` (a model that loads slowly).
SLOW_START_BACKEND = """
import time

from packflow import BackendConfig, InferenceBackend


class Config(BackendConfig):
    init_s: float = 0.0
    note_a: str = ""
    note_b: str = ""


class Backend(InferenceBackend):
    backend_config_model = Config

    def initialize(self):
        time.sleep(self.config.init_s)

    def execute(self, inputs):
        notes = len(self.config.note_a) + len(self.config.note_b)
        return [{"id": r["id"], "notes": notes} for r in inputs]
"""


def worker_spec(pid: int) -> dict:
    """The settings of worker process ``pid``: its ``--worker-spec`` and
    those every worker shares."""
    from packflow.serving.workers import SPEC_FILE

    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    own = json.loads(argv[argv.index(b"--worker-spec") + 1])
    return {**json.loads((Path(own["metrics_dir"]) / SPEC_FILE).read_text()), **own}


def started_workers(supervisor: subprocess.Popen, count: int) -> set[int]:
    """The supervisor's ``count`` workers, once each runs (its command line
    read)."""

    def running() -> set[int]:
        found = set()
        for pid in children(supervisor.pid):
            try:
                if b"--worker-spec" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    found.add(pid)
            except OSError:
                pass
        return found if len(found) == count else set()

    return wait_for(running, 30, f"{count} workers running")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_loading(tmp_path, output: int) -> tuple[Path, subprocess.Popen]:
    """A project whose initialize() takes two minutes, and a two-worker
    server of it still loading (its output to ``output``)."""
    project = write_project(tmp_path / "slow", name="slow", backend=SLOW_START_BACKEND)
    server = subprocess.Popen(
        [sys.executable, "-m", "packflow.cli", "serve", str(project), "--port", "0"]
        + ["--workers", "2", "--config", "init_s=120"],
        stdout=output,
        stderr=output,
    )
    return project, server


def test_a_port_held_while_workers_load_is_in_use(tmp_path):
    # Before its workers listen, a server only holds its port bound: a second
    # server must not pass the check then and join the first one's group.
    project, first = start_loading(tmp_path, subprocess.PIPE)
    try:
        port = worker_spec(min(started_workers(first, 2)))["port"]
        second = subprocess.run(
            [sys.executable, "-m", "packflow.cli", "serve", str(project)]
            + ["--port", str(port), "--workers", "2"],
            capture_output=True,
            timeout=60,
        )
        assert second.returncode == 1, second.stderr
        assert b"Listening" not in second.stdout
        assert f"could not listen on 127.0.0.1:{port}".encode() in second.stderr
        # A signal while the workers load stops them (they are not serving).
        first.send_signal(signal.SIGTERM)
        assert first.wait(30) == 0
    finally:
        first.kill()
        first.communicate(timeout=30)


def test_the_grpc_port_cannot_be_the_http_port(echo_project):
    # As one process: the HTTP server listens there, so gRPC cannot.
    port = free_port()
    proc = subprocess.run(
        [sys.executable, "-m", "packflow.cli", "serve", str(echo_project)]
        + ["--port", str(port), "--grpc-port", str(port), "--workers", "2"],
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 1, proc.stderr
    assert b"Listening" not in proc.stdout
    assert f"could not listen for gRPC on 127.0.0.1:{port}".encode() in proc.stderr


def test_a_worker_closing_its_status_pipe_does_not_busy_the_supervisor():
    from packflow.serving.workers import Supervisor

    # The pipe at its end while the worker lives: select() or poll() on it
    # returns at once, every time; the supervisor must stop waiting on it.
    body = (
        "os.write(status, b'{\"listening\": true}\\n')\nos.close(status)\n"
        "while os.read(watch, 1):\n    pass\n"
    )
    supervisor = Supervisor(2, _fake_worker(body))
    waits = []
    wait = supervisor._wait
    supervisor._wait = lambda: waits.append(1) or wait()

    def listening() -> None:
        # Then a couple of seconds idle, and the first signal.
        threading.Timer(2, os.kill, (os.getpid(), signal.SIGTERM)).start()

    assert supervisor.run(listening) == (False, "SIGTERM")
    # A wait is a tenth of a second when nothing happens: some tens in those
    # seconds, where a busy loop makes tens of thousands.
    assert len(waits) < 1000, len(waits)


def test_status_lines_are_read_within_bounds():
    from packflow.serving.workers import MAX_STATUS_LINE, _Worker

    read, write = os.pipe()
    os.set_blocking(read, False)
    worker = _Worker(0, None, -1, read)
    garbage = [
        b"x" * (4 * MAX_STATUS_LINE),  # a line far too long, then more lines
        b"\n[1]\n7\nnot json\n",
        b'{"error": "bad code", "code": "x"}\n',
    ]

    def write_all() -> None:
        for data in garbage:
            while data:
                data = data[os.write(write, data) :]
        os.close(write)

    writer = threading.Thread(target=write_all)
    writer.start()
    longest = 0
    deadline = time.monotonic() + 30
    while not worker.status_ended and time.monotonic() < deadline:
        worker.read_status()
        longest = max(longest, len(worker.pending))
        time.sleep(0.001)
    writer.join(30)
    os.close(read)
    assert worker.status_ended
    assert longest <= MAX_STATUS_LINE + 4096
    assert not worker.listening
    assert worker.error == ("bad code", 1)


def test_the_supervisor_waits_on_file_descriptors_past_1023():
    import resource

    from packflow.serving.workers import Supervisor

    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] <= 1500:
        pytest.skip("file descriptors limited to 1500 or fewer here")
    body = "os.write(status, b'{\"listening\": true}\\n')\nwhile os.read(watch, 1):\n    pass\n"
    supervisor = Supervisor(1, _fake_worker(body))
    worker = supervisor._start(0)
    # Where the status pipe of the 700th worker or so would be.
    os.dup2(worker.status, 1500)
    os.close(worker.status)
    worker.status = 1500
    try:
        wait_for(lambda: supervisor._wait() or worker.listening, 30, "the worker listens")
    finally:
        supervisor._stop_now()
    assert not supervisor.workers


def test_a_config_too_long_for_a_command_line_reaches_the_workers(tmp_path):
    # Linux takes 128 KiB in one argument: two --config values that fit each
    # exceed it together, as one worker setting.
    project = write_project(tmp_path / "notes", name="notes", backend=SLOW_START_BACKEND)
    note = "n" * 100_000
    args = ["--workers", "2", "--config", f"note_a={note}", "--config", f"note_b={note}"]
    server = ServerProcess(project, *args)
    try:
        for i in range(4):
            with httpx.Client(timeout=10) as http:
                answer = http.post(f"{server.url}/invocations", json={"id": i, "x": i})
            assert answer.json() == {"id": i, "notes": 200_000}
        server.signal(signal.SIGTERM)
        assert server.wait(30) == 0
    finally:
        server.kill()


def test_a_worker_that_cannot_be_run_stops_the_supervisor_with_a_message(tmp_path):
    from packflow.serving.workers import Supervisor, WorkerFailed

    # As when the system is out of processes or memory: no traceback.
    missing = str(tmp_path / "no-such-python")
    supervisor = Supervisor(2, lambda index, watch, status: [missing])
    with pytest.raises(WorkerFailed) as failed:
        supervisor.run(lambda: None)
    assert failed.value.code == 1
    assert failed.value.message.startswith("could not start worker 0: ")
    assert "no-such-python" in failed.value.message
    assert not supervisor.workers


def test_workers_killed_while_loading_leave_no_private_folder(tmp_path):
    # SIGKILL while the workers load: their SIGTERM ends them at once, and
    # the folder (with the settings, --config's values among them) must go.
    _, supervisor = start_loading(tmp_path, subprocess.DEVNULL)
    try:
        workers = started_workers(supervisor, 2)
        folder = Path(worker_spec(min(workers))["metrics_dir"])
        supervisor.kill()
        supervisor.wait(10)
        wait_for(lambda: not any(alive(p) for p in workers), 30, "the workers exit")
        assert not folder.exists(), list(folder.iterdir())
    finally:
        supervisor.kill()
        supervisor.wait(10)


def test_sigterm_to_every_process_at_once_drains(echo_project):
    # As systemd stops a unit (every process of it gets SIGTERM): a worker's
    # own SIGTERM and its supervisor's request make one drain, not a stop at
    # once that cuts the requests in flight.
    args = ["--workers", "2", "--config", "delay_s=1", "--max-wait-ms", "1"]
    server = ServerProcess(echo_project, *args)
    try:
        url = server.url
        workers = children(server.proc.pid)
        assert len(workers) == 2

        async def send_all_then_signal():
            clients = [httpx.AsyncClient(timeout=30) for _ in range(8)]
            try:
                tasks = [
                    asyncio.ensure_future(c.post(f"{url}/invocations", json={"id": i, "x": i}))
                    for i, c in enumerate(clients)
                ]
                await asyncio.sleep(0.5)  # every request is queued or running
                for pid in (server.proc.pid, *workers):
                    os.kill(pid, signal.SIGTERM)
                return await asyncio.gather(*tasks)
            finally:
                for c in clients:
                    await c.aclose()

        answers = asyncio.run(send_all_then_signal())
        for i, answer in enumerate(answers):
            assert answer.status_code == 200, answer.text
            assert answer.json() == echo_expected([{"id": i, "x": i}])[0]
        assert server.wait(30) == 0
        assert server.stderr().count("Drained and stopped on SIGTERM.") == 1
    finally:
        server.kill()


def test_a_port_a_server_just_left_is_taken(echo_project):
    # A server without SO_REUSEPORT (one process, or another program) that
    # closed its connections first leaves them in TIME_WAIT on its port for
    # a minute: a restart on that port must not be refused.
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port), timeout=5)
        accepted, _ = listener.accept()
        accepted.close()  # the server's side closes first: its end waits
        client.recv(1)
        client.close()
    with ServerProcess(echo_project, "--workers", "2", "--port", str(port)) as server:
        assert server.port == port
        assert fresh_get(port, "/healthz") == 200


# initialize() hangs while the file `hold` names exists (a replacement that
# loads for long, the first workers quick).
HOLD_BACKEND = """
import os
import time

from packflow import BackendConfig, InferenceBackend


class Config(BackendConfig):
    hold: str = ""


class Backend(InferenceBackend):
    backend_config_model = Config

    def initialize(self):
        while self.config.hold and os.path.exists(self.config.hold):
            time.sleep(0.1)

    def execute(self, inputs):
        return inputs
"""


def test_a_dead_workers_metrics_go_while_its_replacement_loads(tmp_path):
    project = write_project(tmp_path / "hold", name="hold", backend=HOLD_BACKEND)
    hold = tmp_path / "hold-the-replacement"
    server = ServerProcess(project, "--workers", "2", "--config", f"hold={hold}")
    try:

        def reporting() -> set[str]:
            text = httpx.get(f"{server.url}/metrics", timeout=10).text
            samples = metric_samples(text, keep_model=True)
            return {dict(labels)["worker"] for _, labels in samples}

        wait_for(lambda: reporting() == {"0", "1"}, 15, "both workers in /metrics")
        hold.touch()
        victim = min(children(server.proc.pid))
        index = worker_spec(victim)["index"]
        os.kill(victim, signal.SIGKILL)
        # Its replacement loads (held): only the live worker answers, and
        # the dead one's figures must not be reported as current meanwhile.
        wait_for(lambda: reporting() == {str(1 - index)}, 30, "the dead worker's series gone")
        hold.unlink()
        wait_for(lambda: reporting() == {"0", "1"}, 30, "the replacement in /metrics")
    finally:
        server.stop()
        server.kill()


def test_a_worker_that_dies_after_listening_but_before_the_others_is_named_so():
    from packflow.serving.workers import Supervisor, WorkerFailed

    # Worker 0 listens, then exits; worker 1 is still loading.
    body = (
        "if index == 0:\n"
        "    os.write(status, b'{\"listening\": true}\\n')\n"
        "    sys.exit(3)\n"
        "while os.read(watch, 1):\n    pass\n"
    )
    announced = []
    supervisor = Supervisor(2, _fake_worker(body))
    with pytest.raises(WorkerFailed) as failed:
        supervisor.run(lambda: announced.append(True))
    assert announced == []
    assert failed.value.code == 3
    assert failed.value.message == "worker 0 exited with code 3 before the others listened"
    assert not supervisor.workers


def test_a_supervisor_killed_during_the_drain_leaves_no_private_folder(echo_project):
    args = ["--workers", "2", "--config", "delay_s=3", "--max-wait-ms", "1"]
    server = ServerProcess(echo_project, *args)
    try:
        workers = children(server.proc.pid)
        folder = Path(worker_spec(min(workers))["metrics_dir"])
        socks = []
        body = b'{"id": 1, "x": 1}'
        for _ in range(16):  # some land on each worker (all on one: 1 in 30000)
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            sock.sendall(
                b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            socks.append(sock)
        time.sleep(0.5)  # the batches are running (for 3 s)
        server.signal(signal.SIGTERM)
        time.sleep(0.5)  # the workers drain
        server.proc.kill()
        server.proc.wait(10)
        wait_for(lambda: not any(alive(p) for p in workers), 30, "the workers drain and exit")
        assert not folder.exists(), list(folder.iterdir())
        for sock in socks:
            sock.close()
    finally:
        server.kill()
