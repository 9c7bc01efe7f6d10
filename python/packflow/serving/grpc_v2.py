"""The Open Inference Protocol (KServe V2) over gRPC: the standard
``inference.GRPCInferenceService`` on grpc.aio, on the HTTP server's event
loop, for one or several models.

A request's tensors go through the REST door's checks (:mod:`.v2`) and into
the model's own batcher, beside its REST requests: this module only turns
protobuf tensors into :class:`~packflow.serving.v2.Tensor` values and output
tensors back into protobuf. An answer uses ``raw_output_contents`` when the
request sent ``raw_input_contents`` (tritonclient always does), else typed
``contents``.

Errors carry the REST answer's ``error`` text, with the status mapped to a
gRPC code (:data:`CODES`): 400, 415 and 422 are INVALID_ARGUMENT, 404
NOT_FOUND, 413 RESOURCE_EXHAUSTED (what grpc itself answers for a message
over the size limit), 503 UNAVAILABLE, 504 DEADLINE_EXCEEDED, 500 INTERNAL.
"""

from __future__ import annotations

import asyncio
import json
import struct
import time
from collections.abc import Callable, Mapping
from typing import Any, Optional

import grpc
import numpy as np
from grpc import aio

from packflow import _core
from packflow._version import __version__
from packflow.constants import SERVE_GRPC_MAX_CONCURRENT_RPCS, SERVE_GRPC_MAX_SEND_BYTES
from packflow.logger import get_logger
from packflow.serving.app import PackflowApp, _Reply
from packflow.serving.batcher import Batcher, Outcome
from packflow.serving.metrics import ServerMetrics
from packflow.serving.offload import OFFLOAD_ANSWER_ROWS, OFFLOAD_BODY_BYTES
from packflow.serving.proto import grpc_predict_v2_pb2 as pb
from packflow.serving.proto.grpc_predict_v2_pb2_grpc import (
    GRPCInferenceServiceServicer,
    add_GRPCInferenceServiceServicer_to_server,
)
from packflow.serving.protocol import Payload, Shape
from packflow.serving.v2 import (
    RAW_TYPES,
    Tensor,
    V2Api,
    V2Error,
    check_head,
    check_tensor,
    raw_output,
    raw_values,
)

__all__ = ["CODES", "CONTENTS_FIELD", "GrpcDoor", "GrpcLimits", "InferenceServicer", "code_of"]

#: The gRPC code of each status the REST door answers with.
CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    404: grpc.StatusCode.NOT_FOUND,
    408: grpc.StatusCode.DEADLINE_EXCEEDED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    500: grpc.StatusCode.INTERNAL,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}

#: The metrics label of an infer RPC (the method's gRPC path).
INFER = "/inference.GRPCInferenceService/ModelInfer"

#: Where the values of each datatype go in ``InferTensorContents`` (FP16
#: has no field: raw contents only).
CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
_ALL_FIELDS = tuple(dict.fromkeys(CONTENTS_FIELD.values()))


def code_of(status: int) -> grpc.StatusCode:
    """The gRPC code of an HTTP status (another 4xx: INVALID_ARGUMENT,
    another 5xx: INTERNAL)."""
    code = CODES.get(status)
    if code is not None:
        return code
    return grpc.StatusCode.INVALID_ARGUMENT if status < 500 else grpc.StatusCode.INTERNAL


#: The longest error text an RPC ends with (characters).
_MAX_MESSAGE = 4000


class _RpcExchange:
    """What :meth:`PackflowApp._run` needs of a door: the job's outcome, and
    its rows dropped from the queue when the RPC is cancelled (the client
    went away or its deadline passed)."""

    __slots__ = ("batcher",)

    def __init__(self, batcher: Batcher):
        self.batcher = batcher

    async def outcome(self, job: Any) -> Outcome:
        try:
            # Shielded: a cancelled future would never be settled by the
            # batcher, and its rows would stay counted in the queue.
            return await asyncio.shield(job.future)
        except asyncio.CancelledError:
            self.batcher.abandon(job)
            raise


