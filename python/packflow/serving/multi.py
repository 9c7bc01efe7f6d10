"""Several models in one server: each project's :class:`PackflowApp` (its
own batcher, queue and limits) under its own name, behind one set of
routes.

Requests that name a model (``/v1/models/NAME...``, ``/v2/models/NAME/...``)
go to that model's app; ``/invocations`` goes to the only model, or, with
several, to the one its ``X-Packflow-Model`` header names. The server's own
routes (``/healthz``, ``/readyz``, ``/metrics``, ``/v1/models``, ``/v2``,
``/v2/health/...``) answer for all of them: ready when every model is, and
one exposition in which each model's series carry a ``model`` label.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Optional

from packflow import _core
from packflow.logger import get_logger
from packflow.serving.app import (
    INVOCATIONS,
    JSON_TYPE,
    MODELS,
    MODELS_PREFIX,
    OTHER,
    PREDICT_SUFFIX,
    Answer,
    PackflowApp,
    Receive,
    Scope,
    Send,
    _BodyDeadlines,
    _too_large_message,
    asgi_call,
)
from packflow.serving.metrics import CONTENT_TYPE as METRICS_TYPE
from packflow.serving.metrics import ModelMetrics, ServerMetrics, render
from packflow.serving.protocol import error_body
from packflow.serving.v2 import LIVE, READY, SERVER

__all__ = ["MODEL_HEADER", "MultiModelApp"]

#: The header that picks a model for ``/invocations`` when there are several.
MODEL_HEADER = "X-Packflow-Model"
_MODEL_HEADER = MODEL_HEADER.lower().encode()
_V2_MODELS = "/v2/models/"


class MultiModelApp:
    """Serves several :class:`PackflowApp` (each made by
    :func:`~packflow.serving.create_app`, names unique) from one server or
    ASGI mount; with one app it answers as that app does, plus a ``model``
    label on its metrics."""

    def __init__(self, apps: Iterable[PackflowApp]):
        self.apps: dict[str, PackflowApp] = {}
        for app in apps:
            if app.name in self.apps:
                raise ValueError(f"two models are named {app.name!r}: each needs its own name")
            self.apps[app.name] = app
        if not self.apps:
            raise ValueError("a server needs at least one model")
        first = next(iter(self.apps.values()))
        #: The largest body any model takes (each model checks its own
        #: limit once the body is read), and the longest request timeout.
        self.max_body_bytes = max(a.max_body_bytes for a in self.apps.values())
        self.request_timeout_s = max(a.request_timeout_s for a in self.apps.values())
        self.metrics = ServerMetrics(1)
        self.draining = False
        self._v2 = first.v2
        self._body_deadlines = _BodyDeadlines(self.request_timeout_s)
        self._names = ", ".join(repr(n) for n in self.apps)
        self._list_json = b'{"models":[' + b",".join(_core.dumps(n) for n in self.apps) + b"]}"

    def __repr__(self) -> str:
        return f"MultiModelApp({list(self.apps)!r})"

    # -- what the HTTP server asks of an app ---------------------------------------

    def too_large_message(self) -> str:
        return _too_large_message(self.max_body_bytes)

    def retry_after(self) -> int:
        return max(app.retry_after() for app in self.apps.values())

    def drain(self) -> None:
        self.draining = True
        for app in self.apps.values():
            app.drain()

    def ready(self) -> bool:
        return not self.draining and all(app.ready() for app in self.apps.values())

    def not_ready_why(self) -> Optional[str]:
        """Why the server is not ready (``None`` when it is): with one model,
        that model's reason; with several, each one's that is not ready."""
        if self.draining:
            return "draining"
        whys = {name: app.not_ready_why() for name, app in self.apps.items()}
        if len(whys) == 1:
            return next(iter(whys.values()))
        waiting = [f"model {name!r} is {why}" for name, why in whys.items() if why is not None]
        return "not ready: " + "; ".join(waiting) if waiting else None

    async def close(self) -> None:
        self.drain()
        for app in self.apps.values():
            await app.close()

    # -- ASGI ------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await asgi_call(self, scope, receive, send)

    # -- routing -----------------------------------------------------------------------

    async def respond(
        self,
        method: str,
        path: str,
        headers: list[tuple[bytes, bytes]],
        exchange: Any,
        started: float,
    ) -> Optional[Answer]:
        """As :meth:`PackflowApp.respond`: the model's app answers what names
        a model; the rest is answered here."""
        try:
            app = self._model_of(path, headers)
            if isinstance(app, PackflowApp):
                return await app.respond(method, path, headers, exchange, started)
            endpoint, answer = app
        except Exception:
            get_logger().exception("%s %s failed", method, path)
            endpoint = OTHER
            answer = (500, error_body("internal error: see the server log"), JSON_TYPE, ())
        if path == INVOCATIONS:
            allowed = "POST"
        elif endpoint == OTHER and answer[0] == 404:
            allowed = None
        else:
            allowed = "GET"
        if allowed is not None and method != allowed and (method, allowed) != ("HEAD", "GET"):
            answer = (
                405,
                error_body(f"method {method} is not allowed here; use {allowed}"),
                JSON_TYPE,
                [(b"allow", allowed.encode())],
            )
        self.metrics.request(endpoint, answer[0])
        return answer

    def _model_of(
        self, path: str, headers: list[tuple[bytes, bytes]]
    ) -> PackflowApp | tuple[str, Answer]:
        """The app a request is for, else (its endpoint label, the answer)."""
        apps = self.apps
        if path == INVOCATIONS:
            named = [value for key, value in headers if key == _MODEL_HEADER]
            if len(set(named)) > 1:
                message = f"the {MODEL_HEADER} header is given twice, naming different models"
                return INVOCATIONS, (400, error_body(message), JSON_TYPE, ())
            if named:
                name = named[0].decode("latin-1")
                app = apps.get(name)
                if app is None:
                    return INVOCATIONS, self._unknown(name)
                return app
            if len(apps) == 1:
                return next(iter(apps.values()))
            message = (
                f"this server has several models ({self._names}): say which in the "
                f"{MODEL_HEADER} header, or POST to /v1/models/NAME:predict or "
                "/v2/models/NAME/infer"
            )
            return INVOCATIONS, (400, error_body(message), JSON_TYPE, ())
        if path.startswith(MODELS_PREFIX):
            name = path[len(MODELS_PREFIX) :]
            if name.endswith(PREDICT_SUFFIX):
                name = name[: -len(PREDICT_SUFFIX)]
            return apps.get(name) or (OTHER, self._unknown(name))
        if path.startswith(_V2_MODELS):
            name = path[len(_V2_MODELS) :].split("/", 1)[0]
            return apps.get(name) or (OTHER, self._unknown(name))
        return self._server_route(path)

    def _unknown(self, name: str) -> Answer:
        shown = name if len(name) <= 100 else name[:100] + "..."
        message = f"no model named {shown!r}; this server has {self._names}"
        return 404, error_body(message), JSON_TYPE, ()

    def _server_route(self, path: str) -> tuple[str, Answer]:
        if path in ("/healthz", "/ping"):
            return path, (200, b'{"status":"alive"}', JSON_TYPE, ())
        if path == "/readyz":
            why = self.not_ready_why()
            if why is None:
                return path, (200, b'{"status":"ready"}', JSON_TYPE, ())
            return path, (503, error_body(f"the server is {why}"), JSON_TYPE, ())
        if path == "/metrics":
            return path, (200, self.metrics_text(), METRICS_TYPE, ())
        if path == MODELS:
            return path, (200, self._list_json, JSON_TYPE, ())
        if path in ("/v2", "/v2/"):
            return SERVER, (200, self._v2.server_metadata(), JSON_TYPE, ())
        if path == LIVE:
            return LIVE, (200, b'{"live":true}', JSON_TYPE, ())
        if path == READY:
            ready = self.ready()
            return READY, (
                200 if ready else 503,
                b'{"ready":true}' if ready else b'{"ready":false}',
                JSON_TYPE,
                (),
            )
        return OTHER, (404, error_body(f"no endpoint at {path}"), JSON_TYPE, ())

    def metrics_text(self) -> bytes:
        """Every model's metrics, labelled by model, and the server's."""
        models = [
            ModelMetrics(name, app.metrics, app.backend, app.gauges())
            for name, app in self.apps.items()
        ]
        return render(models, self.metrics)
