"""atheris harnesses for packflow's Python entry points into Rust. Each takes the
fuzz bytes, builds Python values from them (``fuzz_values``), calls one entry
point and asserts its properties: no crash, only the documented exception types,
the result a plain-Python model or ``json`` gives where one is defined, and the
inputs left as they were. ``HARNESSES`` maps a name to its function; ``run.py``
fuzzes one, the test suite replays the seed corpus through all of them."""

from __future__ import annotations

import json
import math
import struct
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))  # oracle.py, shared with the cargo-fuzz targets
sys.path.insert(0, str(HERE.parents[1]))  # tests.support.record_semantics: the records models

import oracle  # noqa: E402
from fuzz_values import (  # noqa: E402
    KEY_POOL,
    Draw,
    Opaque,
    array,
    depth_of,
    fingerprint,
    has_surrogate,
    nest,
    record,
    value,
)

from packflow import _core  # noqa: E402
from packflow.backend.configuration import BackendConfig  # noqa: E402
from packflow.backend.preprocessors import RecordsPreprocessor  # noqa: E402
from packflow.exceptions import (  # noqa: E402
    InferenceBackendValidationError,
    PreprocessorRuntimeError,
)
from tests.support.record_semantics import model_flatten, model_records  # noqa: E402

MAX_DEPTH = _core.MAX_DEPTH
DELIMITERS = [".", "::", "_", "é", "a"]
# Values this deep may or may not pass: the library's and numpy's level counts
# differ by one or two around arrays; below and above the band they must agree.
BAND = range(MAX_DEPTH - 3, MAX_DEPTH + 4)


def same(a: Any, b: Any) -> bool:
    """Equal with the same types, dict keys in the same order, floats bit for bit
    (NaN equals NaN), arrays by dtype, shape and bytes; an object is itself."""
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return len(a) == len(b) and all(
            same(k, j) and same(x, y) for (k, x), (j, y) in zip(a.items(), b.items())
        )
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b) or (a != a and b != b)
    if isinstance(a, np.ndarray):
        if a.dtype != b.dtype or a.shape != b.shape:
            return False
        if a.dtype.kind == "O":
            return all(same(x, y) for x, y in zip(a.ravel(), b.ravel()))
        return a.tobytes() == b.tobytes()
    try:
        return bool(a == b) or (a != a and b != b)
    except (TypeError, ValueError):
        return False


class Unchanged:
    """Asserts on exit that the inputs look as they did on entry."""

    def __init__(self, *inputs: Any):
        self.inputs = inputs
        self.before = fingerprint(inputs)

    def __enter__(self) -> Unchanged:
        return self

    def __exit__(self, *exc: object) -> None:
        assert fingerprint(self.inputs) == self.before, "the call changed its inputs"


