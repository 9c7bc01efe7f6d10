"""W8: the wide-event stream as a whole process, start-up included: events of
about 600 bytes (nested objects, strings, lists; benches/wide_stream.py), a
numpy backend reading seven nested features, a dot product, one ``{"score"}``
row per event.

packflow: the ``packflow run PROJECT -i F -o O`` command on 300,000 events.
The reference: a script run by its interpreter that loads the same project
with its loader, ``json.loads`` each line, calls the backend per 1,000 lines
and ``json.dumps`` each output row, on 30,000 events (a few seconds). Both
sizes are well past start-up's share on the reference's side; the target
compares events per second, start-up included on both sides."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import wide_stream as wide
from conftest import PACKAGE, REFERENCE, run, tag

GROUP = "W8 wide stream (whole process)"
N_OURS = 300_000
N_REFERENCE = 30_000
ROUNDS = 5
N = N_REFERENCE if REFERENCE else N_OURS


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("wide")
    project = wide.write_project(root)
    events = wide.write_events(root / "events.jsonl", N)
    return root, project, events


def expected_scores(events) -> np.ndarray:
    rows = []
    with open(events, "rb") as fh:
        for line in fh:
            event = json.loads(line)
            row = []
            for path in wide.FEATURES:
                value = event
                for part in path.split("."):
                    value = value[part]
                row.append(value)
            rows.append(row)
    return np.array(rows, dtype=np.float64) @ np.array(wide.WEIGHTS)


def check(out, events) -> None:
    scores = [json.loads(line)["score"] for line in out.read_bytes().splitlines()]
    assert len(scores) == N
    assert np.allclose(scores, expected_scores(events), rtol=1e-12)


def test_w8_whole_process(benchmark, setup):
    root, project, events = setup
    tag(benchmark, "W8", GROUP, PACKAGE, N)
    out = root / "out.jsonl"
    if REFERENCE:
        script = wide.write_reference_script(root)
        cmd = [sys.executable, str(script), str(project), str(events), str(out), str(wide.BATCH)]
        env = wide.reference_env(root / "pycache")
    else:
        cmd = wide.ours_command(project, events, out)
        env = wide.ours_env(root / "pycache")

    def whole_process() -> None:
        subprocess.run(cmd, check=True, capture_output=True, env=env, timeout=600)

    whole_process()  # fills the bytecode cache, as installing the package does
    run(benchmark, whole_process, rounds=ROUNDS)
    check(out, events)
