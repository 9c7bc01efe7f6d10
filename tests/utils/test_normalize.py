"""``ensure_native_types`` / ``ensure_valid_output`` (numpy read in Rust, other
libraries through the Python handlers)."""

from __future__ import annotations

import collections
import enum
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from packflow import _core
from packflow.utils.normalize import ensure_native_types, ensure_valid_output
from tests.support.reference import call_ours, call_reference

MAX_DEPTH = _core.MAX_DEPTH


def plain_native(obj):
    """The semantics, in plain Python (the reference's rules)."""
    if isinstance(obj, (int, float, str, bool, type(None))):
        return obj
    if isinstance(obj, (np.ndarray, np.generic)):
        return obj.tolist()
    if isinstance(obj, dict):
        return {k: plain_native(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [plain_native(v) for v in obj]
    raise TypeError(f"unsupported {type(obj)}")


def plain_valid_output(output, parent_key="output"):
    rows = []
    for item in output:
        item = plain_native(item)
        if not isinstance(item, dict):
            if isinstance(item, list) and len(item) == 1:
                item = item[0]
            item = {parent_key: item}
        rows.append(item)
    return rows


def canon(obj):
    """Values with their exact types, NaN comparable, for strict equality."""
    if isinstance(obj, float):
        return (type(obj).__name__, repr(float(obj)))
    if isinstance(obj, dict):
        return ("dict", [(canon(k), canon(v)) for k, v in obj.items()])
    if isinstance(obj, list):
        return ("list", [canon(v) for v in obj])
    if isinstance(obj, tuple):
        return ("tuple", [canon(v) for v in obj])
    return (type(obj).__name__, repr(obj))


NUMERIC_DTYPES = [
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", ">i4", ">f8", "<f4", ">u2", ">f2",
]  # fmt: skip


# -- ensure_native_types ---------------------------------------------------------------


def test_native_scalars_are_returned_as_is():
    class Color(enum.IntEnum):
        RED = 1

    for value in (1, 2**100, 1.5, float("nan"), "s", True, None, Color.RED, np.float64(2.5),
                  np.str_("x")):  # fmt: skip
        assert ensure_native_types(value) is value


@pytest.mark.parametrize("dtype", NUMERIC_DTYPES)
def test_numpy_scalars_become_python_scalars(dtype):
    for raw in (0, 1, 100):
        scalar = np.array([raw]).astype(dtype)[0]
        assert canon(ensure_native_types(scalar)) == canon(plain_native(scalar))
    assert ensure_native_types(np.float32(0.1)) == 0.10000000149011612
    assert type(ensure_native_types(np.uint64(2**64 - 1))) is int
    assert ensure_native_types(np.bool_(True)) is True


@pytest.mark.parametrize("dtype", NUMERIC_DTYPES)
def test_numpy_arrays_become_tolist(dtype):
    rng = np.random.default_rng(1)
    raw = rng.normal(0, 1000, size=(3, 2, 4))
    arr = raw.astype(dtype)
    assert canon(ensure_native_types(arr)) == canon(arr.tolist())


def test_numpy_layouts():
    base = np.arange(60, dtype=np.float32).reshape(3, 4, 5) / 3
    cases = [
        np.array(2.5, dtype=np.float32),
        np.array(True),
        base[::2, :, ::-1],
        base.transpose(2, 0, 1),
        np.asfortranarray(base),
        base.astype(">f4"),
        np.frombuffer(b"\x00" + np.arange(4, dtype="<i8").tobytes(), dtype="<i8", offset=1),
        np.zeros((0, 3)),
        np.zeros((2, 0, 3), dtype=np.int16),
        np.broadcast_to(np.arange(3, dtype=np.uint8), (2, 3)),
        np.array([np.nan, np.inf, -0.0]),
    ]
    for arr in cases:
        assert canon(ensure_native_types(arr)) == canon(arr.tolist())


def test_other_numpy_values_use_tolist():
    objects = np.array([np.float32(1.5), {"a": np.int8(1)}, None], dtype=object)
    # Like the reference, an object array's elements come back as they are.
    assert canon(ensure_native_types(objects)) == canon(objects.tolist())
    for value in (
        np.array(["a", "bc"]),
        np.array([1 + 2j]),
        np.array(["2020-01-01"], dtype="datetime64[D]"),
        np.datetime64("2020-01-01"),
        np.complex64(1j),
        np.longdouble(1.5),
        np.zeros(2, dtype=[("a", "i4"), ("b", "f4")]),
        np.ma.masked_array([1, 2], mask=[True, False]),
    ):
        assert canon(ensure_native_types(value)) == canon(value.tolist())


def test_containers_are_rebuilt():
    class MyDict(dict):
        pass

    point = collections.namedtuple("Point", "x y")
    value = {
        "list": [np.int32(1), (np.float32(0.5),)],
        "tuple": (1, 2),
        "set": {3},
        "sub": MyDict(a=np.arange(2)),
        (1, 2): "tuple key kept",
        "nt": point(np.int8(1), 2),
        "empty": [{}, [], ()],
    }
    out = ensure_native_types(value)
    assert out == {
        "list": [1, [0.5]],
        "tuple": [1, 2],
        "set": [3],
        "sub": {"a": [0, 1]},
        (1, 2): "tuple key kept",
        "nt": [1, 2],
        "empty": [{}, [], []],
    }
    assert type(out["sub"]) is dict
    assert out is not value


def test_inputs_are_not_modified():
    inner = [np.int64(1), (2, 3)]
    value = {"a": inner, "b": np.arange(3)}
    ensure_native_types(value)
    assert type(inner[0]) is np.int64 and isinstance(inner[1], tuple)
    assert isinstance(value["b"], np.ndarray)


@pytest.mark.parametrize(
    "value", [b"bytes", object(), frozenset([1]), (x for x in []), 1j, range(2), bytearray()]
)
def test_unsupported_types_raise_type_error(value):
    with pytest.raises(TypeError, match="is not supported"):
        ensure_native_types(value)
    with pytest.raises(TypeError, match="is not supported"):
        ensure_native_types({"a": [1, value]})


def test_fallback_result_is_used_as_is_and_its_errors_propagate():
    marker = object()
    assert _core.ensure_native_types([b"x", {"k": b"y"}], lambda obj: marker) == [
        marker,
        {"k": marker},
    ]

    def fails(obj):
        raise LookupError("from the fallback")

    with pytest.raises(LookupError, match="from the fallback") as info:
        _core.ensure_native_types({"a": {"b": [0, b"x"]}}, fails)
    assert any('key "a.b[1]"' in note for note in getattr(info.value, "__notes__", []))


def test_a_dict_changed_by_the_fallback_is_a_clean_error():
    value = {"a": b"x", "b": 1, "c": 2}

    def clears(obj):
        value.clear()
        return "gone"

    with pytest.raises(ValueError, match="changed size"):
        _core.ensure_native_types(value, clears)


def test_a_list_shrunk_by_the_fallback_is_walked_safely():
    value = [b"x", 1, 2, 3]

    def pops(obj):
        del value[1:]
        return "gone"

    assert _core.ensure_native_types(value, pops) == ["gone"]


def test_depth_and_cycles():
    deep: list = []
    for _ in range(MAX_DEPTH - 1):
        deep = [deep]
    assert ensure_native_types(deep) == deep
    with pytest.raises(ValueError, match="nesting deeper than 255"):
        ensure_native_types([deep])
    with pytest.raises(ValueError, match="nesting deeper than 255"):
        ensure_native_types({"a": [[0]] * 2 + [deep] * 1 + [[[np.zeros((1, 1))]]]} | {"b": [deep]})
    cyclic: dict = {}
    cyclic["me"] = cyclic
    with pytest.raises(ValueError, match="reference cycle"):
        ensure_native_types(cyclic)


scalar_values = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=5)
    | st.sampled_from(NUMERIC_DTYPES).flatmap(
        lambda dt: hnp.from_dtype(np.dtype(dt)).map(lambda v: np.array([v], dtype=dt)[0])
    )
)
arrays = st.sampled_from(NUMERIC_DTYPES).flatmap(
    lambda dt: hnp.arrays(np.dtype(dt), hnp.array_shapes(min_dims=0, max_dims=3, max_side=3))
)
native_inputs = st.recursive(
    scalar_values | arrays,
    lambda children: (
        st.lists(children, max_size=4)
        | st.tuples(children, children)
        | st.dictionaries(st.text(max_size=4) | st.integers(), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(native_inputs)
def test_matches_plain_python(value):
    assert canon(ensure_native_types(value)) == canon(plain_native(value))


@settings(max_examples=100, deadline=None)
@given(arrays.filter(lambda a: a.ndim >= 1))
def test_strided_views_match_plain_python(arr):
    view = arr[::-1]
    assert canon(ensure_native_types(view)) == canon(view.tolist())


# -- ensure_valid_output ---------------------------------------------------------------


def test_the_documented_example():
    out = ensure_valid_output([np.float32(1.5), [2], {"x": np.arange(2)}, (1, 2)])
    assert out == [{"output": 1.5}, {"output": 2}, {"x": [0, 1]}, {"output": [1, 2]}]


def test_any_iterable_and_parent_key():
    assert ensure_valid_output((x for x in [1, [2, 3]]), "y") == [{"y": 1}, {"y": [2, 3]}]
    assert ensure_valid_output({"a": 1}) == [{"output": "a"}]
    assert ensure_valid_output("ab") == [{"output": "a"}, {"output": "b"}]
    assert ensure_valid_output(([[5]],)) == [{"output": [5]}]
    assert ensure_valid_output([]) == []


def test_numpy_rows():
    arr = np.arange(6, dtype=np.float32).reshape(3, 2) / 4
    assert canon(ensure_valid_output(arr)) == canon([{"output": r.tolist()} for r in arr])
    column = np.arange(3, dtype=np.int64).reshape(3, 1)
    assert ensure_valid_output(column) == [{"output": 0}, {"output": 1}, {"output": 2}]
    assert ensure_valid_output(np.array([True, False])) == [{"output": True}, {"output": False}]
    cube = np.arange(8, dtype=">u2").reshape(2, 2, 2)[:, ::-1]
    assert ensure_valid_output(cube, "p") == [{"p": r.tolist()} for r in cube]
    assert ensure_valid_output(np.zeros((0, 4))) == []
    assert ensure_valid_output(np.zeros((2, 0))) == [{"output": []}, {"output": []}]
    objects = np.array([{"a": 1}, [np.int8(2)]], dtype=object)
    assert ensure_valid_output(objects) == [{"a": 1}, {"output": 2}]


def test_a_float64_vector_gives_python_floats():
    # Deliberate: the reference leaves numpy.float64 (a float subclass) per row.
    out = ensure_valid_output(np.array([1.5, 2.5]))
    assert out == [{"output": 1.5}, {"output": 2.5}]
    assert all(type(row["output"]) is float for row in out)


def test_a_big_float32_matrix():
    arr = np.random.default_rng(0).random((10_000, 10), dtype=np.float32)
    out = ensure_valid_output(arr)
    assert len(out) == 10_000
    assert out[1234] == {"output": arr[1234].tolist()}
    assert canon(out[:50]) == canon(plain_valid_output(arr[:50]))


@pytest.mark.parametrize("output", [np.array(5), 5, None])
def test_non_iterables_raise_type_error(output):
    with pytest.raises(TypeError):
        ensure_valid_output(output)


def test_unsupported_items_raise_type_error():
    with pytest.raises(TypeError, match="is not supported"):
        ensure_valid_output([1, b"x"])


@settings(max_examples=200, deadline=None)
@given(st.lists(native_inputs, max_size=5))
def test_valid_output_matches_plain_python(items):
    assert canon(ensure_valid_output(items)) == canon(plain_valid_output(items))


# -- differential: the reference -------------------------------------------------------

REFERENCE_CASES = [
    1,
    2.5,
    "s",
    None,
    [1, "a", None, [np.int8(3)]],
    (np.float32(0.25), np.uint64(2**64 - 1), np.bool_(False), np.float16(0.1)),
    {"a": np.arange(6).reshape(2, 3), (1, 2): {3, 4}, 5: {"b": (np.int16(-1),)}},
    np.arange(24, dtype=">f4").reshape(2, 3, 4)[:, ::-1, ::2],
    np.array(3.5),
    np.zeros((0, 2), dtype=np.uint8),
    np.array([1, "x", np.float32(2)], dtype=object),
    np.array(["a", "b"]),
    np.array([1 + 1j]),
    np.float64(1.5),
    np.datetime64("2021-01-01"),
    b"bytes",
    frozenset([1]),
    object,
]


def test_ensure_native_types_matches_the_reference():
    cases = [((c,), {}) for c in REFERENCE_CASES]
    theirs = call_reference("packflow.utils.normalize", "ensure_native_types", cases)
    ours = call_ours(ensure_native_types, cases)
    for case, mine, their in zip(REFERENCE_CASES, ours, theirs):
        assert mine[0] == their[0], (case, mine, their)
        if mine[0] == "ok":
            assert canon(mine[1]) == canon(their[1]), case
        else:
            assert mine[1] == their[1], (case, mine, their)


VALID_OUTPUT_CASES = [
    ([np.float32(1.5), [2], {"x": np.arange(2)}, (1, 2)],),
    (np.arange(12, dtype=np.float32).reshape(4, 3),),
    (np.arange(4, dtype=np.int32).reshape(4, 1), "y"),
    (np.array([[True], [False]]),),
    ([[[1]], [1, 2], "abc", {"k": (np.int8(1),)}],),
    ((1, 2, 3), "z"),
    ({"a": 1, "b": 2},),
    (np.array(5),),
    (5,),
    ([b"x"],),
    (np.array([{"a": 1}, 3], dtype=object),),
]


def test_ensure_valid_output_matches_the_reference():
    cases = [(args, {}) for args in VALID_OUTPUT_CASES]
    theirs = call_reference("packflow.utils.normalize", "ensure_valid_output", cases)
    ours = call_ours(ensure_valid_output, cases)
    for case, mine, their in zip(VALID_OUTPUT_CASES, ours, theirs):
        assert mine[0] == their[0], (case, mine, their)
        if mine[0] == "ok":
            assert canon(mine[1]) == canon(their[1]), case
        else:
            assert mine[1] == their[1], (case, mine, their)


def test_float64_vector_differs_from_the_reference_only_in_scalar_type():
    cases = [((np.array([1.5, -0.0, math.inf]),), {})]
    (their,) = call_reference("packflow.utils.normalize", "ensure_valid_output", cases)
    (mine,) = call_ours(ensure_valid_output, cases)
    assert mine[1] == their[1]
    assert [type(r["output"]).__name__ for r in their[1]] == ["float64"] * 3
    assert [type(r["output"]).__name__ for r in mine[1]] == ["float"] * 3
