"""The Rust reader of V2 JSON infer bodies and writer of V2 answers
(``_core.v2_read_request``, ``_core.v2_write_answer``) against the Python path
they stand in for (``V2Api.parse_infer_python``, ``V2Api.render_python``):
for generated bodies, valid and not, Rust gives exactly the Python path's
request (the same JSON Lines bytes, id, outputs, binary flags) or ``None``,
and never accepts a body the Python path refuses; for generated output lines,
the same answer bytes or ``None``."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from types import SimpleNamespace
from typing import Any, Optional

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from packflow import _core
from packflow.serving.v2 import RAW_TYPES, InferRequest, V2Api, V2Error

FIREWALL = [
    "ts",
    "src.port",
    "src.geo.lat",
    "src.geo.lon",
    "dst.port",
    "bytes_in",
    "bytes.out",
    "rule.id",
    "score",
]


def _api(
    fmt: str,
    features: Optional[list[str]] = None,
    rename: Optional[dict[str, str]] = None,
    delimiter: str = ".",
    max_rows: int = 1000,
) -> V2Api:
    config = SimpleNamespace(
        input_format=SimpleNamespace(value=fmt),
        nested_field_delimiter=delimiter,
        feature_names=features or [],
        rename_fields=rename or {},
        output_keys=[],
    )
    return V2Api(SimpleNamespace(config=config), "m", "1", max_rows)


APIS = {
    # Nested feature paths and a renamed feature (read from bytes.in).
    "firewall": _api("numpy", FIREWALL, {"bytes.in": "bytes_in"}),
    "flat": _api("numpy", ["a", "b", "c"]),
    # Two features read from one field: every body goes to Python.
    "clash": _api("numpy", ["a", "a.b"]),
    "records": _api("records"),
    "records_delim": _api("records", delimiter="__", max_rows=5),
}

DATATYPES = [
    "BOOL",
    "BYTES",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "FP16",
    "FP32",
    "FP64",
]

# Integers at the edges of every range the datatypes have.
EDGES = [
    v + d
    for b in (7, 8, 15, 16, 31, 32, 53, 63, 64)
    for v in (1 << b, -(1 << b))
    for d in (-1, 0, 1)
]
ints = st.one_of(st.integers(-5, 300), st.sampled_from(EDGES), st.integers())
floats = st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from(
    [0.0, -0.0, 0.1, 1e16, 1e-5, 1e22, 1e300, 5e-324, 1.5]
)
text = st.text(max_size=8) | st.sampled_from(["", "é", "\x00", '"', "\\", "\ud800", "\u2028"])
json_scalars = st.none() | st.booleans() | ints | floats | text
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)


RANGES = {
    "INT8": (-(1 << 7), (1 << 7) - 1),
    "INT16": (-(1 << 15), (1 << 15) - 1),
    "INT32": (-(1 << 31), (1 << 31) - 1),
    "INT64": (-(1 << 63), (1 << 63) - 1),
    "UINT8": (0, (1 << 8) - 1),
    "UINT16": (0, (1 << 16) - 1),
    "UINT32": (0, (1 << 32) - 1),
    "UINT64": (0, (1 << 64) - 1),
}


def right_values(datatype: str) -> st.SearchStrategy:
    """Values of `datatype` (integers up to its edges, JSON integers in
    float tensors)."""
    if datatype == "BOOL":
        return st.booleans()
    if datatype == "BYTES":
        return text
    if datatype.startswith("FP"):
        # Integers past 64 bits are rare in practice (Rust leaves them to
        # Python): a few.
        return floats | st.integers(-(1 << 64), 1 << 64) | st.sampled_from(EDGES) | floats
    low, high = RANGES[datatype]
    return st.integers(low, high) | st.sampled_from([low, high, 0])


def wrong_value(datatype: str) -> st.SearchStrategy:
    """Mostly values `datatype` does not hold: just out of its range as
    often as any other."""
    if datatype in RANGES:
        low, high = RANGES[datatype]
        edge = st.sampled_from([low - 1, high + 1])
        return edge | edge | ints | json_scalars
    return ints | json_scalars


record_texts = st.one_of(
    st.dictionaries(text, json_values, max_size=4).map(json.dumps),
    st.dictionaries(text, json_values, max_size=4).map(
        lambda d: json.dumps(d, ensure_ascii=False, indent=1)
    ),
    st.sampled_from(
        [
            "{}",
            '{"a": 1, "a": 2}',
            '{"a": NaN}',
            '{"a": 1e400}',
            "[1]",
            "1",
            " {\n} ",
            "\ufeff{}",
            '{"a": 12345678901234567890123}',
            '{"a": "\\ud800"}',
            "{",
        ]
    ),
)


#: What is wrong with a body: nothing, or one thing.
FAULTS = ["none", "none", "none", "value", "value", "tensor", "top", "bytes", "names"]


@st.composite
def tensors(
    draw: Any, names: list[str], n: int, two_d: Optional[int], fault: str, numeric: bool
) -> list[dict]:
    """One column tensor per name (or one [n, two_d] tensor), well-formed
    but for `fault` ("value": one value of one tensor; "tensor": one tensor
    broken)."""
    out = []
    # A numpy backend refuses BYTES: the wrong datatype is a fault of its own.
    datatypes = DATATYPES if not numeric or fault == "tensor" else DATATYPES[:1] + DATATYPES[2:]
    broken = draw(st.integers(0, len(names) - 1)) if names else -1
    for at, name in enumerate(names):
        datatype = draw(st.sampled_from(datatypes)) if draw(st.booleans()) else "FP64"
        if fault == "value" and at == broken and draw(st.booleans()):
            datatype = draw(st.sampled_from(sorted(RANGES)))
        if name == "records" and draw(st.booleans()):
            datatype = "BYTES"
        width = two_d if two_d is not None else (draw(st.sampled_from([None, [1]])) or [None])[0]
        shape = [n] if width is None else [n, width]
        count = n * (width or 1)
        if name == "records" and datatype == "BYTES":
            values = draw(st.lists(record_texts, min_size=count, max_size=count))
        else:
            values = draw(st.lists(right_values(datatype), min_size=count, max_size=count))
            if values and fault == "value" and at == broken:
                values[draw(st.integers(0, count - 1))] = draw(wrong_value(datatype))
        data: Any = values
        if width is not None and draw(st.booleans()):
            data = [values[i * width : (i + 1) * width] for i in range(n)]
        tensor: dict[str, Any] = {"name": name, "datatype": datatype, "shape": shape, "data": data}
        if fault == "tensor" and at == broken:
            tensor = draw(_broken_tensor(tensor))
        if draw(st.integers(0, 9)) == 0:
            tensor["parameters"] = draw(st.sampled_from([{}, {"x": 1}, None, 3]))
        out.append(tensor)
    return out


@st.composite
def _broken_tensor(draw: Any, tensor: dict) -> dict:
    tensor = dict(tensor)
    how = draw(st.integers(0, 11))
    if how == 0:
        tensor["shape"] = draw(
            st.sampled_from([[], [-1], [True], [1.0], [2**64], [1] * 33, "x", [0], [1 << 33]])
        )
    elif how == 1:
        tensor["datatype"] = draw(st.sampled_from(["FP65", "fp64", 3, None, "", "BYTES"]))
    elif how == 2:
        del tensor["data"]
    elif how == 3:
        tensor["data"] = draw(st.sampled_from([None, 1, "x", {}, [[[]]]]))
    elif how == 4:
        tensor["name"] = draw(st.sampled_from(["", 3, None]))
    elif how == 5:
        tensor["data"] = [tensor["data"]]  # nested once more: same values
    elif how == 6:
        tensor["data"] = list(tensor["data"]) + [0]
    elif how == 7:
        del tensor["name"]
    elif how == 8:
        tensor["extra"] = draw(json_values)
    elif how == 9:
        tensor["parameters"] = {"binary_data_size": 0}
    elif how == 10:
        tensor["shape"] = [*tensor["shape"], 1]
    else:
        tensor["shape"] = list(reversed(tensor["shape"]))
    return tensor


def _names(api_name: str, draw: Any, fault: str) -> tuple[list[str], Optional[int]]:
    """Tensor names for a layout: what it takes, unless `fault` is "names"."""
    if api_name in ("firewall", "flat", "clash"):
        features = APIS[api_name].layout.features
        assert features is not None
        kind = draw(st.integers(0, 2))
        if fault == "names":
            if kind == 0:
                return [features[0]], draw(st.sampled_from([len(features), 1, 2]))
            if kind == 1:
                return [draw(st.sampled_from(["input", "x"]))], len(features) + 1
            return draw(st.lists(st.sampled_from([*features, "zz"]), min_size=1, max_size=10)), None
        if kind == 0:
            return [draw(st.sampled_from(["input", "x"]))], len(features)
        return (draw(st.permutations(features)) if kind == 1 else list(features)), None
    pool = ["a", "b", "a.b", "a.c", "c.d.e", "records", "x__y", "x__z", "z", "é.ü"]
    if fault == "names":
        pool += ["a..b", ".a", "a.", "a.b.c", "x__"]
    if draw(st.integers(0, 3)) == 0:
        return ["records"], None
    return draw(st.lists(st.sampled_from(pool), min_size=1, max_size=5, unique=True)), None


@st.composite
def bodies(draw: Any) -> tuple[str, bytes]:
    api_name = draw(st.sampled_from(sorted(APIS)))
    fault = draw(st.sampled_from(FAULTS))
    names, two_d = _names(api_name, draw, fault)
    low = 0 if fault == "tensor" else 1
    n = draw(st.integers(low, 4)) if draw(st.integers(0, 9)) else draw(st.integers(5, 12))
    numeric = APIS[api_name].layout.features is not None
    doc: dict[str, Any] = {"inputs": draw(tensors(names, n, two_d, fault, numeric))}
    top = fault == "top"
    if draw(st.booleans()):
        doc["id"] = draw(st.one_of(text, st.none(), *([st.integers()] if top else [])))
    if draw(st.integers(0, 3)) == 0 or top:
        good = [
            {},
            {"binary_data_output": False},
            {"binary_data_output": True},
            {"other": [1]},
            None,
        ]
        bad = [{"binary_data_output": "false"}, {"binary_data_output": 0}, [], "x"]
        doc["parameters"] = draw(st.sampled_from(good + (bad if top else [])))
    if draw(st.integers(0, 3)) == 0 or top:
        flags = [{"binary_data": False}, {"binary_data": True}, {}, None]
        doc["outputs"] = draw(
            st.one_of(
                st.lists(
                    st.fixed_dictionaries(
                        {"name": st.sampled_from(["score", "a", "x"])},
                        optional={
                            "parameters": st.sampled_from(
                                flags + ([{"binary_data": 1}] if top else [])
                            )
                        },
                    ),
                    max_size=3,
                ),
                st.sampled_from([None, *([{}, [{"nom": "x"}], [3], "score"] if top else [])]),
            )
        )
    if draw(st.integers(0, 5)) == 0:
        doc[draw(text)] = draw(json_values)
    style = draw(st.integers(0, 9))
    if style == 0:
        body = json.dumps(doc, indent=draw(st.sampled_from([None, 0, 2, "\t"]))).encode()
    elif style == 1:
        body = json.dumps(doc, ensure_ascii=False).encode("utf-8", "surrogatepass")
    else:
        body = json.dumps(doc, separators=(",", ":")).encode()
    if fault != "bytes":
        return api_name, body
    tweak = draw(st.integers(0, 6))
    if tweak == 0:
        body = b"\xef\xbb\xbf" + body
    elif tweak == 1:
        body = body + draw(st.sampled_from([b" x", b"\n", b"\r\n\t ", b"}", b"\x00"]))
    elif tweak == 2 and len(body) > 2:
        cut = draw(st.integers(1, len(body) - 1))
        body = body[:cut]
    elif tweak == 3:
        body = body.replace(b"1.5", b"NaN").replace(b"0.1", b"Infinity")
    elif tweak == 4:
        body = body.replace(b'"inputs"', b'"inputs": [], "inputs"', 1)
    elif tweak == 5:
        body = draw(st.sampled_from([b"", b" ", b"[]", b"null", b"{}", b'{"inputs": []}']))
    else:
        body = body.decode("utf-8", "surrogatepass").encode("utf-16", "surrogatepass")
    return api_name, body


def _python_request(api: V2Api, body: bytes) -> Any:
    try:
        return api.parse_infer_python(body)
    except Exception as exc:  # a V2Error (400), or a 500 for a clash of paths
        return exc


def _check_request(api_name: str, body: bytes) -> Optional[InferRequest]:
    api = APIS[api_name]
    expected = _python_request(api, body)
    fast = _core.v2_read_request(api.plan, body)
    if fast is None:
        return None
    assert not isinstance(expected, Exception), (
        f"Rust read a body Python refuses ({expected!r}): {body[:300]!r}"
    )
    got = InferRequest(*fast)
    assert got.data == expected.data, body[:300]
    assert got == expected
    assert [type(v) for v in got] == [type(v) for v in expected]
    _check_cells(api, body, expected)
    return got


def _check_cells(api: V2Api, body: bytes, expected: InferRequest) -> None:
    """With ``cells`` (a backend whose preprocessor reads arrays), a numpy
    backend's rows come as ``FeatureRows`` holding what the engine's text
    reader reads from the Python path's lines: each feature's value looked up
    by its path in the line's object, a bool, int or float as ``json.loads``
    gives it. Rows holding an int past int64 stay lines."""
    if api.layout.features is None:
        return
    layout = api.layout
    plan = _core.V2Plan(
        layout.features, [list(p) for p in layout.paths], layout.delimiter, api.max_rows, cells=True
    )
    fast = _core.v2_read_request(plan, body)
    assert fast is not None, body[:300]
    got = InferRequest(*fast)
    assert got._replace(data=b"") == expected._replace(data=b"")
    records = [json.loads(line) for line in expected.data.splitlines()]
    cells = []
    for record in records:
        row = []
        for path in layout.paths:
            value = record
            for key in path:
                value = value[key]
            row.append(value)
        cells.append(row)
    if any(type(v) is int and not -(2**63) <= v < 2**63 for row in cells for v in row):
        assert got.data == expected.data
        return
    assert isinstance(got.data, _core.FeatureRows), body[:300]
    want = [[(type(v), repr(v)) for v in row] for row in cells]
    assert [[(type(v), repr(v)) for v in row] for row in got.data.to_rows()] == want, body[:300]
    # The Python path (binary data and gRPC read tensors there) gives the
    # same cells.
    python_api = copy.copy(api)
    python_api.cells = True
    rows = python_api.parse_infer_python(body).data
    assert isinstance(rows, _core.FeatureRows), body[:300]
    assert [[(type(v), repr(v)) for v in row] for row in rows.to_rows()] == want, body[:300]


@settings(max_examples=1500)
@given(bodies())
@example(("flat", b'{"inputs":[{"name":"x","datatype":"INT64","shape":[1,3],"data":[1,2,3]}]}'))
@example(("flat", b'{"inputs":[{"name":"x","datatype":"FP32","shape":[1,3],"data":[1,2e0,3]}]}'))
@example(
    (
        "flat",
        b'{"inputs":[{"name":"x","datatype":"UINT64","shape":[1,3],"data":[0,1,18446744073709551615]}]}',
    )
)
@example(("flat", b'{"inputs":[{"name":"x","datatype":"INT8","shape":[1,3],"data":[0,1,128]}]}'))
@example(
    ("records", b'{"inputs":[{"name":"a","datatype":"BYTES","shape":[1],"data":["{\\"b\\":1}"]}]}')
)
@example(
    (
        "flat",
        b'{"inputs":[{"name":"x","datatype":"FP64","shape":[2,3],'
        b'"data":[1.50,2.0e1,0.00001,100.0,-0.0,0.1000000000000000055511151231257827]}]}',
    )
)
@example(
    (
        "records",
        b'{"inputs":[{"name":"records","datatype":"BYTES","shape":[1],"data":["{\\"a\\":[1.50,1E2,12345678901234567]}"]}]}',
    )
)
def test_rust_request_is_the_python_request_or_none(case: tuple[str, bytes]) -> None:
    _check_request(*case)


def _body(inputs: list[dict], **extra: Any) -> bytes:
    return json.dumps({"inputs": inputs, **extra}).encode()


@pytest.mark.parametrize(
    ("api_name", "body"),
    [
        (
            "firewall",
            _body([{"name": "in", "datatype": "FP64", "shape": [2, 9], "data": list(range(18))}]),
        ),
        (
            "firewall",
            _body(
                [
                    {"name": f, "datatype": "FP32", "shape": [1], "data": [0.5]}
                    for f in reversed(FIREWALL)
                ],
                id="r1",
                outputs=[{"name": "score"}],
            ),
        ),
        (
            "flat",
            _body(
                [{"name": "x", "datatype": "BOOL", "shape": [1, 3], "data": [[True, False, True]]}]
            ),
        ),
        (
            "records",
            _body(
                [
                    {"name": "src.port", "datatype": "INT32", "shape": [2], "data": [1, 2]},
                    {
                        "name": "label",
                        "datatype": "BYTES",
                        "shape": [2, 1],
                        "data": [["a"], ["é\n"]],
                    },
                    {"name": "src.geo.lat", "datatype": "FP64", "shape": [2], "data": [1, 2.5]},
                ]
            ),
        ),
        (
            "records",
            _body(
                [
                    {
                        "name": "records",
                        "datatype": "BYTES",
                        "shape": [1],
                        "data": ['{"a": {"b": [1, 2.0]}}'],
                    }
                ]
            ),
        ),
        (
            "records_delim",
            _body([{"name": "a__b", "datatype": "UINT8", "shape": [1], "data": [255]}]),
        ),
    ],
)
def test_the_common_bodies_are_read_in_rust(api_name: str, body: bytes) -> None:
    # The fast path is taken (a reader that always gave None would pass the
    # property above) and agrees with Python.
    assert _check_request(api_name, body) is not None


def test_a_clash_of_feature_paths_is_left_to_python() -> None:
    body = _body([{"name": "x", "datatype": "FP64", "shape": [1, 2], "data": [1, 2]}])
    assert _core.v2_read_request(APIS["clash"].plan, body) is None


def test_the_server_path_answers_errors_from_python() -> None:
    api = APIS["flat"]
    body = _body([{"name": "x", "datatype": "INT8", "shape": [1, 3], "data": [1, 2, 300]}])
    with pytest.raises(V2Error, match=r"element 2 \(300\) is out of the range of INT8"):
        api.parse_infer(body)


def test_an_element_holding_a_lone_surrogate_is_a_400_naming_it() -> None:
    # JSON may spell one ("\ud800"); the message shows it escaped (it was a
    # 500: the message's own writing raised).
    body = b'{"inputs":[{"name":"x","datatype":"FP64","shape":[1,3],"data":[1,"\\ud800",3]}]}'
    with pytest.raises(V2Error, match=r'element 1 is "\\ud800", not a number \(FP64\)') as info:
        APIS["flat"].parse_infer(body)
    assert info.value.status == 400


# -- binary data (the binary tensor data extension) ------------------------------------


def _flat_values(data: Any) -> Optional[list]:
    if not isinstance(data, list):
        return None
    out: list = []
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        else:
            out.append(item)
    return out


def _raw_of(datatype: str, values: list) -> Optional[bytes]:
    """``values`` as a client sends them as binary data, or ``None`` when
    they are not all of ``datatype``."""
    if datatype == "BOOL":
        fits = all(type(v) is bool for v in values)
    elif datatype.startswith("FP"):
        fits = all(type(v) in (int, float) for v in values)
    else:
        fits = all(type(v) is int for v in values)
    if not fits:
        return None
    try:
        with np.errstate(over="ignore"):
            return np.array(values, dtype=RAW_TYPES[datatype]).tobytes()
    except (OverflowError, ValueError):
        return None


@st.composite
def binary_bodies(draw: Any) -> tuple[str, bytes, Optional[bytes]]:
    """A body of :func:`bodies` with some tensors' values sent as binary data
    after the JSON header, as tritonclient sends them, now and then spoiled
    (bytes a bool cannot be, NaN, a size one off, values given twice, bytes
    left over, a header length Python reads and Rust does not)."""
    api_name, body = draw(bodies())
    try:
        doc = json.loads(body)
    except ValueError:
        return api_name, body, str(len(body)).encode()
    raw = b""
    if isinstance(doc, dict) and isinstance(doc.get("inputs"), list):
        for tensor in doc["inputs"]:
            if not isinstance(tensor, dict) or not draw(st.booleans()):
                continue
            datatype = tensor.get("datatype")
            values = _flat_values(tensor.get("data"))
            if datatype not in RAW_TYPES or values is None:
                continue
            chunk = _raw_of(datatype, values)
            if chunk is None:
                continue
            spoil = draw(st.integers(0, 12))
            if spoil == 0 and chunk:
                at = draw(st.integers(0, len(chunk) - 1))
                chunk = chunk[:at] + bytes([draw(st.sampled_from([2, 255]))]) + chunk[at + 1 :]
            elif spoil == 1 and datatype in ("FP32", "FP64") and chunk:
                nan = np.array([draw(st.sampled_from([np.nan, np.inf]))], RAW_TYPES[datatype])
                chunk = nan.tobytes() + chunk[len(nan.tobytes()) :]
            size: Any = len(chunk)
            if spoil == 2:
                size += draw(st.sampled_from([-1, 1]))
            elif spoil == 3:
                size = draw(st.sampled_from([-1, 1.0, "8", True, None]))
            if spoil != 4:
                del tensor["data"]
            tensor["parameters"] = {"binary_data_size": size}
            raw += chunk
    if draw(st.integers(0, 12)) == 0:
        raw += b"\x00"
    header = json.dumps(doc, separators=(",", ":")).encode()
    length: Optional[bytes] = str(len(header)).encode()
    odd = draw(st.integers(0, 15))
    if odd == 0:
        length = None
    elif odd == 1:
        length = draw(st.sampled_from([b"+%d", b" %d", b"%d ", b"0%d"])) % len(header)
    elif odd == 2:
        length = str(len(header) + draw(st.sampled_from([-1, 1, 10**6]))).encode()
    elif odd == 3:
        length = draw(st.sampled_from([b"", b"x", b"-1", b"1_0", "٣".encode()]))
    return api_name, header + raw, length


def _check_binary(api_name: str, body: bytes, length: Optional[bytes]) -> Optional[InferRequest]:
    """Rust reads a body with binary data as the Python path does, or leaves
    it to Python; with cells, the same cells as the Python path's."""
    api = APIS[api_name]
    try:
        expected: Any = api.parse_infer_python(body, length)
    except Exception as exc:  # noqa: BLE001 - a V2Error, or a 500 for clashing paths
        expected = exc
    fast = _core.v2_read_request(api.plan, body, length)
    if fast is None:
        return None
    assert not isinstance(expected, Exception), (
        f"Rust read a body Python refuses ({expected!r}): {body[:300]!r} {length!r}"
    )
    got = InferRequest(*fast)
    assert got == expected
    assert [type(v) for v in got] == [type(v) for v in expected]
    if api.layout.features is not None:
        layout = api.layout
        plan = _core.V2Plan(
            layout.features,
            [list(p) for p in layout.paths],
            layout.delimiter,
            api.max_rows,
            cells=True,
        )
        cells = _core.v2_read_request(plan, body, length)
        assert cells is not None
        python_api = copy.copy(api)
        python_api.cells = True
        want = python_api.parse_infer_python(body, length).data
        if isinstance(want, _core.FeatureRows):
            assert isinstance(cells[0], _core.FeatureRows)
            assert [[(type(v), repr(v)) for v in row] for row in cells[0].to_rows()] == [
                [(type(v), repr(v)) for v in row] for row in want.to_rows()
            ]
        else:
            assert cells[0] == want
    return got


