"""The ASGI application: routing, bounded body reading, and the answer to each
request from its batch.

A plain ASGI 3 callable (no framework): it runs under uvicorn with
``packflow serve``, or mounted in any ASGI stack with :func:`create_app`.
"""

from __future__ import annotations

import asyncio
import collections
import os
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, Optional

from packflow import _core
from packflow.constants import (
    SERVE_MAX_BATCH_ROWS,
    SERVE_MAX_BODY_BYTES,
    SERVE_MAX_QUEUE_ROWS,
    SERVE_MAX_WAIT_MS,
    SERVE_REQUEST_TIMEOUT_S,
)
from packflow.engine import BatchEngine
from packflow.logger import get_logger
from packflow.serving.batcher import Batcher, Outcome, QueueFull
from packflow.serving.metrics import CONTENT_TYPE as METRICS_TYPE
from packflow.serving.metrics import ServerMetrics
from packflow.serving.offload import OFFLOAD_ANSWER_ROWS, OFFLOAD_BODY_BYTES, V2Offload
from packflow.serving.protocol import (
    BadBody,
    Payload,
    Shape,
    body_format,
    document_error,
    error_body,
    parse_body,
    reads_as_json,
)
from packflow.serving.protocol import render as render_outputs
from packflow.serving.v2 import V2Api, V2Error

__all__ = ["PackflowApp", "create_app"]

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

JSON_TYPE = b"application/json"
MODELS_PREFIX = "/v1/models/"
PREDICT_SUFFIX = ":predict"

# Endpoint labels for metrics: the route, not the path (bounded cardinality).
INVOCATIONS = "/invocations"
PREDICT = "/v1/models/{name}:predict"
MODEL = "/v1/models/{name}"
MODELS = "/v1/models"
V2_INFER = "/v2/models/{name}/infer"
OTHER = "other"


#: An answer: status, body, Content-Type, further header fields.
Answer = tuple[int, bytes, bytes, Any]


class _Reply(Exception):
    """Answer the request now with this status and body."""

    def __init__(self, status: int, body: bytes, headers: Optional[list] = None):
        self.status = status
        self.body = body
        self.headers = headers or []


class _Gone(Exception):
    """The client disconnected before its answer: send nothing."""


