"""Every endpoint of a real `packflow serve` process, through a real client."""

from __future__ import annotations

import asyncio
import json
import random

import httpx
import pytest

from packflow.loaders import InferenceBackendLoader
from tests.serving.harness import (
    EXAMPLE,
    batch_count,
    echo_expected,
    firewall_events,
    metric_samples,
)

JSONL = {"content-type": "application/jsonlines"}


@pytest.fixture(scope="module")
def example_backend():
    return InferenceBackendLoader.from_project(EXAMPLE)


def test_outputs_equal_calling_the_backend(example_server, example_backend):
    records = firewall_events(30)
    lines = [json.dumps(r).encode() + b"\n" for r in records]
    expected = json.loads(json.dumps(example_backend(records)))
    url = example_server.url
    with httpx.Client(timeout=10) as client:
        one = client.post(f"{url}/invocations", json=records[0])
        assert one.status_code == 200
        assert one.headers["content-type"] == "application/json"
        assert one.json() == expected[0]

        many = client.post(f"{url}/invocations", json=records)
        assert many.status_code == 200
        assert many.json() == expected

        body = b"".join(lines)
        jl = client.post(f"{url}/invocations", content=body, headers=JSONL)
        assert jl.status_code == 200
        assert jl.headers["content-type"] == "application/jsonlines"
        assert [json.loads(x) for x in jl.text.splitlines()] == expected

        kserve = client.post(
            f"{url}/v1/models/firewall-anomaly:predict", json={"instances": records}
        )
        assert kserve.status_code == 200
        assert kserve.json() == {"predictions": expected}


def test_shapes_of_the_echo_backend(echo_server):
    url = echo_server.url
    with httpx.Client(timeout=10) as client:
        assert client.post(f"{url}/invocations", json={"id": 1, "x": 2}).json() == {
            "id": 1,
            "double": 4,
        }
        assert client.post(f"{url}/invocations", json=[]).json() == []
        # A pretty-printed body spans lines; x-ndjson is JSON Lines too.
        pretty = json.dumps([{"id": 1, "x": 1}, {"id": 2, "x": 2}], indent=2)
        assert client.post(
            f"{url}/invocations", content=pretty, headers={"content-type": "application/json"}
        ).json() == echo_expected([{"id": 1, "x": 1}, {"id": 2, "x": 2}])
        nd = client.post(
            f"{url}/invocations",
            content=b'{"id": 1, "x": 1}\n{"id": 2, "x": 2}',
            headers={"content-type": "application/x-ndjson"},
        )
        assert nd.headers["content-type"] == "application/x-ndjson"
        assert nd.text == '{"id":1,"double":2}\n{"id":2,"double":4}\n'
        # A blank line would get no output line: refused, naming it.
        blank = client.post(
            f"{url}/invocations",
            content=b'{"id": 1, "x": 1}\n\n{"id": 2, "x": 2}',
            headers={"content-type": "application/x-ndjson"},
        )
        assert blank.status_code == 400
        assert "line 2 is blank" in blank.json()["error"]
        predict = client.post(f"{url}/v1/models/echo:predict", json={"instances": []})
        assert predict.json() == {"predictions": []}


def test_concurrent_requests_share_batches_and_keep_their_order(echo_server):
    rng = random.Random(7)
    requests = []
    next_id = 0
    for _ in range(40):
        rows = []
        for _ in range(rng.randint(1, 5)):
            rows.append({"id": next_id, "x": rng.randint(-1000, 1000)})
            next_id += 1
        requests.append(rows)

    async def send_all():
        async with httpx.AsyncClient(timeout=15) as client:
            return await asyncio.gather(
                *(client.post(f"{echo_server.url}/invocations", json=rows) for rows in requests)
            )

    with httpx.Client(timeout=10) as client:
        before = batch_count(client, echo_server.url)
        answers = asyncio.run(send_all())
        after = batch_count(client, echo_server.url)
    for rows, answer in zip(requests, answers):
        assert answer.status_code == 200, answer.text
        assert answer.json() == echo_expected(rows)
    assert 1 <= after - before < len(requests) / 2


