"""The Open Inference Protocol (KServe V2) over REST, against a real `packflow
serve` process: health, metadata and infer through tritonclient's HTTP client
(JSON tensors, binary_data=False, and the binary tensor data extension,
tritonclient's default), every answer compared with the backend called
in-process; the error cases over raw HTTP."""

from __future__ import annotations

import asyncio
import json
import struct
import threading
import time

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from packflow import InferenceBackend, _core
from packflow.loaders import InferenceBackendLoader
from packflow.serving import create_app
from tests.serving.harness import (
    EXAMPLE,
    ServerProcess,
    batch_count,
    echo_expected,
    firewall_events,
    metric_samples,
)
from tests.support.sample_projects import write_project

MODEL = "firewall-anomaly"
FEATURES = [
    "ts",
    "src.port",
    "src.geo.lat",
    "src.geo.lon",
    "dst.port",
    "bytes_in",
    "bytes.out",
    "rule.id",
    "score",
]
# Where each feature is read from in an event (bytes_in is a renamed field).
SOURCES = [f if f != "bytes_in" else "bytes.in" for f in FEATURES]

# A records backend: a value of each output datatype from nested fields.
SHAPES_BACKEND = """
from packflow import InferenceBackend


class Backend(InferenceBackend):
    def execute(self, inputs):
        out = []
        for r in inputs:
            if r.get("fail"):
                raise ValueError("refused")
            port = r["src"]["port"]
            out.append(
                {
                    "port": port,
                    "half": port / 2,
                    "high": port > 1000,
                    "label": str(r.get("label")),
                    "echo": r,
                }
            )
        return out
"""

NOT_READY_BACKEND = """
from packflow import InferenceBackend


class Backend(InferenceBackend):
    def ready(self):
        return False

    def execute(self, inputs):
        return inputs
"""


def source_value(event: dict, path: str):
    value = event
    for part in path.split("."):
        value = value[part]
    return value


def feature_matrix(events: list[dict]) -> np.ndarray:
    return np.array([[source_value(e, p) for p in SOURCES] for e in events], dtype=np.float64)


@pytest.fixture(scope="module")
def example_backend():
    return InferenceBackendLoader.from_project(EXAMPLE)


@pytest.fixture(scope="module")
def shapes_project(tmp_path_factory):
    # No version in its packflow.yaml: the model has none on V2.
    directory = tmp_path_factory.mktemp("shapes") / "shapes"
    return write_project(
        directory, name="shapes", version=None, backend=SHAPES_BACKEND, backend_config=None
    )


@pytest.fixture(scope="module")
def shapes_server(shapes_project):
    with ServerProcess(shapes_project) as server:
        yield server


@pytest.fixture(scope="module")
def shapes_backend(shapes_project):
    return InferenceBackendLoader.from_project(shapes_project)


def client_of(server) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(url=f"127.0.0.1:{server.port}", connection_timeout=10)


def tensor(name: str, array: np.ndarray, datatype: str, binary=False) -> triton.InferInput:
    t = triton.InferInput(name, list(array.shape), datatype)
    t.set_data_from_numpy(array, binary_data=binary)
    return t


def wanted(*names: str, binary=False) -> list[triton.InferRequestedOutput]:
    return [triton.InferRequestedOutput(n, binary_data=binary) for n in names]


def expected_columns(rows: list[dict]) -> dict[str, list]:
    rows = json.loads(json.dumps(rows))
    return {key: [r[key] for r in rows] for key in rows[0]}


# -- tritonclient: health and metadata -------------------------------------------


def test_health_and_metadata_through_tritonclient(example_server):
    client = client_of(example_server)
    try:
        assert client.is_server_live()
        assert client.is_server_ready()
        assert client.is_model_ready(MODEL)
        assert client.is_model_ready(MODEL, "0.1.0")
        server = client.get_server_metadata()
        assert server["name"] == "packflow"
        assert isinstance(server["version"], str) and server["version"]
        assert server["extensions"] == ["binary_tensor_data"]
        meta = client.get_model_metadata(MODEL)
        assert meta == client.get_model_metadata(MODEL, "0.1.0")
        assert meta["name"] == MODEL
        assert meta["versions"] == ["0.1.0"]
        assert meta["platform"] == "packflow"
        assert [i["name"] for i in meta["inputs"]] == FEATURES
        assert {i["datatype"] for i in meta["inputs"]} == {"FP64"}
        assert all(i["shape"] == [-1] for i in meta["inputs"])
        with pytest.raises(InferenceServerException) as info:
            client.get_model_metadata("nope")
        assert "no model named 'nope'" in str(info.value)
        with pytest.raises(InferenceServerException):
            client.get_model_metadata(MODEL, "9.9.9")
        assert not client.is_model_ready("nope")
    finally:
        client.close()


def test_health_and_metadata_raw(example_server):
    url = example_server.url
    with httpx.Client(timeout=10) as http:
        assert http.get(f"{url}/v2/health/live").json() == {"live": True}
        ready = http.get(f"{url}/v2/health/ready")
        assert (ready.status_code, ready.json()) == (200, {"ready": True})
        model_ready = http.get(f"{url}/v2/models/{MODEL}/versions/0.1.0/ready")
        assert (model_ready.status_code, model_ready.json()) == (200, {"ready": True})
        assert http.head(f"{url}/v2/health/live").status_code == 200


# -- tritonclient: infer on a numpy backend ----------------------------------------


