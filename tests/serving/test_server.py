"""The server process: limits, backpressure, timeouts, malformed HTTP, startup
failures, archives, and the drain on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from tests.serving.harness import (
    EXAMPLE,
    INIT_FAILS_BACKEND,
    ServerProcess,
    echo_expected,
)
from tests.support.sample_projects import write_project


def _raw_exchange(port: int, request: bytes, timeout: float = 10.0) -> bytes:
    """Send ``request`` on a fresh connection and read until the server closes
    it or ``timeout`` passes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        return _read_until_closed(sock, timeout)


def _read_until_closed(sock: socket.socket, timeout: float) -> bytes:
    chunks = []
    deadline = time.monotonic() + timeout
    sock.settimeout(0.5)
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            if chunks:
                break
            continue
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def test_the_listening_line_names_the_free_port(echo_project):
    with ServerProcess(echo_project) as server:
        assert server.listening_line.startswith(f"Listening on http://127.0.0.1:{server.port} ")
        assert server.port != 0
        assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200


def test_a_body_over_the_limit_is_refused_unread(echo_project):
    with ServerProcess(echo_project, "--max-body-mb", "1") as server:
        # Declared too large: the answer comes before a byte of the body is sent.
        head = (
            b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 104857600\r\n\r\n"
        )
        answer = _raw_exchange(server.port, head)
        assert answer.startswith(b"HTTP/1.1 413 ")
        assert b"larger than the limit of 1048576 bytes (1 MiB)" in answer
        # Whoever runs the server learns which option raises the limit.
        assert b"packflow serve --max-body-mb (create_app's max_body_bytes)" in answer

        # Chunked, no length: refused once 1 MiB has arrived, long before the
        # end (which is never sent); the server closes the connection.
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(
                b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"
            )
            piece = b"[" + b" " * 65534 + b"\r\n"
            chunk = b"%x\r\n%s" % (len(piece) - 2, piece)
            sent = 0
            sock.settimeout(5)
            try:
                while sent < 64 << 20:  # bounded: at most 64 MiB offered
                    sock.sendall(chunk)
                    sent += len(chunk)
                    if sent > (2 << 20):
                        break
            except (TimeoutError, BrokenPipeError, ConnectionResetError):
                pass
            answer = _read_until_closed(sock, 10)
        assert answer.startswith(b"HTTP/1.1 413 ")
        assert b"connection: close" in answer.lower()
        # Still serving.
        assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200


def test_malformed_http_is_400_and_the_server_goes_on(echo_project):
    with ServerProcess(echo_project) as server:
        answer = _raw_exchange(server.port, b"THIS IS NOT HTTP\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 400 ")
        answer = _raw_exchange(
            server.port,
            b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        )
        assert answer.startswith(b"HTTP/1.1 400 ")
        ok = httpx.post(f"{server.url}/invocations", json={"id": 1, "x": 1}, timeout=10)
        assert ok.json() == {"id": 1, "double": 2}


def test_a_full_queue_answers_503_with_retry_after(echo_project):
    args = ["--config", "delay_s=0.4", "--max-batch-rows", "2", "--max-queue-rows", "4"]
    args += ["--max-wait-ms", "1"]
    with ServerProcess(echo_project, *args) as server:

        async def send_all():
            async with httpx.AsyncClient(timeout=20) as client:
                return await asyncio.gather(
                    *(
                        client.post(f"{server.url}/invocations", json={"id": i, "x": i})
                        for i in range(12)
                    )
                )

        answers = asyncio.run(send_all())
        codes = sorted(a.status_code for a in answers)
        assert 200 in codes and 503 in codes, codes
        for i, answer in enumerate(answers):
            if answer.status_code == 200:
                assert answer.json() == {"id": i, "double": 2 * i}
            else:
                assert answer.status_code == 503
                assert int(answer.headers["retry-after"]) >= 1
                assert "the queue is full" in answer.json()["error"]
        # More rows than the queue can ever hold: 413, not a retry.
        rows = [{"id": i, "x": i} for i in range(5)]
        too_many = httpx.post(f"{server.url}/invocations", json=rows, timeout=10)
        assert too_many.status_code == 413
        error = too_many.json()["error"]
        assert error.startswith("the request has 5 rows; the queue holds at most 4: split it")
        assert "--max-queue-rows" in error and "max_queue_rows" in error


def test_a_request_past_its_timeout_gets_504(echo_project):
    args = ["--config", "delay_s=1.5", "--request-timeout-s", "0.3", "--max-wait-ms", "1"]
    with ServerProcess(echo_project, *args) as server:
        started = time.monotonic()
        answer = httpx.post(f"{server.url}/invocations", json={"id": 1, "x": 1}, timeout=10)
        assert answer.status_code == 504
        assert time.monotonic() - started < 1.4
        assert "0.3 s timeout" in answer.json()["error"]


