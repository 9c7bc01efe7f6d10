"""Python values built from fuzz bytes, for the atheris harnesses: nested dicts
and lists, subclasses of str/int/float/dict, numpy scalars and arrays of odd
dtypes, byte orders and strides, NaN and infinities, huge ints, deep nesting and
cycles. Plain Python (no atheris), so the seed replay in the test suite runs
without it; every byte string gives a value, the same one each time."""

from __future__ import annotations

import collections
import struct
from typing import Any

import numpy as np


class Draw:
    """Reads choices from the fuzz bytes; past the end every read is 0."""

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        b = self.data[self.pos] if self.pos < len(self.data) else 0
        self.pos += 1
        return b

    def take(self, n: int) -> bytes:
        out = self.data[self.pos : self.pos + n].ljust(n, b"\0")
        self.pos += n
        return out

    def below(self, n: int) -> int:
        return self.byte() % n

    def pick(self, seq):
        return seq[self.byte() % len(seq)]

    def flag(self) -> bool:
        return bool(self.byte() & 1)

    @property
    def done(self) -> bool:
        return self.pos >= len(self.data)


# --- hostile subclasses (json writes them as their base type) ----------------------


class IntSub(int):
    def __repr__(self) -> str:
        return "IntSub-repr"

    __str__ = __repr__


class FloatSub(float):
    def __repr__(self) -> str:
        return "FloatSub-repr"

    __str__ = __repr__


class StrSub(str):
    """A str subclass whose str() lies; its text is what counts."""

    def __str__(self) -> str:
        return "StrSub-str"


class KeyStr(str):
    """A str subclass with Python-level hashing and equality (runs Python code
    in the middle of dict lookups)."""

    def __hash__(self) -> int:
        return str.__hash__(self)

    def __eq__(self, other: object) -> bool:
        return str.__eq__(self, other)


class DictSub(dict):
    pass


class ListSub(list):
    pass


class Opaque:
    """Not serializable, not convertible: only a fallback can handle it."""

    def __repr__(self) -> str:
        return "Opaque()"


SPECIAL_FLOATS = [
    float("nan"),
    float("inf"),
    float("-inf"),
    -0.0,
    0.0,
    5e-324,
    2.2250738585072014e-308,
    1.7976931348623157e308,
    1e16,
    1e-5,
    1e-4,
    0.1,
    9007199254740993.0,
    1e22,
]

NUM_DTYPES = [
    "f2",
    "f4",
    "f8",
    "i1",
    "i2",
    "i4",
    "i8",
    "u1",
    "u2",
    "u4",
    "u8",
    "?",
]
ODD_DTYPES = ["c8", "c16", "U3", "S3", "M8[s]", "m8[ms]", "V4", "O", "g"]

KEY_POOL = ["a", "b", "c", "0", "1", "a.b", "b.c", ".", "", "a::b", "a_b", "é", "x y", "src"]


def text(d: Draw, max_len: int = 12) -> str:
    """A str of one of the storage kinds, sometimes with controls or a lone surrogate."""
    n = d.below(max_len + 1)
    kind = d.below(6)
    if kind == 0:
        return "".join(d.pick(KEY_POOL) for _ in range(min(n, 3)))
    if kind == 1:
        return bytes(d.byte() & 0x7F for _ in range(n)).decode("ascii")
    if kind == 2:
        return bytes(d.byte() for _ in range(n)).decode("latin-1")
    if kind == 3:
        return "".join(chr(0x100 + d.byte() * 97 % 0xD700) for _ in range(n))
    if kind == 4:
        return "".join(chr(0x10000 + d.byte() * 4099) for _ in range(n))
    # Any code point, lone surrogates included.
    return "".join(chr(int.from_bytes(d.take(3), "little") % 0x110000) for _ in range(n))


def number(d: Draw) -> Any:
    kind = d.below(9)
    if kind == 0:
        return d.below(256) - 128
    if kind == 1:
        return int.from_bytes(d.take(8), "little", signed=True)
    if kind == 2:
        shift = d.below(40) * 8
        big = int.from_bytes(d.take(8), "little", signed=True) << shift
        return big if d.below(50) else big << 15_000  # past str()'s 4300 digits
    if kind == 3:
        return struct.unpack("<d", d.take(8))[0]
    if kind == 4:
        return d.pick(SPECIAL_FLOATS)
    if kind == 5:
        return IntSub(int.from_bytes(d.take(4), "little", signed=True))
    if kind == 6:
        return FloatSub(d.pick(SPECIAL_FLOATS) if d.flag() else struct.unpack("<d", d.take(8))[0])
    if kind == 7:
        return d.flag()
    dtype = np.dtype(d.pick(NUM_DTYPES))
    return np.frombuffer(d.take(dtype.itemsize), dtype)[0]


