"""The Open Inference Protocol (KServe V2) over REST, for the one model the
server holds: its routes, its metadata, and its tensors turned into rows and
back.

A request's tensors become JSON Lines rows for the batcher, the same rows a
client of ``/invocations`` would have sent; the output lines of those rows
become one tensor per output key. Every pass over the values is linear in
their number (no per-value work inside a per-row scan of another list).

The binary tensor data extension is read and written: a body whose first
``Inference-Header-Content-Length`` bytes are the JSON header, followed by the
raw bytes of the inputs that give a ``binary_data_size`` (little-endian; a
BYTES element is a 4-byte length then its bytes), and outputs sent the same
way when the request asks (``binary_data`` on an output, or
``binary_data_output`` on the request).

A body is read, and its answer written, in Rust (``_core.v2_read_request``,
``_core.v2_write_answer``; binary data included but for FP16 and BYTES
inputs; large ones on a thread beside the event loop, :mod:`.offload`): the
same bytes as the Python path here, which stays the reference and reads
whatever Rust leaves to it (every refused body, so every error is worded
here). The gRPC door (:mod:`.grpc_v2`) reuses these checks; a server of
several models (:mod:`.multi`) has one :class:`V2Api` per model.
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any, NamedTuple, Optional

import numpy as np

from packflow import _core
from packflow._version import __version__
from packflow.serving.offload import V2Offload

__all__ = [
    "InferRequest",
    "Tensor",
    "V2Api",
    "V2Error",
    "check_head",
    "check_tensor",
    "raw_output",
    "raw_values",
]

PREFIX = "/v2"
MODELS = "/v2/models/"

# Endpoint labels for metrics (routes, not paths: bounded cardinality).
SERVER = "/v2"
LIVE = "/v2/health/live"
READY = "/v2/health/ready"
MODEL = "/v2/models/{name}"
MODEL_READY = "/v2/models/{name}/ready"
INFER = "/v2/models/{name}/infer"

#: Integer datatypes and their ranges.
_INT_RANGES = {
    "INT8": (-(1 << 7), (1 << 7) - 1),
    "INT16": (-(1 << 15), (1 << 15) - 1),
    "INT32": (-(1 << 31), (1 << 31) - 1),
    "INT64": (-(1 << 63), (1 << 63) - 1),
    "UINT8": (0, (1 << 8) - 1),
    "UINT16": (0, (1 << 16) - 1),
    "UINT32": (0, (1 << 32) - 1),
    "UINT64": (0, (1 << 64) - 1),
}
_FLOATS = frozenset({"FP16", "FP32", "FP64"})
#: The magnitude from which a number rounds to infinity in the narrow float
#: datatypes (65504 and FLT_MAX are their largest finite values; a number a
#: little past them, as a float32 writer's shortest text of FLT_MAX is,
#: still rounds to them).
_FLOAT_MAX = {"FP16": 65520.0, "FP32": float(2**128 - 2**103)}
DATATYPES = frozenset({"BOOL", "BYTES", *_INT_RANGES, *_FLOATS})
_INT64_MIN, _INT64_MAX = _INT_RANGES["INT64"]
_UINT64_MAX = _INT_RANGES["UINT64"][1]
#: The tensor of a records backend whose elements are records as JSON text.
RECORDS = "records"
#: Bounds on what one request may make the server build: dimensions of a
#: shape, values a shape may hold (any more cannot be in a body), and output
#: values of an answer (tensors x rows; rows with many different keys).
_MAX_DIMS = 32
_MAX_VALUES = 1 << 32
_MAX_OUTPUT_VALUES = 4_000_000
_MAX_OUTPUT_TENSORS = 1024
#: The little-endian numpy type of each fixed-size datatype, for binary data.
RAW_TYPES = {
    "BOOL": "?",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}
#: The header field of the binary tensor data extension.
HEADER_LENGTH = "Inference-Header-Content-Length"


class V2Error(Exception):
    """Answer with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class Route(NamedTuple):
    """What a V2 path asks for: ``endpoint`` (a metrics label), ``kind``
    (``server``, ``live``, ``ready``, ``model``, ``model_ready`` or ``infer``)."""

    endpoint: str
    kind: str


class InferRequest(NamedTuple):
    """An infer request's rows (JSON Lines, or a numpy backend's feature
    cells), and what its answer needs."""

    data: bytes | _core.FeatureRows
    rows: int
    id: Optional[str]
    #: The outputs asked for by name, in order; ``None``: all of them.
    outputs: Optional[list[str]]
    #: Outputs to send as binary data (by name), and whether the others are.
    binary: dict[str, bool]
    binary_default: bool


