"""The pure parts of the V2 benchmark (benches/v2/run.py, benches/v2/grpc_load.py):
the bodies it sends, the answers it accepts, the wrk output it reads, the doc
section it writes. The load itself needs MLServer (``make bench-v2``)."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


bench = _load("v2_bench_run", HERE / "run.py")
grpc_load = _load("v2_bench_grpc_load", HERE / "grpc_load.py")


@pytest.fixture(scope="module")
def backend():
    from packflow.loaders import InferenceBackendLoader

    return InferenceBackendLoader.from_project(bench.EXAMPLE)


@pytest.fixture(scope="module")
def paths(backend):
    config = backend.config
    return bench.feature_paths(list(config.feature_names), dict(config.rename_fields))


def test_feature_paths_read_a_renamed_feature_from_its_source(paths):
    assert len(paths) == 9
    assert paths[1] == ["src", "port"]
    assert ["bytes", "in"] in paths  # bytes_in, renamed from bytes.in
    assert ["bytes_in"] not in paths


def test_feature_matrix_names_the_event_and_field_it_misses(paths):
    events = bench.serve_bench.firewall_events(3)
    del events[2]["src"]["geo"]["lat"]
    with pytest.raises(KeyError, match=r"event 2 has no field 'src\.geo\.lat'"):
        bench.feature_matrix(events, paths)


def test_the_body_carries_the_events_features(backend, paths):
    """Records rebuilt from the body's tensor (each value put back at its
    feature's path) score as the events do: the tensor holds the backend's
    features, in its order."""
    events = bench.serve_bench.firewall_events(100)
    tensor = json.loads(bench.v2_body(bench.feature_matrix(events, paths)))["inputs"][0]
    assert (tensor["name"], tensor["datatype"], tensor["shape"]) == ("input-0", "FP64", [100, 9])
    values = tensor["data"]
    rebuilt = []
    for i in range(100):
        record: dict = {}
        for j, path in enumerate(paths):
            node = record
            for key in path[:-1]:
                node = node.setdefault(key, {})
            node[path[-1]] = values[i * 9 + j]
        rebuilt.append(record)
    assert backend(rebuilt) == backend(events)


def test_v2_body_refuses_ragged_rows():
    with pytest.raises(ValueError, match="one width"):
        bench.v2_body([[1.0, 2.0], [3.0]])


def _expected():
    return {"anomaly_score": [0.25, 0.95], "alert": [False, True]}


def test_an_answer_within_1e_6_is_accepted():
    assert bench.answer_mismatch(_expected(), _expected()) is None
    close = {"anomaly_score": [0.2500005, 0.95], "alert": [0, 1]}
    assert bench.answer_mismatch(close, _expected()) is None


@pytest.mark.parametrize(
    "outputs, message",
    [
        ({"anomaly_score": [0.25, 0.95]}, "no output 'alert'"),
        ({"anomaly_score": [0.25], "alert": [False, True]}, "has 1 values, not 2"),
        ({"anomaly_score": [0.25, 0.951], "alert": [False, True]}, r"'anomaly_score'\[1\]"),
        ({"anomaly_score": [0.25, 0.95], "alert": [False, False]}, r"'alert'\[1\]"),
        ({"anomaly_score": [0.25, 0.95], "alert": [False, "yes"]}, "not a boolean"),
        ({"anomaly_score": ["0.25", 0.95], "alert": [False, True]}, r"'anomaly_score'\[0\]"),
    ],
)
def test_a_wrong_answer_says_where(outputs, message):
    wrong = bench.answer_mismatch(outputs, _expected())
    assert wrong is not None
    assert re.search(message, wrong), wrong


def test_rest_outputs_flattens_nested_data():
    answer = {
        "model_name": "m",
        "outputs": [
            {"name": "anomaly_score", "datatype": "FP64", "shape": [2, 1], "data": [[0.1], [0.2]]},
            {"name": "alert", "datatype": "BOOL", "shape": [2], "data": [True, False]},
        ],
    }
    assert bench.rest_outputs(answer) == {"anomaly_score": [0.1, 0.2], "alert": [True, False]}
    with pytest.raises(ValueError, match="not a V2 infer answer"):
        bench.rest_outputs({"error": "no model"})


WRK_OUTPUT = """Running 8s test @ http://127.0.0.1:8080/v2/models/m/infer
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    35.90ms   20.12ms 310.00ms   80.00%
    Req/Sec   700.10    100.20     1.00k    70.00%
  Latency Distribution
     50%  850.00us
     75%   40.00ms
     90%   60.00ms
     99%    1.34s
  11200 requests in 8.00s, 3.10MB read
  Socket errors: connect 0, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 4
