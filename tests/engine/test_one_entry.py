"""The engine's path crosses into Rust once per batch (``Pipeline.run_lines``),
and the numpy preprocessor's text reader, when it meets a cell that is not a
plain number, hands the rest of the batch to the dict parser without reading
any line twice, giving the array the dict path gives (checked here against a
plain-Python model: ``json.loads`` and ``numpy.array`` of the looked-up cells).
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from packflow import InferenceBackend, _core
from packflow.engine import BatchEngine
from packflow.exceptions import InferenceBackendRuntimeError
from tests.support.record_semantics import model_get_nested_field


def core_calls(fn):
    """Run ``fn()`` and list the ``packflow._core`` functions and methods it
    called from Python (the profiler sees every call into C)."""
    seen: list[str] = []

    def profile(frame, event, arg):
        if event == "c_call":
            owner = getattr(arg, "__self__", None)
            module = getattr(arg, "__module__", None) or type(owner).__module__
            if module == "packflow._core":
                seen.append(arg.__name__)

    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return seen


class Keeps(InferenceBackend):
    """Keeps the array it was given; one score per row."""

    def execute(self, inputs):
        self.seen = inputs
        return [{"row": i} for i in range(len(inputs))]


class RowSum(InferenceBackend):
    def execute(self, inputs):
        if isinstance(inputs, list):  # records
            return [{"sum": float(sum(r.values()))} for r in inputs]
        return [{"sum": float(s)} for s in inputs.sum(axis=1)]


BATCH = b'{"a": 1, "b": {"c": 2}}\n\nnot json\n{"a": 2.5, "b": {"c": -1}}\n'


def test_a_clean_batch_is_one_rust_call():
    for backend in (
        RowSum(input_format="numpy", feature_names=["a", "b.c"]),
        RowSum(input_format="records", feature_names=["a"]),
    ):
        engine = BatchEngine(backend)
        assert core_calls(lambda e=engine: e.process(BATCH)) == ["run_lines"]
        assert engine.process(BATCH).written == 2


def test_the_counter_sees_rust_calls():
    # The probe itself can fail: a second Rust call is seen.
    def twice():
        _core.monotonic_ns()
        _core.dumps({"a": 1})

    assert core_calls(twice) == ["monotonic_ns", "dumps"]


def test_a_failing_batch_runs_halves_not_rows():
    class Refuses(InferenceBackend):
        def execute(self, inputs):
            if any(r["bad"] for r in inputs):
                raise ValueError("refused")
            return [{"ok": True} for _ in inputs]

    rows = [{"bad": i == 37} for i in range(64)]
    data = b"".join(json.dumps(r).encode() + b"\n" for r in rows)
    engine = BatchEngine(Refuses())
    calls = core_calls(lambda: engine.process(data))
    # 1 for the batch, then two halves per level down to the bad row: 2 * 6.
    assert calls.count("run_lines") == 1 + 2 * 6
    result = engine.process(data)
    assert [e.line for e in result.errors] == [38]
    assert result.written == 63


def test_verbose_logging_needs_no_backend_reference():
    import gc
    import weakref

    backend = RowSum(input_format="numpy", feature_names=["a"], verbose=True)
    ref = weakref.ref(backend)
    BatchEngine(backend).process(b'{"a": 1}\n')
    del backend
    gc.collect()
    assert ref() is None


# --- the text reader's hand-over to dicts ------------------------------------

number = st.one_of(
    st.integers(-(2**70), 2**70), st.floats(allow_nan=False, allow_infinity=False), st.booleans()
)
# Mostly numbers, so a batch often starts with lines the text reader takes.
cell = st.one_of(
    number,
    number,
    number,
    st.none(),
    st.text(max_size=3),
    st.lists(st.integers(0, 3), max_size=2),
)
FEATURES = ["a", "b.c", "b.d"]


@st.composite
def lines(draw):
    kind = draw(st.sampled_from(["full", "full", "full", "missing", "bad", "blank", "nested"]))
    if kind == "bad":
        return draw(st.sampled_from([b"not json", b"[1, 2]", b'{"a": ', b"\xff\xfe"]))
    if kind == "blank":
        return b"  "
    record = {"a": draw(cell), "b": {"c": draw(cell), "d": draw(cell)}, "z": draw(cell)}
    if kind == "missing":
        del record["b"][draw(st.sampled_from(["c", "d"]))]
    if kind == "nested":
        record["b"] = draw(st.sampled_from([7, "x", None, [1]]))
    return json.dumps(record).encode()


def model_array(data: bytes):
    """The plain-Python dict path: ``json.loads`` of every good line, each
    feature looked up, ``numpy.array`` of the rows; or the lookup's error."""
    rows = []
    for raw in data.split(b"\n"):
        try:
            record = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(record, dict):
            continue
        try:
            rows.append([model_get_nested_field(record, f, ".") for f in FEATURES])
        except Exception as exc:  # noqa: BLE001 - the model's verdict
            return exc
    try:
        return np.array(rows)
    except Exception as exc:  # noqa: BLE001
        return exc


