"""records_to_ndarray (python/packflow/utils/data.py -> packflow._core)."""

from __future__ import annotations

import collections
import enum
import math
import pickle
import re
import types
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from packflow import _core
from packflow.sample_data import NUMERIC_FEATURES, flat_records, sample_events
from packflow.utils.data import records_to_ndarray
from tests.support.reference import call_ours, call_reference, run_reference_script

FLAT16 = [f"f{j}" for j in range(16)]


# --- a plain-Python model of the semantics --------------------------------------


def _flat_matches(obj, field, delimiter, prefix=None):
    """Values of ``obj`` flattened (keys joined with ``delimiter``, empty dicts
    kept, lists not enumerated) whose flattened key equals ``field``."""
    out = []
    for k, v in obj.items():
        key = k if prefix is None else f"{prefix}{delimiter}{k}"
        if isinstance(v, dict) and v:
            out.extend(_flat_matches(v, field, delimiter, key))
        elif key == field:
            out.append(v)
    return out


def plain_lookup(record, field, delimiter="."):
    if field in record:
        return record[field]
    current = record
    for part in field.split(delimiter):
        if not isinstance(current, dict) or part not in current:
            break
        current = current[part]
    else:
        if not (isinstance(current, dict) and current):
            return current
    found = _flat_matches(record, field, delimiter)
    if len(found) > 1:
        raise ValueError(f"duplicated key '{field}'")
    return found[0] if found else None


def plain_gather(records, features, delimiter="."):
    return [[plain_lookup(r, f, delimiter) for f in features] for r in records]