def native(v: Any, _active: frozenset = frozenset()) -> Any:
    """What ``json.dumps`` must be given to write what ``dumps`` writes: numpy
    values as ``.tolist()``; keys left alone; a cycle is a ValueError."""
    if isinstance(v, (str, bytes)):
        return v  # numpy.str_ is a str
    if isinstance(v, (np.ndarray, np.generic)):
        if v.dtype.kind not in "biufO" or (v.dtype.kind == "f" and v.dtype.itemsize > 8):
            # Documented: only numeric and bool numpy values are written; json
            # refuses this stand-in where it meets it, after what comes before.
            return Opaque()
        if isinstance(v, np.ndarray) and v.dtype.kind == "O":
            return (
                [native(x, _active | {id(v)}) for x in v.tolist()] if v.ndim else native(v.item())
            )
        return v.tolist()
    if id(v) in _active:
        raise ValueError("Circular reference detected")
    if isinstance(v, dict):
        return {k: native(x, _active | {id(v)}) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [native(x, _active | {id(v)}) for x in v]
    return v


def json_dumps(v: Any, allow_nan: bool) -> bytes | Exception:
    """What ``dumps`` must write, or the error json gives (its type must match)."""
    try:
        return json.dumps(
            native(v), separators=(",", ":"), ensure_ascii=False, allow_nan=allow_nan
        ).encode()
    except (TypeError, ValueError) as e:
        return e


def agree_with_json(got: bytes | Exception, v: Any, allow_nan: bool) -> None:
    depth = depth_of(v)
    want = json_dumps(v, allow_nan) if depth < 900 else RecursionError()
    if depth > BAND[-1]:
        # Too deep for the library; an error met earlier in the walk may win.
        assert isinstance(got, (TypeError, ValueError)), f"dumps wrote {got!r} at depth {depth}"
        if not isinstance(want, Exception):
            assert "nesting deeper" in str(got), got
        return
    if depth in BAND and isinstance(got, ValueError) and "nesting deeper" in str(got):
        return
    if isinstance(want, Exception):
        assert isinstance(got, Exception), f"dumps wrote {got!r}; json raised {want!r}"
        if has_surrogate(v):
            assert isinstance(got, (TypeError, ValueError)), got
        else:
            assert type(got) is type(want) or (
                isinstance(want, ValueError) and isinstance(got, ValueError)
            ), f"dumps raised {got!r}; json raised {want!r}"
        return
    assert got == want, f"dumps gave {got!r}; json.dumps {want!r}"


def call(fn, *args, **kwargs) -> Any:
    try:
        return fn(*args, **kwargs)
    except (TypeError, ValueError, OverflowError) as e:
        return e


# --- JSON Lines ---------------------------------------------------------------------


def jsonl_batch(d: Draw, features: list[str] | None = None) -> bytes:
    """A batch of JSON Lines from values: compact or spaced, CRLF or LF, blank
    lines, BOMs, and some lines cut, spliced or overwritten."""
    lines = []
    for _ in range(d.below(6)):
        if features is not None and d.below(4):
            v: Any = numeric_record(d, features)
        else:
            v = record(d) if d.below(4) else value(d, 0, 2)
        try:
            line = json.dumps(
                oracle_native(v),
                ensure_ascii=d.flag(),
                separators=d.pick([(",", ":"), (", ", ": "), (" ,", " : ")]),
                allow_nan=True,
            ).encode("utf-8", "surrogatepass")
        except (TypeError, ValueError, RecursionError):
            line = bytes(d.take(d.below(8)))
        mutation = d.below(10)
        if mutation == 0 and line:
            line = line[: d.below(len(line))]
        elif mutation == 1:
            at = d.below(len(line) + 1)
            line = line[:at] + d.take(1 + d.below(3)) + line[at:]
        elif mutation == 2 and line:
            at = d.below(len(line))
            line = line[:at] + bytes([d.byte()]) + line[at + 1 :]
        elif mutation == 3:
            line = b"\xef\xbb\xbf" + line
        elif mutation == 4:
            line = b" \t" + line + b" \r"
        lines.append(line)
        if d.below(5) == 0:
            lines.append(d.pick([b"", b"  ", b"\t\r"]))
    end = d.pick([b"\n", b"\r\n"])
    return end.join(lines) + (end if d.flag() else b"")


def oracle_native(v: Any, depth: int = 0, _active: set | None = None) -> Any:
    """A value json can write: numpy values as lists, other odd values as strs,
    a cycle or a level past 300 cut short."""
    if isinstance(v, (np.ndarray, np.generic)):
        v = v.tolist()
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    active = set() if _active is None else _active
    if not isinstance(v, (dict, list, tuple)):
        return repr(v)
    if id(v) in active or depth > 300:
        return "cut"
    active.add(id(v))
    try:
        if isinstance(v, dict):
            return {
                k if isinstance(k, (str, int, float, bool)) or k is None else repr(k): (
                    oracle_native(x, depth + 1, active)
                )
                for k, x in v.items()
            }
        return [oracle_native(x, depth + 1, active) for x in v]
    finally:
        active.discard(id(v))


def numeric_record(d: Draw, features: list[str]) -> dict:
    """A record holding a number or bool at most feature paths."""
    out: dict = {}
    for f in features:
        if d.below(8) == 0:
            continue
        v = d.pick(
            [d.below(1000) - 500, d.flag(), float(d.below(100)) / 8, float("nan"), 2**63, "s"]
        )
        parts = f.split(d.pick(DELIMITERS)) if d.below(6) else [f]
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {}) if isinstance(node.get(p, {}), dict) else {}
        node[parts[-1]] = v
    if d.below(4) == 0:
        out.update(record(d, 1))
    return out