class InferenceServicer(GRPCInferenceServiceServicer):
    """``inference.GRPCInferenceService`` over ``models`` (name -> app): each
    model's requests go to its own app's V2 checks and batcher."""

    def __init__(self, models: Mapping[str, PackflowApp], metrics: Optional[ServerMetrics] = None):
        if not models:
            raise ValueError("a gRPC server needs at least one model")
        self.models = models
        #: Where an infer RPC naming no model here is counted: the server's
        #: metrics (several models), else the one model's, as REST counts it.
        self.metrics = metrics if metrics is not None else next(iter(models.values())).metrics

    # -- health and metadata --------------------------------------------------------

    async def ServerLive(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC's name
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: Any) -> Any:  # noqa: N802
        return pb.ServerReadyResponse(ready=all(app.ready() for app in self.models.values()))

    async def ModelReady(self, request: Any, context: Any) -> Any:  # noqa: N802
        app = await self._model(request.name, request.version, context)
        return pb.ModelReadyResponse(ready=app.ready())

    async def ServerMetadata(self, request: Any, context: Any) -> Any:  # noqa: N802
        return pb.ServerMetadataResponse(name="packflow", version=__version__)

    async def ModelMetadata(self, request: Any, context: Any) -> Any:  # noqa: N802
        app = await self._model(request.name, request.version, context)
        meta = json.loads(app.v2.model_metadata())
        return pb.ModelMetadataResponse(
            name=meta["name"],
            versions=meta["versions"],
            platform=meta["platform"],
            inputs=[pb.ModelMetadataResponse.TensorMetadata(**t) for t in meta["inputs"]],
            outputs=[pb.ModelMetadataResponse.TensorMetadata(**t) for t in meta["outputs"]],
        )

    # -- infer ----------------------------------------------------------------------

    async def ModelInfer(self, request: Any, context: Any) -> Any:  # noqa: N802
        started = time.perf_counter()
        app = await self._model(request.model_name, request.model_version, context, counted=True)
        status, message = 200, ""
        try:
            return await self._infer(app, request, context, started)
        except asyncio.CancelledError:  # the client went away, or its deadline passed
            status = 499
            raise
        except V2Error as exc:
            status, message = exc.status, str(exc)
        except _Reply as reply:
            status, message = reply.status, _error_text(reply.body)
        except Exception:
            get_logger().exception("gRPC ModelInfer on model %r failed", app.name)
            status, message = 500, "internal error: see the server log"
        finally:
            app.metrics.request(INFER, status, time.perf_counter() - started)
        # grpc carries a status message of at most 16 KiB in all (past it
        # the client gets RESOURCE_EXHAUSTED, and neither code nor text).
        if len(message) > _MAX_MESSAGE:
            message = message[:_MAX_MESSAGE] + "..."
        await context.abort(code_of(status), message)

    async def _infer(self, app: PackflowApp, request: Any, context: Any, started: float) -> Any:
        v2 = app.v2
        # Read in Rust when it can be, large requests beside the event loop
        # (as REST bodies are: see .offload).
        fast = None
        made = rust_body(request)
        if made is not None:
            body, length = made
            if len(body) >= OFFLOAD_BODY_BYTES:
                fast = await app._offload.read(v2.plan, body, length)
            else:
                fast = _core.v2_read_request(v2.plan, body, length)
        if fast is not None:
            data, rows = fast[0], fast[1]
        else:
            tensors, _, n = _input_tensors(request, v2)
            data, rows = v2.lines_of(tensors, n)
        raw = bool(request.raw_input_contents)
        payload = Payload(data, rows, Shape.ARRAY, "application/json")
        names = [o.name for o in request.outputs] or None
        if names is not None and len(set(names)) != len(names):
            seen: set[str] = set()
            twice = next(name for name in names if name in seen or seen.add(name))
            raise V2Error(400, f"output {twice[:60]!r} is asked for twice")
        headers = _headers(context)
        lines = await app._run(payload, headers, _RpcExchange(app.batcher), started)
        response = pb.ModelInferResponse(
            model_name=v2.name, model_version=v2.version or "", id=request.id
        )
        args = (lines, names, v2.name, v2.version, None, None, True)
        if len(lines) >= OFFLOAD_ANSWER_ROWS:
            written = await app._offload.write(*args)
        else:
            written = _core.v2_write_answer(*args)
        for name, datatype, shape, chunk in output_columns(v2, lines, names, written):
            out = response.outputs.add(name=name, datatype=datatype, shape=shape)
            if raw:
                response.raw_output_contents.append(chunk)
            else:
                getattr(out.contents, CONTENTS_FIELD[datatype]).extend(_values_of(chunk, datatype))
        return response

    async def _model(
        self, name: str, version: str, context: Any, counted: bool = False
    ) -> PackflowApp:
        """The app serving model ``name`` (and ``version``, when given), or
        the RPC ends with NOT_FOUND (``counted``: as an infer RPC answered 404
        in :attr:`metrics`, or the model's for a version it does not have)."""
        app = self.models.get(name)
        if app is None:
            if counted:
                self.metrics.request(INFER, 404)
            have = ", ".join(repr(n) for n in self.models)
            await context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"no model named {name[:100]!r}; this server has {have}",
            )
        assert app is not None
        own = app.v2.version
        if version and version != own:
            if counted:
                app.metrics.request(INFER, 404)
            has = f"its version is {own!r}" if own else "it has none"
            await context.abort(
                grpc.StatusCode.NOT_FOUND, f"model {name!r} has no version {version[:100]!r}; {has}"
            )
        return app


