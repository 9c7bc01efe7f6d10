"""The offload thread (``packflow.serving.offload``, ``_core.V2Offload``):
what it reads and writes is what ``_core.v2_read_request`` and
``_core.v2_write_answer`` give for the same input, each caller gets its own
result however many wait at once, and the thread's life follows the app's
and the loop's."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import random
import time
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from packflow import InferenceBackend, _core
from packflow.loaders import InferenceBackendLoader
from packflow.serving import create_app
from packflow.serving.offload import OFFLOAD_ANSWER_ROWS, OFFLOAD_BODY_BYTES, V2Offload
from packflow.serving.v2 import InferRequest, V2Error
from tests.serving.harness import EXAMPLE, firewall_events
from tests.serving.test_v2 import MODEL, expected_columns, feature_matrix
from tests.serving.test_v2_fast import APIS, binary_bodies, bodies, rows


def _comparable(value: Any) -> Any:
    """A read request with its feature cells as rows of (type, repr): the
    cells have no equality of their own."""
    if not isinstance(value, tuple):
        return value
    data = value[0]
    if isinstance(data, _core.FeatureRows):
        data = [[(type(v), repr(v)) for v in row] for row in data.to_rows()]
    return (data, *value[1:])


def _threads() -> list[str]:
    """The names of this process's offload threads."""
    names = []
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/comm") as f:
                name = f.read().strip()
        except OSError:  # the thread ended meanwhile
            continue
        if name.startswith("packflow-v2-off"):
            names.append(name)
    return names


def _wait_for_threads(count: int) -> list[str]:
    deadline = time.monotonic() + 10
    while len(threads := _threads()) != count and time.monotonic() < deadline:
        time.sleep(0.01)
    return threads


def _thread_ids() -> set[str]:
    """The ids of this process's offload threads."""
    ids = set()
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/comm") as f:
                if f.read().startswith("packflow-v2-off"):
                    ids.add(task)
        except OSError:  # the thread ended meanwhile
            continue
    return ids


def _started_since(before: set[str]) -> set[str]:
    """The offload threads started since ``before`` that are still running
    after up to 10 s (threads of earlier tests may end meanwhile)."""
    deadline = time.monotonic() + 10
    while (new := _thread_ids() - before) and time.monotonic() < deadline:
        time.sleep(0.01)
    return new


@pytest.fixture(scope="module")
def example_backend():
    return InferenceBackendLoader.from_project(EXAMPLE)


@pytest.fixture(scope="module")
def loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(scope="module")
def offload(loop):
    offload = V2Offload()
    yield offload
    offload.close()


@settings(max_examples=400, deadline=None)
@given(bodies())
def test_a_body_is_read_as_v2_read_request_reads_it(loop, offload, case) -> None:
    api_name, body = case
    plan = APIS[api_name].plan
    got = loop.run_until_complete(offload.read(plan, body))
    assert _comparable(got) == _comparable(_core.v2_read_request(plan, body))


def _outcome(parse: Any) -> tuple:
    """What a parse gave: its request (comparable), or its error's status
    and text (any other exception: its type and text, the same both ways)."""
    try:
        return ("request", _comparable(tuple(parse())))
    except V2Error as exc:
        return ("error", exc.status, str(exc))
    except Exception as exc:  # noqa: BLE001 - compared, not hidden
        return ("raised", type(exc).__name__, str(exc))


@settings(max_examples=300, deadline=None)
@given(bodies())
def test_a_large_body_gets_the_request_or_the_400_of_the_in_place_reading(
    loop, offload, case
) -> None:
    """Padded past the offload size, a body (valid or not) is read, or
    refused with the same words, as ``parse_infer`` reads it in place."""
    api_name, body = case
    api = APIS[api_name]
    body += b" " * max(0, OFFLOAD_BODY_BYTES - len(body))
    beside = _outcome(lambda: loop.run_until_complete(api.parse_infer_beside(body, None, offload)))
    assert beside == _outcome(lambda: api.parse_infer(body, None))