def check_parsed_lines(batch: bytes) -> None:
    got = _core.parse_lines(batch)
    assert got.lines == len(got.records) + len(got.errors)
    numbers = sorted(got.line_numbers + [e[0] for e in got.errors])
    assert numbers == sorted(set(numbers)), "a line reported twice"
    pieces = batch.split(b"\n")
    if batch.endswith(b"\n"):
        pieces.pop()
    nonblank = [
        (i + 1, p[:-1] if p.endswith(b"\r") else p)
        for i, p in enumerate(pieces)
        if p.strip(b" \t\r")
    ]
    assert numbers == [n for n, _ in nonblank], (numbers, nonblank)
    raw_of = dict(nonblank)
    for line_no, rec in zip(got.line_numbers, got.records):
        text_ = raw_of[line_no].decode("utf-8")
        oracle.check_record(text_.removeprefix("\ufeff"), rec)
    for line_no, raw, msg in got.errors:
        assert raw == raw_of[line_no], (raw, raw_of[line_no])
        try:
            text_ = raw.decode("utf-8")
        except UnicodeDecodeError:
            assert msg.startswith("invalid UTF-8 at byte "), msg
            continue
        too_deep = "nesting deeper than" in msg
        assert msg.startswith(("invalid JSON", "not a JSON object: ")), msg
        oracle.check_rejected(text_.removeprefix("\ufeff"), msg, too_deep)


def fuzz_parse_lines(data: bytes) -> None:
    d = Draw(data)
    batch = jsonl_batch(d)
    with Unchanged(batch):
        check_parsed_lines(batch)


def fuzz_parse_lines_to_ndarray(data: bytes) -> None:
    d = Draw(data)
    delimiter = d.pick(DELIMITERS)
    parts = ["a", "b", "src", "port", "x.y", "é", "0", "a_b", ""]
    features = [
        delimiter.join(d.pick(parts) for _ in range(1 + d.below(3))) for _ in range(d.below(5))
    ]
    batch = jsonl_batch(d, features)
    with Unchanged(batch, features):
        oracle.check_ndarray(batch, features, delimiter)


# --- the JSON writer -------------------------------------------------------------------


def fuzz_dumps(data: bytes) -> None:
    d = Draw(data)
    v = value(d, 0, 5)
    allow_nan = d.flag()
    with Unchanged(v):
        got = call(_core.dumps, v, allow_nan=allow_nan)
    assert isinstance(got, (bytes, TypeError, ValueError)), got
    agree_with_json(got, v, allow_nan)


def fuzz_dumps_lines(data: bytes) -> None:
    d = Draw(data)
    rows = [value(d, 0, 3) for _ in range(d.below(5))]
    container = d.pick([list, tuple, list, iter])
    rows_in = container(rows)
    allow_nan = d.flag()
    with Unchanged(rows):
        got = call(_core.dumps_lines, rows_in, allow_nan=allow_nan)
    if container is iter:
        assert isinstance(got, TypeError), got
        return
    for i, row in enumerate(rows):
        one = call(_core.dumps, row, allow_nan=allow_nan)
        if isinstance(one, Exception):
            assert type(got) is type(one), (got, one)
            # Errors raised by Python on the way keep their message and get a note.
            notes = getattr(got, "__notes__", [])
            assert (
                str(got).startswith(f"row {i}")
                or f"(row {i}" in str(got)
                or any(f"row {i}" in n for n in notes)
            ), got
            return
    assert got == b"".join(_core.dumps(r, allow_nan=allow_nan) + b"\n" for r in rows), got


