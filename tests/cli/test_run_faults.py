"""`packflow run` under faults: signals on a hung backend, batch timeouts, a full
disk, bad and clashing paths, huge lines, corrupt gzip, progress and resume.
Each case ran against the old runner and failed there."""

from __future__ import annotations

import gzip
import json
import os
import resource
import signal
import subprocess
import time
from pathlib import Path

import pytest

from packflow.sample_data import sample_lines
from tests.support.testkit import EXAMPLE, PACKFLOW, jsonl, run_cli

SLOW_BACKEND = """
import os, time
from packflow import InferenceBackend


class Backend(InferenceBackend):
    def initialize(self):
        if os.environ.get("SLOW_INIT"):
            open(os.environ["MARKER"], "w").close()
            time.sleep(1000)

    def execute(self, inputs):
        for r in inputs:
            if r.get("hang"):
                open(os.environ["MARKER"], "w").close()
                time.sleep(1000)
            if r.get("sleep"):
                time.sleep(r["sleep"])
        return [{"id": r.get("id")} for r in inputs]
"""


@pytest.fixture()
def slow_project(tmp_path):
    proj = tmp_path / "slow"
    proj.mkdir()
    (proj / "inference.py").write_text(SLOW_BACKEND)
    (proj / "packflow.yaml").write_text(
        "name: slow\nversion: 0.1.0\ninference_backend: inference:Backend\nloader: local\n"
    )
    return proj


