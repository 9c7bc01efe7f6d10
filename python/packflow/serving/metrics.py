"""The server's counters and the backend's step histograms in the Prometheus
text format (version 0.0.4), written by hand: no client library at run time.

Step latencies come from the Rust histograms the backend keeps for every call
(:meth:`~packflow.InferenceBackend.get_step_histograms`), so serving adds no
timing of its own to the model path; the rest is counted per request or per
batch on the event loop.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple, Optional

from packflow.engine import BatchResult

__all__ = [
    "CONTENT_TYPE",
    "LATENCY_BOUNDS_S",
    "Histogram",
    "ModelMetrics",
    "ServerMetrics",
    "render",
]

CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"

#: Bucket bounds (seconds) of the latency histograms.
LATENCY_BOUNDS_S = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
_LATENCY_BOUNDS_NS = [round(b * 1e9) for b in LATENCY_BOUNDS_S]


class Histogram:
    """A fixed-bucket histogram of observations made on the event loop."""

    __slots__ = ("bounds", "counts", "total", "count")

    def __init__(self, bounds: Iterable[float]):
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value
        self.count += 1

    def cumulative(self) -> list[int]:
        out, seen = [], 0
        for c in self.counts[:-1]:
            seen += c
            out.append(seen)
        return out


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, labels: dict[str, str], value: float) -> None:
        if labels:
            text = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
            self.lines.append(f"{name}{{{text}}} {_number(value)}")
        else:
            self.lines.append(f"{name} {_number(value)}")

    def histogram(
        self,
        name: str,
        labels: dict[str, str],
        bounds: Iterable[float],
        cumulative: list[int],
        total: float,
        count: int,
    ) -> None:
        for bound, seen in zip(bounds, cumulative):
            self.sample(f"{name}_bucket", {**labels, "le": _number(bound)}, seen)
        self.sample(f"{name}_bucket", {**labels, "le": "+Inf"}, count)
        self.sample(f"{name}_sum", labels, total)
        self.sample(f"{name}_count", labels, count)

    def text(self) -> bytes:
        return ("\n".join(self.lines) + "\n").encode("utf-8")


class ServerMetrics:
    """What the server counts; :meth:`render` writes it with the backend's
    step histograms and the live gauges."""

    def __init__(self, max_batch_rows: int):
        self.requests: dict[tuple[str, int], int] = {}
        self.request_seconds: dict[str, Histogram] = {}
        bounds, b = [], 1
        while b < max_batch_rows:
            bounds.append(b)
            b *= 2
        bounds.append(max_batch_rows)
        self.batch_rows = Histogram(bounds)
        self.rows_received = 0
        self.rows_output = 0
        self.rows_failed = 0
        #: Connections the server closed on its own, by reason (set by
        #: packflow's HTTP server; empty under another ASGI server).
        self.connections_closed: dict[str, int] = {}
        #: The number of open connections, when the server counts them.
        self.connections: Optional[Callable[[], int]] = None

    def request(self, endpoint: str, status: int, seconds: float | None = None) -> None:
        key = (endpoint, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        if seconds is not None:
            hist = self.request_seconds.get(endpoint)
            if hist is None:
                hist = self.request_seconds[endpoint] = Histogram(LATENCY_BOUNDS_S)
            hist.observe(seconds)

    def batch(self, rows: int, result: BatchResult) -> None:
        self.batch_rows.observe(rows)
        self.rows_output += result.written
        self.rows_failed += len(result.errors)

    def render(self, backend: Any, gauges: dict[str, tuple[str, Callable[[], float]]]) -> bytes:
        """The exposition text of a server of one model (no ``model`` label).
        ``gauges``: name -> (help, current value)."""
        return render([ModelMetrics("", self, backend, gauges)], self)

    def __repr__(self) -> str:
        return f"ServerMetrics({sum(self.requests.values())} requests)"


class ModelMetrics(NamedTuple):
    """One model's part of the exposition: its ``name`` (the value of the
    ``model`` label; empty: no label), counters, backend (for the step
    histograms) and gauges (name -> (help, current value))."""

    name: str
    metrics: ServerMetrics
    backend: Any
    gauges: dict[str, tuple[str, Callable[[], float]]]


def render(models: list[ModelMetrics], server: Optional[ServerMetrics] = None) -> bytes:
    """The exposition text of a server holding ``models``: every family once,
    each model's series labelled ``model="NAME"``; ``server`` holds what
    belongs to no model (the server's own routes, its connections)."""
    w = _Writer()
    parts = [(m.metrics, {"model": m.name} if m.name else {}) for m in models]
    counted = list(parts)
    if server is not None and all(server is not m.metrics for m in models):
        counted.append((server, {}))

    w.family(
        "packflow_requests_total",
        "counter",
        "HTTP requests answered, by endpoint and status code.",
    )
    for metrics, labels in counted:
        for (endpoint, status), n in sorted(metrics.requests.items()):
            w.sample(
                "packflow_requests_total", {**labels, "endpoint": endpoint, "code": str(status)}, n
            )

    w.family(
        "packflow_request_seconds",
        "histogram",
        "Time from a request's arrival to its answer, by endpoint.",
    )
    for metrics, labels in counted:
        for endpoint, hist in sorted(metrics.request_seconds.items()):
            w.histogram(
                "packflow_request_seconds",
                {**labels, "endpoint": endpoint},
                hist.bounds,
                hist.cumulative(),
                hist.total,
                hist.count,
            )

    w.family(
        "packflow_step_seconds",
        "histogram",
        "Time per backend call in each step (preprocess, transform_inputs, execute, "
        "transform_outputs), from the backend's own step histograms.",
    )
    for model, (_, labels) in zip(models, parts):
        steps = model.backend.get_step_histograms(_LATENCY_BOUNDS_NS)
        for step, (cumulative, total_ns, count) in steps.items():
            w.histogram(
                "packflow_step_seconds",
                {**labels, "step": step},
                LATENCY_BOUNDS_S,
                cumulative,
                total_ns / 1e9,
                count,
            )

    w.family("packflow_batch_rows", "histogram", "Rows per batch run through the backend.")
    for metrics, labels in parts:
        b = metrics.batch_rows
        w.histogram("packflow_batch_rows", labels, b.bounds, b.cumulative(), b.total, b.count)

    for name, help_text, field in (
        ("packflow_rows_received_total", "Rows accepted into the queue.", "rows_received"),
        ("packflow_rows_output_total", "Rows that gave an output.", "rows_output"),
        ("packflow_rows_failed_total", "Rows that failed (error rows).", "rows_failed"),
    ):
        w.family(name, "counter", help_text)
        for metrics, labels in parts:
            w.sample(name, labels, getattr(metrics, field))

    if server is not None and server.connections is not None:
        w.family("packflow_connections", "gauge", "Client connections open.")
        w.sample("packflow_connections", {}, server.connections())
        w.family(
            "packflow_connections_closed_total",
            "counter",
            "Connections the server closed on its own, by reason: refused (at "
            "the connection limit, answered 503), evicted_idle (idle, closed to make "
            "room), idle_timeout, header_timeout, body_timeout, header_too_large, "
            "body_too_large, bad_request, send_timeout (its client read none of its "
            "answers for 10 s).",
        )
        for reason, n in sorted(server.connections_closed.items()):
            w.sample("packflow_connections_closed_total", {"reason": reason}, n)

    names: dict[str, str] = {}
    for model in models:
        for name, (help_text, _) in model.gauges.items():
            names.setdefault(name, help_text)
    for name, help_text in names.items():
        w.family(name, "gauge", help_text)
        for model, (_, labels) in zip(models, parts):
            gauge = model.gauges.get(name)
            if gauge is not None:
                w.sample(name, labels, gauge[1]())
    return w.text()