def fuzz_check_and_dump_lines(data: bytes) -> None:
    d = Draw(data)
    outputs: Any = [record(d) if d.below(5) else value(d, 0, 2) for _ in range(d.below(5))]
    if d.below(8) == 1:
        outputs = value(d, 0, 2)
    n_inputs = max(0, len(outputs) + d.pick([0, 0, 0, 1, -1])) if isinstance(outputs, list) else 1
    allow_nan = d.flag()
    with Unchanged(outputs):
        try:
            got: Any = _core.check_and_dump_lines(outputs, n_inputs, allow_nan=allow_nan)
        except (InferenceBackendValidationError, ValueError) as e:
            got = e
    try:
        _core.check_outputs(outputs, n_inputs)
        want: Any = _core.dumps_lines(outputs, allow_nan=allow_nan)
    except (InferenceBackendValidationError, ValueError, TypeError) as e:
        want = e
    if isinstance(want, Exception):
        assert type(got) is type(want) and str(got) == str(want), (got, want)
    else:
        assert got == want, (got, want)


# --- records ------------------------------------------------------------------------


def records_batch(d: Draw) -> list:
    rows: list = [record(d) for _ in range(d.below(5))]
    if rows and d.below(10) == 1:
        rows[d.below(len(rows))] = value(d, 0, 1)  # a row that is not a dict
    if rows and d.below(10) == 1:
        rows[0] = nest(d, rows[0])
    return rows


def model_flatten_or_error(obj: Any, delimiter: str, lists: bool) -> Any:
    if not isinstance(obj, dict):
        return TypeError("not a dict")
    if depth_of(obj, (dict, list) if lists else (dict,)) > MAX_DEPTH:
        return ValueError("too deep")
    try:
        return model_flatten(obj, delimiter, lists)
    except ValueError as e:
        return e


def fuzz_flatten_dict(data: bytes) -> None:
    d = Draw(data)
    obj: Any = value(d, 0, 3) if d.below(10) == 1 else record(d, 4)
    if d.below(12) == 1:
        obj = nest(d, obj)
    delimiter = d.pick(DELIMITERS)
    lists = d.flag()
    with Unchanged(obj):
        got = call(_core.flatten_dict, obj, delimiter, lists)
    want = model_flatten_or_error(obj, delimiter, lists)
    if depth_of(obj, (dict, list) if lists else (dict,)) in BAND:
        return
    if isinstance(want, Exception):
        assert type(got) is type(want), (got, want)
    else:
        assert not isinstance(got, Exception), (got, want)
        assert same(got, want), (got, want)


def fuzz_flatten_records(data: bytes) -> None:
    d = Draw(data)
    rows: Any = records_batch(d)
    if d.below(12) == 1:
        rows = tuple(rows)
    delimiter = d.pick(DELIMITERS)
    lists = d.flag()
    with Unchanged(rows):
        got = call(_core.flatten_records, rows, delimiter, lists)
    if not isinstance(rows, list):
        assert isinstance(got, TypeError), got
        return
    for i, row in enumerate(rows):
        one = call(_core.flatten_dict, row, delimiter, lists)
        if isinstance(one, Exception):
            assert type(got) is type(one), (got, one)
            # The location follows the reason: "... (row 3, key \"a.b\")".
            assert f"(row {i}" in str(got) or str(got).startswith(f"row {i}"), got
            return
    assert isinstance(got, list) and len(got) == len(rows), got
    for row, flat in zip(rows, got):
        assert same(flat, _core.flatten_dict(row, delimiter, lists))


def model_get_nested_field(obj: dict, field: str, delimiter: str) -> Any:
    if field in obj:
        return obj[field]
    return model_flatten(obj, delimiter).get(field)


