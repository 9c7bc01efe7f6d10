"""The deterministic half of the thread tests (``tests/support/races.py``): Python code
that the Rust functions call into (a key's ``__format__`` or ``__eq__``, an
ndarray subclass's ``tolist``, a fallback) empties or refills the very dicts
and lists being read, and collects garbage so that what was dropped is freed.
A wrong result or a clean exception is acceptable; a crash, a panic or a
``SystemError`` is not."""

from __future__ import annotations

import gc

import numpy as np
import pytest

from packflow import _core


class FormatMutates:
    """A dict key whose ``format()`` (flattening joins keys with it) changes ``target``."""

    def __init__(self, target: dict | None, how: str):
        self.target, self.how = target, how

    def __hash__(self) -> int:
        return 7

    def __format__(self, spec: str) -> str:
        if self.target is not None:
            if self.how == "clear":
                self.target.clear()
            elif self.how == "pop" and self.target:
                self.target.popitem()
            else:
                self.target.clear()
                self.target.update({f"n{i}": {"deep": [i] * 3} for i in range(20)})
        gc.collect()
        return "evil"


class EqMutates(str):
    """A key whose ``__eq__`` (run by dict lookups on a hash match) changes ``target``."""

    target: dict | None = None
    how = "clear"

    def __hash__(self) -> int:
        return str.__hash__(self)

    def __eq__(self, other: object) -> bool:
        t = EqMutates.target
        if t is not None:
            t.clear() if EqMutates.how == "clear" else t.update({str(i): [i] for i in range(50)})
        gc.collect()
        return str.__eq__(self, other)


class ToListMutates(np.ndarray):
    """An ndarray subclass whose ``tolist`` (the writer calls it) empties ``target``."""

    target: dict | list | None = None

    def tolist(self):
        t = ToListMutates.target
        if isinstance(t, dict):
            t.clear()
        elif isinstance(t, list):
            del t[:]
        gc.collect()
        return [1.0]


def survives(call) -> None:
    try:
        call()
    except SystemError:
        raise
    except Exception:
        pass  # a clean error is fine


@pytest.fixture(autouse=True)
def reset_targets():
    yield
    EqMutates.target = None
    ToListMutates.target = None


@pytest.mark.parametrize("how", ["clear", "pop", "swap"])
@pytest.mark.parametrize("which", ["outer", "inner"])
def test_flatten_when_format_changes_the_dict(how, which):
    outer: dict = {"a": {}, "b": {"c": [1, 2, {"d": 1.5}]}, "z": "s" * 100}
    inner = outer["a"]
    inner[FormatMutates(outer if which == "outer" else inner, how)] = {"x": [1, 2], "y": "t"}
    inner["after"] = {"q": [3.5]}
    survives(lambda: _core.flatten_dict(outer, ".", True))
    row: dict = {}
    row["a"] = {FormatMutates(row, how): {"k": 1}, "m": {"n": 2}}
    survives(lambda: _core.flatten_records([row, row], ".", True))


@pytest.mark.parametrize("how", ["clear", "update"])
@pytest.mark.parametrize("flatten", [False, True])
def test_lookups_when_eq_changes_the_record(how, flatten):
    EqMutates.how = how
    plan = _core.RecordsPlan({"src.port": "port"}, ["score", "src.ip"], flatten, False, ".", True)
    numpy_plan = _core.NumpyPlan(["src.port", "score"], ".")
    calls = [
        lambda r: plan([r, r]),
        lambda r: numpy_plan([r]),
        lambda r: _core.records_to_ndarray([r, r], ["src.port", "score"]),
        lambda r: _core.get_nested_field(r, "src.port", "."),
        lambda r: _core.get_nested_field_direct(r, "src.port", "."),
        lambda r: _core.set_nested_field_direct(r, "src.port.x", 1, "."),
    ]
    for call in calls:
        for inner in (False, True):
            rec = {"src": {EqMutates("port"): 443, "ip": "x"}, EqMutates("score"): 0.5}
            EqMutates.target = rec["src"] if inner else rec
            survives(lambda call=call, rec=rec: call(rec))


@pytest.mark.parametrize("container", ["dict", "list"])
def test_writers_when_tolist_empties_the_container(container):
    def holder() -> dict | list:
        arr = np.arange(3.0).view(ToListMutates)
        if container == "dict":
            return {"a": arr, "b": [1, 2, {"c": "x" * 40}], "d": 1.5}
        return [arr, [1, 2], {"c": 1}, "z"]

    for call in (
        lambda h: _core.dumps(h),
        lambda h: _core.dumps_lines([h, h]),
        lambda h: _core.check_and_dump_lines([h, h], 2),
        lambda h: _core.ensure_valid_output([h, h], "o", repr),
        lambda h: _core.ensure_native_types(h, repr),
    ):
        h = holder()
        ToListMutates.target = h
        survives(lambda call=call, h=h: call(h))
    rows = [{"a": np.arange(2.0).view(ToListMutates), "b": [1] * 10} for _ in range(5)]
    ToListMutates.target = rows
    survives(lambda: _core.check_and_dump_lines(rows, 5))
    rows = [{"a": np.arange(2.0).view(ToListMutates), "b": [1] * 10} for _ in range(5)]
    ToListMutates.target = rows
    survives(lambda: _core.ensure_valid_output(rows, "o", repr))


def test_ensure_valid_output_when_the_fallback_empties_the_output():
    rows: list = [object(), {"a": object()}, [object()] * 3, (1, object())]

    def fallback(obj):
        rows.clear()
        gc.collect()
        return "x"

    survives(lambda: _core.ensure_valid_output(rows, "o", fallback))