def outcome(fn):
    """("ok", array, warning categories) or ("err", type, message, categories)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            value = fn()
        except Exception as exc:  # noqa: BLE001 - compared, not swallowed
            return ("err", type(exc), str(exc), [w.category for w in caught])
    return ("ok", value, [w.category for w in caught])


def _same_scalar(a, b):
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, np.ndarray):
        return assert_same_array(a, b) is None
    return a == b


def assert_same_array(ours, want):
    assert isinstance(ours, np.ndarray)
    assert ours.dtype == want.dtype, (ours.dtype, want.dtype)
    assert ours.shape == want.shape, (ours.shape, want.shape)
    if want.dtype == object:
        for a, b in zip(ours.ravel().tolist(), want.ravel().tolist()):
            assert _same_scalar(a, b), (a, b)
    else:
        # Bit for bit: -0.0 and NaN included.
        assert ours.tobytes() == want.tobytes()
    assert ours.flags.c_contiguous and ours.flags.owndata


def assert_same_outcome(ours, want):
    assert ours[0] == want[0], (ours, want)
    if ours[0] == "ok":
        assert_same_array(ours[1], want[1])
    else:
        assert ours[1] is want[1], (ours, want)
    assert ours[-1] == want[-1]


# --- unit tests -----------------------------------------------------------------


def test_sample_events_nested_paths():
    events = sample_events(50)
    got = records_to_ndarray(events, NUMERIC_FEATURES)
    want = np.array(plain_gather(events, NUMERIC_FEATURES))
    assert_same_array(got, want)
    assert got.shape == (50, 9) and got.dtype == np.float64
    assert got[7, 1] == events[7]["src"]["port"]
    assert got[7, 2] == events[7]["src"]["geo"]["lat"]


def test_flat_records():
    recs = flat_records(30)
    got = records_to_ndarray(recs, FLAT16)
    assert_same_array(got, np.array([[r[f] for f in FLAT16] for r in recs]))


@pytest.mark.parametrize(
    ("rows", "dtype"),
    [
        ([[True, False], [False, True]], np.bool_),
        ([[True, 1], [0, False]], np.int64),
        ([[1, 2], [3, -(2**63)]], np.int64),
        ([[1, 2.5], [True, 3]], np.float64),
        ([[True, 0.5]], np.float64),
        ([[float("nan"), float("inf")], [-float("inf"), -0.0]], np.float64),
        ([[2**63 - 1, 1.0]], np.float64),
    ],
)
def test_inferred_dtype_matches_numpy(rows, dtype):
    recs = [{"a": r[0], "b": r[1]} for r in rows]
    got = records_to_ndarray(recs, ["a", "b"])
    want = np.array(rows)
    assert want.dtype == dtype
    assert_same_array(got, want)


def test_one_dtype_for_the_whole_array():
    # A float in the last row makes every column float64, as numpy does.
    recs = [{"a": 1, "b": True}] * 3 + [{"a": 1, "b": 0.5}]
    got = records_to_ndarray(recs, ["a", "b"])
    assert got.dtype == np.float64
    assert got.tolist() == [[1.0, 1.0]] * 3 + [[1.0, 0.5]]


def test_negative_zero_and_nan_survive():
    got = records_to_ndarray([{"a": -0.0, "b": float("nan")}], ["a", "b"])
    assert np.signbit(got[0, 0]) and math.isnan(got[0, 1])


@pytest.mark.parametrize(
    "dtype",
    [
        np.float64,
        "float64",
        "f8",
        float,
        np.float32,
        "float32",
        np.int64,
        "int64",
        int,
        np.int32,
        "int32",
        bool,
        np.bool_,
        "bool",
        object,
        "float16",
        ">f8",
        "<f8",
        "uint8",
        "U8",
        "complex128",
        np.dtype("float64"),
        np.dtype("int64"),
    ],
)
def test_requested_dtype_matches_numpy(dtype):
    cases = [
        [[1, 2], [3, 4]],
        [[True, False], [1, 0]],
        [[1.5, -0.0], [2, True]],
        [[float("nan"), 0.0], [7, 8]],
    ]
    for rows in cases:
        recs = [{"a": r[0], "b": r[1]} for r in rows]
        ours = outcome(lambda recs=recs: records_to_ndarray(recs, ["a", "b"], dtype=dtype))
        want = outcome(lambda rows=rows: np.array(rows, dtype=dtype))
        assert_same_outcome(ours, want)


def test_float32_rounds_ints_through_float64_like_numpy():
    v = 2**60 + 2**36 + 1
    got = records_to_ndarray([{"a": v}], ["a"], dtype=np.float32)
    assert_same_array(got, np.array([[v]], dtype=np.float32))
    assert got[0, 0] == np.float32(float(v))


def test_float32_overflow_warns_like_numpy():
    ours = outcome(lambda: records_to_ndarray([{"a": 1e300}], ["a"], dtype=np.float32))
    want = outcome(lambda: np.array([[1e300]], dtype=np.float32))
    assert_same_outcome(ours, want)
    assert ours[-1] == [RuntimeWarning]


@pytest.mark.parametrize(
    ("value", "dtype"),
    [
        (2**31, np.int32),
        (-(2**31) - 1, np.int32),
        (2**63, np.int64),
        (1.5, np.int64),
        (float("nan"), np.int64),
        (float("inf"), np.int32),
        ("x", np.float64),
        ("1.5", np.float64),
        (None, np.float64),
        (None, np.int64),
        ([1, 2], np.float64),
    ],
)
def test_values_the_dtype_rejects_or_coerces_behave_like_numpy(value, dtype):
    ours = outcome(lambda: records_to_ndarray([{"a": value, "b": 1}], ["a", "b"], dtype=dtype))
    want = outcome(lambda: np.array([[value, 1]], dtype=dtype))
    assert_same_outcome(ours, want)
    if want[0] == "err":
        assert ours[2] == want[2]


@pytest.mark.parametrize(
    "value",
    [
        None,
        "text",
        2**63,
        -(2**63) - 1,
        2**64,
        2**200,
        np.float64(1.5),
        np.float32(0.1),
        np.int32(7),
        np.int64(-3),
        np.bool_(True),
        np.str_("s"),
        [1, 2],
        [],
        (1,),
        {},
        {"x": 1},
        np.array(3),
        np.arange(3)[::2],
        np.array([1, None], dtype=object),
        np.arange(2, dtype=">i4"),
        np.array(2.5, dtype=">f8"),
        b"bytes",
        1 + 2j,
    ],
)
def test_non_plain_cells_go_through_numpy(value):
    recs = [{"a": 1.5, "b": value}, {"a": 2, "b": value}]
    ours = outcome(lambda: records_to_ndarray(recs, ["a", "b"]))
    want = outcome(lambda: np.array([[1.5, value], [2, value]]))
    assert_same_outcome(ours, want)
    if want[0] == "err":
        assert ours[2] == want[2]


class Level(enum.IntEnum):
    LOW = 1


class MyFloat(float):
    pass


class MyInt(int):
    pass


@pytest.mark.parametrize("value", [Level.LOW, MyFloat(2.5), MyInt(3)])
def test_scalar_subclasses_go_through_numpy(value):
    ours = outcome(lambda: records_to_ndarray([{"a": value}], ["a"]))
    want = outcome(lambda: np.array([[value]]))
    assert_same_outcome(ours, want)


def test_missing_values_are_none():
    got = records_to_ndarray([{"a": 1}, {"b": 2}], ["a", "b"])
    want = np.array([[1, None], [None, 2]])
    assert_same_array(got, want)
    assert got.dtype == object


def test_zero_records_is_numpys_empty_array():
    for feats in (["a", "b"], []):
        assert_same_array(records_to_ndarray([], feats), np.array([]))
        for dtype in (np.float32, np.int64, bool, object, "U3"):
            assert_same_array(records_to_ndarray([], feats, dtype=dtype), np.array([], dtype=dtype))


def test_zero_features_keeps_the_rows():
    got = records_to_ndarray([{"a": 1}, {}, {"b": None}], [])
    assert_same_array(got, np.array([[], [], []]))
    assert got.shape == (3, 0)
    assert_same_array(records_to_ndarray([{}], [], dtype=np.int32), np.array([[]], dtype=np.int32))


def test_literal_dotted_key_wins_over_the_path():
    recs = [{"a.b": 1, "a": {"b": 2}}]
    assert records_to_ndarray(recs, ["a.b"]).tolist() == [[1]]
    assert records_to_ndarray([{"a": {"b": 2}}], ["a.b"]).tolist() == [[2]]


def test_custom_delimiter():
    recs = [{"a": {"b": 1.0}, "a/b": 9.0}, {"a": {"b": 2.0}}]
    assert records_to_ndarray(recs, ["a/b"], delimiter="/").tolist() == [[9.0], [2.0]]
    assert records_to_ndarray(recs, ["a__b"], delimiter="__").tolist() == [[1.0], [2.0]]
    # The default delimiter is "."
    assert records_to_ndarray([{"a": {"b": 3}}], ["a.b"], delimiter=None).tolist() == [[3]]


def test_non_empty_dict_at_the_path_is_not_a_value():
    # Like get_nested_field: a non-empty dict is no flattened value, an empty one is.
    assert records_to_ndarray([{"a": {"b": {"c": 1}}}], ["a.b"]).tolist() == [[None]]
    got = records_to_ndarray([{"a": {"b": {}}}], ["a.b"])
    assert got.dtype == object and got[0, 0] == {}


def test_keys_in_changing_positions():
    # Records of differing key order and shape still read the right values.
    recs = [{"x": 1.0, "y": 2.0}, {"y": 3.0, "x": 4.0}, {"z": 0, "x": 5.0, "y": 6.0}]
    recs.append({k: v for k, v in reversed(list(recs[2].items()))})
    recs.append(dict(recs[0]))
    del recs[-1]["x"]
    recs[-1]["x"] = 7.0
    assert records_to_ndarray(recs, ["x", "y"]).tolist() == [
        [1.0, 2.0],
        [4.0, 3.0],
        [5.0, 6.0],
        [5.0, 6.0],
        [7.0, 2.0],
    ]


def test_non_ascii_and_equal_hash_prefix_keys():
    recs = [{"é": 1.0, "日本": 2.0, "😀": 3.0, "f1": 4.0, "f10": 5.0}] * 3
    got = records_to_ndarray(recs, ["😀", "日本", "é", "f10", "f1"])
    assert got.tolist() == [[3.0, 2.0, 1.0, 5.0, 4.0]] * 3


def test_str_subclass_keys_are_found():
    class Key(str):
        pass

    recs = [{Key("a"): 1.0}, {"a": 2.0}]
    assert records_to_ndarray(recs, ["a"]).tolist() == [[1.0], [2.0]]


def test_non_str_keys():
    recs = [{1: "one", "a": {2: 5}}, {"a": {2: 6}}]
    assert records_to_ndarray(recs, ["a.2"]).tolist() == [[5], [6]]


# --- error paths ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("records", "type_name"),
    [
        ({"a": 1}, "dict"),
        ((({"a": 1}),), "tuple"),
        ((r for r in [{"a": 1}]), "generator"),
        ({1, 2}, "set"),
        (b"[]", "bytes"),
        ("[]", "str"),
        (None, "NoneType"),
        (np.array([{"a": 1}]), "numpy.ndarray"),
    ],
)
def test_records_must_be_a_list(records, type_name):
    with pytest.raises(
        ValueError,
        match=rf"^Value for `records` must be a list of dictionaries\. Received type: <class "
        rf"'{re.escape(type_name)}'>$",
    ):
        records_to_ndarray(records, ["a"])


@pytest.mark.parametrize(
    "row", [5, None, "a", [("a", 1)], types.MappingProxyType({"a": 1}), b"x", {1, 2}]
)
def test_rows_must_be_dicts(row):
    with pytest.raises(
        ValueError, match=r"^Value at index 3 is not a dictionary\. Received type: <class"
    ):
        records_to_ndarray([{"a": 1}] * 3 + [row] + [{"a": 1}], ["a"])


def test_the_first_bad_row_is_reported():
    with pytest.raises(ValueError, match=r"^Value at index 1 .* <class 'int'>$"):
        records_to_ndarray([{"a": 1}, 2, "x"], ["a"])
    # ... also when an earlier cell already needs numpy.
    with pytest.raises(ValueError, match=r"^Value at index 2 .* <class 'str'>$"):
        records_to_ndarray([{"a": None}, {"a": 1}, "x"], ["a"])


def test_list_and_dict_subclasses_are_accepted():
    class Records(list):
        pass

    class Row(dict):
        pass

    recs = Records([Row(a=1.0), collections.OrderedDict(a=2.0)])
    dd = collections.defaultdict(float, a=3.0)
    recs.append(dd)
    assert records_to_ndarray(recs, ["a", "b"]).tolist() == [[1.0, None], [2.0, None], [3.0, None]]
    assert "b" not in dd  # a defaultdict is read, not filled


@pytest.mark.parametrize(
    "features", ["ab", ("a", 1), [None], ["a", b"b"], {"a"}, (f for f in ["a"]), None, 3]
)
def test_feature_names_must_be_a_list_of_str(features):
    with pytest.raises(TypeError, match="feature_names"):
        records_to_ndarray([{"a": 1}], features)


def test_feature_names_may_be_a_tuple():
    assert records_to_ndarray([{"a": 1, "b": 2}], ("b", "a")).tolist() == [[2, 1]]


def test_empty_delimiter_is_refused():
    with pytest.raises(ValueError, match="delimiter"):
        records_to_ndarray([{"a": 1}], ["a"], delimiter="")
    with pytest.raises(ValueError, match="delimiter"):
        records_to_ndarray([], ["a"], delimiter="")


def test_invalid_dtype_is_numpys_error():
    ours = outcome(lambda: records_to_ndarray([{"a": 1}], ["a"], dtype="no such dtype"))
    want = outcome(lambda: np.array([[1]], dtype="no such dtype"))
    assert_same_outcome(ours, want)
    assert ours[2] == want[2]


def test_ragged_values_are_numpys_error():
    recs = [{"a": [1, 2]}, {"a": [1]}]
    with pytest.raises(ValueError, match="inhomogeneous"):
        records_to_ndarray(recs, ["a"])


def test_duplicated_flattened_key_names_the_row():
    recs = [{"a": {"b": {"c": 1.0}}}, {"a.b": {"c": 1}, "a": {"b.c": 3}}]
    with pytest.raises(ValueError, match=r"^duplicated key 'a\.b\.c' \(row 1\)$"):
        records_to_ndarray(recs, ["a.b.c"])


def test_deep_and_cyclic_records():
    deep = current = {}
    for _ in range(1000):
        current["a"] = {}
        current = current["a"]
    current["v"] = 1.5
    path = ".".join(["a"] * 1000 + ["v"])
    assert records_to_ndarray([deep, {"x": 1}], ["x"]).tolist() == [[None], [1]]
    assert records_to_ndarray([deep], [path]).tolist() == [[1.5]]
    # A path that only exists as dotted keys below 255 levels: a clean error.
    missing = ".".join(["a"] * 300 + ["w"])
    with pytest.raises(ValueError, match=r"deeper than 255.* \(row 0, key "):
        records_to_ndarray([deep], [missing])

    cyclic = {"v": 2.0}
    cyclic["a"] = cyclic
    assert records_to_ndarray([cyclic], ["a.a.a.v", "v"]).tolist() == [[2.0, 2.0]]
    assert records_to_ndarray([cyclic], ["a.a.x"]).tolist() == [[None]]


def test_huge_batch_of_small_records():
    n = 1_000_000
    recs = [{"a": i, "b": 0.5} for i in range(n)]
    got = records_to_ndarray(recs, ["a", "b"])
    assert got.shape == (n, 2) and got.dtype == np.float64
    assert got[-1, 0] == n - 1 and got[:, 1].sum() == n / 2


def test_inputs_are_not_mutated():
    recs = sample_events(20) + [{"a": None, "b": [1, 2]}, {"a": {"b": {}}}]
    before = pickle.dumps(recs)
    feats = NUMERIC_FEATURES + ["a.b", "missing"]
    feats_before = list(feats)
    records_to_ndarray(recs, feats)
    records_to_ndarray(recs, feats, dtype=object)
    assert pickle.dumps(recs) == before and feats == feats_before


def test_result_is_a_fresh_owned_array():
    recs = flat_records(5)
    a = records_to_ndarray(recs, FLAT16)
    b = records_to_ndarray(recs, FLAT16)
    assert a.base is None and a.flags.writeable and not np.shares_memory(a, b)


# --- property: equal to numpy.array of a plain-Python gather ----------------------

KEYS = ["a", "b", "c", "a.b", "é", "x1"]
FEATURES = ["a", "b", "c", "a.b", "a.c", "b.c.a", "a.b.c", "é", "x1", "zz", "c.é"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=-5, max_value=5),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([-0.0, 0.0, 1e300, -1e300, 3.5e38, 2.0**63]),
    st.text(max_size=3),
    st.sampled_from([np.float64(1.5), np.float32(2.5), np.int64(3), np.int32(-4), np.bool_(False)]),
)
numeric = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.integers(min_value=-(2**31) - 2, max_value=2**31 + 1),
    st.floats(allow_nan=True, allow_infinity=True),
)
values = st.recursive(
    st.one_of(scalars, st.lists(numeric, max_size=2)),
    lambda children: st.dictionaries(st.sampled_from(KEYS), children, max_size=4),
    max_leaves=8,
)
records_st = st.lists(st.dictionaries(st.sampled_from(KEYS), values, max_size=5), max_size=6)
numeric_records_st = st.lists(
    st.dictionaries(
        st.sampled_from(KEYS),
        st.one_of(numeric, st.dictionaries(st.sampled_from(KEYS), numeric, max_size=3)),
        max_size=5,
    ),
    max_size=6,
)
dtypes = st.sampled_from([None, np.float64, np.float32, np.int64, np.int32, bool, object])


def check_against_plain(records, features, dtype):
    before = pickle.dumps(records)
    try:
        rows = plain_gather(records, features)
    except ValueError as exc:
        with pytest.raises(ValueError, match="duplicated key") as info:
            records_to_ndarray(records, features, dtype=dtype)
        assert str(exc) in str(info.value)
        return
    ours = outcome(lambda: records_to_ndarray(records, features, dtype=dtype))
    want = outcome(lambda: np.array(rows, dtype=dtype))
    assert_same_outcome(ours, want)
    if want[0] == "err":
        assert ours[2] == want[2]
    assert pickle.dumps(records) == before


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records_st, st.lists(st.sampled_from(FEATURES), max_size=4), dtypes)
def test_property_matches_numpy_of_plain_gather(records, features, dtype):
    check_against_plain(records, features, dtype)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(numeric_records_st, st.lists(st.sampled_from(FEATURES), min_size=1, max_size=4), dtypes)
def test_property_numeric_cells_match_numpy(records, features, dtype):
    # Mostly plain numbers, so the fast path and its conversions get exercised.
    check_against_plain(records, features, dtype)


# --- differential: the reference packflow 0.4.1 ----------------------------------


_REFERENCE_SCRIPT = """
import numpy as np
from packflow.utils.data import records_to_ndarray
result = []
for args, kwargs in payload:
    try:
        a = records_to_ndarray(*args, **kwargs)
    except Exception as exc:
        result.append(("err", type(exc).__name__, str(exc)))
        continue
    body = a.ravel().tolist() if a.dtype == object else a.tobytes()
    result.append(("ok", a.dtype.str, a.shape, body))