def array(d: Draw, depth: int = 0) -> np.ndarray:
    """A numpy array: numeric in either byte order or an odd dtype, reshaped,
    transposed, strided or reversed."""
    odd = d.below(5) == 0
    dtype = np.dtype(d.pick(ODD_DTYPES) if odd else d.pick(NUM_DTYPES))
    if dtype.kind != "O" and d.flag():
        dtype = dtype.newbyteorder()
    n = d.below(13)
    if dtype.kind == "U":
        arr = np.array([text(d, 3) for _ in range(n)], dtype=dtype)
    elif dtype.kind == "O":
        arr = np.empty(n, dtype=object)
        for i in range(n):
            arr[i] = value(d, depth + 1, 2)
    else:
        arr = np.frombuffer(d.take(n * dtype.itemsize), dtype)
        if dtype.kind == "M" or dtype.kind == "m":
            arr = arr.copy()
            arr[np.isnat(arr)] = 0
    layout = d.byte()
    if layout & 1 and n % 2 == 0 and n:
        arr = arr.reshape(2, -1)
    if layout & 2 and n % 3 == 0 and n:
        arr = arr.reshape(3, -1)
    if layout & 4:
        arr = arr.T
    if layout & 8:
        arr = arr[..., ::2]
    if layout & 16:
        arr = arr[::-1]
    if layout & 32:
        arr = np.asfortranarray(arr)
    if layout & 64 and arr.ndim and arr.shape[0]:
        arr = arr[0]  # 0-d or one row
    return arr


def key(d: Draw) -> Any:
    kind = d.below(12)
    if kind < 6:
        return d.pick(KEY_POOL)
    if kind == 6:
        return text(d, 4)
    if kind == 7:
        return KeyStr(d.pick(KEY_POOL))
    if kind == 8:
        return d.pick([0, 1, -7, 2**70, IntSub(3), 1.5, float("nan"), float("inf"), -0.0])
    if kind == 9:
        return d.pick([True, False, None])
    if kind == 10:
        return d.pick([(1, 2), b"k", np.int64(4), np.float64(2.5), frozenset()])
    return StrSub(d.pick(KEY_POOL))


def value(d: Draw, depth: int = 0, budget: int = 4) -> Any:
    """Any value; containers nest while the budget lasts."""
    kind = d.below(20) if budget > 0 else d.below(10)
    if kind == 0:
        return None
    if kind in (1, 2, 3):
        return number(d)
    if kind in (4, 5):
        return text(d)
    if kind == 6:
        return StrSub(text(d, 4))
    if kind == 7:
        return np.str_(text(d, 4))
    if kind == 8:
        return array(d, depth) if budget > 0 else number(d)
    if kind == 9:
        return d.pick([Opaque(), b"raw", {1, 2}, 3 + 4j, range(2), np.datetime64(1, "s")])
    if kind in (10, 11, 12):
        return [value(d, depth + 1, budget - 1) for _ in range(d.below(5))]
    if kind == 13:
        return tuple(value(d, depth + 1, budget - 1) for _ in range(d.below(4)))
    if kind in (14, 15, 16):
        return {key(d): value(d, depth + 1, budget - 1) for _ in range(d.below(5))}
    if kind == 17:
        cls = d.pick([DictSub, collections.OrderedDict, ListSub])
        if cls is ListSub:
            return ListSub(value(d, depth + 1, budget - 1) for _ in range(d.below(4)))
        return cls((key(d), value(d, depth + 1, budget - 1)) for _ in range(d.below(4)))
    if kind == 18:
        return nest(d, value(d, depth + 1, 0))
    cyclic: list = [value(d, depth + 1, 1)]
    holder = {"self": cyclic} if d.flag() else cyclic
    cyclic.append(holder)
    return holder