class PackflowApp:
    """An ASGI app serving one backend; see :func:`create_app`."""

    def __init__(
        self,
        backend: Any,
        *,
        name: Optional[str] = None,
        version: Optional[str] = None,
        max_batch_rows: int = SERVE_MAX_BATCH_ROWS,
        max_wait_ms: float = SERVE_MAX_WAIT_MS,
        max_queue_rows: int = SERVE_MAX_QUEUE_ROWS,
        max_body_bytes: int = SERVE_MAX_BODY_BYTES,
        request_timeout_s: float = SERVE_REQUEST_TIMEOUT_S,
        expose_errors: bool = False,
    ):
        if max_body_bytes < 1:
            raise ValueError("max_body_bytes must be at least 1")
        self.backend = backend
        #: Whether a failing row's answer carries the exception's text (else
        #: only the server's log does).
        self.expose_errors = expose_errors
        self.name = name or type(backend).__name__
        self.max_body_bytes = max_body_bytes
        self.request_timeout_s = request_timeout_s
        self.metrics = ServerMetrics(max_batch_rows)
        self.batcher = Batcher(
            BatchEngine(backend),
            max_batch_rows=max_batch_rows,
            max_wait_s=max_wait_ms / 1000,
            max_queue_rows=max_queue_rows,
            timeout_s=request_timeout_s,
            observe_batch=self.metrics.batch,
        )
        self._body_deadlines = _BodyDeadlines(request_timeout_s)
        #: Set by :meth:`drain`: /readyz answers 503 from then on.
        self.draining = False
        self._model_json = b""
        #: The type of the exception the backend's ready() last raised.
        self._ready_error: Optional[str] = None
        #: The Open Inference Protocol (KServe V2) routes, under /v2.
        self.v2 = V2Api(backend, self.name, version, max_queue_rows)
        #: Large V2 bodies are read, and answers written, beside the loop.
        self._offload = V2Offload()

    def __repr__(self) -> str:
        return f"PackflowApp({self.name!r}, {type(self.backend).__name__})"

    def retry_after(self) -> int:
        """Seconds a refused client should wait (the queue's drain estimate)."""
        return self.batcher.retry_after()

    def too_large_message(self) -> str:
        """What a client whose body is over the limit is told."""
        return _too_large_message(self.max_body_bytes)

    # -- lifecycle ---------------------------------------------------------------

    def drain(self) -> None:
        """Stop reporting ready (the server is about to stop); requests are
        still answered."""
        self.draining = True

    def ready(self) -> bool:
        """Ready unless draining, the backend says it is not, or a batch has
        been running longer than the request timeout (a hung model: requests
        would only time out, so a load balancer should send them elsewhere)."""
        if self.draining or self.batcher.stuck_for(self.request_timeout_s):
            return False
        try:
            ready = bool(self.backend.ready())
        except Exception as exc:  # noqa: BLE001 - a backend that cannot say is not ready
            if self._ready_error != type(exc).__name__:
                get_logger().exception("%s: its backend's ready() raised", self.name)
            self._ready_error = type(exc).__name__
            return False
        self._ready_error = None
        return ready

    def not_ready_why(self) -> Optional[str]:
        """Why :meth:`ready` is false (``None`` when it is true)."""
        if self.ready():
            return None
        if self._ready_error is not None:
            return f"not ready: its backend's ready() raised {self._ready_error}"
        if self.draining:
            return "draining"
        if self.batcher.stuck_for(self.request_timeout_s):
            return (
                f"not ready: a batch has been running for more than the "
                f"{self.request_timeout_s:g} s request timeout"
            )
        return "not ready"

    async def close(self) -> None:
        """Drain, answer every queued request, and stop the worker thread."""
        self.drain()
        await self.batcher.close()
        self._offload.shut()

    # -- requests ---------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await asgi_call(self, scope, receive, send)

    async def respond(
        self,
        method: str,
        path: str,
        headers: list[tuple[bytes, bytes]],
        exchange: Any,
        started: float,
    ) -> Optional[Answer]:
        """The answer to one request, or ``None`` when its client went away
        (nothing to send). ``headers``: lower-case names, as ASGI gives them;
        ``exchange`` reads the body and watches for the client leaving
        (``read_body(content_length, started)`` and ``outcome(job)``); each
        server has its own. ``started``: ``time.perf_counter()`` at the
        request's first byte."""
        # HEAD is GET without the body (the headers, Content-Length included,
        # are GET's): what load balancers and `curl -I` send. The server
        # leaves the body out.
        if method == "HEAD":
            method = "GET"
        endpoint = OTHER
        try:
            if path == INVOCATIONS:
                endpoint = INVOCATIONS
                _allow(method, "POST")
                answer = await self._invoke(headers, exchange, started, False)
            elif path.startswith(MODELS_PREFIX):
                name = path[len(MODELS_PREFIX) :]
                if name.endswith(PREDICT_SUFFIX):
                    endpoint = PREDICT
                    self._check_model(name[: -len(PREDICT_SUFFIX)])
                    _allow(method, "POST")
                    answer = await self._invoke(headers, exchange, started, True)
                else:
                    endpoint = MODEL
                    self._check_model(name)
                    _allow(method, "GET")
                    ready = self.ready()
                    body = b'{"name":' + self._model_name_json() + b',"ready":'
                    body += b"true}" if ready else b"false}"
                    answer = (200 if ready else 503, body, JSON_TYPE, ())
            elif path == "/v2" or path.startswith("/v2/"):
                route = self.v2.route(path)
                endpoint = route.endpoint
                answer = await self._v2(route.kind, method, headers, exchange, started)
            else:
                endpoint, answer = self._plain(path, method)
        except _Gone:
            # Nobody to answer; counted as nginx counts it (499).
            self.metrics.request(endpoint, 499, time.perf_counter() - started)
            return None
        except _Reply as reply:
            answer = (reply.status, reply.body, JSON_TYPE, reply.headers)
        except V2Error as exc:
            answer = (exc.status, error_body(str(exc)), JSON_TYPE, ())
        except Exception:
            get_logger().exception("%s %s failed", method, path)
            answer = (500, error_body("internal error: see the server log"), JSON_TYPE, ())
        timed = endpoint in (INVOCATIONS, PREDICT, V2_INFER)
        seconds = time.perf_counter() - started if timed else None
        self.metrics.request(endpoint, answer[0], seconds)
        return answer

    def _plain(self, path: str, method: str) -> tuple[str, Answer]:
        if path == "/healthz" or path == "/ping":
            # /ping: SageMaker's health path, beside its /invocations.
            _allow(method, "GET")
            return path, (200, b'{"status":"alive"}', JSON_TYPE, ())
        if path == "/readyz":
            _allow(method, "GET")
            why = self.not_ready_why()
            if why is None:
                return path, (200, b'{"status":"ready"}', JSON_TYPE, ())
            return path, (503, error_body(f"the server is {why}"), JSON_TYPE, ())
        if path == "/metrics":
            _allow(method, "GET")
            return path, (200, self._metrics_text(), METRICS_TYPE, ())
        if path == MODELS:
            _allow(method, "GET")
            return path, (200, b'{"models":[' + self._model_name_json() + b"]}", JSON_TYPE, ())
        raise _Reply(404, error_body(f"no endpoint at {path}"))

    def _model_name_json(self) -> bytes:
        if not self._model_json:
            self._model_json = _core.dumps(self.name)
        return self._model_json

    def _check_model(self, name: str) -> None:
        if name != self.name:
            raise _Reply(404, error_body(f"no model named {name!r}; this server has {self.name!r}"))

    def _metrics_text(self) -> bytes:
        return self.metrics.render(self.backend, self.gauges())

    def gauges(self) -> dict[str, tuple[str, Callable[[], float]]]:
        """The live gauges of this model: name -> (help, current value)."""
        batcher = self.batcher
        return {
            "packflow_queue_rows": (
                "Rows queued, not yet in a batch.",
                lambda: batcher.queued_rows,
            ),
            "packflow_requests_in_flight": (
                "Requests accepted and not yet answered.",
                lambda: batcher.pending,
            ),
            "packflow_ready": (
                "1 when the server reports ready, else 0.",
                lambda: int(self.ready()),
            ),
        }

    async def _v2(
        self,
        kind: str,
        method: str,
        headers: list[tuple[bytes, bytes]],
        exchange: Any,
        started: float,
    ) -> Answer:
        """The answer on a V2 route (see :mod:`.v2`)."""
        v2 = self.v2
        if kind == "infer":
            _allow(method, "POST")
            header_length = None
            for key, value in headers:
                if key == b"inference-header-content-length":
                    if header_length is not None:
                        raise V2Error(400, "Inference-Header-Content-Length is given twice")
                    header_length = value
            content_type, body = await self._read_body(headers, exchange, started)
            media_type = body_format(content_type)
            # With binary data after its JSON header, the body is labelled as
            # anything (tritonclient sends no type, others octet-stream).
            if header_length is None and not reads_as_json(media_type):
                raise V2Error(
                    415, f"unsupported Content-Type {media_type!r}: send the request as JSON"
                )
            # Large bodies are read, and large answers written, beside the
            # event loop (see .offload).
            if len(body) >= OFFLOAD_BODY_BYTES:
                request = await v2.parse_infer_beside(body, header_length, self._offload)
            else:
                request = v2.parse_infer(body, header_length)
            payload = Payload(request.data, request.rows, Shape.ARRAY, "application/json")
            lines = await self._run(payload, headers, exchange, started)
            if len(lines) >= OFFLOAD_ANSWER_ROWS:
                answer, json_length = await v2.render_beside(lines, request, self._offload)
            else:
                answer, json_length = v2.render(lines, request)
            if json_length is None:
                return 200, answer, JSON_TYPE, ()
            extra = [(b"inference-header-content-length", str(json_length).encode())]
            return 200, answer, b"application/octet-stream", extra
        _allow(method, "GET")
        if kind == "server":
            return 200, v2.server_metadata(), JSON_TYPE, ()
        if kind == "model":
            return 200, v2.model_metadata(), JSON_TYPE, ()
        if kind == "live":
            return 200, b'{"live":true}', JSON_TYPE, ()
        ready = self.ready()
        body = b'{"ready":true}' if ready else b'{"ready":false}'
        return (200 if ready else 503), body, JSON_TYPE, ()

    async def _read_body(
        self, headers: list[tuple[bytes, bytes]], exchange: Any, started: float
    ) -> tuple[Optional[bytes], bytes]:
        """The request's Content-Type and body."""
        content_type = None
        content_length = None
        for key, value in headers:
            if key == b"content-type":
                content_type = value
            elif key == b"content-length":
                content_length = value
            elif key == b"content-encoding" and value.strip().lower() != b"identity":
                # A compressed body would have to be inflated past the body
                # limit's reach (a few KiB can inflate to gigabytes): refused.
                raise _Reply(
                    415,
                    error_body(
                        f"Content-Encoding {value.decode('latin-1')!r} is not accepted: "
                        "send the body uncompressed"
                    ),
                )
        body = await exchange.read_body(content_length, started)
        if len(body) > self.max_body_bytes:  # a server of several models reads up to the largest
            raise _too_large(self.max_body_bytes)
        return content_type, body

    async def _invoke(
        self, headers: list[tuple[bytes, bytes]], exchange: Any, started: float, instances: bool
    ) -> Answer:
        """Read the body, queue its rows, wait for their batch(es), answer."""
        content_type, body = await self._read_body(headers, exchange, started)
        try:
            payload = parse_body(body, body_format(content_type), instances=instances)
        except BadBody as exc:
            raise _Reply(exc.status, error_body(str(exc))) from None
        lines = await self._run(payload, headers, exchange, started)
        body = render_outputs(payload.shape, lines)
        return 200, body, payload.content_type.encode(), ()

    async def _run(
        self, payload: Payload, headers: list[tuple[bytes, bytes]], exchange: Any, started: float
    ) -> list[bytes]:
        """Queue the payload's rows and wait for their batch(es): their output
        lines, in order (else the answer to give instead, raised)."""
        # The deadline counts from when the request began, not from when its
        # body was read (a slow body must not buy itself more time).
        began = asyncio.get_running_loop().time() - (time.perf_counter() - started)
        try:
            job = self.batcher.submit(payload.data, payload.rows, began)
        except QueueFull as exc:
            if exc.retry_after is None:
                raise _Reply(413, error_body(str(exc))) from None
            raise _Reply(
                503, error_body(str(exc)), [(b"retry-after", str(exc.retry_after).encode())]
            ) from None
        self.metrics.rows_received += payload.rows
        outcome = await exchange.outcome(job)
        if outcome is Outcome.DONE:
            lines, job.lines = job.lines, []  # the batcher may keep the job a while
            return lines
        if outcome is Outcome.TIMED_OUT:
            raise _Reply(
                504, error_body(f"no answer within the {self.request_timeout_s:g} s timeout")
            )
        if outcome is Outcome.GONE:
            raise _Gone
        raise _failure(job, payload, outcome, _request_id(headers), self.expose_errors)


