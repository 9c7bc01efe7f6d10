"""packflow's own HTTP/1.1 server for :class:`~packflow.serving.app.PackflowApp`:
asyncio (uvloop where installed) with httptools' parser, calling the app's
``respond`` directly (no ASGI messages on the way).

What it holds against clients that misbehave (each bound is a :class:`Limits`
field, and every connection closed for one is counted in ``/metrics``):

- the request line and header fields: at most ``max_header_bytes`` in all and
  ``max_headers`` fields, else 431 and the connection closes;
- a connection that sends nothing is closed after ``header_timeout_s`` (a
  fresh one) or ``keep_alive_s`` (after an answer); a request whose header
  fields are not all in ``header_timeout_s`` after its first byte gets 408;
  a body still arriving at the request's deadline (``request_timeout_s``
  after its first byte) gets 408;
- at most ``max_connections`` connections: past it, the connection idle the
  longest is closed to make room (one waiting for its next request, or a new
  one that has sent nothing for a second), and with none idle the new one gets a JSON
  503 with ``Retry-After`` and is closed;
- a body over the app's limit gets 413 unread (from ``Content-Length``, or
  once the bytes read pass it) and the connection closes;
- a client that leaves mid-request: its rows still queued are dropped.

Timeouts are checked by one sweep a quarter second for every connection (no
timer per request).
"""

from __future__ import annotations

import asyncio
import collections
import email.utils
import http
import signal
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Optional, Protocol

import httptools

from packflow.constants import (
    SERVE_HEADER_TIMEOUT_S,
    SERVE_KEEP_ALIVE_S,
    SERVE_MAX_CONNECTIONS,
    SERVE_MAX_HEADER_BYTES,
    SERVE_MAX_HEADERS,
)
from packflow.logger import get_logger
from packflow.serving.batcher import Outcome
from packflow.serving.protocol import error_body

__all__ = ["HttpServer", "Limits"]

_SWEEP_S = 0.25
#: Complete requests read ahead of their answers on one connection
#: (pipelining); past it the connection is not read until answers go out.
_MAX_PIPELINED = 16
#: How long a refused connection may take to send its request head before it
#: is closed without the 503.
_REFUSE_GRACE_S = 1.0
#: Refused connections waiting for their request head (each for at most
#: the grace period); past it (or past ``max_connections`` if higher) new
#: ones are closed without an answer.
_MAX_REFUSING = 1024
#: A new connection that has sent nothing for this long may be closed to make
#: room for another at the connection limit.
_FRESH_GRACE_S = 1.0
#: A connection whose answers have not moved into the socket for this long
#: (its client does not read) is aborted.
_SEND_TIMEOUT_S = 10.0

_INF = float("inf")
# What a connection is waiting for (the sweep acts on it at its deadline).
_FIRST = 0  # the first byte of a fresh connection: closed silently
_IDLE = 1  # the first byte of the next request: closed silently
_HEAD = 2  # the rest of the header fields: 408
_BODY = 3  # the rest of the body: 408
_NONE = 4  # the app is answering: no deadline of the server's
_REFUSING = 5  # a refused connection's request head: closed


