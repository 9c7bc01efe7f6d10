"""The Python side of the cargo-fuzz targets (run in their embedded interpreter):
what ``json.loads``, ``json.dumps`` and numpy say the results must be. Each
check raises AssertionError (a finding) when packflow disagrees."""

import json
import math
import struct

import numpy as np

from packflow import _core

KINDS = {dict: "object", list: "array", str: "string", int: "number", float: "number"}
KINDS.update({bool: "boolean", type(None): "null"})


def same(a, b):
    """Equal with the same types at every level, dict keys in the same order,
    floats bit for bit (NaN equals NaN)."""
    if type(a) is not type(b):
        return False
    if type(a) is dict:
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if type(a) is list:
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if type(a) is float:
        return struct.pack("<d", a) == struct.pack("<d", b) or (a != a and b != b)
    return a == b


def check_record(text, record):
    want = json.loads(text)
    assert same(record, want), f"parse_lines gave {record!r}, json.loads {want!r} for {text!r}"


def check_rejected(text, message, too_deep):
    """An error line: json.loads must refuse it too, or read a non-object of the
    kind the message names (past 255 levels json.loads may still read it)."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return
    if too_deep:
        return
    assert not isinstance(value, dict), f"json.loads reads {text!r}; packflow says {message!r}"
    kind = KINDS[type(value)]
    assert message == f"not a JSON object: {kind}", f"{message!r} for a JSON {kind}: {text!r}"


# --- the ndarray path ------------------------------------------------------------

MISSING = object()


def model_flatten(obj, delimiter, prefix=None, out=None):
    """The flattened record of str-keyed JSON objects (a repeated flat key is a
    ValueError; an empty dict stays a value)."""
    out = {} if out is None else out
    for key, value in obj.items():
        flat = key if prefix is None else f"{prefix}{delimiter}{key}"
        if isinstance(value, dict) and value:
            model_flatten(value, delimiter, flat, out)
            continue
        if flat in out:
            raise ValueError(f"duplicated key {flat!r}")
        out[flat] = value
    return out


def model_get(record, feature, delimiter):
    if feature in record:
        return record[feature]
    return model_flatten(record, delimiter).get(feature)


def same_array(got, want, what):
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype} != {want.dtype}"
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    assert got.tobytes() == want.tobytes(), f"{what}: {got!r} != {want!r}"


def check_ndarray(batch, features, delimiter):
    got = _core.parse_lines_to_ndarray(batch, features, delimiter)
    if got is None:
        return
    ref = _core.parse_lines(batch)
    assert got.lines == ref.lines, (got.lines, ref.lines)
    assert got.line_numbers == ref.line_numbers, (got.line_numbers, ref.line_numbers)
    assert got.errors == ref.errors, (got.errors, ref.errors)
    want = _core.records_to_ndarray(ref.records, features, None, delimiter)
    same_array(got.array, want, "records_to_ndarray")
    try:
        rows = [[model_get(r, f, delimiter) for f in features] for r in ref.records]
    except ValueError:
        return  # the model flattens whole records; packflow resolves only the features
    same_array(got.array, np.array(rows), "numpy.array of the records' features")


# --- the writers ---------------------------------------------------------------


class IntSub(int):
    def __repr__(self):
        return "bogus"

    __str__ = __repr__


class FloatSub(float):
    def __repr__(self):
        return "bogus"

    __str__ = __repr__


class StrSub(str):
    def __str__(self):
        return "bogus"


NUM_DTYPES = [
    np.float16,
    np.float32,
    np.float64,
    np.int8,
    np.int16,
    np.int32,
    np.int64,
    np.uint8,
    np.uint16,
    np.uint32,
    np.uint64,
    np.bool_,
    np.complex64,
]


def native(value):
    """What json.dumps must see: numpy values as ``.tolist()`` gives them."""
    if isinstance(value, (np.ndarray, np.generic)):
        if value.dtype.kind not in "biuf":
            return object()  # documented: only numeric and bool numpy values are written
        return value.tolist()
    if isinstance(value, dict):
        return {k: native(v) for k, v in value.items()}  # keys as they are: json judges them
    if isinstance(value, list):
        return [native(v) for v in value]
    return value


def number_of(chunk):
    tag, payload = chunk[0], chunk[1:].ljust(8, b"\0")
    kind = tag % 10
    if kind == 0:
        return struct.unpack("<d", payload)[0]
    if kind == 1:
        return int.from_bytes(payload, "little", signed=True)
    if kind == 2:
        return int.from_bytes(payload, "little")
    if kind == 3:
        shift = tag >> 4
        # The top shift makes ints past Python's 4300-digit str limit.
        bits = 8 * shift if shift < 15 else 16_000
        return int.from_bytes(payload, "little", signed=True) << bits
    if kind == 4:
        return struct.unpack("<f", payload[:4])[0]
    if kind == 5:
        return IntSub(int.from_bytes(payload, "little", signed=True))
    if kind == 6:
        return FloatSub(struct.unpack("<d", payload)[0])
    if kind == 7:
        dtype = np.dtype(NUM_DTYPES[payload[0] % len(NUM_DTYPES)])
        return np.frombuffer(payload[1 : 1 + dtype.itemsize].ljust(dtype.itemsize, b"\0"), dtype)[0]
    if kind == 8:
        return bool(payload[0] & 1)
    # A number as the key (not a dict: kind 9 is turned into another kind).
    key = number_of(bytes([payload[0] - payload[0] % 10 + payload[0] % 10 % 9]) + payload[1:])
    return {key: number_of(payload[::-1])}


def array_of(data):
    """A numpy array of a numeric dtype, either byte order, in an odd layout."""
    if len(data) < 2:
        return None
    dtype = np.dtype(NUM_DTYPES[data[0] % len(NUM_DTYPES)])
    if data[1] & 1:
        dtype = dtype.newbyteorder()
    body = data[2:]
    body = body[: len(body) - len(body) % dtype.itemsize]
    arr = np.frombuffer(body, dtype)
    shape = data[1] >> 1
    if shape & 1 and arr.size % 2 == 0 and arr.size:
        arr = arr.reshape(2, -1)
    if shape & 2:
        arr = arr.T
    if shape & 4:
        arr = arr[..., ::2]
    if shape & 8:
        arr = arr[::-1]
    if shape & 16:
        arr = np.asfortranarray(arr)
    return arr


def dumps_like_json(value, allow_nan):
    """Checks ``dumps(value)`` against ``json.dumps`` and returns its bytes (or None
    when both refuse the value, with the same exception type)."""
    try:
        want = json.dumps(
            native(value), separators=(",", ":"), ensure_ascii=False, allow_nan=allow_nan
        ).encode()
    except (TypeError, ValueError) as e:
        want = e
    try:
        got = _core.dumps(value, allow_nan=allow_nan)
    except (TypeError, ValueError) as e:
        assert isinstance(want, Exception), f"dumps({value!r}) raised {e!r}; json wrote {want!r}"
        assert type(e) is type(want), f"dumps({value!r}) raised {e!r}; json raised {want!r}"
        return None
    assert not isinstance(want, Exception), f"dumps({value!r}) wrote {got!r}; json raised {want!r}"
    assert got == want, f"dumps({value!r}) wrote {got!r}; json.dumps {want!r}"
    return got


def finite_plain(value):
    """The plain int/float/bool a finite number reads back as, else MISSING."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        value = int(value)
        return value if value.bit_length() < 13_000 else MISSING  # str() allows 4300 digits
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else MISSING
    return MISSING


