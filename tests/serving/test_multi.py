"""Several projects in one `packflow serve`: each under its own name on every
route, each with its own queue, ready and metrics apart; `/invocations` with
several models takes the model from a header."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from packflow import InferenceBackend
from packflow.loaders import InferenceBackendLoader
from packflow.serving import MultiModelApp, create_app
from tests.serving.harness import (
    ECHO_BACKEND,
    EXAMPLE,
    ServerProcess,
    echo_expected,
    firewall_events,
    metric_samples,
)
from tests.serving.test_v2 import NOT_READY_BACKEND, feature_matrix
from tests.support.sample_projects import write_project

FIREWALL = "firewall-anomaly"


@pytest.fixture(scope="module")
def projects(tmp_path_factory):
    root = tmp_path_factory.mktemp("multi")
    echo = write_project(root / "echo", name="echo", backend=ECHO_BACKEND, backend_config=None)
    slow = write_project(
        root / "slow", name="slow", backend=ECHO_BACKEND, backend_config={"delay_s": 0.4}
    )
    waiting = write_project(
        root / "waiting", name="waiting", backend=NOT_READY_BACKEND, backend_config=None
    )
    twin = write_project(root / "twin", name="echo", backend=ECHO_BACKEND, backend_config=None)
    return {"echo": echo, "slow": slow, "waiting": waiting, "twin": twin}


@pytest.fixture(scope="module")
def two_models(projects):
    with ServerProcess(EXAMPLE, projects["echo"], "--max-wait-ms", "5") as server:
        yield server


def test_listening_line_names_every_model(two_models):
    assert f"models '{FIREWALL}', 'echo'" in two_models.listening_line


def test_each_model_answers_on_its_routes(two_models):
    events = firewall_events(30, seed=4)
    firewall = InferenceBackendLoader.from_project(EXAMPLE)
    expected = firewall(events)
    rows = [{"id": i, "x": i * 1.5} for i in range(20)]
    with httpx.Client(base_url=two_models.url, timeout=10) as http:
        assert http.get("/v1/models").json() == {"models": [FIREWALL, "echo"]}
        assert http.get("/v1/models/echo").json() == {"name": "echo", "ready": True}
        got = http.post("/v1/models/echo:predict", json={"instances": rows})
        assert got.json() == {"predictions": echo_expected(rows)}
        got = http.post(f"/v1/models/{FIREWALL}:predict", json={"instances": events})
        assert got.json() == {"predictions": expected}
        meta = http.get("/v2/models/echo").json()
        assert meta["name"] == "echo" and meta["inputs"][0]["name"] == "records"
        assert http.get(f"/v2/models/{FIREWALL}").json()["name"] == FIREWALL
    client = triton.InferenceServerClient(url=f"127.0.0.1:{two_models.port}")
    try:
        assert client.is_model_ready("echo") and client.is_model_ready(FIREWALL)
        assert client.get_server_metadata()["name"] == "packflow"
        t = triton.InferInput("features", [30, 9], "FP64")
        t.set_data_from_numpy(feature_matrix(events))
        result = client.infer(FIREWALL, [t])
        np.testing.assert_allclose(
            result.as_numpy("anomaly_score"), [r["anomaly_score"] for r in expected]
        )
        ids = triton.InferInput("id", [20], "INT64")
        ids.set_data_from_numpy(np.arange(20, dtype=np.int64))
        xs = triton.InferInput("x", [20], "FP64")
        xs.set_data_from_numpy(np.array([r["x"] for r in rows]))
        result = client.infer("echo", [ids, xs])
        np.testing.assert_array_equal(result.as_numpy("double"), [r["x"] * 2 for r in rows])
    finally:
        client.close()


def test_invocations_takes_the_model_from_a_header(two_models):
    rows = [{"id": 1, "x": 2.0}, {"id": 2, "x": 3.5}]
    with httpx.Client(base_url=two_models.url, timeout=10) as http:
        refused = http.post("/invocations", json=rows)
        assert refused.status_code == 400
        message = refused.json()["error"]
        assert "X-Packflow-Model" in message and "'echo'" in message and FIREWALL in message
        got = http.post("/invocations", json=rows, headers={"X-Packflow-Model": "echo"})
        assert got.status_code == 200 and got.json() == echo_expected(rows)
        unknown = http.post("/invocations", json=rows, headers={"X-Packflow-Model": "nope"})
        assert unknown.status_code == 404
        assert "no model named 'nope'" in unknown.json()["error"]


def test_unknown_models_are_404_everywhere(two_models):
    with httpx.Client(base_url=two_models.url, timeout=10) as http:
        for method, path in (
            ("GET", "/v1/models/nope"),
            ("POST", "/v1/models/nope:predict"),
            ("GET", "/v2/models/nope"),
            ("GET", "/v2/models/nope/ready"),
            ("POST", "/v2/models/nope/infer"),
            ("POST", "/v2/models/nope/versions/1/infer"),
        ):
            answer = http.request(method, path, content=b"{}")
            assert answer.status_code == 404, path
            assert "no model named 'nope'" in answer.json()["error"], path
            assert "'echo'" in answer.json()["error"], path


def test_metrics_are_labelled_by_model(two_models):
    with httpx.Client(base_url=two_models.url, timeout=10) as http:
        http.post("/v1/models/echo:predict", json={"instances": [{"id": 1, "x": 1}]})
        http.get("/healthz")
        text = http.get("/metrics").text
    samples = metric_samples(text, keep_model=True)
    for name in ("echo", FIREWALL):
        assert ("packflow_queue_rows", frozenset({("model", name)})) in samples
        assert ("packflow_ready", frozenset({("model", name)})) in samples
        assert ("packflow_rows_received_total", frozenset({("model", name)})) in samples
    predicted = frozenset(
        {("model", "echo"), ("endpoint", "/v1/models/{name}:predict"), ("code", "200")}
    )
    assert samples[("packflow_requests_total", predicted)] >= 1
    # The server's own routes belong to no model.
    healthz = frozenset({("endpoint", "/healthz"), ("code", "200")})
    assert samples[("packflow_requests_total", healthz)] >= 1
    assert ("packflow_connections", frozenset()) in samples
    # Every family is declared once.
    types = [line for line in text.splitlines() if line.startswith("# TYPE ")]
    assert len(types) == len(set(types))


def test_a_full_queue_of_one_model_leaves_the_other_answering(projects):
    with ServerProcess(
        projects["slow"], projects["echo"], "--max-queue-rows", "4", "--max-batch-rows", "1"
    ) as server:
        statuses: list[int] = []

        def flood() -> None:
            with httpx.Client(base_url=server.url, timeout=30) as http:
                answer = http.post(
                    "/v1/models/slow:predict", json={"instances": [{"id": 0, "x": 1}]}
                )
                statuses.append(answer.status_code)

        threads = [threading.Thread(target=flood) for _ in range(8)]
        for t in threads:
            t.start()
        try:
            with httpx.Client(base_url=server.url, timeout=10) as http:
                # Wait until the slow model's queue has refused someone.
                for _ in range(100):
                    if 503 in statuses:
                        break
                    threading.Event().wait(0.05)
                assert 503 in statuses
                answer = http.post(
                    "/v1/models/echo:predict", json={"instances": [{"id": 5, "x": 2}]}
                )
                assert answer.status_code == 200
                assert answer.json() == {"predictions": [{"id": 5, "double": 4}]}
        finally:
            for t in threads:
                t.join(30)
        assert statuses.count(200) >= 4


def test_ready_only_when_every_model_is(projects):
    with ServerProcess(projects["echo"], projects["waiting"]) as server:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            readyz = http.get("/readyz")
            assert readyz.status_code == 503 and "'waiting'" in readyz.json()["error"]
            assert http.get("/v2/health/ready").json() == {"ready": False}
            assert http.get("/v2/models/echo/ready").json() == {"ready": True}
            assert http.get("/v2/models/waiting/ready").status_code == 503
            assert http.get("/v2/health/live").json() == {"live": True}


def test_two_projects_of_one_name_are_refused(projects):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "packflow.cli",
            "serve",
            str(projects["echo"]),
            str(projects["twin"]),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "both named 'echo'" in done.stderr


def test_multi_model_app_refuses_no_models_and_twins():
    with pytest.raises(ValueError, match="at least one model"):
        MultiModelApp([])
    apps = [create_app(_Passthrough(), name="a"), create_app(_Passthrough(), name="a")]
    with pytest.raises(ValueError, match="two models are named 'a'"):
        MultiModelApp(apps)


class _Passthrough(InferenceBackend):
    def execute(self, inputs):
        return inputs


def test_grpc_serves_every_model(projects):
    import tritonclient.grpc as triton_grpc

    events = firewall_events(12, seed=21)
    expected = InferenceBackendLoader.from_project(EXAMPLE)(events)
    with ServerProcess(EXAMPLE, projects["echo"], "--grpc-port", "0") as server:
        assert server.grpc_target is not None
        client = triton_grpc.InferenceServerClient(url=server.grpc_target)
        try:
            assert client.is_server_ready()
            assert client.is_model_ready(FIREWALL) and client.is_model_ready("echo")
            t = triton_grpc.InferInput("features", [12, 9], "FP64")
            t.set_data_from_numpy(feature_matrix(events))
            result = client.infer(FIREWALL, [t])
            np.testing.assert_allclose(
                result.as_numpy("anomaly_score"), [r["anomaly_score"] for r in expected]
            )
            ids = triton_grpc.InferInput("id", [3], "INT64")
            ids.set_data_from_numpy(np.arange(3, dtype=np.int64))
            xs = triton_grpc.InferInput("x", [3], "FP64")
            xs.set_data_from_numpy(np.array([0.5, 1.5, 2.5]))
            result = client.infer("echo", [ids, xs])
            np.testing.assert_array_equal(result.as_numpy("double"), [1.0, 3.0, 5.0])
            with pytest.raises(InferenceServerException, match="no model named 'nope'"):
                client.infer("nope", [ids, xs])
            with pytest.raises(InferenceServerException, match="has no version '9'"):
                client.infer("echo", [ids, xs], model_version="9")
        finally:
            client.close()
        samples = metric_samples(
            httpx.get(f"{server.url}/metrics", timeout=10).text, keep_model=True
        )
    # Counted as REST counts them: the unknown model by the server, the
    # unknown version by its model.
    infer_404 = {("endpoint", "/inference.GRPCInferenceService/ModelInfer"), ("code", "404")}
    assert samples[("packflow_requests_total", frozenset(infer_404))] == 1
    assert samples[("packflow_requests_total", frozenset(infer_404 | {("model", "echo")}))] == 1


def _asgi(app, scope: dict, messages: list[dict]) -> list[dict]:
    """``app`` called as an ASGI 3 app with ``messages`` to receive; what it sent."""
    import asyncio

    sent: list[dict] = []
    inbox = list(messages)

    async def receive() -> dict:
        if inbox:
            return inbox.pop(0)
        await asyncio.sleep(3600)  # nothing more: as a server waits
        return {}

    async def send(message: dict) -> None:
        sent.append(message)

    async def main() -> None:
        await app(scope, receive, send)

    asyncio.run(main())
    return sent


@pytest.mark.parametrize("several", [False, True])
def test_both_apps_answer_over_asgi_and_close_on_the_lifespan_shutdown(several):
    apps = [create_app(_Passthrough(), name="a"), create_app(_Passthrough(), name="b")]
    app = MultiModelApp(apps) if several else apps[0]
    headers = [(b"content-type", b"application/json")]
    if several:
        headers.append((b"x-packflow-model", b"b"))
    scope = {"type": "http", "method": "POST", "path": "/invocations", "headers": headers}
    body = {"type": "http.request", "body": b'[{"x": 1}, {"x": 2}]', "more_body": False}

    import asyncio

    async def request_then_shutdown() -> list[dict]:
        sent: list[dict] = []

        async def send(message: dict) -> None:
            sent.append(message)

        inbox = [body]

        async def receive() -> dict:
            if inbox:
                return inbox.pop(0)
            await asyncio.sleep(3600)
            return {}

        await app(scope, receive, send)
        life = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]

        async def life_receive() -> dict:
            return life.pop(0)

        await app({"type": "lifespan"}, life_receive, send)
        return sent

    sent = asyncio.run(request_then_shutdown())
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
    assert json.loads(sent[1]["body"]) == [{"x": 1}, {"x": 2}]
    assert [m["type"] for m in sent[2:]] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]
    assert all(a.draining for a in (apps if several else apps[:1]))
    # A server route answers over ASGI too.
    sent = _asgi(app, {"type": "http", "method": "GET", "path": "/healthz", "headers": []}, [])
    assert sent[0]["status"] == 200