async def asgi_call(app: Any, scope: Scope, receive: Receive, send: Send) -> None:
    """An ASGI 3 call of ``app`` (a :class:`PackflowApp`, or any app with its
    ``respond``, ``close``, ``max_body_bytes``, ``request_timeout_s`` and body
    deadlines): an HTTP request answered through ``app.respond``; the
    lifespan's shutdown closes the app."""
    kind = scope["type"]
    if kind == "http":
        started = time.perf_counter()
        method: str = scope["method"]
        exchange = _AsgiExchange(app, receive)
        answer = await app.respond(method, scope["path"], scope["headers"], exchange, started)
        if answer is not None:
            await _respond(send, answer, head=method == "HEAD")
    elif kind == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await app.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


class _AsgiExchange:
    """A request's body and disconnect, read through ASGI's ``receive``."""

    __slots__ = ("app", "receive")

    def __init__(self, app: PackflowApp, receive: Receive):
        self.app = app
        self.receive = receive

    async def outcome(self, job: Any) -> Outcome:
        return await _unless_gone(job, self.receive)

    async def read_body(self, content_length: Optional[bytes], started: float) -> bytes:
        """The whole body, or a 413 as soon as it is known to be too large
        (from Content-Length, before reading any of it, or once the bytes read
        pass the limit): the rest is never read, and the connection is closed.
        A body still arriving at the request's deadline gets a 408."""
        app, receive = self.app, self.receive
        limit = app.max_body_bytes
        if content_length is not None:
            try:
                declared = int(content_length)
            except ValueError:
                raise _Reply(400, error_body("Content-Length is not a number")) from None
            if declared > limit:
                raise _too_large(limit)
        watch = app._body_deadlines.watch(started)
        try:
            message = await receive()
            body = message.get("body", b"")
            if not message.get("more_body", False):
                if len(body) > limit:
                    raise _too_large(limit)
                return body
            chunks = [body]
            size = len(body)
            while message.get("more_body", False):
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise _Reply(400, error_body("the client went away"))
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
                chunks.append(chunk)
            return b"".join(chunks)
        except asyncio.CancelledError:
            if not watch.expired:
                raise
            task = asyncio.current_task()
            if task is not None and hasattr(task, "uncancel"):
                task.uncancel()
            raise _Reply(
                408,
                error_body(
                    f"the body did not arrive within the {app.request_timeout_s:g} s timeout"
                ),
                [(b"connection", b"close")],
            ) from None
        finally:
            watch.done = True


