"""BatchEngine: outputs and error rows per batch, the step as data, the numpy
fast path equal to the records path, BaseException not swallowed."""

from __future__ import annotations

import contextlib
import gc
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from packflow import InferenceBackend, _core
from packflow.engine import BatchEngine, BatchResult, ErrorRow
from packflow.exceptions import InferenceBackendRuntimeError
from tests.support.testkit import Doubler, RowSum, jsonl


def decode(result: BatchResult):
    return [json.loads(x) for x in result.output.splitlines()]


def test_good_batch_gives_one_output_line_per_input_line():
    result = BatchEngine(Doubler()).process(jsonl([{"id": i, "x": i} for i in range(5)]), 10)
    assert decode(result) == [{"id": i, "double": 2 * i} for i in range(5)]
    assert result.errors == []
    assert (result.read, result.written) == (5, 5)
    assert result.line_numbers == [10, 11, 12, 13, 14]


def test_bad_lines_and_a_failing_row_are_isolated_with_their_steps():
    data = (
        b'{"id": 0, "x": 1}\n{"id": 1, "x": \n[1]\n'
        b'{"id": 3, "x": 2, "fail": true}\n{"id": 4, "x": 3}\n'
    )
    result = BatchEngine(Doubler()).process(data, 1)
    assert decode(result) == [{"id": 0, "double": 2}, {"id": 4, "double": 6}]
    assert result.line_numbers == [1, 5]
    by_line = {e.line: e for e in result.errors}
    assert sorted(by_line) == [2, 3, 4]
    assert by_line[2].step == by_line[3].step == "parse"
    assert by_line[3].raw == b"[1]"
    assert by_line[4].step == "execute"
    assert "cannot score 3" in by_line[4].error
    assert by_line[4].raw == b'{"id": 3, "x": 2, "fail": true}'
    assert result.read == result.written + len(result.errors) == 5


@pytest.mark.parametrize(
    ("hook", "step"),
    [("transform_inputs", "transform_inputs"), ("transform_outputs", "transform_outputs")],
)
def test_the_failed_step_is_data_on_the_exception(hook, step):
    def boom(self, data):
        raise KeyError("nope")

    cls = type("B", (Doubler,), {hook: boom})
    with pytest.raises(InferenceBackendRuntimeError) as info:
        cls()([{"id": 1, "x": 1}])
    assert info.value.step == step
    [err] = BatchEngine(cls()).process(b'{"id": 1, "x": 1}\n').errors
    assert err.step == step


def test_preprocess_failure_is_step_preprocess():
    class Echo(InferenceBackend):
        def execute(self, inputs):
            return inputs

    backend = Echo(flatten_nested_inputs=True)
    # Flattening {"a": {"b": 1}} next to a key "a.b" collides.
    result = BatchEngine(backend).process(b'{"a.b": 0, "a": {"b": 1}}\n{"c": 2}\n')
    assert [(e.line, e.step) for e in result.errors] == [(1, "preprocess")]
    assert decode(result) == [{"c": 2}]


def test_other_failures_name_run_validate_serialize():
    class NotAList(InferenceBackend):
        def execute(self, inputs):
            return {"x": 1}

    class Short(InferenceBackend):
        def execute(self, inputs):
            return []

    class Nan(InferenceBackend):
        def execute(self, inputs):
            return [{"v": math.nan} for _ in inputs]

    line = b'{"a": 1}\n'
    assert BatchEngine(NotAList()).process(line).errors[0].step == "run"
    assert BatchEngine(Short()).process(line).errors[0].step == "validate"
    assert BatchEngine(Nan()).process(line).errors[0].step == "serialize"
    assert BatchEngine(Nan(), allow_nan=True).process(line).output == b'{"v":NaN}\n'


def test_base_exceptions_are_not_row_errors():
    class Interrupted(InferenceBackend):
        def execute(self, inputs):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        BatchEngine(Interrupted()).process(b'{"a": 1}\n')

    class Exits(InferenceBackend):
        def execute(self, inputs):
            raise SystemExit(3)

    with pytest.raises(SystemExit):
        Exits()([{"a": 1}])


