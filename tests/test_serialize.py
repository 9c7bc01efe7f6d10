"""``packflow.serialize.dumps`` / ``dumps_lines``: byte-for-byte what
``json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()`` writes,
plus numpy values, with clear errors naming the key path."""

from __future__ import annotations

import collections
import enum
import json
import math
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from packflow import _core
from packflow.exceptions import InferenceBackendValidationError
from packflow.serialize import check_and_dump_lines, dumps, dumps_lines

# Hostile inputs (tests/conftest.py): part of `make test-matrix` on every Python.
pytestmark = pytest.mark.hostile

MAX_DEPTH = _core.MAX_DEPTH


def json_bytes(obj, allow_nan=False) -> bytes:
    """The plain-Python spelling the writer must match."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=allow_nan).encode()


def to_native(obj):
    """numpy values as ``.tolist()`` gives them; containers rebuilt (plain Python)."""
    if isinstance(obj, (np.ndarray, np.generic)):
        return to_native(obj.tolist()) if isinstance(obj, np.ndarray) else obj.tolist()
    if isinstance(obj, dict):
        return {k: to_native(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_native(v) for v in obj]
    return obj


def nested_lists(depth: int):
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


def nested_dicts(depth: int):
    value: dict = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


# -- strategies -----------------------------------------------------------------

floats = st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from(
    [
        0.0,
        -0.0,
        5e-324,
        -5e-324,
        2.2250738585072014e-308,
        1.7976931348623157e308,
        1e16,
        1e-5,
        1e-4,
        0.1,
        1e22,
        123456789012345680.0,
        9007199254740993.0,
    ]
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**200), max_value=2**200)
    | floats
    | st.text()
    | st.text(alphabet=st.characters(max_codepoint=0x1F)).map(lambda s: s + '"\\')
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=40,
)
any_keys = st.text(max_size=5) | st.integers() | floats | st.booleans() | st.none()
keyed_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.tuples(children, children)
        | st.dictionaries(any_keys, children, max_size=4)
    ),
    max_leaves=30,
)


# -- equal to json.dumps ----------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_matches_json_dumps_byte_for_byte(value):
    assert dumps(value) == json_bytes(value)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_round_trips_through_json_loads(value):
    assert json.loads(dumps(value)) == value


@settings(max_examples=300, deadline=None)
@given(keyed_values)
def test_keys_and_tuples_are_converted_like_json(value):
    assert dumps(value) == json_bytes(value)


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_floats_are_spelled_like_repr(x):
    assert dumps(x) == repr(x).encode()


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_any_double_bit_pattern_is_spelled_like_repr(bits):
    x = struct.unpack("<d", struct.pack("<Q", bits))[0]
    if math.isfinite(x):
        assert dumps(x) == repr(x).encode()


def test_many_random_doubles_are_spelled_like_repr():
    rng = np.random.default_rng(7)
    values = rng.integers(0, 2**64, size=50_000, dtype=np.uint64).view(np.float64)
    values = [float(v) for v in values if math.isfinite(v)]
    values += [float(v) for v in rng.random(20_000, dtype=np.float32)]
    assert dumps(values) == json_bytes(values)


@pytest.mark.parametrize(
    "value, text",
    [
        (1.0, "1.0"),
        (-0.0, "-0.0"),
        (1e16, "1e+16"),
        (1e15, "1000000000000000.0"),
        (0.0001, "0.0001"),
        (1e-05, "1e-05"),
        (5e-324, "5e-324"),
        (1.5e300, "1.5e+300"),
        (2**64, "18446744073709551616"),
        (-(2**100), "-1267650600228229401496703205376"),
        (True, "true"),
        (None, "null"),
        ("é😀\u2028\x7f", '"é😀\u2028\x7f"'),
        ("\x00\x1f\b\f\n\r\t", '"\\u0000\\u001f\\b\\f\\n\\r\\t"'),
        ({}, "{}"),
        ([], "[]"),
        ((), "[]"),
        ({1: 1, 1.5: 2, False: 3, None: 4}, '{"1":1,"1.5":2,"false":3,"null":4}'),
    ],
)
def test_spellings(value, text):
    assert dumps(value) == text.encode()
    assert dumps(value) == json_bytes(value)


def test_subclasses_are_written_as_their_base():
    class Color(enum.IntEnum):
        RED = 1

    class MyStr(str):
        pass

    class MyFloat(float):
        def __repr__(self):
            return "not used"

    class MyDict(dict):
        pass

    class MyList(list):
        pass

    value = {
        "enum": Color.RED,
        "big_enum": [Color.RED],
        "s": MyStr("x"),
        "f": MyFloat(2.5),
        "d": MyDict(a=1),
        "l": MyList([1]),
        "od": collections.OrderedDict(b=2),
        "nt": collections.namedtuple("P", "x y")(1, 2),
        Color.RED: "int-enum key",
    }
    assert dumps(value) == json_bytes(value)


def test_huge_int_subclass_uses_int_repr():
    class Big(int):
        def __str__(self):
            return "nope"

        __repr__ = __str__

    assert dumps([Big(2**70)]) == b"[1180591620717411303424]"


# -- numpy ------------------------------------------------------------------------

NUMERIC_DTYPES = [
    np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32,
    np.uint64, np.float16, np.float32, np.float64,
]  # fmt: skip


@pytest.mark.parametrize("dtype", NUMERIC_DTYPES)
def test_numpy_arrays_and_scalars_of_every_numeric_dtype(dtype):
    rng = np.random.default_rng(0)
    raw = (
        rng.normal(0, 300, size=(3, 4))
        if np.dtype(dtype).kind == "f"
        else rng.integers(0, 100, (3, 4))
    )
    arr = raw.astype(dtype)
    assert dumps(arr) == json_bytes(arr.tolist())
    assert dumps(arr[1, 2]) == json_bytes(arr[1, 2].tolist())
    assert dumps({"a": arr, "s": arr[0, 0]}) == json_bytes(to_native({"a": arr, "s": arr[0, 0]}))


def test_numpy_extremes():
    values = [
        np.array([np.iinfo(np.int64).min, np.iinfo(np.int64).max]),
        np.array([np.iinfo(np.uint64).max], dtype=np.uint64),
        np.array([np.finfo(np.float32).max, np.finfo(np.float32).tiny, 1e-45], dtype=np.float32),
        np.array([65504, 6e-8, 0.1], dtype=np.float16),
        np.float32(0.1),
        np.uint64(2**64 - 1),
    ]
    for v in values:
        assert dumps(v) == json_bytes(to_native(v))
    assert dumps(np.float32(0.1)) == b"0.10000000149011612"


def test_numpy_layouts_zero_d_strided_big_endian_unaligned():
    base = np.arange(24, dtype=np.float64).reshape(2, 3, 4) / 7
    cases = [
        np.array(3.25),
        np.array(7, dtype=np.int16),
        base[:, ::2, ::-1],
        base.transpose(2, 0, 1),
        np.asfortranarray(base),
        base.astype(">f8"),
        base.astype(">i4")[::-1],
        base.astype("<u2"),
        np.frombuffer(b"\x00" + np.arange(5, dtype="<i8").tobytes(), dtype="<i8", offset=1),
        np.zeros((0, 3)),
        np.zeros((3, 0)),
        np.zeros((2, 0, 2), dtype=np.int8),
        np.broadcast_to(np.arange(3), (4, 3)),
    ]
    for arr in cases:
        assert dumps(arr) == json_bytes(arr.tolist()), arr
        assert dumps([arr]) == json_bytes([arr.tolist()])


def test_numpy_object_arrays_are_written_element_by_element():
    arr = np.array([1, "a", None, {"k": np.int8(3)}, [np.float32(0.5)]], dtype=object)
    assert dumps(arr) == b'[1,"a",null,{"k":3},[0.5]]'
    grid = np.empty((2, 2), dtype=object)
    grid[:] = [[1, 2.5], ["x", None]]
    assert dumps(grid[:, ::-1]) == b'[[2.5,1],[null,"x"]]'
    with pytest.raises(
        TypeError, match=r'key "\[2\]": Object of type set is not JSON serializable'
    ):
        dumps(np.array([1, 2, {3}], dtype=object))


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")
def test_numpy_subclasses_use_tolist():
    masked = np.ma.masked_array([1, 2, 3], mask=[False, True, False])
    assert dumps(masked) == b"[1,null,3]"
    assert dumps(np.matrix([[1, 2], [3, 4]])) == b"[[1,2],[3,4]]"


@pytest.mark.parametrize(
    "value, dtype",
    [
        (np.array([1 + 2j]), "complex128"),
        (np.array(["a"]), "<U1"),
        (np.array(["2020-01-01"], dtype="datetime64[D]"), "<M8[D]"),
        (np.zeros(2, dtype=[("a", "i4")]), "[('a', '<i4')]"),
        (np.zeros(2, dtype=np.longdouble), "<f16"),
    ],
)
def test_other_numpy_dtypes_are_type_errors(value, dtype):
    with pytest.raises(
        TypeError, match=r"^Object of type ndarray is not JSON serializable \(numpy dtype "
    ):
        dumps(value)
    with pytest.raises(TypeError, match=r'key "x": Object of type ndarray'):
        dumps({"x": value})


@pytest.mark.parametrize(
    "value", [np.complex128(1j), np.datetime64("2020"), np.bytes_(b"x"), np.longdouble(1.5)]
)
def test_other_numpy_scalars_are_type_errors(value):
    with pytest.raises(TypeError, match="is not JSON serializable"):
        dumps([value])


def test_numpy_str_scalar_is_a_str():
    assert dumps(np.str_("é")) == '"é"'.encode()


# -- NaN and infinities --------------------------------------------------------------


@pytest.mark.parametrize(
    "value, text",
    [
        (float("nan"), "NaN"),
        (float("inf"), "Infinity"),
        (float("-inf"), "-Infinity"),
        ({float("nan"): 1}, '{"NaN":1}'),
        (np.array([np.nan, -np.inf], dtype=np.float32), "[NaN,-Infinity]"),
        (np.float16("inf"), "Infinity"),
    ],
)
def test_non_finite_needs_allow_nan(value, text):
    assert dumps(value, allow_nan=True) == text.encode()
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant: "):
        dumps(value)


def test_non_finite_message_starts_like_json_and_names_no_option():
    # json.dumps(allow_nan=False)'s words, then what to do that is right for the
    # library and for `packflow run` alike (which has no allow_nan option).
    with pytest.raises(ValueError) as info:
        dumps_lines([{"score": math.nan}])
    message = str(info.value)
    assert message.startswith(
        'row 0, key "score": Out of range float values are not JSON compliant: NaN'
    )
    assert "allow_nan" not in message
    assert "use None or a finite number" in message


def test_non_finite_error_names_the_path():
    with pytest.raises(ValueError, match=r'key "a.b\[2\]": Out of range .*: NaN'):
        dumps({"a": {"b": [1, 2, float("nan")]}})
    with pytest.raises(ValueError, match=r'key "m\[1\]\[0\]": Out of range .*: Infinity'):
        dumps({"m": np.array([[1.0], [np.inf]])})


# -- errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, type_name",
    [
        ({1, 2}, "set"),
        (frozenset(), "frozenset"),
        (b"x", "bytes"),
        (bytearray(b"x"), "bytearray"),
        (object(), "object"),
        (1 + 2j, "complex"),
        ((x for x in range(2)), "generator"),
        (range(3), "range"),
    ],
)
def test_unsupported_types_are_type_errors(value, type_name):
    # json.dumps's message: `except TypeError` code matching it keeps working.
    with pytest.raises(TypeError, match=f"^Object of type {type_name} is not JSON serializable$"):
        dumps(value)
    with pytest.raises(TypeError, match=rf'key "outer.list\[1\]": Object of type {type_name} '):
        dumps({"outer": {"list": [0, value]}})


def test_bad_keys_are_type_errors():
    with pytest.raises(
        TypeError, match=r'key "\(1, 2\)": keys must be str, int, float, bool or None, not tuple$'
    ):
        dumps({(1, 2): 1})
    with pytest.raises(TypeError, match=r'key "a.b\'k\'": keys must be .* not bytes'):
        dumps({"a": {b"k": 1}})


def test_lone_surrogates_cannot_be_utf8():
    with pytest.raises(ValueError, match="lone surrogate"):
        dumps("a\ud800")
    with pytest.raises(ValueError, match=r'key "k\[0\]": str contains a lone surrogate'):
        dumps({"k": ["\udfff"]})
    with pytest.raises(ValueError, match="lone surrogate"):
        dumps({"\ud800": 1})


def test_depth_limit():
    assert dumps(nested_lists(MAX_DEPTH)) == json_bytes(nested_lists(MAX_DEPTH))
    assert dumps(nested_dicts(MAX_DEPTH)) == json_bytes(nested_dicts(MAX_DEPTH))
    for too_deep in (nested_lists(MAX_DEPTH + 1), nested_dicts(300), nested_lists(10_000)):
        with pytest.raises(ValueError, match="nesting deeper than 255 levels"):
            dumps(too_deep)

    # numpy dimensions count as levels: n lists around a 2-d array are n + 2 levels
    def around_array(n):
        value = [np.zeros((1, 1))]
        for _ in range(n - 1):
            value = [value]
        return value

    assert dumps(around_array(MAX_DEPTH - 2)) == json_bytes(to_native(around_array(MAX_DEPTH - 2)))
    with pytest.raises(ValueError, match="nesting deeper"):
        dumps(around_array(MAX_DEPTH - 1))


def test_cycles_are_value_errors():
    a: list = []
    a.append(a)
    d: dict = {}
    d["self"] = {"again": d}
    for cyclic in (a, d, {"rows": [a]}):
        with pytest.raises(ValueError, match="reference cycle"):
            dumps(cyclic)
    with pytest.raises(ValueError, match=r'key "self.again.self.again'):
        dumps(d)


def test_inputs_are_not_modified():
    value = {"a": [1, (2, 3)], "b": np.arange(3), "c": {"d": None}}
    before = repr(value)
    dumps(value)
    dumps_lines([value])
    assert repr(value) == before


def test_dict_changed_by_a_subclass_tolist_is_a_clean_error():
    holder: dict = {}

    class Sneaky(np.ndarray):
        def tolist(self):
            holder.clear()
            return [1]

    holder["x"] = np.arange(2).view(Sneaky)
    holder["y"] = 1
    with pytest.raises(ValueError, match="changed size"):
        dumps(holder)


# -- dumps_lines -------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(st.lists(json_values, max_size=8))
def test_lines_are_dumps_of_each_row(rows):
    assert dumps_lines(rows) == b"".join(json_bytes(r) + b"\n" for r in rows)


def test_lines_accept_any_row_value_and_tuples():
    assert dumps_lines([{"a": 1}, [2], 3, "x", None]) == b'{"a":1}\n[2]\n3\n"x"\nnull\n'
    assert dumps_lines(({"a": 1},)) == b'{"a":1}\n'
    assert dumps_lines([]) == b""


def test_lines_of_a_big_batch():
    from packflow.sample_data import sample_outputs

    rows = sample_outputs(20_000)
    assert dumps_lines(rows) == b"".join(json_bytes(r) + b"\n" for r in rows)


def test_lines_errors_name_row_and_key():
    rows = [{"ok": 1}, {"ok": 2}, {"meta": {"scores": [1, 2, {3}]}}]
    with pytest.raises(TypeError, match=r'row 2, key "meta.scores\[2\]": Object of type set'):
        dumps_lines(rows)
    with pytest.raises(ValueError, match=r'row 1, key "x": Out of range .*: NaN'):
        dumps_lines([{}, {"x": math.nan}])
    assert dumps_lines([{}, {"x": math.nan}], allow_nan=True) == b'{}\n{"x":NaN}\n'
    with pytest.raises(TypeError, match=r"row 0: Object of type bytes"):
        dumps_lines([b"x"])


@pytest.mark.parametrize("rows", [{"a": 1}, "abc", (r for r in [{}]), None, 3, {1, 2}])
def test_lines_need_a_list_or_tuple(rows):
    with pytest.raises(TypeError, match="dumps_lines expects a list of rows"):
        dumps_lines(rows)


# -- check_and_dump_lines: check_outputs then dumps_lines, in one pass ---------------


def two_steps(outputs, n, allow_nan=False):
    """What the one-pass function must do: the check, then the writer."""
    try:
        _core.check_outputs(outputs, n)
        return dumps_lines(outputs, allow_nan=allow_nan)
    except Exception as exc:  # noqa: BLE001 - compared by type and message
        return (type(exc), str(exc))


def one_pass(outputs, n, allow_nan=False):
    try:
        return check_and_dump_lines(outputs, n, allow_nan=allow_nan)
    except Exception as exc:  # noqa: BLE001 - compared by type and message
        return (type(exc), str(exc))


def test_check_and_dump_lines_writes_json_lines():
    from packflow.sample_data import sample_outputs

    rows = sample_outputs(5_000)
    assert check_and_dump_lines(rows, 5_000) == b"".join(json_bytes(r) + b"\n" for r in rows)
    assert check_and_dump_lines([], 0) == b""
    assert _core.check_and_dump_lines([{"a": np.arange(2)}], 1) == b'{"a":[0,1]}\n'


class Rows(list):
    pass


class Row(dict):
    pass


@pytest.mark.parametrize(
    "outputs, n, exc, message",
    [
        ([{}], 2, InferenceBackendValidationError, "Received 2 inputs and returned 1 outputs."),
        (None, 1, InferenceBackendValidationError, "got NoneType, which has no length"),
        ((x for x in [{}]), 1, InferenceBackendValidationError, "got generator"),
        (({},), 1, InferenceBackendValidationError, "Type returned was tuple"),
        ({"a": 1}, 1, InferenceBackendValidationError, "Type returned was dict"),
        ([{}, [1]], 2, InferenceBackendValidationError, "index 1 is not a dictionary"),
        ([{}, "x"], 2, InferenceBackendValidationError, "Type found was <class 'str'>"),
        # A non-dict row anywhere is reported before an earlier unserializable row.
        ([{}, {"a": {1}}, 5], 3, InferenceBackendValidationError, "index 2 is not a dictionary"),
        (
            [{}, {"a": {1}}],
            2,
            InferenceBackendValidationError,
            "index 1 is not JSON Serializable. Please ensure returned values are native Python "
            'types. Error: Object of type set is not JSON serializable (key "a")',
        ),
        (
            [{"a": [1, b"x"]}],
            1,
            InferenceBackendValidationError,
            'bytes is not JSON serializable (key "a[1]")',
        ),
        ([{(1,): 1}], 1, InferenceBackendValidationError, "not tuple"),
        ([{"a": 10**5000}], 1, InferenceBackendValidationError, "Exceeds the limit"),
        ([nested_dicts(MAX_DEPTH + 1)], 1, InferenceBackendValidationError, "nesting deeper"),
        ([{"a": np.array([1j])}], 1, InferenceBackendValidationError, "dtype complex128"),
        # Passes the check (json.dumps allows them) but cannot be written.
        (
            [{}, {"x": {"y": math.nan}}],
            2,
            ValueError,
            'row 1, key "x.y": Out of range float values are not JSON compliant: NaN',
        ),
        ([{"x": np.array([1.0, np.inf])}], 1, ValueError, 'row 0, key "x[1]": Out of range'),
        ([{"s": "\ud800"}], 1, ValueError, 'row 0, key "s": str contains a lone surrogate'),
    ],
)
def test_check_and_dump_lines_errors_are_those_of_the_two_steps(outputs, n, exc, message):
    with pytest.raises(exc) as info:
        check_and_dump_lines(outputs, n)
    assert message in str(info.value)
    if exc is ValueError:
        assert not isinstance(info.value, InferenceBackendValidationError)
    if not hasattr(outputs, "__next__"):
        assert one_pass(outputs, n) == two_steps(outputs, n)


def test_check_and_dump_lines_cycle_is_a_validation_error():
    row: dict = {"a": []}
    row["a"].append(row)
    with pytest.raises(InferenceBackendValidationError, match="index 1 .*reference cycle"):
        check_and_dump_lines([{}, row], 2)


def test_check_and_dump_lines_allow_nan_and_subclasses():
    out = Rows([Row(x=math.nan), {"y": -math.inf}])
    assert check_and_dump_lines(out, 2, allow_nan=True) == b'{"x":NaN}\n{"y":-Infinity}\n'
    assert one_pass(out, 2) == two_steps(out, 2)


def test_check_and_dump_lines_does_not_modify_outputs():
    out = [{"a": (1, 2), "b": np.arange(3), "c": {"d": [1.5]}}]
    check_and_dump_lines(out, 1)
    assert isinstance(out[0]["a"], tuple) and out[0]["b"].tolist() == [0, 1, 2]
    assert out == [{"a": (1, 2), "b": out[0]["b"], "c": {"d": [1.5]}}]


bad_values = st.sampled_from([{1}, b"x", math.nan, -math.inf, "\ud800", object(), 1j])
output_rows = st.recursive(
    scalars | bad_values,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.dictionaries(st.text(max_size=4), output_rows, max_size=4) | output_rows, max_size=6
    ),
    st.booleans(),
    st.integers(-1, 1),
)
def test_check_and_dump_lines_equals_check_then_dumps_lines(rows, allow_nan, n_delta):
    n = max(len(rows) + n_delta, 0)
    assert one_pass(rows, n, allow_nan) == two_steps(rows, n, allow_nan)


def test_output_buffer_grows_past_the_first_rows_estimate():
    # The output is written in place into the returned bytes, sized from the
    # first row: later, bigger rows make it grow (and move) several times.
    rows = [{}] + [{"a": "x" * 100_000, "b": list(range(i * 1000))} for i in range(5)]
    want = b"".join(json_bytes(r) + b"\n" for r in rows)
    assert dumps_lines(rows) == want
    assert check_and_dump_lines(rows, len(rows)) == want
    big = {"k": ["y" * 1000] * 500}
    assert dumps(big) == json_bytes(big)
    assert dumps({}) == b"{}" and dumps_lines([]) == b""


def test_ints_around_the_one_digit_fast_path_are_exact():
    edges = [
        0,
        1,
        -1,
        2**30 - 1,
        2**30,
        -(2**30) + 1,
        -(2**30),
        2**31,
        2**63 - 1,
        -(2**63),
        2**64,
        -(2**70),
    ]
    values = edges + [True, False, None, 1.5, "é", "a\nb"]
    row = {"k": values, **{f"v{i}": v for i, v in enumerate(values)}, "é": 3, 5: -7}
    want = json.dumps(row, separators=(",", ":"), ensure_ascii=False).encode()
    assert dumps(row) == want
    assert dumps_lines([row, row]) == want + b"\n" + want + b"\n"


def test_non_finite_in_a_plain_dict_or_list_names_its_place():
    with pytest.raises(ValueError, match='key "a"'):
        dumps({"a": float("nan")})
    with pytest.raises(ValueError, match=r'key "a\[1\]"'):
        dumps({"a": [1, float("inf")]})


def test_key_cache_eviction_runs_no_python_during_a_dict_walk():
    # A str-subclass key whose __del__ mutates the next row: were such a key
    # held (and then evicted) by the writer's key cache, its __del__ would run
    # mid-walk and free values the walk still borrows. Run in a subprocess
    # with large allocations mmapped so a use-after-free faults.
    import os
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        """
        import json
        import numpy as np
        import packflow._core as c

        class K(str):
            def __del__(self):
                for k in list(D2):
                    D2[k] = 0

        warm = {"w%d" % i: 1 for i in range(20)}
        row1 = {K("subkey"): None}
        D2 = {"k%05d" % i: ("%05d" % i) * 40000 for i in range(3000)}

        class Sub(np.ndarray):
            def tolist(self):
                rows[1] = None
                return [1]

        rows = [warm, row1, D2]
        row1[next(iter(row1))] = np.zeros(1).view(Sub)
        del row1
        out = c.dumps_lines(rows).splitlines()
        assert json.loads(out[1]) == {"subkey": [1]}
        third = json.loads(out[2])
        assert len(third) == 3000
        assert all(v == 0 or isinstance(v, str) for v in third.values())
        print("ok")
        """
    )
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.strip() == b"ok"