class _Layout:
    """How the backend reads rows: the numpy features (the tensor names and
    where each value goes in a row), or records."""

    def __init__(self, backend: Any):
        config = getattr(backend, "config", None)
        fmt = getattr(getattr(config, "input_format", None), "value", "records")
        self.delimiter: str = getattr(config, "nested_field_delimiter", ".") or "."
        features = list(getattr(config, "feature_names", []) or [])
        #: The feature names of a numpy backend, else ``None``.
        self.features: Optional[list[str]] = features if fmt == "numpy" and features else None
        self.paths: list[tuple[str, ...]] = []
        if self.features is not None:
            # A feature renamed in the config is read from its source field.
            source_of = {str(v): str(k) for k, v in config.rename_fields.items()}
            self.paths = [tuple(source_of.get(f, f).split(self.delimiter)) for f in features]
        output_keys = list(getattr(config, "output_keys", []) or [])
        self.output_keys: list[str] = [str(k) for k in output_keys]


class V2Api:
    """The V2 side of a :class:`~packflow.serving.app.PackflowApp`."""

    def __init__(self, backend: Any, name: str, version: Optional[str], max_rows: int = 1 << 62):
        self.name = name
        self.version = version or None
        self.layout = _Layout(backend)
        #: The most rows a request may hold (the queue's size): checked from
        #: each tensor's shape before any of its values is read.
        self.max_rows = max_rows
        layout = self.layout
        # A backend whose preprocessor reads feature arrays (the stock numpy
        # one) takes numeric tensors as feature cells, not JSON Lines; unless
        # two features' fields clash (one field, or one inside the other): the
        # row the tensors make then cannot hold each feature apart, and the
        # engine reads whatever that JSON line holds, which cells would not.
        self.cells = (
            layout.features is not None
            and _fields_apart(layout.paths)
            and bool(getattr(getattr(backend, "_pipeline", None), "reads_arrays", False))
        )
        #: The same layout for the Rust reader of bodies.
        self.plan = _core.V2Plan(
            layout.features,
            [list(p) for p in layout.paths],
            layout.delimiter,
            max_rows,
            cells=self.cells,
        )

    # -- routes -----------------------------------------------------------------

    def route(self, path: str) -> Route:
        """The route of a path under ``/v2``; a 404 for no endpoint or
        another model or version."""
        if path == PREFIX or path == PREFIX + "/":
            return Route(SERVER, "server")
        if path == LIVE:
            return Route(LIVE, "live")
        if path == READY:
            return Route(READY, "ready")
        if path.startswith(MODELS):
            parts = path[len(MODELS) :].split("/")
            name, rest = parts[0], parts[1:]
            if len(rest) >= 2 and rest[0] == "versions":
                version, rest = rest[1], rest[2:]
                self._check_model(name)
                if version != self.version:
                    has = f"its version is {self.version!r}" if self.version else "it has none"
                    raise V2Error(404, f"model {name!r} has no version {_short(version)!r}; {has}")
            if not rest or rest == [""]:
                self._check_model(name)
                return Route(MODEL, "model")
            if rest == ["ready"]:
                self._check_model(name)
                return Route(MODEL_READY, "model_ready")
            if rest == ["infer"]:
                self._check_model(name)
                return Route(INFER, "infer")
        raise V2Error(404, f"no endpoint at {_short(path)}")

    def _check_model(self, name: str) -> None:
        if name != self.name:
            raise V2Error(404, f"no model named {_short(name)!r}; this server has {self.name!r}")

    # -- metadata ---------------------------------------------------------------

    def server_metadata(self) -> bytes:
        return _core.dumps(
            {"name": "packflow", "version": __version__, "extensions": ["binary_tensor_data"]}
        )

    def model_metadata(self) -> bytes:
        layout = self.layout
        if layout.features is not None:
            inputs = [{"name": f, "datatype": "FP64", "shape": [-1]} for f in layout.features]
        else:
            inputs = [{"name": RECORDS, "datatype": "BYTES", "shape": [-1]}]
        # The datatype of an output is decided by its values in each answer;
        # BYTES (JSON text) holds any of them.
        outputs = [{"name": k, "datatype": "BYTES", "shape": [-1]} for k in layout.output_keys]
        return _core.dumps(
            {
                "name": self.name,
                "versions": [self.version] if self.version else [],
                "platform": "packflow",
                "inputs": inputs,
                "outputs": outputs,
            }
        )

    # -- infer ------------------------------------------------------------------

    def parse_infer(self, body: bytes, header_length: Optional[bytes] = None) -> InferRequest:
        """The rows of an infer request body; a :class:`V2Error` (400) says
        what is wrong, naming the tensor and the element. ``header_length``:
        the request's Inference-Header-Content-Length, if it sent one.

        The body is read in Rust first; whatever Rust does not read
        exactly as the Python path below would (an error included) is read
        by that path, which words the error."""
        fast = _core.v2_read_request(self.plan, body, header_length)
        if fast is not None:
            return InferRequest(*fast)
        return self.parse_infer_python(body, header_length)

    async def parse_infer_beside(
        self, body: bytes, header_length: Optional[bytes], offload: V2Offload
    ) -> InferRequest:
        """:meth:`parse_infer`, the Rust reading done on ``offload``'s thread
        so the event loop goes on meanwhile: for bodies of
        :data:`OFFLOAD_BODY_BYTES` or more (a smaller one is read sooner than
        handed over)."""
        fast = await offload.read(self.plan, body, header_length)
        if fast is not None:
            return InferRequest(*fast)
        return self.parse_infer_python(body, header_length)

    def parse_infer_python(
        self, body: bytes, header_length: Optional[bytes] = None
    ) -> InferRequest:
        """:meth:`parse_infer` in Python only: the reference for the Rust
        reader, and the reader of every body it leaves (refused ones, binary
        FP16 and BYTES tensors)."""
        raw = _Raw(body, header_length)
        doc = _load_json(raw.header)
        if not isinstance(doc, dict):
            raise V2Error(400, 'the body must be a JSON object {"inputs": [tensors]}')
        request_id = doc.get("id")
        if request_id is not None and not isinstance(request_id, str):
            raise V2Error(400, '"id" must be a string')
        params = doc.get("parameters")
        if params is not None and not isinstance(params, dict):
            raise V2Error(400, '"parameters" must be an object')
        inputs = doc.get("inputs")
        if not isinstance(inputs, list) or not inputs:
            raise V2Error(400, '"inputs" must be a non-empty array of tensors')
        # Names, datatypes and shapes first, against the model's layout: a
        # request that cannot fit is refused before any of its values is read.
        heads = [_head(item, i, self.max_rows) for i, item in enumerate(inputs)]
        seen: set[str] = set()
        for t in heads:
            if t.name in seen:
                raise V2Error(400, f"tensor {_short(t.name)!r} is given twice")
            seen.add(t.name)
        n = self.check_shapes(heads)
        tensors = [_tensor(item, i, raw, self.max_rows) for i, item in enumerate(inputs)]
        raw.check_used()
        outputs, binary = _requested_outputs(doc.get("outputs"))
        binary_default = _flag(params, "binary_data_output", "the request") if params else False
        data, rows = self.lines_of(tensors, n)
        return InferRequest(data, rows, request_id, outputs, binary, binary_default)

    def lines_of(
        self, tensors: list[Tensor], n: Optional[int] = None
    ) -> tuple[bytes | _core.FeatureRows, int]:
        """The rows of an infer request's tensors, as JSON Lines (or, for a
        backend that reads feature arrays, :class:`~packflow._core.FeatureRows`),
        and how many (a :class:`V2Error` says what is wrong). Any door (REST, gRPC) turns
        its tensors into :class:`Tensor` values and calls this; ``n``: what
        :meth:`check_shapes` gave for them, when the door called it first."""
        if n is None:
            n = self.check_shapes(tensors)
        if self.layout.features is not None:
            if self.cells and n:
                cells = self._feature_cells(tensors)
                if cells is not None:
                    return cells, n
            rows = self._feature_rows(tensors, n)
        else:
            rows = self._record_rows(tensors, n)
        if not rows:
            raise V2Error(400, "the request has no rows (its tensors' first dimension is 0)")
        try:
            data = _core.dumps_lines(rows)
        except (TypeError, ValueError) as exc:
            raise V2Error(400, f"the rows cannot be written as JSON: {exc}") from None
        return data, len(rows)

    def check_shapes(self, tensors: list[Tensor]) -> int:
        """N, the rows of the request, once the tensors' names, datatypes and
        shapes fit the model's layout; else a :class:`V2Error`. Reads no
        value: a request is checked on its tensors' heads (their values may
        be empty) before any of its values is read."""
        features = self.layout.features
        if features is not None:
            k = len(features)
            if len(tensors) == 1 and len(tensors[0].shape) == 2 and tensors[0].name not in features:
                t = tensors[0]
                _numeric(t)
                if t.shape[1] != k:
                    raise V2Error(
                        400,
                        f"tensor {_short(t.name)!r} has shape {t.shape}: the model takes "
                        f"{k} features as columns ({', '.join(features)}), so its shape "
                        f"must be [N, {k}]",
                    )
                return t.shape[0]
            names = {t.name for t in tensors}
            known = set(features)
            unknown = [t.name for t in tensors if t.name not in known]
            if unknown:
                raise V2Error(
                    400,
                    f"no feature named {_short(unknown[0])!r}: send one tensor of shape [N, {k}], "
                    f"or one tensor of shape [N] per feature, named {', '.join(features)}",
                )
            missing = [f for f in features if f not in names]
            if missing:
                raise V2Error(
                    400, f"missing the tensor of feature(s) {', '.join(repr(m) for m in missing)}"
                )
            n = _column_rows(tensors)
            for t in tensors:
                _numeric(t)
            return n
        n = _column_rows(tensors)
        if len(tensors) == 1 and tensors[0].datatype == "BYTES" and tensors[0].name == RECORDS:
            return n
        delimiter = self.layout.delimiter
        paths = [tuple(t.name.split(delimiter)) for t in tensors]
        for path, t in zip(paths, tensors):
            if len(path) > _core.MAX_DEPTH:
                # No row can nest deeper (and the prefix check below is
                # quadratic in a path's parts).
                raise V2Error(
                    400,
                    f"tensor {t.name[:60]!r}...: its field path has {len(path)} parts, "
                    f"more than the {_core.MAX_DEPTH} a record may nest",
                )
        _check_paths(paths, [t.name for t in tensors])
        return n

    def _feature_columns(self, tensors: list[Tensor]) -> list[list]:
        """Each feature's values, in the features' order."""
        features = self.layout.features
        assert features is not None
        k = len(features)
        if len(tensors) == 1 and len(tensors[0].shape) == 2 and tensors[0].name not in features:
            values = tensors[0].values
            return [values[j::k] for j in range(k)]
        by_name = {t.name: t for t in tensors}
        return [by_name[f].values for f in features]

    def _feature_rows(self, tensors: list[Tensor], n: int) -> list[dict]:
        return _build_rows(self.layout.paths, self._feature_columns(tensors), n)

    def _feature_cells(self, tensors: list[Tensor]) -> Optional[_core.FeatureRows]:
        """The rows as feature cells, each what the engine's text reader
        reads from the row's JSON line; None when a value is not a plain
        number the cells hold (an integer past int64): the rows go as lines."""
        try:
            return _core.FeatureRows.from_columns(self._feature_columns(tensors))
        except (TypeError, ValueError):
            return None

    def _record_rows(self, tensors: list[Tensor], n: int) -> list[dict]:
        if len(tensors) == 1 and tensors[0].datatype == "BYTES" and tensors[0].name == RECORDS:
            # One record per element, as JSON text (a column of text is
            # any other name: a text that starts with "{" stays text).
            return _json_records(tensors[0])
        paths = [tuple(t.name.split(self.layout.delimiter)) for t in tensors]
        return _build_rows(paths, [t.values for t in tensors], n)

    def render(self, lines: list[bytes], request: InferRequest) -> tuple[bytes, Optional[int]]:
        """The infer answer from the request's output lines, in order, and
        the length of its JSON header when binary outputs follow it.
        Written in Rust when Rust writes it exactly as :meth:`render_python`
        would (else that does)."""
        fast = _core.v2_write_answer(*self._answer_args(lines, request))
        if fast is not None:
            return fast
        return self.render_python(lines, request)

    async def render_beside(
        self, lines: list[bytes], request: InferRequest, offload: V2Offload
    ) -> tuple[bytes, Optional[int]]:
        """:meth:`render`, the Rust writing done on ``offload``'s thread so
        the event loop goes on meanwhile: for answers of
        :data:`OFFLOAD_ANSWER_ROWS` rows or more."""
        fast = await offload.write(*self._answer_args(lines, request))
        if fast is not None:
            return fast
        return self.render_python(lines, request)

    def _answer_args(self, lines: list[bytes], request: InferRequest) -> tuple:
        """The arguments of ``_core.v2_write_answer`` for a request's answer."""
        return (
            lines,
            request.outputs,
            self.name,
            self.version,
            request.id,
            request.binary,
            request.binary_default,
        )

    def render_python(
        self, lines: list[bytes], request: InferRequest
    ) -> tuple[bytes, Optional[int]]:
        """:meth:`render` in Python only (the reference for the Rust writer)."""
        outputs = self.output_tensors(lines, request.outputs)
        buffers = []
        for tensor in outputs:
            if request.binary.get(tensor["name"], request.binary_default):
                data = raw_output(tensor.pop("data"), tensor["datatype"])
                tensor["parameters"] = {"binary_data_size": len(data)}
                buffers.append(data)
        answer: dict[str, Any] = {"model_name": self.name}
        if self.version:
            answer["model_version"] = self.version
        if request.id is not None:
            answer["id"] = request.id
        answer["outputs"] = outputs
        header = _core.dumps(answer)
        if not buffers:
            return header, None
        return header + b"".join(buffers), len(header)

    def output_tensors(self, lines: list[bytes], names: Optional[list[str]]) -> list[dict]:
        """The output tensors of a request's output lines (in order): one
        ``{"name", "datatype", "shape", "data"}`` per output key, or per name
        in ``names`` when the request asked for some."""
        rows = json.loads(b"[" + b",".join(lines) + b"]")
        keys: dict[str, None] = {}
        for row in rows:
            if isinstance(row, dict):
                keys.update(dict.fromkeys(row))
        if names is not None:
            unknown = [name for name in names if name not in keys]
            if unknown:
                shown = [repr(_short(k)) for k in list(keys)[:20]]
                if len(keys) > 20:
                    shown.append(f"... ({len(keys)} in all)")
                have = ", ".join(shown) or "none"
                raise V2Error(
                    400, f"no output named {_short(unknown[0])!r}; the outputs are {have}"
                )
        else:
            if len(keys) > _MAX_OUTPUT_TENSORS:
                # Rows of many different keys make an answer of keys x rows
                # values (one key per row: a tensor per row, mostly nulls).
                raise V2Error(
                    422,
                    f"the rows have {len(keys)} different keys: more than the "
                    f"{_MAX_OUTPUT_TENSORS} output tensors an answer holds unless the request "
                    'names the ones it wants in "outputs"',
                )
            names = list(keys)
        if len(names) * len(rows) > _MAX_OUTPUT_VALUES:
            raise V2Error(
                422,
                f"the outputs would be {len(names)} tensors of {len(rows)} values: more than "
                f"{_MAX_OUTPUT_VALUES:,} values (the rows have that many different keys); "
                'ask for some by name in "outputs", or send fewer rows',
            )
        return [_output_tensor(name, rows) for name in names]