@settings(max_examples=1500)
@given(binary_bodies())
def test_rust_reads_binary_data_as_python_does_or_leaves_it(
    case: tuple[str, bytes, Optional[bytes]],
) -> None:
    _check_binary(*case)


def _triton_body(arrays: dict[str, np.ndarray], datatypes: dict[str, str]) -> tuple[bytes, bytes]:
    """A body as tritonclient's HTTP client sends it with binary data on."""
    inputs, raw = [], b""
    for name, array in arrays.items():
        chunk = array.astype(RAW_TYPES[datatypes[name]]).tobytes()
        inputs.append(
            {
                "name": name,
                "shape": list(array.shape),
                "datatype": datatypes[name],
                "parameters": {"binary_data_size": len(chunk)},
            }
        )
        raw += chunk
    header = json.dumps(
        {"inputs": inputs, "outputs": [{"name": "score", "parameters": {"binary_data": True}}]}
    ).encode()
    return header + raw, str(len(header)).encode()


def test_common_binary_bodies_are_read_in_rust() -> None:
    # The fast path is taken (a reader that always gave None would pass the
    # property above).
    matrix = np.arange(27, dtype=np.float64).reshape(3, 9) / 7
    for datatype in ("FP64", "FP32", "INT64", "INT32", "UINT8", "BOOL"):
        values = matrix > 1 if datatype == "BOOL" else matrix
        body, length = _triton_body({"input": values}, {"input": datatype})
        assert _check_binary("firewall", body, length) is not None, datatype
    columns = {f: np.arange(4) * (i + 1) for i, f in enumerate(FIREWALL)}
    body, length = _triton_body(columns, dict.fromkeys(FIREWALL, "INT32"))
    assert _check_binary("firewall", body, length) is not None
    body, length = _triton_body(
        {"src.port": np.array([1, 2]), "a.b": np.array([0.5, 1.5])},
        {"src.port": "UINT16", "a.b": "FP32"},
    )
    got = _check_binary("records", body, length)
    assert got is not None
    assert got.data == b'{"src":{"port":1},"a":{"b":0.5}}\n{"src":{"port":2},"a":{"b":1.5}}\n'


