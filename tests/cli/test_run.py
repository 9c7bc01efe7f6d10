"""``packflow run`` (cli/run.py) as a new user meets it: standard input on a
terminal, and error rows from worker processes."""

from __future__ import annotations

import json
import os
import pty
import subprocess

from packflow.sample_data import sample_lines
from tests.support.testkit import EXAMPLE, PACKFLOW, jsonl, run_cli

HINT = b"Reading JSON Lines from standard input (the terminal)"


def test_a_terminal_on_stdin_is_told_how_to_end_it():
    main, child = pty.openpty()
    try:
        proc = subprocess.Popen(
            [*PACKFLOW, "run", EXAMPLE],
            stdin=child,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        os.close(child)
        # A line, then Ctrl-D at the start of a line: the terminal's end of input.
        os.write(main, next(sample_lines(1)))
        os.write(main, b"\x04")
        out, err = proc.communicate(timeout=120)
    finally:
        os.close(main)
    assert proc.returncode == 0, err.decode()
    assert HINT in err and b"Ctrl-D to end" in err
    assert len(out.splitlines()) == 1


def test_a_pipe_on_stdin_gets_no_hint():
    proc = run_cli([EXAMPLE], input_bytes=next(sample_lines(1)))
    assert proc.returncode == 0
    assert HINT not in proc.stderr


def test_error_rows_from_worker_processes_carry_their_type(tmp_path):
    errors = tmp_path / "errors.jsonl"
    data = jsonl([{"id": 1}, b"[1]"]) + b"".join(sample_lines(3))
    proc = run_cli(
        [EXAMPLE, "--workers", "2", "--batch-size", "1", "--errors", errors, "-o", os.devnull],
        input_bytes=data,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    rows = [json.loads(line) for line in errors.read_bytes().splitlines()]
    assert [(r["line"], r["step"], r["error_type"]) for r in rows] == [
        (1, "execute", "TypeError"),
        (2, "parse", None),
    ]