def test_numpy_fast_path_equals_records_path():
    features = ["a", "b.c"]
    data = (
        b'{"a": 1, "b": {"c": 2}}\n{"a": 2.5, "b": {"c": -1}}\nnot json\n{"a": 3, "b": {"c": 0}}\n'
    )
    fast = BatchEngine(RowSum(input_format="numpy", feature_names=features)).process(data, 7)

    class Slow(RowSum):
        pass

    # A subclass that changes how records become the array never takes the fast path.
    from packflow.backend.preprocessors import NumpyPreprocessor

    class Pre(NumpyPreprocessor):
        def process(self, raw_inputs):
            return super().process(raw_inputs)

    slow_backend = Slow(input_format="numpy", feature_names=features)
    pre = Pre(slow_backend.config)
    assert pre.compiled() is None
    slow_backend._pipeline = _core.Pipeline(pre, pre.compiled())
    assert not slow_backend._pipeline.reads_arrays
    slow = BatchEngine(slow_backend).process(data, 7)
    assert fast.output == slow.output
    assert fast.errors == slow.errors
    assert fast.line_numbers == slow.line_numbers == [7, 8, 10]


def test_numpy_fast_path_records_parse_time_as_preprocess():
    backend = RowSum(input_format="numpy", feature_names=["a"])
    assert backend._pipeline.reads_arrays
    BatchEngine(backend).process(b'{"a": 1}\n{"a": 2}\n')
    times = backend.get_metrics().execution_times
    assert {"preprocess", "execute", "transform_outputs"} <= {step for step, _ in times}
    assert backend.get_stats()["preprocess"]["count"] == 1


def test_retry_sees_fresh_records_when_a_hook_mutated_them():
    class Mutates(InferenceBackend):
        calls = 0

        def execute(self, inputs):
            Mutates.calls += 1
            for r in inputs:
                r["x"] = "changed"
            if len(inputs) > 1:
                raise RuntimeError("batch refused")
            return [{"x": r["x"], "orig": r["orig"]} for r in inputs]

    result = BatchEngine(Mutates()).process(b'{"orig": 1}\n{"orig": 2}\n')
    assert decode(result) == [{"x": "changed", "orig": 1}, {"x": "changed", "orig": 2}]


def test_process_records():
    engine = BatchEngine(Doubler())
    records = [{"id": 1, "x": 1}, {"id": 2, "x": 1, "fail": True}, {"id": 3, "x": 2}]
    snapshot = json.dumps(records)
    result = engine.process_records(records, 100)
    assert decode(result) == [{"id": 1, "double": 2}, {"id": 3, "double": 4}]
    assert result.line_numbers == [100, 102]
    [err] = result.errors
    assert (err.line, err.step) == (101, "execute")
    assert json.loads(err.raw) == records[1]
    assert json.dumps(records) == snapshot
    with pytest.raises(TypeError):
        engine.process_records({"id": 1})
    assert engine.process_records([]).read == 0


def test_error_rows_as_jsonl():
    result = BatchEngine(Doubler()).process(b"\xff\xfe\n")
    [row] = [json.loads(x) for x in result.errors_jsonl().splitlines()]
    assert row["line"] == 1 and row["step"] == "parse"
    assert row["raw"] == "\\xff\\xfe"
    assert row["error_type"] is None
    # The fields of 0.5.0 first, in their order; error_type after them.
    assert list(ErrorRow(1, b"a", "execute", "m", "KeyError").to_dict().items()) == [
        ("line", 1),
        ("raw", "a"),
        ("step", "execute"),
        ("error", "m"),
        ("error_type", "KeyError"),
    ]


def test_error_rows_are_in_input_line_order():
    # Line 2 fails in execute (found on the retry), line 3 at parse (found first).
    data = jsonl([{"id": 0, "x": 1}, {"id": 1, "x": 1, "fail": True}, b"not json", {"id": 3}])
    result = BatchEngine(Doubler()).process(data, 1)
    steps = [(e.line, e.step) for e in result.errors]
    assert steps == [(2, "execute"), (3, "parse"), (4, "execute")]


