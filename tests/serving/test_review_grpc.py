"""Review of the gRPC door and the Rust V2 JSON reader: each test reproduces
one finding and fails on the code it was written against (see the review
report for the figures and the suggested fixes)."""

from __future__ import annotations

import json
import threading
import time

import grpc
import httpx
import pytest
from tritonclient.grpc import service_pb2, service_pb2_grpc

from packflow import _core
from packflow.loaders import InferenceBackendLoader
from packflow.serving import create_app, grpc_v2
from packflow.serving.v2 import InferRequest, V2Error, raw_values
from tests.serving.harness import ServerProcess, rss_kb
from tests.serving.test_grpc import echo_request, run_with_door, typed_input
from tests.serving.test_v2_fast import APIS
from tests.support.sample_projects import write_project

#: A records backend that answers each row as it came (its output keys are
#: the request's fields).
IDENTITY_BACKEND = """
from packflow import InferenceBackend


class Backend(InferenceBackend):
    def execute(self, inputs):
        return [dict(r) for r in inputs]
"""

Output = service_pb2.ModelInferRequest.InferRequestedOutputTensor


@pytest.fixture(scope="module")
def grpc_echo_server(echo_project):
    with ServerProcess(echo_project, "--grpc-port", "0") as server:
        yield server


@pytest.fixture(scope="module")
def identity_project(tmp_path_factory):
    directory = tmp_path_factory.mktemp("identity") / "identity"
    return write_project(
        directory, name="identity", version=None, backend=IDENTITY_BACKEND, backend_config=None
    )


# -- 1. an output asked for twice ---------------------------------------------------------


def test_grpc_an_output_asked_twice_is_refused_as_rest_refuses_it(grpc_echo_server):
    """REST answers 400 "output 'double' is asked for twice"; gRPC answered
    the tensor twice, and an RPC of 5 MB naming one output 1,000,000 times
    holds the event loop (every REST and gRPC client) for ~5 s and ~700 MB."""
    server = grpc_echo_server
    rest = httpx.post(
        f"{server.url}/v2/models/echo/infer",
        json={
            "inputs": [
                {"name": "id", "datatype": "INT64", "shape": [1], "data": [1]},
                {"name": "x", "datatype": "INT64", "shape": [1], "data": [2]},
            ],
            "outputs": [{"name": "double"}, {"name": "double"}],
        },
        timeout=20,
    )
    assert rest.status_code == 400, rest.text
    request = echo_request([{"id": 1, "x": 2}])
    request.outputs.extend([Output(name="double"), Output(name="double")])
    with grpc.insecure_channel(server.grpc_target) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        try:
            answer = stub.ModelInfer(request, timeout=20)
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert err.details() == rest.json()["error"]
        else:
            names = [o.name for o in answer.outputs]
            pytest.fail(f"answered with outputs {names}, not INVALID_ARGUMENT")


# -- 2. values read before the shapes are checked ----------------------------------------


def test_grpc_shapes_are_checked_before_any_value_is_read(echo_project, monkeypatch):
    """REST refuses a tensor whose shape cannot fit the model before reading
    its values; gRPC read every value first (a 15 MB message of shape
    [10000, 1500]: ~160 MB and ~0.85 s before the shape's 400)."""
    read = []
    typed_values = grpc_v2._typed_values

    def spy(contents, datatype, where):
        read.append(where)
        return typed_values(contents, datatype, where)

    monkeypatch.setattr(grpc_v2, "_typed_values", spy)
    apps = {"echo": create_app(InferenceBackendLoader.from_project(echo_project), name="echo")}
    seen = {}

    async def body(stub) -> None:
        request = service_pb2.ModelInferRequest(
            model_name="echo",
            inputs=[typed_input("x", "BOOL", [3, 2], "bool_contents", [True] * 6)],
        )
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.ModelInfer(request)
        seen["code"], seen["details"] = info.value.code(), info.value.details()

    run_with_door(apps, None, body)
    assert seen["code"] == grpc.StatusCode.INVALID_ARGUMENT
    assert "a column's shape is [N] or [N, 1]" in seen["details"]
    assert read == [], f"values read before the shape was refused: {read}"


