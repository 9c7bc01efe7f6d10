"""The collector: paused while ``import packflow`` runs (and left as it was),
and, in the processes packflow owns, told to ignore what was loaded before the
first batch (``gc.freeze``)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.sample_projects import write_project
from tests.support.testkit import run_cli

FREEZE_SEEN = """
import gc

from packflow import InferenceBackend


class Backend(InferenceBackend):
    def execute(self, inputs):
        return [{"frozen": gc.get_freeze_count() > 0, "collecting": gc.isenabled()} for _ in inputs]
"""


@pytest.mark.parametrize("before", ["enabled", "disabled"])
def test_import_leaves_the_collector_as_it_found_it(before):
    code = (
        "import gc\n"
        + ("gc.disable()\n" if before == "disabled" else "")
        + "import packflow\nprint(gc.isenabled(), gc.get_freeze_count())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # A library import never freezes anything: only packflow's own processes do.
    assert out.stdout.split() == [str(before == "enabled"), "0"]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_packflow_run_freezes_what_it_loaded(tmp_path, workers):
    project = write_project(tmp_path / "p", backend=FREEZE_SEEN)
    data = tmp_path / "in.jsonl"
    data.write_bytes(b'{"a": 1}\n' * 5)
    out = tmp_path / "out.jsonl"
    done = run_cli([project, "--input", data, "--output", out, "--workers", workers])
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows == [{"frozen": True, "collecting": True}] * 5