def check_numbers(data):
    """Every number of ``data`` (9-byte chunks) and an array of it, written
    alone, in a list and as dict keys; returns the finite ones as plain Python
    values with what ``dumps`` wrote for them, for serde_json to read back."""
    values = [number_of(data[i : i + 9]) for i in range(0, len(data), 9)]
    arr = array_of(data)
    for allow_nan in (False, True):
        for v in values:
            dumps_like_json(v, allow_nan)
        dumps_like_json(values, allow_nan)
        if arr is not None:
            dumps_like_json(arr, allow_nan)
            dumps_like_json({"a": arr, "v": values}, allow_nan)
    plain, kept = [], []
    for v in values:
        p = finite_plain(v)
        if p is not MISSING:
            plain.append(p)
            kept.append(v)
    if arr is not None and arr.dtype.kind in "biuf" and np.isfinite(arr).all():
        plain.append(arr.tolist())
        kept.append(arr)
    return plain, _core.dumps(kept)


def strings_of(data):
    """strs of every storage kind from the same bytes."""
    out = [
        bytes(b & 0x7F for b in data).decode("ascii"),
        data.decode("utf-8", "replace"),
        data.decode("latin-1"),
        data[: len(data) - len(data) % 2].decode("utf-16-le", "surrogatepass"),
        "".join(
            chr(int.from_bytes(data[i : i + 3], "little") % 0x110000)
            for i in range(0, len(data), 3)
        ),
    ]
    out.append(StrSub(out[1]))
    out.append(np.str_(out[2]))
    return out


def check_strings(data):
    """Each str alone, as a key and in a row; returns ``(str, dumps(str))``
    for those UTF-8 can hold, for serde_json to read back."""
    pairs = []
    for s in strings_of(data):
        try:
            s.encode("utf-8")
            encodable = True
        except UnicodeEncodeError:
            encodable = False
        for value in (s, {s: s}, [s, {"k": [s]}]):
            try:
                got = _core.dumps(value)
            except ValueError as e:
                assert not encodable, f"dumps({value!r}) raised {e!r}"
                assert "lone surrogate" in str(e), e
                continue
            assert encodable, f"dumps({value!r}) wrote {got!r} for a lone surrogate"
            want = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
            assert got == want, f"dumps({value!r}) wrote {got!r}; json.dumps {want!r}"
        if encodable:
            lines = _core.dumps_lines([{s: s}, [s]])
            assert lines == b"".join(_core.dumps(r) + b"\n" for r in ({s: s}, [s])), lines
            pairs.append((str(s) if type(s) is str else str.__str__(s), _core.dumps(s)))
    return pairs
