"""Fast JSON output: ``dumps`` and ``dumps_lines``.

Both write what ``json.dumps(obj, separators=(",", ":"), ensure_ascii=False)``
writes, encoded as UTF-8, and also accept numpy scalars and arrays (written as
``.tolist()`` would give them). They are the writers the ``check_io`` output
check is built on: a row that passes the check can be written.
"""

from __future__ import annotations

from typing import Any

from packflow import _core

__all__ = ["dumps", "dumps_lines"]


def dumps(obj: Any, *, allow_nan: bool = False) -> bytes:
    """Compact JSON of ``obj`` as UTF-8 bytes.

    Accepts dict (keys str, int, float, bool or None, converted like ``json``),
    list, tuple, str, int (any size), float, bool, None, their subclasses, numpy
    scalars and numpy arrays of bool/int/uint/float dtype (object arrays element
    by element). Floats are spelled as ``repr`` spells them.

    Raises ``TypeError`` for a value or key of another type, ``ValueError`` for
    NaN/infinity unless ``allow_nan`` (then written ``NaN``, ``Infinity``,
    ``-Infinity``), for a str with a lone surrogate, and for nesting deeper than
    255 levels or a reference cycle. Messages name the key path
    (``key "meta.scores[2]"``).
    """
    return _core.dumps(obj, allow_nan=allow_nan)


def dumps_lines(rows: list[Any], *, allow_nan: bool = False) -> bytes:
    """JSON Lines: :func:`dumps` of each row of ``rows`` (a list or tuple), each
    followed by ``\\n``, in one bytes object. Errors name the row index and key
    path (``row 17, key "src.port"``)."""
    return _core.dumps_lines(rows, allow_nan=allow_nan)