@settings(max_examples=300, deadline=None)
@given(
    rows,
    st.one_of(st.none(), st.lists(st.sampled_from(["score", "label", "a"]), max_size=3)),
    st.one_of(st.none(), st.text(max_size=8)),
    st.sampled_from(["1", None]),
)
def test_an_answer_is_written_as_v2_write_answer_writes_it(
    loop, offload, rows: list, names, request_id, version
) -> None:
    lines = [json.dumps(row).encode("utf-8", "surrogatepass") for row in rows]
    got = loop.run_until_complete(offload.write(lines, names, "m", version, request_id))
    assert got == _core.v2_write_answer(lines, names, "m", version, request_id)


def _tensor_body(n: int, seed: int) -> bytes:
    rng = random.Random(seed)
    data = [rng.uniform(-1e6, 1e6) for _ in range(n * 3)]
    return json.dumps(
        {
            "id": str(seed),
            "inputs": [{"name": "x", "datatype": "FP64", "shape": [n, 3], "data": data}],
        }
    ).encode()


def test_many_callers_at_once_each_get_their_own_result(loop, offload) -> None:
    plan = APIS["flat"].plan
    bodies = [_tensor_body(1 + i % 150, i) for i in range(300)]
    answers = [
        [
            b'{"score":%d,"label":%s}' % (j, b"true" if j % 2 else b"false")
            for j in range(1 + i % 90)
        ]
        for i in range(300)
    ]

    async def all_of_them() -> list:
        reads = [offload.read(plan, body) for body in bodies]
        writes = [offload.write(lines, None, "m", "1", str(i)) for i, lines in enumerate(answers)]
        mixed = reads + writes
        order = list(range(len(mixed)))
        random.Random(7).shuffle(order)
        results = await asyncio.gather(*(mixed[i] for i in order))
        back: list = [None] * len(mixed)
        for i, result in zip(order, results):
            back[i] = result
        return back

    results = loop.run_until_complete(all_of_them())
    for body, got in zip(bodies, results[: len(bodies)]):
        assert got is not None
        assert _comparable(got) == _comparable(_core.v2_read_request(plan, body))
    for i, (lines, got) in enumerate(zip(answers, results[len(bodies) :])):
        assert got is not None
        assert got == _core.v2_write_answer(lines, None, "m", "1", str(i))


def test_what_rust_leaves_to_python_comes_back_as_none(loop, offload) -> None:
    plan = APIS["flat"].plan
    bad = b'{"inputs":[{"name":"x","datatype":"INT8","shape":[1,3],"data":[1,2,300]}]}'
    assert loop.run_until_complete(offload.read(plan, bad)) is None
    # Over 4 MiB: refused before any copy, as v2_read_request refuses it.
    huge = _tensor_body(1, 1) + b" " * (4 << 20)
    assert loop.run_until_complete(offload.read(plan, huge)) is None
    # A line that is not JSON Rust writes; a line that is not bytes.
    assert loop.run_until_complete(offload.write([b"[1,"], None, "m", None, None)) is None
    assert loop.run_until_complete(offload.write(["{}"], None, "m", None, None)) is None
    assert loop.run_until_complete(offload.write([b"{}"], None, "\ud800", None, None)) is None


def test_a_cancelled_caller_does_not_stop_the_others(loop, offload) -> None:
    plan = APIS["flat"].plan
    body = _tensor_body(200, 3)

    async def go() -> Any:
        gone = asyncio.ensure_future(offload.read(plan, body))
        await asyncio.sleep(0)
        gone.cancel()
        return await offload.read(plan, body)

    assert _comparable(loop.run_until_complete(go())) == _comparable(
        _core.v2_read_request(plan, body)
    )


def test_the_thread_starts_on_first_use_and_ends_on_close() -> None:
    before = len(_threads())
    offload = V2Offload()
    assert len(_threads()) == before  # nothing yet
    plan = APIS["flat"].plan
    body = _tensor_body(10, 1)

    async def use() -> Any:
        return await offload.read(plan, body)

    loop = asyncio.new_event_loop()
    try:
        assert loop.run_until_complete(use()) is not None
        assert len(_threads()) == before + 1
        # Another loop: a thread of its own, the first one ended.
        other = asyncio.new_event_loop()
        try:
            assert other.run_until_complete(use()) is not None
            assert len(_wait_for_threads(before + 1)) == before + 1
        finally:
            offload.close()
            other.close()
        assert len(_wait_for_threads(before)) == before
        # Used again after close: a new thread.
        assert loop.run_until_complete(use()) is not None
        assert len(_threads()) == before + 1
    finally:
        offload.close()
        loop.close()
    assert len(_wait_for_threads(before)) == before