def test_a_request_larger_than_a_batch_is_split(echo_project):
    from tests.serving.harness import ServerProcess

    rows = [{"id": i, "x": i} for i in range(19)]
    with ServerProcess(echo_project, "--max-batch-rows", "4", "--max-wait-ms", "1") as server:
        with httpx.Client(timeout=10) as client:
            answer = client.post(f"{server.url}/invocations", json=rows)
            assert answer.status_code == 200
            assert answer.json() == echo_expected(rows)
            assert batch_count(client, server.url) == 5  # 4 + 4 + 4 + 4 + 3
            samples = metric_samples(client.get(f"{server.url}/metrics").text)
            assert samples[("packflow_batch_rows_bucket", frozenset({("le", "4")}))] == 5


def test_a_failing_row_fails_only_its_own_request(echo_server):
    requests = [[{"id": 10 * i + j, "x": j} for j in range(4)] for i in range(8)]
    requests[3][2]["fail"] = True

    async def send_all():
        async with httpx.AsyncClient(timeout=15) as client:
            return await asyncio.gather(
                *(client.post(f"{echo_server.url}/invocations", json=rows) for rows in requests)
            )

    with httpx.Client(timeout=10) as client:
        before = batch_count(client, echo_server.url)
        answers = asyncio.run(send_all())
        after = batch_count(client, echo_server.url)
    for i, (rows, answer) in enumerate(zip(requests, answers)):
        if i == 3:
            assert answer.status_code == 422
            body = answer.json()
            assert body["row"] == 2
            assert body["step"] == "execute"
            assert body["error_type"] == "ValueError"
            # The exception's text stays in the server's log.
            assert "row 32 refused" not in answer.text
            assert answer.headers["x-request-id"] == body["request_id"]
        else:
            assert answer.status_code == 200, answer.text
            assert answer.json() == echo_expected(rows)
    # The failing request shared its batch with others.
    assert after - before < len(requests)


def test_a_failing_json_lines_row_names_its_line(echo_server):
    body = b'{"id": 1, "x": 1}\n{"id": 2, "x": 2, "fail": true}\n'
    answer = httpx.post(f"{echo_server.url}/invocations", content=body, headers=JSONL)
    assert answer.status_code == 422
    assert answer.json()["row"] == 1
    assert answer.json()["line"] == 2


@pytest.mark.parametrize(
    ("body", "headers", "says"),
    [
        (b'[{"id": 1,\n  "x": }]', {}, "line 2: invalid JSON at column 8: expected a value"),
        # A bad item among good ones: read by the engine (the body is parsed
        # once), answered with the document's own error all the same.
        (
            b'[{"id": 1, "x": 1},\n {"id": 2, "x": tru},\n {"id": 3, "x": 3}]',
            {},
            "line 2: invalid JSON at column 17: expected a value",
        ),
        (b'{"id": 1', {}, "line 1: invalid JSON at column 9"),
        (b"[1, 2]", {}, "item 0 of the array is a number, not a JSON object"),
        (b'"text"', {}, "the body is a string, not a JSON object or an array of objects"),
        (b"", {}, "the body is empty"),
        (b'{"id": 1, "x": 1}\n{"id": 2,\n', JSONL, "line 2: invalid JSON at column 10"),
        (b'{"id": 1, "x": 1}\n[1]\n', JSONL, "line 2: not a JSON object: array"),
    ],
)
def test_bad_bodies_are_400_naming_where(echo_server, body, headers, says):
    headers = {"content-type": "application/json", **headers}
    answer = httpx.post(f"{echo_server.url}/invocations", content=body, headers=headers)
    assert answer.status_code == 400
    assert says in answer.json()["error"]