def start(args, env_extra=None, **kw):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.Popen(
        PACKFLOW + ["run", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        **kw,
    )


def wait_for(path: Path, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


# -- 1. signals on a hung backend; batch timeout -------------------------------


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_second_signal_stops_a_hung_backend(tmp_path, slow_project, sig, code):
    src = tmp_path / "in.jsonl"
    src.write_bytes(jsonl([{"id": 1}, {"id": 2}]) + jsonl([{"id": 3, "hang": True}]))
    marker = tmp_path / "marker"
    out = tmp_path / "out.jsonl"
    proc = start([slow_project, "-i", src, "-o", out, "--batch-size", "2"], {"MARKER": str(marker)})
    wait_for(marker)
    proc.send_signal(sig)
    time.sleep(0.5)
    assert proc.poll() is None  # the first signal waits for the batch in flight
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == code, stderr.decode()
    assert "rows read 2, written 2, errors 0" in stderr.decode()
    assert "second signal" in stderr.decode()
    assert [json.loads(x)["id"] for x in out.read_bytes().splitlines()] == [1, 2]


def test_batch_timeout_dead_letters_the_batch(tmp_path, slow_project):
    rows = [{"id": 1}, {"id": 2}, {"id": 3, "sleep": 30}, {"id": 4}, {"id": 5}, {"id": 6}]
    err = tmp_path / "err.jsonl"
    proc = run_cli(
        [slow_project, "--batch-size", "2", "--batch-timeout-s", "0.5", "--errors", err],
        input_bytes=jsonl(rows),
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert [json.loads(x)["id"] for x in proc.stdout.splitlines()] == [1, 2, 5, 6]
    errors = [json.loads(x) for x in err.read_bytes().splitlines()]
    assert [(e["line"], e["step"]) for e in errors] == [(3, "timeout"), (4, "timeout")]
    assert "--batch-timeout-s" in errors[0]["error"]


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.parametrize("inherited", ["default", "sigint ignored"])
def test_a_signal_while_loading_exits_130_or_143(
    tmp_path, slow_project, sig, code, workers, inherited
):
    # "sigint ignored": started as a shell starts a background job (`cmd &`),
    # with SIGINT ignored; the command still stops on it while loading.
    marker = tmp_path / "marker"
    proc = start(
        [slow_project, "--workers", workers],
        {"MARKER": str(marker), "SLOW_INIT": "1"},
        stdin=subprocess.PIPE,
        preexec_fn=_ignore_sigint if inherited == "sigint ignored" else None,
    )
    wait_for(marker)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == code, stderr.decode()
    assert b"Interrupted while loading the backend." in stderr
    assert b"Traceback" not in stderr


# -- 3. disk full ------------------------------------------------------------------


def test_full_device_is_a_one_line_error_with_summary_and_stats(tmp_path):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    src = tmp_path / "in.jsonl"
    src.write_bytes(b"".join(sample_lines(300)))
    stats = tmp_path / "stats.json"
    proc = run_cli([EXAMPLE, "-i", src, "-o", "/dev/full", "--stats", stats])
    stderr = proc.stderr.decode()
    assert proc.returncode == 74, stderr
    assert "Error: could not write to /dev/full: No space left on device" in stderr
    assert "Traceback" not in stderr
    assert "rows read 0, written 0" in stderr
    assert json.loads(stats.read_text())["written"] == 0


def _limit_file_size(limit):
    def preexec():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return preexec


def test_output_that_fills_up_keeps_whole_lines_and_counts_them(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_bytes(b"".join(sample_lines(2000)))
    out, stats = tmp_path / "out.jsonl", tmp_path / "stats.json"
    # The file size limit stands in for a small disk: writes past it fail (EFBIG).
    proc = run_cli(
        [EXAMPLE, "-i", src, "-o", out, "--batch-size", "100"],
        preexec_fn=_limit_file_size(20_000),
    )
    stderr = proc.stderr.decode()
    assert proc.returncode == 74, stderr
    assert f"could not write to {out}" in stderr
    data = out.read_bytes()
    assert data.endswith(b"\n")
    lines = data.splitlines()
    assert all(json.loads(x) for x in lines)
    assert f"written {len(lines)}," in stderr
    # Now with room for the stats file, and the stats agree.
    proc = run_cli(
        [EXAMPLE, "-i", src, "-o", out, "--batch-size", "100", "--stats", stats],
        preexec_fn=_limit_file_size(20_000),
    )
    assert json.loads(stats.read_text())["written"] == len(out.read_bytes().splitlines())


# -- 4, 5. paths checked first, never the input as an output -------------------------


def test_bad_paths_are_usage_errors_before_anything_is_truncated(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_bytes(b"".join(sample_lines(10)))
    existing = tmp_path / "existing.jsonl"
    existing.write_bytes(b"keep me\n")
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    cases = [
        (["-i", tmp_path / "missing.jsonl"], "does not exist"),
        (["-i", tmp_path], "is a directory"),
        (["-i", src, "-o", existing, "--errors", tmp_path / "nodir" / "e.jsonl"], "nodir"),
        (["-i", src, "-o", tmp_path / "nodir" / "o.jsonl"], "does not exist"),
        (["-i", src, "-o", existing, "--stats", tmp_path / "nodir" / "s.json"], "nodir"),
        (["-i", src, "-o", a_file / "x"], "is not a directory"),
        (["-i", src, "-o", tmp_path], "is a directory"),
    ]
    for args, message in cases:
        proc = run_cli([EXAMPLE, *args])
        stderr = proc.stderr.decode()
        assert proc.returncode == 2, (args, stderr)
        assert message in stderr and "Traceback" not in stderr, (args, stderr)
        assert existing.read_bytes() == b"keep me\n"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_read_only_directory_is_refused(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    proc = run_cli([EXAMPLE, "--errors", ro / "e.jsonl"], input_bytes=b"")
    assert proc.returncode == 2 and b"not writable" in proc.stderr


def test_the_input_is_never_an_output(tmp_path):
    src = tmp_path / "in.jsonl"
    content = b"".join(sample_lines(10))
    src.write_bytes(content)
    link = tmp_path / "hardlink.jsonl"
    os.link(src, link)
    other = tmp_path / "o.jsonl"
    for args in (
        ["-i", src, "-o", src],
        ["-i", src, "-o", link],
        ["-i", src, "-o", other, "--errors", link],
        ["-i", src, "-o", other, "--errors", other],
    ):
        proc = run_cli([EXAMPLE, *args])
        assert proc.returncode == 2, (args, proc.stderr.decode())
        assert b"same file" in proc.stderr
        assert src.read_bytes() == content
    # Standard output redirected (in append mode, so the shell truncates nothing)
    # to the input file under another name.
    with open(src, "rb") as stdin, open(link, "ab") as stdout:
        proc = subprocess.run(
            PACKFLOW + ["run", str(EXAMPLE)], stdin=stdin, stdout=stdout, stderr=subprocess.PIPE
        )
    assert proc.returncode == 2 and b"same file" in proc.stderr
    assert src.read_bytes() == content


def test_unknown_config_key_is_an_error_listing_the_known_ones(tmp_path):
    proc = run_cli([EXAMPLE, "--config", "treshold=0.9"], input_bytes=b"")
    stderr = proc.stderr.decode()
    assert proc.returncode == 2, stderr
    assert "'treshold'" in stderr and "feature_names" in stderr
    assert "Invalid value for --config: unknown config key" in stderr


def test_unknown_config_key_is_an_error_for_serve_too():
    proc = subprocess.run(
        PACKFLOW + ["serve", str(EXAMPLE), "--port", "0", "--config", "treshold=0.9"],
        capture_output=True,
        timeout=60,
    )
    stderr = proc.stderr.decode()
    assert proc.returncode == 2, stderr
    assert "'treshold'" in stderr and "feature_names" in stderr
    assert b"Listening" not in proc.stdout


# -- 7. huge lines ------------------------------------------------------------------


def test_max_line_bytes_on_a_passthrough_project(tmp_path, slow_project):
    huge = json.dumps({"blob": "x" * 3_000_000}).encode()
    data = b'{"id": 1}\n' + huge + b'\n{"id": 3}\n'
    err = tmp_path / "err.jsonl"
    proc = run_cli([slow_project, "--max-line-bytes", "100000", "--errors", err], input_bytes=data)
    assert proc.returncode == 0, proc.stderr.decode()
    assert [json.loads(x)["id"] for x in proc.stdout.splitlines()] == [1, 3]
    (e,) = [json.loads(x) for x in err.read_bytes().splitlines()]
    assert (e["line"], e["step"]) == (2, "read")
    assert len(e["raw"]) == 1024 and "longer than the limit of 100000 bytes" in e["error"]
    assert err.stat().st_size < 10_000


# -- 8. corrupt gzip -------------------------------------------------------------------


def test_truncated_gzip_names_the_file_and_line_and_keeps_what_was_read(tmp_path):
    whole = tmp_path / "whole.jsonl.gz"
    with gzip.open(whole, "wb") as fh:
        fh.writelines(sample_lines(20000))
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    out = tmp_path / "out.jsonl"
    proc = run_cli([EXAMPLE, "-i", cut, "-o", out, "--batch-size", "500"])
    stderr = proc.stderr.decode()
    assert proc.returncode == 74, stderr
    assert f"could not read {cut} at line" in stderr and "Traceback" not in stderr
    written = len(out.read_bytes().splitlines())
    assert written > 1000
    line = int(stderr.split("at line ")[1].split(":")[0])
    assert written == line - 1
    assert f"rows read {written}, written {written}" in stderr


def test_a_file_named_gz_that_is_not_gzip(tmp_path):
    fake = tmp_path / "fake.jsonl.gz"
    fake.write_bytes(b"".join(sample_lines(5)))
    proc = run_cli([EXAMPLE, "-i", fake])
    stderr = proc.stderr.decode()
    assert proc.returncode == 74, stderr
    assert f"could not read {fake} at line 1" in stderr and "Traceback" not in stderr


# -- 9. progress and resume ------------------------------------------------------


def test_progress_file_during_the_run_and_resume_after_kill(tmp_path, slow_project):
    rows = [{"id": i, "sleep": 0.01} for i in range(400)]
    src = tmp_path / "in.jsonl"
    src.write_bytes(jsonl(rows))
    out, stats = tmp_path / "out.jsonl", tmp_path / "stats.json"
    proc = start(
        [
            slow_project,
            "-i",
            src,
            "-o",
            out,
            "--stats",
            stats,
            "--stats-every-s",
            "0.2",
            "--batch-size",
            "10",
        ]
    )
    deadline = time.monotonic() + 60
    snapshot = None
    while time.monotonic() < deadline:
        if stats.exists():
            snapshot = json.loads(stats.read_text())  # always whole: written atomically
            if snapshot["last_line"] >= 50:
                break
        time.sleep(0.05)
    proc.kill()
    proc.communicate(timeout=20)
    snapshot = json.loads(stats.read_text())
    assert snapshot["complete"] is False and snapshot["last_line"] >= 50
    done = snapshot["last_line"]
    kept = out.read_bytes().splitlines()[:done]
    resumed = run_cli([slow_project, "-i", src, "--skip-lines", done, "--batch-size", "50"])
    assert resumed.returncode == 0, resumed.stderr.decode()
    ids = [json.loads(x)["id"] for x in kept + resumed.stdout.splitlines()]
    assert ids == list(range(400))