def test_close_hands_the_callers_still_waiting_their_work_back() -> None:
    """A caller waiting when the thread is closed gets ``None`` (it reads
    for itself), never a cancellation: the app answers what it still holds."""
    offload = V2Offload()
    plan = APIS["flat"].plan
    body = _tensor_body(2000, 5)

    async def go() -> list:
        waiting = [asyncio.ensure_future(offload.read(plan, body)) for _ in range(20)]
        await asyncio.sleep(0)
        offload.close()
        return await asyncio.gather(*waiting, return_exceptions=True)

    loop = asyncio.new_event_loop()
    try:
        results = loop.run_until_complete(go())
    finally:
        loop.close()
    want = _comparable(_core.v2_read_request(plan, body))
    assert None in results  # some were still with the thread
    for r in results:
        assert r is None or _comparable(r) == want


def test_a_loop_closed_with_a_caller_waiting_does_not_fail_the_next_loop() -> None:
    offload = V2Offload()
    plan = APIS["flat"].plan
    gone = asyncio.new_event_loop()
    task = gone.create_task(offload.read(plan, _tensor_body(2000, 7)))
    gone.run_until_complete(asyncio.sleep(0))
    gone.close()  # the caller's task never ends
    body = _tensor_body(10, 7)
    loop = asyncio.new_event_loop()
    try:
        got = loop.run_until_complete(offload.read(plan, body))
    finally:
        offload.close()
        loop.close()
    assert _comparable(got) == _comparable(_core.v2_read_request(plan, body))
    task._log_destroy_pending = False  # left pending on purpose


class _NoReaders(asyncio.SelectorEventLoop):
    """A loop that cannot watch descriptors (as Windows' proactor loop)."""

    def add_reader(self, *args: Any) -> None:
        raise NotImplementedError


def test_a_loop_that_cannot_watch_descriptors_reads_and_writes_in_place() -> None:
    offload = V2Offload()
    plan = APIS["flat"].plan
    body = _tensor_body(10, 2)
    lines = [b'{"score":1}'] * 40
    loop = _NoReaders()
    try:
        got = loop.run_until_complete(offload.read(plan, body))
        written = loop.run_until_complete(offload.write(lines, None, "m", None, None))
    finally:
        loop.close()
    assert _comparable(got) == _comparable(_core.v2_read_request(plan, body))
    assert written == _core.v2_write_answer(lines, None, "m", None, None)
    assert offload._core is None  # no thread was started for that loop


