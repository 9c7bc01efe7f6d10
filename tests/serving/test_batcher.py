"""The batcher on its own: batches cut from concurrent requests, split
requests, failures kept to their request, the queue bound, deadlines, close."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest

from packflow import BackendConfig, BatchEngine, InferenceBackend, _core
from packflow.serving.batcher import Batcher, Outcome, QueueFull


class Config(BackendConfig):
    delay_s: float = 0.0


class Echo(InferenceBackend):
    backend_config_model = Config

    def initialize(self):
        self.calls: list[int] = []
        self.gate = threading.Event()
        self.gate.set()

    def execute(self, inputs):
        self.gate.wait(10)
        self.calls.append(len(inputs))
        if self.config.delay_s:
            time.sleep(self.config.delay_s)
        out = []
        for r in inputs:
            if r.get("fail"):
                raise ValueError(f"row {r['id']} refused")
            out.append({"id": r["id"]})
        return out


def lines(*ids: int, fail: tuple[int, ...] = ()) -> bytes:
    return b"".join(
        json.dumps({"id": i, **({"fail": True} if i in fail else {})}).encode() + b"\n" for i in ids
    )


def outputs(job) -> list[int]:
    return [json.loads(line)["id"] for line in job.lines]


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_concurrent_requests_share_a_batch_in_order():
    backend = Echo()
    batcher = Batcher(BatchEngine(backend), max_batch_rows=100, max_wait_s=0.05)

    async def main():
        jobs = [batcher.submit(lines(3 * i, 3 * i + 1, 3 * i + 2), 3) for i in range(5)]
        done = await asyncio.gather(*(j.future for j in jobs))
        await batcher.close()
        return jobs, done

    jobs, done = run(main())
    assert done == [Outcome.DONE] * 5
    assert [outputs(j) for j in jobs] == [[3 * i, 3 * i + 1, 3 * i + 2] for i in range(5)]
    assert backend.calls == [15]


def test_a_full_batch_does_not_wait():
    backend = Echo()
    batcher = Batcher(BatchEngine(backend), max_batch_rows=4, max_wait_s=10)

    async def main():
        job = batcher.submit(lines(1, 2, 3, 4), 4)
        started = time.monotonic()
        await job.future
        return time.monotonic() - started

    assert run(main()) < 5
    assert backend.calls == [4]


def test_a_large_request_is_split_across_batches_and_reassembled():
    backend = Echo()
    batcher = Batcher(BatchEngine(backend), max_batch_rows=4, max_wait_s=0.001)

    async def main():
        big = batcher.submit(lines(*range(10)), 10)
        small = batcher.submit(lines(100), 1)
        await asyncio.gather(big.future, small.future)
        await batcher.close()
        return big, small

    big, small = run(main())
    assert outputs(big) == list(range(10))
    assert outputs(small) == [100]
    # 4 + 4, then the big request's last 2 rows share a batch with the small one.
    assert backend.calls == [4, 4, 3]


def test_a_failing_row_fails_only_its_request():
    backend = Echo()
    batcher = Batcher(BatchEngine(backend), max_batch_rows=100, max_wait_s=0.05)

    async def main():
        a = batcher.submit(lines(1, 2), 2)
        b = batcher.submit(lines(3, 4, 5, fail=(5,)), 3)
        c = batcher.submit(lines(6), 1)
        await asyncio.gather(a.future, b.future, c.future)
        await batcher.close()
        return a, b, c

    a, b, c = run(main())
    assert a.future.result() is Outcome.DONE and outputs(a) == [1, 2]
    assert c.future.result() is Outcome.DONE and outputs(c) == [6]
    assert b.future.result() is Outcome.FAILED
    assert b.error_row == 2
    assert b.error.step == "execute"
    assert "row 5 refused" in b.error.error


def test_rows_of_a_failed_request_still_queued_are_dropped():
    backend = Echo()
    batcher = Batcher(BatchEngine(backend), max_batch_rows=2, max_wait_s=0.001)

    async def main():
        job = batcher.submit(lines(1, 2, 3, 4, 5, 6, fail=(1,)), 6)
        await job.future
        await batcher.close()
        return job

    job = run(main())
    assert job.future.result() is Outcome.FAILED
    assert job.error_row == 0
    assert batcher.queued_rows == 0
    # The first batch failed and its two halves ran alone; the rest never ran.
    assert backend.calls == [2, 1, 1]


def test_the_queue_is_bounded_in_rows():
    backend = Echo()
    backend.gate.clear()
    batcher = Batcher(BatchEngine(backend), max_batch_rows=2, max_wait_s=0, max_queue_rows=3)

    async def main():
        first = batcher.submit(lines(1, 2), 2)
        await asyncio.sleep(0.05)  # taken into the (blocked) batch: the queue is empty
        queued = batcher.submit(lines(3, 4, 5), 3)
        with pytest.raises(QueueFull) as full:
            batcher.submit(lines(6), 1)
        assert full.value.retry_after is not None and full.value.retry_after >= 1
        with pytest.raises(QueueFull) as never:
            batcher.submit(lines(*range(4)), 4)
        assert never.value.retry_after is None
        backend.gate.set()
        await asyncio.gather(first.future, queued.future)
        await batcher.close()
        return outputs(first), outputs(queued)

    assert run(main()) == ([1, 2], [3, 4, 5])


def test_a_request_past_its_deadline_times_out_and_leaves_the_queue():
    backend = Echo()
    backend.gate.clear()
    batcher = Batcher(BatchEngine(backend), max_batch_rows=1, max_wait_s=0, timeout_s=0.1)

    async def main():
        running = batcher.submit(lines(1), 1)
        await asyncio.sleep(0.02)
        waiting = batcher.submit(lines(2, 3), 2)
        assert batcher.queued_rows == 2
        outcomes = await asyncio.gather(running.future, waiting.future)
        assert batcher.queued_rows == 0
        assert batcher.pending == 0
        backend.gate.set()
        await batcher.close()
        return outcomes

    assert run(main()) == [Outcome.TIMED_OUT, Outcome.TIMED_OUT]
    assert backend.calls == [1]  # the expired request's rows never ran


def test_close_answers_everything_queued():
    backend = Echo(delay_s=0.02)
    batcher = Batcher(BatchEngine(backend), max_batch_rows=2, max_wait_s=1.0)

    async def main():
        jobs = [batcher.submit(lines(i), 1) for i in range(7)]
        await batcher.close()
        return [j.future.result() for j in jobs]

    assert run(main()) == [Outcome.DONE] * 7
    assert sum(backend.calls) == 7


def test_json_lines_with_blank_lines():
    backend = Echo()
    batcher = Batcher(BatchEngine(backend), max_batch_rows=10, max_wait_s=0.001)

    async def main():
        job = batcher.submit(b'{"id": 1}\n\n{"id": 2}\n', 3)
        await job.future
        await batcher.close()
        return job

    assert outputs(run(main())) == [1, 2]


class Exits(InferenceBackend):
    def execute(self, inputs):
        raise SystemExit(3)  # not an Exception: the engine lets it through


def test_what_the_engine_does_not_catch_fails_the_batch_not_the_server():
    batcher = Batcher(BatchEngine(Exits()), max_batch_rows=10, max_wait_s=0.001)

    async def main():
        job = batcher.submit(lines(1), 1)
        outcome = await job.future
        await batcher.close()
        with pytest.raises(QueueFull, match="shutting down"):
            batcher.submit(lines(2), 1)
        return job, outcome

    job, outcome = run(main())
    assert outcome is Outcome.CRASHED
    assert "SystemExit" in job.error.error


class Features(InferenceBackend):
    """A numpy backend: the first feature is the id; an id of 13 fails."""

    def initialize(self):
        self.calls: list[tuple[int, str]] = []

    def execute(self, inputs):
        self.calls.append((len(inputs), inputs.dtype.str))
        if (inputs[:, 0] == 13).any():
            raise ValueError("13 refused")
        return [{"id": int(r[0])} for r in inputs]


def feature_rows(*ids: int) -> _core.FeatureRows:
    return _core.FeatureRows.from_rows([[i, 0.5] for i in ids])


def feature_lines(*ids: int) -> bytes:
    return b"".join(json.dumps({"a": i, "b": 0.5}).encode() + b"\n" for i in ids)


def test_feature_rows_and_lines_are_batched_apart_and_answered_in_order():
    backend = Features(input_format="numpy", feature_names=["a", "b"])
    batcher = Batcher(BatchEngine(backend), max_batch_rows=100, max_wait_s=0.05)

    async def main():
        jobs = [
            batcher.submit(feature_rows(1, 2), 2),
            batcher.submit(feature_rows(3), 1),
            batcher.submit(feature_lines(4, 5), 2),
            batcher.submit(feature_rows(6, 7, 8), 3),
        ]
        done = await asyncio.gather(*(j.future for j in jobs))
        await batcher.close()
        return jobs, done

    jobs, done = run(main())
    assert done == [Outcome.DONE] * 4
    assert [outputs(j) for j in jobs] == [[1, 2], [3], [4, 5], [6, 7, 8]]
    # One batch per kind: the oldest request's kind first, every queued
    # request of it, then the lines passed over.
    assert [n for n, _ in backend.calls] == [6, 2]


def test_feature_rows_are_split_across_batches_and_a_failing_row_fails_its_request():
    backend = Features(input_format="numpy", feature_names=["a", "b"])
    batcher = Batcher(BatchEngine(backend), max_batch_rows=4, max_wait_s=0.05)

    async def main():
        big = batcher.submit(feature_rows(*range(1, 11)), 10)
        bad = batcher.submit(feature_rows(20, 13, 21), 3)
        after = batcher.submit(feature_rows(30), 1)
        done = await asyncio.gather(big.future, bad.future, after.future)
        await batcher.close()
        return big, bad, after, done

    big, bad, after, done = run(main())
    assert done == [Outcome.DONE, Outcome.FAILED, Outcome.DONE]
    assert outputs(big) == list(range(1, 11))
    assert bad.error_row == 1 and bad.error.step == "execute"
    assert bad.error.raw == b"[13,0.5]"
    assert outputs(after) == [30]
    assert max(n for n, _ in backend.calls) <= 4


def test_requests_of_both_kinds_queued_alternately_still_share_batches():
    # Feature rows (V2 tensors) and lines (other doors, or a UINT64 past
    # int64) arriving turn about: a batch takes every queued request of its
    # kind it has room for, not just the run at the front, or each batch
    # would hold one request.
    backend = Features(input_format="numpy", feature_names=["a", "b"])
    batcher = Batcher(BatchEngine(backend), max_batch_rows=100)

    async def main():
        jobs = [
            batcher.submit(feature_rows(i) if i % 2 else feature_lines(i), 1) for i in range(1, 9)
        ]
        done = await asyncio.gather(*(j.future for j in jobs))
        await batcher.close()
        return jobs, done

    jobs, done = run(main())
    assert done == [Outcome.DONE] * 8
    assert [outputs(j) for j in jobs] == [[i] for i in range(1, 9)]
    # The oldest request's kind first, then the other.
    assert backend.calls == [(4, "<f8"), (4, "<f8")]


def test_a_batch_of_one_kind_leaves_the_others_in_order_behind_a_split_request():
    backend = Features(input_format="numpy", feature_names=["a", "b"])
    batcher = Batcher(BatchEngine(backend), max_batch_rows=4)

    async def main():
        first = batcher.submit(feature_rows(1, 2), 2)
        line = batcher.submit(feature_lines(3), 1)
        split = batcher.submit(feature_rows(4, 5, 6), 3)  # 2 rows now, 1 later
        other = batcher.submit(feature_lines(7, 8), 2)
        done = await asyncio.gather(first.future, line.future, split.future, other.future)
        await batcher.close()
        return [first, line, split, other], done

    jobs, done = run(main())
    assert done == [Outcome.DONE] * 4
    assert [outputs(j) for j in jobs] == [[1, 2], [3], [4, 5, 6], [7, 8]]
    # Rows 1, 2, 4, 5; then the lines, oldest first; then row 6.
    assert [n for n, _ in backend.calls] == [4, 3, 1]