# -- answers ---------------------------------------------------------------------------

out_keys = st.sampled_from(["score", "label", "a", "é", 'q"'])
out_values = st.one_of(json_values, ints, floats, st.booleans())
any_row = st.one_of(
    st.dictionaries(out_keys, out_values, max_size=4),
    st.fixed_dictionaries({"score": floats, "label": st.booleans()}),
    json_scalars,
)
# Rows alike (every value of a column of one kind: the typed tensors), or
# anything.
rows = st.one_of(
    st.lists(st.fixed_dictionaries({"score": ints}), min_size=1, max_size=6),
    st.lists(
        # Integers at the edge of what FP64 holds exactly, beside floats.
        st.fixed_dictionaries({"score": floats | st.sampled_from(EDGES), "label": st.booleans()}),
        min_size=1,
        max_size=6,
    ),
    st.lists(any_row, min_size=1, max_size=6),
)


def _line(row: Any, style: int) -> bytes:
    if style == 0:
        return json.dumps(row).encode("utf-8", "surrogatepass")
    try:
        return _core.dumps(row)
    except (TypeError, ValueError):
        return json.dumps(row).encode("utf-8", "surrogatepass")


@settings(max_examples=1000)
@given(
    rows,
    st.integers(0, 2),
    st.one_of(st.none(), st.lists(out_keys, max_size=3)),
    st.one_of(st.none(), text),
    st.sampled_from(["1", None]),
    st.sampled_from(
        [None, b'{"score": NaN}', b'{"score": 1e400}', b'{"a": 1, "a": 2}', b"[1,", b"1 2"]
    ),
    # Binary data: the outputs that say, and the default for the others.
    st.dictionaries(out_keys, st.booleans(), max_size=3),
    st.booleans(),
)
def test_rust_answer_is_the_python_answer_or_none(
    rows: list,
    style: int,
    names: Optional[list[str]],
    request_id: Optional[str],
    version: Optional[str],
    odd: Optional[bytes],
    binary: dict[str, bool],
    binary_default: bool,
) -> None:
    lines = [_line(row, style) for row in rows]
    if odd is not None:
        lines.append(odd)
    api = V2Api(SimpleNamespace(config=None), "m", version)
    request = InferRequest(b"", len(lines), request_id, names, binary, binary_default)
    try:
        expected: Any = api.render_python(lines, request)
    except V2Error as exc:
        expected = exc
    except (ValueError, TypeError) as exc:  # NaN, a lone surrogate: a 500
        expected = exc
    fast = _core.v2_write_answer(lines, names, "m", version, request_id, binary, binary_default)
    if fast is None:
        return
    assert not isinstance(expected, Exception), f"Rust answered what Python refuses: {expected}"
    assert fast == expected