class _Watch:
    __slots__ = ("deadline", "task", "done", "expired")

    def __init__(self, deadline: float, task: Optional[asyncio.Task]):
        self.deadline = deadline
        self.task = task
        self.done = False
        self.expired = False


class _BodyDeadlines:
    """Cancels body reads still going at their request's deadline. Every read
    has the same timeout, so deadlines come in the order reads start and one
    timer serves them all (no timer per request)."""

    def __init__(self, timeout_s: float):
        self.timeout_s = timeout_s
        self._watches: collections.deque[_Watch] = collections.deque()
        self._timer: Optional[asyncio.TimerHandle] = None

    def watch(self, started: float) -> _Watch:
        w = _Watch(started + self.timeout_s, asyncio.current_task())
        watches = self._watches
        while watches and watches[0].done:  # finished reads leave as they come
            watches.popleft()
        watches.append(w)
        if self._timer is None:
            self._schedule(w.deadline)
        return w

    def _schedule(self, deadline: float) -> None:
        delay = max(0.0, deadline - time.perf_counter())
        self._timer = asyncio.get_running_loop().call_later(delay, self._sweep)

    def _sweep(self) -> None:
        self._timer = None
        now = time.perf_counter()
        watches = self._watches
        while watches:
            w = watches[0]
            if w.done:
                watches.popleft()
            elif w.deadline <= now:
                watches.popleft()
                w.expired = True
                if w.task is not None:
                    w.task.cancel()
            else:
                self._schedule(w.deadline)
                return