Requests/sec:   1398.25
Transfer/sec:    390.00KB
"""


def test_parse_wrk_reads_rate_percentiles_in_their_units_and_errors():
    rps, p50, p99, errors = bench.parse_wrk(WRK_OUTPUT)
    assert rps == pytest.approx(1398.25)
    assert p50 == pytest.approx(0.85)  # us -> ms
    assert p99 == pytest.approx(1340.0)  # s -> ms
    assert errors == 2 + 3 + 4


def test_parse_wrk_refuses_output_without_figures():
    with pytest.raises(ValueError, match="Requests/sec"):
        bench.parse_wrk("unable to connect to 127.0.0.1:1 Connection refused")
    no_latency = WRK_OUTPUT.replace("Latency Distribution", "").replace("99%", "98%")
    with pytest.raises(ValueError, match="99% latency"):
        bench.parse_wrk(no_latency)


def test_has_grpc_port_reads_the_option_not_a_mention():
    assert bench.has_grpc_port("  --port INTEGER  ...\n  --grpc-port INTEGER  gRPC port\n")
    assert not bench.has_grpc_port("  --port INTEGER  Port to listen on\n  --grpc-portal X\n")


def test_ratios_judge_the_issue_targets():
    R = bench.Result
    results = [
        R(bench.OURS, bench.REST, 1, 12_000, 5.0, 14.0, 0),
        R(bench.PEER, bench.REST, 1, 1_100, 40.0, 146.0, 0),
        R(bench.OURS, bench.REST, 100, 900, 60.0, 180.0, 0),
        R(bench.PEER, bench.REST, 100, 640, 70.0, 200.0, 0),
    ]
    text = bench.ratios(results)
    assert "REST, 1 row: 10.9x MLServer's requests/s" in text
    assert "lower p99: **met**" in text
    assert "REST, 100 rows: 1.4x MLServer's rows/s; target >= 10x: **missed**" in text
    assert "gRPC" not in text  # nothing measured over gRPC
    slow_tail = [R(bench.OURS, bench.REST, 1, 12_000, 5.0, 150.0, 0), results[1]]
    assert "**missed**" in bench.ratios(slow_tail)
    # gRPC's figures stand beside REST's: the targets are REST's.
    grpc = [
        R(bench.OURS, bench.GRPC, 1, 1_300, 40.0, 120.0, 0),
        R(bench.PEER, bench.GRPC, 1, 1_000, 60.0, 130.0, 0),
    ]
    text = bench.ratios(grpc)
    assert "- gRPC, 1 row: 1.3x MLServer's requests/s, p99 120.0 ms vs 130.0 ms" in text
    assert "target" not in text


def test_write_docs_appends_once_then_replaces_between_its_marks(tmp_path):
    doc = tmp_path / "performance.md"
    doc.write_text("# Performance\n\ntext\n")
    bench.write_docs("## V2 versus MLServer\n\nfirst\n", doc)
    bench.write_docs("## V2 versus MLServer\n\nsecond\n", doc)
    text = doc.read_text()
    assert text.startswith("# Performance\n\ntext\n\n" + bench.BEGIN)
    assert "second" in text and "first" not in text
    assert text.count(bench.BEGIN) == 1 and text.rstrip().endswith(bench.END)


def test_the_mlserver_model_settings_are_the_ones_the_docs_state():
    settings = json.loads(
        (bench.MLSERVER_DIR / "firewall-anomaly" / "model-settings.json").read_text()
    )
    assert settings["name"] == bench.MODEL
    assert (settings["max_batch_size"], settings["max_batch_time"]) == (64, 0.005)
    module, cls = settings["implementation"].rsplit(".", 1)
    runtime = (bench.MLSERVER_DIR / "firewall-anomaly" / f"{module}.py").read_text()
    assert f"class {cls}(MLModel)" in runtime
    server = json.loads((bench.MLSERVER_DIR / "settings.json").read_text())
    assert server["host"] == "127.0.0.1"
    assert server["parallel_workers"] == 1


# -- grpc_load.py --------------------------------------------------------------


def test_flat_keeps_row_major_order():
    assert grpc_load.flat([[1, 2, [3]], [], [[4], 5]]) == [1, 2, 3, 4, 5]
    assert grpc_load.flat(7) == [7]


def test_tensors_of_checks_values_against_shape():
    body = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [2, 2], "data": [1, 2, 3, 4]}]}
    assert grpc_load.tensors_of(body) == [("x", "FP64", [2, 2], [1, 2, 3, 4])]
    body["inputs"][0]["shape"] = [2, 3]
    with pytest.raises(ValueError, match=r"shape \[2, 3\] but 4 values"):
        grpc_load.tensors_of(body)
    body["inputs"][0]["datatype"] = "FP8"
    with pytest.raises(ValueError, match="unknown datatype 'FP8'"):
        grpc_load.tensors_of(body)
    with pytest.raises(ValueError, match="no"):
        grpc_load.tensors_of({"inputs": []})


def test_percentile_is_the_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert grpc_load.percentile(values, 50) == 50.0
    assert grpc_load.percentile(values, 99) == 99.0
    assert grpc_load.percentile(values, 100) == 100.0
    assert grpc_load.percentile([3.0], 99) == 3.0
    assert grpc_load.percentile([1.0, 2.0, 3.0], 50) == 2.0


def _tensor(name, datatype, **contents):
    return SimpleNamespace(name=name, datatype=datatype, contents=SimpleNamespace(**contents))


def test_outputs_of_reads_typed_and_raw_contents():
    typed = SimpleNamespace(
        raw_output_contents=[],
        outputs=[
            _tensor("anomaly_score", "FP64", fp64_contents=[0.5, 0.25]),
            _tensor("alert", "BOOL", bool_contents=[True, False]),
        ],
    )
    want = {"anomaly_score": [0.5, 0.25], "alert": [True, False]}
    assert grpc_load.outputs_of(typed) == want
    raw = SimpleNamespace(
        raw_output_contents=[
            np.array([0.5, 0.25], "<f8").tobytes(),
            np.array([True, False]).tobytes(),
        ],
        outputs=[_tensor("anomaly_score", "FP64"), _tensor("alert", "BOOL")],
    )
    assert grpc_load.outputs_of(raw) == want


def test_free_ports_are_distinct():
    ports = bench.free_ports(3)
    assert len(set(ports)) == 3 and all(p > 0 for p in ports)
