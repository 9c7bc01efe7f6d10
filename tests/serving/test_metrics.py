"""The Prometheus text: parsed back with prometheus_client's parser."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from packflow import BatchEngine, InferenceBackend
from packflow.serving.metrics import LATENCY_BOUNDS_S, Histogram, ServerMetrics
from tests.serving.harness import metric_samples


class Passthrough(InferenceBackend):
    def execute(self, inputs):
        return [{"ok": True} for _ in inputs]


def test_step_histograms_come_from_the_backend():
    backend = Passthrough()
    assert backend.get_step_histograms([1000]) == {}
    for _ in range(3):
        backend([{"a": 1}])
    hist = backend.get_step_histograms([1, 10**12])
    assert set(hist) == {"preprocess", "execute"}
    counts, total_ns, count = hist["execute"]
    assert count == 3
    assert counts == [0, 3]
    assert total_ns > 0
    with pytest.raises(ValueError, match="ascending"):
        backend.get_step_histograms([10, 10])


def test_render_parses_and_holds_every_family():
    backend = Passthrough()
    engine = BatchEngine(backend)
    metrics = ServerMetrics(max_batch_rows=8)
    result = engine.process(b'{"a": 1}\n{"a": 2}\nnot json\n')
    metrics.batch(3, result)
    metrics.rows_received += 3
    metrics.request("/invocations", 200, 0.002)
    metrics.request("/invocations", 400, 0.0001)
    metrics.request("other", 404)
    text = metrics.render(backend, {"packflow_queue_rows": ("Rows queued.", lambda: 7)}).decode()

    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert {name: f.type for name, f in families.items()} == {
        "packflow_requests": "counter",
        "packflow_request_seconds": "histogram",
        "packflow_step_seconds": "histogram",
        "packflow_batch_rows": "histogram",
        "packflow_rows_received": "counter",
        "packflow_rows_output": "counter",
        "packflow_rows_failed": "counter",
        "packflow_queue_rows": "gauge",
    }
    s = metric_samples(text)
    code = lambda c: frozenset({("endpoint", "/invocations"), ("code", c)})  # noqa: E731
    assert s[("packflow_requests_total", code("200"))] == 1
    assert s[("packflow_requests_total", code("400"))] == 1
    assert s[("packflow_rows_output_total", frozenset())] == 2
    assert s[("packflow_rows_failed_total", frozenset())] == 1
    assert s[("packflow_queue_rows", frozenset())] == 7
    assert s[("packflow_batch_rows_bucket", frozenset({("le", "2")}))] == 0
    assert s[("packflow_batch_rows_bucket", frozenset({("le", "4")}))] == 1
    assert s[("packflow_batch_rows_sum", frozenset())] == 3
    req = frozenset({("endpoint", "/invocations"), ("le", "0.0025")})
    assert s[("packflow_request_seconds_bucket", req)] == 2
    execute = [
        v
        for (name, labels), v in s.items()
        if name == "packflow_step_seconds_bucket" and ("step", "execute") in labels
    ]
    assert len(execute) == len(LATENCY_BOUNDS_S) + 1
    assert execute == sorted(execute)  # cumulative
    assert s[("packflow_step_seconds_count", frozenset({("step", "execute")}))] == 1


def test_histogram_buckets_are_cumulative():
    h = Histogram([1, 2, 4])
    for v in (0.5, 1, 3, 9):
        h.observe(v)
    assert h.cumulative() == [2, 2, 3]
    assert (h.count, h.total) == (4, 13.5)