# -- 3. the Rust reader keeps the text of a decimal that underflows ----------------------


#: A decimal too small for a double: json.loads reads 0.0.
TINY = "0." + "0" * 400 + "1"


def _cpu_s(fn, runs: int = 3) -> float:
    """The least CPU time ``fn()`` takes in this process over ``runs`` runs:
    what these complexity guards compare (wall time on a shared machine
    counts other processes' turns too)."""
    best = float("inf")
    for _ in range(runs):
        started = time.process_time()
        fn()
        best = min(best, time.process_time() - started)
    return best


def _body(name: str, datatype: str, data: str) -> bytes:
    head = json.dumps({"name": name, "datatype": datatype, "shape": [1]})
    return ('{"inputs":[' + head[:-1] + ',"data":[' + data + "]}]}").encode()


@pytest.mark.parametrize("datatype", ["FP64", "FP32", "FP16"])
def test_rust_reader_writes_an_underflowing_decimal_as_python_does(datatype):
    """A decimal too small for a double (0.000...01, 400 zeros) is 0.0 to
    json.loads and `0.0` in the Python path's row; Rust kept its text."""
    api = APIS["records"]
    body = _body("x", datatype, TINY)
    python = api.parse_infer_python(body)
    assert python.data == b'{"x":0.0}\n'
    fast = _core.v2_read_request(api.plan, body)
    assert fast is None or InferRequest(*fast) == python


def test_rust_reader_writes_an_underflowing_decimal_in_a_record_as_python_does():
    api = APIS["records"]
    body = _body("records", "BYTES", json.dumps('{"a":-' + TINY + "}"))
    python = api.parse_infer_python(body)
    assert python.data == b'{"a":-0.0}\n'
    fast = _core.v2_read_request(api.plan, body)
    assert fast is None or InferRequest(*fast) == python


# -- 4. a small request whose answer is large ----------------------------------------------


def test_a_small_request_cannot_make_the_server_build_a_huge_answer(identity_project):
    """2,000 records of one distinct key each (25 KB over gRPC) make an
    answer of 2,000 tensors x 2,000 values (4,000,000: just under the cap),
    24 MB of "null", ~370 MB of server memory and ~1.5 s of its event loop.
    REST's V2 route does the same from 33 KB."""
    n = 2000
    records = [json.dumps({f"k{i}": 1}).encode() for i in range(n)]
    with ServerProcess(identity_project, "--grpc-port", "0", "--max-batch-rows", "4096") as server:
        before = rss_kb(server.proc.pid)
        peak = [before]
        done = threading.Event()

        def watch() -> None:
            while not done.is_set():
                peak.append(rss_kb(server.proc.pid))
                time.sleep(0.02)

        watcher = threading.Thread(target=watch)
        watcher.start()
        request = service_pb2.ModelInferRequest(
            model_name="identity",
            inputs=[typed_input("records", "BYTES", [n], "bytes_contents", records)],
        )
        assert request.ByteSize() < 30_000
        options = [("grpc.max_receive_message_length", 1 << 30)]
        try:
            with grpc.insecure_channel(server.grpc_target, options=options) as channel:
                stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
                try:
                    answer = stub.ModelInfer(request, timeout=60)
                    size = answer.ByteSize()
                except grpc.RpcError as err:
                    # A refusal (RESOURCE_EXHAUSTED / INVALID_ARGUMENT) is a fix.
                    size = 0
                    assert err.code() != grpc.StatusCode.INTERNAL
        finally:
            done.set()
            watcher.join()
        grown_mb = (max(peak) - before) / 1024
    assert size < 2_000_000, f"a 25 KB request got a {size:,} byte answer"
    assert grown_mb < 150, f"the server grew by {grown_mb:.0f} MB for a 25 KB request"


# -- 5. error texts as long as a client's names ----------------------------------------------