@dataclass(frozen=True)
class Limits:
    """The server's bounds on what clients may hold (see the module doc)."""

    max_connections: int = SERVE_MAX_CONNECTIONS
    max_header_bytes: int = SERVE_MAX_HEADER_BYTES
    max_headers: int = SERVE_MAX_HEADERS
    header_timeout_s: float = SERVE_HEADER_TIMEOUT_S
    keep_alive_s: float = SERVE_KEEP_ALIVE_S

    def __post_init__(self) -> None:
        for name in ("max_connections", "max_header_bytes", "max_headers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("header_timeout_s", "keep_alive_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be above 0")


def _status_line(status: int) -> bytes:
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    return f"HTTP/1.1 {status} {phrase}\r\n".encode("latin-1")


_STATUS_LINES = {s.value: _status_line(s.value) for s in http.HTTPStatus}
_STATUS_LINES[499] = _status_line(499)
_JSON = b"application/json"


class _Stop(Exception):
    """Parsing stops: the connection was answered and is closing."""


class _Exchange:
    """One request handed to the app: its body, read by the server, and
    whether its client is still there."""

    __slots__ = (
        "conn",
        "method",
        "path",
        "headers",
        "body",
        "started",
        "keep_alive",
        "http10",
        "job",
        "gone",
    )

    def __init__(self, conn: _Connection, method: str, path: str, headers: list, body: bytes):
        self.conn = conn
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body
        self.started = conn.started
        self.keep_alive = True
        self.http10 = False
        self.job: Any = None
        self.gone = False

    async def read_body(self, content_length: Optional[bytes], started: float) -> bytes:
        return self.body  # read whole and within the limit before the app was called

    async def outcome(self, job: Any) -> Outcome:
        self.job = job
        if self.gone:  # left while the body was parsed
            job.abandon()
        return await job.future


class _Connection(asyncio.Protocol):
    """One client connection: reads requests, hands them to the app one at a
    time, writes the answers in order."""

    def __init__(self, server: HttpServer):
        self.server = server
        self.limits = server.limits
        self.transport: Any = None
        self.parser = httptools.HttpRequestParser(self)
        self.closed = False
        self.refused = False
        self.waiting = _FIRST
        self.deadline = _INF
        # The request being read.
        self.started = 0.0
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_bytes = 0
        self.body: list[bytes] = []
        self.body_size = 0
        # Requests read and not yet answered (the first is with the app).
        self.queue: collections.deque[_Exchange] = collections.deque()
        self.current: Optional[_Exchange] = None
        self.reading_paused = False
        self.writing_paused = False
        # An answer that closes the connection, held until the answers to the
        # requests before it are out (pipelining: answers go in order).
        self.final: Optional[tuple] = None
        self.continue_pending = False
        self.write_stalled_at = 0.0
        # A request with an Upgrade header and a body: the parser skipped its
        # body, so its head is fed again (without the upgrade) to read it.
        self.replay: Optional[bytes] = None
        self.replay_started = 0.0
        self.write_waiter: Optional[asyncio.Future] = None
        # Bytes read in the body phase that moved the body on by nothing
        # (chunk framing, extensions, trailer fields): bounded like a head.
        self.stalled_bytes = 0

    # -- asyncio.Protocol --------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        server = self.server
        if not server.admit(self):
            self.refused = True
            self.waiting = _REFUSING
            self.deadline = time.perf_counter() + _REFUSE_GRACE_S
            return
        now = time.perf_counter()
        self.deadline = now + self.limits.header_timeout_s
        server.fresh[self] = now

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self.closed = True
        self._wake_writer()
        self.server.forget(self)
        self.server.lost(self)
        for exchange in self.queue:
            exchange.gone = True
            if exchange.job is not None:
                exchange.job.abandon()
        self.queue.clear()

    def data_received(self, data: bytes) -> None:
        if self.closed or self.final is not None:
            return
        if self.refused:
            self._refuse_connection()
            return
        if self.waiting <= _HEAD:
            # Bytes of a request head not parsed into fields yet count too
            # (a field too long for the parser to hand over).
            self.head_bytes += len(data)
        body_before = self.body_size
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            replay = self.replay
            if replay is not None:
                # The upgrade is ignored (RFC 9110 7.8): the body follows.
                self.replay = None
                self.parser = httptools.HttpRequestParser(self)
                self.data_received(replay + data[exc.args[0] :])
                return
            # An upgrade (h2c, websocket) is not taken: the request is
            # answered as HTTP/1.1, and the connection then closes.
            if self.queue:
                self.queue[-1].keep_alive = False
            return
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _Stop):
                return
            get_logger().error("reading a request failed", exc_info=exc.__context__)
            self._answer_and_close(400, "the request could not be read", "bad_request")
            return
        except httptools.HttpParserError as exc:
            if not self.closed:
                self._answer_and_close(400, f"malformed HTTP request: {exc}", "bad_request")
            return
        if self.waiting == _HEAD and self.head_bytes > self.limits.max_header_bytes:
            self._too_many_header_bytes()
        elif self.waiting == _BODY:
            if self.body_size == body_before:
                self.stalled_bytes += len(data)
                if self.stalled_bytes > self.limits.max_header_bytes:
                    self._too_many_header_bytes()
            else:
                self.stalled_bytes = 0

    def pause_writing(self) -> None:
        self.writing_paused = True
        self.write_stalled_at = time.perf_counter()
        self._pause_reading()

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._wake_writer()
        if len(self.queue) < _MAX_PIPELINED and not self.server.draining:
            self._resume_reading()

    def _wake_writer(self) -> None:
        waiter, self.write_waiter = self.write_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- httptools callbacks -----------------------------------------------------

    def on_message_begin(self) -> None:
        server = self.server
        if self.waiting == _IDLE:
            server.idle.pop(self, None)
        elif self.waiting == _FIRST:
            server.fresh.pop(self, None)
        self.started = now = time.perf_counter()
        if self.replay_started:
            self.started, self.replay_started = self.replay_started, 0.0
        if self.waiting != _FIRST:
            # A new connection's head is due within the timeout of its
            # opening; a kept-alive one's, of its first byte.
            self.deadline = now + self.limits.header_timeout_s
        self.waiting = _HEAD
        self.url = b""
        self.headers = []
        self.body = []
        self.body_size = 0
        self.stalled_bytes = 0

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.waiting == _BODY:
            return  # a trailer field (after a chunked body): not a header field
        headers = self.headers
        headers.append((name.lower(), value))
        if len(headers) > self.limits.max_headers:
            self._answer_and_close(
                431,
                f"more than {self.limits.max_headers} header fields",
                "header_too_large",
            )
            raise _Stop

    def on_headers_complete(self) -> None:
        head = len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)
        self.head_bytes = 0
        if head > self.limits.max_header_bytes:
            self._too_many_header_bytes()
            raise _Stop
        self.waiting = _BODY
        self.deadline = self.started + self.server.app.request_timeout_s
        limit = self.server.app.max_body_bytes
        expect = False
        for name, value in self.headers:
            if name == b"content-length":
                # httptools has checked it is a number.
                if int(value) > limit:
                    self._answer_and_close(
                        413, self.server.app.too_large_message(), "body_too_large"
                    )
                    raise _Stop
            elif name == b"expect" and value.lower() == b"100-continue":
                expect = True
        if expect and self.parser.get_http_version() != "1.0":
            if self.queue:
                self.continue_pending = True  # after the answers before it
            else:
                self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, chunk: bytes) -> None:
        self.body_size += len(chunk)
        if self.body_size > self.server.app.max_body_bytes:
            self._answer_and_close(413, self.server.app.too_large_message(), "body_too_large")
            raise _Stop
        body = self.body
        if len(chunk) >= 4096 or not body:
            body.append(chunk)
        elif type(body[-1]) is bytearray:
            body[-1] += chunk
        else:
            # Small chunks go into one buffer: a bytes object each would hold
            # ~35 bytes more than it carries.
            body[-1] = bytearray(body[-1]) + chunk

    def on_message_complete(self) -> None:
        parser = self.parser
        url = self.url
        if parser.should_upgrade() and any(
            name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0")
            for name, value in self.headers
        ):
            # httptools skips the body of an upgrade request: the request is
            # read again without the upgrade.
            dropped = (b"upgrade", b"connection", b"http2-settings", b"expect")
            version = parser.get_http_version().encode()
            line = b"%s %s HTTP/%s\r\n" % (parser.get_method(), url, version)
            fields = [n + b": " + v + b"\r\n" for n, v in self.headers if n not in dropped]
            self.replay = b"".join([line, *fields, b"\r\n"])
            self.replay_started = self.started
            return
        if url[:1] != b"/":
            try:
                url = httptools.parse_url(url).path or b"/"
            except httptools.HttpParserInvalidURLError:
                self._answer_and_close(400, "the request's URL could not be read", "bad_request")
                raise _Stop from None
        else:
            q = url.find(b"?")
            if q >= 0:
                url = url[:q]
            q = url.find(b"#")  # a fragment is the client's, never sent by browsers
            if q >= 0:
                url = url[:q]
        path = url.decode("latin-1")
        if "%" in path:
            path = urllib.parse.unquote(path)
        body = self.body
        exchange = _Exchange(
            self,
            parser.get_method().decode("ascii"),
            path,
            self.headers,
            bytes(body[0]) if len(body) == 1 else b"".join(body),
        )
        exchange.keep_alive = parser.should_keep_alive() and not self.server.draining
        # An HTTP/1.0 client keeps the connection only when told so.
        exchange.http10 = parser.get_http_version() == "1.0"
        self.body = []
        self.continue_pending = False
        self.waiting = _NONE
        self.deadline = _INF
        queue = self.queue
        queue.append(exchange)
        if len(queue) == 1:
            self.server.loop.create_task(self._answer(exchange))
        elif len(queue) >= _MAX_PIPELINED:
            self._pause_reading()

    # -- answering ---------------------------------------------------------------

    async def _answer(self, exchange: _Exchange) -> None:
        server = self.server
        while True:
            try:
                answer = await server.app.respond(
                    exchange.method, exchange.path, exchange.headers, exchange, exchange.started
                )
            except BaseException:
                # respond turns every Exception into an answer; this is
                # a cancellation (the loop is stopping).
                self.transport.close()
                raise
            if self.closed:
                return
            if answer is not None:
                self._write(answer, exchange.method == "HEAD", exchange.keep_alive, exchange.http10)
            if not exchange.keep_alive:
                self.transport.close()
                self.closed = True
                server.forget(self)
                return
            queue = self.queue
            queue.popleft()
            if not queue:
                if self.final is not None:
                    self._close_with(*self.final)
                    return
                if self.continue_pending:
                    self.continue_pending = False
                    self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                break
            exchange = queue[0]
            if self.writing_paused:
                # The client is not reading: the next answer waits until the
                # ones written have gone into the socket.
                self.write_waiter = server.loop.create_future()
                await self.write_waiter
                if self.closed:
                    return
            if len(queue) < _MAX_PIPELINED and not self.writing_paused and not server.draining:
                self._resume_reading()
        if self.waiting == _NONE:
            # Nothing of the next request yet: idle until the keep-alive ends.
            self.waiting = _IDLE
            self.deadline = time.perf_counter() + self.limits.keep_alive_s
            server.idle[self] = None
            if server.draining:
                self.transport.close()
        if not self.writing_paused:
            # A client that does not read its answers is not read either.
            self._resume_reading()

    def _write(self, answer: Any, head: bool, keep_alive: bool, http10: bool = False) -> None:
        status, body, content_type, fields = answer
        parts = [
            _STATUS_LINES.get(status) or _status_line(status),
            b"content-type: ",
            content_type,
            b"\r\ncontent-length: ",
            str(len(body)).encode(),
            b"\r\n",
            self.server.date_field,
        ]
        for name, value in fields:
            if name == b"connection":
                continue
            parts += (name, b": ", value, b"\r\n")
        if not keep_alive:
            parts.append(b"connection: close\r\n")
        elif http10:
            parts.append(b"connection: keep-alive\r\n")
        parts.append(b"\r\n")
        if not head:
            parts.append(body)
        self.transport.write(b"".join(parts))

    def _answer_and_close(self, status: int, message: str, reason: str, fields: Any = ()) -> None:
        """Answer ``status`` with ``message`` at once (whatever is being read)
        and close the connection; counted under ``reason``."""
        if self.closed or self.final is not None:
            return
        if self.queue:
            # Requests before this one are unanswered: their answers first.
            self.final = (status, message, reason, fields)
            self.waiting = _NONE
            self.deadline = _INF
            self._pause_reading()
            return
        self._close_with(status, message, reason, fields)

    def _close_with(self, status: int, message: str, reason: str, fields: Any = ()) -> None:
        self.server.count_closed(reason)
        self._write((status, error_body(message), _JSON, fields), False, False)
        self.transport.close()
        self.closed = True
        self.server.forget(self)

    def _too_many_header_bytes(self) -> None:
        self._answer_and_close(
            431,
            f"the request line and header fields are over {self.limits.max_header_bytes} bytes",
            "header_too_large",
        )

    def _refuse_connection(self) -> None:
        server = self.server
        server.count_closed("refused")
        retry = b"%d" % server.retry_after()
        self._write(
            (
                503,
                error_body(
                    f"the server has {server.limits.max_connections} connections open, its limit"
                    "; try again shortly"
                ),
                _JSON,
                ((b"retry-after", retry),),
            ),
            False,
            False,
        )
        self.transport.close()
        self.closed = True
        server.forget(self)

    def expire(self, now: float) -> None:
        """The deadline passed: act on what the connection was waiting for."""
        waiting = self.waiting
        if waiting == _HEAD:
            self._answer_and_close(
                408,
                f"the request's header fields did not arrive within "
                f"{self.limits.header_timeout_s:g} s",
                "header_timeout",
            )
        elif waiting == _BODY:
            self._answer_and_close(
                408,
                f"the body did not arrive within the "
                f"{self.server.app.request_timeout_s:g} s timeout",
                "body_timeout",
            )
        elif waiting == _REFUSING:
            self.server.count_closed("refused")
            self.close()
        elif waiting in (_FIRST, _IDLE):
            self.server.count_closed("idle_timeout")
            self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.transport.close()
            self.server.forget(self)

    def _pause_reading(self) -> None:
        if not self.reading_paused and not self.closed:
            self.reading_paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self.reading_paused and not self.closed:
            self.reading_paused = False
            self.transport.resume_reading()