def test_the_common_answers_are_written_in_rust() -> None:
    lines = [b'{"score":0.25,"label":true,"n":3}', b'{"score":1,"label":false,"n":-4}']
    fast = _core.v2_write_answer(lines, None, "m", "1", "r")
    assert fast is not None
    assert fast[1] is None  # no binary data
    answer = json.loads(fast[0])
    assert [(t["name"], t["datatype"]) for t in answer["outputs"]] == [
        ("score", "FP64"),
        ("label", "BOOL"),
        ("n", "INT64"),
    ]
    assert answer["outputs"][0]["data"] == [0.25, 1.0]
    request = InferRequest(b"", 2, "r", None, {}, False)
    assert fast == APIS["flat"].render_python(lines, request)
    # As binary data, every datatype: the same bytes as Python's.
    for binary, default in (({"score": True}, False), ({}, True), ({"n": False}, True)):
        request = InferRequest(b"", 2, "r", None, binary, default)
        fast = _core.v2_write_answer(lines, None, "m", "1", "r", binary, default)
        assert fast is not None and fast[1] is not None
        assert fast == APIS["flat"].render_python(lines, request)
    lines = [b'{"u":18446744073709551615,"s":"\xc3\xa9","j":[1]}', b'{"u":1,"s":"","j":null}']
    request = InferRequest(b"", 2, None, None, {}, True)
    fast = _core.v2_write_answer(lines, None, "m", "1", None, {}, True)
    assert fast is not None and fast == APIS["flat"].render_python(lines, request)