def test_error_type_is_the_exception_that_failed_the_row():
    class Mixed(InferenceBackend):
        def execute(self, inputs):
            out = []
            for r in inputs:
                if r.get("key"):
                    raise KeyError("missing")
                if r.get("short"):
                    return []
                out.append({"v": math.nan} if r.get("nan") else {"v": 1})
            return out

    class NotAList(InferenceBackend):
        def execute(self, inputs):
            return {"x": 1}

    data = jsonl([{"key": 1}, {"short": 1}, {"nan": 1}, b"[1]", {"ok": 1}])
    result = BatchEngine(Mixed()).process(data, 1)
    # A step's failure is the backend's own exception, not packflow's wrapper.
    assert [(e.step, e.error_type) for e in result.errors] == [
        ("execute", "KeyError"),
        ("validate", "InferenceBackendValidationError"),
        ("serialize", "ValueError"),
        ("parse", None),
    ]
    [err] = BatchEngine(NotAList()).process(b'{"a": 1}\n').errors
    assert (err.step, err.error_type) == ("run", "InferenceBackendRuntimeError")
    [err] = BatchEngine.fail_batch(b'{"a": 1}\n', 1, "timeout", "too long").errors
    assert err.error_type is None
    [err] = BatchEngine(Mixed()).process_records([{"key": 1}]).errors
    assert err.error_type == "KeyError"


def test_non_bytes_data_is_a_type_error():
    with pytest.raises(TypeError):
        BatchEngine(Doubler()).process("{}")


line_st = st.one_of(
    st.builds(lambda i, x: {"id": i, "x": x}, st.integers(0, 99), st.integers(-5, 5)),
    st.builds(lambda i: {"id": i, "x": 1, "fail": True}, st.integers(0, 99)),
    st.sampled_from([b"", b"  ", b"[1]", b"{", b"\xff", b'"s"']),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(line_st, max_size=30), st.integers(1, 1000))
def test_matches_a_row_by_row_model(lines, first_line):
    raw = [r if isinstance(r, bytes) else json.dumps(r).encode() for r in lines]
    data = b"\n".join(raw)
    result = BatchEngine(Doubler()).process(data, first_line)
    expected_out, expected_err, read = [], [], 0
    for i, r in enumerate(raw):
        if not r.strip():
            continue
        read += 1
        try:
            rec = json.loads(r)
        except ValueError:
            expected_err.append((first_line + i, "parse"))
            continue
        if not isinstance(rec, dict):
            expected_err.append((first_line + i, "parse"))
        elif rec.get("fail"):
            expected_err.append((first_line + i, "execute"))
        else:
            expected_out.append({"id": rec["id"], "double": rec["x"] * 2})
    assert decode(result) == expected_out
    assert [(e.line, e.step) for e in result.errors] == expected_err
    assert result.read == read == result.written + len(result.errors)


def test_fail_batch_dead_letters_every_non_blank_line():
    data = b'{"a": 1}\r\n\n  \nnot json\n{"b": 2}'
    result = BatchEngine.fail_batch(data, 5, "timeout", "took too long")
    assert [(e.line, e.raw, e.step) for e in result.errors] == [
        (5, b'{"a": 1}', "timeout"),
        (8, b"not json", "timeout"),
        (9, b'{"b": 2}', "timeout"),
    ]
    # The same lines parse_lines counts as read.
    assert result.read == BatchEngine(Doubler()).process(data, 5).read == 3
    assert result.written == 0 and result.output == b""


class CountingDoubler(Doubler):
    """Doubler that counts its backend calls and the rows they carried."""

    def initialize(self):
        self.calls = 0
        self.rows = 0

    def execute(self, inputs):
        self.calls += 1
        self.rows += len(inputs)
        return super().execute(inputs)


