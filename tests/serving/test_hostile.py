"""`packflow serve` against clients and backends that misbehave: each case
runs a real server process on loopback, bounded in time and count."""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time

import httpx
import pytest

from tests.serving.harness import ECHO_BACKEND, ServerProcess, metric_samples
from tests.support.sample_projects import write_project

# Echo, but a row with "exit" raises SystemExit inside execute (a backend
# calling sys.exit(), or a library doing it for it).
_EXIT_ROW = """            if r.get("exit"):
                raise SystemExit(3)
"""
EXITING_BACKEND = ECHO_BACKEND.replace(
    '            if r.get("fail"):', _EXIT_ROW + '            if r.get("fail"):'
)


@pytest.fixture(scope="module")
def exiting_project(tmp_path_factory):
    directory = tmp_path_factory.mktemp("exiting") / "exiting"
    return write_project(directory, name="exiting", backend=EXITING_BACKEND, backend_config=None)


def _metric(client: httpx.Client, url: str, name: str) -> float:
    return metric_samples(client.get(f"{url}/metrics").text)[(name, frozenset())]


def _post_and_hang_up(port: int, rows: int) -> None:
    """Send a whole request of ``rows`` rows, then close without reading."""
    body = b"".join(b'{"id": %d, "x": 1}\n' % i for i in range(rows))
    head = (
        b"POST /invocations HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/jsonlines\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(head + body)
        time.sleep(0.05)  # queued by now


def test_clients_that_hang_up_leave_no_rows_queued(echo_project):
    with (
        ServerProcess(echo_project, "--config", "delay_s=3") as server,
        httpx.Client(timeout=30) as client,
    ):
        # One request keeps the model busy for 3 s; fifty more queue behind it
        # and hang up.
        busy = threading.Thread(
            target=client.post,
            args=(f"{server.url}/invocations",),
            kwargs={"json": {"id": 0, "x": 1}},
        )
        busy.start()
        time.sleep(0.3)
        for _ in range(50):
            _post_and_hang_up(server.port, 100)
        deadline = time.monotonic() + 2.0
        queued = _metric(client, server.url, "packflow_queue_rows")
        while queued and time.monotonic() < deadline:
            time.sleep(0.05)
            queued = _metric(client, server.url, "packflow_queue_rows")
        # Dropped while the model was still busy with the first batch.
        assert queued == 0
        assert busy.is_alive()
        busy.join(10)
        # The next real request is not stuck behind 5,000 abandoned rows.
        r = client.post(f"{server.url}/invocations", json={"id": 9, "x": 2})
        assert r.status_code == 200 and r.json() == {"id": 9, "double": 4}


def test_a_hung_model_turns_readyz_503(echo_project):
    with (
        ServerProcess(echo_project, "--config", "delay_s=4", "--request-timeout-s", "1") as server,
        httpx.Client(timeout=30) as client,
    ):
        assert client.get(f"{server.url}/readyz").status_code == 200
        answers = []
        t = threading.Thread(
            target=lambda: answers.append(
                client.post(f"{server.url}/invocations", json={"id": 1, "x": 1}).status_code
            )
        )
        t.start()
        time.sleep(1.6)
        ready = client.get(f"{server.url}/readyz")
        assert ready.status_code == 503
        assert "running for more than the 1 s request timeout" in ready.json()["error"]
        assert _metric(client, server.url, "packflow_ready") == 0
        t.join(10)
        assert answers == [504]
        # The batch ended: ready again.
        deadline = time.monotonic() + 5
        while client.get(f"{server.url}/readyz").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.1)


