"""InferenceBackend: lifecycle, steps, errors, metrics and stats."""

from __future__ import annotations

import logging
import threading

import numpy as np
import pytest

from packflow import BackendConfig, InferenceBackend
from packflow.backend.metrics import ExecutionMetrics
from packflow.exceptions import (
    InferenceBackendInitializationError,
    InferenceBackendRuntimeError,
)


class Echo(InferenceBackend):
    def execute(self, inputs):
        return inputs


class Hooks(InferenceBackend):
    def initialize(self):
        self.seen = []

    def transform_inputs(self, inputs):
        self.seen.append("transform_inputs")
        return [dict(r, t=1) for r in inputs]

    def execute(self, inputs):
        self.seen.append("execute")
        return [dict(r, e=2) for r in inputs]

    def transform_outputs(self, outputs):
        self.seen.append("transform_outputs")
        return [dict(r, o=3) for r in outputs]


def test_base_class_defines_no_optional_hooks():
    assert not hasattr(InferenceBackend, "transform_inputs")
    assert not hasattr(InferenceBackend, "transform_outputs")


def test_missing_execute_is_type_error():
    class NoExecute(InferenceBackend):
        pass

    with pytest.raises(TypeError):
        NoExecute()


def test_initialize_runs_at_construction_and_failure_is_wrapped():
    class Boom(InferenceBackend):
        def initialize(self):
            raise RuntimeError("weights missing")

        def execute(self, inputs):
            return inputs

    with pytest.raises(InferenceBackendInitializationError, match="weights missing") as info:
        Boom()
    assert isinstance(info.value.__cause__, RuntimeError)
    assert Hooks().seen == []


def test_dict_in_dict_out_and_list_in_list_out():
    b = Echo()
    assert b({"a": 1}) == {"a": 1}
    rows = [{"a": 1}, {"a": 2}]
    assert b(rows) == rows
    assert b([]) == []


@pytest.mark.parametrize("bad", [None, 1, "x", (1,), {1, 2}, b"x", np.zeros(2)])
def test_other_inputs_are_runtime_errors(bad):
    with pytest.raises(
        InferenceBackendRuntimeError,
        match=r"^Inputs must be a dictionary or Records\. Type received: <class ",
    ):
        Echo()(bad)


def test_dict_and_list_subclasses_are_accepted():
    class D(dict):
        pass

    class L(list):
        pass

    b = Echo()
    assert b(D(a=1)) == {"a": 1}
    assert b(L([{"a": 1}])) == [{"a": 1}]


def test_steps_run_in_order():
    b = Hooks()
    assert b({"x": 0}) == {"x": 0, "t": 1, "e": 2, "o": 3}
    assert b.seen == ["transform_inputs", "execute", "transform_outputs"]


@pytest.mark.parametrize("step", ["transform_inputs", "execute", "transform_outputs"])
def test_a_failing_step_is_named_and_chained(step):
    class Failing(Hooks):
        pass

    def boom(self, data):
        raise ValueError(f"bad {step}")

    setattr(Failing, step, boom)
    with pytest.raises(InferenceBackendRuntimeError) as info:
        Failing()([{"a": 1}])
    assert str(info.value).startswith(f"{step}() failed")
    assert f"bad {step}" in str(info.value)
    assert isinstance(info.value.__cause__, ValueError)


def test_preprocess_failure_is_named():
    b = Echo(input_format="numpy", feature_names=["a"])
    with pytest.raises(InferenceBackendRuntimeError) as info:
        b([{"a": 1}, 5])
    assert str(info.value).startswith("preprocess() failed")
    assert "1" in str(info.value)


@pytest.mark.parametrize("out", [None, {"a": 1}, (1,), np.zeros(1)])
def test_output_must_be_a_list(out):
    class Bad(InferenceBackend):
        def execute(self, inputs):
            return out

    with pytest.raises(InferenceBackendRuntimeError, match="not a list"):
        Bad()([{"a": 1}])


def test_metrics_of_last_call():
    b = Hooks()
    b([{"a": 1}] * 3)
    m = b.get_metrics()
    assert isinstance(m, ExecutionMetrics)
    assert m.batch_size == 3
    times = m.execution_times
    for name in ("preprocess", "transform_inputs", "execute", "transform_outputs"):
        assert getattr(times, name) >= 0
    assert m.total_execution_time == pytest.approx(
        times.preprocess + times.transform_inputs + times.execute + times.transform_outputs
    )

    e = Echo()
    e({"a": 1})
    m = e.get_metrics()
    assert m.batch_size == 1
    assert m.execution_times.transform_inputs is None
    assert m.execution_times.transform_outputs is None
    assert m.total_execution_time == pytest.approx(
        m.execution_times.preprocess + m.execution_times.execute
    )


