"""``packflow run``'s files and end of run (cli/run_io.py): which outputs count
as the same file, the mode of every output, and what the end of a run with
rejected rows says."""

from __future__ import annotations

import gzip
import json
import os
import stat
import subprocess
import sys

import pytest

from packflow.cli.run_io import input_size
from packflow.sample_data import sample_lines
from tests.support.testkit import EXAMPLE, PACKFLOW, jsonl, run_cli

GOOD = next(sample_lines(1))
# Line 1 fails in the backend (no features: the example cannot score it), line 3
# is not JSON: the first error in input order is line 1's.
ROWS = jsonl([{"id": 1}]) + GOOD + b"not json {\n"


def test_dev_null_for_two_outputs_is_not_the_same_file():
    proc = run_cli([EXAMPLE, "-o", os.devnull, "--errors", os.devnull], input_bytes=ROWS)
    assert proc.returncode == 0, proc.stderr.decode()
    assert b"rows read 3" in proc.stderr


def test_a_regular_file_twice_is_still_refused(tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_bytes(b"")
    proc = run_cli([EXAMPLE, "-o", out, "--errors", out], input_bytes=ROWS)
    assert proc.returncode == 2
    assert b"is the same file as -o/--output" in proc.stderr
    new = tmp_path / "new.jsonl"
    proc = run_cli([EXAMPLE, "-o", new, "--stats", new], input_bytes=ROWS)
    assert proc.returncode == 2
    assert b"is the same file as -o/--output" in proc.stderr


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_every_output_follows_the_umask(tmp_path, umask):
    names = ["out.jsonl", "errors.jsonl", "stats.json", "out.jsonl.gz"]
    args = ["-o", "out.jsonl", "--errors", "errors.jsonl", "--stats", "stats.json"]
    for extra in (args, ["-o", "out.jsonl.gz"]):
        subprocess.run(
            [*PACKFLOW, "run", EXAMPLE, *extra],
            input=ROWS,
            cwd=tmp_path,
            check=True,
            capture_output=True,
            timeout=120,
            preexec_fn=lambda: os.umask(umask),
        )
    modes = {name: stat.S_IMODE((tmp_path / name).stat().st_mode) for name in names}
    assert modes == dict.fromkeys(names, 0o666 & ~umask)


def test_rejected_rows_warning_names_the_first_reason():
    proc = run_cli([EXAMPLE], input_bytes=ROWS)
    assert proc.returncode == 0
    [warning] = [line for line in proc.stderr.decode().splitlines() if "rejected" in line]
    assert warning.startswith(
        "Warning: 2 row(s) were rejected; pass --errors FILE to keep them. "
        "The first: line 1, step execute: TypeError: "
    )
    assert len(warning) < 300


def test_the_first_reason_is_one_short_line(tmp_path):
    backend = tmp_path / "p" / "inference.py"
    backend.parent.mkdir()
    backend.write_text(
        "from packflow import InferenceBackend\n\n"
        "class Backend(InferenceBackend):\n"
        "    def execute(self, inputs):\n"
        "        raise ValueError('first\\nsecond ' + 'x' * 5000)\n"
    )
    (backend.parent / "packflow.yaml").write_text("name: p\ninference_backend: inference:Backend\n")
    proc = run_cli([backend.parent], input_bytes=jsonl([{"a": 1}]))
    [warning] = [line for line in proc.stderr.decode().splitlines() if "rejected" in line]
    assert "The first: line 1, step execute: ValueError: " in warning
    assert "first second xxx" in warning
    assert warning.endswith("...") and len(warning) < 300


def test_fail_on_error_says_why_it_exits_1(tmp_path):
    proc = run_cli([EXAMPLE, "--fail-on-error"], input_bytes=ROWS)
    assert proc.returncode == 1
    assert (
        "Error: 2 row(s) failed, so --fail-on-error exits with status 1; "
        "they were not kept (no --errors).\n"
    ) in proc.stderr.decode()
    errors = tmp_path / "errors.jsonl"
    proc = run_cli([EXAMPLE, "--fail-on-error", "--errors", errors], input_bytes=ROWS)
    assert proc.returncode == 1
    assert (
        f"Error: 2 row(s) failed, so --fail-on-error exits with status 1; they are in {errors}.\n"
    ) in proc.stderr.decode()
    assert proc.stderr.decode().count("Error:") == 1
    rows = [json.loads(line) for line in errors.read_bytes().splitlines()]
    assert [(r["line"], r["step"], r["error_type"]) for r in rows] == [
        (1, "execute", "TypeError"),
        (3, "parse", None),
    ]
    ok = run_cli([EXAMPLE, "--fail-on-error"], input_bytes=GOOD)
    assert ok.returncode == 0 and b"Error" not in ok.stderr


def test_stats_hold_the_first_error(tmp_path):
    stats = tmp_path / "stats.json"
    run_cli([EXAMPLE, "--stats", stats, "-o", os.devnull], input_bytes=ROWS, check=True)
    first = json.loads(stats.read_text())["first_error"]
    assert (first["line"], first["step"], first["error_type"]) == (1, "execute", "TypeError")


def test_input_size_for_workers_auto(tmp_path, monkeypatch):
    plain = tmp_path / "in.jsonl"
    plain.write_bytes(GOOD * 100)
    packed = tmp_path / "in.jsonl.gz"
    packed.write_bytes(gzip.compress(GOOD * 100))
    assert input_size(str(plain)) == len(GOOD) * 100
    assert input_size(str(packed)) == len(GOOD) * 100  # uncompressed, from the trailer
    # A trailer that wrapped past 4 GiB (smaller than the file itself): unknown.
    packed.write_bytes(packed.read_bytes()[:-4] + (1).to_bytes(4, "little"))
    assert input_size(str(packed)) is None
    with open(plain, "rb", buffering=0) as fh:
        fh.read(10)
        monkeypatch.setattr(sys, "stdin", fh)
        assert input_size("-") == len(GOOD) * 100 - 10  # what is left of a redirected file
    read_end, write_end = os.pipe()
    try:
        with os.fdopen(read_end, "rb") as pipe:
            monkeypatch.setattr(sys, "stdin", pipe)
            assert input_size("-") is None
    finally:
        os.close(write_end)