@pytest.mark.parametrize(
    ("n", "bad"),
    [(1000, [517]), (1000, [0]), (1000, [999]), (1000, [3, 4, 800]), (7, [0, 1, 2, 3, 4, 5, 6])],
)
def test_a_failing_row_is_found_by_halving_not_by_running_every_row(n, bad):
    rows = [{"id": i, "x": i, **({"fail": True} if i in bad else {})} for i in range(n)]
    backend = CountingDoubler()
    result = BatchEngine(backend).process(jsonl(rows))
    # The same outputs and error rows as running every row alone...
    assert decode(result) == [{"id": i, "double": 2 * i} for i in range(n) if i not in bad]
    assert [(e.line, e.step, e.error_type) for e in result.errors] == [
        (i + 1, "execute", "ValueError") for i in bad
    ]
    assert result.line_numbers == [i + 1 for i in range(n) if i not in bad]
    # ... for about 2 k log2(n / k) calls (k bad rows) rather than n.
    k = len(bad)
    bound = 1 + 2 * k * math.ceil(math.log2(2 * n / k))
    assert backend.calls <= min(bound, 2 * n), backend.calls
    if n >= 1000:
        assert backend.calls <= 25 * k


def test_a_half_that_fails_validation_is_halved_too():
    class NaNOnThree(InferenceBackend):
        def execute(self, inputs):
            return [{"v": float("nan") if r["id"] == 3 else r["id"]} for r in inputs]

    rows = [{"id": i} for i in range(8)]
    result = BatchEngine(NaNOnThree()).process(jsonl(rows))
    assert decode(result) == [{"v": i} for i in range(8) if i != 3]
    assert [(e.line, e.step) for e in result.errors] == [(4, "serialize")]


@contextlib.contextmanager
def collector_paused():
    """The collector off (restored after), having just run: a
    ``gc.collect()`` inside counts only the cyclic garbage made since."""
    gc.collect()
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def test_a_failing_row_leaves_no_garbage_for_the_collector():
    """A failed attempt's exception is kept as data without its traceback,
    which would hold the frames that called into Rust and, through their
    locals, the outcome holding the exception: a cycle per failed attempt,
    freed only by the collector's passes (a full one costs milliseconds in a
    big process)."""

    class Refuses(InferenceBackend):
        def execute(self, inputs):
            if (inputs[:, 0] < 0).any():
                raise ValueError("negative")
            return [{"x": float(v)} for v in inputs[:, 0]]

    engine = BatchEngine(Refuses(input_format="numpy", feature_names=["a"]))
    data = b"".join(b'{"a": %d}\n' % (-1 if i == 37 else i) for i in range(100))
    engine.process(data)
    with collector_paused():
        result = engine.process(data)
        assert [e.line for e in result.errors] == [38] and result.written == 99
        assert result.errors[0].error_type == "ValueError"
        assert gc.collect() == 0


def test_a_failing_record_leaves_no_garbage_for_the_collector():
    class Refuses(InferenceBackend):
        def execute(self, inputs):
            if any(r["a"] < 0 for r in inputs):
                raise ValueError("negative")
            return [{"x": r["a"]} for r in inputs]

    engine = BatchEngine(Refuses(input_format="records"))
    records = [{"a": -1 if i == 5 else i} for i in range(20)]
    engine.process_records(records)
    with collector_paused():
        result = engine.process_records(records)
        assert [e.line for e in result.errors] == [6] and result.written == 19
        assert gc.collect() == 0


def test_the_callers_own_exception_keeps_its_traceback():
    """Failures are kept without tracebacks, but the exception the caller is
    handling when it calls the engine (the context of every failure raised
    meanwhile) is the caller's and keeps its own."""

    class Refuses(InferenceBackend):
        def execute(self, inputs):
            raise ValueError("no")

    arrays = BatchEngine(Refuses(input_format="numpy", feature_names=["a"]))
    records = BatchEngine(Refuses(input_format="records"))
    for run in (
        lambda: arrays.process(b'{"a": 1}\n{"a": 2}\n'),
        lambda: records.process_records([{"a": 1}, {"a": 2}]),
    ):
        try:
            raise KeyError("the caller's")
        except KeyError as caller:
            result = run()
            assert [e.error_type for e in result.errors] == ["ValueError", "ValueError"]
            assert caller.__traceback__ is not None
