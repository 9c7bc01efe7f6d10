"""Calls to a V2 server through the `kserve` package's clients, run by
tests/serving/test_kserve_client.py in a Python that has kserve (and neither
packflow nor tritonclient: kserve and tritonclient's gRPC module register the
same protobuf messages, so no process can import both).

Reads ``{"rest": URL, "grpc": HOST:PORT, "calls": [...]}`` as JSON on stdin;
each call is ``{"door": "rest"|"grpc", "op": "live"|"ready"|"model_ready"|
"infer", "model": NAME, "inputs": [{"name", "datatype", "shape", "data",
"binary"}], "outputs": [NAME, ...] or null, "id": ID}``. Prints one JSON
array: per call its answer (for infer: id, model_name, each output's
datatype, shape and values as a list, and whether they came raw) or
``{"error": TEXT, "code": CODE}``.
"""

from __future__ import annotations

import asyncio
import json
import sys

import grpc
import httpx
import numpy as np
from kserve import (
    InferenceGRPCClient,
    InferenceRESTClient,
    InferInput,
    InferRequest,
)
from kserve.inference_client import RESTConfig
from kserve.protocol.infer_type import RequestedOutput

_DTYPES = {"FP64": np.float64, "FP32": np.float32, "INT64": np.int64, "BOOL": np.bool_}


def infer_request(call: dict) -> InferRequest:
    inputs = []
    for spec in call["inputs"]:
        t = InferInput(spec["name"], spec["shape"], spec["datatype"])
        if spec["datatype"] == "BYTES":
            array = np.array(spec["data"], dtype=np.object_).reshape(spec["shape"])
        else:
            array = np.array(spec["data"], dtype=_DTYPES[spec["datatype"]]).reshape(spec["shape"])
        t.set_data_from_numpy(array, binary_data=spec.get("binary", False))
        inputs.append(t)
    outputs = None
    if call.get("outputs") is not None:
        outputs = [RequestedOutput(name) for name in call["outputs"]]
    return InferRequest(
        model_name=call["model"],
        infer_inputs=inputs,
        request_id=call.get("id"),
        request_outputs=outputs,
    )


def answer(response) -> dict:
    outputs = {}
    for out in response.outputs:
        values = out.as_numpy().tolist()
        if out.datatype == "BYTES":
            values = [v.decode() if isinstance(v, bytes) else v for v in values]
        outputs[out.name] = {"datatype": out.datatype, "shape": list(out.shape), "data": values}
    # Whether the answer came as raw (binary) contents; kserve keeps no public
    # name for it.
    raw = any(getattr(out, "_raw_data", None) is not None for out in response.outputs)
    return {"id": response.id, "model_name": response.model_name, "outputs": outputs, "raw": raw}


async def one(call: dict, rest: InferenceRESTClient, rest_url: str, stub) -> dict:
    op = call["op"]
    try:
        if call["door"] == "rest":
            if op == "live":
                return {"value": await rest.is_server_live(rest_url)}
            if op == "ready":
                return {"value": await rest.is_server_ready(rest_url)}
            if op == "model_ready":
                return {"value": await rest.is_model_ready(rest_url, call["model"])}
            response = await rest.infer(rest_url, infer_request(call), model_name=call["model"])
            return answer(response)
        if op == "live":
            return {"value": await stub.is_server_live()}
        if op == "ready":
            return {"value": await stub.is_server_ready()}
        if op == "model_ready":
            return {"value": await stub.is_model_ready(call["model"])}
        return answer(await stub.infer(infer_request(call)))
    except grpc.aio.AioRpcError as exc:
        return {"error": exc.details(), "code": exc.code().name}
    except httpx.HTTPStatusError as exc:
        return {"error": str(exc), "code": exc.response.status_code}


async def main() -> None:
    job = json.load(sys.stdin)
    rest = InferenceRESTClient(RESTConfig(protocol="v2", timeout=30))
    stub = InferenceGRPCClient(job["grpc"], timeout=30, retries=0)
    try:
        results = [await one(call, rest, job["rest"], stub) for call in job["calls"]]
    finally:
        await rest.close()
        await stub.close()
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    asyncio.run(main())