"""


def _describe(outcome_):
    # Arrays travel as (dtype string, shape, bytes): pickling drops byte order.
    if outcome_[0] != "ok":
        return outcome_
    a = outcome_[1]
    return ("ok", a.dtype.str, a.shape, a.ravel().tolist() if a.dtype == object else a.tobytes())


def _compare_with_reference(cases, message_too=True):
    want = run_reference_script(_REFERENCE_SCRIPT, cases)
    ours = [_describe(o) for o in call_ours(records_to_ndarray, cases)]
    for (args, kwargs), o, w in zip(cases, ours, want):
        assert o[0] == w[0], (args, kwargs, o, w)
        if o[0] == "ok":
            assert o[1:3] == w[1:3], (args, kwargs, o, w)
            if o[1] == "|O":
                assert all(_same_scalar(x, y) for x, y in zip(o[3], w[3])), (o, w)
            else:
                assert o[3] == w[3], (args, kwargs, o, w)
        else:
            assert o[1] == w[1], (o, w)
            if message_too:
                assert o[2] == w[2], (o, w)


def test_reference_sample_and_flat_records():
    events = sample_events(300)
    flat = flat_records(300)
    _compare_with_reference(
        [
            ((events, NUMERIC_FEATURES), {}),
            ((events, NUMERIC_FEATURES), {"dtype": "float32"}),
            ((events, ["ts", "rule.id", "src.port"]), {}),
            ((events, ["ts", "rule.id"]), {"dtype": np.int32}),
            ((events, ["src.ip", "proto", "score"]), {}),
            ((events, ["tags", "rule.name"]), {}),
            ((events, ["src.geo", "missing", "dst.port"]), {}),
            ((flat, FLAT16), {}),
            ((flat, FLAT16[::-1]), {"dtype": np.float32}),
            ((flat, FLAT16), {"dtype": object}),
        ]
    )


def test_reference_mixed_cases():
    nan, inf = float("nan"), float("inf")
    _compare_with_reference(
        [
            (([{"a": True, "b": False}], ["a", "b"]), {}),
            (([{"a": True, "b": 2}], ["a", "b"]), {}),
            (([{"a": 2**63, "b": 1}], ["a", "b"]), {}),
            (([{"a": 2**63}], ["a"]), {}),
            (([{"a": 2**70, "b": 1.5}], ["a", "b"]), {}),
            (([{"a": nan, "b": -inf, "c": -0.0}], ["a", "b", "c"]), {}),
            (([{"a": None, "b": 1}], ["a", "b"]), {}),
            (([{"a": None, "b": 1}], ["a", "b"]), {"dtype": "float64"}),
            (([{"a": "x", "b": 1}], ["a", "b"]), {}),
            (([{"a": "x", "b": 1}], ["a", "b"]), {"dtype": float}),
            (([{"a": np.float32(0.5), "b": 1}], ["a", "b"]), {}),
            (([{"a": [1, 2], "b": 1}], ["a", "b"]), {}),
            (([{"a": [1, 2]}, {"a": [3, 4]}], ["a"]), {}),
            (([{"a": 1.5}], ["a"]), {"dtype": "int64"}),
            (([{"a": 2**31}], ["a"]), {"dtype": "int32"}),
            (([{"a": 0.0, "b": nan}], ["a", "b"]), {"dtype": bool}),
            (([{"a": 1}], ["a"]), {"dtype": "float16"}),
            (([{"a": 1}], ["a"]), {"dtype": ">f8"}),
            (([{"a": 1}], ["a"]), {"dtype": "U4"}),
            (([{"a": 1}], ["a"]), {"dtype": "not a dtype"}),
            (([{"a": {"b": 1}, "a.b": 2}], ["a.b"]), {}),
            (([{"a": {"b": {}}}], ["a.b"]), {}),
            (([{"a": {"b": {"c": 1}}}], ["a.b"]), {}),
            (([{"a": {1: 5}}], ["a.1"]), {}),
            (([{"a": {"b": 1}}], ["a/b"]), {"delimiter": "/"}),
            (([{"a": {"b": 1}}], ["a__b"]), {"delimiter": "__"}),
            (([], ["a", "b"]), {}),
            (([], ["a"]), {"dtype": "int32"}),
            (([{}, {}], []), {}),
            (([{}], []), {"dtype": bool}),
        ]
    )


def test_reference_bad_input_types():
    # Same exception types; our messages are our own but keep "index N".
    cases = [
        (({"a": 1}, ["a"]), {}),
        (((({"a": 1}),), ["a"]), {}),
        (([{"a": 1}, 5], ["a"]), {}),
        (([{"a": 1}, [("a", 1)]], ["a"]), {}),
        (([None], ["a"]), {}),
    ]
    want = call_reference("packflow.utils.data", "records_to_ndarray", cases)
    ours = call_ours(records_to_ndarray, cases)
    for o, w in zip(ours, want):
        assert o[:2] == w[:2] == ("err", "ValueError")
    for i in (2, 3, 4):
        idx = 1 if i < 4 else 0
        assert f"index {idx}" in ours[i][2] and f"index {idx}" in want[i][2]


def test_core_function_is_what_the_wrapper_calls():
    recs = sample_events(3)
    assert_same_array(
        _core.records_to_ndarray(recs, NUMERIC_FEATURES, None, None),
        records_to_ndarray(recs, NUMERIC_FEATURES),
    )