def _error_text(body: bytes) -> str:
    """The ``error`` text of a REST error body."""
    try:
        return str(json.loads(body)["error"])
    except (ValueError, KeyError, TypeError):
        return body.decode("utf-8", "replace")


def _headers(context: Any) -> list[tuple[bytes, bytes]]:
    """The RPC's text metadata as the app reads HTTP header fields (for
    ``x-request-id``)."""
    metadata = context.invocation_metadata() or ()
    return [
        (key.lower().encode("latin-1"), value.encode("latin-1", "replace"))
        for key, value in metadata
        if isinstance(value, str)
    ]


def _input_tensors(request: Any, v2: V2Api) -> tuple[list[Tensor], bool, int]:
    """The request's input tensors, checked as REST checks them (names,
    datatypes and shapes against the model's layout before any value is
    read), whether they came as raw contents, and their rows; a
    :class:`V2Error` names what is wrong."""
    max_rows = v2.max_rows
    inputs = request.inputs
    if not inputs:
        raise V2Error(400, "the request has no inputs")
    raw = request.raw_input_contents
    if raw and len(raw) != len(inputs):
        raise V2Error(
            400,
            f"raw_input_contents has {len(raw)} entries for {len(inputs)} inputs: "
            "one per input, in order",
        )
    heads = []
    seen: set[str] = set()
    for i, item in enumerate(inputs):
        name = item.name
        if not name:
            raise V2Error(400, f"input {i} has no name")
        if name in seen:
            raise V2Error(400, f"tensor {name[:100]!r} is given twice")
        seen.add(name)
        shape = list(item.shape)
        check_head(name, item.datatype, shape, max_rows)
        heads.append(Tensor(name, item.datatype, shape, []))
    n = v2.check_shapes(heads)
    tensors = []
    for i, (item, head) in enumerate(zip(inputs, heads)):
        name, datatype, shape, _ = head
        where = f"tensor {name[:100]!r}"
        expected = 1
        for d in shape:
            expected *= d
        if raw:
            if item.HasField("contents"):
                raise V2Error(
                    400, f"{where} has contents, but the request sends raw_input_contents"
                )
            values = raw_values(memoryview(raw[i]), datatype, expected, where)
        else:
            values = _typed_values(item.contents, datatype, where)
        tensors.append(check_tensor(name, datatype, shape, values))
    return tensors, bool(raw), n


#: The datatypes whose typed contents are read in Rust: those whose field
#: holds exactly their values (INT8's ``int_contents`` holds any int32, and
#: its range is checked where errors are worded).
_RUST_TYPED = {"BOOL", "INT32", "INT64", "UINT32", "UINT64", "FP32", "FP64"}
#: Requests of more inputs are read by Python (as in the REST reader).
_RUST_MAX_INPUTS = 64


