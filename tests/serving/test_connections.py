"""The HTTP layer of `packflow serve` against clients that hold its resources:
header limits, header-read and keep-alive timeouts, the connection limit, and
the HTTP/1.1 details a server owes well-behaved clients (pipelining, Expect,
HTTP/1.0, chunked bodies). Real server processes on loopback, every wait
bounded."""

from __future__ import annotations

import json
import socket
import threading
import time

import httpx
import pytest

from tests.serving.harness import ServerProcess, connect, metric_samples, rss_kb

POST_HEAD = (
    b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\n\r\n"
)


def _read_answers(sock: socket.socket, count: int, timeout: float = 10.0) -> list[bytes]:
    """``count`` whole answers (head and Content-Length body) from ``sock``,
    split at their lengths: answers to pipelined requests may arrive in one
    read. Ends early, with what arrived, if the server closes first."""
    sock.settimeout(timeout)
    data = b""
    answers: list[bytes] = []
    closed = False

    def more() -> bool:
        nonlocal data, closed
        chunk = sock.recv(65536)
        closed = not chunk
        data += chunk
        return not closed

    while len(answers) < count:
        while b"\r\n\r\n" not in data:
            if not more():
                return answers + ([data] if data else [])
        head, _, rest = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(rest) < length and more():
            rest = data.partition(b"\r\n\r\n")[2]
        answers.append(head + b"\r\n\r\n" + rest[:length])
        data = rest[length:]
        if closed:
            break
    return answers


def _read_answer(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """One whole answer from ``sock``; what arrived if the server closes first."""
    answers = _read_answers(sock, 1, timeout)
    return answers[0] if answers else b""


def _closed_within(sock: socket.socket, seconds: float) -> float:
    """Seconds until the server closed ``sock`` (reading whatever it sent);
    fails if it stays open past ``seconds``."""
    start = time.monotonic()
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        pytest.fail(f"the connection was still open after {seconds} s")
    except ConnectionResetError:
        pass
    return time.monotonic() - start


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def _json_body(answer: bytes) -> dict:
    return json.loads(answer.partition(b"\r\n\r\n")[2])


def _closed_for(url: str) -> dict[str, float]:
    samples = metric_samples(httpx.get(f"{url}/metrics", timeout=10).text)
    return {
        dict(labels)["reason"]: value
        for (name, labels), value in samples.items()
        if name == "packflow_connections_closed_total"
    }


def _post(url: str, row: dict) -> httpx.Response:
    return httpx.post(f"{url}/invocations", json=row, timeout=10)


# -- item 1: header limits -------------------------------------------------------


def test_a_header_over_the_size_limit_gets_431_and_the_server_goes_on(echo_project):
    with ServerProcess(echo_project) as server:
        with connect(server.port) as sock:
            big = b"X-Big: " + b"a" * (64 << 10) + b"\r\n"
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + big + b"\r\n")
            answer = _read_answer(sock)
        assert _status(answer) == 431
        assert "over 32768 bytes" in _json_body(answer)["error"]
        assert b"connection: close" in answer.lower()
        assert _post(server.url, {"id": 1, "x": 2}).json() == {"id": 1, "double": 4}
        assert _closed_for(server.url)["header_too_large"] == 1


def test_too_many_header_fields_get_431(echo_project):
    with ServerProcess(echo_project) as server:
        with connect(server.port) as sock:
            fields = b"".join(b"X-F%d: v\r\n" % i for i in range(150))
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n")
            answer = _read_answer(sock)
        assert _status(answer) == 431
        assert _json_body(answer)["error"] == "more than 100 header fields"


def test_endless_short_header_lines_do_not_grow_the_server(echo_project):
    """The old server grew to 2.2 GB on 256 MiB of short header lines; here
    the connection is cut once the head passes its limit."""
    with ServerProcess(echo_project) as server:
        before = rss_kb(server.proc.pid)
        sent = 0
        with connect(server.port) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            line = b"X-A: b\r\n" * 8192  # 64 KiB of fields a send
            try:
                while sent < (64 << 20):
                    sock.sendall(line)
                    sent += len(line)
            except OSError:
                pass  # cut off, as it should be
            answer = _read_answer(sock) if sent < (64 << 20) else b""
        assert sent < (4 << 20), f"the server took {sent} bytes of header fields"
        assert answer == b"" or _status(answer) == 431
        assert rss_kb(server.proc.pid) - before < 20_000
        assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200


