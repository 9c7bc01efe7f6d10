"""``columns_to_records`` (src/columns_to_records.rs): columns of model outputs -> rows.
Not in the reference (a packflow addition): checked against a plain-Python
implementation of the same semantics."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import packflow.utils
from packflow import _core
from packflow.utils.data import columns_to_records

# Hostile inputs (tests/conftest.py): part of `make test-matrix` on every Python.
pytestmark = pytest.mark.hostile


def plain_columns_to_records(columns):
    """The semantics, in plain Python."""
    names = list(columns)
    cols = [c.tolist() if isinstance(c, np.ndarray) else c for c in columns.values()]
    return [dict(zip(names, vals)) for vals in zip(*cols)]


def same(a, b):
    """Equal, with NaN equal to NaN and the float/int/bool types compared too."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def test_public_names():
    assert packflow.utils.columns_to_records is columns_to_records
    assert "columns_to_records" in packflow.utils.__all__


def test_mixed_columns():
    cols = {
        "label": ["a", "b", "c"],
        "prob": np.array([0.5, 0.25, 1.0]),
        "alert": np.array([True, False, True]),
        "ids": (1, 2, 3),
        "scores": np.arange(6, dtype=np.int32).reshape(3, 2),
    }
    assert columns_to_records(cols) == [
        {"label": "a", "prob": 0.5, "alert": True, "ids": 1, "scores": [0, 1]},
        {"label": "b", "prob": 0.25, "alert": False, "ids": 2, "scores": [2, 3]},
        {"label": "c", "prob": 1.0, "alert": True, "ids": 3, "scores": [4, 5]},
    ]


def test_values_are_native_like_tolist():
    rows = columns_to_records(
        {
            "f32": np.array([0.1], dtype=np.float32),
            "f16": np.array([0.1], dtype=np.float16),
            "u64": np.array([2**64 - 1], dtype=np.uint64),
            "i8": np.array([-3], dtype=np.int8),
            "b": np.array([True]),
        }
    )
    row = rows[0]
    assert row == {
        "f32": float(np.float32(0.1)),
        "f16": float(np.float16(0.1)),
        "u64": 2**64 - 1,
        "i8": -3,
        "b": True,
    }
    assert [type(v) for v in row.values()] == [float, float, int, int, bool]


def test_keys_are_the_same_objects_in_every_row():
    name = "".join(["sco", "re"])  # a non-interned str
    rows = columns_to_records({name: [1, 2, 3]})
    assert all(next(iter(r)) is name for r in rows)


def test_list_items_are_taken_as_they_are():
    item = {"nested": [1]}
    rows = columns_to_records({"x": [item, item]})
    assert rows[0]["x"] is item and rows[1]["x"] is item


def test_object_arrays_give_their_items():
    obj = object()
    arr = np.array([obj, "s", None], dtype=object)
    rows = columns_to_records({"o": arr})
    assert rows[0]["o"] is obj and rows[1]["o"] == "s" and rows[2]["o"] is None
    two = np.empty((2, 2), dtype=object)
    two[0] = [1, "a"]
    two[1] = [obj, None]
    assert columns_to_records({"o": two}) == [{"o": [1, "a"]}, {"o": [obj, None]}]


def test_empty_dict_and_zero_length_columns():
    assert columns_to_records({}) == []
    assert columns_to_records({"a": [], "b": np.array([]), "c": np.empty((0, 3))}) == []


def test_non_contiguous_big_endian_and_unaligned_arrays():
    base = np.arange(20, dtype=np.float64)
    strided = base[::2]
    big = np.arange(10, dtype=">i4")
    column_of_2d = np.arange(30, dtype=np.float32).reshape(10, 3)[:, 1]
    transposed = np.arange(20, dtype=np.int16).reshape(2, 10).T
    reversed_ = np.arange(10, dtype=np.uint8)[::-1]
    raw = np.zeros(8 * 10 + 1, dtype=np.uint8)
    unaligned = raw[1:].view(np.float64)
    unaligned[:] = np.linspace(0, 1, 10)
    cols = {
        "strided": strided,
        "big": big,
        "col": column_of_2d,
        "t": transposed,
        "rev": reversed_,
        "unaligned": unaligned,
    }
    assert same(columns_to_records(cols), plain_columns_to_records(cols))


def test_inputs_are_not_mutated():
    cols = {"a": [1, 2], "b": (3, 4), "c": np.array([0.5, 1.5]), "d": np.eye(2)}
    before = copy.deepcopy(cols)
    columns_to_records(cols)
    assert list(cols) == list(before)
    for k in cols:
        assert same(
            cols[k].tolist() if isinstance(cols[k], np.ndarray) else list(cols[k]),
            before[k].tolist() if isinstance(before[k], np.ndarray) else list(before[k]),
        )


def test_rows_are_fresh_dicts():
    rows = columns_to_records({"a": [1, 2]})
    rows[0]["a"] = 99
    assert rows[1] == {"a": 2}


def test_dict_subclass_and_list_subclass_are_accepted():
    class D(dict):
        pass

    class L(list):
        pass

    assert columns_to_records(D(a=L([1, 2]))) == [{"a": 1}, {"a": 2}]