def test_grpc_errors_stay_readable_whatever_the_names_sent(identity_project):
    """Error texts repeat the client's tensor, model and output names in
    full (and list every output key of the rows): past grpc's 16 KiB limit
    on a status message the client gets RESOURCE_EXHAUSTED "Stream removed
    (received metadata size exceeds hard limit)" instead of the code and
    the text the error has."""
    long = "n" * 20_000
    with ServerProcess(identity_project, "--grpc-port", "0") as server:
        with grpc.insecure_channel(server.grpc_target) as channel:
            stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
            bad_datatype = service_pb2.ModelInferRequest(
                model_name="identity",
                inputs=[service_pb2.ModelInferRequest.InferInputTensor(name=long, datatype="NOPE")],
            )
            many_keys = json.dumps({f"key{i:05d}": i for i in range(2000)}).encode()
            unknown_output = service_pb2.ModelInferRequest(
                model_name="identity",
                inputs=[typed_input("records", "BYTES", [1], "bytes_contents", [many_keys])],
                outputs=[Output(name="nope")],
            )
            seen = []
            for request in (bad_datatype, unknown_output):
                with pytest.raises(grpc.RpcError) as info:
                    stub.ModelInfer(request, timeout=20)
                seen.append((info.value.code(), (info.value.details() or "")[:80]))
    assert [code for code, _ in seen] == [grpc.StatusCode.INVALID_ARGUMENT] * 2, seen


# -- 6. raw BYTES read past the shape ------------------------------------------------------


def test_raw_bytes_elements_past_the_shape_are_refused_without_reading_them():
    """`raw_values` reads every 4-byte-length element of a BYTES chunk, in a
    Python loop, before anything compares their number with the shape: 16 MB
    of zeros for shape [1] is 4,000,000 empty strings, ~2.5 s of the event
    loop (gRPC's raw_input_contents and REST's binary data extension alike),
    then a 400. The count is known up front: past it is an error at once."""
    chunk = memoryview(bytes(16_000_000))

    def refused() -> None:
        with pytest.raises(V2Error):
            raw_values(chunk, "BYTES", 1, "tensor 'b'")

    assert _cpu_s(refused) < 0.25


# -- 7. deep field paths: a quadratic check on the event loop ------------------------------


def test_deep_column_paths_cost_about_what_flat_ones_cost():
    """`_check_paths` looks up every prefix of every column's path (a tuple
    slice and its hash per prefix: quadratic in the path's up to 255 parts),
    and `check_shapes` runs it twice per request. Measured on a server: one
    15.5 MB request of 27,000 columns named a.a.(254 parts).xN held the
    event loop 11.6 s over REST (7 s over gRPC, 29,000 columns); a health
    check waited as long. Here: 3,000 such columns, against the same body
    with the dots replaced (one-part names)."""
    api = APIS["records"]

    def body(sep: str) -> bytes:
        inputs = [
            {"name": ("a" + sep) * 254 + f"x{i}", "datatype": "INT64", "shape": [1], "data": [1]}
            for i in range(3000)
        ]
        return json.dumps({"inputs": inputs}).encode()

    timings = {}
    for sep in (".", "_"):
        data = body(sep)
        timings[sep] = _cpu_s(lambda data=data: api.parse_infer_python(data))
    assert timings["."] < 10 * timings["_"] + 0.1, timings


# -- 8. the Rust reader is quadratic in the number of tensors -------------------------------


def test_rust_reader_is_not_slower_than_python_on_many_tensors():
    """`read_request` looks for a repeated tensor name by comparing each
    name with every one before it, and `Template::new` looks a column's key
    up in a list: both quadratic in the tensors. A 3.6 MB body of 60,000
    one-value columns takes ~6 s in Rust (on the event loop: the call is
    synchronous, GIL released or not), ~0.8 s in the Python path it
    stands in for."""
    api = APIS["records"]
    inputs = [
        {"name": f"ax{i}", "datatype": "INT64", "shape": [1], "data": [1]} for i in range(60_000)
    ]
    body = json.dumps({"inputs": inputs}, separators=(",", ":")).encode()
    python = api.parse_infer_python(body)
    fast = _core.v2_read_request(api.plan, body)
    assert fast is None or InferRequest(*fast) == python
    python_s = _cpu_s(lambda: api.parse_infer_python(body))
    rust_s = _cpu_s(lambda: _core.v2_read_request(api.plan, body))
    assert rust_s < 2 * python_s + 0.1, {"rust_s": rust_s, "python_s": python_s}


