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
import re
from typing import Any, NamedTuple, Optional

from packflow import _core
from packflow.jsonl import json_to_lines

__all__ = [
    "JSON_LINES_TYPES",
    "LENIENT_TYPES",
    "BadBody",
    "Payload",
    "Shape",
    "body_format",
    "document_error",
    "error_body",
    "parse_body",
    "render",
]

#: Content types read (and answered) as JSON Lines on /invocations.
JSON_LINES_TYPES = frozenset(
    {
        "application/jsonlines",
        "application/x-ndjson",
        "application/jsonl",
        "application/x-jsonlines",
    }
)
JSON = "application/json"
#: Types that do not say "JSON" but under which clients send JSON anyway, read
#: as one JSON document: text/plain is what many tools label a string body
#: with, and application/x-www-form-urlencoded is what ``curl -d`` and
#: ``--data-binary`` send unless told otherwise (the bytes are read as sent,
#: never form-decoded: nobody posts an HTML form to a model). Every other type
#: (multipart/form-data, application/octet-stream, image/*, ...) says the body
#: is something JSON is not: 415.
LENIENT_TYPES = frozenset({"text/plain", "application/x-www-form-urlencoded"})


#: A line holding nothing but JSON whitespace (at the start, or after a newline).
_BLANK_LINE = re.compile(rb"(?:^|(?<=\n))[ \t\r]*\n")


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
    #: The JSON document the lines were cut from (``None`` for JSON Lines):
    #: its items were not checked when cut, so a bad one is described from it.
    document: Optional[bytes] = None


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

    ``instances``: a KServe V1 predict body (``{"instances": [...]}``), always
    one JSON document. The same media types are accepted on every route (see
    :func:`reads_as_json`); an empty body is a 400 whatever its type.
    """
    if not body or body.isspace():
        # Checked before the type: an empty body is the mistake to report (a
        # curl ``@file`` that does not exist sends one), whatever it is labelled.
        also = "" if instances else ", or JSON Lines (one object per line)"
        raise BadBody(f"the body is empty: send {_expected(instances)}{also}")
    lines = media_type in JSON_LINES_TYPES
    if not lines and not reads_as_json(media_type):
        raise BadBody(
            f"unsupported Content-Type {media_type!r}: send {_expected(instances)} as "
            "application/json (or with no Content-Type)"
            + ("" if instances else ", or JSON Lines as application/jsonlines"),
            status=415,
        )
    _refuse_constants(body)
    if instances:
        data, rows, _ = _document(body, "instances", False)
        return Payload(data, rows, Shape.INSTANCES, JSON, body)
    if lines:
        # Blank lines at the end (a file saved with an extra newline) are
        # nobody's rows; blank lines between rows are refused below.
        body = body.rstrip(b" \t\r\n") + b"\n"
        blank = _BLANK_LINE.search(body)
        if blank is not None:
            # The engine skips blank lines (as `packflow run` does), which
            # would leave the request with fewer outputs than lines.
            line = body.count(b"\n", 0, blank.start()) + 1
            raise BadBody(
                f"line {line} is blank: each line of a JSON Lines body is one JSON object"
            )
        # Lines are checked by the engine, which names the line and column.
        return Payload(body, body.count(b"\n"), Shape.LINES, media_type)
    data, rows, single = _document(body, None, True)
    return Payload(data, rows, Shape.OBJECT if single else Shape.ARRAY, JSON, body)


#: A JSON string (skipped whole), or one of the constants Python's json
#: module reads but JSON does not have. A string left open ends at its line's
#: end (or the body's), so that every quote starts one match that goes on to
#: there: the search stays linear in the body whatever its quotes (were an
#: open string a failed match, the search would start again at each next
#: quote and scan to the line's end each time).
_STRING_OR_CONSTANT = re.compile(rb'"(?:[^"\\\n]|\\.)*(?:"|\\?(?=\n)|\\?\Z)|(-?Infinity|NaN)')


def _refuse_constants(body: bytes) -> None:
    """A 400 for ``NaN``, ``Infinity`` or ``-Infinity`` outside a string: the
    engine reads them (as ``json.loads`` does, for ``packflow run``), but they
    are not JSON, and a model fed NaN answers NaN. The common body, holding
    neither word, costs one pass eight bytes at a time (in Rust)."""
    if not _core.holds_constant_word(body):
        return
    for match in _STRING_OR_CONSTANT.finditer(body):
        token = match.group(1)
        if token is None:
            continue
        start = match.start(1)
        line_start = body.rfind(b"\n", 0, start) + 1
        line = body.count(b"\n", 0, start) + 1
        column = len(body[line_start:start].decode("utf-8", errors="replace")) + 1
        raise BadBody(
            f"line {line}: invalid JSON at column {column}: {token.decode()} is not JSON "
            "(JSON has no NaN or Infinity; send null, or a number)"
        )


def reads_as_json(media_type: str) -> bool:
    """Whether a body of ``media_type`` is read as one JSON document: JSON
    itself, any ``+json`` type, and the :data:`LENIENT_TYPES`."""
    return media_type == JSON or media_type.endswith("+json") or media_type in LENIENT_TYPES


def _expected(instances: bool) -> str:
    if instances:
        return 'a JSON object {"instances": [objects]}'
    return "a JSON object or an array of objects"


def _document(body: bytes, field: Optional[str], hint_lines: bool) -> tuple[bytes, int, bool]:
    """The body cut into lines, its items unchecked (the engine parses each
    one: the body is parsed once); see :func:`document_error`."""
    try:
        return json_to_lines(body, field, check_items=False)
    except ValueError as exc:
        message = str(exc)
        # A second value on a later line: most likely JSON Lines sent without
        # its type, which the message alone would not reveal.
        if (
            hint_lines
            and "extra data after the value" in message
            and not message.startswith("line 1:")
        ):
            message += (
                "; for JSON Lines (one object per line) send Content-Type: application/jsonlines"
            )
        raise BadBody(message) from None


def document_error(payload: Payload) -> Optional[str]:
    """Why the document of ``payload`` is not JSON of the expected shape, as
    :func:`parse_body` would have said had it checked every item (the
    engine found a bad one); ``None`` for a payload of JSON Lines."""
    if payload.document is None:
        return None
    field = "instances" if payload.shape is Shape.INSTANCES else None
    try:
        json_to_lines(payload.document, field)
    except ValueError as exc:
        return str(exc)
    return None


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


def error_body(error: str, /, **fields: Any) -> bytes:
    """``{"error": error, **fields}`` as JSON."""
    return _core.dumps({"error": error, **fields})