def test_kserve_routes(echo_server):
    url = echo_server.url
    with httpx.Client(timeout=10) as client:
        assert client.get(f"{url}/v1/models/echo").json() == {"name": "echo", "ready": True}
        assert client.get(f"{url}/v1/models").json() == {"models": ["echo"]}
        bad = client.post(f"{url}/v1/models/echo:predict", json={"inputs": [{"id": 1}]})
        assert bad.status_code == 400
        assert 'no "instances" member' in bad.json()["error"]
        other = client.post(f"{url}/v1/models/other:predict", json={"instances": []})
        assert other.status_code == 404
        assert "no model named 'other'" in other.json()["error"]


def test_unknown_paths_methods_and_media_types(echo_server):
    url = echo_server.url
    with httpx.Client(timeout=10) as client:
        assert client.get(f"{url}/nope").status_code == 404
        wrong = client.get(f"{url}/invocations")
        assert wrong.status_code == 405
        assert wrong.headers["allow"] == "POST"
        assert client.post(f"{url}/healthz").status_code == 405
        assert client.get(f"{url}/v1/models/echo:predict").status_code == 405


# -- the Content-Type rule, the same on every route (docs/serving.md) -------------

# (Content-Type header or None, how /invocations reads the body or its status)
CONTENT_TYPES = [
    (None, "json"),
    ("application/json", "json"),
    ("application/json; charset=utf-8", "json"),
    ("application/vnd.api+json", "json"),
    ("application/jsonlines", "lines"),
    ("application/x-ndjson", "lines"),
    ("text/plain", "json"),
    ("text/plain; charset=utf-8", "json"),
    ("application/x-www-form-urlencoded", "json"),  # what curl -d sends
    ("multipart/form-data; boundary=xyz", 415),
    ("application/octet-stream", 415),
    ("image/png", 415),
    ("text/csv", 415),
]
ROWS = [{"id": 1, "x": 2}, {"id": 2, "x": 3}]
ROWS_JSON = json.dumps(ROWS).encode()
ROWS_LINES = b"".join(json.dumps(r).encode() + b"\n" for r in ROWS)
INSTANCES = json.dumps({"instances": ROWS}).encode()


def _headers(content_type):
    return {} if content_type is None else {"content-type": content_type}


def _check_invocations(status, headers, body, content_type, reads):
    if reads == 415:
        assert status == 415, body
        error = json.loads(body)["error"]
        assert error.startswith(f"unsupported Content-Type {content_type.split(';')[0]!r}")
        assert "application/json" in error
    elif reads == "lines":
        assert status == 200, body
        assert headers["content-type"] == content_type
        assert [json.loads(x) for x in body.splitlines()] == echo_expected(ROWS)
    else:
        assert status == 200, body
        assert headers["content-type"] == "application/json"
        assert json.loads(body) == echo_expected(ROWS)


def _check_predict(status, body, reads):
    if reads == 415:
        assert status == 415, body
        assert json.loads(body)["error"].startswith("unsupported Content-Type")
    else:
        # One JSON document on this route, whatever accepted type labels it.
        assert status == 200, body
        assert json.loads(body) == {"predictions": echo_expected(ROWS)}


@pytest.mark.parametrize(("content_type", "reads"), CONTENT_TYPES)
def test_each_content_type_on_each_route(echo_server, content_type, reads):
    url = echo_server.url
    headers = _headers(content_type)
    body = ROWS_LINES if reads == "lines" else ROWS_JSON
    with httpx.Client(timeout=10) as client:
        answer = client.post(f"{url}/invocations", content=body, headers=headers)
        assert answer.request.headers.get("content-type") == content_type
        _check_invocations(answer.status_code, answer.headers, answer.content, content_type, reads)
        answer = client.post(f"{url}/v1/models/echo:predict", content=INSTANCES, headers=headers)
        _check_predict(answer.status_code, answer.content, reads)


@pytest.mark.parametrize("content_type", [c for c, _ in CONTENT_TYPES])
@pytest.mark.parametrize("body", [b"", b"\n", b" \r\n\n"])
def test_an_empty_body_is_400_on_every_route_whatever_its_type(echo_server, content_type, body):
    url = echo_server.url
    with httpx.Client(timeout=10) as client:
        for path, says in (
            ("/invocations", "a JSON object or an array of objects, or JSON Lines"),
            ("/v1/models/echo:predict", '{"instances": [objects]}'),
        ):
            answer = client.post(f"{url}{path}", content=body, headers=_headers(content_type))
            assert answer.status_code == 400, (path, answer.text)
            assert answer.headers["content-type"] == "application/json"
            error = answer.json()["error"]
            assert error.startswith("the body is empty: send "), error
            assert says in error