class HttpServer:
    """Serves ``app`` (a :class:`~packflow.serving.app.PackflowApp`) on an
    event loop within ``limits``; :meth:`start` listens, :meth:`drain` stops
    taking connections and waits for the answers in progress."""

    def __init__(self, app: Any, limits: Limits = Limits()):
        self.app = app
        self.limits = limits
        self.loop: Any = None
        self.connections: set[_Connection] = set()
        #: Connections waiting for their next request after an answer, and
        #: new connections that have sent nothing (with when they opened),
        #: oldest first.
        self.idle: dict[_Connection, None] = {}
        self.fresh: dict[_Connection, float] = {}
        self.refusing: set[_Connection] = set()
        self.draining = False
        self.date_field = b""
        self._server: Any = None
        self._sweeper: Optional[asyncio.TimerHandle] = None
        self._emptied: Optional[asyncio.Event] = None
        #: Listen with SO_REUSEPORT (``packflow serve --workers``: every
        #: worker process listens on one port, the kernel spreads connections).
        self.reuse_port = False
        app.metrics.connections = lambda: len(self.connections)

    async def start(self, host: str, port: int) -> tuple[str, int]:
        """Listen on ``host``:``port`` (0: a free one); the bound address."""
        self.loop = asyncio.get_running_loop()
        self._date()
        self._sweep()
        self._server = await self.loop.create_server(
            lambda: _Connection(self),
            host,
            port,
            backlog=2048,
            reuse_address=True,
            reuse_port=self.reuse_port,
        )
        bound = self._server.sockets[0].getsockname()
        return bound[0], bound[1]

    # -- connections -------------------------------------------------------------

    def admit(self, conn: _Connection) -> bool:
        """Whether ``conn`` may stay: at the limit, the connection idle the
        longest is closed for it (one waiting for its next request, else a
        new one silent for :data:`_FRESH_GRACE_S`: a client just connected is
        given the time to send); with none idle, it is refused (it gets a 503
        as soon as it sends, or is closed after a grace period)."""
        if len(self.connections) >= self.limits.max_connections:
            victim = next(iter(self.idle), None)
            if victim is None and self.fresh:
                oldest, opened = next(iter(self.fresh.items()))
                if opened < time.perf_counter() - _FRESH_GRACE_S:
                    victim = oldest
            if victim is not None:
                self.count_closed("evicted_idle")
                victim.close()
            else:
                if len(self.refusing) >= max(self.limits.max_connections, _MAX_REFUSING):
                    # Even the refusals are at the limit: no answer at all.
                    self.count_closed("refused")
                    conn.transport.close()
                    conn.closed = True
                    return False
                self.refusing.add(conn)
                return False
        self.connections.add(conn)
        return True

    def forget(self, conn: _Connection) -> None:
        """``conn`` is closing: no longer idle, fresh or refused. It stays
        in :attr:`connections` (and under the limit) until its socket is
        closed: answers still being flushed hold it."""
        self.idle.pop(conn, None)
        self.fresh.pop(conn, None)
        self.refusing.discard(conn)

    def lost(self, conn: _Connection) -> None:
        self.connections.discard(conn)
        if self._emptied is not None and not self.connections:
            self._emptied.set()

    def count_closed(self, reason: str) -> None:
        closed = self.app.metrics.connections_closed
        closed[reason] = closed.get(reason, 0) + 1

    def retry_after(self) -> int:
        """Seconds a refused client should wait: the app's own estimate of
        its queue's drain, at least 1."""
        return max(1, self.app.retry_after())

    # -- time --------------------------------------------------------------------

    def _date(self) -> None:
        self.date_field = b"date: " + email.utils.formatdate(usegmt=True).encode() + b"\r\n"

    def _sweep(self) -> None:
        now = time.perf_counter()
        self._date()
        for conn in [c for c in self.connections if c.deadline <= now and not c.closed]:
            conn.expire(now)
        stalled = now - _SEND_TIMEOUT_S
        for conn in [
            c for c in self.connections if c.writing_paused and c.write_stalled_at < stalled
        ]:
            self.count_closed("send_timeout")
            conn.writing_paused = False
            conn.closed = True
            self.forget(conn)
            conn.transport.abort()
        for conn in [c for c in self.refusing if c.deadline <= now]:
            conn.expire(now)
        self._sweeper = self.loop.call_later(_SWEEP_S, self._sweep)

    # -- stopping ----------------------------------------------------------------

    async def drain(self, timeout_s: Optional[float] = None) -> None:
        """Stop listening, close the connections between requests, answer
        the requests in progress (their connections then close), and stop
        the app's batcher."""
        self.draining = True
        self.app.drain()
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            if conn.queue:
                # Every request read is answered; the last one closes.
                conn.queue[-1].keep_alive = False
                conn._pause_reading()
            elif conn.waiting in (_FIRST, _IDLE, _HEAD):
                conn.close()
            # A request whose body is arriving is answered (and closes) when
            # it is whole, or gets its 408 at its deadline.
        for conn in list(self.refusing):
            conn.close()
        if self.connections:
            self._emptied = asyncio.Event()
            try:
                await asyncio.wait_for(self._emptied.wait(), timeout_s)
            except asyncio.TimeoutError:
                for conn in list(self.connections):
                    conn.close()
        await self.app.close()
        if self._sweeper is not None:
            self._sweeper.cancel()