def test_a_body_over_4_mib_is_left_to_python() -> None:
    # Its value tree could take 16 bytes per body byte: Python reads it.
    body = _body([{"name": "x", "datatype": "FP64", "shape": [1, 3], "data": [1, 2, 3]}])
    api = APIS["flat"]
    assert _core.v2_read_request(api.plan, body + b" " * (4 << 20)) is None
    assert api.parse_infer(body + b" " * (4 << 20)) == api.parse_infer(body)
    assert _core.v2_read_request(api.plan, body + b" " * (1 << 20)) is not None


def _flat(datatype: str, shape: list[int], data: Any, **extra: Any) -> bytes:
    """A body of one [N, 3] tensor for the "flat" model; ``data`` as bytes is
    JSON text put in as it is (numbers spelled as some writer spells them)."""
    tensor = {"name": "x", "datatype": datatype, "shape": shape, "data": "@"}
    body = _body([tensor], **extra)
    text = data if isinstance(data, bytes) else json.dumps(data).encode()
    return body.replace(b'"@"', text)


@pytest.mark.parametrize(
    ("body", "in_rust", "python_refuses"),
    [
        # Nested as the shape is: read; any other nesting: the Python 400.
        (_flat("INT64", [2, 3], [[1, 2, 3], [4, 5, 6]]), True, False),
        (_flat("INT64", [2, 3], [[1, 2], [3, 4, 5, 6]]), False, True),
        (_flat("INT64", [2, 3], [[[1], [2], [3]], [[4], [5], [6]]]), False, True),
        (_flat("INT64", [2, 3], [1, 2, 3, [4, 5, 6]]), False, True),
        (_flat("INT64", [1, 3], [[1, 2, 3], [4, 5, 6]]), False, True),
        # FLT_MAX as float32 writers spell it, and 65519 in FP16: numbers of
        # the type; from the magnitudes that round to infinity: refused.
        (_flat("FP32", [1, 3], b"[3.4028235e38,0,1]"), True, False),
        (_flat("FP32", [1, 3], [2.0**128 - 2.0**103, 0, 1]), False, True),
        (_flat("FP16", [1, 3], [65519.0, -65519, 1]), True, False),
        (_flat("FP16", [1, 3], [1, -65520, 0]), False, True),
        (_flat("FP64", [1, 3], b"[1e400,0,1]"), False, True),
        # The outputs: none named is all; one named twice is refused.
        (_flat("INT64", [1, 3], [1, 2, 3], outputs=[]), True, False),
        (_flat("INT64", [1, 3], [1, 2, 3], outputs=[{"name": "a"}, {"name": "a"}]), False, True),
    ],
)
def test_what_the_first_review_changed_is_read_alike(body, in_rust, python_refuses) -> None:
    got = _check_request("flat", body)
    assert (got is not None) == in_rust, body
    assert isinstance(_python_request(APIS["flat"], body), V2Error) == python_refuses, body