@settings(max_examples=400, deadline=None)
@given(st.lists(lines(), min_size=1, max_size=12))
def test_the_array_equals_the_dict_paths(batch):
    data = b"\n".join(batch) + b"\n"
    backend = Keeps(input_format="numpy", feature_names=FEATURES)
    assert backend._pipeline.reads_arrays
    out = backend._pipeline.run_lines(backend, data)
    expected = model_array(data)
    if isinstance(expected, Exception):
        if not len(out.line_numbers):
            return
        # The lookup fails on a dict: the preprocess step fails, as with dicts.
        assert out.failed_step == "preprocess", out
        return
    if out.failure is not None:
        # numpy refused the rows (ragged lists): so did the model, above.
        raise AssertionError(f"{out.failure!r} where numpy gave {expected!r}")
    if not len(out.line_numbers):
        return
    got = backend.seen
    assert got.dtype == expected.dtype and got.shape == expected.shape
    # Same values of the same types (1 and 1.0 compare equal, and NaN never).
    assert repr(got.tolist()) == repr(expected.tolist())
    # ... and the same as the stock dict path (the preprocessor called on dicts).
    records = _core.parse_lines(data).records
    assert repr(backend._preprocessor(records).tolist()) == repr(got.tolist())


def test_a_failing_array_batch_is_searched_from_the_cells_already_read():
    class Doubles(InferenceBackend):
        """Changes the array it gets in place, then refuses rows over 100."""

        def transform_inputs(self, inputs):
            inputs *= 2
            return inputs

        def execute(self, inputs):
            if (inputs > 100).any():
                raise ValueError("too big")
            return [{"v": row.tolist()} for row in inputs]

    values = [1, 2, 3, 70, 5, 6, 7, 8]
    data = b"".join(json.dumps({"a": v, "b": i}).encode() + b"\n" for i, v in enumerate(values))
    backend = Doubles(input_format="numpy", feature_names=["a", "b"])
    engine = BatchEngine(backend)
    calls = core_calls(lambda: engine.process(data))
    # The text is read once; every attempt after that builds its array from
    # the kept cells: untouched by the hook's change to the first array.
    assert calls.count("run_lines") == 1
    assert calls.count("rerun") == 2 * 3
    result = engine.process(data)
    assert [(e.line, e.step, e.error_type) for e in result.errors] == [(4, "execute", "ValueError")]
    expected = [{"v": [2 * v, 2 * i]} for i, v in enumerate(values) if v != 70]
    assert [json.loads(line) for line in result.output.splitlines()] == expected
    assert result.line_numbers == [1, 2, 3, 5, 6, 7, 8]


def test_rerun_refuses_rows_outside_the_batch():
    backend = Keeps(input_format="numpy", feature_names=["a"])

    class Fails(Keeps):
        def execute(self, inputs):
            raise ValueError("no")

    failing = Fails(input_format="numpy", feature_names=["a"])
    out = failing._pipeline.run_lines(failing, b'{"a": 1}\n{"a": 2}\n')
    assert out.can_rerun and out.failed_step == "execute"
    with pytest.raises(ValueError, match="not rows of this batch"):
        failing._pipeline.rerun(failing, out, 1, 3)
    clean = backend._pipeline.run_lines(backend, b'{"a": 1}\n')
    assert clean.failure is None and not clean.can_rerun
    assert backend._pipeline.rerun(backend, clean, 0, 1) is None


