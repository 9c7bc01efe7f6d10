"""Review of `packflow serve` with several models and of the V2 route's newest
checks: each test reproduces one finding (it fails on the code it reviews)."""

from __future__ import annotations

import subprocess
import sys

import httpx
import numpy as np
import pytest

from tests.serving.harness import ECHO_BACKEND, EXAMPLE, ServerProcess, metric_samples
from tests.support.sample_projects import write_project

FIREWALL = "firewall-anomaly"

# ready() asks something outside the process (a feature store, a GPU) and
# raises when it cannot: the server should say "not ready", not hang up.
RAISING_READY_BACKEND = """
from packflow import InferenceBackend


class Backend(InferenceBackend):
    def ready(self):
        raise RuntimeError("the feature store is unreachable")

    def execute(self, inputs):
        return inputs
"""

# Answers with the value its packflow.yaml `env` gave REGION.
ENV_BACKEND = """
import os

from packflow import InferenceBackend


class Backend(InferenceBackend):
    def execute(self, inputs):
        return [{"region": os.environ.get("REGION")} for _ in inputs]
"""

# initialize() leaves a line in `marker`: whether the backend was loaded.
MARKING_BACKEND = """
from packflow import BackendConfig, InferenceBackend


class Config(BackendConfig):
    marker: str = ""


class Backend(InferenceBackend):
    backend_config_model = Config

    def initialize(self):
        with open(self.config.marker, "a") as f:
            f.write("initialized\\n")

    def execute(self, inputs):
        return inputs
"""


def _serve(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "packflow.cli", "serve", *args, "--port", "0"],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def echo(tmp_path_factory):
    root = tmp_path_factory.mktemp("review-multi")
    return write_project(root / "echo", name="echo", backend=ECHO_BACKEND, backend_config=None)


# -- one model's failure or load leaking into the server / another model ----------


@pytest.mark.parametrize("path", ["/readyz", "/v2/health/ready", "/metrics"])
def test_a_backend_whose_ready_raises_gets_an_answer(tmp_path, echo, path):
    """A backend's ready() that raises escapes MultiModelApp.respond (the
    server routes are outside PackflowApp.respond's try): the connection is
    dropped with no answer. A single PackflowApp answered 500 here, and
    `packflow serve` now always runs a MultiModelApp, one project or several."""
    flaky = write_project(
        tmp_path / "flaky", name="flaky", backend=RAISING_READY_BACKEND, backend_config=None
    )
    with ServerProcess(flaky, str(echo)) as server:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            got = http.get(path)  # observed: httpx.RemoteProtocolError (no answer)
            if path == "/metrics":
                # Still served, the model counted as not ready.
                assert got.status_code == 200
                samples = metric_samples(got.text, keep_model=True)
                assert samples[("packflow_ready", frozenset({("model", "flaky")}))] == 0
                assert samples[("packflow_ready", frozenset({("model", "echo")}))] == 1
            elif path == "/readyz":
                assert got.status_code == 503
                assert "model 'flaky' is not ready: its backend's ready() raised" in got.text
            else:
                assert (got.status_code, got.json()) == (503, {"ready": False})
            # The server itself is fine: the other model answers.
            rows = [{"id": 1, "x": 2}]
            assert http.post("/v1/models/echo:predict", json={"instances": rows}).status_code == 200


def test_one_project_env_does_not_change_another_s(tmp_path):
    """packflow.yaml's `env` of a project directory stays in os.environ for the
    life of the process, so the project loaded second overwrites the first's
    variable of the same name (a warning in the log only): model `eu` then
    answers with `us`'s setting. Expected: the second project refused at start
    (exit 2, naming both projects and the variable), or each model's env kept
    apart."""
    eu = write_project(
        tmp_path / "eu", name="eu", backend=ENV_BACKEND, backend_config=None, env={"REGION": "eu"}
    )
    us = write_project(
        tmp_path / "us", name="us", backend=ENV_BACKEND, backend_config=None, env={"REGION": "us"}
    )
    try:
        server = ServerProcess(eu, str(us))
    except AssertionError as exc:  # refused at start: what is expected
        assert "REGION" in str(exc)
        return
    with server:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            got = http.post("/v1/models/eu:predict", json={"instances": [{"a": 1}]})
            assert got.json() == {"predictions": [{"region": "eu"}]}  # observed: "us"