def _too_large(limit: int) -> _Reply:
    return _Reply(413, error_body(_too_large_message(limit)), [(b"connection", b"close")])


def _too_large_message(limit: int) -> str:
    # The client cannot raise the limit, but whoever runs the server can: say
    # with which knob, for both ways of running it.
    return (
        f"the body is larger than the limit of {limit} bytes ({limit / (1 << 20):g} MiB); "
        "the server's limit is set by packflow serve --max-body-mb "
        "(create_app's max_body_bytes)"
    )


def _request_id(headers: list[tuple[bytes, bytes]]) -> str:
    """The request's ``X-Request-ID`` when it sent a sane one (up to 128 of
    ``A-Z a-z 0-9 . _ : -``), else a fresh random one: it ties an error
    answer to the server's log line about it."""
    for key, value in headers:
        if key == b"x-request-id":
            if 0 < len(value) <= 128 and _REQUEST_ID.fullmatch(value):
                return value.decode("ascii")
            break
    return os.urandom(8).hex()


_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]+")


def _failure(job: Any, payload: Payload, outcome: Outcome, request_id: str, expose: bool) -> _Reply:
    """The answer for a request whose row failed: 422 (400 for a line that is
    not a JSON object), naming the row within the request, the step and the
    exception's type. The exception's text, which may hold anything the
    backend put there (file paths, data), goes to the server's log under the
    request id; the answer carries it only with ``expose``."""
    err = job.error
    header = [(b"x-request-id", request_id.encode())]
    error_type = err.error_type or "Exception"
    if outcome is Outcome.CRASHED:
        get_logger().error("request %s: its batch failed: %s", request_id, err.error)
        fields: dict[str, Any] = {"step": err.step, "error_type": error_type}
        if expose:
            fields["message"] = err.error
        message = f"the batch failed in the server ({error_type}); its log has request {request_id}"
        return _Reply(500, error_body(message, request_id=request_id, **fields), header)
    fields = {"row": job.error_row, "step": err.step}
    if payload.shape is Shape.LINES:
        fields["line"] = job.error_row + 1
    if err.step == "parse":
        # The client's own text, described: nothing of the server's in it.
        # A bad item of a JSON document gets the whole document's own error,
        # as if it had been checked on arrival (it was cut without reading
        # its items, which the engine parsed).
        document = document_error(payload)
        if document is not None:
            return _Reply(400, error_body(document))
        message = f"line {job.error_row + 1}: {err.error}"
        return _Reply(400, error_body(message, **fields))
    get_logger().warning(
        "request %s: row %d failed in %s: %s: %s",
        request_id,
        job.error_row,
        err.step,
        error_type,
        err.error,
    )
    fields["error_type"] = error_type
    fields["request_id"] = request_id
    if expose:
        fields["message"] = err.error
    message = (
        f"row {job.error_row} failed in {err.step} ({error_type}); "
        f"the server's log has the details under request {request_id}"
    )
    return _Reply(422, error_body(message, **fields), header)