def test_infer_one_matrix_equals_the_backend(example_server, example_backend):
    events = firewall_events(40, seed=3)
    expected = expected_columns(example_backend(events))
    client = client_of(example_server)
    try:
        result = client.infer(
            MODEL,
            [tensor("features", feature_matrix(events), "FP64")],
            outputs=wanted("anomaly_score", "alert"),
            request_id="req-1",
        )
        answer = result.get_response()
        assert answer["model_name"] == MODEL
        assert answer["model_version"] == "0.1.0"
        assert answer["id"] == "req-1"
        assert [(o["name"], o["datatype"], o["shape"]) for o in answer["outputs"]] == [
            ("anomaly_score", "FP64", [40]),
            ("alert", "BOOL", [40]),
        ]
        assert result.as_numpy("anomaly_score").tolist() == expected["anomaly_score"]
        assert result.as_numpy("alert").tolist() == expected["alert"]

        # The versioned route, and no outputs named: every output.
        again = client.infer(
            MODEL, [tensor("x", feature_matrix(events), "FP64")], model_version="0.1.0"
        )
        assert [o["name"] for o in again.get_response()["outputs"]] == ["anomaly_score", "alert"]
        assert again.as_numpy("anomaly_score").tolist() == expected["anomaly_score"]
    finally:
        client.close()


def test_infer_one_tensor_per_feature(example_server, example_backend):
    events = firewall_events(25, seed=4)
    expected = expected_columns(example_backend(events))
    matrix = feature_matrix(events)
    inputs = []
    for j, name in enumerate(FEATURES):
        column = matrix[:, j]
        if name in ("src.port", "dst.port", "rule.id"):
            # Integers as INT64, one of them as [N, 1].
            column = column.astype(np.int64)
            if name == "rule.id":
                column = column.reshape(-1, 1)
            inputs.append(tensor(name, column, "INT64"))
        else:
            inputs.append(tensor(name, column, "FP64"))
    inputs.reverse()  # matched by name, not by position
    client = client_of(example_server)
    try:
        result = client.infer(MODEL, inputs, outputs=wanted("alert"))
        outputs = result.get_response()["outputs"]
        assert [o["name"] for o in outputs] == ["alert"]
        assert result.as_numpy("alert").tolist() == expected["alert"]
        assert result.as_numpy("anomaly_score") is None
    finally:
        client.close()


def test_a_large_request_equals_the_backend(example_server, example_backend):
    # 4,000 rows of 9 features: every value mapped once, in row order.
    events = firewall_events(4000, seed=11)
    expected = expected_columns(example_backend(events))
    client = client_of(example_server)
    try:
        result = client.infer(
            MODEL,
            [tensor("features", feature_matrix(events), "FP64")],
            outputs=wanted("anomaly_score", "alert"),
        )
        assert result.as_numpy("anomaly_score").tolist() == expected["anomaly_score"]
        assert result.as_numpy("alert").tolist() == expected["alert"]
    finally:
        client.close()


# -- tritonclient: infer on records backends ----------------------------------------


def test_infer_columns_by_field_path(shapes_server, shapes_backend):
    n = 12
    ports = np.array([80 * (i + 1) * (i % 3 + 1) for i in range(n)], dtype=np.int64)
    labels = np.array([f"label é {i}" for i in range(n)], dtype=np.object_)
    flags = np.array([i % 2 == 0 for i in range(n)])
    records = [
        {"src": {"port": int(p)}, "label": str(lbl), "ok": bool(f)}
        for p, lbl, f in zip(ports, labels, flags)
    ]
    expected = expected_columns(shapes_backend(records))
    client = client_of(shapes_server)
    try:
        result = client.infer(
            "shapes",
            [
                tensor("src.port", ports, "INT64"),
                tensor("label", labels, "BYTES"),
                tensor("ok", flags, "BOOL"),
            ],
            outputs=wanted("port", "half", "high", "label", "echo"),
        )
        answer = result.get_response()
        assert "model_version" not in answer
        assert {o["name"]: o["datatype"] for o in answer["outputs"]} == {
            "port": "INT64",
            "half": "FP64",
            "high": "BOOL",
            "label": "BYTES",
            "echo": "BYTES",
        }
        assert all(o["shape"] == [n] for o in answer["outputs"])
        assert result.as_numpy("port").tolist() == expected["port"]
        assert result.as_numpy("half").tolist() == expected["half"]
        assert result.as_numpy("high").tolist() == expected["high"]
        labels_out = [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("label")]
        assert labels_out == expected["label"]
        # Other JSON comes back as JSON text.
        echo = [json.loads(v) for v in result.as_numpy("echo")]
        assert echo == expected["echo"] == records
    finally:
        client.close()


def test_infer_records_as_json_bytes(shapes_server, shapes_backend):
    records = [
        {"src": {"port": 1000 + i, "geo": [i, None]}, "label": None if i % 4 else "x"}
        for i in range(9)
    ]
    expected = expected_columns(shapes_backend(records))
    texts = np.array([json.dumps(r) for r in records], dtype=np.object_)
    client = client_of(shapes_server)
    try:
        result = client.infer("shapes", [tensor("records", texts, "BYTES")], outputs=wanted("echo"))
        assert [json.loads(v) for v in result.as_numpy("echo")] == expected["echo"]
        everything = client.infer("shapes", [tensor("records", texts, "BYTES")])
        for name, values in expected.items():
            got = everything.as_numpy(name).tolist()
            if name == "echo":
                got = [json.loads(v) for v in got]
            elif name == "label":
                got = [v.decode() if isinstance(v, bytes) else v for v in got]
            assert got == values, name
    finally:
        client.close()