def test_masked_array_goes_through_tolist():
    arr = np.ma.masked_array([1.0, 2.0], mask=[False, True])
    assert columns_to_records({"m": arr}) == [{"m": 1.0}, {"m": None}]


# -- errors -------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [[{"a": 1}], None, "abc", np.array([1]), [("a", [1])]])
def test_not_a_dict_is_a_type_error(bad):
    with pytest.raises(TypeError, match="expects a dict"):
        columns_to_records(bad)


@pytest.mark.parametrize("key", [1, None, b"a", ("a",), 1.5])
def test_non_str_name_is_a_type_error(key):
    with pytest.raises(TypeError, match="column names must be str"):
        columns_to_records({"ok": [1], key: [2]})


def test_length_mismatch_names_the_first_column_that_differs():
    cols = {"a": [1, 2, 3], "b": np.array([1, 2, 3]), "c": (1, 2), "d": [1]}
    with pytest.raises(ValueError, match=r'column "c" has 2 values, but column "a" has 3'):
        columns_to_records(cols)


def test_length_mismatch_of_a_2d_column_counts_rows():
    with pytest.raises(ValueError, match=r'column "m" has 2 values, but column "a" has 3'):
        columns_to_records({"a": [1, 2, 3], "m": np.zeros((2, 3))})


@pytest.mark.parametrize(
    "column, what",
    [
        ((x for x in range(3)), "of type generator"),
        ({1, 2, 3}, "of type set"),
        (frozenset({1}), "of type frozenset"),
        (5, "of type int"),
        ("abc", "of type str"),
        (b"abc", "of type bytes"),
        (None, "of type NoneType"),
        ({"x": 1}, "of type dict"),
        (range(3), "of type range"),
        (np.float64(1.0), "of type numpy.float64"),
        (np.array(3.0), "a 0-D numpy array"),
        (np.zeros((2, 2, 2)), "a 3-D numpy array"),
        (np.array(["a", "b"]), "a numpy array of dtype <U1"),
        (np.array([1 + 2j]), "a numpy array of dtype complex128"),
        (np.array(["2020-01-01"], dtype="datetime64[D]"), "a numpy array of dtype datetime64[D]"),
    ],
)
def test_unsupported_columns_are_type_errors_naming_the_column(column, what):
    with pytest.raises(TypeError, match=r'column "bad" is ' + what.replace("[", r"\[")):
        columns_to_records({"ok": [1, 2], "bad": column})


def test_nan_inf_and_big_ints_pass_through():
    rows = columns_to_records(
        {"f": np.array([np.nan, np.inf]), "i": [2**100, -(2**70)]},
    )
    assert math.isnan(rows[0]["f"]) and rows[1]["f"] == math.inf
    assert rows[0]["i"] == 2**100 and rows[1]["i"] == -(2**70)


def test_cyclic_items_are_kept_as_references():
    cyc: list = []
    cyc.append(cyc)
    rows = columns_to_records({"c": [cyc]})
    assert rows[0]["c"] is cyc


def test_huge_batch():
    n = 200_000
    rows = columns_to_records({"i": np.arange(n), "f": np.ones(n)})
    assert len(rows) == n and rows[-1] == {"i": n - 1, "f": 1.0}


def test_core_function_is_the_same():
    assert _core.columns_to_records({"a": (1,)}) == [{"a": 1}]


# -- property -------------------------------------------------------------------------

NUMERIC_DTYPES = st.sampled_from(
    ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]
    + ["float16", "float32", "float64", ">f8", ">i4", "<u2"]
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)


@st.composite
def column_dicts(draw):
    n = draw(st.integers(0, 12))
    names = draw(st.lists(st.text(max_size=6), unique=True, max_size=5))
    cols = {}
    for name in names:
        kind = draw(st.sampled_from(["list", "tuple", "1d", "2d", "strided"]))
        if kind in ("list", "tuple"):
            items = draw(st.lists(VALUES, min_size=n, max_size=n))
            cols[name] = items if kind == "list" else tuple(items)
        elif kind == "1d":
            cols[name] = draw(hnp.arrays(draw(NUMERIC_DTYPES), n))
        elif kind == "2d":
            width = draw(st.integers(0, 4))
            cols[name] = draw(hnp.arrays(draw(NUMERIC_DTYPES), (n, width)))
        else:
            cols[name] = draw(hnp.arrays(draw(NUMERIC_DTYPES), 2 * n))[::2]
    return cols


@settings(max_examples=300, deadline=None)
@given(column_dicts())
def test_matches_plain_python(cols):
    assert same(columns_to_records(cols), plain_columns_to_records(cols))


def test_str_subclass_names_become_plain_str_and_run_no_code_per_row():
    import numpy as np

    from packflow.utils import columns_to_records

    calls = []

    class Name(str):
        def __hash__(self):
            calls.append(1)
            return str.__hash__(self)

    columns = {Name("a"): np.arange(3), "b": [1, 2, 3]}
    calls.clear()  # building the dict above hashed the name once
    rows = columns_to_records(columns)
    assert rows == [{"a": 0, "b": 1}, {"a": 1, "b": 2}, {"a": 2, "b": 3}]
    assert all(type(k) is str for row in rows for k in row)
    assert calls == []