def test_system_exit_in_one_clients_row_fails_only_that_request(exiting_project):
    # A wait, so that the concurrent requests surely share a batch.
    with ServerProcess(exiting_project, "--max-wait-ms", "200") as server:
        results: dict[int, httpx.Response] = {}

        def post(i: int, row: dict) -> None:
            with httpx.Client(timeout=30) as c:
                results[i] = c.post(f"{server.url}/invocations", json=[{"id": i, "x": i}, row])

        threads = [
            threading.Thread(target=post, args=(i, {"id": i, "x": 1, "exit": i == 2}))
            for i in range(5)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(results) == [0, 1, 2, 3, 4]
        assert results[2].status_code == 500
        for i in (0, 1, 3, 4):
            assert results[i].status_code == 200, results[i].text
            assert results[i].json() == [{"id": i, "double": 2 * i}, {"id": i, "double": 2}]
        with httpx.Client(timeout=10) as c:
            assert c.get(f"{server.url}/healthz").status_code == 200
        log = server.stderr()
        assert "SystemExit" in log and "run again alone" in log


def test_head_ping_and_compressed_bodies(echo_server):
    url = echo_server.url
    with httpx.Client(timeout=10) as client:
        for path in ("/healthz", "/readyz", "/ping", "/v1/models", "/v1/models/echo"):
            got = client.get(f"{url}{path}")
            head = client.head(f"{url}{path}")
            assert got.status_code == head.status_code == 200, path
            assert head.content == b""
            assert head.headers["content-length"] == str(len(got.content)), path
        assert client.get(f"{url}/ping").json() == {"status": "alive"}
        assert client.head(f"{url}/invocations").status_code == 405
        body = gzip.compress(json.dumps({"id": 1, "x": 2}).encode())
        r = client.post(
            f"{url}/invocations",
            content=body,
            headers={"content-type": "application/json", "content-encoding": "gzip"},
        )
        assert r.status_code == 415
        assert "Content-Encoding 'gzip'" in r.json()["error"]


# A backend whose exception text holds a server path, as an open() that fails
# would put there.
LEAKY_BACKEND = ECHO_BACKEND.replace(
    "raise ValueError(f\"row {r.get('id')} refused\")",
    "raise FileNotFoundError(f\"[Errno 2] No such file: '/srv/models/secret-{r.get('id')}.bin'\")",
)


@pytest.mark.parametrize("expose", [False, True])
def test_error_bodies_keep_the_exception_text_in_the_log(tmp_path, expose):
    assert LEAKY_BACKEND != ECHO_BACKEND
    project = write_project(
        tmp_path / "leaky", name="leaky", backend=LEAKY_BACKEND, backend_config=None
    )
    args = ["--expose-errors"] if expose else []
    with ServerProcess(project, *args) as server, httpx.Client(timeout=10) as client:
        r = client.post(
            f"{server.url}/invocations",
            json=[{"id": 1, "x": 1}, {"id": 7, "x": 1, "fail": True}],
            headers={"x-request-id": "abc-123"},
        )
        assert r.status_code == 422
        body = r.json()
        assert (body["row"], body["step"], body["error_type"]) == (
            1,
            "execute",
            "FileNotFoundError",
        )
        assert body["request_id"] == r.headers["x-request-id"] == "abc-123"
        assert ("/srv/models" in r.text) is expose
        if expose:
            assert "secret-7.bin" in body["message"]
        # A request id that is not sane is replaced by a fresh one.
        r = client.post(
            f"{server.url}/invocations",
            json={"id": 8, "x": 1, "fail": True},
            headers={"x-request-id": "a b\tc"},
        )
        assert r.status_code == 422 and r.json()["request_id"] != "a b\tc"
        log = server.stderr()
    assert "request abc-123: row 1 failed in execute: FileNotFoundError" in log
    assert "secret-7.bin" in log


def test_nan_literals_are_not_json(echo_server):
    with httpx.Client(timeout=10) as client:
        r = client.post(
            f"{echo_server.url}/invocations",
            content=b'{"id": 1, "x": NaN}',
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 400
        assert "column 16: NaN is not JSON" in r.json()["error"]
        ok = client.post(f"{echo_server.url}/invocations", json={"id": "NaN", "x": 1})
        assert ok.status_code == 200 and ok.json() == {"id": "NaN", "double": 2}


def test_the_request_deadline_counts_from_its_first_byte(echo_project):
    # A body trickled over 1.5 s to a model that takes 5 s, with a 2 s timeout:
    # the 504 comes 2 s after the first byte, not 2 s after the body's last.
    with ServerProcess(echo_project, "--config", "delay_s=5", "--request-timeout-s", "2") as server:
        body = b'{"id": 1, "x": 1}'
        head = (
            b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)
        )
        with socket.create_connection(("127.0.0.1", server.port), timeout=15) as s:
            began = time.monotonic()
            s.sendall(head)
            for i in range(3):
                time.sleep(0.5)
                s.sendall(body[i * 6 : (i + 1) * 6] if i < 2 else body[12:])
            answer = s.recv(4096)
            elapsed = time.monotonic() - began
    assert answer.startswith(b"HTTP/1.1 504"), answer
    # The old deadline (from the body's end) would have answered at 3.5 s.
    assert elapsed < 3.0, elapsed