def fuzz_records_to_ndarray(data: bytes) -> None:
    d = Draw(data)
    rows = records_batch(d)
    delimiter = d.pick(DELIMITERS)
    parts = ["a", "b", "c", "0", "src", "é", "x y", "missing"]
    features: Any = [
        delimiter.join(d.pick(parts) for _ in range(1 + d.below(3))) for _ in range(d.below(5))
    ]
    if d.below(16) == 1:
        features = d.pick([tuple(features), "a.b", [1, "a"], None])
    dtype = d.pick(
        [None, None, None, np.float64, np.float32, np.int64, np.int32, bool, object, np.uint8]
    )
    with Unchanged(rows, features):
        got = call(_core.records_to_ndarray, rows, features, dtype, delimiter)
    assert isinstance(got, (np.ndarray, TypeError, ValueError, OverflowError)), got
    if not isinstance(features, (list, tuple)) or not all(type(f) is str for f in features):
        assert isinstance(got, TypeError), got
        return
    if not all(isinstance(r, dict) for r in rows):
        assert isinstance(got, ValueError), got
        return
    try:
        cells = [[model_get_nested_field(r, f, delimiter) for f in features] for r in rows]
    except ValueError:
        return  # the model flattens whole records; packflow resolves only the features
    try:
        want: Any = np.array(cells, dtype=dtype)
    except (TypeError, ValueError, OverflowError) as e:
        want = e
    if isinstance(want, Exception):
        assert isinstance(got, Exception), f"{got!r}; numpy raised {want!r} for {cells!r}"
        return
    assert isinstance(got, np.ndarray), f"{got!r}; numpy made {want!r} of {cells!r}"
    assert got.dtype == want.dtype and got.shape == want.shape, (got, want)
    if want.dtype.kind == "O":
        assert all(a is b or same(a, b) for a, b in zip(got.ravel(), want.ravel())), (got, want)
    else:
        assert got.tobytes() == want.tobytes(), (got, want, cells)


def model_native(v: Any, fallback) -> Any:
    if type(v) in (str, float, int, bool) or v is None:
        return v
    if isinstance(v, (int, float, str)):
        return v
    if isinstance(v, (np.ndarray, np.generic)):
        return v.tolist()
    if isinstance(v, dict):
        return {k: model_native(x, fallback) for k, x in v.items()}
    if isinstance(v, (list, tuple, set, frozenset)):
        return [model_native(x, fallback) for x in v]
    return fallback(v)


def model_valid_output(output: Any, parent_key: Any, fallback) -> list:
    out = []
    for item in output:
        item = model_native(item, fallback)
        if not isinstance(item, dict):
            if isinstance(item, list) and len(item) == 1:
                item = item[0]
            item = {parent_key: item}
        out.append(item)
    return out


class FallbackError(Exception):
    pass


def fuzz_ensure_valid_output(data: bytes) -> None:
    d = Draw(data)
    items = [value(d, 0, 2) for _ in range(d.below(5))]
    shape = d.below(5)
    if shape == 0:
        output: Any = tuple(items)
    elif shape == 1:
        output = array(d)
    else:
        output = items
    parent_key = d.pick(["output", KEY_POOL[d.below(len(KEY_POOL))], 0, None])
    mode = d.below(3)

    def fallback(obj: Any) -> Any:
        if mode == 0:
            raise FallbackError(repr(obj))
        return repr(obj) if mode == 1 else {"wrapped": type(obj).__name__}

    deep = depth_of(output) > MAX_DEPTH - 4
    with Unchanged(output):
        try:
            got: Any = _core.ensure_valid_output(output, parent_key, fallback)
        except (ValueError, TypeError, FallbackError) as e:
            got = e
    if deep:
        return  # the model has no depth limit; the no-crash and unchanged checks ran
    try:
        want: Any = model_valid_output(output, parent_key, fallback)
    except (FallbackError, TypeError, RecursionError) as e:
        want = e
    if isinstance(want, Exception):
        assert isinstance(got, Exception), (got, want)
        return
    assert not isinstance(got, Exception), (got, want)
    assert same(strip_subclasses(got), strip_subclasses(want)), (got, want)