class _WatchRefused(asyncio.SelectorEventLoop):
    """A loop that cannot watch one more descriptor (its limit reached)."""

    def add_reader(self, *args: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_loop_that_cannot_watch_one_more_descriptor_reads_in_place() -> None:
    before = _thread_ids()
    offload = V2Offload()
    plan = APIS["flat"].plan
    body = _tensor_body(10, 6)
    loop = _WatchRefused()
    try:
        got = loop.run_until_complete(offload.read(plan, body))
    finally:
        loop.close()
    assert _comparable(got) == _comparable(_core.v2_read_request(plan, body))
    assert offload._core is None and offload._usable  # tried again on the next call
    assert not _started_since(before)  # the one started has ended


def test_a_stopped_core_refuses_jobs() -> None:
    core = _core.V2Offload()
    core.stop()
    assert core.read(APIS["flat"].plan, _tensor_body(1, 1)) is None
    assert core.write([b"{}"], None, "m", None, None) is None


def _threads_of(pid: int) -> list[str]:
    names = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/comm") as f:
                names.append(f.read().strip())
        except OSError:
            continue
    return names


def test_the_server_reads_and_answers_large_bodies_beside_the_loop(
    example_server, example_backend
) -> None:
    """Through a real server: a 120-row body (over the offload size, its
    answer over the offload rows) is answered as the backend called
    in-process answers, and the server's offload thread did it."""
    events = firewall_events(120, seed=5)
    data = feature_matrix(events).ravel().tolist()
    body = json.dumps(
        {
            "id": "big",
            "inputs": [{"name": "in", "datatype": "FP64", "shape": [120, 9], "data": data}],
        }
    ).encode()
    assert len(body) >= OFFLOAD_BODY_BYTES and len(events) >= OFFLOAD_ANSWER_ROWS
    answer = httpx.post(
        f"{example_server.url}/v2/models/{MODEL}/infer",
        content=body,
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    got = answer.json()
    assert got["id"] == "big"
    expected = expected_columns(example_backend(events))
    assert {t["name"]: t["data"] for t in got["outputs"]} == expected
    assert any(n.startswith("packflow-v2-off") for n in _threads_of(example_server.proc.pid))


def test_the_v2_door_beside_the_loop_reads_and_writes_as_in_place(loop, offload) -> None:
    """``V2Api.parse_infer_beside`` and ``render_beside`` give what
    ``parse_infer`` and ``render`` give, errors and binary outputs included."""
    api = APIS["flat"]
    good = _tensor_body(200, 9)
    got = loop.run_until_complete(api.parse_infer_beside(good, None, offload))
    want = api.parse_infer(good)
    assert _comparable(tuple(got)) == _comparable(tuple(want))
    # Refused in Rust: Python's reading words the error, the same one.
    bad = (
        json.dumps(
            {
                "inputs": [
                    {"name": "x", "datatype": "INT8", "shape": [2, 3], "data": [1] * 5 + [300]}
                ]
            }
        ).encode()
        + b" " * OFFLOAD_BODY_BYTES
    )
    with pytest.raises(V2Error) as beside:
        loop.run_until_complete(api.parse_infer_beside(bad, None, offload))
    with pytest.raises(V2Error) as in_place:
        api.parse_infer(bad)
    assert str(beside.value) == str(in_place.value)
    assert "300" in str(beside.value)
    lines = [b'{"score":%d,"label":"r%d"}' % (i, i) for i in range(OFFLOAD_ANSWER_ROWS + 8)]
    for request in (
        InferRequest(b"", len(lines), "r", None, {}, False),
        InferRequest(b"", len(lines), None, ["label"], {}, False),
        InferRequest(b"", len(lines), None, None, {"score": True}, False),  # binary data
        InferRequest(b"", len(lines), None, None, {}, True),
        InferRequest(b"", len(lines), None, ["nope"], {}, False),  # an unknown output
    ):
        try:
            expected: Any = api.render(lines, request)
        except V2Error as exc:
            expected = str(exc)
        try:
            got = loop.run_until_complete(api.render_beside(lines, request, offload))
        except V2Error as exc:
            got = str(exc)
        assert got == expected, request


@settings(max_examples=200, deadline=None)
@given(binary_bodies())
def test_a_body_with_binary_data_is_read_as_v2_read_request_reads_it(loop, offload, case) -> None:
    api_name, body, length = case
    plan = APIS[api_name].plan
    got = loop.run_until_complete(offload.read(plan, body, length))
    assert _comparable(got) == _comparable(_core.v2_read_request(plan, body, length))


def test_answers_with_binary_data_are_written_as_v2_write_answer_writes_them(loop, offload) -> None:
    lines = [b'{"score":%d.5,"label":"r%d","ok":true}' % (i, i) for i in range(40)]
    for binary, default in (({"score": True}, False), ({}, True), ({"ok": False}, True)):
        args = (lines, None, "m", "1", "r", binary, default)
        got = loop.run_until_complete(offload.write(*args))
        assert got is not None and got[1] is not None
        assert got == _core.v2_write_answer(*args)


class _Passthrough(InferenceBackend):
    def execute(self, inputs):
        return inputs


def _v2_infer(n: int, request_id: str) -> dict:
    """An ASGI infer request of ``n`` rows (a body and an answer both over
    the offload sizes)."""
    body = json.dumps(
        {
            "id": request_id,
            "inputs": [
                {"name": "k", "datatype": "BYTES", "shape": [n], "data": ["p" * 120] * n},
                {"name": "x", "datatype": "INT64", "shape": [n], "data": list(range(n))},
            ],
        }
    ).encode()
    assert len(body) >= OFFLOAD_BODY_BYTES and n >= OFFLOAD_ANSWER_ROWS
    return {"type": "http.request", "body": body, "more_body": False}


async def _asgi_infer(app: Any, message: dict) -> list[dict]:
    """What ``app`` sent for the infer request ``message`` (model "m")."""
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v2/models/m/infer",
        "headers": [(b"content-type", b"application/json")],
    }
    sent: list[dict] = []
    inbox = [message]

    async def receive() -> dict:
        if inbox:
            return inbox.pop(0)
        await asyncio.sleep(3600)  # the client stays: as a server waits
        return {}

    async def send(reply: dict) -> None:
        sent.append(reply)

    await app(scope, receive, send)
    return sent


def test_the_lifespan_shutdown_answers_a_queued_request_and_leaves_no_thread() -> None:
    """A request queued when the app closes is answered (its answer written
    after the close began), and the app's thread ends with it: a request
    that comes after the close starts none."""
    before = _thread_ids()
    app = create_app(_Passthrough(), name="m", max_wait_ms=60_000)

    def call(message: dict) -> Any:
        return _asgi_infer(app, message)

    async def main() -> tuple[list[dict], list[dict]]:
        queued = asyncio.ensure_future(call(_v2_infer(40, "queued")))
        # Waiting in the batcher for company (read on the thread first).
        for _ in range(1000):
            if app.batcher.queued_rows == 40:
                break
            await asyncio.sleep(0.01)
        assert app.batcher.queued_rows == 40
        life = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]

        async def life_receive() -> dict:
            return life.pop(0)

        async def life_send(message: dict) -> None:
            pass

        await app({"type": "lifespan"}, life_receive, life_send)
        answered = await asyncio.wait_for(queued, 30)
        late = await call(_v2_infer(40, "late"))
        return answered, late

    answered, late = asyncio.run(main())
    assert answered[0]["status"] == 200, answered
    got = json.loads(answered[1]["body"])
    assert got["id"] == "queued"
    assert {t["name"]: t["data"] for t in got["outputs"]}["x"] == list(range(40))
    assert late[0]["status"] == 503  # the batcher has closed
    assert not _started_since(before)