async def _unless_gone(job: Any, receive: Receive) -> Outcome:
    """The job's outcome, or ``Outcome.GONE`` once the client disconnects
    first: its rows still queued are dropped (a batch already running with
    them finishes, and their outputs are discarded)."""
    future = job.future
    if future.done():
        return future.result()
    # With the body read, the next message the server has for this request
    # is its disconnect.
    listener = asyncio.ensure_future(receive())
    try:
        await asyncio.wait((future, listener), return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not listener.done():
            listener.cancel()
    if future.done():
        return future.result()
    message = listener.result()
    if message.get("type") == "http.disconnect":
        job.abandon()
    return await future


def _allow(method: str, allowed: str) -> None:
    if method != allowed:
        raise _Reply(
            405,
            error_body(f"method {method} is not allowed here; use {allowed}"),
            [(b"allow", allowed.encode())],
        )


async def _respond(send: Send, answer: Answer, head: bool = False) -> None:
    status, body, content_type, headers = answer
    fields = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    fields += headers
    await send({"type": "http.response.start", "status": status, "headers": fields})
    await send({"type": "http.response.body", "body": b"" if head else body})


def create_app(
    backend: Any,
    *,
    name: Optional[str] = None,
    version: Optional[str] = None,
    max_batch_rows: int = SERVE_MAX_BATCH_ROWS,
    max_wait_ms: float = SERVE_MAX_WAIT_MS,
    max_queue_rows: int = SERVE_MAX_QUEUE_ROWS,
    max_body_bytes: int = SERVE_MAX_BODY_BYTES,
    request_timeout_s: float = SERVE_REQUEST_TIMEOUT_S,
    expose_errors: bool = False,
) -> PackflowApp:
    """An ASGI app serving ``backend`` (a constructed
    :class:`~packflow.InferenceBackend`), to run with any ASGI server or mount
    in your own stack.

    ``name`` is the model name of the KServe V1 and V2 routes (default: the
    backend's class name), ``version`` its version on the V2 routes (none by
    default). Rows of concurrent requests are batched: at most
    ``max_batch_rows`` per backend call; a batch starts as soon as the model
    is free, with whatever is queued (while it runs, the next one fills), or,
    with ``max_wait_ms`` above 0, once its first row has waited that long for
    company or it is full; at most ``max_queue_rows`` rows wait (more: 503 with
    Retry-After), bodies over ``max_body_bytes`` are refused (413) and a
    request not answered within ``request_timeout_s`` gets a 504. The batcher
    starts with the first request; the ASGI lifespan shutdown (or
    :meth:`PackflowApp.close`) answers what is queued and stops it.

    A failing row's answer names the row, the step, the exception's type and
    a request id (the request's ``X-Request-ID``, or a fresh one); the
    exception's text goes to the ``packflow`` logger under that id, and into
    the answer (``message``) only with ``expose_errors``.
    """
    return PackflowApp(
        backend,
        name=name,
        version=version,
        max_batch_rows=max_batch_rows,
        max_wait_ms=max_wait_ms,
        max_queue_rows=max_queue_rows,
        max_body_bytes=max_body_bytes,
        request_timeout_s=request_timeout_s,
        expose_errors=expose_errors,
    )
