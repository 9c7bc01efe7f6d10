"""What tests in several files share: running the CLI as a user does (a
subprocess of this interpreter), the example project, JSON Lines from rows, two
small in-process backends, and the worker-pool tests' project source (its
fixtures, ``workers_project`` and ``marks``, are in conftest.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from packflow import InferenceBackend

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "firewall-anomaly"
PACKFLOW = [sys.executable, "-m", "packflow.cli"]


def run_cli(args: list[Any], input_bytes: bytes | None = None, timeout: float = 180, **kw):
    """``packflow run ARGS`` to completion, output captured."""
    return subprocess.run(
        PACKFLOW + ["run", *map(str, args)],
        input=input_bytes,
        capture_output=True,
        timeout=timeout,
        **kw,
    )


def export_example(dist: Path) -> Path:
    """``packflow export`` of the example project into ``dist``: the archive."""
    proc = subprocess.run(
        PACKFLOW + ["export", str(EXAMPLE), "-o", str(dist)], capture_output=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr.decode()
    (archive,) = dist.glob("*.zip")
    return archive


def jsonl(rows: list[Any]) -> bytes:
    """Rows as JSON Lines; a row given as bytes is taken as its line."""
    return b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in rows)


class Doubler(InferenceBackend):
    """Records in, ``{"id", "double"}`` out; a row with ``fail`` fails its batch."""

    def execute(self, inputs):
        out = []
        for r in inputs:
            if r.get("fail"):
                raise ValueError(f"cannot score {r['id']}")
            out.append({"id": r["id"], "double": r["x"] * 2})
        return out


class RowSum(InferenceBackend):
    """A feature array in (numpy input format), ``{"sum": ...}`` per row out."""

    def execute(self, inputs):
        return inputs.sum(axis=1)

    def transform_outputs(self, sums):
        return [{"sum": s} for s in sums.tolist()]


#: The worker-pool tests' project: rows can sleep (``sleep``: seconds; a
#: ``sleeping`` marker is left in ``marker_dir``), kill their worker
#: (``die``: true or "always", or "once" for the first worker only), hold their
#: worker (``hold``: it writes its pid to ``marker_dir/pid`` and sleeps), fail
#: (``fail``) or give NaN (``nan``); ``initialize()`` leaves an ``init-PID``
#: marker, fails on ``fail_init``, and after ``starts_allowed`` starts.
WORKERS_BACKEND = """
import math
import os
import time

from packflow import BackendConfig, InferenceBackend


class Config(BackendConfig):
    marker_dir: str = ""
    fail_init: bool = False
    starts_allowed: int = 0


def _first(path):
    # True for the first process to get here (cross-process, via O_EXCL).
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        return True
    except FileExistsError:
        return False


class Backend(InferenceBackend):
    backend_config_model = Config

    def initialize(self):
        if self.config.fail_init:
            raise ValueError("no weights in this test")
        marks = self.config.marker_dir
        if marks:
            if self.config.starts_allowed:
                started = [n for n in os.listdir(marks) if n.startswith("init-")]
                if len(started) >= self.config.starts_allowed:
                    raise ValueError("the weights went away")
            open(os.path.join(marks, f"init-{os.getpid()}"), "w").close()

    def execute(self, inputs):
        marks = self.config.marker_dir
        out = []
        for r in inputs:
            if r.get("sleep"):
                if marks:
                    open(os.path.join(marks, "sleeping"), "w").close()
                time.sleep(r["sleep"])
            if r.get("die") in (True, "always"):
                os._exit(3)
            if r.get("die") == "once" and _first(os.path.join(marks, "died")):
                os._exit(4)
            if r.get("hold") and _first(os.path.join(marks, "held")):
                with open(os.path.join(marks, "pid.tmp"), "w") as fh:
                    fh.write(str(os.getpid()))
                os.rename(os.path.join(marks, "pid.tmp"), os.path.join(marks, "pid"))
                time.sleep(60)
            if r.get("fail"):
                raise RuntimeError(f"row {r.get('id')} refused")
            row = {"id": r.get("id")}
            if r.get("nan"):
                row["nan"] = math.nan
            out.append(row)
        return out
"""