def test_curl_as_a_user_types_it(echo_server):
    """``curl -d`` (form-encoded type) and ``--data-binary @file`` as the docs show
    them; a file that does not exist sends an empty body, which is a 400."""
    import shutil
    import subprocess

    if shutil.which("curl") is None:
        pytest.skip("no curl")

    def curl(*args):
        done = subprocess.run(
            ["curl", "-s", "-w", "\n%{http_code}", *args], capture_output=True, timeout=30
        )
        body, _, code = done.stdout.rpartition(b"\n")
        return int(code), body

    url = echo_server.url
    code, body = curl(f"{url}/invocations", "-d", '{"id": 1, "x": 2}')
    assert (code, json.loads(body)) == (200, {"id": 1, "double": 4})
    code, body = curl(f"{url}/v1/models/echo:predict", "-d", '{"instances": [{"id": 1, "x": 2}]}')
    assert (code, json.loads(body)) == (200, {"predictions": [{"id": 1, "double": 4}]})
    code, body = curl(
        f"{url}/invocations",
        "-H",
        "Content-Type: application/jsonlines",
        "--data-binary",
        "@no-such-file.jsonl",
    )
    assert code == 400
    assert json.loads(body)["error"].startswith("the body is empty")


def test_json_lines_sent_as_json_says_which_type_to_send(echo_server):
    answer = httpx.post(f"{echo_server.url}/invocations", content=ROWS_LINES)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error.startswith("line 2: invalid JSON at column 1: extra data after the value")
    assert error.endswith("send Content-Type: application/jsonlines")


def test_health_and_readiness(echo_server):
    with httpx.Client(timeout=10) as client:
        assert client.get(f"{echo_server.url}/healthz").status_code == 200
        ready = client.get(f"{echo_server.url}/readyz")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ready"}


def test_metrics_parse_with_prometheus_client(echo_server):
    url = echo_server.url
    with httpx.Client(timeout=10) as client:
        client.post(f"{url}/invocations", json=[{"id": 1, "x": 1}, {"id": 2, "x": 2}])
        # A second successful batch (sequential requests): the count below must
        # not depend on what earlier tests sent to this shared server.
        client.post(f"{url}/invocations", json={"id": 4, "x": 4})
        client.post(f"{url}/invocations", json={"id": 3, "x": 1, "fail": True})
        client.get(f"{url}/nope")
        answer = client.get(f"{url}/metrics")
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    from prometheus_client.parser import text_string_to_metric_families

    families = {f.name: f for f in text_string_to_metric_families(answer.text)}
    assert families["packflow_step_seconds"].type == "histogram"
    assert families["packflow_requests"].type == "counter"
    assert families["packflow_batch_rows"].type == "histogram"
    assert families["packflow_queue_rows"].type == "gauge"
    samples = metric_samples(answer.text)
    execute_count = samples[("packflow_step_seconds_count", frozenset({("step", "execute")}))]
    assert execute_count >= 2
    inf = frozenset({("step", "execute"), ("le", "+Inf")})
    assert samples[("packflow_step_seconds_bucket", inf)] == execute_count

    def requests(endpoint, code):
        labels = frozenset({("endpoint", endpoint), ("code", code)})
        return samples[("packflow_requests_total", labels)]

    assert requests("/invocations", "200") >= 1
    assert requests("/invocations", "422") >= 1
    assert requests("other", "404") >= 1
    assert samples[("packflow_rows_failed_total", frozenset())] >= 1
    assert samples[("packflow_rows_output_total", frozenset())] >= 2
    assert samples[("packflow_rows_received_total", frozenset())] >= 3
    assert samples[("packflow_queue_rows", frozenset())] == 0


# -- create_app in process: an ASGI app any stack can mount ----------------------