def test_two_projects_of_one_name_are_refused_before_either_loads(tmp_path):
    """docs/serving.md: two projects of one name are refused "before either
    loads, exit 2". The CLI checks the name only after loading each project,
    so both initialize() run (minutes for a large model) before the refusal."""
    marker = tmp_path / "marker"
    a = write_project(
        tmp_path / "a",
        name="twin",
        backend=MARKING_BACKEND,
        backend_config={"marker": str(marker)},
    )
    b = write_project(
        tmp_path / "b",
        name="twin",
        backend=MARKING_BACKEND,
        backend_config={"marker": str(marker)},
    )
    done = _serve(str(a), str(b))
    assert done.returncode == 2, done.stderr
    assert "both named 'twin'" in done.stderr
    assert not marker.exists(), f"initialize() ran {marker.read_text().count('init')} times"


# -- routing -----------------------------------------------------------------------


def test_invocations_naming_a_model_not_served_is_404_with_one_model(echo):
    """With one model /invocations ignores X-Packflow-Model: a client that names
    `churn` gets `echo`'s answer to churn's rows (a 200). The header is the
    client saying which model its rows are for; a name not served should be
    the same 404 as with several models."""
    with ServerProcess(echo) as server:
        got = httpx.post(
            f"{server.url}/invocations",
            json=[{"id": 1, "x": 2}],
            headers={"X-Packflow-Model": "churn"},
            timeout=10,
        )
        assert got.status_code == 404, got.text  # observed: 200 from echo
        assert "churn" in got.json()["error"]


def test_two_model_headers_that_disagree_are_refused(echo):
    """Two X-Packflow-Model fields: the first one wins, silently. A proxy that
    appends its own routing header to a client's would send the rows to the
    client's model. Expected: 400 when the values differ."""
    with ServerProcess(EXAMPLE, str(echo)) as server:
        got = httpx.post(
            f"{server.url}/invocations",
            json=[{"id": 1, "x": 2}],
            headers=[("X-Packflow-Model", "echo"), ("X-Packflow-Model", FIREWALL)],
            timeout=10,
        )
        assert got.status_code == 400, got.text  # observed: 200 from echo


def test_404_messages_are_bounded(echo):
    """The multi router shortens an unknown model's name to 100 characters, but
    a known model's V2 404s echo the whole path or version back (here 20,000
    characters): the answer is as large as the client's request line."""
    long = "v" * 20_000
    with ServerProcess(echo) as server:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            for path in (f"/v2/models/echo/versions/{long}/infer", f"/v2/models/echo/{long}"):
                got = http.post(path, json={"inputs": []})
                assert got.status_code == 404
                assert len(got.content) < 1000, (path[:40], len(got.content))


# -- V2: what the newest checks refuse wrongly ---------------------------------------


def test_fp32_max_written_as_its_shortest_text_is_accepted(echo):
    """FLT_MAX written as the shortest text that reads back as it in float32,
    `3.4028235e38` (what Go's encoding/json, serde_json and orjson write for a
    float32), is a little above FLT_MAX as a double and is refused as "out of
    the range of FP32", though it is exactly FLT_MAX in FP32. Only values that
    would round to infinity (>= 2**128 - 2**103) are out of range; likewise
    FP16 below 65520 rounds to 65504."""
    assert np.float32("3.4028235e38") == np.finfo(np.float32).max
    assert np.float16("65519") == np.finfo(np.float16).max
    body = (
        b'{"inputs":[{"name":"id","datatype":"INT64","shape":[2],"data":[1,2]},'
        b'{"name":"x","datatype":"FP32","shape":[2],"data":[3.4028235e38,-3.4028235e38]}]}'
    )
    with ServerProcess(echo) as server:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            got = http.post(
                "/v2/models/echo/infer",
                content=body,
                headers={"content-type": "application/json"},
            )
            assert got.status_code == 200, got.text  # observed: 400 out of the range of FP32
            body16 = body.replace(b"FP32", b"FP16").replace(b"3.4028235e38", b"65519")
            got = http.post(
                "/v2/models/echo/infer",
                content=body16,
                headers={"content-type": "application/json"},
            )
            assert got.status_code == 200, got.text