@pytest.mark.parametrize(
    "error",
    [OSError(errno.EMFILE, "Too many open files"), RuntimeError("cannot start a thread")],
    ids=["no-descriptor", "no-thread"],
)
def test_a_thread_that_cannot_start_leaves_the_work_in_place(monkeypatch, error) -> None:
    """Past the process's limits (descriptors, threads) the thread cannot
    start: requests are read and answered in place, not failed, and a later
    request starts it once it can."""

    class _Refused:
        def __init__(self) -> None:
            raise error

    offload = V2Offload()
    plan = APIS["flat"].plan
    body = _tensor_body(10, 4)
    lines = [b'{"score":1}'] * 40
    app = create_app(_Passthrough(), name="m")
    loop = asyncio.new_event_loop()
    try:
        monkeypatch.setattr(_core, "V2Offload", _Refused)
        got = loop.run_until_complete(offload.read(plan, body))
        written = loop.run_until_complete(offload.write(lines, None, "m", None, None))
        answered = loop.run_until_complete(_asgi_infer(app, _v2_infer(40, "in-place")))
        assert offload._core is None
        monkeypatch.undo()
        assert _comparable(loop.run_until_complete(offload.read(plan, body))) == _comparable(got)
        assert offload._core is not None
    finally:
        offload.close()
        loop.run_until_complete(app.close())
        loop.close()
    assert _comparable(got) == _comparable(_core.v2_read_request(plan, body))
    assert written == _core.v2_write_answer(lines, None, "m", None, None)
    assert answered[0]["status"] == 200, answered
    outputs = {t["name"]: t["data"] for t in json.loads(answered[1]["body"])["outputs"]}
    assert outputs["x"] == list(range(40))
