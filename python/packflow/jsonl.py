"""JSON Lines parsing for streaming: one call into ``packflow._core`` per batch
of raw line bytes. (``json_to_lines`` turns one JSON document, such as an HTTP
request body, into such lines; see ``packflow._core``.)

Both functions take ``data``, a ``bytes`` object holding zero or more lines
separated by ``\\n`` (a ``\\r\\n`` ending is fine, and a last line without a
newline counts). Line numbers are ``first_line`` plus the index of the line in
``data``, so a runner that passes ``first_line`` = lines read so far + 1 gets
numbers counted over the whole stream.

Per line:

- A line holding only spaces, tabs or ``\\r`` is skipped: it is neither a record
  nor an error and is not counted in ``lines`` (its number is still used up).
- A UTF-8 byte order mark at the start of a line is ignored, as
  ``json.loads(line_bytes)`` does.
- A line is an error, and the batch goes on, when it is not UTF-8, not JSON,
  nested deeper than ``packflow._core.MAX_DEPTH`` (255) containers, holds an
  integer longer than ``sys.get_int_max_str_digits()`` digits, or is JSON but
  not an object. Each error is ``(line number, raw line bytes without the line
  ending, message)``, e.g. ``(3, b'[1]', 'not a JSON object: array')``.

Every record equals ``json.loads(line)`` exactly: ``NaN``, ``Infinity`` and
``-Infinity`` are accepted, a repeated key keeps its first position and its last
value, integers of any size become ``int`` and floats are correctly rounded.
"""

from __future__ import annotations

from packflow._core import ParsedArray, ParsedLines, json_to_lines
from packflow._core import parse_lines as _parse_lines
from packflow._core import parse_lines_to_ndarray as _parse_lines_to_ndarray

__all__ = ["ParsedArray", "ParsedLines", "json_to_lines", "parse_lines", "parse_lines_to_ndarray"]


def parse_lines(data: bytes, first_line: int = 1) -> ParsedLines:
    """Parse a batch of JSON Lines into dicts.

    Returns a :class:`ParsedLines` with ``records`` (the lines that are JSON
    objects, as dicts, in order), ``line_numbers`` (one per record), ``errors``
    (``(line number, raw line, message)`` for the other lines) and ``lines``
    (non-blank lines seen, ``len(records) + len(errors)``).
    """
    return _parse_lines(data, first_line)


def parse_lines_to_ndarray(
    data: bytes, features: list[str], delimiter: str = ".", first_line: int = 1
) -> ParsedArray | None:
    """Fill a 2-D feature array straight from a batch of JSON Lines, without
    building a dict per line.

    Row ``i`` holds the features of the ``i``-th good line, each looked up as
    :func:`packflow.utils.data.get_nested_field` would in ``json.loads(line)``
    (a top-level key equal to the whole feature name first, else the path of
    keys split on ``delimiter``). The array equals
    ``numpy.array([[get_nested_field(json.loads(line), f, delimiter) for f in
    features] for line in good_lines])``: ``int64`` when every cell is an
    integer, ``float64`` when any is a float, ``bool`` when all are booleans
    (no good line at all gives ``numpy.array([])``, of shape ``(0,)``).

    Returns ``None`` when that array would not be all numbers or booleans (a
    missing feature, a string, ``null``, a list or dict, an integer beyond 64
    bits) or when the lookup is ambiguous (a key holding the delimiter on a
    feature path, a key repeated on a feature path); the caller then uses
    :func:`parse_lines` and the dict-based path for that batch. Bad lines are in
    ``errors`` exactly as :func:`parse_lines` reports them.
    """
    return _parse_lines_to_ndarray(data, features, delimiter, first_line)
