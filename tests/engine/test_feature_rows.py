"""Rows handed to the engine as feature cells (``_core.FeatureRows``,
``BatchEngine.process_rows``) give what the same numbers give as JSON Lines
(``BatchEngine.process``): the same array (dtype included), outputs, error
rows and step timings; and the array is the one packflow 0.4.1's numpy
preprocessor builds from the same records."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from packflow import InferenceBackend, _core
from packflow.engine import BatchEngine
from tests.support.reference import run_reference_script

FEATURES = ["a", "b.c", "d"]


class Echo(InferenceBackend):
    """Each row's values and the batch's dtype; fails on a row whose first
    value is 13 (the engine must find it)."""

    def execute(self, inputs):
        if isinstance(inputs, np.ndarray) and (inputs[:, 0] == 13).any():
            raise ValueError("13 is unlucky")
        return [{"row": row.tolist(), "dtype": inputs.dtype.str} for row in inputs]


def echo(**kwargs) -> Echo:
    return Echo(input_format="numpy", feature_names=FEATURES, **kwargs)


def as_lines(rows: list[list]) -> bytes:
    """The rows as the JSON Lines a numpy backend reads them from."""
    out = []
    for a, c, d in rows:
        out.append(json.dumps({"a": a, "b": {"c": c}, "d": d}))
    return ("\n".join(out) + "\n").encode()


cell = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([13, 13.0, 0, -0.0, 1, True]),
)
rows_of_three = st.lists(st.lists(cell, min_size=3, max_size=3), min_size=1, max_size=40)


def outcome(result):
    return (
        result.output,
        result.read,
        result.written,
        list(result.line_numbers),
        [(e.line, e.step, e.error, e.error_type) for e in result.errors],
    )


@settings(max_examples=300, deadline=None)
@given(rows=rows_of_three, first_line=st.integers(min_value=1, max_value=10**6))
def test_rows_give_what_their_lines_give(rows, first_line):
    engine = BatchEngine(echo())
    got = engine.process_rows(_core.FeatureRows.from_rows(rows), first_line)
    want = engine.process(as_lines(rows), first_line)
    assert outcome(got) == outcome(want)


def test_a_failing_row_is_found_and_named_by_its_line():
    rows = [[1, 2, 3], [13, 0.5, True], [4, 5, 6], [13, 1, 1]]
    engine = BatchEngine(echo())
    got = engine.process_rows(_core.FeatureRows.from_rows(rows), 10)
    assert [e.line for e in got.errors] == [11, 13]
    assert {e.step for e in got.errors} == {"execute"}
    assert {e.error_type for e in got.errors} == {"ValueError"}
    assert got.errors[0].raw == b"[13,0.5,true]"
    assert got.line_numbers == [10, 12]
    # Alone, each good row is an int batch; together with the float they were
    # float: the search runs the good rows as the lines path does.
    assert outcome(got) == outcome(engine.process(as_lines(rows), 10))


def test_the_preprocess_step_is_timed_once_per_batch():
    backend = echo()
    BatchEngine(backend).process_rows(_core.FeatureRows.from_rows([[1, 2, 3]] * 5))
    stats = backend.get_stats()
    assert stats["preprocess"]["count"] == 1
    assert stats["execute"]["count"] == 1


def test_a_hook_that_changes_its_array_does_not_change_the_rows():
    class Zeroes(InferenceBackend):
        def transform_inputs(self, inputs):
            inputs[:] = 13  # in place: the next run of these rows must not see it
            return inputs

        def execute(self, inputs):
            raise ValueError("always")

    rows = _core.FeatureRows.from_rows([[1, 2, 3], [4, 5, 6]])
    result = BatchEngine(Zeroes(input_format="numpy", feature_names=FEATURES)).process_rows(rows)
    assert [e.raw for e in result.errors] == [b"[1,2,3]", b"[4,5,6]"]
    assert rows.to_rows() == [[1, 2, 3], [4, 5, 6]]


def test_only_the_stock_numpy_preprocessor_takes_rows():
    rows = _core.FeatureRows.from_rows([[1, 2, 3]])
    records = Echo(input_format="records")
    with pytest.raises(ValueError, match="stock numpy preprocessor"):
        BatchEngine(records).process_rows(rows)
    narrow = Echo(input_format="numpy", feature_names=["a", "b"])
    with pytest.raises(ValueError, match="3 values each; the backend reads 2 features"):
        BatchEngine(narrow).process_rows(rows)


def test_from_rows_takes_plain_numbers_and_says_where_others_are():
    rows = _core.FeatureRows.from_rows([[1, 2.5, True], [-(2**63), 0.0, False]])
    assert (rows.rows, rows.columns, len(rows)) == (2, 3, 2)
    assert rows.to_rows() == [[1, 2.5, True], [-(2**63), 0.0, False]]
    assert type(rows.to_rows()[0][2]) is bool
    with pytest.raises(TypeError, match="row 1, column 0: a str"):
        _core.FeatureRows.from_rows([[1], ["x"]])
    with pytest.raises(TypeError, match="row 0, column 1: a float64"):
        _core.FeatureRows.from_rows([[1, np.float64(2.0)]])
    with pytest.raises(ValueError, match="row 0, column 0: an int outside int64"):
        _core.FeatureRows.from_rows([[2**63]])
    with pytest.raises(ValueError, match="row 0, column 1"):
        _core.FeatureRows.from_rows([[1.0, float("nan")]])
    with pytest.raises(ValueError, match="row 1 has 1 values"):
        _core.FeatureRows.from_rows([[1, 2], [3]])
    with pytest.raises(ValueError, match="no rows"):
        _core.FeatureRows.from_rows([])
    with pytest.raises(ValueError, match="at least one"):
        _core.FeatureRows.from_rows([[]])
    with pytest.raises(TypeError, match="row 0 is not a list"):
        _core.FeatureRows.from_rows([(1, 2)])


def test_slice_join_and_row_json():
    rows = _core.FeatureRows.from_rows([[i, i + 0.5] for i in range(5)])
    part = rows.slice(1, 3)
    assert part.to_rows() == [[1, 1.5], [2, 2.5]]
    joined = _core.FeatureRows.join([part, rows.slice(4, 5), part])
    assert [r[0] for r in joined.to_rows()] == [1, 2, 4, 1, 2]
    assert rows.row_json(4) == b"[4,4.5]"
    assert _core.FeatureRows.from_rows([[1e20, -0.0, True]]).row_json(0) == b"[1e+20,-0.0,true]"
    for start, stop in ((3, 3), (4, 6), (5, 1)):
        with pytest.raises(ValueError, match="not a non-empty run"):
            rows.slice(start, stop)
    with pytest.raises(ValueError, match="cannot be joined"):
        _core.FeatureRows.join([rows, _core.FeatureRows.from_rows([[1]])])
    with pytest.raises(ValueError, match="nothing to join"):
        _core.FeatureRows.join([])
    with pytest.raises(ValueError, match="row 5 is not one"):
        rows.row_json(5)


_REFERENCE = """
import numpy as np
from packflow import InferenceBackend