# -- item 2: connections that send nothing, or next to nothing -------------------


def test_idle_connections_are_closed_and_cannot_starve_the_server(echo_project):
    args = ("--max-connections", "20", "--header-timeout-s", "3", "--keep-alive-s", "1")
    with ServerProcess(echo_project, *args) as server:
        idle = [connect(server.port) for _ in range(30)]
        try:
            time.sleep(1.3)
            # At the limit, every slot held by a connection silent for over a
            # second: a real request is served (one of them is closed to make
            # room).
            assert _post(server.url, {"id": 1, "x": 1}).status_code == 200
            assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
            # Those left open are closed at the header timeout.
            for sock in idle:
                assert _closed_within(sock, 5.0) < 5.0
        finally:
            for sock in idle:
                sock.close()
        closed = _closed_for(server.url)
        assert closed.get("evicted_idle", 0) >= 1
        assert closed.get("idle_timeout", 0) >= 1


def test_a_kept_alive_connection_is_closed_after_the_keep_alive_timeout(echo_project):
    with ServerProcess(echo_project, "--keep-alive-s", "0.5") as server:
        with connect(server.port) as sock:
            body = b'{"id": 1, "x": 3}'
            sock.sendall(POST_HEAD % len(body) + body)
            answer = _read_answer(sock)
            assert _status(answer) == 200 and _json_body(answer) == {"id": 1, "double": 6}
            # Still usable right after...
            sock.sendall(POST_HEAD % len(body) + body)
            assert _status(_read_answer(sock)) == 200
            # ...then closed once idle past the keep-alive.
            assert 0.3 < _closed_within(sock, 3.0) < 3.0


def test_headers_trickled_a_byte_at_a_time_get_408_at_the_header_timeout(echo_project):
    with ServerProcess(echo_project, "--header-timeout-s", "1") as server:
        request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200
        with connect(server.port) as sock:
            start = time.monotonic()
            answer = b""
            try:
                for byte in request:
                    sock.sendall(bytes([byte]))
                    time.sleep(0.02)
                    if time.monotonic() - start > 5:
                        break
            except OSError:
                pass
            answer = _read_answer(sock, 5.0)
            took = time.monotonic() - start
        assert _status(answer) == 408
        assert "did not arrive within 1 s" in _json_body(answer)["error"]
        assert took < 3.0
        assert _closed_for(server.url)["header_timeout"] == 1


# -- item 3: more clients than connections ---------------------------------------


def test_past_the_limit_with_nothing_idle_a_counted_json_503_with_retry_after(echo_project):
    args = ("--max-connections", "5", "--header-timeout-s", "2")
    with ServerProcess(echo_project, *args) as server:
        # Five connections in the middle of a request head: not idle.
        held = [connect(server.port) for _ in range(5)]
        for sock in held:
            sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        time.sleep(0.2)
        with connect(server.port) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = _read_answer(sock)
        assert _status(answer) == 503
        assert b"\r\nretry-after: " in answer.lower()
        assert "connections open, its limit" in _json_body(answer)["error"]
        for sock in held:
            assert _status(_read_answer(sock, 5.0)) == 408  # their time ran out
            sock.close()
        assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
        assert _closed_for(server.url)["refused"] == 1


def test_many_clients_at_once_are_served_up_to_the_limit_and_refused_past_it(echo_project):
    """The old server answered 2,000 clients at once with 503 for all."""
    args = ("--max-connections", "40", "--config", "delay_s=0.05")
    clients = 160
    statuses: list[int] = []
    refusals: list[dict] = []
    lock = threading.Lock()
    go = threading.Barrier(clients)

    def client(i: int) -> None:
        body = b'{"id": %d, "x": 1}' % i
        try:
            go.wait(10)
            with connect(server.port) as sock:
                sock.sendall(POST_HEAD % len(body) + body)
                answer = _read_answer(sock, 20.0)
        except OSError:
            answer = b""
        with lock:
            status = _status(answer) if answer else 0
            statuses.append(status)
            if status == 503:
                refusals.append(_json_body(answer))

    with ServerProcess(echo_project, *args) as server:
        threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not any(t.is_alive() for t in threads)
        served = statuses.count(200)
        assert served >= 40, statuses
        assert set(statuses) <= {200, 503}, statuses
        assert all("connections open" in r["error"] for r in refusals)
        assert _closed_for(server.url).get("refused", 0) == statuses.count(503)