def strip_subclasses(v: Any) -> Any:
    """Values with subclasses of the scalars made plain, for comparing."""
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, int):
        return int(v)
    if isinstance(v, float):
        return float(v) if not math.isnan(v) else math.nan
    if isinstance(v, str):
        return str.__str__(v)
    if isinstance(v, dict):
        return {
            strip_subclasses(k) if isinstance(k, str) else k: strip_subclasses(x)
            for k, x in v.items()
        }
    if isinstance(v, list):
        return [strip_subclasses(x) for x in v]
    return v


def fuzz_records_preprocessor(data: bytes) -> None:
    d = Draw(data)
    delimiter = d.pick(DELIMITERS)
    parts = ["a", "b", "c", "0", "1", "é", "x y", "missing"]

    def field() -> str:
        return delimiter.join(d.pick(parts) for _ in range(1 + d.below(3)))

    cfg = {
        "rename_fields": {field(): field() for _ in range(d.below(3))},
        "feature_names": [field() for _ in range(d.below(4))],
        "flatten_nested_inputs": d.flag(),
        "flatten_lists": d.flag(),
        "nested_field_delimiter": delimiter,
        "ignore_delimiter_collisions": d.flag(),
    }
    rows = records_batch(d)
    with Unchanged(rows):
        try:
            got: Any = RecordsPreprocessor(BackendConfig(**cfg))(rows)
        except PreprocessorRuntimeError as e:
            got = e
    if not all(isinstance(r, dict) for r in rows):
        assert isinstance(got, PreprocessorRuntimeError) or got is rows, got
        return
    if depth_of(rows) > MAX_DEPTH - 4:
        return  # a plan reads only its paths: deep rows may pass
    nested = any(delimiter in k for k in cfg["rename_fields"]) or any(
        delimiter in f for f in cfg["feature_names"]
    )
    if nested and not cfg["flatten_nested_inputs"] and not cfg["ignore_delimiter_collisions"]:
        if any(nonstr_key(r) for r in rows):
            # Documented: the collision check refuses non-str keys (the model skips
            # keys that are containers).
            assert isinstance(got, PreprocessorRuntimeError), got
            return
    try:
        want = model_records(
            rows,
            cfg["rename_fields"],
            cfg["feature_names"],
            cfg["flatten_nested_inputs"],
            cfg["flatten_lists"],
            delimiter,
            cfg["ignore_delimiter_collisions"],
        )
    except (ValueError, TypeError):
        # Collisions (or a non-str key where they are checked), or (flatten
        # mode) a duplicated key somewhere in a record, which packflow reports
        # only for the selected fields.
        if not cfg["flatten_nested_inputs"] or not cfg["feature_names"]:
            assert isinstance(got, PreprocessorRuntimeError), got
        return
    assert not isinstance(got, Exception), (got, want)
    assert same(got, want), (got, want)


def nonstr_key(obj: dict) -> bool:
    """Whether a key of ``obj`` or of a dict below it (not in lists) is not a str."""
    return any(
        not isinstance(k, str) or (isinstance(v, dict) and nonstr_key(v)) for k, v in obj.items()
    )


def deep_recursion(harness):
    """The harness with room for the models' recursion over 3,000-level values,
    the interpreter's limit restored afterwards."""

    def run(data: bytes) -> None:
        old = sys.getrecursionlimit()
        sys.setrecursionlimit(max(old, 20_000))
        try:
            harness(data)
        finally:
            sys.setrecursionlimit(old)

    run.__name__ = harness.__name__
    return run


HARNESSES = {
    "parse_lines": fuzz_parse_lines,
    "parse_lines_to_ndarray": fuzz_parse_lines_to_ndarray,
    "dumps": fuzz_dumps,
    "dumps_lines": fuzz_dumps_lines,
    "check_and_dump_lines": fuzz_check_and_dump_lines,
    "flatten_dict": fuzz_flatten_dict,
    "flatten_records": fuzz_flatten_records,
    "records_to_ndarray": fuzz_records_to_ndarray,
    "ensure_valid_output": fuzz_ensure_valid_output,
    "records_preprocessor": fuzz_records_preprocessor,
}
HARNESSES = {name: deep_recursion(h) for name, h in HARNESSES.items()}