def test_a_large_v2_request_does_not_stall_every_model(echo):
    """parse_infer runs on the event loop: json.loads of the body, a Python
    pass over every value (_flatten, _check_values) and only then the check
    that a records model takes columns of shape [N] or [N, 1]. A 15 MiB body
    of shape [10000, 790] (refused in the end for its shape) holds the loop
    2-3 s, during which no model's request is answered, not even /healthz
    (/invocations with an 11 MiB body: 0.08 s). Expected: the shape refused
    from the tensor's head before any value is read, and the values read off
    the loop."""
    import threading
    import time

    n, k = 10_000, 790
    row = ",".join(["0"] * k)
    body = (
        f'{{"inputs":[{{"name":"x","datatype":"INT64","shape":[{n},{k}],"data":['
        + ",".join([row] * n)
        + "]}]}"
    ).encode()
    with ServerProcess(echo, str(EXAMPLE)) as server:
        waits: list[float] = []
        stop = threading.Event()

        def probe() -> None:
            with httpx.Client(base_url=server.url, timeout=30) as http:
                while not stop.is_set() and len(waits) < 2000:
                    began = time.perf_counter()
                    http.get("/healthz")
                    waits.append(time.perf_counter() - began)
                    time.sleep(0.01)

        thread = threading.Thread(target=probe)
        thread.start()
        try:
            time.sleep(0.2)
            got = httpx.post(
                f"{server.url}/v2/models/echo/infer",
                content=body,
                headers={"content-type": "application/json"},
                timeout=60,
            )
        finally:
            stop.set()
            thread.join(30)
        assert got.status_code == 400 and "[N, 1]" in got.text
        assert max(waits) < 1.0, f"/healthz waited {max(waits):.2f} s"  # observed: 2-3 s


def test_ragged_data_message_reads_well(echo):
    """A top-level array of the wrong length is reported "at datathe top"."""
    body = {"inputs": [{"name": "x", "datatype": "INT64", "shape": [2], "data": [[1, 2]]}]}
    with ServerProcess(echo) as server:
        got = httpx.post(f"{server.url}/v2/models/echo/infer", json=body, timeout=10)
        assert got.status_code == 400
        assert "datathe" not in got.json()["error"], got.json()["error"]


HELPER_BACKEND = """
from helpers import label

from packflow import InferenceBackend


class Backend(InferenceBackend):
    def execute(self, inputs):
        return [{"label": label()} for _ in inputs]
"""


def test_two_projects_with_a_module_of_one_name_are_refused_saying_why(tmp_path):
    """Two projects that each import their own helpers.py cannot share a
    process (Python keeps one module per name): the second is refused, exit
    1, naming the module and saying to serve them in separate processes (the
    limit is in docs/serving.md "Several models in one server")."""
    projects = []
    for name in ("left", "right"):
        project = write_project(
            tmp_path / name, name=name, backend=HELPER_BACKEND, backend_config=None
        )
        (project / "helpers.py").write_text(f"def label():\n    return {name!r}\n")
        projects.append(project)
    done = _serve(str(projects[0]), str(projects[1]))
    assert done.returncode == 1
    assert "'helpers'" in done.stderr and "separate processes" in done.stderr
    assert done.stderr.count("Error:") == 1
