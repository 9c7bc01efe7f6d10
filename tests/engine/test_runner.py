"""run_stream / StreamRunner: order, isolation of bad rows, accounting, numpy fast path."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from packflow import InferenceBackend
from packflow.engine.runner import run_stream
from packflow.sample_data import NUMERIC_FEATURES, sample_lines
from tests.support.testkit import Doubler, RowSum


def lines(rows):
    return [json.dumps(r).encode() for r in rows]


def run(backend, source, batch_size=3):
    out, err = io.BytesIO(), io.BytesIO()
    summary = run_stream(backend, source, out, errors=err, batch_size=batch_size)
    outs = [json.loads(x) for x in out.getvalue().splitlines()]
    errs = [json.loads(x) for x in err.getvalue().splitlines()]
    return summary, outs, errs


def test_one_output_per_line_in_order():
    rows = [{"id": i, "x": i} for i in range(10)]
    summary, outs, errs = run(Doubler(), lines(rows))
    assert outs == [{"id": i, "double": 2 * i} for i in range(10)]
    assert errs == []
    assert (summary.read, summary.written, summary.errors) == (10, 10, 0)
    assert summary.batches == 4


def test_malformed_lines_and_a_failing_row_are_isolated():
    src = [
        b'{"id": 0, "x": 1}',
        b'{"id": 1, "x": ',
        b"[1, 2]",
        b'{"id": 3, "x": 2, "fail": true}',
        b'{"id": 4, "x": 3}\n',
        b"\xff\xfe not utf8",
        b'{"id": 6, "x": 4}',
    ]
    summary, outs, errs = run(Doubler(), src, batch_size=4)
    assert [o["id"] for o in outs] == [0, 4, 6]
    assert [(e["line"], e["step"], e["error_type"]) for e in errs] == [
        (2, "parse", None),
        (3, "parse", None),
        (4, "execute", "ValueError"),
        (6, "parse", None),
    ]
    failing = next(e for e in errs if e["line"] == 4)
    assert "cannot score 3" in failing["error"]
    assert failing["raw"] == '{"id": 3, "x": 2, "fail": true}'
    assert summary.read == summary.written + summary.errors == 7


def test_errors_in_input_order_and_the_first_in_the_summary():
    # In one batch, line 1 fails in execute (found on the retry) and line 2 at
    # parse (found first): the errors still come in line order.
    src = [b'{"id": 0, "x": 1, "fail": true}', b"nope", b'{"id": 2, "x": 1}', b"[1]"]
    summary, outs, errs = run(Doubler(), src, batch_size=10)
    assert [(e["line"], e["step"]) for e in errs] == [(1, "execute"), (2, "parse"), (4, "parse")]
    assert summary.first_error == {
        "line": 1,
        "step": "execute",
        "error": errs[0]["error"],
        "error_type": "ValueError",
    }
    assert summary.to_dict()["first_error"]["line"] == 1
    assert run(Doubler(), src[2:3])[0].first_error is None


def test_outputs_that_fail_validation_are_errors():
    class BadRow(InferenceBackend):
        def execute(self, inputs):
            return [{"v": {1, 2}} if r.get("bad") else {"v": r["x"]} for r in inputs]

    summary, outs, errs = run(BadRow(), lines([{"x": 1}, {"x": 2, "bad": 1}, {"x": 3}]))
    assert outs == [{"v": 1}, {"v": 3}]
    assert len(errs) == 1 and errs[0]["line"] == 2
    assert errs[0]["step"] in {"validate", "serialize"}


def test_wrong_number_of_outputs_fails_every_row_alone_only_if_it_fails_alone():
    class DropsOne(InferenceBackend):
        def execute(self, inputs):
            return [{"n": len(inputs)} for _ in inputs[: max(1, len(inputs) - 1)]]

    summary, outs, errs = run(DropsOne(), lines([{"a": 1}] * 4), batch_size=4)
    # a batch of 4 returns 3 rows: retried one by one, each alone returns 1 row
    assert outs == [{"n": 1}] * 4
    assert errs == []


def test_empty_and_blank_input():
    summary, outs, errs = run(Doubler(), [])
    assert (summary.read, summary.written, summary.errors) == (0, 0, 0)
    summary, outs, errs = run(Doubler(), [b"", b"   ", b"\n"])
    assert summary.read == 0 and outs == [] and errs == []


def test_numpy_fast_path_matches_the_records_path():
    src = list(sample_lines(257, seed=3))
    fast = RowSum(input_format="numpy", feature_names=NUMERIC_FEATURES)
    _, outs, errs = run(fast, src, batch_size=100)
    events = [json.loads(x) for x in src]
    expected = [
        {"sum": float(np.array([[_get(e, f) for f in NUMERIC_FEATURES]]).sum())} for e in events
    ]
    assert errs == []
    assert len(outs) == 257
    for got, want in zip(outs, expected):
        assert got["sum"] == pytest.approx(want["sum"])
    # the last batch's stats show preprocess was recorded (as the parse time)
    assert fast.get_stats()["preprocess"]["count"] == 3


def test_numpy_path_falls_back_for_non_numeric_cells():
    src = [b'{"a": 1, "b": 2}', b'{"a": "x", "b": 2}', b'{"a": 3}']

    class Echo(InferenceBackend):
        def execute(self, inputs):
            return [{"row": [None if v is None else v for v in row]} for row in inputs.tolist()]

    _, outs, errs = run(Echo(input_format="numpy", feature_names=["a", "b"]), src)
    assert errs == []
    assert outs == [{"row": [1, 2]}, {"row": ["x", 2]}, {"row": [3, None]}]


def test_malformed_lines_with_numpy_path():
    src = list(sample_lines(50, malformed_every=7))
    backend = RowSum(input_format="numpy", feature_names=NUMERIC_FEATURES)
    summary, outs, errs = run(backend, src, batch_size=16)
    assert summary.errors == 7 and len(errs) == 7
    assert all(e["step"] == "parse" for e in errs)
    assert [e["line"] for e in errs] == [7, 14, 21, 28, 35, 42, 49]
    assert summary.written == 43 == len(outs)


def test_should_stop_ends_after_the_batch_in_flight():
    calls = []
    summary = run_stream(
        Doubler(),
        lines([{"id": i, "x": i} for i in range(100)]),
        io.BytesIO(),
        batch_size=10,
        should_stop=lambda: len(calls) >= 2,
        on_batch=lambda s: calls.append(s.read),
    )
    assert summary.read == 20 and summary.interrupted_by == "stop request"


def test_bad_arguments():
    with pytest.raises(ValueError):
        run_stream(Doubler(), [], io.BytesIO(), batch_size=0)
    with pytest.raises(TypeError):
        run_stream(Doubler(), ["not bytes"], io.BytesIO())


def test_summary_reports_steps():
    summary, _, _ = run(Doubler(), lines([{"id": 1, "x": 1}]))
    assert set(summary.steps) >= {"preprocess", "execute"}
    assert "rows read 1" in summary.format()
    assert summary.to_dict()["written"] == 1


def _get(event, path):
    cur = event
    for part in path.split("."):
        cur = cur[part]
    return cur


def test_keyboard_interrupt_in_execute_propagates_from_run_stream():
    class Interrupted(InferenceBackend):
        def execute(self, inputs):
            raise KeyboardInterrupt

    out, err = io.BytesIO(), io.BytesIO()
    with pytest.raises(KeyboardInterrupt):
        run_stream(Interrupted(), lines([{"id": 1}]), out, errors=err)
    assert out.getvalue() == err.getvalue() == b""


def test_rows_count_as_written_only_after_their_write_succeeds():
    class ClosesAfterOne(io.BytesIO):
        writes = 0

        def write(self, data):
            ClosesAfterOne.writes += 1
            if ClosesAfterOne.writes > 1:
                raise BrokenPipeError
            return super().write(data)

    from packflow.engine.runner import StreamRunner

    runner = StreamRunner(Doubler(), ClosesAfterOne())
    runner.process(b'{"id": 1, "x": 1}\n{"id": 2, "x": 1}\n', 1)
    with pytest.raises(BrokenPipeError):
        runner.process(b'{"id": 3, "x": 1}\n', 3)
    summary = runner.finish(flush=False)
    assert (summary.read, summary.written, summary.last_line) == (2, 2, 0)


def test_the_accounting_check_catches_a_batch_that_does_not_add_up():
    from packflow.engine import BatchResult, ErrorRow
    from packflow.engine.runner import StreamRunner

    runner = StreamRunner(Doubler(), io.BytesIO(), io.BytesIO())
    runner.write(BatchResult(b'{"a":1}\n', [ErrorRow(2, b"x", "parse", "bad")], 2, 1, [1]))
    runner.reject(ErrorRow(3, b"y" * 10, "read", "too long"))
    summary = runner.finish()
    assert (summary.read, summary.written, summary.errors) == (3, 1, 2)
    # Three lines read, one written, one error row: a line went missing.
    runner = StreamRunner(Doubler(), io.BytesIO(), io.BytesIO())
    runner.write(BatchResult(b'{"a":1}\n', [ErrorRow(2, b"x", "parse", "bad")], 3, 1, [1]))
    with pytest.raises(RuntimeError, match="accounting error: read 3 != written 1 \\+ errors 1"):
        runner.finish()


def test_the_old_module_path_still_imports_the_runner():
    # packflow.runner was the runner's home before it moved into the engine;
    # scripts that import run_stream from there keep working.
    import packflow.engine.runner as engine_runner
    import packflow.runner as old

    for name in ("run_stream", "RunSummary", "StreamRunner", "BatchTimeout"):
        assert getattr(old, name) is getattr(engine_runner, name)
    assert old.run_stream.__module__ == "packflow.engine.runner"


def test_one_loop_writes_in_process_and_handed_back_results_alike():
    from packflow.engine import BatchEngine, LineReader
    from packflow.engine.runner import StreamRunner

    data = b"".join(
        b"not json\n" if i % 7 == 3 else json.dumps({"id": i, "x": i}).encode() + b"\n"
        for i in range(40)
    )
    engine = BatchEngine(Doubler())
    taken = []

    def through(items):
        # What a worker pool does: run each batch elsewhere, hand back its result.
        for batch in items:
            taken.append(batch.first_line)
            yield batch, engine.process(batch.data, batch.first_line)

    runs = []
    for via in (None, through):
        out, err = io.BytesIO(), io.BytesIO()
        runner = StreamRunner(Doubler(), out, err)
        reader = LineReader(io.BytesIO(data), batch_size=6)
        stopped = runner.run(reader, through=via, should_stop=lambda r=runner: r.summary.read >= 12)
        runs.append((out.getvalue(), err.getvalue(), runner.finish(), stopped))
    (out1, err1, s1, stopped1), (out2, err2, s2, stopped2) = runs
    assert stopped1 and stopped2
    assert (out1, err1) == (out2, err2) and out1.count(b"\n") + err1.count(b"\n") == 12
    assert (s1.read, s1.written, s1.errors, s1.last_line) == (12, 10, 2, 12)
    assert (s2.read, s2.written, s2.errors, s2.last_line) == (12, 10, 2, 12)
    # Once asked to stop, nothing more was taken from the reader.
    assert taken == [1, 7]
