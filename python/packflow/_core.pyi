"""Type stubs for ``packflow._core``, the Rust extension of packflow."""

from typing import Any

import numpy as np

#: Deepest nesting any traversal follows; deeper input is an error.
MAX_DEPTH: int

def monotonic_ns() -> int:
    """A monotonic clock in nanoseconds (the one the step timers use)."""

class ParsedLines:
    """Records parsed from a batch of JSON Lines (see :func:`parse_lines`)."""

    @property
    def records(self) -> list[dict[str, Any]]:
        """The lines that are JSON objects, as dicts, in input order."""
    @property
    def line_numbers(self) -> list[int]:
        """The line number of each record."""
    @property
    def errors(self) -> list[tuple[int, bytes, str]]:
        """``(line number, raw line without its ending, message)`` per bad line."""
    @property
    def lines(self) -> int:
        """Non-blank lines seen: ``len(records) + len(errors)``."""

class ParsedArray:
    """A feature array filled from a batch of JSON Lines (see
    :func:`parse_lines_to_ndarray`)."""

    @property
    def array(self) -> np.ndarray:
        """One row per good line, one column per feature (int64, float64 or bool)."""
    @property
    def line_numbers(self) -> list[int]:
        """The line number of each row."""
    @property
    def errors(self) -> list[tuple[int, bytes, str]]:
        """``(line number, raw line without its ending, message)`` per bad line."""
    @property
    def lines(self) -> int:
        """Non-blank lines seen: rows + errors."""

def parse_lines(data: bytes, first_line: int = 1) -> ParsedLines:
    """Parse a batch of JSON Lines (``\\n``-separated, ``\\r\\n`` allowed, blank
    lines skipped) into dicts equal to ``json.loads(line)``; lines that are not
    UTF-8, not JSON, nested deeper than ``MAX_DEPTH`` or not objects are errors.
    Line numbers are ``first_line`` + the index of the line in ``data``."""

def parse_lines_to_ndarray(
    data: bytes, features: list[str], delimiter: str, first_line: int = 1
) -> ParsedArray | None:
    """Fill a rows x features array straight from a batch of JSON Lines, each
    cell looked up like ``get_nested_field`` in ``json.loads(line)``; ``None``
    when some cell would not be a number or bool (or the lookup is ambiguous),
    so the caller falls back to :func:`parse_lines`. Bad lines are errors as in
    :func:`parse_lines`. An empty ``delimiter`` is a ``ValueError``."""
