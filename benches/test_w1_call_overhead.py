"""W1: per-call overhead. One event through a backend whose execute returns its
input, default config (records format with nothing to do). Metrics stay on: the
step timings of the call are read back after the run."""

from __future__ import annotations

from conftest import PACKAGE, data, peer_only, require, run, tag

from packflow import InferenceBackend

GROUP = "W1 per-call overhead"


class Echo(InferenceBackend):
    def execute(self, inputs):
        return inputs


def _event() -> dict:
    return data.sample_events(1)[0]


def test_w1_packflow(benchmark):
    require(Echo, "the records preprocessor plan")
    tag(benchmark, "W1", GROUP, PACKAGE, 1)
    backend = Echo()
    event = _event()
    out = run(benchmark, backend, event)
    assert out == event
    metrics = backend.get_metrics()
    assert metrics.batch_size == 1
    assert metrics.execution_times.execute is not None
    assert metrics.execution_times.preprocess is not None


def test_w1_python_chain(benchmark):
    """The same hooks as plain functions: wrap, preprocess, execute, check, unwrap."""
    peer_only()
    tag(benchmark, "W1", GROUP, "Python function chain", 1)

    def preprocess(batch):
        return batch

    def execute(batch):
        return batch

    def call(inputs):
        single = isinstance(inputs, dict)
        batch = [inputs] if single else inputs
        out = execute(preprocess(batch))
        if not isinstance(out, list):
            raise TypeError("outputs must be a list")
        return out[0] if single else out

    event = _event()
    assert run(benchmark, call, event) == event
