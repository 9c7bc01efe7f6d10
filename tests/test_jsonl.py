"""Tests of ``packflow.jsonl`` (and the ``_core`` functions behind it).

The oracle is Python's json module: every record must equal ``json.loads(line)``
and every array must equal ``numpy.array`` of the rows gathered with the
flat-lookup semantics, implemented in plain Python below. The reference 0.4.1
has no JSON Lines parser, so there is no differential test against it.
"""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from packflow import _core
from packflow.jsonl import parse_lines, parse_lines_to_ndarray
from packflow.sample_data import NUMERIC_FEATURES, sample_lines

# Hostile inputs (tests/conftest.py): part of `make test-matrix` on every Python.
pytestmark = pytest.mark.hostile

# --- plain-Python oracles ------------------------------------------------------


def same(a, b) -> bool:
    """Deep equality that also checks types, key order, NaN and the sign of zero."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


class Duplicated(Exception):
    pass


def get_flat(obj: dict, field: str, delimiter: str):
    """The flat lookup: a literal key first, else the parts of the field as a
    path ending on a leaf (anything but a non-empty dict), else the only way of
    spelling the field by joined keys."""
    if field in obj:
        return obj[field]
    parts = field.split(delimiter)
    if len(parts) > 1:
        cur = obj
        for part in parts:
            if not isinstance(cur, dict) or part not in cur:
                break
            cur = cur[part]
        else:
            if not (isinstance(cur, dict) and cur):
                return cur
    found: list = []

    def scan(d: dict, rest: str) -> None:
        for k, v in d.items():
            if rest == k:
                if not (isinstance(v, dict) and v):
                    found.append(v)
            elif rest.startswith(k + delimiter) and isinstance(v, dict) and v:
                scan(v, rest[len(k) + len(delimiter) :])

    scan(obj, field)
    if len(found) > 1:
        raise Duplicated(field)
    return found[0] if found else None


def expected_array(records: list[dict], features: list[str], delimiter: str):
    rows = [[get_flat(r, f, delimiter) for f in features] for r in records]
    return rows, np.array(rows)


def assert_same_array(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == want.dtype
    assert got.shape == want.shape
    if got.dtype.kind == "f":
        # JSON text has one NaN: a NaN payload of the Python side is not kept.
        got, want = (np.where(np.isnan(a), np.nan, a) for a in (got, want))
    assert got.tobytes() == want.tobytes()


# --- parse_lines: behaviour ----------------------------------------------------


def test_records_line_numbers_and_errors():
    data = b'{"a": 1}\n\n  \t\n[1, 2]\r\n{"b": {"c": [true, null]}}\r\n{bad\n"s"\n{"z": 2}'
    out = parse_lines(data, first_line=10)
    assert out.records == [{"a": 1}, {"b": {"c": [True, None]}}, {"z": 2}]
    assert out.line_numbers == [10, 14, 17]
    assert out.errors == [
        (13, b"[1, 2]", "not a JSON object: array"),
        (15, b"{bad", "invalid JSON at column 2: expected a string key"),
        (16, b'"s"', "not a JSON object: string"),
    ]
    assert out.lines == 6
    assert repr(out) == "ParsedLines(records=3, errors=3, lines=6)"


def test_empty_and_blank_data():
    for data in (b"", b"\n", b"\n\n\r\n \t \n"):
        out = parse_lines(data)
        assert (out.records, out.line_numbers, out.errors, out.lines) == ([], [], [], 0)


def test_last_line_without_newline_counts():
    assert parse_lines(b'{"a": 1}\n{"a": 2}').records == [{"a": 1}, {"a": 2}]
    assert parse_lines(b'{"a": 1}\r').records == [{"a": 1}]


def test_non_object_kinds():
    data = b'[]\n3\n-1.5\ntrue\nnull\nNaN\n"x"'
    kinds = [e[2] for e in parse_lines(data).errors]
    assert kinds == [
        "not a JSON object: " + k
        for k in ("array", "number", "number", "boolean", "null", "number", "string")
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b'{"ts": 1, "src": {', "invalid JSON at column 19: expected a string key"),
        (b'{"a": 1} x', "invalid JSON at column 10: extra data after the value"),
        (b'{"a": 1}}', "invalid JSON at column 9: extra data after the value"),
        (b'{"a" 1}', "invalid JSON at column 6: expected ':'"),
        (b'{"a": 1 "b": 2}', "invalid JSON at column 9: expected ',' or '}'"),
        (b'{"a": [1 2]}', "invalid JSON at column 10: expected ',' or ']'"),
        (b'{"a": }', "invalid JSON at column 7: expected a value"),
        (b'{"a": 1,}', "invalid JSON at column 9: expected a string key"),
        (b'{"a": "x', "invalid JSON at column 7: unterminated string"),
        (b'{"a": "\\x"}', "invalid JSON at column 8: invalid escape"),
        (b'{"a": "\\u12"}', "invalid JSON at column 8: invalid \\uXXXX escape"),
        (b'{"a": "x\ty"}', "invalid JSON at column 9: control character in string"),
        (b'{"a": 01}', "invalid JSON at column 8: expected ',' or '}'"),
        (b'{"a": 1.}', "invalid JSON at column 9: invalid number"),
        (b'{"a": tru}', "invalid JSON at column 7: expected a value"),
        (b"{'a': 1}", "invalid JSON at column 2: expected a string key"),
        (b"not json at all", "invalid JSON at column 1: expected a value"),
        ('{"é": 1 2}'.encode(), "invalid JSON at column 9: expected ',' or '}'"),
    ],
)
def test_invalid_json_messages(line, message):
    with pytest.raises(ValueError):
        json.loads(line)
    out = parse_lines(line)
    assert out.records == []
    assert out.errors == [(1, line, message)]


def test_invalid_utf8_is_an_error_for_that_line_only():
    data = b'{"a": 1}\n{"a": "\xff"}\n{"a": "\xed\xa0\x80"}\n{"a": 2}'
    out = parse_lines(data)
    assert out.records == [{"a": 1}, {"a": 2}]
    assert out.errors == [
        (2, b'{"a": "\xff"}', "invalid UTF-8 at byte 8"),
        (3, b'{"a": "\xed\xa0\x80"}', "invalid UTF-8 at byte 8"),
    ]


def test_json_module_extras_are_accepted():
    line = b'{"n": NaN, "i": Infinity, "m": -Infinity, "z": -0.0, "h": 1e400, "e": 1E-2}'
    assert same(parse_lines(line).records[0], json.loads(line))
    dup = b'{"a": 1, "b": 2, "a": 3}'
    assert same(parse_lines(dup).records[0], json.loads(dup))
    assert list(parse_lines(dup).records[0]) == ["a", "b"]


def test_big_ints_and_the_digit_limit():
    line = b'{"u": 18446744073709551615, "n": -9223372036854775809, "b": ' + b"9" * 400 + b"}"
    assert same(parse_lines(line).records[0], json.loads(line))
    limit = sys.get_int_max_str_digits()
    too_long = b'{"b": ' + b"7" * (limit + 1) + b"}"
    with pytest.raises(ValueError):
        json.loads(too_long)
    [(_, _, msg)] = parse_lines(too_long).errors
    assert msg == (
        f"invalid JSON at column 7: an integer with {limit + 1} digits exceeds the limit of "
        f"{limit} digits (sys.set_int_max_str_digits)"
    )
    sys.set_int_max_str_digits(0)
    try:
        assert parse_lines(too_long).records == [json.loads(too_long)]
    finally:
        sys.set_int_max_str_digits(limit)


def test_escapes_and_surrogates():
    line = rb'{"s": "\ud83d\ude00 \u00e9\n\"\\\/\b\f\r\t", "\u006b": 1}'
    assert same(parse_lines(line).records[0], json.loads(line))
    for lone in (
        rb'{"s": "\ud800"}',
        rb'{"s": "a\udc00b", "t": [1]}',
        rb'{"\ud800x": "\ud800\u0041"}',
    ):
        assert same(parse_lines(lone).records[0], json.loads(lone))
    # A lone surrogate does not hide a later syntax error or too deep nesting.
    bad = rb'{"s": "\ud800", "t": }'
    assert parse_lines(bad).errors == [(1, bad, "invalid JSON at column 22: expected a value")]
    deep = rb'{"s": "\ud800", "t": ' + b"[" * 300 + b"]" * 300 + b"}"
    assert "nesting deeper than 255 levels" in parse_lines(deep).errors[0][2]


def test_byte_order_mark_is_ignored():
    line = b'\xef\xbb\xbf{"a": 1}'
    assert parse_lines(line).records == [json.loads(line)]
    [(_, raw, msg)] = parse_lines(b"\xef\xbb\xbf").errors
    assert raw == b"\xef\xbb\xbf" and "expected a value" in msg


def test_nesting_limit():
    ok = b'{"a": ' + b"[" * (_core.MAX_DEPTH - 1) + b"]" * (_core.MAX_DEPTH - 1) + b"}"
    assert parse_lines(ok).records == [json.loads(ok)]
    too_deep = b'{"a": ' + b"[" * _core.MAX_DEPTH + b"]" * _core.MAX_DEPTH + b"}"
    [(_, _, msg)] = parse_lines(too_deep).errors
    assert msg == f"invalid JSON at column {7 + 254}: nesting deeper than 255 levels"
    # Far deeper than any stack could recurse: still one clean error.
    huge = b'{"a": ' + b'{"a": ' * 200_000
    assert "nesting deeper" in parse_lines(huge).errors[0][2]
    assert parse_lines_to_ndarray(huge, ["b"], ".").errors == parse_lines(huge).errors


def test_ten_megabyte_line():
    big = json.dumps({"blob": "x" * 10_000_000, "n": list(range(1000))}).encode()
    out = parse_lines(big + b"\n" + big[:-1] + b"\n{}")
    assert len(out.records) == 2 and out.records[0] == json.loads(big) and out.records[1] == {}
    assert out.line_numbers == [1, 3]
    [(line_no, raw, msg)] = out.errors
    assert line_no == 2 and raw == big[:-1] and "expected ',' or '}'" in msg


def test_keys_are_shared_between_records():
    out = parse_lines(b'{"src": 1, "dst": 2}\n{"src": 3, "dst": 4}')
    a, b = out.records
    assert [k1 is k2 for k1, k2 in zip(a, b)] == [True, True]


def test_records_are_fresh_objects():
    out = parse_lines(b'{"a": [1], "b": {}}\n{"a": [1], "b": {}}')
    first, second = out.records
    assert first["a"] is not second["a"] and first["b"] is not second["b"]
    first["a"].append(2)
    assert second["a"] == [1]


def test_bad_arguments():
    with pytest.raises(TypeError):
        parse_lines('{"a": 1}')
    with pytest.raises(TypeError):
        parse_lines(bytearray(b'{"a": 1}'))
    with pytest.raises(TypeError):
        parse_lines([b'{"a": 1}'])
    with pytest.raises(OverflowError):
        parse_lines(b"{}", first_line=-1)
    with pytest.raises(TypeError):
        parse_lines_to_ndarray(b"{}", "ab", ".")
    with pytest.raises(TypeError):
        parse_lines_to_ndarray(b"{}", [1], ".")
    with pytest.raises(ValueError, match="delimiter"):
        parse_lines_to_ndarray(b"{}", ["a"], "")


def test_sample_stream_matches_json_loads():
    lines = list(sample_lines(300, malformed_every=7))
    out = parse_lines(b"".join(lines), first_line=5)
    good = [(i + 5, json.loads(ln)) for i, ln in enumerate(lines) if i % 7 != 6]
    assert out.line_numbers == [n for n, _ in good]
    assert all(same(a, b) for a, (_, b) in zip(out.records, good))
    assert [e[0] for e in out.errors] == [i + 5 for i in range(300) if i % 7 == 6]
    assert out.lines == 300


# --- parse_lines: properties ---------------------------------------------------

surrogates = st.sampled_from(["\ud800", "\udbff", "\udc00", "\udfff", "\ud83d"])
texts = st.text(
    st.characters() | surrogates | st.sampled_from('\x00\x1f"\\/\n\t\u2028'), max_size=12
)
keys = st.text(st.characters() | st.sampled_from('.\x00"\\'), max_size=6)
floats = st.floats() | st.sampled_from(
    [5e-324, -5e-324, 2.2250738585072014e-308, -0.0, 1.7976931348623157e308, 0.1, 1e22, 1e23]
)
ints = (
    st.integers()
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.integers(-(10**50), 10**50)
)
scalars = st.none() | st.booleans() | ints | floats | texts
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=25,
)


def dumps(value, ascii_only: bool, compact: bool) -> bytes:
    seps = (",", ":") if compact else (", ", ": ")
    try:
        return json.dumps(value, ensure_ascii=ascii_only, separators=seps).encode()
    except UnicodeEncodeError:  # lone surrogates only go out escaped
        return json.dumps(value, ensure_ascii=True, separators=seps).encode()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            values,
            st.booleans(),
            st.booleans(),
            st.sampled_from([b"\n", b"\r\n", b"\n\n", b"\n \n"]),
        )
    ),
    st.integers(0, 10**6),
)
def test_property_records_equal_json_loads(items, first_line):
    data = b""
    numbers = []
    line_no = first_line
    for value, ascii_only, compact, end in items:
        data += dumps(value, ascii_only, compact) + end
        numbers.append(line_no)
        line_no += end.count(b"\n")
    out = parse_lines(data, first_line)
    want_records = [(n, v) for n, (v, *_) in zip(numbers, items) if isinstance(v, dict)]
    assert out.line_numbers == [n for n, _ in want_records]
    assert len(out.records) == len(want_records)
    for got, (_, v) in zip(out.records, want_records):
        # json.dumps then json.loads is the oracle (it turns tuples, NaN etc. the same way).
        assert same(got, json.loads(dumps(v, True, True)))
    assert [e[0] for e in out.errors] == [
        n for n, (v, *_) in zip(numbers, items) if not isinstance(v, dict)
    ]
    assert all(e[2].startswith("not a JSON object: ") for e in out.errors)
    assert out.lines == len(items)


number_texts = st.from_regex(
    r"-?(0|[1-9][0-9]{0,25})(\.[0-9]{1,25})?([eE][+-]?[0-9]{1,3})?", fullmatch=True
)


@settings(max_examples=500, deadline=None)
@given(number_texts)
def test_property_numbers_equal_json_loads(text):
    line = b'{"x": ' + text.encode() + b', "y": [' + text.encode() + b"]}"
    assert same(parse_lines(line).records[0], json.loads(line))


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=40), st.sampled_from([b"", b"{", b'{"a": ', b'{"a": "', b"[", b'{"a": 1}'])
)
def test_property_arbitrary_bytes_never_crash(junk, prefix):
    line = prefix + junk
    line = line.replace(b"\n", b" ")
    out = parse_lines(line)
    try:
        want = json.loads(line)
    except (ValueError, RecursionError):
        want = None
    if isinstance(want, dict):
        assert len(out.records) == 1 and same(out.records[0], want)
    elif line.strip(b" \t\r"):
        assert out.records == [] and len(out.errors) == 1
    arr = parse_lines_to_ndarray(line, ["a"], ".")
    if arr is not None:
        assert arr.errors == out.errors


# --- parse_lines_to_ndarray ----------------------------------------------------


def test_sample_events_fill_the_array():
    lines = list(sample_lines(500))
    out = parse_lines_to_ndarray(b"".join(lines), NUMERIC_FEATURES, ".")
    records = [json.loads(ln) for ln in lines]
    _, want = expected_array(records, NUMERIC_FEATURES, ".")
    assert want.dtype == np.float64
    assert_same_array(out.array, want)
    assert out.line_numbers == list(range(1, 501)) and out.errors == [] and out.lines == 500
    assert repr(out) == "ParsedArray(shape=(500, 9), errors=0, lines=500)"


def test_errors_match_parse_lines():
    data = b"".join(sample_lines(200, malformed_every=5)) + b'\xff\n{"ts": 1,}\n\n'
    arr = parse_lines_to_ndarray(data, NUMERIC_FEATURES, ".", first_line=3)
    dicts = parse_lines(data, first_line=3)
    assert arr.errors == dicts.errors and arr.line_numbers == dicts.line_numbers
    assert arr.lines == dicts.lines == 202
    _, want = expected_array(dicts.records, NUMERIC_FEATURES, ".")
    assert_same_array(arr.array, want)


@pytest.mark.parametrize(
    ("lines", "features", "dtype"),
    [
        ([b'{"a": 1, "b": 2}', b'{"a": 3, "b": -4}'], ["a", "b"], np.int64),
        ([b'{"a": 1, "b": 2.5}'], ["a", "b"], np.float64),
        ([b'{"a": true, "b": false}'], ["a", "b"], np.bool_),
        ([b'{"a": true, "b": 2}'], ["a", "b"], np.int64),
        ([b'{"a": true}', b'{"a": 2.5}'], ["a"], np.float64),
        ([b'{"a": NaN, "b": -Infinity, "c": 1e400, "d": -0.0}'], ["a", "b", "c", "d"], np.float64),
        ([b'{"a": -9223372036854775808, "b": 9223372036854775807}'], ["a", "b"], np.int64),
        ([b'{"a": 9007199254740993, "b": 0.5}'], ["a", "b"], np.float64),
        ([b'{"a": {"b": 1}, "a.b": 2}'], ["a.b"], np.int64),
        ([b'{"a": 5, "a.b": 2}'], ["a", "a.b"], np.int64),
        ([b'{"a": {"b": {"c": 1}}, "x": {"y.z": "s"}}'], ["a.b.c"], np.int64),
        ([b'{"a": {"b": 1}}'], ["a.b", "a.b"], np.int64),
        ([b'{"src": {"port": 7}}'], ["src__port"], np.int64),
        ([b'{"a": 1}', b'{"a": 2}'], [], np.float64),
        ([b'{"x": 1, "x": "s", "a": 5}'], ["a"], np.int64),
        ([b'{"\\u0061": {"\\u0062": 1}}'], ["a.b"], np.int64),
        ([b'\xef\xbb\xbf {"a" : 1 ,\t"b":\r2 }\r'], ["a", "b"], np.int64),
    ],
)
def test_dtypes_follow_numpy(lines, features, dtype):
    delimiter = "__" if any("__" in f for f in features) else "."
    out = parse_lines_to_ndarray(b"\n".join(lines), features, delimiter)
    _, want = expected_array([json.loads(ln) for ln in lines], features, delimiter)
    assert want.dtype == dtype
    assert_same_array(out.array, want)


def test_no_good_line_gives_an_empty_array():
    for data in (b"", b"\n\n", b"[1]\n{bad"):
        out = parse_lines_to_ndarray(data, ["a"], ".")
        assert_same_array(out.array, np.array([]))
        assert out.line_numbers == [] and out.lines == len(parse_lines(data).errors)


@pytest.mark.parametrize(
    ("line", "features"),
    [
        (b'{"a": 1}', ["missing"]),
        (b'{"a": "s"}', ["a"]),
        (b'{"a": null}', ["a"]),
        (b'{"a": [1]}', ["a"]),
        (b'{"a": {}}', ["a"]),
        (b'{"a": {"b": 1}}', ["a"]),
        (b'{"a": 9223372036854775808}', ["a"]),
        (b'{"a": -9223372036854775809}', ["a"]),
        (b'{"a": 1, "a": 2}', ["a"]),
        (b'{"a": {"b.c": 1}}', ["a.b.c"]),
        (b'{"a.b": {"c": 1}}', ["a.b.c"]),
        (b'{"a": {"b": 1}}', ["a.b.c"]),
        (b'{"a": {"b": 1}}', ["a___b"]),
    ],
)
def test_falls_back_when_not_certain(line, features):
    delimiter = "__" if any("__" in f for f in features) else "."
    assert parse_lines_to_ndarray(b'{"a": 0}\n' + line, features, delimiter) is None


def test_ints_beyond_int64_fall_back_even_if_numpy_could_use_uint64():
    data = b'{"a": 18446744073709551615}'
    assert parse_lines_to_ndarray(data, ["a"], ".") is None
    assert np.array([[json.loads(data)["a"]]]).dtype == np.uint64


record_keys = st.sampled_from(["a", "b", "c", "a.b", "x", "b.c"])
leaf = (
    st.integers(-(2**63), 2**63 - 1)
    | st.integers()
    | st.floats()
    | st.booleans()
    | st.none()
    | st.text(max_size=3)
    | st.just([1])
    | st.just({})
)
records = st.recursive(
    leaf, lambda inner: st.dictionaries(record_keys, inner, min_size=1, max_size=4), max_leaves=12
).filter(lambda v: isinstance(v, dict))
feature_names = st.lists(
    st.sampled_from(["a", "b", "c", "a.b", "a.b.c", "b.c", "x.a", "c.a.b", "missing"]), max_size=4
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(records, max_size=6), feature_names, st.booleans())
def test_property_array_equals_numpy_of_gathered_rows(recs, features, with_bad_lines):
    lines = [json.dumps(r).encode() for r in recs]
    if with_bad_lines:
        lines = [x for ln in lines for x in (ln, b"[1]")]
    out = parse_lines_to_ndarray(b"\n".join(lines), features, ".")
    try:
        rows, want = expected_array(recs, features, ".")
    except (Duplicated, ValueError):  # no array: an ambiguous key, or ragged cells
        assert out is None
        return
    certain = all(
        (type(v) is int and -(2**63) <= v < 2**63) or type(v) is float for row in rows for v in row
    )
    if certain and not any("." in k for r in recs for k in keys_of(r)):
        assert out is not None
    if out is None:
        return
    assert_same_array(out.array, want)
    assert out.errors == parse_lines(b"\n".join(lines)).errors


def keys_of(value):
    if isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from keys_of(v)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(-(2**63), 2**63 - 1) | st.floats() | st.booleans(),
            st.integers(-(2**63), 2**63 - 1) | st.floats() | st.booleans(),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_property_numeric_rows_never_fall_back(pairs):
    lines = [json.dumps({"p": {"q": a}, "r": b, "s": "skip"}).encode() for a, b in pairs]
    out = parse_lines_to_ndarray(b"\r\n".join(lines), ["p.q", "r"], ".")
    assert out is not None
    _, want = expected_array([json.loads(ln) for ln in lines], ["p.q", "r"], ".")
    assert_same_array(out.array, want)


def test_deep_input_on_a_small_thread_stack():
    import threading

    results = []

    def run():
        deep = b'{"a": ' * 255 + b"1" + b"}" * 255
        results.append(len(parse_lines(deep).records))
        results.append(parse_lines_to_ndarray(deep, [".".join(["a"] * 255)], "."))
        deeper = b'{"a": ' * 256 + b"1" + b"}" * 256
        results.append(parse_lines_to_ndarray(deeper, ["b"], ".").errors[0][2])
        feature = ".".join(["a"] * 32)
        line = b'{"a": ' * 32 + b"1" + b"}" * 32
        results.append(parse_lines_to_ndarray(line, [feature], ".").array.tolist())

    old = threading.stack_size(128 * 1024)
    try:
        t = threading.Thread(target=run)
        t.start()
        t.join()
    finally:
        threading.stack_size(old)
    assert results[0] == 1 and results[1].array.tolist() == [[1]]
    assert results[2:] == ["invalid JSON at column 1531: nesting deeper than 255 levels", [[1]]]


def test_line_numbers_never_cap_silently():
    import pytest as _pytest

    from packflow import _core

    data = b'{"a":1}\nx\n{"b":2}\n'
    top = 2**64 - 1
    with _pytest.raises(OverflowError):
        _core.parse_lines(data, top)
    with _pytest.raises(OverflowError):
        _core.parse_lines_to_ndarray(data, ["a"], ".", top)
    near = 2**64 - 1 - len(data)
    parsed = _core.parse_lines(data, near)
    assert parsed.line_numbers == [near, near + 2]
    assert [e[0] for e in parsed.errors] == [near + 1]


# --- json_to_lines(check_items=False): a body cut without reading its items ----

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)
objects = st.dictionaries(st.text(max_size=4), json_values, max_size=4)


@st.composite
def documents(draw):
    """JSON bodies of the shapes a server gets (pretty-printed or not), often
    with one byte changed, dropped or added somewhere."""
    shape = draw(st.sampled_from(["object", "array", "instances", "instances+", "other"]))
    value = {
        "object": draw(objects),
        "array": draw(st.lists(objects, max_size=4)),
        "instances": {"instances": draw(st.lists(objects, max_size=4))},
        "instances+": {"x": 1, "instances": draw(st.lists(objects, max_size=3))},
        "other": draw(json_values),
    }[shape]
    indent = draw(st.sampled_from([None, 1]))
    text = json.dumps(value, indent=indent, ensure_ascii=draw(st.booleans()))
    body = bytearray(text.encode())
    edit = draw(st.sampled_from(["none", "none", "change", "drop", "add"]))
    if body and edit != "none":
        at = draw(st.integers(0, len(body) - 1))
        byte = draw(st.sampled_from(b'{}[]",:\\\n x0\xff'))
        if edit == "change":
            body[at] = byte
        elif edit == "drop":
            del body[at]
        else:
            body.insert(at, byte)
    return bytes(body), "instances" if shape.startswith("instances") else None


@settings(max_examples=1500, deadline=None)
@given(documents())
def test_an_unchecked_cut_is_the_checked_one_or_a_bad_line(doc):
    body, field = doc
    try:
        checked = _core.json_to_lines(body, field)
    except ValueError:
        checked = None
    try:
        fast = _core.json_to_lines(body, field, check_items=False)
    except ValueError:
        fast = None
    if checked is not None:
        # A body the checked path accepts is cut the same way.
        assert fast == checked
    elif fast is not None:
        # A bad body the fast cut let through has a line the engine refuses,
        # so no bad body ever reaches a model as good rows.
        assert parse_lines(fast[0]).errors, (body, fast)