class Tensor(NamedTuple):
    """An input tensor, read and checked: its values flat, row-major."""

    name: str
    datatype: str
    shape: list[int]
    values: list  # flat, row-major


def _refuse_constant(word: str) -> Any:
    raise ValueError(f"{word} is not JSON (JSON has no NaN or Infinity)")


def _load_json(body: bytes) -> Any:
    if not body or body.isspace():
        raise V2Error(400, 'the body is empty: send a JSON object {"inputs": [tensors]}')
    try:
        return json.loads(body, parse_constant=_refuse_constant)
    except RecursionError:
        raise V2Error(400, "the body is not JSON that can be read: nested too deeply") from None
    except ValueError as exc:
        raise V2Error(400, f"the body is not JSON: {exc}") from None


class _Raw:
    """A body cut into its JSON header and the binary data after it."""

    def __init__(self, body: bytes, header_length: Optional[bytes]):
        self.header = body
        self.data = memoryview(b"")
        self.used = 0
        self.binary = header_length is not None
        if header_length is None:
            return
        try:
            length = int(header_length)
        except ValueError:
            length = -1
        if not 0 <= length <= len(body):
            raise V2Error(
                400,
                f"{HEADER_LENGTH} is {_short(header_length.decode('latin-1'))!r}: it must be "
                f"the length of the JSON header, a number from 0 to the body's {len(body)} bytes",
            )
        self.header = body[:length]
        self.data = memoryview(body)[length:]

    def take(self, size: Any, where: str) -> memoryview:
        if not self.binary:
            raise V2Error(
                400,
                f"{where} gives a binary_data_size but the request has no {HEADER_LENGTH} "
                "(where its JSON header ends)",
            )
        if type(size) is not int or size < 0:
            raise V2Error(400, f"{where}: binary_data_size must be an integer >= 0")
        if self.used + size > len(self.data):
            raise V2Error(
                400,
                f"{where}: binary_data_size {size} goes past the end of the binary data "
                f"({len(self.data) - self.used} bytes left)",
            )
        chunk = self.data[self.used : self.used + size]
        self.used += size
        return chunk

    def check_used(self) -> None:
        extra = len(self.data) - self.used
        if extra:
            raise V2Error(
                400, f"{extra} bytes of binary data after the inputs' binary_data_size are left"
            )