def test_metrics_are_in_milliseconds():
    import time

    class Slow(InferenceBackend):
        def execute(self, inputs):
            time.sleep(0.02)
            return inputs

    b = Slow()
    b([{}])
    assert 15 <= b.get_metrics().execution_times.execute < 2000


def test_stats_count_every_call_and_reset():
    b = Hooks()
    for _ in range(50):
        b([{"a": 1}])
    stats = b.get_stats()
    assert set(stats) == {"preprocess", "transform_inputs", "execute", "transform_outputs"}
    s = stats["execute"]
    assert s["count"] == 50
    assert s["min_ms"] <= s["p50_ms"] <= s["p90_ms"] <= s["p99_ms"] <= s["max_ms"]
    assert s["total_ms"] == pytest.approx(s["mean_ms"] * 50)
    b.reset_stats()
    assert b.get_stats() == {}
    b([{"a": 1}])
    assert b.get_stats()["execute"]["count"] == 1


def test_failed_call_still_counts_completed_steps():
    class Half(InferenceBackend):
        def execute(self, inputs):
            raise KeyError("x")

    b = Half()
    with pytest.raises(InferenceBackendRuntimeError):
        b([{}])
    stats = b.get_stats()
    assert stats["preprocess"]["count"] == 1
    assert "execute" not in stats


def test_a_hook_may_read_metrics_while_running():
    class Peek(InferenceBackend):
        def execute(self, inputs):
            self.peeked = self.get_stats()
            return inputs

    b = Peek()
    b([{}])
    b([{}])
    # a call's timings are recorded when it ends: the second call sees the first
    assert b.peeked["execute"]["count"] == 1


def test_concurrent_calls_are_all_counted():
    b = Echo()

    def worker():
        for _ in range(200):
            assert b([{"a": 1}]) == [{"a": 1}]

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert b.get_stats()["execute"]["count"] == 800


def test_verbose_logs_metrics_at_debug(caplog):
    b = Echo(verbose=True)
    with caplog.at_level(logging.DEBUG, logger="packflow"):
        b([{"a": 1}])
    assert any("batch_size=1" in r.getMessage() for r in caplog.records)


def test_quiet_by_default(caplog):
    b = Echo()
    with caplog.at_level(logging.DEBUG, logger="packflow"):
        b([{"a": 1}])
    assert not any("batch_size" in r.getMessage() for r in caplog.records)


def test_config_model_class_or_instance():
    class Cfg(BackendConfig):
        threshold: float = 0.5

    class WithCfg(Echo):
        backend_config_model = Cfg

    assert WithCfg(threshold=0.9).config.threshold == 0.9
    assert isinstance(WithCfg().config, Cfg)

    class WithInstance(Echo):
        backend_config_model = Cfg()

    assert WithInstance(threshold=0.1).config.threshold == 0.1


def test_ready_and_repr():
    b = Echo()
    assert b.ready() is True
    assert "Echo" in repr(b)


def test_hooks_are_looked_up_per_call():
    b = Echo()
    b.transform_outputs = lambda out: [{"wrapped": o} for o in out]
    assert b([{"a": 1}]) == [{"wrapped": {"a": 1}}]


def test_inputs_are_not_mutated():
    rows = [{"a": {"b": 1}, "c": 2}]
    snapshot = [{"a": {"b": 1}, "c": 2}]
    b = Echo(feature_names=["a.b"], rename_fields={"c": "d"})
    out = b(rows)
    assert rows == snapshot
    assert out == [{"d": 2, "a": {"b": 1}}]


# -- metrics before any call and after a failed one (issue 13, item 13) -------------


def test_metrics_before_any_call_are_defined():
    # Packflow 0.4.1 raises pydantic's ValidationError here.
    m = Echo().get_metrics()
    assert m.batch_size == 0
    times = m.execution_times
    assert (times.preprocess, times.transform_inputs, times.execute, times.transform_outputs) == (
        None,
        None,
        None,
        None,
    )
    assert m.total_execution_time == 0


def test_metrics_after_a_failed_call_are_that_calls_only():
    import time

    class FailsSecond(Hooks):
        def execute(self, inputs):
            if len(inputs) == 2:
                raise ValueError("second call")
            time.sleep(0.01)
            return inputs

    b = FailsSecond()
    b([{"a": 1}])
    assert b.get_metrics().execution_times.execute >= 10
    with pytest.raises(InferenceBackendRuntimeError):
        b([{"a": 1}, {"a": 2}])
    m = b.get_metrics()
    assert m.batch_size == 2
    times = m.execution_times
    # Only the steps this call completed; none of the previous call's.
    assert times.preprocess is not None and times.transform_inputs is not None
    assert times.execute is None and times.transform_outputs is None
    assert m.total_execution_time == pytest.approx(times.preprocess + times.transform_inputs)
    b([{"a": 1}])
    assert b.get_metrics().execution_times.transform_outputs is not None
