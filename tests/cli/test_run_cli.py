"""`packflow run` end to end through a real subprocess."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from packflow.sample_data import sample_lines
from tests.support.testkit import EXAMPLE, PACKFLOW, export_example, jsonl, run_cli

FAILING_BACKEND = """
from packflow import InferenceBackend


class Backend(InferenceBackend):
    def execute(self, inputs):
        out = []
        for r in inputs:
            if r.get("fail"):
                raise RuntimeError("row refused")
            out.append({"id": r.get("id"), "ok": True})
        return out
"""


@pytest.fixture()
def failing_project(tmp_path):
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "inference.py").write_text(FAILING_BACKEND)
    (proj / "packflow.yaml").write_text(
        "name: failing\nversion: 0.1.0\ninference_backend: inference:Backend\nloader: local\n"
    )
    (proj / "requirements.txt").write_text("packflow\n")
    return proj


def write_lines(path, lines):
    path.write_bytes(b"".join(lines))
    return path


def test_example_project_end_to_end(tmp_path):
    src = write_lines(tmp_path / "in.jsonl", sample_lines(3000, malformed_every=500))
    out, err, stats = tmp_path / "out.jsonl", tmp_path / "err.jsonl", tmp_path / "stats.json"
    proc = run_cli(
        [EXAMPLE, "-i", src, "-o", out, "--errors", err, "--stats", stats, "--batch-size", "256"]
    )
    assert proc.returncode == 0, proc.stderr.decode()
    outs = out.read_bytes().splitlines()
    errs = [json.loads(x) for x in err.read_bytes().splitlines()]
    assert len(outs) == 2994 and len(errs) == 6
    first = json.loads(outs[0])
    assert set(first) == {"anomaly_score", "alert"}
    rows = [json.loads(x) for x in outs]
    assert all(type(r["anomaly_score"]) is float and type(r["alert"]) is bool for r in rows)
    assert all(round(r["anomaly_score"], 6) == r["anomaly_score"] for r in rows)
    summary = json.loads(stats.read_text())
    assert summary["read"] == 3000 == summary["written"] + summary["errors"]
    assert "rows read 3000" in proc.stderr.decode()
    assert "p99" in proc.stderr.decode()


def test_failing_row_isolated_and_fail_on_error(tmp_path, failing_project):
    rows = [{"id": i, "fail": i == 5} for i in range(12)]
    data = jsonl(rows)
    err = tmp_path / "err.jsonl"
    proc = run_cli([failing_project, "--errors", err, "--batch-size", "4"], input_bytes=data)
    assert proc.returncode == 0, proc.stderr.decode()
    outs = [json.loads(x) for x in proc.stdout.splitlines()]
    assert [o["id"] for o in outs] == [i for i in range(12) if i != 5]
    (e,) = [json.loads(x) for x in err.read_bytes().splitlines()]
    assert e["line"] == 6 and e["step"] == "execute" and "row refused" in e["error"]

    proc = run_cli([failing_project, "--fail-on-error"], input_bytes=data)
    assert proc.returncode == 1
    assert b"pass --errors FILE" in proc.stderr
    assert len(proc.stdout.splitlines()) == 11


def test_gzip_input_and_output(tmp_path):
    src = tmp_path / "in.jsonl.gz"
    with gzip.open(src, "wb") as fh:
        fh.writelines(sample_lines(500))
    out = tmp_path / "out.jsonl.gz"
    proc = run_cli([EXAMPLE, "-i", src, "-o", out])
    assert proc.returncode == 0, proc.stderr.decode()
    with gzip.open(out, "rb") as fh:
        assert len(fh.read().splitlines()) == 500


def test_empty_input(tmp_path):
    proc = run_cli([EXAMPLE], input_bytes=b"")
    assert proc.returncode == 0
    assert proc.stdout == b""
    assert "rows read 0" in proc.stderr.decode()


def test_ten_megabyte_line_and_invalid_utf8(tmp_path, failing_project):
    big = json.dumps({"id": 1, "blob": "x" * (10 * 1024 * 1024)}).encode()
    data = big + b"\n" + b'{"id": 2, "s": "\xff"}\n' + b'{"id": 3}\n'
    err = tmp_path / "err.jsonl"
    proc = run_cli([failing_project, "--errors", err], input_bytes=data)
    assert proc.returncode == 0, proc.stderr.decode()
    assert [json.loads(x)["id"] for x in proc.stdout.splitlines()] == [1, 3]
    (e,) = [json.loads(x) for x in err.read_bytes().splitlines()]
    assert e["line"] == 2 and e["step"] == "parse"


@pytest.mark.parametrize("workers", [[], ["--workers", "2"]], ids=["one process", "workers"])
def test_closed_stdout_ends_quietly(workers):
    if shutil.which("head") is None:
        pytest.skip("no head")
    cmd = " ".join(PACKFLOW + ["run", str(EXAMPLE), "-i", "-", *workers])
    gen = f"{sys.executable} -m packflow.sample_data 200000"
    proc = subprocess.run(
        f"{gen} | {cmd} | head -n 5", shell=True, capture_output=True, timeout=300
    )
    assert len(proc.stdout.splitlines()) == 5
    assert b"Traceback" not in proc.stderr
    assert b"BrokenPipe" not in proc.stderr


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_mid_stream_finishes_the_batch(tmp_path, sig, code):
    out = tmp_path / "out.jsonl"
    proc = subprocess.Popen(
        PACKFLOW
        + ["run", str(EXAMPLE), "-o", str(out), "--batch-size", "100", "--max-wait-ms", "20"],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    lines = list(sample_lines(1000))
    proc.stdin.write(b"".join(lines[:350]))
    proc.stdin.flush()
    deadline = time.time() + 60
    while time.time() < deadline and (not out.exists() or out.stat().st_size == 0):
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    proc.stdin.close()
    assert proc.returncode == code, stderr.decode()
    data = out.read_bytes()
    assert data.endswith(b"\n")
    rows = [json.loads(x) for x in data.splitlines()]
    assert len(rows) == 350
    assert sig.name in stderr.decode()


def test_config_override_and_bad_config(tmp_path):
    src = write_lines(tmp_path / "in.jsonl", sample_lines(200))
    proc = run_cli([EXAMPLE, "-i", src, "--config", "threshold=0.0"])
    assert proc.returncode == 0, proc.stderr.decode()
    assert all(json.loads(x)["alert"] for x in proc.stdout.splitlines())
    proc = run_cli([EXAMPLE, "-i", src, "--config", "novalue"])
    assert proc.returncode != 0
    assert b"KEY=VALUE" in proc.stderr


def test_help_describes_the_command():
    proc = subprocess.run(PACKFLOW + ["run", "--help"], capture_output=True, timeout=60)
    assert proc.returncode == 0
    assert b"JSON Lines" in proc.stdout


def test_import_packflow_loads_no_optional_library():
    env = dict(os.environ)
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import packflow, sys; print('pandas' in sys.modules, "
            "'torch' in sys.modules, 'PIL' in sys.modules, 'yaml' in sys.modules)",
        ],
        capture_output=True,
        env=env,
        timeout=60,
    )
    assert proc.stdout.strip() == b"False False False False"


def test_runs_an_exported_archive_and_refuses_a_tampered_one(tmp_path):
    import zipfile

    zip_path = export_example(tmp_path / "dist")
    src = write_lines(tmp_path / "in.jsonl", sample_lines(200))
    from_dir = run_cli([EXAMPLE, "-i", src])
    from_zip = run_cli([zip_path, "-i", src])
    assert from_zip.returncode == 0, from_zip.stderr.decode()
    assert from_zip.stdout == from_dir.stdout and len(from_zip.stdout.splitlines()) == 200

    # A changed file that the manifest does not match: refused before any import.
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(zip_path) as zin, zipfile.ZipFile(tampered, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.endswith(".py"):
                data += b"\nraise SystemExit('imported a tampered file')\n"
            zout.writestr(info, data)
    proc = run_cli([tampered, "-i", src])
    assert proc.returncode == 1
    assert b"imported a tampered file" not in proc.stderr
    assert b"could not load the backend" in proc.stderr