def test_sigterm_answers_every_request_in_flight_then_exits_0(echo_project):
    args = ["--config", "delay_s=0.3", "--max-batch-rows", "4", "--max-wait-ms", "1"]
    server = ServerProcess(echo_project, *args)
    try:
        url = server.url
        requests = [[{"id": 3 * i + j, "x": j} for j in range(3)] for i in range(16)]

        async def send_all_then_signal():
            async with httpx.AsyncClient(timeout=30) as client:
                tasks = [
                    asyncio.ensure_future(client.post(f"{url}/invocations", json=rows))
                    for rows in requests
                ]
                await asyncio.sleep(0.4)  # every request is queued or running
                server.signal(signal.SIGTERM)
                await asyncio.sleep(0.5)
                # Draining: no new connections, while the old ones are answered.
                assert server.proc.poll() is None
                assert not all(t.done() for t in tasks)
                with pytest.raises(httpx.ConnectError):
                    async with httpx.AsyncClient(timeout=2) as fresh:
                        await fresh.get(f"{url}/healthz")
                return await asyncio.gather(*tasks)

        answers = asyncio.run(send_all_then_signal())
        for rows, answer in zip(requests, answers):
            assert answer.status_code == 200, answer.text
            assert answer.json() == echo_expected(rows)
        assert server.wait(20) == 0
        assert "Drained and stopped on SIGTERM" in server.stderr()
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/healthz", timeout=2)
    finally:
        server.kill()


def test_sigint_drains_too(echo_project):
    server = ServerProcess(echo_project)
    try:
        assert httpx.post(f"{server.url}/invocations", json={"id": 1, "x": 1}).status_code == 200
        server.signal(signal.SIGINT)
        assert server.wait(20) == 0
        assert "Drained and stopped on SIGINT" in server.stderr()
    finally:
        server.kill()


def test_a_second_signal_stops_at_once(echo_project):
    server = ServerProcess(echo_project, "--config", "delay_s=20", "--max-wait-ms", "1")
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            body = b'{"id": 1, "x": 1}'
            sock.sendall(
                b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            time.sleep(0.5)  # the batch is running (for 20 s)
            server.signal(signal.SIGTERM)
            time.sleep(0.5)
            assert server.proc.poll() is None  # draining: waits for the batch
            started = time.monotonic()
            server.signal(signal.SIGTERM)
            code = server.wait(10)
        assert time.monotonic() - started < 5
        assert code != 0
        assert "second signal" in server.stderr()
    finally:
        server.kill()


def test_initialize_failing_exits_non_zero_before_listening(tmp_path):
    project = write_project(tmp_path / "broken", backend=INIT_FAILS_BACKEND)
    proc = subprocess.run(
        [sys.executable, "-m", "packflow.cli", "serve", str(project), "--port", "0"],
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert b"Listening" not in proc.stdout
    assert b"no weights at /models/missing.bin" in proc.stderr


def test_an_exported_archive_is_served(tmp_path):
    from packflow.project import PackflowProject

    archive = PackflowProject(EXAMPLE).export(tmp_path)
    with ServerProcess(archive) as server:
        with httpx.Client(timeout=10) as client:
            model = client.get(f"{server.url}/v1/models/firewall-anomaly")
            assert model.json() == {"name": "firewall-anomaly", "ready": True}
            record = json.loads(
                '{"ts": 1700000000, "src": {"port": 443, "geo": {"lat": 1.0, "lon": 2.0}},'
                ' "dst": {"port": 443}, "bytes": {"in": 10, "out": 20}, "rule": {"id": 3},'
                ' "score": 0.5}'
            )
            answer = client.post(f"{server.url}/invocations", json=record)
            assert answer.status_code == 200
            assert set(answer.json()) == {"anomaly_score", "alert"}


def test_a_port_in_use_exits_non_zero(echo_project):
    with ServerProcess(echo_project) as server:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "packflow.cli",
                "serve",
                str(echo_project),
                "--port",
                str(server.port),
            ],
            capture_output=True,
            timeout=60,
        )
    assert proc.returncode == 1
    assert b"Listening" not in proc.stdout
    assert f"could not listen on 127.0.0.1:{server.port}".encode() in proc.stderr


def test_a_body_that_stops_arriving_gets_408(echo_project):
    with ServerProcess(echo_project, "--request-timeout-s", "0.5") as server:
        # Headers, then part of the body, then nothing: a slow or stuck client.
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(
                b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100\r\n\r\n"
            )
            time.sleep(0.1)
            sock.sendall(b'{"id": 1,')
            started = time.monotonic()
            answer = _read_until_closed(sock, 10)
        assert answer.startswith(b"HTTP/1.1 408 ")
        assert time.monotonic() - started < 5
        # Headers only, no byte of the body ever.
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(
                b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100\r\n\r\n"
            )
            answer = _read_until_closed(sock, 10)
        assert answer.startswith(b"HTTP/1.1 408 ")