def raw_values(chunk: memoryview, datatype: str, count: int, where: str) -> list:
    """The values of a tensor sent as binary data."""
    if datatype == "BYTES":
        values = []
        end = len(chunk)
        at = 0
        while at < end:
            if len(values) == count:
                raise V2Error(
                    400,
                    f"{where}: {end - at} bytes of binary data after its {count} elements "
                    "(its shape holds no more)",
                )
            if at + 4 > end:
                raise V2Error(400, f"{where}: element {len(values)} is cut in its length")
            (size,) = struct.unpack_from("<I", chunk, at)
            at += 4
            if at + size > end:
                raise V2Error(400, f"{where}: element {len(values)} is cut ({size} bytes said)")
            try:
                values.append(str(chunk[at : at + size], "utf-8"))
            except UnicodeDecodeError:
                raise V2Error(400, f"{where}: element {len(values)} is not UTF-8 text") from None
            at += size
        return values
    dtype = np.dtype(RAW_TYPES[datatype])
    if len(chunk) != count * dtype.itemsize:
        raise V2Error(
            400,
            f"{where}: {len(chunk)} bytes of binary data; its shape and {datatype} take "
            f"{count * dtype.itemsize}",
        )
    array = np.frombuffer(chunk, dtype=dtype)
    if datatype in _FLOATS:
        bad = np.flatnonzero(~np.isfinite(array))
        if bad.size:
            raise V2Error(
                400, f"{where}: element {int(bad[0])} is {array[bad[0]]}, not a finite number"
            )
    return array.tolist()


