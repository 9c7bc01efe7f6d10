"""`packflow run --workers`: the same files as one process, faults, signals, auto."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from packflow.engine.workers import usable_cores
from packflow.sample_data import sample_lines
from tests.support.testkit import EXAMPLE, PACKFLOW, export_example, jsonl, run_cli


def mixed_lines(n: int) -> bytes:
    out = []
    for i in range(n):
        if i % 17 == 3:
            out.append(b'{"id": %d, broken' % i)
        elif i % 23 == 5:
            out.append(b"[1, 2]")
        elif i % 29 == 7:
            out.append(b"   ")
        else:
            row = {"id": i, "fail": i % 11 == 2, "nan": i % 13 == 4, "sleep": 0.0}
            if i % 40 == 0:
                row["sleep"] = 0.05  # uneven batch times
            out.append(json.dumps(row).encode())
    return b"\n".join(out) + b"\n"


def run_both(tmp_path: Path, project: Path, src: Path, *extra) -> list[tuple[bytes, bytes, dict]]:
    runs = []
    for workers in ("1", "2"):
        out, err, stats = (tmp_path / f"{name}-{workers}" for name in ("out", "err", "stats"))
        proc = run_cli(
            [project, "-i", src, "-o", out, "--errors", err, "--stats", stats]
            + ["--workers", workers, *extra]
        )
        assert proc.returncode == 0, proc.stderr.decode()
        runs.append((out.read_bytes(), err.read_bytes(), json.loads(stats.read_text())))
    return runs


def same_summary(a: dict, b: dict) -> None:
    keys = ("read", "written", "errors", "batches", "interrupted_by")
    assert {k: a[k] for k in keys} == {k: b[k] for k in keys}
    assert {s: v["count"] for s, v in a["steps"].items()} == {
        s: v["count"] for s, v in b["steps"].items()
    }


def test_same_files_as_one_worker_with_bad_lines_and_failing_rows(tmp_path, workers_project):
    src = tmp_path / "in.jsonl"
    data = mixed_lines(600)
    src.write_bytes(data)
    blank = sum(1 for line in data.splitlines() if not line.strip())
    (out1, err1, stats1), (out2, err2, stats2) = run_both(
        tmp_path, workers_project, src, "--batch-size", "7"
    )
    assert out1 == out2 and err1 == err2
    same_summary(stats1, stats2)
    steps = {json.loads(x)["step"] for x in err1.splitlines()}
    assert steps == {"parse", "execute", "serialize"}
    assert stats1["read"] == stats1["written"] + stats1["errors"] == 600 - blank


def test_same_files_as_one_worker_on_the_numpy_path(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_bytes(b"".join(sample_lines(20_000, malformed_every=700)))
    (out1, err1, stats1), (out2, err2, stats2) = run_both(
        tmp_path, EXAMPLE, src, "--batch-size", "500"
    )
    assert out1 == out2 and err1 == err2
    assert len(out1.splitlines()) == stats1["written"] > 19_000
    same_summary(stats1, stats2)


def test_a_batch_that_kills_its_workers_goes_to_errors(tmp_path, workers_project):
    rows = [{"id": i, "die": i == 25} for i in range(60)]
    data = jsonl(rows)
    err, stats = tmp_path / "err.jsonl", tmp_path / "stats.json"
    proc = run_cli(
        [
            workers_project,
            "--workers",
            "2",
            "--batch-size",
            "10",
            "--errors",
            err,
            "--stats",
            stats,
        ],
        input_bytes=data,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    ids = [json.loads(x)["id"] for x in proc.stdout.splitlines()]
    assert ids == [i for i in range(60) if not 20 <= i < 30]
    errors = [json.loads(x) for x in err.read_bytes().splitlines()]
    assert [e["line"] for e in errors] == list(range(21, 31))
    assert {e["step"] for e in errors} == {"worker"}
    summary = json.loads(stats.read_text())
    assert summary["read"] == 60 == summary["written"] + summary["errors"]


def test_initialize_failing_in_a_worker_stops_the_run(tmp_path, workers_project):
    proc = run_cli(
        [workers_project, "--workers", "2", "--config", "fail_init=true"],
        input_bytes=b'{"id": 1}\n',
    )
    assert proc.returncode == 1
    stderr = proc.stderr.decode()
    assert "could not load the backend" in stderr and "no weights in this test" in stderr
    assert "Traceback" not in stderr.split("could not load the backend")[1]
    assert proc.stdout == b""


def test_an_unknown_config_key_is_a_usage_error_before_any_initialize(tmp_path, workers_project):
    proc = run_cli(
        [
            workers_project,
            "--workers",
            "2",
            "--config",
            f"marker_dir={tmp_path}",
            "--config",
            "fail_int=1",
        ],
        input_bytes=b'{"id": 1}\n',
    )
    stderr = proc.stderr.decode()
    assert proc.returncode == 2, stderr
    assert "--config" in stderr and "'fail_int' (did you mean 'fail_init'?)" in stderr
    assert list(tmp_path.glob("init-*")) == []  # no worker ran initialize()
    assert proc.stdout == b""


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_finishes_the_batches_in_flight(tmp_path, sig, code):
    out = tmp_path / "out.jsonl"
    proc = subprocess.Popen(
        PACKFLOW
        + ["run", str(EXAMPLE), "-o", str(out), "--batch-size", "100", "--max-wait-ms", "20"]
        + ["--workers", "2"],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    lines = list(sample_lines(1000))
    proc.stdin.write(b"".join(lines[:350]))
    proc.stdin.flush()
    deadline = time.time() + 90
    # The last 50 lines wait --max-wait-ms for their batch, then are written too.
    while time.time() < deadline and (not out.exists() or len(out.read_bytes().splitlines()) < 350):
        time.sleep(0.05)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    proc.stdin.close()
    assert proc.returncode == code, stderr.decode()
    data = out.read_bytes()
    assert data.endswith(b"\n")
    assert len(data.splitlines()) == 350
    assert sig.name in stderr.decode()
    assert b"Traceback" not in stderr


def test_a_second_signal_stops_at_once(tmp_path, workers_project, marks):
    rows = [{"id": i, "sleep": 60 if i == 3 else 0} for i in range(10)]
    proc = subprocess.Popen(
        PACKFLOW
        + [
            "run",
            str(workers_project),
            "--workers",
            "2",
            "--batch-size",
            "2",
            "--max-wait-ms",
            "20",
        ]
        + ["--config", f"marker_dir={marks}"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdin.write(jsonl(rows))
    proc.stdin.flush()
    deadline = time.time() + 90
    while time.time() < deadline and not (marks / "sleeping").exists():
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    started = time.time()
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=30)
    proc.stdin.close()
    assert time.time() - started < 20
    assert proc.returncode == 143, stderr.decode()
    # Only the first batch (before the sleeping one) was written.
    assert [json.loads(x)["id"] for x in stdout.splitlines()] == [0, 1]
    assert b"Traceback" not in stderr


def test_auto_runs_one_worker_per_usable_core(tmp_path, workers_project, marks):
    # From a pipe, whose length is not known beforehand: a stream may be long.
    data = b"".join(json.dumps({"id": i}).encode() + b"\n" for i in range(50))
    args = [workers_project, "--workers", "auto", "--config", f"marker_dir={marks}"]
    one_core = run_cli(
        args,
        input_bytes=data,
        preexec_fn=lambda: os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}),
    )
    assert one_core.returncode == 0, one_core.stderr.decode()
    assert len(list(marks.glob("init-*"))) == 1  # in-process: no pool for one core
    shutil.rmtree(marks)
    marks.mkdir()
    every_core = run_cli(args, input_bytes=data)
    assert every_core.returncode == 0, every_core.stderr.decode()
    assert every_core.stdout == one_core.stdout
    assert len(list(marks.glob("init-*"))) == usable_cores()


@pytest.mark.skipif(usable_cores() < 2, reason="auto is one process on one core anyway")
def test_auto_runs_a_small_file_in_one_process(tmp_path, workers_project, marks):
    src = tmp_path / "in.jsonl"
    src.write_bytes(b"".join(json.dumps({"id": i}).encode() + b"\n" for i in range(50)))
    for args in (["-i", src], ["-i", "-"]):  # a file, or standard input redirected from it
        with open(src, "rb") as stdin:
            proc = run_cli(
                [workers_project, *args, "--workers", "auto", "--config", f"marker_dir={marks}"],
                stdin=stdin,
            )
        assert proc.returncode == 0, proc.stderr.decode()
        assert len(proc.stdout.splitlines()) == 50
        assert len(list(marks.glob("init-*"))) == 1  # no worker processes started
        shutil.rmtree(marks)
        marks.mkdir()


def test_the_wall_time_includes_starting_the_workers(tmp_path):
    slow = tmp_path / "slow"
    slow.mkdir()
    (slow / "inference.py").write_text(
        "import time\nfrom packflow import InferenceBackend\n\n"
        "class Backend(InferenceBackend):\n"
        "    def initialize(self):\n        time.sleep(1.0)\n\n"
        "    def execute(self, inputs):\n        return inputs\n"
    )
    (slow / "packflow.yaml").write_text("name: slow\ninference_backend: inference:Backend\n")
    stats = tmp_path / "stats.json"
    for workers in ("1", "2"):
        proc = run_cli(
            [slow, "--workers", workers, "--stats", stats, "-o", os.devnull],
            input_bytes=b'{"a": 1}\n',
        )
        assert proc.returncode == 0, proc.stderr.decode()
        summary = json.loads(stats.read_text())
        assert 1.0 <= summary["startup_seconds"] <= summary["wall_seconds"]
        assert "(start-up " in proc.stderr.decode()


def test_bad_workers_value_is_a_usage_error(workers_project):
    for bad in ("0", "many"):
        proc = run_cli([workers_project, "--workers", bad], input_bytes=b"")
        assert proc.returncode == 2
        assert b"--workers" in proc.stderr


def awkward_file(n: int) -> bytes:
    """What one process and the workers must cut alike: bad and blank lines,
    failing rows, CRLF endings, lines of 150 bytes (over a --max-line-bytes of
    100, but inside one read, so kept), a 2 MiB line (over it across reads, so
    refused), and a last line without its newline."""
    out = []
    for i in range(n):
        if i % 17 == 3:
            out.append(b'{"id": %d, broken\n' % i)
        elif i % 29 == 7:
            out.append(b"  \r\n" if i % 2 else b"\n")
        elif i == n // 2:
            out.append(json.dumps({"id": i, "pad": "x" * (2 << 20)}).encode() + b"\n")
        elif i % 31 == 9:
            out.append(json.dumps({"id": i, "pad": "y" * 120}).encode() + b"\r\n")
        else:
            row = {"id": i, "fail": i % 11 == 2, "nan": i % 13 == 4}
            out.append(json.dumps(row).encode() + b"\n")
    return b"".join(out) + json.dumps({"id": n}).encode()


@pytest.mark.parametrize("skip", [0, 1234])
def test_workers_reading_their_own_ranges_give_the_same_bytes(tmp_path, workers_project, skip):
    src = tmp_path / "in.jsonl"
    src.write_bytes(awkward_file(40_000))
    extra = ["--batch-size", "97", "--max-line-bytes", "100", "--skip-lines", str(skip)]
    (out1, err1, stats1), (out2, err2, stats2) = run_both(tmp_path, workers_project, src, *extra)
    assert out1 == out2 and err1 == err2
    same_summary(stats1, stats2)
    assert stats1["last_line"] == stats2["last_line"] == 40_001
    errors = [json.loads(x) for x in err1.splitlines()]
    assert {e["step"] for e in errors} == {"read", "parse", "execute", "serialize"}
    assert [e["line"] for e in errors if e["step"] == "read"] == [20_001]
    assert json.loads(out1.splitlines()[-1]) == {"id": 40_000}
    assert stats1["read"] == stats1["written"] + stats1["errors"]
    # The workers' segment files are gone.
    assert [p.name for p in tmp_path.iterdir() if "segments" in p.name] == []


def test_batch_timeout_in_workers_reading_a_file(tmp_path, workers_project):
    rows = [{"id": i, "sleep": 30 if i == 5 else 0} for i in range(12)]
    src, err = tmp_path / "in.jsonl", tmp_path / "err.jsonl"
    src.write_bytes(jsonl(rows))
    args = [workers_project, "--workers", "2", "--batch-size", "2", "--batch-timeout-s", "1"]
    proc = run_cli([*args, "-i", src, "--errors", err], timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    assert [json.loads(x)["id"] for x in proc.stdout.splitlines()] == [
        i for i in range(12) if i not in (4, 5)
    ]
    errors = [json.loads(x) for x in err.read_bytes().splitlines()]
    assert [(e["line"], e["step"]) for e in errors] == [(5, "timeout"), (6, "timeout")]
    # From standard input the parent pipes the batches: no timer there.
    proc = run_cli(args, input_bytes=jsonl(rows))
    assert proc.returncode == 2
    assert b"only on a regular input file" in proc.stderr


@pytest.mark.parametrize("signals", [1, 2, 3])
def test_signals_while_workers_read_a_file(tmp_path, workers_project, marks, signals):
    # A row that sleeps in the middle of a file of whole ranges: a first SIGTERM
    # lets the ranges taken finish and be written, a second stops at once; the
    # segment files go either way.
    rows = [{"id": i, "sleep": 3 if i == 500 else 0} for i in range(2000)]
    src, out, stats = tmp_path / "in.jsonl", tmp_path / "out.jsonl", tmp_path / "stats.json"
    src.write_bytes(jsonl(rows))
    proc = subprocess.Popen(
        PACKFLOW
        + ["run", str(workers_project), "-i", str(src), "-o", str(out), "--stats", str(stats)]
        + ["--workers", "2", "--batch-size", "10", "--config", f"marker_dir={marks}"],
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 90
    while time.time() < deadline and not (marks / "sleeping").exists():
        time.sleep(0.02)
    for _ in range(signals):
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3 if signals < 3 else 0.01)
    started = time.time()
    _, stderr = proc.communicate(timeout=60)
    if signals == 3:
        # The third exits on the spot (or, once the run is over and the
        # handlers are back, the signal ends it): the segments are gone first.
        assert proc.returncode in (143, -signal.SIGTERM), stderr.decode()
        assert [p.name for p in tmp_path.iterdir() if "segments" in p.name] == []
        return
    assert proc.returncode == 143, stderr.decode()
    assert b"Traceback" not in stderr
    summary = json.loads(stats.read_text())
    ids = [json.loads(x)["id"] for x in out.read_bytes().splitlines()]
    assert ids == list(range(len(ids))) and summary["written"] == len(ids)
    assert summary["last_line"] == len(ids)
    if signals == 1:
        assert 500 < len(ids) < 2000  # the sleeping range was finished, not all
    else:
        assert time.time() - started < 2.5 and len(ids) <= 500
    assert [p.name for p in tmp_path.iterdir() if "segments" in p.name] == []


def test_workers_on_an_archive_leave_no_extracted_files(tmp_path):
    archive = export_example(tmp_path / "dist")
    src = tmp_path / "in.jsonl"
    src.write_bytes(b"".join(sample_lines(3_000)))
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp)}
    outputs = []
    for workers in ("1", "2"):
        out = tmp_path / f"out-{workers}"
        proc = run_cli(
            [archive, "-i", src, "-o", out, "--workers", workers, "--batch-size", "500"], env=env
        )
        assert proc.returncode == 0, proc.stderr.decode()
        outputs.append(out.read_bytes())
        # Each worker extracted the archive for itself; nothing of it is left.
        assert list(temp.iterdir()) == [], workers
    assert outputs[0] == outputs[1] and len(outputs[0].splitlines()) == 3_000