class _AsgiClient:
    """A minimal ASGI client: one request through the app, the answer back."""

    def __init__(self, app):
        self.app = app

    async def request(self, method, path, body=b"", headers=()):
        sent = []
        delivered = False

        async def receive():
            nonlocal delivered
            if delivered:
                await asyncio.sleep(3600)
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message):
            sent.append(message)

        scope = {
            "type": "http",
            "method": method,
            "path": path,
            "headers": [(k.encode(), v.encode()) for k, v in headers],
        }
        await self.app(scope, receive, send)
        start, body_msg = sent
        return start["status"], dict(start["headers"]), body_msg["body"]


def test_create_app_in_process_drains_and_names_the_model():
    from packflow import InferenceBackend
    from packflow.serving import create_app

    class Scorer(InferenceBackend):
        def execute(self, inputs):
            return [{"n": r["n"] + 1} for r in inputs]

    app = create_app(Scorer(), max_wait_ms=0)
    client = _AsgiClient(app)

    async def main():
        answers = [await client.request("POST", "/invocations", b'[{"n": 1}, {"n": 2}]')]
        answers.append(await client.request("GET", "/v1/models/Scorer"))
        answers.append(await client.request("GET", "/readyz"))
        app.drain()
        answers.append(await client.request("GET", "/readyz"))
        answers.append(await client.request("GET", "/v1/models/Scorer"))
        # Draining still answers requests.
        answers.append(await client.request("POST", "/invocations", b'{"n": 5}'))
        await app.close()
        return answers

    invoked, model, ready, draining, model_draining, late = asyncio.run(main())
    assert invoked[0] == 200 and json.loads(invoked[2]) == [{"n": 2}, {"n": 3}]
    assert model[0] == 200 and json.loads(model[2]) == {"name": "Scorer", "ready": True}
    assert ready[0] == 200
    assert draining[0] == 503 and b"draining" in draining[2]
    assert model_draining[0] == 503 and json.loads(model_draining[2])["ready"] is False
    assert late[0] == 200 and json.loads(late[2]) == {"n": 6}


def _doubler_app(**options):
    from packflow.serving import create_app
    from tests.support.testkit import Doubler

    return create_app(Doubler(), name="echo", max_wait_ms=0, **options)


def test_the_content_type_rule_in_process():
    """The same rule as the server's, through the ASGI app alone."""
    app = _doubler_app()
    client = _AsgiClient(app)

    async def main():
        for content_type, reads in CONTENT_TYPES:
            headers = () if content_type is None else (("content-type", content_type),)
            body = ROWS_LINES if reads == "lines" else ROWS_JSON
            status, head, answer = await client.request("POST", "/invocations", body, headers)
            _check_invocations(
                status,
                {k.decode(): v.decode() for k, v in head.items()},
                answer,
                content_type,
                reads,
            )
            status, _, answer = await client.request(
                "POST", "/v1/models/echo:predict", INSTANCES, headers
            )
            _check_predict(status, answer, reads)
            for path in ("/invocations", "/v1/models/echo:predict"):
                for empty in (b"", b"\n\n"):
                    status, _, answer = await client.request("POST", path, empty, headers)
                    assert status == 400, (path, content_type, answer)
                    assert json.loads(answer)["error"].startswith("the body is empty: send ")
        await app.close()

    asyncio.run(main())


def test_a_body_over_the_limit_names_the_options_in_process():
    app = _doubler_app(max_body_bytes=64)
    client = _AsgiClient(app)

    async def main():
        answers = [await client.request("POST", "/invocations", b"[" + b" " * 100 + b"]")]
        answers.append(
            await client.request("POST", "/invocations", b"[]", (("content-length", "65"),))
        )
        await app.close()
        return answers

    for status, head, body in asyncio.run(main()):
        assert status == 413
        assert head[b"connection"] == b"close"
        error = json.loads(body)["error"]
        assert error.startswith("the body is larger than the limit of 64 bytes")
        assert "--max-body-mb" in error
        assert "max_body_bytes" in error