def test_a_failing_row_fails_the_request_with_its_index(shapes_server):
    client = client_of(shapes_server)
    try:
        with pytest.raises(InferenceServerException) as info:
            client.infer(
                "shapes",
                [
                    tensor("src.port", np.array([1, 2, 3, 4], dtype=np.int64), "INT64"),
                    tensor("fail", np.array([False, False, True, False]), "BOOL"),
                ],
                outputs=wanted("port"),
            )
        assert "row 2 failed" in str(info.value)
    finally:
        client.close()
    body = {
        "inputs": [
            {"name": "src.port", "datatype": "INT64", "shape": [3], "data": [1, 2, 3]},
            {"name": "fail", "datatype": "BOOL", "shape": [3], "data": [False, True, False]},
        ]
    }
    answer = httpx.post(f"{shapes_server.url}/v2/models/shapes/infer", json=body, timeout=10)
    assert answer.status_code == 422
    assert answer.json()["row"] == 1
    assert "row 1 failed" in answer.json()["error"]


def test_concurrent_clients_share_batches_and_keep_their_rows(echo_server):
    # The echo backend: records in, {"id", "double"} out; rows of concurrent
    # requests share batches (the server waits 50 ms for company).
    failures: list[str] = []

    def one_client(k: int) -> None:
        client = triton.InferenceServerClient(url=f"127.0.0.1:{echo_server.port}")
        try:
            for j in range(4):
                n = 3 + (k + j) % 5
                ids = [f"c{k}-{j}-{i}" for i in range(n)]
                xs = [k * 100 + j * 10 + i for i in range(n)]
                result = client.infer(
                    "echo",
                    [
                        tensor("id", np.array(ids, dtype=np.object_), "BYTES"),
                        tensor("x", np.array(xs, dtype=np.int64), "INT64"),
                    ],
                    outputs=wanted("id", "double"),
                )
                expected = echo_expected([{"id": i, "x": x} for i, x in zip(ids, xs)])
                got_ids = [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("id")]
                if got_ids != [e["id"] for e in expected]:
                    failures.append(f"client {k}: ids {got_ids}")
                if result.as_numpy("double").tolist() != [e["double"] for e in expected]:
                    failures.append(f"client {k}: doubles")
        except Exception as exc:  # noqa: BLE001 - reported below
            failures.append(f"client {k}: {exc!r}")
        finally:
            client.close()

    with httpx.Client(timeout=10) as http:
        batches_before = batch_count(http, echo_server.url)
    threads = [threading.Thread(target=one_client, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert failures == []
    with httpx.Client(timeout=10) as http:
        # 24 requests in fewer batches: they were batched together.
        assert batch_count(http, echo_server.url) - batches_before < 24
    metrics = httpx.get(f"{echo_server.url}/metrics", timeout=10).text
    samples = metric_samples(metrics)
    assert (
        samples[
            (
                "packflow_requests_total",
                frozenset({"endpoint": "/v2/models/{name}/infer", "code": "200"}.items()),
            )
        ]
        >= 24
    )


def test_not_ready_is_503_false(tmp_path):
    project = write_project(
        tmp_path / "sleepy", name="sleepy", backend=NOT_READY_BACKEND, backend_config=None
    )
    with ServerProcess(project) as server:
        with httpx.Client(timeout=10) as http:
            ready = http.get(f"{server.url}/v2/health/ready")
            assert (ready.status_code, ready.json()) == (503, {"ready": False})
            model = http.get(f"{server.url}/v2/models/sleepy/ready")
            assert (model.status_code, model.json()) == (503, {"ready": False})
            live = http.get(f"{server.url}/v2/health/live")
            assert (live.status_code, live.json()) == (200, {"live": True})
        client = client_of(server)
        try:
            assert client.is_server_live()
            assert not client.is_server_ready()
            assert not client.is_model_ready("sleepy")
        finally:
            client.close()


# -- raw HTTP: bodies without a Content-Type, and errors ----------------------------


def matrix_body(events: list[dict], **tensor_fields) -> dict:
    t = {
        "name": "features",
        "datatype": "FP64",
        "shape": [len(events), len(FEATURES)],
        "data": feature_matrix(events).ravel().tolist(),
    }
    t.update(tensor_fields)
    return {"inputs": [t]}


def test_a_body_without_content_type_is_accepted(example_server, example_backend):
    events = firewall_events(5, seed=9)
    expected = expected_columns(example_backend(events))
    # Nested data (one array per row) is read as the flat form is.
    body = matrix_body(events, data=feature_matrix(events).tolist())
    raw = json.dumps(body).encode()
    with httpx.Client(timeout=10) as http:
        answer = http.post(f"{example_server.url}/v2/models/{MODEL}/infer", content=raw)
        assert "content-type" not in answer.request.headers
    assert answer.status_code == 200, answer.text
    outputs = {o["name"]: o["data"] for o in answer.json()["outputs"]}
    assert outputs == expected


def post_error(server, path: str, body, status: int = 400, headers=None) -> str:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    answer = httpx.post(f"{server.url}{path}", content=raw, headers=headers, timeout=10)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    return answer.json()["error"]


INFER = f"/v2/models/{MODEL}/infer"


def test_malformed_bodies_are_400(example_server):
    s = example_server
    assert "not JSON" in post_error(s, INFER, b'{"inputs": [')
    assert "empty" in post_error(s, INFER, b"")
    assert "JSON object" in post_error(s, INFER, [1, 2])
    assert '"inputs"' in post_error(s, INFER, {"inputs": []})
    assert '"inputs"' in post_error(s, INFER, {"outputs": []})
    assert "input 0 is not a JSON object" in post_error(s, INFER, {"inputs": [3]})
    assert '"name"' in post_error(s, INFER, {"inputs": [{"datatype": "FP64"}]})
    message = post_error(
        s,
        INFER,
        b'{"inputs": [{"name": "a", "datatype": "FP64", '
        b'"shape": [1, 9], "data": [NaN, 1, 2, 3, 4, 5, 6, 7, 8]}]}',
    )
    assert "NaN is not JSON" in message
    events = firewall_events(2)
    assert "'id' must be" in post_error(s, INFER, {**matrix_body(events), "id": 5}).replace(
        '"id"', "'id'"
    )


def test_wrong_shapes_and_datatypes_are_400_naming_the_tensor(example_server):
    s = example_server
    events = firewall_events(3)
    body = matrix_body(events, shape=[3, 8], data=[0.0] * 24)
    message = post_error(s, INFER, body)
    assert "'features'" in message and "[N, 9]" in message
    message = post_error(s, INFER, matrix_body(events, shape=[3, 9], data=[0.0] * 26))
    assert "'features' has 26 values" in message and "27" in message
    data = [0.0] * 27
    data[4] = "1.5"
    message = post_error(s, INFER, matrix_body(events, data=data))
    assert "'features': element 4" in message and "not a number" in message
    assert "datatype 'FP128'" in post_error(s, INFER, matrix_body(events, datatype="FP128"))
    message = post_error(s, INFER, matrix_body(events, shape=[-3, 9]))
    assert '"shape"' in message
    message = post_error(s, INFER, matrix_body(events, datatype="BYTES", data=["a"] * 27))
    assert "'features' is BYTES" in message
    ints = matrix_body(events, datatype="INT8", data=[1] * 26 + [300])
    assert "element 26 (300) is out of the range of INT8" in post_error(s, INFER, ints)
    empty = matrix_body([], shape=[0, 9], data=[])
    assert "no rows" in post_error(s, INFER, empty)


def test_feature_tensors_by_name_errors(example_server):
    s = example_server

    def column(name, n=2, **fields):
        t = {"name": name, "datatype": "FP64", "shape": [n], "data": [1.0] * n}
        t.update(fields)
        return t

    message = post_error(s, INFER, {"inputs": [column(f) for f in FEATURES[:-1]]})
    assert "missing the tensor of feature(s) 'score'" in message
    message = post_error(s, INFER, {"inputs": [column(f) for f in FEATURES] + [column("extra")]})
    assert "no feature named 'extra'" in message
    inputs = [column(f) for f in FEATURES[:-1]] + [column("score", n=3)]
    message = post_error(s, INFER, {"inputs": inputs})
    assert "'score' has 3 rows" in message
    inputs = [column(f) for f in FEATURES[:-1]] + [column("score", shape=[1, 2])]
    assert "'score' has shape [1, 2]" in post_error(s, INFER, {"inputs": inputs})
    inputs = [column(f) for f in FEATURES] + [column("ts")]
    assert "'ts' is given twice" in post_error(s, INFER, {"inputs": inputs})


def test_unknown_output_is_400(example_server):
    body = matrix_body(firewall_events(2))
    body["outputs"] = [{"name": "alert"}, {"name": "nope"}]
    message = post_error(example_server, INFER, body)
    assert "no output named 'nope'" in message and "'anomaly_score'" in message
    body["outputs"] = [{"nom": "alert"}]
    assert "output 0" in post_error(example_server, INFER, body)


def test_unknown_model_or_version_is_404(example_server, shapes_server):
    body = matrix_body(firewall_events(2))
    assert "no model named 'other'" in post_error(
        example_server, "/v2/models/other/infer", body, 404
    )
    assert "no version '2'" in post_error(
        example_server, f"/v2/models/{MODEL}/versions/2/infer", body, 404
    )
    with httpx.Client(timeout=10) as http:
        for path in ("/v2/models/other", "/v2/models/other/ready", f"/v2/models/{MODEL}/nope"):
            answer = http.get(f"{example_server.url}{path}")
            assert answer.status_code == 404, path
            assert answer.json()["error"]
        # A model with no version in its packflow.yaml has no versioned routes.
        answer = http.get(f"{shapes_server.url}/v2/models/shapes/versions/0.1.0")
        assert answer.status_code == 404
        assert "has none" in answer.json()["error"]
        meta = http.get(f"{shapes_server.url}/v2/models/shapes").json()
        assert meta["versions"] == []
        assert meta["inputs"] == [{"name": "records", "datatype": "BYTES", "shape": [-1]}]


def test_methods_and_content_types(example_server):
    with httpx.Client(timeout=10) as http:
        answer = http.get(f"{example_server.url}{INFER}")
        assert answer.status_code == 405
        assert answer.headers["allow"] == "POST"
        answer = http.post(f"{example_server.url}/v2/health/live", content=b"{}")
        assert answer.status_code == 405
    body = matrix_body(firewall_events(2))
    octets = {"content-type": "application/octet-stream"}
    assert "Content-Type" in post_error(example_server, INFER, body, 415, octets)


def test_binary_data_through_tritonclient(example_server, example_backend):
    # tritonclient's defaults: binary inputs, and binary outputs when none are named.
    events = firewall_events(30, seed=5)
    expected = expected_columns(example_backend(events))
    client = client_of(example_server)
    try:
        t = triton.InferInput("features", [30, 9], "FP64")
        t.set_data_from_numpy(feature_matrix(events))
        result = client.infer(MODEL, [t])
        outputs = result.get_response()["outputs"]
        assert all("binary_data_size" in o["parameters"] for o in outputs)
        assert result.as_numpy("anomaly_score").tolist() == expected["anomaly_score"]
        assert result.as_numpy("alert").tolist() == expected["alert"]
        # Binary and JSON inputs in one request; one output binary, one JSON.
        matrix = feature_matrix(events)
        inputs = []
        for j, name in enumerate(FEATURES):
            if name in ("dst.port", "rule.id"):
                inputs.append(tensor(name, matrix[:, j].astype(np.int32), "INT32", binary=True))
            else:
                inputs.append(tensor(name, matrix[:, j], "FP64", binary=j % 2 == 0))
        outputs = [
            triton.InferRequestedOutput("alert", binary_data=True),
            triton.InferRequestedOutput("anomaly_score", binary_data=False),
        ]
        result = client.infer(MODEL, inputs, outputs=outputs)
        kinds = {o["name"]: "data" in o for o in result.get_response()["outputs"]}
        assert kinds == {"alert": False, "anomaly_score": True}
        assert result.as_numpy("alert").tolist() == expected["alert"]
        assert result.as_numpy("anomaly_score").tolist() == expected["anomaly_score"]
    finally:
        client.close()


def test_binary_bytes_and_bools_through_tritonclient(shapes_server, shapes_backend):
    records = [
        {"src": {"port": 700 + 300 * i}, "label": f"é{i}", "ok": i % 2 == 0} for i in range(7)
    ]
    expected = expected_columns(shapes_backend(records))
    texts = np.array([json.dumps(r).encode() for r in records], dtype=np.object_)
    client = client_of(shapes_server)
    try:
        result = client.infer("shapes", [tensor("records", texts, "BYTES", binary=True)])
        assert [json.loads(v) for v in result.as_numpy("echo")] == expected["echo"]
        assert [v.decode() for v in result.as_numpy("label")] == expected["label"]
        assert result.as_numpy("high").tolist() == expected["high"]
        assert result.as_numpy("port").tolist() == expected["port"]
        assert result.as_numpy("half").tolist() == expected["half"]
        columns = [
            tensor("src.port", np.array([r["src"]["port"] for r in records]), "INT64", True),
            tensor("label", np.array([r["label"] for r in records], dtype=object), "BYTES", True),
            tensor("ok", np.array([r["ok"] for r in records]), "BOOL", True),
        ]
        result = client.infer("shapes", columns, outputs=wanted("echo", binary=True))
        assert [json.loads(v) for v in result.as_numpy("echo")] == records
    finally:
        client.close()


def binary_body(tensors: list[tuple[dict, bytes]], outputs=None) -> tuple[bytes, dict]:
    header = {"inputs": [t for t, _ in tensors]}
    if outputs is not None:
        header["outputs"] = outputs
    text = json.dumps(header).encode()
    body = text + b"".join(raw for _, raw in tensors)
    return body, {"inference-header-content-length": str(len(text))}


def test_binary_data_raw(example_server, shapes_server):
    events = firewall_events(2)
    matrix = feature_matrix(events)
    meta = {"name": "f", "datatype": "FP64", "shape": [2, 9]}
    good = {**meta, "parameters": {"binary_data_size": 144}}
    body, headers = binary_body(
        [(good, matrix.astype("<f8").tobytes())],
        [{"name": "alert", "parameters": {"binary_data": True}}],
    )
    answer = httpx.post(f"{example_server.url}{INFER}", content=body, headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    length = int(answer.headers["inference-header-content-length"])
    header = json.loads(answer.content[:length])
    assert header["outputs"][0]["parameters"] == {"binary_data_size": 2}
    assert "data" not in header["outputs"][0]
    assert answer.content[length:] in (b"\x00\x00", b"\x00\x01", b"\x01\x00", b"\x01\x01")

    short = {**meta, "parameters": {"binary_data_size": 140}}
    body, headers = binary_body([(short, matrix.tobytes()[:140])])
    message = post_error(example_server, INFER, body, 400, headers)
    assert "'f': 140 bytes of binary data" in message and "144" in message
    body, headers = binary_body([(good, matrix.tobytes() + b"xx")])
    assert "2 bytes of binary data" in post_error(example_server, INFER, body, 400, headers)
    big = {**meta, "parameters": {"binary_data_size": 200}}
    body, headers = binary_body([(big, matrix.tobytes())])
    assert "goes past the end" in post_error(example_server, INFER, body, 400, headers)
    nan = matrix.copy()
    nan[1, 3] = np.nan
    body, headers = binary_body([(good, nan.tobytes())])
    assert "'f': element 12 is nan" in post_error(example_server, INFER, body, 400, headers)
    header_only = json.dumps({"inputs": [good]}).encode()
    assert "no Inference-Header-Content-Length" in post_error(example_server, INFER, header_only)
    body, _ = binary_body([(good, matrix.tobytes())])
    for bad in ("x", "-1", str(len(body) + 1)):
        message = post_error(
            example_server, INFER, body, 400, {"inference-header-content-length": bad}
        )
        assert "Inference-Header-Content-Length" in message

    texts = {"name": "records", "datatype": "BYTES", "shape": [2]}
    raw = struct.pack("<I", 2) + b"{}" + struct.pack("<I", 9) + b"{}"
    body, headers = binary_body([({**texts, "parameters": {"binary_data_size": len(raw)}}, raw)])
    message = post_error(shapes_server, "/v2/models/shapes/infer", body, 400, headers)
    assert "'records': element 1 is cut" in message
    raw = struct.pack("<I", 2) + b"\xff\xfe"
    one = {**texts, "shape": [1], "parameters": {"binary_data_size": 6}}
    body, headers = binary_body([(one, raw)])
    message = post_error(shapes_server, "/v2/models/shapes/infer", body, 400, headers)
    assert "'records': element 0 is not UTF-8" in message


def test_records_errors(shapes_server):
    s = shapes_server
    path = "/v2/models/shapes/infer"
    texts = ['{"src": {"port": 1}}', '{"src": ', '{"src": {"port": 2}}']
    body = {"inputs": [{"name": "records", "datatype": "BYTES", "shape": [3], "data": texts}]}
    assert "'records': element 1 is not JSON" in post_error(s, path, body)
    body["inputs"][0]["data"] = ['{"src": {"port": 1}}', "[1]", "{}"]
    assert "'records': element 1 is not a JSON object" in post_error(s, path, body)
    body = {
        "inputs": [
            {"name": "src", "datatype": "INT64", "shape": [1], "data": [1]},
            {"name": "src.port", "datatype": "INT64", "shape": [1], "data": [1]},
        ]
    }
    assert "'src' and 'src.port'" in post_error(s, path, body)
    body = {
        "inputs": [
            {"name": "src.port", "datatype": "INT64", "shape": [2], "data": [1, 2]},
            {"name": "label", "datatype": "BYTES", "shape": [2], "data": ["a", 3]},
        ]
    }
    assert "'label': element 1 is 3, not a string (BYTES)" in post_error(s, path, body)
    body["inputs"][1] = {"name": "label", "datatype": "BOOL", "shape": [2], "data": [True, 1]}
    assert "'label': element 1 is 1, not true or false (BOOL)" in post_error(s, path, body)


# -- What a review broke (each failed before its fix) ------------------------------

PASSTHROUGH_BACKEND = """
from packflow import InferenceBackend


class Backend(InferenceBackend):
    def execute(self, inputs):
        return inputs
"""


@pytest.fixture(scope="module")
def passthrough_server(tmp_path_factory):
    directory = tmp_path_factory.mktemp("pass") / "pass"
    project = write_project(
        directory, name="pass", backend=PASSTHROUGH_BACKEND, backend_config=None
    )
    with ServerProcess(project, "--max-queue-rows", "5000") as server:
        yield server


PASS_INFER = "/v2/models/pass/infer"


def infer_json(server, body: dict) -> dict:
    answer = httpx.post(f"{server.url}{PASS_INFER}", json=body, timeout=10)
    assert answer.status_code == 200, answer.text
    return {t["name"]: t for t in answer.json()["outputs"]}


def test_shapes_and_datatypes_a_client_controls_are_bounded(passthrough_server):
    s = passthrough_server
    many_dims = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [10] * 5000, "data": [1]}]}
    started = time.monotonic()
    assert "1 to 32 sizes" in post_error(s, PASS_INFER, many_dims)
    huge = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1 << 20] * 4, "data": [1]}]}
    assert "5000 a request may hold" in post_error(s, PASS_INFER, huge, status=413)
    wide = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 1 << 40, 1 << 20]}]}
    assert "more values than a request can carry" in post_error(s, PASS_INFER, wide)
    for datatype in (["FP64"], {}, 3):
        body = {"inputs": [{"name": "a", "datatype": datatype, "shape": [1], "data": [1]}]}
        assert "one of BOOL" in post_error(s, PASS_INFER, body)
    deep = ".".join(["a"] * 30_000)
    body = {"inputs": [{"name": deep, "datatype": "INT64", "shape": [1], "data": [1]}]}
    assert "30000 parts" in post_error(s, PASS_INFER, body)
    flag = {
        "inputs": [{"name": "a", "datatype": "INT64", "shape": [1], "data": [1]}],
        "parameters": {"binary_data_output": "false"},
    }
    assert "must be true or false" in post_error(s, PASS_INFER, flag)
    assert time.monotonic() - started < 5.0
    # Rows past the queue are refused from the shape, before any value is read.
    n = 8_000_000
    tensor_head = {"name": "b", "datatype": "BOOL", "shape": [n]}
    tensor_head["parameters"] = {"binary_data_size": n}
    header = json.dumps({"inputs": [tensor_head]}).encode()
    started = time.monotonic()
    message = post_error(
        s,
        PASS_INFER,
        header + bytes(n),
        status=413,
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert "8000000 rows" in message and time.monotonic() - started < 3.0


def test_numbers_go_out_in_a_datatype_that_holds_them_exactly(passthrough_server):
    s = passthrough_server

    def column(name: str, datatype: str, data: list) -> dict:
        return {"name": name, "datatype": datatype, "shape": [len(data)], "data": data}

    out = infer_json(
        s,
        {
            "inputs": [
                column("u", "UINT64", [(1 << 64) - 1, 1 << 63]),
                column("i", "INT64", [-(1 << 63), 5]),
            ]
        },
    )
    assert out["u"]["datatype"] == "UINT64" and out["u"]["data"] == [(1 << 64) - 1, 1 << 63]
    assert out["i"]["datatype"] == "INT64" and out["i"]["data"] == [-(1 << 63), 5]
    records = [json.dumps({"m": (1 << 53) + 1}), json.dumps({"m": 0.5})]
    out = infer_json(s, {"inputs": [column("records", "BYTES", records)]})
    assert out["m"]["datatype"] == "BYTES"
    assert [json.loads(v) for v in out["m"]["data"]] == [(1 << 53) + 1, 0.5]
    # A JSON integer in a float tensor is a number like any other.
    out = infer_json(s, {"inputs": [column("f", "FP64", [10**20, 1])]})
    assert out["f"] == {"name": "f", "datatype": "FP64", "shape": [2], "data": [1e20, 1.0]}


def test_text_is_records_only_in_the_tensor_named_records(passthrough_server):
    s = passthrough_server
    text = {"name": "text", "datatype": "BYTES", "shape": [2], "data": ['{"x": 1}', "{hi}"]}
    out = infer_json(s, {"inputs": [text]})
    assert out["text"]["data"] == ['{"x": 1}', "{hi}"]


def test_an_answer_of_too_many_values_is_refused(passthrough_server):
    def body_of(records):
        n = len(records)
        return {"inputs": [{"name": "records", "datatype": "BYTES", "shape": [n], "data": records}]}

    # Rows of more different keys than an answer has tensors.
    records = [json.dumps({f"k{i}": 1}) for i in range(2100)]
    message = post_error(passthrough_server, PASS_INFER, body_of(records), 422)
    assert "2100 different keys" in message and "1024 output tensors" in message
    # Fewer keys, but keys x rows past the values an answer holds.
    records = [json.dumps({f"k{i % 1000}": 1}) for i in range(4100)]
    message = post_error(passthrough_server, PASS_INFER, body_of(records), 422)
    assert "more than 4,000,000 values" in message


# -- what a review of the first slice left (each fails on that code) -------------


def test_outputs_asked_twice_or_none(example_server, example_backend):
    events = firewall_events(3, seed=12)
    body = matrix_body(events)
    body["outputs"] = [{"name": "alert"}, {"name": "alert"}]
    assert "output 'alert' is asked for twice" in post_error(example_server, INFER, body)
    # An empty list names none: every output, as Triton reads it.
    body["outputs"] = []
    answer = httpx.post(f"{example_server.url}{INFER}", json=body, timeout=10)
    assert answer.status_code == 200, answer.text
    names = [o["name"] for o in answer.json()["outputs"]]
    assert names == list(example_backend(events)[0])


def test_ragged_data_is_400_not_flattened(example_server, example_backend):
    events = firewall_events(2, seed=13)
    rows = feature_matrix(events).tolist()
    # Nested as the shape is: read as the flat form.
    answer = httpx.post(f"{example_server.url}{INFER}", json=matrix_body(events, data=rows))
    assert answer.status_code == 200, answer.text
    # The same 18 values nested otherwise: refused, saying where.
    ragged = [rows[0][:8], rows[0][8:] + rows[1]]
    message = post_error(example_server, INFER, matrix_body(events, data=ragged))
    assert "nested unlike its shape [2, 9]" in message and "data[0]" in message
    deeper = [[[v] for v in rows[0]], [[v] for v in rows[1]]]
    message = post_error(example_server, INFER, matrix_body(events, data=deeper))
    assert "nested unlike its shape" in message and "data[0][0]" in message
    mixed = rows[0] + [rows[1]]
    assert "nested unlike" in post_error(example_server, INFER, matrix_body(events, data=mixed))


def test_narrow_floats_out_of_range_are_400(example_server):
    events = firewall_events(1)
    data = [0.0] * 9
    data[2] = 1e39
    message = post_error(example_server, INFER, matrix_body(events, datatype="FP32", data=data))
    assert "element 2 (1e+39) is out of the range of FP32" in message
    data[2] = -70000.0
    message = post_error(example_server, INFER, matrix_body(events, datatype="FP16", data=data))
    assert "element 2 (-70000.0) is out of the range of FP16" in message


def test_binary_data_given_twice_is_400(example_server):
    events = firewall_events(2)
    matrix = feature_matrix(events)
    both = {
        "name": "f",
        "datatype": "FP64",
        "shape": [2, 9],
        "data": matrix.ravel().tolist(),
        "parameters": {"binary_data_size": 144},
    }
    body, headers = binary_body([(both, matrix.astype("<f8").tobytes())])
    message = post_error(example_server, INFER, body, 400, headers)
    assert 'both "data" and a binary_data_size' in message
    good = {"name": "f", "datatype": "FP64", "shape": [2, 9]}
    good["parameters"] = {"binary_data_size": 144}
    body, headers = binary_body([(good, matrix.astype("<f8").tobytes())])
    twice = list(headers.items()) * 2
    message = post_error(example_server, INFER, body, 400, twice)
    assert "Inference-Header-Content-Length is given twice" in message


class Picky(InferenceBackend):
    """A numpy backend that refuses a row whose first feature is 13."""

    def execute(self, inputs):
        if (inputs[:, 0] == 13).any():
            raise ValueError("13 refused")
        return [{"first": r[0].item(), "dtype": inputs.dtype.str} for r in inputs]


def test_numeric_tensors_reach_a_stock_numpy_backend_as_feature_cells():
    app = create_app(Picky(input_format="numpy", feature_names=["a", "b"]), name="picky")
    assert app.v2.cells
    queued: list[type] = []
    submit = app.batcher.submit

    def spy(data, rows, began=None):
        queued.append(type(data))
        return submit(data, rows, began)

    app.batcher.submit = spy

    def matrix(datatype: str, data: list) -> dict:
        return {"inputs": [{"name": "x", "datatype": datatype, "shape": [2, 2], "data": data}]}

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            url = "/v2/models/picky/infer"
            ok = await client.post(url, json=matrix("INT64", [1, 2, 3, 4]))
            floats = await client.post(url, json=matrix("FP32", [1, 2, 3.5, 4]))
            bad = await client.post(url, json=matrix("INT64", [1, 2, 13, 4]))
            # Past int64: read as JSON Lines (the text reader's dict path).
            wide = await client.post(url, json=matrix("UINT64", [2**64 - 1, 2, 3, 4]))
        await app.close()
        return ok, floats, bad, wide

    ok, floats, bad, wide = asyncio.run(main())
    assert ok.status_code == 200, ok.text
    outputs = {o["name"]: o for o in ok.json()["outputs"]}
    assert outputs["first"]["data"] == [1, 3] and outputs["first"]["datatype"] == "INT64"
    assert outputs["dtype"]["data"] == ["<i8", "<i8"]
    floats_out = {o["name"]: o["data"] for o in floats.json()["outputs"]}
    assert floats_out == {"first": [1.0, 3.5], "dtype": ["<f8", "<f8"]}
    assert bad.status_code == 422 and bad.json()["row"] == 1
    assert wide.status_code == 200, wide.text
    assert queued == [_core.FeatureRows, _core.FeatureRows, _core.FeatureRows, bytes]


def test_a_numpy_backend_not_read_from_arrays_gets_json_lines():
    # A delimiter that overlaps itself in a feature's name: the engine reads
    # such rows into dicts, so the door hands it lines.
    backend = Picky(input_format="numpy", feature_names=["a___b", "c"], nested_field_delimiter="__")
    assert not backend._pipeline.reads_arrays
    app = create_app(backend, name="dicts")
    assert not app.v2.cells
    body = b'{"inputs":[{"name":"x","datatype":"INT64","shape":[1,2],"data":[5,6]}]}'
    assert type(app.v2.parse_infer(body).data) is bytes


class Rows(InferenceBackend):
    """A numpy backend that answers with each row it got, as text."""

    def execute(self, inputs):
        return [{"row": json.dumps(r.tolist()), "dtype": inputs.dtype.str} for r in inputs]


def _lines_door(app) -> None:
    """Turn ``app``'s V2 door back to JSON Lines (the path before feature cells)."""
    v2 = app.v2
    v2.cells = False
    layout = v2.layout
    paths = [list(p) for p in layout.paths]
    v2.plan = _core.V2Plan(layout.features, paths, layout.delimiter, v2.max_rows, cells=False)


@pytest.mark.parametrize(
    "config",
    [
        # Two features read from one field (a rename onto another feature).
        {"feature_names": ["a", "b"], "rename_fields": {"a": "b"}},
        {"feature_names": ["x.y", "c"], "rename_fields": {"c": "x.y"}},
        # A feature's field inside another's.
        {"feature_names": ["q", "r"], "rename_fields": {"s.t": "q", "s": "r"}},
        {"feature_names": ["a.b", "a"]},
        {"feature_names": ["a", "a"]},
    ],
)
def test_features_whose_fields_clash_are_answered_as_their_json_lines_are(config):
    # The row a request's tensors make cannot hold every feature apart: the
    # engine reads what that JSON line holds, and feature cells would not.
    def answers(cells: bool) -> list[tuple[int, str]]:
        app = create_app(Rows(input_format="numpy", **config), name="m")
        if not cells:
            _lines_door(app)
        matrix = {"name": "x", "datatype": "INT64", "shape": [2, 2], "data": [1, 2, 3, 4]}
        columns = [
            {"name": f, "datatype": "FP64", "shape": [2], "data": [j + 0.5, j + 1.0]}
            for j, f in enumerate(config["feature_names"])
        ]
        bodies = [{"inputs": [matrix]}]
        if len(set(config["feature_names"])) == 2:
            bodies.append({"inputs": columns})

        async def main():
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                got = [await client.post("/v2/models/m/infer", json=b) for b in bodies]
            await app.close()
            return [(r.status_code, r.text) for r in got]

        return asyncio.run(main())

    assert answers(cells=True) == answers(cells=False)


def test_features_one_inside_the_other_are_a_clear_500_not_an_internal_error():
    # Features a and a.b: no JSON row holds a value at a and an object there.
    backend = Picky(input_format="numpy", feature_names=["a", "a.b"])
    app = create_app(backend, name="inside")

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            body = {"inputs": [{"name": "x", "datatype": "INT64", "shape": [1, 2], "data": [1, 2]}]}
            answer = await client.post("/v2/models/inside/infer", json=body)
        await app.close()
        return answer

    answer = asyncio.run(main())
    assert answer.status_code == 500
    assert "'a.b', inside a field another feature is read from" in answer.json()["error"]
