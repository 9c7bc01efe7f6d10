"""``WorkerPool``: the same results as one in-process engine, in order, through
slow batches, dying workers, a failing ``initialize()`` and a stop request."""

from __future__ import annotations

import faulthandler
import functools
import io
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from packflow import BatchEngine, LineReader, run_stream
from packflow.engine.reader import LineBatch
from packflow.engine.workers import (
    AUTO_MIN_INPUT_BYTES,
    WorkerPool,
    WorkerStartError,
    usable_cores,
    workers_count,
)
from packflow.loaders import InferenceBackendLoader
from tests.support.testkit import jsonl


@pytest.fixture(autouse=True)
def _never_hang():
    """Every test here starts processes: a hang ends the run with the stacks."""
    faulthandler.dump_traceback_later(120, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


def loader(project: Path, **config) -> functools.partial:
    return functools.partial(InferenceBackendLoader.from_path, str(project), **config)


def mixed_input(n: int = 200) -> bytes:
    """Good rows, rows that fail in execute, rows whose output is NaN, lines that
    are not JSON objects, blank lines and a line over the reader's limit."""
    rows: list = []
    for i in range(n):
        if i % 17 == 3:
            rows.append(b'{"id": ' + str(i).encode() + b", broken")
        elif i % 23 == 5:
            rows.append(b"[1, 2]")
        elif i % 29 == 7:
            rows.append(b"")
        elif i == 101:
            rows.append(json.dumps({"id": i, "pad": "x" * 5000}).encode())
        else:
            rows.append({"id": i, "fail": i % 11 == 2, "nan": i % 13 == 4})
    return jsonl(rows)


def in_process(project: Path, data: bytes, batch_size: int, **reader_kw) -> list:
    engine = BatchEngine(InferenceBackendLoader.from_path(str(project)))
    out = []
    for batch in LineReader(io.BytesIO(data), batch_size=batch_size, **reader_kw):
        out.append(
            (batch, None if batch.rejected else engine.process(batch.data, batch.first_line))
        )
    return out


def through_pool(pool: WorkerPool, data: bytes, batch_size: int, **reader_kw) -> list:
    reader = LineReader(io.BytesIO(data), batch_size=batch_size, **reader_kw)
    return list(pool.map(reader))


def test_same_results_as_one_engine_in_process(workers_project):
    data = mixed_input()
    want = in_process(workers_project, data, 9, max_line_bytes=4000, chunk_bytes=1000)
    with WorkerPool(loader(workers_project), 2) as pool:
        got = through_pool(pool, data, 9, max_line_bytes=4000, chunk_bytes=1000)
    assert [b for b, _ in got] == [b for b, _ in want]
    assert [r for _, r in got] == [r for _, r in want]
    rejected = [b.rejected for b, r in got if r is None]
    assert [row.step for row in rejected] == ["read"]
    steps = {e.step for _, r in got if r for e in r.errors}
    assert steps == {"parse", "execute", "serialize"}


def test_order_is_kept_when_batch_times_differ(workers_project):
    # Batches 0, 3, 6... sleep; the others are instant.
    rows = [{"id": i, "sleep": 0.15 if i % 12 == 0 else 0} for i in range(96)]
    with WorkerPool(loader(workers_project), 2) as pool:
        got = through_pool(pool, jsonl(rows), 4)
    ids = [json.loads(x)["id"] for _, r in got for x in r.output.splitlines()]
    assert ids == list(range(96))
    assert [b.first_line for b, _ in got] == list(range(1, 97, 4))


def test_a_killed_worker_has_its_batch_retried_on_a_fresh_one(workers_project, marks):
    rows = [{"id": i, "hold": i == 30} for i in range(80)]
    pid_file = marks / "pid"

    def kill_the_holder():
        deadline = time.monotonic() + 60
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(int(pid_file.read_text()), signal.SIGKILL)

    killer = threading.Thread(target=kill_the_holder)
    killer.start()
    with WorkerPool(loader(workers_project, marker_dir=str(marks)), 2) as pool:
        got = through_pool(pool, jsonl(rows), 5)
    killer.join()
    ids = [json.loads(x)["id"] for _, r in got for x in r.output.splitlines()]
    assert ids == list(range(80))
    assert not any(r.errors for _, r in got)
    # two first workers and one fresh one
    assert len(list(marks.glob("init-*"))) == 3


def test_a_batch_that_kills_its_worker_once_is_retried(workers_project, marks):
    rows = [{"id": i, "die": "once" if i == 12 else None} for i in range(40)]
    with WorkerPool(loader(workers_project, marker_dir=str(marks)), 2) as pool:
        got = through_pool(pool, jsonl(rows), 5)
    ids = [json.loads(x)["id"] for _, r in got for x in r.output.splitlines()]
    assert ids == list(range(40))


def test_a_batch_that_kills_two_workers_is_dead_lettered(workers_project, marks):
    rows = [{"id": i, "die": "always" if i == 12 else None} for i in range(40)]
    with WorkerPool(loader(workers_project, marker_dir=str(marks)), 2) as pool:
        got = through_pool(pool, jsonl(rows), 5)
        results = [r for _, r in got]
    ids = [json.loads(x)["id"] for r in results for x in r.output.splitlines()]
    assert ids == [i for i in range(40) if not 10 <= i < 15]
    errors = [e for r in results for e in r.errors]
    assert [e.line for e in errors] == [11, 12, 13, 14, 15]
    assert {e.step for e in errors} == {"worker"}
    assert "died twice (exit code 3)" in errors[0].error
    assert json.loads(errors[2].raw)["die"] == "always"
    assert sum(r.read for r in results) == 40
    assert sum(r.read for r in results) == sum(r.written + len(r.errors) for r in results)


def test_initialize_failing_in_a_worker_stops_the_start(workers_project):
    pool = WorkerPool(loader(workers_project, fail_init=True), 2)
    with pytest.raises(WorkerStartError, match="no weights in this test") as info:
        pool.start()
    assert info.value.error_type == "InferenceBackendInitializationError"
    assert "Traceback" in info.value.worker_traceback


def test_a_replacement_that_cannot_initialize_stops_the_run(workers_project, marks):
    rows = [{"id": i, "die": "always" if i == 12 else None} for i in range(40)]
    pool = WorkerPool(loader(workers_project, marker_dir=str(marks), starts_allowed=2), 2)
    pool.start()
    with pytest.raises(WorkerStartError, match="the weights went away"):
        through_pool(pool, jsonl(rows), 5)
    assert pool.pids == []  # every worker stopped


def test_a_worker_that_dies_idle_is_replaced(workers_project, marks):
    with WorkerPool(loader(workers_project, marker_dir=str(marks)), 2) as pool:
        first = through_pool(pool, jsonl([{"id": i} for i in range(20)]), 5)
        os.kill(pool.pids[0], signal.SIGKILL)
        second = through_pool(pool, jsonl([{"id": i} for i in range(20)]), 5)
        deadline = time.monotonic() + 60
        while len(pool.pids) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert [r for _, r in first] == [r for _, r in second]
    assert len(list(marks.glob("init-*"))) == 3


def test_a_loader_that_cannot_load_stops_the_start(tmp_path):
    with pytest.raises(WorkerStartError, match="packflow.yaml"):
        with WorkerPool(loader(tmp_path / "nowhere"), 1):
            pass


def test_load_must_be_picklable(workers_project):
    with pytest.raises(TypeError, match="picklable"):
        WorkerPool(lambda: InferenceBackendLoader.from_path(str(workers_project)), 2)


def test_batches_in_flight_are_bounded(workers_project):
    pulled = 0

    def source():
        nonlocal pulled
        for i in range(60):
            pulled += 1
            yield LineBatch(jsonl([{"id": i}]), i + 1)

    ahead = []
    with WorkerPool(loader(workers_project), 2, max_in_flight=3) as pool:
        for handed, _ in enumerate(pool.map(source()), start=1):
            time.sleep(0.005)  # a slow sink
            ahead.append(pulled - handed)
    assert max(ahead) <= 3
    assert len(ahead) == 60


def test_step_statistics_are_merged_across_workers(workers_project):
    rows = [{"id": i} for i in range(100)]
    with WorkerPool(loader(workers_project), 2) as pool:
        through_pool(pool, jsonl(rows), 10)
        stats = pool.get_stats()  # complete once map() has ended
        through_pool(pool, jsonl(rows), 25)
        again = pool.get_stats()
    assert stats["execute"]["count"] == 10
    assert stats["preprocess"]["count"] == 10
    assert stats["execute"]["min_ms"] <= stats["execute"]["p50_ms"] <= stats["execute"]["max_ms"]
    # each worker sends what it timed since it last sent: nothing counted twice
    assert again["execute"]["count"] == 14
    assert pool.get_stats() == again


def test_a_failing_source_is_raised_after_the_batches_taken(workers_project):
    def source():
        for i in range(6):
            yield LineBatch(jsonl([{"id": i}]), i + 1)
        raise OSError("disk gone")

    got = []
    with WorkerPool(loader(workers_project), 2) as pool:
        with pytest.raises(OSError, match="disk gone"):
            for batch, _ in pool.map(source()):
                got.append(batch.first_line)
    assert got == [1, 2, 3, 4, 5, 6]


def test_stop_now_ends_the_map_without_waiting(workers_project):
    rows = [{"id": i, "sleep": 20 if i == 2 else 0} for i in range(40)]
    pool = WorkerPool(loader(workers_project), 2)
    pool.start()
    threading.Timer(0.5, pool.stop_now).start()
    started = time.monotonic()
    got = through_pool(pool, jsonl(rows), 2)
    assert time.monotonic() - started < 10
    assert [b.first_line for b, _ in got] == [1]  # the batch behind the slow one waits
    pool.close()


def test_run_stream_with_workers_equals_one_process(workers_project):
    items = mixed_input(120).splitlines()
    outs = []
    for workers in (1, 2):
        sink, errors = io.BytesIO(), io.BytesIO()
        summary = run_stream(
            str(workers_project), items, sink, errors=errors, batch_size=7, workers=workers
        )
        outs.append((sink.getvalue(), errors.getvalue(), summary))
    (out1, err1, s1), (out2, err2, s2) = outs
    assert out1 == out2 and err1 == err2
    assert (s1.read, s1.written, s1.errors, s1.batches) == (
        s2.read,
        s2.written,
        s2.errors,
        s2.batches,
    )
    assert {k: v["count"] for k, v in s1.steps.items()} == {
        k: v["count"] for k, v in s2.steps.items()
    }


def test_run_stream_stop_request_writes_what_was_taken(workers_project):
    items = [json.dumps({"id": i}).encode() for i in range(1000)]
    sink = io.BytesIO()
    summary = run_stream(
        str(workers_project), items, sink, batch_size=10, workers=2, should_stop=lambda: True
    )
    assert summary.interrupted_by == "stop request"
    assert 10 <= summary.written < 1000
    assert summary.written == len(sink.getvalue().splitlines())
    ids = [json.loads(x)["id"] for x in sink.getvalue().splitlines()]
    assert ids == list(range(len(ids)))


def test_run_stream_workers_need_a_project_path(workers_project):
    backend = InferenceBackendLoader.from_path(str(workers_project))
    with pytest.raises(TypeError, match="project's path"):
        run_stream(backend, [b"{}"], io.BytesIO(), workers=2)


def test_workers_count():
    assert workers_count("auto") == usable_cores() == len(os.sched_getaffinity(0))
    assert workers_count("3") == 3 == workers_count(3)
    # auto: one process for an input too small for workers to pay; a size not
    # known (a pipe) or large enough gets every core.
    assert workers_count("auto", AUTO_MIN_INPUT_BYTES - 1) == 1
    assert workers_count("auto", AUTO_MIN_INPUT_BYTES) == usable_cores()
    assert workers_count("auto", None) == usable_cores()
    assert workers_count("2", 10) == 2
    for bad in ("0", "-1", "two", 0, 1.5, True):
        with pytest.raises(ValueError):
            workers_count(bad)


def through_ranges(pool, path: Path, tmp_path: Path, batch_size: int, **kw) -> tuple:
    """The input file through map_ranges, written by a StreamRunner."""
    from packflow.engine.file_ranges import RangeSpec, cut_ranges
    from packflow.engine.runner import StreamRunner

    segments = tmp_path / "segments"
    segments.mkdir(exist_ok=True)
    spec = RangeSpec(str(path), batch_size, 1 << 20, str(segments), range_bytes=kw.pop("size"))
    out, err = io.BytesIO(), io.BytesIO()
    runner = StreamRunner(pool, out, err)
    with open(path, "rb", buffering=0) as fh:
        runner.run(cut_ranges(fh, spec), through=functools.partial(pool.map_ranges, spec=spec))
    assert list(segments.iterdir()) == []  # each segment removed once joined
    return out.getvalue(), err.getvalue(), runner.finish()


def in_process_files(project: Path, data: bytes, batch_size: int) -> tuple:
    out, err = io.BytesIO(), io.BytesIO()
    summary = run_stream(
        InferenceBackendLoader.from_path(str(project)),
        data.splitlines(),
        out,
        errors=err,
        batch_size=batch_size,
    )
    return out.getvalue(), err.getvalue(), summary


def test_ranges_read_by_the_workers_give_one_process_results(workers_project, tmp_path):
    data = mixed_input(300)
    src = tmp_path / "in.jsonl"
    src.write_bytes(data)
    with WorkerPool(loader(workers_project), 2) as pool:
        out, err, summary = through_ranges(pool, src, tmp_path, 10, size=500)
    out1, err1, summary1 = in_process_files(workers_project, data, 10)
    assert (out, err) == (out1, err1)
    assert (summary.read, summary.written, summary.errors, summary.last_line) == (
        summary1.read,
        summary1.written,
        summary1.errors,
        300,
    )


def test_a_range_whose_worker_died_is_retried_batch_by_batch(workers_project, marks, tmp_path):
    rows = [
        {"id": i, "die": "always" if i == 25 else ("once" if i == 47 else None)} for i in range(60)
    ]
    src = tmp_path / "in.jsonl"
    src.write_bytes(jsonl(rows))
    with WorkerPool(loader(workers_project, marker_dir=str(marks)), 2) as pool:
        out, err, summary = through_ranges(pool, src, tmp_path, 10, size=10_000)
    # One range of six batches, whose worker died: each batch ran again on its
    # own; the batch of row 25 killed two more workers and is dead-lettered, the
    # one of row 47 killed one and ran again.
    assert [json.loads(x)["id"] for x in out.splitlines()] == [
        i for i in range(60) if not 20 <= i < 30
    ]
    errors = [json.loads(x) for x in err.splitlines()]
    assert [e["line"] for e in errors] == list(range(21, 31))
    assert {e["step"] for e in errors} == {"worker"}
    assert (summary.read, summary.written, summary.errors) == (60, 50, 10)


def _pipe_ends(pid: int) -> set[tuple[int, str]]:
    """The pipe ends process ``pid`` holds, as (pipe inode, "r" or "w"), from
    Linux /proc (both ends of a pipe share its inode)."""
    ends = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            with open(f"/proc/{pid}/fdinfo/{fd}") as info:
                flags = next(int(x.split()[1], 8) for x in info if x.startswith("flags:"))
        except (OSError, StopIteration):
            continue
        if target.startswith("pipe:["):
            ends.add((int(target[6:-1]), "w" if flags & os.O_WRONLY else "r"))
    return ends


linux_only = pytest.mark.skipif(
    not os.path.isdir("/proc/self/fd"), reason="reads a process's descriptors from /proc"
)


@linux_only
def test_forked_workers_give_the_same_results_and_hold_only_their_own_pipes(workers_project):
    data = mixed_input()
    want = in_process(workers_project, data, 9, max_line_bytes=4000, chunk_bytes=1000)
    with WorkerPool(loader(workers_project), 3, context="fork") as pool:
        workers = list(pool._pool)
        assert {type(w.process).__name__ for w in workers} == {"ForkProcess"}
        # No worker holds the pool's end of another worker's pipes (it would
        # keep that worker from seeing the end of its input) or of its own.
        for w in workers:
            held = _pipe_ends(w.process.pid)
            for other in workers:
                batches, results = os.fstat(other.send_fd).st_ino, os.fstat(other.recv_fd).st_ino
                if other is w:
                    assert (batches, "r") in held and (batches, "w") not in held
                    assert (results, "w") in held and (results, "r") not in held
                else:
                    assert not {inode for inode, _ in held} & {batches, results}
        got = through_pool(pool, data, 9, max_line_bytes=4000, chunk_bytes=1000)
    assert [r for _, r in got] == [r for _, r in want]
    assert pool.pids == []  # each saw the end of its input and exited


def test_a_forked_pool_replaces_a_dead_worker_by_spawning(workers_project, marks):
    with WorkerPool(loader(workers_project, marker_dir=str(marks)), 2, context="fork") as pool:
        first = through_pool(pool, jsonl([{"id": i} for i in range(20)]), 5)
        os.kill(pool.pids[0], signal.SIGKILL)
        second = through_pool(pool, jsonl([{"id": i} for i in range(20)]), 5)
        kinds = sorted(type(w.process).__name__ for w in pool._pool)
    assert [r for _, r in first] == [r for _, r in second]
    assert kinds == ["ForkProcess", "SpawnProcess"]


def test_a_forked_pool_spawns_while_another_thread_runs(workers_project):
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        with WorkerPool(loader(workers_project), 2, context="fork") as pool:
            kinds = {type(w.process).__name__ for w in pool._pool}
            got = through_pool(pool, jsonl([{"id": i} for i in range(10)]), 5)
    finally:
        stop.set()
        other.join()
    assert kinds == {"SpawnProcess"}
    assert [json.loads(x)["id"] for _, r in got for x in r.output.splitlines()] == list(range(10))


@linux_only
def test_a_forked_worker_holds_no_pipe_of_its_parent(workers_project):
    # A pipe to another process, and another pool's workers: their readers
    # must see the end of their input while this pool's workers live.
    cat = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    first = WorkerPool(loader(workers_project), 1)
    first.start()
    try:
        with WorkerPool(loader(workers_project), 2, context="fork") as pool:
            assert {type(w.process).__name__ for w in pool._pool} == {"ForkProcess"}
            assert cat.stdin is not None
            cat.stdin.close()
            assert cat.wait(timeout=30) == 0
            started = time.monotonic()
            first.close(timeout=30)
            assert time.monotonic() - started < 20  # ended by its input, not killed
            assert first.pids == []
            got = through_pool(pool, jsonl([{"id": i} for i in range(10)]), 5)
    finally:
        first.kill()
        cat.kill()
    ids = [json.loads(x)["id"] for _, r in got for x in r.output.splitlines()]
    assert ids == list(range(10))


def test_ranges_shrink_towards_the_end_of_a_file_of_known_size(tmp_path):
    from packflow.engine.file_ranges import RangeSpec, cut_ranges

    src = tmp_path / "in.jsonl"
    src.write_bytes(b"".join(b'{"i": %06d}\n' % i for i in range(20_000)))
    size = src.stat().st_size
    batch = size // 2000  # 10 lines of the same length
    spec = RangeSpec(str(src), 10, 1 << 20, str(tmp_path), range_bytes=20_000)
    with open(src, "rb", buffering=0) as fh:
        fixed = list(cut_ranges(fh, spec))
    with open(src, "rb", buffering=0) as fh:
        shrinking = list(cut_ranges(fh, spec, input_bytes=size, workers=2))
    for ranges in (fixed, shrinking):
        # Whole batches, back to back, covering the file and every line once.
        assert ranges[0].start == 0 and ranges[-1].end == size
        assert all(a.end == b.start for a, b in zip(ranges, ranges[1:]))
        assert all(a.last_line + 1 == b.first_line for a, b in zip(ranges, ranges[1:]))
        assert sum(r.lines for r in ranges) == 20_000
    sizes = [r.end - r.start for r in shrinking]
    assert max(sizes) <= 20_000 + batch
    # No range holds more than a quarter (2 workers) of what was left before it
    # (and the batch that crossed that), down to single batches at the end.
    assert all(r.end - r.start <= (size - r.start) // 4 + batch for r in shrinking)
    assert sizes[-1] == batch and len(shrinking) > len(fixed)
    assert all(r.end - r.start >= 20_000 for r in fixed[:-1])