# What a body of binary data can make Rust build, measured in a fresh process
# (its peak resident size) so nothing else counts.
_PEAK_SCRIPT = """
import json, resource, sys
from types import SimpleNamespace
from packflow import _core
from packflow.serving.v2 import V2Api
shape = json.loads(sys.argv[1])
n = (4 << 20) - 256
head = {"name": "y", "datatype": "UINT8", "shape": shape, "parameters": {"binary_data_size": n}}
header = json.dumps({"inputs": [head]}).encode()
body = header + bytes(n)
config = SimpleNamespace(input_format=SimpleNamespace(value=sys.argv[2]), feature_names=["a", "b"],
                         nested_field_delimiter=".", rename_fields={}, output_keys=[])
api = V2Api(SimpleNamespace(config=config), "m", None, 10_000)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
read = _core.v2_read_request(api.plan, body, str(len(header)).encode())
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps([read is None, grown // 1024]))
"""


@pytest.mark.parametrize(
    ("shape", "fmt"),
    [
        # Over the request's row limit (the Python path's 413 from the shape).
        ([(4 << 20) - 256], "records"),
        ([(2 << 20) - 128, 2], "numpy"),
        # Not a shape the layout takes (a column is [N]; the model has 2 features).
        ([1, (4 << 20) - 256], "records"),
        ([1, (4 << 20) - 256], "numpy"),
    ],
)
def test_binary_values_of_a_body_python_refuses_by_its_shape_are_not_decoded(
    shape: list[int], fmt: str
) -> None:
    # 4 MiB of one-byte values once took 128 MiB in Rust (32 bytes a value)
    # before the shape was found wrong; the Python path reads no value then.
    out = subprocess.run(
        [sys.executable, "-c", _PEAK_SCRIPT, json.dumps(shape), fmt],
        capture_output=True,
        check=True,
        text=True,
        timeout=120,
    ).stdout
    refused, grown_mib = json.loads(out)
    assert refused
    assert grown_mib < 32, f"reading the body grew the process by {grown_mib} MiB"