class Echo(InferenceBackend):
    def execute(self, inputs):
        return [{"row": row.tolist(), "dtype": inputs.dtype.str} for row in inputs]

backend = Echo(input_format="numpy", feature_names=payload["features"])
result = [backend(records) for records in payload["batches"]]
"""


def test_the_array_is_the_references_for_the_same_records():
    batches = [
        [[1, 2, 3], [4, 5, 6]],
        [[1, 2.5, 3], [True, 0, -7]],
        [[True, False, True]],
        [[2**62, -(2**62), 0.1]],
        [[1e300, -1e-300, 5e-324]],
    ]
    records = [[json.loads(line) for line in as_lines(b).splitlines()] for b in batches]
    want = run_reference_script(_REFERENCE, {"features": FEATURES, "batches": records})
    engine = BatchEngine(Echo(input_format="numpy", feature_names=FEATURES))
    for batch, expected in zip(batches, want):
        got = engine.process_rows(_core.FeatureRows.from_rows(batch))
        assert [json.loads(line) for line in got.output.splitlines()] == expected


@settings(max_examples=200, deadline=None)
@given(rows=rows_of_three)
def test_from_columns_is_from_rows_turned(rows):
    columns = [list(c) for c in zip(*rows)]
    by_columns = _core.FeatureRows.from_columns(columns).to_rows()
    by_rows = _core.FeatureRows.from_rows(rows).to_rows()
    assert [[(type(v), repr(v)) for v in r] for r in by_columns] == [
        [(type(v), repr(v)) for v in r] for r in by_rows
    ]


def test_from_columns_says_where():
    with pytest.raises(ValueError, match="column 1 has 1 values; column 0 has 2"):
        _core.FeatureRows.from_columns([[1, 2], [3]])
    with pytest.raises(TypeError, match="row 1, column 1: a NoneType"):
        _core.FeatureRows.from_columns([[1, 2], [3, None]])
    with pytest.raises(ValueError, match="no columns"):
        _core.FeatureRows.from_columns([])
    with pytest.raises(ValueError, match="no rows"):
        _core.FeatureRows.from_columns([[], []])
    with pytest.raises(TypeError, match="column 0 is not a list"):
        _core.FeatureRows.from_columns([(1, 2)])