# -- HTTP/1.1 details ------------------------------------------------------------


def test_pipelined_requests_are_answered_in_order(echo_project):
    with ServerProcess(echo_project) as server:
        bodies = [b'{"id": %d, "x": %d}' % (i, i) for i in range(5)]
        with connect(server.port) as sock:
            sock.sendall(b"".join(POST_HEAD % len(b) + b for b in bodies))
            answers = _read_answers(sock, len(bodies))
        assert [_json_body(a) for a in answers] == [{"id": i, "double": 2 * i} for i in range(5)]


def test_expect_100_continue_and_http_1_0(echo_project):
    with ServerProcess(echo_project, "--max-body-mb", "0.001") as server:
        body = b'{"id": 7, "x": 1}'
        with connect(server.port) as sock:
            sock.sendall(
                (POST_HEAD % len(body)).replace(b"\r\n\r\n", b"\r\nExpect: 100-continue\r\n\r\n")
            )
            assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
            sock.sendall(body)
            assert _json_body(_read_answer(sock)) == {"id": 7, "double": 2}
        # Too large for the limit: 413 before the body is sent.
        with connect(server.port) as sock:
            head = (POST_HEAD % 5000).replace(b"\r\n\r\n", b"\r\nExpect: 100-continue\r\n\r\n")
            sock.sendall(head)
            assert _status(_read_answer(sock)) == 413
        # HTTP/1.0 without keep-alive: answered, then closed.
        with connect(server.port) as sock:
            sock.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
            answer = _read_answer(sock)
            assert answer.startswith(b"HTTP/1.1 200 ")
            assert _closed_within(sock, 3.0) < 3.0


def test_chunked_bodies_are_read_and_bounded(echo_project):
    with ServerProcess(echo_project, "--max-body-mb", "0.01") as server:
        rows = b'{"id": 1, "x": 1}\n{"id": 2, "x": 5}\n'
        chunked = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in (rows[:10], rows[10:]))
        head = (
            b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/jsonlines\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        with connect(server.port) as sock:
            sock.sendall(head + chunked + b"0\r\n\r\n")
            answer = _read_answer(sock)
        assert answer.partition(b"\r\n\r\n")[2] == b'{"id":1,"double":2}\n{"id":2,"double":10}\n'
        with connect(server.port) as sock:
            sock.sendall(head)
            piece = b'{"id": 1, "x": 1}\n' * 100
            try:
                for _ in range(20):
                    sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            except OSError:
                pass
            answer = _read_answer(sock)
        assert _status(answer) == 413
        assert _closed_for(server.url)["body_too_large"] == 1


def test_the_limits_are_checked():
    from packflow.serving.http1 import Limits

    with pytest.raises(ValueError, match="max_connections must be at least 1"):
        Limits(max_connections=0)
    with pytest.raises(ValueError, match="keep_alive_s must be above 0"):
        Limits(keep_alive_s=0)


def test_a_client_that_never_reads_its_answers_stops_being_read(echo_project):
    """Pipelined requests whose answers are never read: the server stops
    reading once its send buffer is full, instead of answering into memory."""
    with ServerProcess(echo_project) as server:
        before = rss_kb(server.proc.pid)
        request = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
        sent = 0
        with connect(server.port) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.settimeout(0.5)
            deadline = time.monotonic() + 10
            try:
                while sent < (64 << 20) and time.monotonic() < deadline:
                    sock.sendall(request * 256)
                    sent += len(request) * 256
            except (TimeoutError, OSError):
                pass  # the server stopped reading: the send buffers filled
            grew = rss_kb(server.proc.pid) - before
        assert sent < (16 << 20), f"the server read {sent} bytes of requests it could not answer"
        assert grew < 50_000, f"the server grew by {grew} KB"
        assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
