"""The `kserve` package's clients (InferenceRESTClient with protocol v2, and
InferenceGRPCClient) against a real `packflow serve --grpc-port` process,
every answer compared with the backend called in-process.

kserve and tritonclient's gRPC module register the same protobuf messages,
so the kserve side runs in its own Python (``make kserve-venv``, named by
PACKFLOW_KSERVE_PYTHON under `make test`): tests/serving/kserve_calls.py
makes the calls and prints their answers as JSON."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from packflow.loaders import InferenceBackendLoader
from tests.serving.harness import EXAMPLE, REPO, ServerProcess, firewall_events
from tests.serving.test_v2 import (
    FEATURES,
    MODEL,
    SHAPES_BACKEND,
    expected_columns,
    feature_matrix,
)
from tests.support.sample_projects import write_project

SCRIPT = Path(__file__).with_name("kserve_calls.py")
#: The four ways the clients send tensors: (door, binary).
MODES = [("rest", False), ("rest", True), ("grpc", False), ("grpc", True)]


def kserve_python() -> str:
    named = os.environ.get("PACKFLOW_KSERVE_PYTHON")
    if named:
        assert Path(named).exists(), f"PACKFLOW_KSERVE_PYTHON={named} does not exist"
        return named
    default = REPO / ".venv-kserve" / "bin" / "python"
    if not default.exists():
        pytest.skip("no kserve Python: make kserve-venv (make test builds it)")
    return str(default)


def run_calls(server: ServerProcess, calls: list[dict]) -> list[dict]:
    job = {"rest": server.url, "grpc": server.grpc_target, "calls": calls}
    done = subprocess.run(
        [kserve_python(), str(SCRIPT)],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout)
    assert len(results) == len(calls)
    return results


def spec(name: str, array: np.ndarray, datatype: str, binary: bool) -> dict:
    values = array.tolist()
    return {"name": name, "datatype": datatype, "shape": list(array.shape), "data": values,
            "binary": binary}  # fmt: skip


@pytest.fixture(scope="module")
def example_server():
    with ServerProcess(EXAMPLE, "--max-wait-ms", "5", "--grpc-port", "0") as server:
        yield server


@pytest.fixture(scope="module")
def shapes_project(tmp_path_factory):
    directory = tmp_path_factory.mktemp("shapes") / "shapes"
    return write_project(
        directory, name="shapes", version=None, backend=SHAPES_BACKEND, backend_config=None
    )


def test_health_through_both_clients(example_server):
    calls = []
    for door in ("rest", "grpc"):
        calls += [
            {"door": door, "op": "live"},
            {"door": door, "op": "ready"},
            {"door": door, "op": "model_ready", "model": MODEL},
        ]
    results = run_calls(example_server, calls)
    assert results == [{"value": True}] * 6


def test_features_through_both_clients_equal_the_backend(example_server):
    events = firewall_events(30, seed=21)
    expected = expected_columns(InferenceBackendLoader.from_project(EXAMPLE)(events))
    matrix = feature_matrix(events)
    calls = []
    for door, binary in MODES:
        calls.append(
            {
                "door": door,
                "op": "infer",
                "model": MODEL,
                "id": f"{door}-{binary}",
                "inputs": [spec("features", matrix, "FP64", binary)],
                "outputs": None,
            }
        )
    # One tensor per feature, and an output asked for by name.
    columns = [spec(f, matrix[:, j], "FP64", False) for j, f in enumerate(FEATURES)]
    for door in ("rest", "grpc"):
        calls.append(
            {"door": door, "op": "infer", "model": MODEL, "inputs": columns, "outputs": ["alert"]}
        )
    results = run_calls(example_server, calls)
    for (door, binary), call, result in zip(MODES, calls, results):
        assert result["id"] == call["id"]
        # Binary (raw) inputs get binary outputs on gRPC; REST answers JSON
        # unless the request asks for binary outputs.
        assert result["raw"] == (binary and door == "grpc"), call["id"]
        assert result["model_name"] == MODEL
        outputs = result["outputs"]
        assert outputs["anomaly_score"] == {
            "datatype": "FP64",
            "shape": [30],
            "data": expected["anomaly_score"],
        }, call["id"]
        assert outputs["alert"]["datatype"] == "BOOL"
        assert outputs["alert"]["data"] == expected["alert"]
    for result in results[4:]:
        assert list(result["outputs"]) == ["alert"]
        assert result["outputs"]["alert"]["data"] == expected["alert"]


def test_records_through_both_clients_equal_the_backend(shapes_project):
    n = 7
    ports = np.array([300 * (i + 1) for i in range(n)], dtype=np.int64)
    labels = np.array([f"étiquette {i}" for i in range(n)], dtype=np.object_)
    flags = np.array([i % 3 == 0 for i in range(n)])
    records = [
        {"src": {"port": int(p)}, "label": str(lbl), "ok": bool(f)}
        for p, lbl, f in zip(ports, labels, flags)
    ]
    expected = expected_columns(InferenceBackendLoader.from_project(shapes_project)(records))
    calls = [
        {
            "door": door,
            "op": "infer",
            "model": "shapes",
            "inputs": [
                spec("src.port", ports, "INT64", binary),
                spec("label", labels, "BYTES", binary),
                spec("ok", flags, "BOOL", binary),
            ],
            "outputs": None,
        }
        for door, binary in MODES
    ]
    with ServerProcess(shapes_project, "--grpc-port", "0") as server:
        results = run_calls(server, calls)
    for (door, binary), result in zip(MODES, results):
        outputs = result["outputs"]
        where = f"{door}, binary {binary}"
        assert {k: v["datatype"] for k, v in outputs.items()} == {
            "port": "INT64",
            "half": "FP64",
            "high": "BOOL",
            "label": "BYTES",
            "echo": "BYTES",
        }, where
        for key in ("port", "half", "high", "label"):
            assert outputs[key]["data"] == expected[key], (where, key)
        assert [json.loads(v) for v in outputs["echo"]["data"]] == expected["echo"], where


def test_errors_through_both_clients(example_server):
    good = [spec("features", np.zeros((1, 9)), "FP64", False)]
    bad = [spec("features", np.zeros((2, 3)), "FP64", False)]
    calls = [
        {"door": "rest", "op": "infer", "model": "nope", "inputs": good},
        {"door": "grpc", "op": "infer", "model": "nope", "inputs": good},
        {"door": "rest", "op": "infer", "model": MODEL, "inputs": bad},
        {"door": "grpc", "op": "infer", "model": MODEL, "inputs": bad},
    ]
    rest_404, grpc_404, rest_400, grpc_400 = run_calls(example_server, calls)
    assert rest_404["code"] == 404 and "no model named 'nope'" in rest_404["error"]
    assert grpc_404["code"] == "NOT_FOUND" and "no model named 'nope'" in grpc_404["error"]
    shape_error = "tensor 'features' has shape [2, 3]"
    assert rest_400["code"] == 400 and shape_error in rest_400["error"]
    assert grpc_400["code"] == "INVALID_ARGUMENT" and shape_error in grpc_400["error"]
    # The same text on both doors.
    assert grpc_400["error"] in rest_400["error"]


@pytest.mark.parametrize("kserve_first", [True, False], ids=["kserve-first", "packflow-first"])
def test_the_stubs_load_beside_kserves(kserve_first):
    # kserve's own inference.* messages sit in protobuf's default pool; ours,
    # loaded from the source tree (the kserve Python has no packflow), in a
    # private one: both import, either first, and both work.
    theirs = "from kserve.protocol.grpc import grpc_predict_v2_pb2 as theirs"
    ours = (
        "import sys\n"
        f"sys.path.insert(0, {str(REPO / 'python' / 'packflow' / 'serving')!r})\n"
        "from proto import grpc_predict_v2_pb2 as ours, grpc_predict_v2_pb2_grpc\n"
    )
    check = (
        "r = ours.ModelInferRequest(model_name='m', raw_input_contents=[b'x'])\n"
        "t = theirs.ModelInferRequest.FromString(r.SerializeToString())\n"
        "assert (t.model_name, list(t.raw_input_contents)) == ('m', [b'x'])\n"
        "assert ours.ModelInferRequest.DESCRIPTOR is not theirs.ModelInferRequest.DESCRIPTOR\n"
        "print('ok')\n"
    )
    code = (theirs + "\n" + ours if kserve_first else ours + theirs + "\n") + check
    done = subprocess.run(
        [kserve_python(), "-c", code], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "ok"


def test_the_grpc_doc_examples_print_what_they_show(example_server):
    # docs/serving.md's client examples, with the ports of this server: the
    # tritonclient one in this Python, the kserve one in kserve's.
    doc = (REPO / "docs" / "serving.md").read_text(encoding="utf-8")
    section = doc.split("### gRPC", 1)[1].split("\nWhat the V2 door does not do yet", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 2
    for block, python in zip(blocks, (sys.executable, kserve_python())):
        code = block.replace("127.0.0.1:8081", example_server.grpc_target)
        code = code.replace("http://127.0.0.1:8080", example_server.url)
        done = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
        shown = [line[2:] for line in block.splitlines() if line.startswith("# ")]
        assert done.stdout.splitlines() == shown