def raw_output(column: list, datatype: str) -> bytes:
    """An output tensor's values as binary data."""
    if datatype == "BYTES":
        encoded = [v.encode("utf-8") for v in column]
        return b"".join(struct.pack("<I", len(v)) + v for v in encoded)
    return np.array(column, dtype=RAW_TYPES[datatype]).tobytes()


def _head(item: Any, index: int, max_rows: int) -> Tensor:
    """An input's name, datatype and shape, checked (its values left unread)."""
    where = f"input {index}"
    if not isinstance(item, dict):
        raise V2Error(400, f"{where} is not a JSON object")
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise V2Error(400, f'{where} has no "name" string')
    datatype, shape = item.get("datatype"), item.get("shape")
    check_head(name, datatype, shape, max_rows)
    return Tensor(name, datatype, shape, [])


def _tensor(item: Any, index: int, raw: _Raw, max_rows: int) -> Tensor:
    name, datatype, shape, _ = _head(item, index, max_rows)
    where = f"tensor {_short(name)!r}"
    params = item.get("parameters")
    expected = 1
    for d in shape:
        expected *= d
    if isinstance(params, dict) and "binary_data_size" in params:
        if "data" in item:
            raise V2Error(
                400, f'{where} gives both "data" and a binary_data_size: send its values once'
            )
        chunk = raw.take(params["binary_data_size"], where)
        values = raw_values(chunk, datatype, expected, where)
    elif "data" not in item:
        raise V2Error(400, f'{where} has no "data" (nor a binary_data_size)')
    else:
        values = _flatten(item["data"], shape, where)
    return check_tensor(name, datatype, shape, values)