# --- what the review of this path found ----------------------------------------


def test_failing_batches_leave_nothing_alive():
    import gc
    import weakref

    class Refuses(InferenceBackend):
        def execute(self, inputs):
            raise ValueError("refused")

    refs = []
    for fmt in ("numpy", "records"):
        for _ in range(20):
            backend = Refuses(input_format=fmt, feature_names=["a"])
            refs.append(weakref.ref(backend))
            result = BatchEngine(backend).process(b'{"a": 1}\n{"a": 2}\n{"a": 3}\n')
            assert len(result.errors) == 3
            del backend, result
    gc.collect()
    assert sum(r() is not None for r in refs) == 0
    assert not [o for o in gc.get_objects() if type(o) is ValueError and str(o) == "refused"]


def test_verbose_logs_what_the_backend_says_at_call_time(caplog):
    import logging

    class Custom(InferenceBackend):
        def execute(self, inputs):
            return [{"ok": 1} for _ in inputs]

        def get_metrics(self):
            return "CUSTOM-METRICS"

    backend = Custom(verbose=True)
    mine = logging.getLogger("mine")
    backend.logger = mine
    with caplog.at_level(logging.DEBUG):
        backend([{"a": 1}])
        BatchEngine(backend).process(b'{"a": 1}\n')
    logged = [(r.name, r.getMessage()) for r in caplog.records if "CUSTOM" in r.getMessage()]
    assert logged == [("mine", "'CUSTOM-METRICS'")] * 2


def test_a_verbose_log_that_fails_fails_the_rows_not_the_engine():
    class Broken(InferenceBackend):
        def execute(self, inputs):
            return [{"ok": 1} for _ in inputs]

        def get_metrics(self):
            raise ZeroDivisionError("metrics")

    backend = Broken(verbose=True)
    result = BatchEngine(backend).process(b'{"a": 1}\n')
    assert [(e.step, e.error_type) for e in result.errors] == [("run", "ZeroDivisionError")]
    with pytest.raises(ZeroDivisionError):
        backend([{"a": 1}])


def test_a_preprocess_that_fails_is_not_timed():
    backend = Keeps(input_format="numpy", feature_names=["a"])
    # Ragged rows: numpy cannot build the array, so preprocessing fails.
    out = backend._pipeline.run_lines(backend, b'{"a": 1}\n{"a": [1, 2]}\n')
    assert out.failed_step == "preprocess"
    assert "preprocess" not in backend.get_stats()
    assert backend.get_metrics().execution_times.preprocess is None
    # ... as when the same rows are given as dicts.
    same = Keeps(input_format="numpy", feature_names=["a"])
    with pytest.raises(InferenceBackendRuntimeError):
        same([{"a": 1}, {"a": [1, 2]}])
    assert repr(same.get_metrics()) == repr(backend.get_metrics())


def test_rerun_takes_only_its_own_pipelines_outcomes():
    class Fails(Keeps):
        def execute(self, inputs):
            raise ValueError("no")

    one = Fails(input_format="numpy", feature_names=["a"])
    other = Fails(input_format="numpy", feature_names=["a"])
    out = one._pipeline.run_lines(one, b'{"a": 1}\n{"a": 2}\n')
    with pytest.raises(ValueError, match="another pipeline"):
        other._pipeline.rerun(other, out, 0, 1)
    no_columns = Fails(input_format="numpy", feature_names=["a"])
    no_columns._pipeline = _core.Pipeline(None, _core.NumpyPlan([], "."))
    empty = no_columns._pipeline.run_lines(no_columns, b"{}\n{}\n")
    assert empty.can_rerun
    with pytest.raises(ValueError, match="not rows of this batch"):
        no_columns._pipeline.rerun(no_columns, empty, 0, 3)
    assert repr(empty).endswith("failed_step='execute')")


