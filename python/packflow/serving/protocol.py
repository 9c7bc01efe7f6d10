"""Request bodies in, response bodies out: what each endpoint accepts and how
its outputs are written.

Every body becomes JSON Lines (one line per row) for the batch engine: a JSON
object is one row, a JSON array one row per item, a KServe V1 body one row per
``instances`` item, and a JSON Lines body is used as it is. The answer is
written back in the request's shape from the engine's output lines, without
parsing them again.
"""

from __future__ import annotations

import enum
from typing import Any, NamedTuple, Optional

from packflow import _core
from packflow.jsonl import json_to_lines

__all__ = [
    "JSON_LINES_TYPES",
    "BadBody",
    "Payload",
    "Shape",
    "body_format",
    "error_body",
    "parse_body",
    "render",
]

#: Content types read (and answered) as JSON Lines.
JSON_LINES_TYPES = frozenset(
    {
        "application/jsonlines",
        "application/x-ndjson",
        "application/jsonl",
        "application/x-jsonlines",
    }
)
JSON = "application/json"


class Shape(enum.Enum):
    """How the request gave its rows, and so how its outputs are written."""

    OBJECT = "object"  # one row in, one output object out
    ARRAY = "array"  # a JSON array in, a JSON array out
    LINES = "lines"  # JSON Lines in, JSON Lines out
    INSTANCES = "instances"  # {"instances": [...]} in, {"predictions": [...]} out


class Payload(NamedTuple):
    """A request's rows as JSON Lines (``data`` ends with a newline; ``rows``
    counts its lines, blank ones included)."""

    data: bytes
    rows: int
    shape: Shape
    content_type: str


class BadBody(ValueError):
    """The body cannot be read as rows: a 400 (or a 415 for ``status``)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def body_format(content_type: Optional[bytes]) -> str:
    """The media type of a ``Content-Type`` header value (parameters dropped,
    lower case); no header means JSON."""
    if not content_type or content_type == b"application/json":
        return JSON
    return content_type.split(b";", 1)[0].strip().decode("latin-1").lower()


def parse_body(body: bytes, media_type: str, *, instances: bool = False) -> Payload:
    """The rows of a request body; ``BadBody`` says why there are none.

    ``instances``: a KServe V1 predict body (``{"instances": [...]}``).
    """
    if instances:
        data, rows, _ = _document(body, "instances")
        return Payload(data, rows, Shape.INSTANCES, JSON)
    if media_type in JSON_LINES_TYPES:
        if not body.endswith(b"\n"):
            body += b"\n"
        # Lines are checked by the engine, which names the line and column.
        return Payload(body, body.count(b"\n"), Shape.LINES, media_type)
    if media_type == JSON or media_type.endswith("+json"):
        data, rows, single = _document(body, None)
        return Payload(data, rows, Shape.OBJECT if single else Shape.ARRAY, JSON)
    raise BadBody(
        f"unsupported Content-Type {media_type!r}: send application/json (an object or "
        "an array of objects) or application/jsonlines (one object per line)",
        status=415,
    )


def _document(body: bytes, field: Optional[str]) -> tuple[bytes, int, bool]:
    try:
        return json_to_lines(body, field)
    except ValueError as exc:
        raise BadBody(str(exc)) from None


def render(shape: Shape, lines: list[bytes]) -> bytes:
    """The response body for ``lines``, the request's output lines in order
    (each one compact JSON object without its newline)."""
    if shape is Shape.OBJECT:
        return lines[0]
    if shape is Shape.LINES:
        if not lines:
            return b""
        return b"\n".join(lines) + b"\n"
    joined = b",".join(lines)
    if shape is Shape.ARRAY:
        return b"[" + joined + b"]"
    return b'{"predictions":[' + joined + b"]}"


def error_body(message: str, **fields: Any) -> bytes:
    """``{"error": message, **fields}`` as JSON."""
    return _core.dumps({"error": message, **fields})