def check_head(name: str, datatype: Any, shape: Any, max_rows: int) -> int:
    """How many values a tensor of this datatype and shape holds; a
    :class:`V2Error` when the datatype is unknown, the shape is not one, or
    it holds more rows than ``max_rows`` (413) or more values than a request
    can carry. Cheap: nothing of the values is read."""
    where = f"tensor {_short(name)!r}"
    if not isinstance(datatype, str) or datatype not in DATATYPES:
        shown = repr(datatype[:40]) if isinstance(datatype, str) else _shown(datatype)
        raise V2Error(400, f"{where} has datatype {shown}; one of {', '.join(sorted(DATATYPES))}")
    if (
        not isinstance(shape, list)
        or not 0 < len(shape) <= _MAX_DIMS
        or any(type(d) is not int or d < 0 for d in shape)
    ):
        raise V2Error(
            400,
            f'{where}: "shape" must be an array of 1 to {_MAX_DIMS} sizes (integers >= 0)',
        )
    if shape[0] > max_rows:
        raise V2Error(
            413,
            f"{where} has {shape[0]} rows, more than the {max_rows} a request may hold "
            "(the server's queue); split it",
        )
    expected = 1
    for d in shape:
        expected *= d
        if expected > _MAX_VALUES:
            raise V2Error(400, f"{where}: its shape holds more values than a request can carry")
    return expected


def check_tensor(name: str, datatype: str, shape: list[int], values: list) -> Tensor:
    """The tensor, once its values (flat, row-major) are as many as its
    shape holds and each is of its datatype (call :func:`check_head`
    first); else a :class:`V2Error` naming the element."""
    where = f"tensor {_short(name)!r}"
    expected = 1
    for d in shape:
        expected *= d
    if len(values) != expected:
        raise V2Error(400, f"{where} has {len(values)} values; its shape {shape} holds {expected}")
    _check_values(values, datatype, where)
    return Tensor(name, datatype, shape, values)


def _flatten(data: Any, shape: list[int], where: str) -> list:
    """The values of ``data``, a flat array or one nested as ``shape`` is
    (every array at depth d holding ``shape[d]`` items), row-major; a 400
    for nesting of any other form (ragged rows, deeper than the shape)."""
    if not isinstance(data, list):
        raise V2Error(400, f'{where}: "data" must be an array')
    if list not in set(map(type, data)):
        return data
    out: list = []
    # (items, their depth); a depth's arrays hold shape[depth] items.
    stack = [(iter(data), 0)]
    if len(data) != shape[0]:
        raise _ragged(where, shape, [])
    path: list[int] = [0]
    while stack:
        items, depth = stack[-1]
        for value in items:
            path[-1] += 1
            if type(value) is list:
                if depth + 1 >= len(shape) or len(value) != shape[depth + 1]:
                    raise _ragged(where, shape, path)
                stack.append((iter(value), depth + 1))
                path.append(0)
                break
            if depth + 1 != len(shape):
                raise _ragged(where, shape, path)
            out.append(value)
        else:
            stack.pop()
            path.pop()
    return out


def _ragged(where: str, shape: list[int], path: list[int]) -> V2Error:
    at = "data" + "".join(f"[{i - 1}]" for i in path) if path else "its top level"
    return V2Error(
        400,
        f'{where}: "data" is nested unlike its shape {shape} (at {at}); send it flat '
        "(row-major) or nested as the shape is",
    )