def test_a_batch_handed_over_to_dicts_is_cut_around_its_suspect():
    class Sums(InferenceBackend):
        def execute(self, inputs):
            sums = inputs.astype(float).sum(axis=1)
            if (sums > 100).any():
                raise ValueError("too much")
            return [{"sum": float(s)} for s in sums]

    rows = [{"a": i, "b": 1} for i in range(40)]
    rows[25]["a"] = "many"  # a string cell: the numpy array cannot be summed as floats
    data = b"".join(json.dumps(r).encode() + b"\n" for r in rows)
    backend = Sums(input_format="numpy", feature_names=["a", "b"])
    out = backend._pipeline.run_lines(backend, data)
    assert out.suspect == 25 and out.failed_step == "execute"
    # The search cuts around the suspect: the rows before it, the row alone,
    # the rows after it; where halving takes 2 * log2(40) more.
    engine = BatchEngine(backend)
    engine._suspects_fail = False
    assert core_calls(lambda: engine.process(data)) == ["run_lines"] * 4
    # And the failed batch taught the engine to run a suspect alone first:
    # the batch that would fail is never run. The reader stops at the
    # suspect, which fails alone; the rows before it run from the cells read,
    # the rest is read on: 4 Rust calls, 2 backend calls.
    assert engine._suspects_fail
    assert core_calls(lambda: engine.process(data)) == [
        "run_lines",  # read up to the suspect; nothing run
        "run_lines",  # the suspect alone: it fails
        "rerun",  # rows 1-25 from their cells
        "run_lines",  # rows 27-40
    ]
    result = engine.process(data)
    assert [(e.line, e.step) for e in result.errors] == [(26, "execute")]
    assert result.written == 39
    assert result.line_numbers == [n for n in range(1, 41) if n != 26]
    # A suspect that is not at fault: the search goes on in the other parts.
    rows = [{"a": i, "b": 1} for i in range(8)]
    rows[3]["a"] = "7"  # a string, but one the model can read
    rows[6]["a"] = 500  # the row the model refuses
    result = engine.process(b"".join(json.dumps(r).encode() + b"\n" for r in rows))
    assert [(e.line, e.step) for e in result.errors] == [(7, "execute")]
    sums = [json.loads(line)["sum"] for line in result.output.splitlines()]
    assert sums == [1.0, 2.0, 3.0, 8.0, 5.0, 6.0, 8.0]


class Sums(InferenceBackend):
    """A numpy backend that reads its cells as floats (so a numeric string
    is fine and any other string is not) and refuses a batch with a sum over
    100."""

    def initialize(self):
        self.calls = 0

    def execute(self, inputs):
        self.calls += 1
        sums = inputs.astype(float).sum(axis=1)
        if (sums > 100).any():
            raise ValueError("too much")
        return [{"sum": float(s)} for s in sums]


def test_a_suspect_that_runs_fine_alone_has_its_batch_run_whole():
    # A numeric string is not a plain number to the text reader, but the
    # model reads it: its batch (an array of strings) runs whole, as it would
    # have without the suspect tried first, and the engine stops trying.
    rows = [{"a": i, "b": 1} for i in range(10)]
    rows[4]["a"] = "4"
    data = jsonl_bytes(rows)
    backend = Sums(input_format="numpy", feature_names=["a", "b"])
    engine = BatchEngine(backend)
    result = engine.process(data)
    assert [json.loads(x)["sum"] for x in result.output.splitlines()] == [
        float(i + 1) for i in range(10)
    ]
    assert not result.errors and backend.calls == 2  # the suspect alone, the batch
    assert not engine._suspects_fail
    # From now on such a batch is one call, as before suspects were tried.
    assert core_calls(lambda: engine.process(data)) == ["run_lines"]
    assert backend.calls == 3
    # Until a batch with a suspect fails again.
    rows[7]["a"] = "seven"
    assert [e.line for e in engine.process(jsonl_bytes(rows)).errors] == [8]
    assert engine._suspects_fail


def jsonl_bytes(rows: list) -> bytes:
    return b"".join(r if isinstance(r, bytes) else json.dumps(r).encode() + b"\n" for r in rows)


