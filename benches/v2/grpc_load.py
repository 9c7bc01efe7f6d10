"""The gRPC load of the V2 benchmark (benches/v2/run.py): a bounded loop of
``inference.GRPCInferenceService/ModelInfer`` calls, ``--concurrency`` of them
in flight at once (grpc.aio, one process), for ``--seconds``.

It runs in the MLServer virtualenv (grpcio and the protocol's stubs come with
MLServer), against any server of the Open Inference Protocol:

    .venv-mlserver/bin/python benches/v2/grpc_load.py --target 127.0.0.1:8081 \\
        --model firewall-anomaly --body one.json --seconds 8

``--body`` is a V2 JSON infer body (the one wrk posts): its tensors are sent
as typed contents (``fp64_contents`` and the like). It waits for the model to
be ready, checks one answer (printed), warms up, then measures. One JSON
object goes to stdout: requests/s, p50/p99 in ms, errors, the client's own
CPU seconds (a client that used a whole core was the bottleneck), and the
first answer's output tensors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any, Optional

#: The ``InferTensorContents`` field of each datatype (the protocol's table).
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
#: Numpy types of raw (little-endian) output contents.
RAW_DTYPES = {
    "BOOL": "?",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "FP32": "<f4",
    "FP64": "<f8",
}
#: Requests past this many per run are not sent (a bound besides the time).
MAX_REQUESTS = 5_000_000


def flat(data: Any) -> list:
    """The values of a (possibly nested) JSON tensor, row-major."""
    if not isinstance(data, list):
        return [data]
    out: list = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            out.append(item)
        else:
            stack.pop()
    return out


def tensors_of(body: dict) -> list[tuple[str, str, list[int], list]]:
    """``(name, datatype, shape, flat values)`` of each input of a V2 JSON
    body, checked against its shape."""
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise ValueError('the body has no "inputs" list')
    out = []
    for i, tensor in enumerate(inputs):
        name, datatype, shape = tensor["name"], tensor["datatype"], list(tensor["shape"])
        if datatype not in CONTENTS_FIELD:
            raise ValueError(f"input {i} ({name!r}): unknown datatype {datatype!r}")
        values = flat(tensor["data"])
        count = 1
        for dim in shape:
            count *= dim
        if count != len(values):
            raise ValueError(f"input {i} ({name!r}): shape {shape} but {len(values)} values")
        out.append((name, datatype, shape, values))
    return out


def percentile(sorted_values: list[float], p: float) -> float:
    """The ``p``-th percentile (nearest rank) of ascending ``sorted_values``."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * p // 100))
    return sorted_values[min(len(sorted_values), int(rank)) - 1]


def outputs_of(response: Any) -> dict[str, list]:
    """The output tensors of a ``ModelInferResponse`` by name, as flat lists,
    from typed contents or from ``raw_output_contents``."""
    import numpy as np

    out = {}
    raw = list(response.raw_output_contents)
    for i, tensor in enumerate(response.outputs):
        if raw:
            out[tensor.name] = np.frombuffer(raw[i], RAW_DTYPES[tensor.datatype]).tolist()
        else:
            out[tensor.name] = list(getattr(tensor.contents, CONTENTS_FIELD[tensor.datatype]))
    return out


def build_request(pb: Any, model: str, body: dict) -> Any:
    request = pb.ModelInferRequest(model_name=model)
    for name, datatype, shape, values in tensors_of(body):
        tensor = request.inputs.add(name=name, datatype=datatype, shape=shape)
        getattr(tensor.contents, CONTENTS_FIELD[datatype]).extend(values)
    return request


async def wait_ready(stub: Any, pb: Any, model: str, timeout: float) -> None:
    import grpc

    deadline = time.monotonic() + timeout
    last: Optional[str] = None
    while time.monotonic() < deadline:
        try:
            answer = await stub.ModelReady(pb.ModelReadyRequest(name=model), timeout=2)
            if answer.ready:
                return
            last = "model not ready"
        except grpc.aio.AioRpcError as exc:
            last = f"{exc.code().name}: {exc.details()}"
        await asyncio.sleep(0.5)
    raise SystemExit(f"the gRPC server did not get ready within {timeout} s ({last})")


async def load(stub: Any, request: Any, seconds: float, concurrency: int) -> dict:
    import grpc

    latencies: list[float] = []
    errors = 0
    first_error: Optional[str] = None
    sent = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal errors, first_error, sent
        while sent < MAX_REQUESTS:
            start = time.perf_counter()
            if start >= deadline:
                return
            sent += 1
            try:
                await stub.ModelInfer(request, timeout=10)
            except grpc.aio.AioRpcError as exc:
                errors += 1
                first_error = first_error or f"{exc.code().name}: {exc.details()}"
                await asyncio.sleep(0.01)  # a failing server is not hammered
                continue
            latencies.append(time.perf_counter() - start)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "seconds": elapsed,
        "requests_per_s": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 50) * 1e3,
        "p99_ms": percentile(latencies, 99) * 1e3,
        "errors": errors,
        "first_error": first_error,
    }


async def run(args: argparse.Namespace) -> dict:
    import grpc
    from mlserver.grpc import dataplane_pb2 as pb
    from mlserver.grpc import dataplane_pb2_grpc as pb_grpc

    body = json.loads(Path(args.body).read_text())
    request = build_request(pb, args.model, body)
    async with grpc.aio.insecure_channel(args.target) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        await wait_ready(stub, pb, args.model, args.ready_timeout)
        try:
            answer = outputs_of(await stub.ModelInfer(request, timeout=10))
        except grpc.aio.AioRpcError as exc:
            raise SystemExit(f"ModelInfer failed: {exc.code().name}: {exc.details()}") from None
        if args.warmup > 0:
            await load(stub, request, args.warmup, args.concurrency)
        cpu_before = resource.getrusage(resource.RUSAGE_SELF)
        result = await load(stub, request, args.seconds, args.concurrency)
        cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    result["client_cpu_s"] = (cpu_after.ru_utime - cpu_before.ru_utime) + (
        cpu_after.ru_stime - cpu_before.ru_stime
    )
    result["answer"] = answer
    return result


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--target", required=True, help="host:port of the gRPC server")
    parser.add_argument("--model", required=True)
    parser.add_argument("--body", required=True, help="a V2 JSON infer body")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--ready-timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    if not 0 < args.seconds <= 600 or not 0 <= args.warmup <= 600:
        parser.error("--seconds and --warmup must be within (0, 600]")
    if not 1 <= args.concurrency <= 1024:
        parser.error("--concurrency must be within 1..1024")
    print(json.dumps(asyncio.run(run(args))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