def rows_in_rust(request: Any, v2: V2Api) -> Optional[tuple[Any, int]]:
    """A request's rows and how many, read by the Rust reader of REST bodies
    (``_core.v2_read_request``) from the body :func:`rust_body` makes;
    ``None`` for anything it leaves to Python (whose reading,
    :func:`_input_tensors`, words every error)."""
    made = rust_body(request)
    if made is None:
        return None
    fast = _core.v2_read_request(v2.plan, *made)
    if fast is None:
        return None
    return fast[0], fast[1]


def rust_body(request: Any) -> Optional[tuple[bytes, bytes]]:
    """The REST body of JSON header and binary data a request's tensors make,
    and its header's length, for the Rust reader; ``None`` when the request
    is not one it reads: typed contents of another datatype, values in a
    field not their datatype's, raw contents not one per input."""
    inputs = request.inputs
    raw = request.raw_input_contents
    if not inputs or len(inputs) > _RUST_MAX_INPUTS:
        return None
    if raw:
        if len(raw) != len(inputs) or any(item.HasField("contents") for item in inputs):
            return None
        chunks = list(raw)
    else:
        chunks = []
        for item in inputs:
            if item.datatype not in _RUST_TYPED:
                return None
            contents = item.contents
            field = CONTENTS_FIELD[item.datatype]
            if any(len(getattr(contents, other)) for other in _ALL_FIELDS if other != field):
                return None
            values = list(getattr(contents, field))
            chunks.append(np.array(values, dtype=RAW_TYPES[item.datatype]).tobytes())
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": item.name,
                    "datatype": item.datatype,
                    "shape": list(item.shape),
                    "parameters": {"binary_data_size": len(chunk)},
                }
                for item, chunk in zip(inputs, chunks)
            ]
        }
    ).encode()
    return header + b"".join(chunks), str(len(header)).encode()


_WRITE = object()


def output_columns(
    v2: V2Api, lines: list[bytes], names: Optional[list[str]], written: Any = _WRITE
) -> list[tuple[str, str, list[int], bytes]]:
    """Each output tensor of a request's output lines (see
    :meth:`V2Api.output_tensors`): its name, datatype, shape and values as
    binary data. Written in Rust (the REST answer with every output as
    binary data, then cut at each tensor's ``binary_data_size``; or
    ``written``, that answer written already), else by the Python path,
    which words the error when there is one."""
    if written is _WRITE:
        written = _core.v2_write_answer(lines, names, v2.name, v2.version, None, None, True)
    fast = written
    if fast is None:
        return [
            (t["name"], t["datatype"], t["shape"], raw_output(t["data"], t["datatype"]))
            for t in v2.output_tensors(lines, names)
        ]
    answer, json_length = fast
    header = json.loads(answer if json_length is None else answer[:json_length])
    at = len(answer) if json_length is None else json_length
    out = []
    for tensor in header["outputs"]:
        size = tensor["parameters"]["binary_data_size"]
        out.append((tensor["name"], tensor["datatype"], tensor["shape"], answer[at : at + size]))
        at += size
    return out


def _values_of(chunk: bytes, datatype: str) -> list:
    """An output tensor's values from its binary data, as typed contents
    take them (BYTES elements as their bytes)."""
    if datatype != "BYTES":
        return np.frombuffer(chunk, dtype=RAW_TYPES[datatype]).tolist()
    values = []
    at, end = 0, len(chunk)
    while at < end:
        (size,) = struct.unpack_from("<I", chunk, at)
        values.append(chunk[at + 4 : at + 4 + size])
        at += 4 + size
    return values