# -- 9. the Rust value tree is quadratic in an object's keys --------------------------------


def _many_keys(n: int) -> str:
    return "{" + ",".join(f'"k{i}":0' for i in range(n)) + "}"


@pytest.mark.parametrize("where", ["top level", "record", "answer"])
def test_rust_json_is_not_quadratic_in_an_objects_keys(where):
    """`parse_value` checks each key of an object against every key before
    it (to leave duplicates to Python): quadratic in the keys. Measured on a
    server: a 1.2 MB V2 body with 120,000 extra top-level keys held the
    event loop ~11-18 s (a health check waited as long); 4 MiB, the most
    Rust reads, is ~2 minutes. The same scan reads a record of the
    `records` tensor and each output line the writer answers from. Here
    40,000 keys (0.5 MB): ~1.2 s in Rust, ~0.01 s in the Python path."""
    api = APIS["records"]
    x = {"name": "x", "datatype": "INT64", "shape": [1], "data": [1]}
    if where == "top level":
        body = (json.dumps({"inputs": [x]})[:-1] + "," + _many_keys(40_000)[1:]).encode()
        rec = {"name": "records", "datatype": "BYTES", "shape": [1], "data": [_many_keys(4)]}
    else:
        body = b""
        rec = {"name": "records", "datatype": "BYTES", "shape": [1], "data": [_many_keys(40_000)]}
    if where == "record":
        body = json.dumps({"inputs": [rec]}).encode()
    if where == "answer":
        lines = [_many_keys(40_000).encode()]
        request = InferRequest(b"", 1, None, ["k0"], {}, False)
        python = api.render_python(lines, request)
        fast = _core.v2_write_answer(lines, ["k0"], api.name, api.version, None)
        python_s = _cpu_s(lambda: api.render_python(lines, request))
        rust_s = _cpu_s(lambda: _core.v2_write_answer(lines, ["k0"], api.name, api.version, None))
    else:
        python = api.parse_infer_python(body)
        fast = _core.v2_read_request(api.plan, body)
        fast = None if fast is None else InferRequest(*fast)
        python_s = _cpu_s(lambda: api.parse_infer_python(body))
        rust_s = _cpu_s(lambda: _core.v2_read_request(api.plan, body))
    assert fast is None or fast == python
    assert rust_s < 2 * python_s + 0.1, {"rust_s": rust_s, "python_s": python_s}


# -- 10. the Rust answer writer looks each output up in each row ----------------------------


def test_rust_answer_writer_is_not_slower_than_python_on_wide_rows():
    """`write_answer` fills each output's column with `row.get(name)`, a scan
    of the row's keys: outputs x rows x keys. 10,000 rows of 256 outputs (a
    classifier's scores, say; 2.56M values, under the 4M cap): ~4 s in
    Rust against ~0.8 s in `render_python`, on the event loop."""
    api = APIS["records"]
    line = json.dumps({f"key_{i:03d}": i for i in range(256)}, separators=(",", ":")).encode()
    lines = [line] * 10_000
    request = InferRequest(b"", len(lines), None, None, {}, False)
    python = api.render_python(lines, request)
    fast = _core.v2_write_answer(lines, None, api.name, api.version, None)
    assert fast is None or fast == python
    python_s = _cpu_s(lambda: api.render_python(lines, request), runs=2)
    rust_s = _cpu_s(lambda: _core.v2_write_answer(lines, None, api.name, api.version, None), runs=2)
    assert rust_s < 2 * python_s + 0.1, {"rust_s": rust_s, "python_s": python_s}