_EXPECTED_TYPES = {
    "BOOL": ({bool}, "true or false"),
    "BYTES": ({str}, "a string"),
}


def _check_values(values: list, datatype: str, where: str) -> None:
    """A 400 naming the first element of ``values`` that ``datatype`` does not
    hold. One pass over the types (in C) for the common, valid tensor."""
    if datatype in _EXPECTED_TYPES:
        allowed, what = _EXPECTED_TYPES[datatype]
    elif datatype in _FLOATS:
        allowed, what = {int, float}, "a number"
    else:
        allowed, what = {int}, "an integer"
    types = set(map(type, values))
    if not types <= allowed:
        for i, value in enumerate(values):
            if type(value) not in allowed:
                raise V2Error(
                    400,
                    f"{where}: element {i} is {_element_text(value)}, not {what} ({datatype})",
                )
    if datatype in _FLOAT_MAX and values:
        limit = _FLOAT_MAX[datatype]
        if max(values) >= limit or min(values) <= -limit:
            for i, value in enumerate(values):
                if not -limit < value < limit:
                    raise V2Error(
                        400, f"{where}: element {i} ({value}) is out of the range of {datatype}"
                    )
    if datatype in _FLOATS and float in types:
        # JSON has no infinity, but 1e400 reads as one.
        try:
            finite = all(map(math.isfinite, values))
        except OverflowError:  # an integer past any float: found below
            finite = False
        if not finite:
            for i, value in enumerate(values):
                if type(value) is float and not math.isfinite(value):
                    raise V2Error(400, f"{where}: element {i} is too large for {datatype}")
    if datatype in _FLOATS and int in types:
        # JSON writes 1e20 as 100000000000000000000: a number all the same.
        for i, value in enumerate(values):
            if type(value) is int:
                try:
                    values[i] = float(value)
                except OverflowError:
                    raise V2Error(
                        400, f"{where}: element {i} is too large for {datatype}"
                    ) from None
    if datatype in _INT_RANGES and values:
        low, high = _INT_RANGES[datatype]
        if min(values) < low or max(values) > high:
            for i, value in enumerate(values):
                if not low <= value <= high:
                    raise V2Error(
                        400, f"{where}: element {i} ({value}) is out of the range of {datatype}"
                    )


def _numeric(t: Tensor) -> None:
    if t.datatype == "BYTES":
        raise V2Error(
            400, f"tensor {_short(t.name)!r} is BYTES: the model's features take numbers (or BOOL)"
        )


def _column_rows(tensors: list[Tensor]) -> int:
    """N, the rows of tensors that are each one column: shape [N] or [N, 1],
    the same N for all."""
    n = None
    for t in tensors:
        if len(t.shape) > 2 or (len(t.shape) == 2 and t.shape[1] != 1):
            raise V2Error(
                400,
                f"tensor {_short(t.name)!r} has shape {t.shape}; a column's shape is [N] or [N, 1]",
            )
        if n is None:
            n = t.shape[0]
        elif t.shape[0] != n:
            raise V2Error(
                400,
                f"tensor {_short(t.name)!r} has {t.shape[0]} rows and tensor "
                f"{_short(tensors[0].name)!r} {n}: every column has the same rows",
            )
    return n or 0


def _check_paths(paths: list[tuple[str, ...]], names: list[str]) -> None:
    """A 400 for a column whose path is inside another's (``a`` and ``a.b``)
    or has an empty part: one row cannot hold both. One walk of each path
    through a tree of the paths (linear in their parts)."""
    for path, name in zip(paths, names):
        if any(part == "" for part in path):
            raise V2Error(400, f"tensor {_short(name)!r}: its field path has an empty part")
    # A node: a dict of children; a leaf: the name of the column ending there.
    root: dict = {}
    for path, name in zip(paths, names):
        node: Any = root
        for depth, part in enumerate(path):
            last = depth == len(path) - 1
            child = node.get(part)
            if isinstance(child, str) or (last and child is not None):
                # A value where a nested field goes, or nested fields where
                # a value goes: say which two columns.
                other = child if isinstance(child, str) else _a_leaf(child)
                raise V2Error(
                    400,
                    f"tensors {_short(other)!r} and {_short(name)!r}: one field cannot hold "
                    "both a value and nested fields",
                )
            if last:
                node[part] = name
            else:
                node = node.setdefault(part, {})


def _fields_apart(paths: list[tuple[str, ...]]) -> bool:
    """Whether every path has a field of its own in a row: none is another's
    or inside it (nor has an empty part), as :func:`_check_paths` checks a
    request's columns."""
    try:
        _check_paths(paths, [".".join(p) for p in paths])
    except V2Error:
        return False
    return True


def _a_leaf(node: dict) -> str:
    """The name of some column under ``node``."""
    while True:
        child = next(iter(node.values()))
        if isinstance(child, str):
            return child
        node = child


