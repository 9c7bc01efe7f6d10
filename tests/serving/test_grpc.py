"""The Open Inference Protocol over gRPC, against a real `packflow serve
--grpc-port` process: tritonclient's gRPC client (raw contents, what it
always sends) and its generated stubs (typed contents), every answer compared
with the backend called in-process; errors and their codes; batches shared
with REST; metadata, readiness, cancellation, the drain; and stubs that do
not clash with tritonclient's in one process."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton
from hypothesis import given, settings
from hypothesis import strategies as st
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from packflow.extras import DECLARED_EXTRAS
from packflow.loaders import InferenceBackendLoader
from packflow.serving import create_app
from packflow.serving.grpc_v2 import CODES, CONTENTS_FIELD, GrpcDoor, GrpcLimits, code_of
from tests.serving.harness import (
    EXAMPLE,
    REPO,
    ServerProcess,
    batch_count,
    echo_expected,
    firewall_events,
    metric_samples,
)
from tests.serving.test_v2 import (
    FEATURES,
    MODEL,
    NOT_READY_BACKEND,
    SHAPES_BACKEND,
    expected_columns,
    feature_matrix,
)
from tests.serving.test_v2_fast import _line, out_keys
from tests.serving.test_v2_fast import rows as out_rows
from tests.support.sample_projects import write_project

INFER = "/inference.GRPCInferenceService/ModelInfer"


@pytest.fixture(scope="module")
def example_backend():
    return InferenceBackendLoader.from_project(EXAMPLE)


@pytest.fixture(scope="module")
def shapes_project(tmp_path_factory):
    directory = tmp_path_factory.mktemp("shapes") / "shapes"
    return write_project(
        directory, name="shapes", version=None, backend=SHAPES_BACKEND, backend_config=None
    )


@pytest.fixture(scope="module")
def shapes_backend(shapes_project):
    return InferenceBackendLoader.from_project(shapes_project)


@pytest.fixture(scope="module")
def grpc_example():
    with ServerProcess(EXAMPLE, "--max-wait-ms", "20", "--grpc-port", "0") as server:
        yield server


@pytest.fixture(scope="module")
def grpc_shapes(shapes_project):
    with ServerProcess(shapes_project, "--grpc-port", "0") as server:
        yield server


@pytest.fixture(scope="module")
def grpc_echo(echo_project):
    # A long wait, so that concurrent requests surely share batches.
    args = ("--max-wait-ms", "100", "--max-batch-rows", "256", "--grpc-port", "0")
    with ServerProcess(echo_project, *args) as server:
        yield server


def client_of(server) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(url=server.grpc_target)


def tensor(name: str, array: np.ndarray, datatype: str) -> triton.InferInput:
    t = triton.InferInput(name, list(array.shape), datatype)
    t.set_data_from_numpy(array)
    return t


def stub_of(server):
    channel = grpc.insecure_channel(server.grpc_target)
    return channel, service_pb2_grpc.GRPCInferenceServiceStub(channel)


def typed_input(name: str, datatype: str, shape: list[int], field: str, values: list):
    t = service_pb2.ModelInferRequest.InferInputTensor(name=name, datatype=datatype, shape=shape)
    getattr(t.contents, field).extend(values)
    return t


def rpc_error(call, *args, **kwargs) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call(*args, timeout=20, **kwargs)
    return info.value


# -- health and metadata ------------------------------------------------------------


def test_health_and_metadata(grpc_example):
    client = client_of(grpc_example)
    try:
        assert client.is_server_live()
        assert client.is_server_ready()
        assert client.is_model_ready(MODEL)
        assert client.is_model_ready(MODEL, "0.1.0")
        server = client.get_server_metadata(as_json=True)
        assert server["name"] == "packflow" and server["version"]
        meta = client.get_model_metadata(MODEL, as_json=True)
        assert meta == client.get_model_metadata(MODEL, "0.1.0", as_json=True)
        assert meta["name"] == MODEL
        assert meta["versions"] == ["0.1.0"]
        assert meta["platform"] == "packflow"
        assert [i["name"] for i in meta["inputs"]] == FEATURES
        assert {i["datatype"] for i in meta["inputs"]} == {"FP64"}
        assert all(i["shape"] == ["-1"] for i in meta["inputs"])  # int64 as JSON text
        for call in (
            lambda: client.get_model_metadata("nope"),
            lambda: client.get_model_metadata(MODEL, "9.9.9"),
            lambda: client.is_model_ready("nope"),
        ):
            with pytest.raises(InferenceServerException) as info:
                call()
            assert info.value.status() == "StatusCode.NOT_FOUND"
        with pytest.raises(InferenceServerException) as info:
            client.get_model_metadata("nope")
        assert "no model named 'nope'; this server has 'firewall-anomaly'" in info.value.message()
    finally:
        client.close()


def test_a_model_not_ready_is_said_so(tmp_path):
    project = write_project(
        tmp_path / "lazy", name="lazy", backend=NOT_READY_BACKEND, backend_config=None
    )
    with ServerProcess(project, "--grpc-port", "0") as server:
        client = client_of(server)
        try:
            assert client.is_server_live()
            assert not client.is_server_ready()
            assert not client.is_model_ready("lazy")
        finally:
            client.close()


# -- infer: raw contents (tritonclient) -------------------------------------------------


def test_raw_infer_equals_the_backend(grpc_example, example_backend):
    # 120 rows: a request and an answer large enough for the offload thread.
    events = firewall_events(120, seed=3)
    expected = expected_columns(example_backend(events))
    client = client_of(grpc_example)
    try:
        result = client.infer(
            MODEL,
            [tensor("features", feature_matrix(events), "FP64")],
            outputs=[triton.InferRequestedOutput("anomaly_score")],
            request_id="req-7",
        )
        response = result.get_response()
        assert response.model_name == MODEL
        assert response.model_version == "0.1.0"
        assert response.id == "req-7"
        assert [(o.name, o.datatype, list(o.shape)) for o in response.outputs] == [
            ("anomaly_score", "FP64", [120])
        ]
        # Raw inputs: raw outputs.
        assert len(response.raw_output_contents) == 1
        assert result.as_numpy("anomaly_score").tolist() == expected["anomaly_score"]

        every = client.infer(
            MODEL, [tensor("x", feature_matrix(events), "FP64")], model_version="0.1.0"
        )
        assert [o.name for o in every.get_response().outputs] == ["anomaly_score", "alert"]
        assert every.as_numpy("alert").tolist() == expected["alert"]
    finally:
        client.close()


def test_raw_infer_on_records(grpc_shapes, shapes_backend):
    n = 12
    ports = np.array([80 * (i + 1) * (i % 3 + 1) for i in range(n)], dtype=np.int64)
    labels = np.array([f"label é {i}" for i in range(n)], dtype=np.object_)
    flags = np.array([i % 2 == 0 for i in range(n)])
    records = [
        {"src": {"port": int(p)}, "label": str(lbl), "ok": bool(f)}
        for p, lbl, f in zip(ports, labels, flags)
    ]
    expected = expected_columns(shapes_backend(records))
    client = client_of(grpc_shapes)
    try:
        result = client.infer(
            "shapes",
            [
                tensor("src.port", ports, "INT64"),
                tensor("label", labels, "BYTES"),
                tensor("ok", flags, "BOOL"),
            ],
        )
        response = result.get_response()
        assert response.model_version == ""
        assert {o.name: o.datatype for o in response.outputs} == {
            "port": "INT64",
            "half": "FP64",
            "high": "BOOL",
            "label": "BYTES",
            "echo": "BYTES",
        }
        assert result.as_numpy("port").tolist() == expected["port"]
        assert result.as_numpy("half").tolist() == expected["half"]
        assert result.as_numpy("high").tolist() == expected["high"]
        assert [v.decode() for v in result.as_numpy("label")] == expected["label"]
        assert [json.loads(v) for v in result.as_numpy("echo")] == expected["echo"] == records
    finally:
        client.close()


# -- infer: typed contents (the generated stubs) -------------------------------------------


def test_typed_infer_equals_the_backend(grpc_example, example_backend):
    events = firewall_events(60, seed=4)
    expected = expected_columns(example_backend(events))
    matrix = feature_matrix(events)
    inputs = []
    for j, name in enumerate(FEATURES):
        column = matrix[:, j]
        if name in ("src.port", "dst.port"):
            inputs.append(
                typed_input(name, "INT64", [60], "int64_contents", column.astype(int).tolist())
            )
        elif name == "rule.id":
            ints = column.astype(int).tolist()
            inputs.append(typed_input(name, "INT32", [60, 1], "int_contents", ints))
        else:
            inputs.append(typed_input(name, "FP64", [60], "fp64_contents", column.tolist()))
    inputs.reverse()  # matched by name, not by position
    request = service_pb2.ModelInferRequest(model_name=MODEL, id="typed", inputs=inputs)
    channel, stub = stub_of(grpc_example)
    with channel:
        response = stub.ModelInfer(request, timeout=20)
    assert response.id == "typed"
    assert not response.raw_output_contents  # typed inputs: typed outputs
    outputs = {o.name: o for o in response.outputs}
    assert outputs["anomaly_score"].datatype == "FP64"
    assert list(outputs["anomaly_score"].contents.fp64_contents) == expected["anomaly_score"]
    assert outputs["alert"].datatype == "BOOL"
    assert list(outputs["alert"].contents.bool_contents) == expected["alert"]


def test_typed_infer_on_records_bytes_and_fp32(grpc_shapes, shapes_backend):
    records = [{"src": {"port": 100 + i}, "label": f"ü{i}"} for i in range(5)]
    # FP32 values that are exact in binary, so the backend sees the same numbers.
    ports = [float(r["src"]["port"]) for r in records]
    expected = expected_columns(shapes_backend(records))
    request = service_pb2.ModelInferRequest(
        model_name="shapes",
        inputs=[
            typed_input("src.port", "FP32", [5], "fp32_contents", ports),
            typed_input(
                "label", "BYTES", [5], "bytes_contents", [r["label"].encode() for r in records]
            ),
        ],
        outputs=[
            service_pb2.ModelInferRequest.InferRequestedOutputTensor(name="label"),
            service_pb2.ModelInferRequest.InferRequestedOutputTensor(name="half"),
        ],
    )
    channel, stub = stub_of(grpc_shapes)
    with channel:
        response = stub.ModelInfer(request, timeout=20)
    assert [o.name for o in response.outputs] == ["label", "half"]
    label, half = response.outputs
    assert [v.decode() for v in label.contents.bytes_contents] == expected["label"]
    assert list(half.contents.fp64_contents) == [p / 2 for p in ports]


# -- errors ---------------------------------------------------------------------------------


def test_errors_name_the_model_tensor_and_row(grpc_example, grpc_shapes):
    channel, stub = stub_of(grpc_example)
    with channel:
        ok = [typed_input("features", "FP64", [1, 9], "fp64_contents", [1.0] * 9)]

        def infer(**fields):
            fields.setdefault("model_name", MODEL)
            fields.setdefault("inputs", ok)
            return rpc_error(stub.ModelInfer, service_pb2.ModelInferRequest(**fields))

        err = infer(model_name="nope")
        assert err.code() == grpc.StatusCode.NOT_FOUND
        assert err.details() == "no model named 'nope'; this server has 'firewall-anomaly'"
        err = infer(model_version="2")
        assert err.code() == grpc.StatusCode.NOT_FOUND
        assert "has no version '2'" in err.details()
        # Both counted, as REST counts them: the unknown model by the
        # server, the unknown version by its model.
        text = httpx.get(f"{grpc_example.url}/metrics", timeout=10).text
        samples = metric_samples(text, keep_model=True)
        server_404 = requests_total("404")
        model_404 = (server_404[0], server_404[1] | {("model", MODEL)})
        assert (samples[server_404], samples[model_404]) == (1, 1)

        cases = [
            # A wrong shape.
            (
                [typed_input("features", "FP64", [1, 3], "fp64_contents", [1.0] * 3)],
                "tensor 'features' has shape [1, 3]",
            ),
            # Values fewer than the shape holds.
            (
                [typed_input("features", "FP64", [2, 9], "fp64_contents", [1.0] * 9)],
                "tensor 'features' has 9 values; its shape [2, 9] holds 18",
            ),
            # Values in the field of another datatype.
            (
                [typed_input("features", "FP64", [1, 9], "fp32_contents", [1.0] * 9)],
                "tensor 'features' is FP64: its values go in contents.fp64_contents",
            ),
            # A datatype the model's features cannot take.
            (
                [typed_input("features", "BYTES", [1, 9], "bytes_contents", [b"a"] * 9)],
                "tensor 'features' is BYTES",
            ),
            (
                [typed_input("features", "FP17", [1, 9], "fp64_contents", [1.0] * 9)],
                "tensor 'features' has datatype 'FP17'",
            ),
            (
                [typed_input("features", "FP64", [1, 9], "fp64_contents", [1.0] * 8 + [1e309])],
                "tensor 'features': element 8 is inf, not a finite number",
            ),
            ([], "the request has no inputs"),
        ]
        for inputs, message in cases:
            err = infer(inputs=inputs)
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, message
            assert message in err.details()

        err = infer(outputs=[service_pb2.ModelInferRequest.InferRequestedOutputTensor(name="nope")])
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "no output named 'nope'" in err.details()
        # Raw contents: one per input.
        raw_head = service_pb2.ModelInferRequest.InferInputTensor(
            name="features", datatype="FP64", shape=[1, 9]
        )
        err = infer(
            inputs=[raw_head],
            raw_input_contents=[b"\0" * 72, b""],
        )
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "raw_input_contents has 2 entries for 1 inputs" in err.details()
        err = infer(
            inputs=[raw_head],
            raw_input_contents=[b"\0" * 71],
        )
        assert "tensor 'features': 71 bytes of binary data" in err.details()

    # A row that fails: the request fails, naming the row.
    rows = [{"src": {"port": 1}}, {"src": {"port": 2}}, {"src": {"port": 3}, "fail": True}]
    texts = [json.dumps(r).encode() for r in rows]
    channel, stub = stub_of(grpc_shapes)
    with channel:
        request = service_pb2.ModelInferRequest(
            model_name="shapes",
            inputs=[typed_input("records", "BYTES", [3], "bytes_contents", texts)],
        )
        err = rpc_error(stub.ModelInfer, request, metadata=[("x-request-id", "grpc-row-2")])
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith("row 2 failed in execute (ValueError)")
    assert "request grpc-row-2" in err.details()


def test_a_message_over_the_body_limit_is_refused(echo_project):
    with ServerProcess(echo_project, "--max-body-mb", "0.01", "--grpc-port", "0") as server:
        channel, stub = stub_of(server)
        with channel:
            text = json.dumps({"id": 1, "x": "y" * 20_000}).encode()
            request = service_pb2.ModelInferRequest(
                model_name="echo",
                inputs=[typed_input("records", "BYTES", [1], "bytes_contents", [text])],
            )
            err = rpc_error(stub.ModelInfer, request)
            assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            small = service_pb2.ModelInferRequest(
                model_name="echo",
                inputs=[
                    typed_input("id", "INT64", [1], "int64_contents", [1]),
                    typed_input("x", "INT64", [1], "int64_contents", [4]),
                ],
            )
            response = stub.ModelInfer(small, timeout=20)
            assert list(response.outputs[1].contents.int64_contents) == [8]


def test_the_code_of_every_status():
    assert code_of(400) == grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(404) == grpc.StatusCode.NOT_FOUND
    assert code_of(413) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert code_of(422) == grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(503) == grpc.StatusCode.UNAVAILABLE
    assert code_of(504) == grpc.StatusCode.DEADLINE_EXCEEDED
    assert code_of(500) == grpc.StatusCode.INTERNAL
    assert code_of(418) == grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(502) == grpc.StatusCode.INTERNAL
    assert set(CODES) >= {400, 404, 413, 422, 500, 503, 504}


# -- batching, cancellation, drain --------------------------------------------------------


def requests_total(code: str) -> tuple:
    """The key of the infer RPCs answered with ``code`` in :func:`metric_samples`."""
    return ("packflow_requests_total", frozenset({("endpoint", INFER), ("code", code)}))


def echo_request(rows: list[dict]):
    n = len(rows)
    return service_pb2.ModelInferRequest(
        model_name="echo",
        inputs=[
            typed_input("id", "INT64", [n], "int64_contents", [r["id"] for r in rows]),
            typed_input("x", "INT64", [n], "int64_contents", [r["x"] for r in rows]),
        ],
    )


def echo_rows(response) -> list[dict]:
    outputs = {o.name: list(o.contents.int64_contents) for o in response.outputs}
    return [{"id": i, "double": d} for i, d in zip(outputs["id"], outputs["double"])]


def test_grpc_and_rest_requests_share_batches(grpc_echo):
    requests = [[{"id": 10 * i + j, "x": i + j} for j in range(3)] for i in range(24)]
    answers: list = [None] * len(requests)
    channel, stub = stub_of(grpc_echo)
    with channel, httpx.Client(timeout=30) as http:
        before = batch_count(http, grpc_echo.url)

        def send(i: int) -> None:
            if i % 3 == 0:  # a third of them over REST, to the same batcher
                answers[i] = http.post(f"{grpc_echo.url}/invocations", json=requests[i]).json()
            else:
                answers[i] = echo_rows(stub.ModelInfer(echo_request(requests[i]), timeout=30))

        threads = [threading.Thread(target=send, args=(i,)) for i in range(len(requests))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        batches = batch_count(http, grpc_echo.url) - before
        samples = metric_samples(http.get(f"{grpc_echo.url}/metrics").text)
    for rows, answer in zip(requests, answers):
        assert answer == echo_expected(rows)
    # 24 requests in far fewer batches (100 ms of wait for company).
    assert 1 <= batches <= 8, batches
    assert (
        samples[("packflow_requests_total", frozenset({("endpoint", INFER), ("code", "200")}))]
        >= 16
    )


def test_a_cancelled_rpc_drops_its_rows(echo_project):
    args = ("--config", "delay_s=1.5", "--max-wait-ms", "1", "--grpc-port", "0")
    with ServerProcess(echo_project, *args) as server:
        channel, stub = stub_of(server)
        with channel, httpx.Client(timeout=30) as http:
            # The first request holds the model for 1.5 s; the second waits in
            # the queue, and its client gives up after 0.3 s.
            first = stub.ModelInfer.future(echo_request([{"id": 1, "x": 1}]), timeout=20)
            time.sleep(0.3)
            with pytest.raises(grpc.RpcError) as info:
                stub.ModelInfer(echo_request([{"id": 2, "x": 2}] * 5), timeout=0.3)
            err = info.value
            assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert echo_rows(first.result(20)) == [{"id": 1, "double": 2}]
            time.sleep(0.3)
            samples = metric_samples(http.get(f"{server.url}/metrics").text)
    # Only the first request's row ran: the 5 rows of the cancelled one left
    # the queue unrun.
    assert samples[("packflow_batch_rows_sum", frozenset())] == 1
    assert samples[("packflow_requests_in_flight", frozenset())] == 0
    assert samples[("packflow_queue_rows", frozenset())] == 0
    assert (
        samples[("packflow_requests_total", frozenset({("endpoint", INFER), ("code", "499")}))] == 1
    )


def test_sigterm_answers_rpcs_in_flight(echo_project):
    args = ("--config", "delay_s=0.5", "--max-batch-rows", "2", "--max-wait-ms", "1")
    server = ServerProcess(echo_project, *args, "--grpc-port", "0")
    try:
        channel, stub = stub_of(server)
        with channel:
            requests = [[{"id": i, "x": i}] for i in range(4)]
            futures = [stub.ModelInfer.future(echo_request(rows), timeout=30) for rows in requests]
            time.sleep(0.3)
            server.signal(signal.SIGTERM)
            for rows, future in zip(requests, futures):
                assert echo_rows(future.result(30)) == echo_expected(rows)
        assert server.wait(20) == 0
        assert "Drained and stopped on SIGTERM" in server.stderr()
    finally:
        server.kill()


def test_a_second_signal_stops_at_once_with_an_rpc_in_flight(echo_project):
    args = ("--config", "delay_s=20", "--max-wait-ms", "1", "--grpc-port", "0")
    server = ServerProcess(echo_project, *args)
    try:
        channel, stub = stub_of(server)
        with channel:
            future = stub.ModelInfer.future(echo_request([{"id": 1, "x": 1}]), timeout=30)
            time.sleep(0.5)  # the batch is running (for 20 s)
            server.signal(signal.SIGTERM)
            time.sleep(0.5)
            assert server.proc.poll() is None  # draining: waits for the batch
            started = time.monotonic()
            server.signal(signal.SIGTERM)
            assert server.wait(10) == 1
            assert time.monotonic() - started < 5
            with pytest.raises(grpc.RpcError) as info:
                future.result(10)
            assert info.value.code() in (grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE)
        assert "Stopped at once on a second signal" in server.stderr()
    finally:
        server.kill()


def test_the_request_timeout_is_deadline_exceeded(echo_project):
    args = ("--config", "delay_s=2", "--request-timeout-s", "0.5", "--grpc-port", "0")
    with ServerProcess(echo_project, *args) as server:
        channel, stub = stub_of(server)
        with channel:
            err = rpc_error(stub.ModelInfer, echo_request([{"id": 1, "x": 1}]))
    assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert err.details() == "no answer within the 0.5 s timeout"


# -- the stubs beside tritonclient's in one process ---------------------------------------


@pytest.mark.parametrize(
    "prelude",
    [
        "import tritonclient.grpc",
        "import packflow.serving.grpc_v2\nimport tritonclient.grpc",
    ],
    ids=["tritonclient-first", "packflow-first"],
)
def test_the_stubs_load_beside_tritonclients(echo_project, prelude):
    # Both define inference.ModelInferRequest and the rest: ours live in a
    # private descriptor pool, so either may be imported first.
    with ServerProcess(echo_project, "--grpc-port", "0", prelude=prelude) as server:
        channel, stub = stub_of(server)
        with channel:
            response = stub.ModelInfer(echo_request([{"id": 5, "x": 21}]), timeout=20)
        assert echo_rows(response) == [{"id": 5, "double": 42}]


@pytest.mark.parametrize(
    "prelude, module, reason",
    [
        # grpc made unimportable in the server's process.
        ("import sys\nsys.modules['grpc'] = None", "grpc", "import of grpc halted"),
        # A protobuf older than the stubs' code: their import-time check fails.
        (
            "from google.protobuf import runtime_version as rv\n"
            "def refuse(*args):\n"
            "    raise rv.VersionError('Detected incompatible Protobuf Gencode/Runtime versions')\n"
            "rv.ValidateProtobufRuntimeVersion = refuse",
            "packflow.serving.grpc_v2",
            "Detected incompatible Protobuf Gencode/Runtime versions",
        ),
    ],
    ids=["no-grpcio", "old-protobuf"],
)
def test_without_the_grpc_extra_the_error_says_how_to_install(
    echo_project, prelude, module, reason
):
    code = f"{prelude}\nfrom packflow.cli import cli\ncli()"
    done = subprocess.run(
        [sys.executable, "-c", code, "serve", str(echo_project), "--port", "0", "--grpc-port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert f"serving with grpc needs the grpc extra, and {module} does not import" in done.stderr
    assert reason in done.stderr
    assert "pip install" in done.stderr and "grpcio>=" in done.stderr
    assert "Traceback" not in done.stderr
    assert "Listening" not in done.stdout


# -- the servicer in-process: several models, the cap on RPCs ----------------------------


def run_with_door(apps: dict, limits, body) -> None:
    """Start a :class:`GrpcDoor` over ``apps`` on a fresh loop, run
    ``await body(stub)`` against it, then stop it and close the apps."""

    async def main() -> None:
        door = GrpcDoor(apps, "127.0.0.1", 0, limits)
        host, port = await door.start()
        try:
            async with grpc.aio.insecure_channel(f"{host}:{port}") as channel:
                await asyncio.wait_for(body(service_pb2_grpc.GRPCInferenceServiceStub(channel)), 60)
        finally:
            await door.stop()
            for app in apps.values():
                await app.close()

    asyncio.run(main())


def test_one_servicer_serves_several_models(echo_project, shapes_project):
    apps = {
        "echo": create_app(InferenceBackendLoader.from_project(echo_project), name="echo"),
        "shapes": create_app(InferenceBackendLoader.from_project(shapes_project), name="shapes"),
    }

    async def body(stub) -> None:
        assert (await stub.ServerReady(service_pb2.ServerReadyRequest())).ready
        for name in apps:
            assert (await stub.ModelReady(service_pb2.ModelReadyRequest(name=name))).ready
            meta = await stub.ModelMetadata(service_pb2.ModelMetadataRequest(name=name))
            assert meta.name == name
        answer = await stub.ModelInfer(echo_request([{"id": 1, "x": 4}]))
        assert echo_rows(answer) == [{"id": 1, "double": 8}]
        shapes = service_pb2.ModelInferRequest(
            model_name="shapes",
            inputs=[typed_input("src.port", "INT64", [2], "int64_contents", [8, 9])],
            outputs=[service_pb2.ModelInferRequest.InferRequestedOutputTensor(name="half")],
        )
        answer = await stub.ModelInfer(shapes)
        assert list(answer.outputs[0].contents.fp64_contents) == [4.0, 4.5]
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.ModelInfer(service_pb2.ModelInferRequest(model_name="nope"))
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        assert info.value.details() == "no model named 'nope'; this server has 'echo', 'shapes'"
        # Ready only when every model is.
        apps["shapes"].drain()
        assert not (await stub.ServerReady(service_pb2.ServerReadyRequest())).ready
        assert (await stub.ModelReady(service_pb2.ModelReadyRequest(name="echo"))).ready

    run_with_door(apps, None, body)


def test_rpcs_past_the_cap_are_refused(echo_project):
    backend = InferenceBackendLoader.from_project(echo_project, delay_s=0.5)
    apps = {"echo": create_app(backend, name="echo", max_wait_ms=1)}

    async def body(stub) -> None:
        calls = [stub.ModelInfer(echo_request([{"id": i, "x": i}])) for i in range(5)]
        results = await asyncio.gather(*calls, return_exceptions=True)
        refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
        answered = [r for r in results if not isinstance(r, BaseException)]
        assert len(answered) == 2, results
        assert len(refused) == 3
        assert {r.code() for r in refused} == {grpc.StatusCode.RESOURCE_EXHAUSTED}

    run_with_door(apps, GrpcLimits(1 << 20, max_concurrent_rpcs=2), body)


def test_a_grpc_port_in_use_stops_the_command_before_it_listens(echo_project):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "packflow.cli", "serve", str(echo_project), "--port", "0",
             "--grpc-port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )  # fmt: skip
    assert done.returncode == 1
    assert f"could not listen for gRPC on 127.0.0.1:{port}" in done.stderr
    assert "Listening" not in done.stdout


def test_the_grpc_extra_asks_for_what_the_stubs_need():
    # The generated code checks the runtimes at import: protobuf at least the
    # version its protoc wrote for, grpcio at least grpcio-tools' own.
    stubs = REPO / "python" / "packflow" / "serving" / "proto"
    messages = (stubs / "grpc_predict_v2_pb2.py").read_text()
    gencode = re.search(r"Domain\.PUBLIC,\s*(\d+),\s*(\d+),\s*(\d+),", messages).groups()
    service = (stubs / "grpc_predict_v2_pb2_grpc.py").read_text()
    generated = re.search(r"GRPC_GENERATED_VERSION = '([\d.]+)'", service).group(1)
    assert DECLARED_EXTRAS["grpc"] == (
        f"grpcio>={generated}",
        f"protobuf>={'.'.join(gencode)},<{int(gencode[0]) + 1}",
    )
    makefile = (REPO / "Makefile").read_text()
    assert f"GRPC_TOOLS := grpcio-tools=={generated}" in makefile
    # Made with the private pool (make proto's edit).
    assert "_descriptor_pool.DescriptorPool().AddSerializedFile(" in messages
    assert "_descriptor_pool.Default()" not in messages


# -- output tensors written in Rust -----------------------------------------------------


@settings(max_examples=600, deadline=None)
@given(
    out_rows,
    st.integers(0, 2),
    st.one_of(st.none(), st.lists(out_keys, max_size=3)),
)
def test_output_columns_are_the_python_paths(rows: list, style: int, names) -> None:
    """The outputs of a gRPC answer, written in Rust, are the Python path's:
    names, datatypes, shapes and the same bytes (raw contents), and the same
    values as typed contents; or the same error."""
    from packflow.serving.grpc_v2 import _values_of, output_columns
    from packflow.serving.v2 import V2Api, V2Error, raw_output

    lines = [_line(row, style) for row in rows]
    v2 = V2Api(SimpleNamespace(config=None), "m", "1")
    try:
        tensors = v2.output_tensors(lines, names)
    except (V2Error, ValueError, TypeError) as exc:
        with pytest.raises(type(exc)) as info:
            output_columns(v2, lines, names)
        assert str(info.value) == str(exc)
        return
    want = [
        (t["name"], t["datatype"], t["shape"], raw_output(t["data"], t["datatype"]))
        for t in tensors
    ]
    got = output_columns(v2, lines, names)
    assert got == want
    for (_, datatype, _, chunk), tensor in zip(got, tensors):
        values = tensor["data"]
        if datatype == "BYTES":
            values = [v.encode("utf-8") for v in values]
        assert _values_of(chunk, datatype) == values


# -- input tensors read in Rust ------------------------------------------------------------


@st.composite
def grpc_requests(draw) -> tuple[str, object]:
    """A ModelInferRequest from a REST body of test_v2_fast's (its tensors as
    typed contents, or as raw contents), now and then with values in another
    field or raw contents one short."""
    from tests.serving.test_v2_fast import RAW_TYPES, _flat_values, _raw_of, bodies

    api_name, body = draw(bodies())
    try:
        doc = json.loads(body)
        inputs = doc["inputs"]
        assert isinstance(inputs, list)
    except (ValueError, KeyError, TypeError, AssertionError):
        inputs = []
    request = service_pb2.ModelInferRequest(model_name="m")
    use_raw = draw(st.booleans())
    for tensor in inputs:
        try:
            name, datatype, shape = tensor["name"], tensor["datatype"], tensor["shape"]
            if any(type(d) is bool for d in shape):
                continue  # protobuf takes a bool as an int, with a warning
            item = request.inputs.add(name=name, datatype=datatype, shape=shape)
        except (TypeError, ValueError, KeyError):
            continue
        values = _flat_values(tensor.get("data")) or []
        if use_raw:
            chunk = _raw_of(datatype, values) if datatype in RAW_TYPES else None
            request.raw_input_contents.append(chunk if chunk is not None else b"\x00")
            continue
        field = CONTENTS_FIELD.get(datatype, "fp64_contents")
        if draw(st.integers(0, 15)) == 0:
            field = draw(st.sampled_from(sorted(set(CONTENTS_FIELD.values()))))
        if field not in ("bool_contents", "bytes_contents") and any(
            type(v) is bool for v in values
        ):
            continue  # protobuf takes a bool as an int, with a warning
        try:
            if field == "bytes_contents":
                values = [str(v).encode("utf-8", "surrogatepass") for v in values]
            getattr(item.contents, field).extend(values)
        except (TypeError, ValueError, OverflowError):
            pass
    if use_raw and request.raw_input_contents and draw(st.integers(0, 9)) == 0:
        del request.raw_input_contents[-1]
    return api_name, request


@settings(max_examples=1000, deadline=None)
@given(grpc_requests())
def test_rows_read_in_rust_are_the_python_paths(case) -> None:
    """A gRPC request's rows read in Rust are the Python path's (the same
    lines, or the same feature cells) or left to it; never a request Python
    refuses."""
    from packflow import _core
    from packflow.serving.grpc_v2 import _input_tensors, rows_in_rust
    from packflow.serving.v2 import V2Error
    from tests.serving.test_v2_fast import APIS

    api_name, request = case
    api = APIS[api_name]
    fast = rows_in_rust(request, api)
    if fast is None:
        return
    try:
        tensors, _, n = _input_tensors(request, api)
        want = api.lines_of(tensors, n)
    except (V2Error, ValueError) as exc:
        raise AssertionError(f"Rust read a request Python refuses: {exc}") from None
    data, rows = fast
    assert rows == want[1]
    if isinstance(want[0], _core.FeatureRows):
        assert isinstance(data, _core.FeatureRows)
        assert [[(type(v), repr(v)) for v in r] for r in data.to_rows()] == [
            [(type(v), repr(v)) for v in r] for r in want[0].to_rows()
        ]
    else:
        assert data == want[0]


def test_common_requests_are_read_in_rust() -> None:
    from packflow.serving.grpc_v2 import rows_in_rust
    from tests.serving.test_v2_fast import APIS

    api = APIS["firewall"]
    typed = service_pb2.ModelInferRequest(model_name="m")
    typed.inputs.add(name="input", datatype="FP64", shape=[2, 9]).contents.fp64_contents.extend(
        [float(i) for i in range(18)]
    )
    assert rows_in_rust(typed, api) is not None
    raw = service_pb2.ModelInferRequest(model_name="m")
    raw.inputs.add(name="input", datatype="FP32", shape=[2, 9])
    raw.raw_input_contents.append(np.arange(18, dtype="<f4").tobytes())
    got = rows_in_rust(raw, api)
    assert got is not None and got[1] == 2