def oracle(lines: list[bytes], first_line: int):
    """What Packflow 0.4.1's contract gives, in plain Python: the batch's
    records run whole; when that fails, every record alone."""
    records, numbers, errors, read = [], [], [], 0
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        read += 1
        try:
            record = json.loads(line)
        except ValueError:
            errors.append((first_line + i, "parse"))
            continue
        if not isinstance(record, dict):
            errors.append((first_line + i, "parse"))
            continue
        records.append(record)
        numbers.append(first_line + i)
    backend = Sums(input_format="numpy", feature_names=["a", "b"])

    def written(outputs: list) -> list:
        for row in outputs:
            json.dumps(row, allow_nan=False)  # a NaN sum is not JSON: ValueError
        return outputs

    try:
        return written(backend(records) if records else []), numbers, sorted(errors), read
    except (InferenceBackendRuntimeError, ValueError):
        pass
    outputs: list = []
    kept = []
    for n, record in zip(numbers, records):
        try:
            outputs.extend(written(backend([record])))
            kept.append(n)
        except InferenceBackendRuntimeError as exc:
            errors.append((n, exc.step))
        except ValueError:
            errors.append((n, "serialize"))
    return outputs, kept, sorted(errors), read


cell_st = st.one_of(
    st.integers(0, 30),
    st.floats(0, 30, allow_nan=False),
    st.sampled_from(["many", "7", None, {"x": 1}, [1, 2], True, 200]),
)
line_st = st.one_of(
    st.builds(lambda a, b: json.dumps({"a": a, "b": b}).encode(), cell_st, st.integers(0, 9)),
    st.just(b'{"b": 1}'),  # a missing feature
    st.sampled_from([b"", b"  ", b"[1]", b'{"a": "x", "b": }', b"\xff", b'{"a": 1, "b": 2']),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(line_st, max_size=40), st.integers(1, 1000), st.booleans())
def test_the_search_around_suspects_matches_running_the_batch_then_every_row(
    lines, first_line, trust
):
    expected, kept, errors, read = oracle(lines, first_line)
    backend = Sums(input_format="numpy", feature_names=["a", "b"])
    engine = BatchEngine(backend)
    engine._suspects_fail = trust
    data = b"\n".join(lines)
    # Twice: the engine may have learnt from the first run to try suspects
    # first or not; the result is the same.
    for _ in range(2):
        result = engine.process(data, first_line)
        assert [json.loads(x) for x in result.output.splitlines()] == expected
        assert result.line_numbers == kept
        assert [(e.line, e.step) for e in result.errors] == errors
        assert result.read == read == result.written + len(result.errors)


def test_run_lines_can_stop_at_a_suspect_and_run_nothing():
    backend = Sums(input_format="numpy", feature_names=["a", "b"])
    pipeline = backend._pipeline
    data = b'{"a": 1, "b": 2}\n\nnot json\n{"a": 3, "b": 4}\n{"a": "x", "b": 5}\n{"a": 6, "b": 7}\n'
    out = pipeline.run_lines(backend, data, 10, stop_at_suspect=True)
    # The rows before the suspect line (14) are read, it and the rest are not.
    assert out.stopped_line == 14 and out.suspect is None
    assert out.line_numbers == [10, 13]
    assert [(n, raw) for n, raw, _ in out.errors] == [(12, b"not json")]
    assert out.read == 3 and out.written == 0 and out.output == b""
    assert out.failure is None and backend.calls == 0
    # Their cells are kept: they run without reading the text again.
    assert out.can_rerun
    again = pipeline.rerun(backend, out, 0, 2)
    assert again.output == b'{"sum":3.0}\n{"sum":7.0}\n' and again.line_numbers == [10, 13]
    # Without a suspect, or without being asked, the batch runs as ever.
    plain = pipeline.run_lines(backend, data[:17], 10, stop_at_suspect=True)
    assert plain.stopped_line is None and plain.output == b'{"sum":3.0}\n'
    whole = pipeline.run_lines(backend, data, 10)
    assert whole.stopped_line is None and whole.suspect == 2 and whole.failed_step == "execute"