def _build_rows(paths: list[tuple[str, ...]], columns: list[list], n: int) -> list[dict]:
    """One dict per row: the value of column j of row i at ``paths[j]``."""
    if all(len(p) == 1 for p in paths):
        keys = [p[0] for p in paths]
        return [dict(zip(keys, values)) for values in zip(*columns)]
    # Nested: the flat keys first, then each nested value set along its path.
    rows: list[dict] = [{} for _ in range(n)]
    for path, column in zip(paths, columns):
        if len(path) == 1:
            key = path[0]
            for row, value in zip(rows, column):
                row[key] = value
            continue
        head, last = path[:-1], path[-1]
        try:
            for row, value in zip(rows, column):
                node = row
                for part in head:
                    node = node.setdefault(part, {})
                node[last] = value
        except (AttributeError, TypeError):
            # A field on the way holds a value already: the model's features
            # are read from fields one inside the other (a and a.b), which no
            # row can hold both of (a records backend's clashing column
            # names are refused before this, as the client's error).
            raise V2Error(
                500,
                f"the model reads a feature from {_short('.'.join(path))!r}, inside a field "
                "another feature is read from: a row cannot hold both, so this model's rows "
                "cannot be built from tensors; send them to /invocations",
            ) from None
    return rows


def _json_records(t: Tensor) -> list[dict]:
    """The records of a BYTES tensor whose elements are JSON objects."""
    rows = []
    for i, text in enumerate(t.values):
        try:
            row = json.loads(text, parse_constant=_refuse_constant)
        except (ValueError, RecursionError) as exc:
            raise V2Error(
                400, f"tensor {_short(t.name)!r}: element {i} is not JSON: {exc}"
            ) from None
        if not isinstance(row, dict):
            raise V2Error(400, f"tensor {_short(t.name)!r}: element {i} is not a JSON object")
        rows.append(row)
    return rows


def _short(text: str, limit: int = 100) -> str:
    """``text`` cut to ``limit`` characters for a message (a client's path
    must not make an answer as long as itself)."""
    return text if len(text) <= limit else text[:limit] + "..."


def _element_text(value: Any) -> str:
    """A JSON value of a body as a short text for an error message (a lone
    surrogate, which JSON may spell, shown escaped)."""
    try:
        return _core.dumps(value).decode()[:60]
    except ValueError:
        return json.dumps(value)[:60]


def _shown(value: Any) -> str:
    """A JSON value as a short text for an error message."""
    try:
        return _core.dumps(value).decode()[:40]
    except (TypeError, ValueError):
        return type(value).__name__


def _flag(params: dict, key: str, where: str) -> bool:
    """A boolean parameter: JSON true or false, nothing else ("false" is not)."""
    value = params.get(key, False)
    if type(value) is not bool:
        raise V2Error(400, f"{where}: parameter {key!r} must be true or false")
    return value


def _requested_outputs(outputs: Any) -> tuple[Optional[list[str]], dict[str, bool]]:
    """The names asked for (``None``: every output), and the binary_data
    parameter of each output that has one."""
    if outputs is None:
        return None, {}
    if not isinstance(outputs, list):
        raise V2Error(400, '"outputs" must be an array of {"name": ...} objects')
    if not outputs:
        return None, {}  # none named: all of them, as Triton reads it
    names: list[str] = []
    asked: set[str] = set()
    binary = {}
    for i, item in enumerate(outputs):
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str):
            raise V2Error(400, f'output {i} has no "name" string')
        if name in asked:
            raise V2Error(400, f"output {name[:60]!r} is asked for twice")
        asked.add(name)
        names.append(name)
        params = item.get("parameters")
        if isinstance(params, dict) and "binary_data" in params:
            binary[name] = _flag(params, "binary_data", f"output {_short(name)!r}")
    return names, binary


def _output_tensor(name: str, rows: list) -> dict:
    """One output tensor of shape [N]: a row without the key gives null."""
    column = [row.get(name) if isinstance(row, dict) else None for row in rows]
    types = set(map(type, column))
    if types == {bool}:
        datatype = "BOOL"
    elif types == {int} and min(column) >= _INT64_MIN and max(column) <= _INT64_MAX:
        datatype = "INT64"
    elif types == {int} and min(column) >= 0 and max(column) <= _UINT64_MAX:
        datatype = "UINT64"
    elif types and types <= {int, float} and _as_floats(column, types):
        datatype = "FP64"
        if int in types:
            column = [float(v) for v in column]
    else:
        datatype = "BYTES"
        if types != {str}:
            dumps = _core.dumps
            column = [v if type(v) is str else dumps(v).decode() for v in column]
    return {"name": name, "datatype": datatype, "shape": [len(column)], "data": column}


def _as_floats(column: list, types: set) -> bool:
    """Whether the numbers of ``column`` go out as FP64 without changing: every
    integer among them is exactly a float (at most 2**53); else the column
    goes out as JSON text."""
    if int not in types:
        return True
    big = max(abs(v) for v in column if type(v) is int)
    return big <= 1 << 53