def _typed_values(contents: Any, datatype: str, where: str) -> list:
    """The values of a tensor sent in ``contents``, from the field of its
    datatype (values in another field are an error, not ignored)."""
    field = CONTENTS_FIELD.get(datatype)
    if field is None:
        raise V2Error(400, f"{where} is {datatype}: send its values in raw_input_contents")
    for other in _ALL_FIELDS:
        if other != field and len(getattr(contents, other)):
            raise V2Error(
                400, f"{where} is {datatype}: its values go in contents.{field}, not {other}"
            )
    values = list(getattr(contents, field))
    if datatype == "BYTES":
        try:
            return [v.decode("utf-8") for v in values]
        except UnicodeDecodeError:
            for i, v in enumerate(values):
                try:
                    v.decode("utf-8")
                except UnicodeDecodeError:
                    raise V2Error(400, f"{where}: element {i} is not UTF-8 text") from None
    if datatype in ("FP32", "FP64") and values:
        bad = np.flatnonzero(~np.isfinite(np.asarray(values, dtype=np.float64)))
        if bad.size:
            i = int(bad[0])
            raise V2Error(400, f"{where}: element {i} is {values[i]}, not a finite number")
    return values


class GrpcLimits:
    """What gRPC clients may hold: the largest message received (default:
    the largest body limit of the models' apps) and sent, and the RPCs
    running at once (more get RESOURCE_EXHAUSTED from grpc)."""

    def __init__(
        self,
        max_receive_bytes: int,
        max_send_bytes: int = SERVE_GRPC_MAX_SEND_BYTES,
        max_concurrent_rpcs: int = SERVE_GRPC_MAX_CONCURRENT_RPCS,
    ):
        self.max_receive_bytes = max_receive_bytes
        self.max_send_bytes = max_send_bytes
        self.max_concurrent_rpcs = max_concurrent_rpcs


class GrpcDoor:
    """The gRPC server of ``models`` on ``host``:``port`` (0: a free one),
    started and stopped by :func:`packflow.serving.http1.run_until_signalled`
    beside the HTTP server, which calls ``on_listening(host, port)`` once
    every server listens."""

    def __init__(
        self,
        models: Mapping[str, PackflowApp],
        host: str,
        port: int,
        limits: Optional[GrpcLimits] = None,
        on_listening: Optional[Callable[[str, int], None]] = None,
        reuse_port: bool = False,
        metrics: Optional[ServerMetrics] = None,
    ):
        self.servicer = InferenceServicer(models, metrics)
        self.host = host
        self.port = port
        if limits is None:
            limits = GrpcLimits(max(app.max_body_bytes for app in models.values()))
        self.limits = limits
        self.on_listening = on_listening
        #: The longest an RPC in flight is waited for by :meth:`stop`.
        self.grace_s = max(app.request_timeout_s for app in models.values())
        self.server: Optional[aio.Server] = None
        #: SO_REUSEPORT, as :attr:`packflow.serving.http1.HttpServer.reuse_port`.
        self.reuse_port = reuse_port

    async def start(self) -> tuple[str, int]:
        """Listen; the bound address. Raises ``RuntimeError`` when it cannot."""
        limits = self.limits
        server = aio.server(
            options=[
                ("grpc.max_receive_message_length", limits.max_receive_bytes),
                ("grpc.max_send_message_length", limits.max_send_bytes),
                ("grpc.so_reuseport", 1 if self.reuse_port else 0),
            ],
            maximum_concurrent_rpcs=limits.max_concurrent_rpcs,
        )
        add_GRPCInferenceServiceServicer_to_server(self.servicer, server)
        shown = f"[{self.host}]" if ":" in self.host else self.host
        try:
            port = server.add_insecure_port(f"{shown}:{self.port}")
        except RuntimeError as exc:
            raise RuntimeError(f"could not listen for gRPC on {shown}:{self.port}: {exc}") from None
        if not port:  # older grpcio said so with port 0
            raise RuntimeError(f"could not listen for gRPC on {shown}:{self.port}")
        await server.start()
        self.server = server
        return self.host, port

    async def stop(self, at_once: bool = False) -> None:
        """Refuse new RPCs and answer those in flight (at most
        :attr:`grace_s`), or with ``at_once`` cancel them."""
        server = self.server
        if server is not None:
            await server.stop(0 if at_once else self.grace_s)
            self.server = None
