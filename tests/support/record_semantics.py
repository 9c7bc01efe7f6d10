"""Plain-Python models of the record helpers' semantics, and hypothesis
strategies for nested records. The property tests check the Rust functions
against these models; the models are written from the documented behaviour
(see ``packflow/_core.pyi``), not taken from any implementation.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from hypothesis import strategies as st

MISSING = object()


# --- flattening ---------------------------------------------------------------


def model_flatten(obj: dict, delimiter: str = ".", lists: bool = False) -> dict:
    """Keys joined with the delimiter; a key with no parent (top level, or below
    a None key) stays the key object; empty dicts/lists are kept, other empty
    mappings vanish; a repeated flat key is ValueError."""
    out: dict = {}

    def join(parent: Any, has_parent: bool, key: Any) -> tuple[Any, bool]:
        if not has_parent:
            return key, key is not None
        return f"{parent}{delimiter}{key}", True

    def visit(container: Any, parent: Any, has_parent: bool) -> bool:
        pairs = enumerate(container) if isinstance(container, list) else container.items()
        seen = False
        for key, value in pairs:
            seen = True
            flat, flat_has_parent = join(parent, has_parent, key)
            nested = isinstance(value, Mapping) or (lists and isinstance(value, list))
            if nested:
                had = visit(value, flat, flat_has_parent)
                if had or not isinstance(value, (dict, list)):
                    continue
            if flat in out:
                raise ValueError(f"duplicated key '{flat}'")
            out[flat] = value
        return seen

    visit(obj, None, False)
    return out


def model_get_nested_field(obj: dict, field: str, delimiter: str | None = None) -> Any:
    if field in obj:
        return obj[field]
    return model_flatten(obj, delimiter or ".").get(field)


def model_get_direct(obj: dict, field: str, delimiter: str = ".") -> Any:
    if field in obj:
        return obj[field]
    current: Any = obj
    for part in field.split(delimiter):
        if not isinstance(current, dict) or part not in current:
            return None
        current = current[part]
    return current


def model_set_direct(obj: dict, field: str, value: Any, delimiter: str = ".") -> None:
    *init, last = field.split(delimiter)
    current = obj
    for part in init:
        if part not in current:
            current[part] = {}
        elif not isinstance(current[part], dict):
            return
        current = current[part]
    current[last] = value


def model_collisions(obj: dict, delimiter: str, path: str = "") -> list:
    found: list = []
    for key, value in obj.items():
        here = f"{path}{delimiter}{key}" if path else key
        if delimiter in key:
            found.append(here)
        if isinstance(value, dict):
            found.extend(model_collisions(value, delimiter, here))
    return found


# --- the records preprocessor -----------------------------------------------------


def model_records(
    records: list,
    rename_fields: dict,
    feature_names: list,
    flatten: bool,
    lists: bool = False,
    delimiter: str = ".",
    ignore_collisions: bool = False,
) -> list:
    """The records preprocessor as documented, with packflow's guarantee that the
    input is never modified: a nested output path that runs into a dict shared
    with the input writes into a copy of it."""
    if not rename_fields and not feature_names and not flatten:
        return records
    nested = any(delimiter in k for k in rename_fields) or any(
        delimiter in f for f in feature_names
    )
    if nested and not flatten and not ignore_collisions:
        for row in records:
            if model_collisions(row, delimiter):
                raise ValueError("collisions")
    out = []
    for row in records:
        if flatten:
            flat = model_flatten(row, delimiter, lists)
            new: dict = {}
            for src, dst in rename_fields.items():
                value = flat.get(src)
                if value is not None:
                    new[dst] = value
            if feature_names:
                for f in feature_names:
                    if f not in new:
                        value = flat.get(f)
                        if value is not None:
                            new[f] = value
            else:
                new.update(flat)
        else:
            new = {}
            owned = {id(new)}

            def put(path: str, value: Any, new: dict = new, owned: set = owned) -> None:
                if delimiter not in path:
                    new[path] = value
                    return
                *init, last = path.split(delimiter)
                current = new
                for part in init:
                    if part not in current:
                        current[part] = {}
                        owned.add(id(current[part]))
                    elif not isinstance(current[part], dict):
                        return
                    elif id(current[part]) not in owned:
                        current[part] = dict(current[part])
                        owned.add(id(current[part]))
                    current = current[part]
                current[last] = value

            for src, dst in rename_fields.items():
                value = model_get_direct(row, src, delimiter)
                if value is not None:
                    put(dst, value)
            if feature_names:
                for f in feature_names:
                    if model_get_direct(new, f, delimiter) is None:
                        value = model_get_direct(row, f, delimiter)
                        if value is not None:
                            put(f, value)
            else:
                new.update(row)
        out.append(new)
    return out


# --- strategies -------------------------------------------------------------------

KEYS = ["a", "b", "c", "0", "1", "a.b", "b.c", ".", "", "a::b", "a_b", "é", "ключ", "x y"]
PARTS = ["a", "b", "c", "0", "1", "é", "x y", "missing"]
DELIMITERS = [".", "::", "_"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=3),
)


def trees(keys: list[str] = KEYS) -> st.SearchStrategy:
    return st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=3),
            st.dictionaries(st.sampled_from(keys), children, max_size=4),
        ),
        max_leaves=14,
    )


def records(keys: list[str] = KEYS) -> st.SearchStrategy:
    return st.dictionaries(st.sampled_from(keys), trees(keys), max_size=5)


def fields(delimiter: str) -> st.SearchStrategy:
    return st.lists(st.sampled_from(PARTS + ["a.b"]), min_size=1, max_size=3).map(delimiter.join)


def snapshot(value: Any) -> Any:
    """A deep copy to compare an input with after a call."""
    return copy.deepcopy(value)


def same(a: Any, b: Any) -> bool:
    """Equal values with dicts in the same key order, at every level."""
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a.keys()) == list(b.keys()) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b
