"""Record helpers. Each is a single call into ``packflow._core``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from packflow import _core

if TYPE_CHECKING:
    import numpy as np


def flatten_dict(obj: dict, delimiter: str = ".", flatten_lists: bool = False) -> dict:
    """A one-level dict of ``obj``: nested keys joined with ``delimiter``; lists
    enumerated (``a.0``, ``a.1``) when ``flatten_lists``; empty dicts and lists
    kept as values. A non-dict is a ``TypeError``."""
    return _core.flatten_dict(obj, delimiter, flatten_lists)


def flatten_records(
    records: list[dict], delimiter: str = ".", flatten_lists: bool = False
) -> list[dict]:
    """:func:`flatten_dict` of each record. A non-list is a ``TypeError``."""
    return _core.flatten_records(records, delimiter, flatten_lists)


def get_nested_field(obj: dict, field: str, delimiter: Optional[str] = None) -> Any:
    """``obj[field]`` if that key exists, else the value at ``field`` as a path of
    the flattened ``obj`` (delimiter default "."), else None."""
    return _core.get_nested_field(obj, field, delimiter)


def get_nested_field_direct(obj: dict, field: str, delimiter: str = ".") -> Any:
    """``obj[field]`` if that key exists, else the value found by walking the
    parts of ``field`` through nested dicts, else None."""
    return _core.get_nested_field_direct(obj, field, delimiter)


def set_nested_field_direct(obj: dict, field: str, value: Any, delimiter: str = ".") -> None:
    """Set ``value`` at the path ``field`` in ``obj`` (in place), creating nested
    dicts on the way; stops silently at a non-dict on the way."""
    _core.set_nested_field_direct(obj, field, value, delimiter)


def check_delimiter_collisions(obj: dict, delimiter: str, path: str = "") -> list[str]:
    """Full paths of the keys of ``obj`` (recursively through dicts) that contain ``delimiter``."""
    return _core.check_delimiter_collisions(obj, delimiter, path)


def records_to_ndarray(
    records: list[dict],
    feature_names: list[str],
    dtype: Optional[Any] = None,
    delimiter: Optional[str] = None,
) -> np.ndarray:
    """A 2-D array: one row per record, one column per feature (looked up like
    :func:`get_nested_field`, missing -> None), typed as ``numpy.array`` would,
    or as ``dtype``."""
    return _core.records_to_ndarray(records, feature_names, dtype, delimiter)


def columns_to_records(columns: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows from columns: ``[{name: col[i] for name, col in columns.items()} for
    i in range(n)]``, for turning vectorised model outputs into output rows in
    ``transform_outputs``.

    Each column is a list or tuple (items used as they are), or a numpy array:
    1-D of a bool/int/uint/float dtype gives ``.tolist()``'s values (read straight
    from the buffer), 2-D gives one list per row, object arrays give their items.
    Every row has the keys in ``columns``' order (the same key objects; a str
    subclass name becomes a plain str). All columns must have the same length
    (``ValueError`` naming the first column that differs); a non-dict, a non-str
    name or any other column type (sets, generators, scalars, 0-D or 3-D arrays,
    string arrays) is a ``TypeError``.
    An empty dict gives ``[]``. The columns are not modified.

    >>> columns_to_records({"label": ["a", "b"], "score": np.array([0.5, 0.25])})
    [{'label': 'a', 'score': 0.5}, {'label': 'b', 'score': 0.25}]
    """
    return _core.columns_to_records(columns)