class Door(Protocol):
    """Another server on the same loop (the gRPC one): started once the
    HTTP server listens, stopped with its drain."""

    #: Called with the bound address once every server listens.
    on_listening: Optional[Callable[[str, int], None]]

    async def start(self) -> tuple[str, int]:
        """Listen; the bound address (``RuntimeError`` when it cannot)."""

    async def stop(self, at_once: bool = False) -> None:
        """Refuse new requests and answer those in flight (``at_once``:
        cancel them)."""


async def run_until_signalled(
    server: HttpServer,
    host: str,
    port: int,
    on_listening: Optional[Callable[[str, int], None]] = None,
    doors: Sequence[Door] = (),
    on_signals: Optional[Callable[[Callable[[], None]], None]] = None,
) -> tuple[bool, str]:
    """Serve until SIGINT or SIGTERM, then drain; ``(forced, name of the
    first signal)``: a second signal returns at once, forced. ``doors``
    start after the HTTP server listens and drain with it. ``on_signals``:
    called once the signals are handled here with a function, callable from
    any thread, that drains as a SIGTERM would, and does nothing once
    draining (a worker's supervisor asks so: never a second signal)."""
    loop = asyncio.get_running_loop()
    first: asyncio.Future = loop.create_future()
    second: asyncio.Future = loop.create_future()

    def on_signal(sig: int) -> None:
        if not first.done():
            first.set_result(sig)
        elif not second.done():
            second.set_result(sig)

    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {}
    for sig in signals:
        try:
            loop.add_signal_handler(sig, on_signal, sig)
        except NotImplementedError:  # Windows' loops: a plain handler hands it over
            previous[sig] = signal.signal(
                sig, lambda s, _frame: loop.call_soon_threadsafe(on_signal, s)
            )
    if on_signals is not None:

        def drain_once() -> None:
            if not first.done():
                first.set_result(signal.SIGTERM)

        def drain() -> None:
            try:
                loop.call_soon_threadsafe(drain_once)
            except RuntimeError:  # the loop has closed: the server has stopped
                pass

        on_signals(drain)
    try:
        bound = await server.start(host, port)
        started = []
        for door in doors:
            started.append((door, await door.start()))
        # Announced once all listen: a door that cannot start stops the
        # command before any listening line.
        if on_listening is not None:
            on_listening(*bound)
        for door, address in started:
            if door.on_listening is not None:
                door.on_listening(*address)
        received = await first
        # The doors refuse new requests at once and answer theirs in flight
        # while the HTTP server drains (its end closes the batchers).
        drain = loop.create_task(_drain(server, doors))
        await asyncio.wait((drain, second), return_when=asyncio.FIRST_COMPLETED)
        name = signal.Signals(received).name
        if second.done():
            drain.cancel()
            return True, name
        drain.result()
        return False, name
    finally:
        for door in doors:
            await door.stop(at_once=True)
        for sig in signals:
            if sig in previous:
                signal.signal(sig, previous[sig])
            else:
                loop.remove_signal_handler(sig)


async def _drain(server: HttpServer, doors: Sequence[Door]) -> None:
    await asyncio.gather(*(door.stop() for door in doors), server.drain())