def nest(d: Draw, inner: Any) -> Any:
    """``inner`` under 250 to 260 (or a few thousand) levels of lists or dicts."""
    levels = 3000 if d.below(8) == 1 else 250 + d.below(11)
    as_dict = d.flag()
    for _ in range(levels):
        inner = {"k": inner} if as_dict else [inner]
    return inner


def record(d: Draw, budget: int = 3) -> dict:
    """A dict with keys from the pool (delimiters inside some) and nested values."""
    out: dict = {}
    for _ in range(d.below(6)):
        k = d.pick(KEY_POOL) if d.below(4) else key(d)
        if budget > 0 and d.below(3) == 0:
            out[k] = record(d, budget - 1)
        elif budget > 0 and d.below(4) == 0:
            out[k] = [record(d, budget - 1) if d.flag() else scalar(d) for _ in range(d.below(3))]
        else:
            out[k] = scalar(d)
    return out


def scalar(d: Draw) -> Any:
    kind = d.below(8)
    if kind == 0:
        return None
    if kind < 4:
        return number(d)
    if kind < 6:
        return text(d, 4)
    if kind == 6:
        return d.pick([{}, [], StrSub("s"), np.float32(1.5), np.array([1, 2])])
    return d.pick(SPECIAL_FLOATS)


# --- what a value is -----------------------------------------------------------------


def fingerprint(v: Any, _active: set | None = None) -> Any:
    """A comparable snapshot of ``v`` (types, order, float bits, array bytes and
    layout), cycles included: compare before and after a call to see that the
    call left its inputs alone."""
    active = set() if _active is None else _active
    t = type(v)
    if t in (str, StrSub, KeyStr, np.str_):
        return (t.__name__, str.__str__(v))
    if isinstance(v, bool) or v is None:
        return (t.__name__, v)
    if isinstance(v, int):
        return (t.__name__, int.__repr__(v) if abs(v).bit_length() < 13_000 else v.bit_length())
    if isinstance(v, float):
        return (t.__name__, struct.pack("<d", v))
    if id(v) in active:
        return ("cycle",)
    active.add(id(v))
    try:
        if isinstance(v, np.ndarray):
            if v.dtype.kind == "O":
                items: Any = tuple(fingerprint(x, active) for x in v.ravel(order="K"))
            else:
                items = v.tobytes(order="A")
            return ("ndarray", v.dtype.str, v.shape, v.strides, items)
        if isinstance(v, dict):
            pairs = tuple((fingerprint(k, active), fingerprint(x, active)) for k, x in v.items())
            return (t.__name__, pairs)
        if isinstance(v, (list, tuple)):
            return (t.__name__, tuple(fingerprint(x, active) for x in v))
        return (t.__name__, id(v))
    finally:
        active.discard(id(v))


CONTAINERS = (np.ndarray, dict, list, tuple)


def depth_of(v: Any, kinds: tuple = CONTAINERS, _active: set | None = None) -> int:
    """Nesting levels of ``kinds`` (an array adds its ndim), as the library
    counts them; a cycle counts as infinitely deep."""
    if not isinstance(v, kinds):
        return 0
    active = set() if _active is None else _active
    if id(v) in active:
        return 10**6
    active.add(id(v))
    try:
        if isinstance(v, np.ndarray):
            inner = 0
            if v.dtype.kind == "O" and v.size:
                inner = max(depth_of(x, kinds, active) for x in v.ravel())
            return v.ndim + inner
        items = v.values() if isinstance(v, dict) else v
        return 1 + max((depth_of(x, kinds, active) for x in items), default=0)
    finally:
        active.discard(id(v))


def has_surrogate(v: Any, _active: set | None = None) -> bool:
    """Whether some str in ``v`` (a key included) holds a lone surrogate."""
    if isinstance(v, str):
        return any(0xD800 <= ord(c) < 0xE000 for c in v)
    if not isinstance(v, (np.ndarray, dict, list, tuple)):
        return False
    active = set() if _active is None else _active
    if id(v) in active:
        return False
    active.add(id(v))
    try:
        if isinstance(v, dict):
            return any(has_surrogate(k, active) or has_surrogate(x, active) for k, x in v.items())
        if isinstance(v, np.ndarray):
            return v.dtype.kind == "O" and any(has_surrogate(x, active) for x in v.ravel())
        return any(has_surrogate(x, active) for x in v)
    finally:
        active.discard(id(v))
