"""The wide-event stream as whole processes: ``packflow run`` on a file of wide
events (about 600 bytes each, nested objects, strings, lists; seven nested
numeric features read) against the reference packflow 0.4.1 driven by the json
module (a script that loads the same project with the reference's loader,
``json.loads`` each line, calls the backend per batch of 1,000 and
``json.dumps`` each output row). Start-up is included on both sides.

    .venv/bin/python benches/wide_stream.py                 # 30k events, 5 rounds
    .venv/bin/python benches/wide_stream.py -n 50000 --ours-n 500000 --rounds 7
    .venv/bin/python benches/wide_stream.py --write-events F -n 1000   # just the file

The runs alternate (ours, reference, ours, ...) so the load of a shared
machine falls on both alike; medians are reported with the load averages.
Both outputs are compared byte for byte on the same input.

This file imports nothing from packflow at module level: the reference run
(benches/test_w8_wide_stream.py under the reference's interpreter) imports it
too.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[1]
BATCH = 1_000
SEED = 17

#: The seven features, nested paths joined by the default delimiter.
FEATURES = [
    "http.latency_ms",
    "http.request.bytes",
    "http.response.bytes",
    "http.status",
    "host.cpu.load1",
    "user.geo.lat",
    "user.geo.lon",
]
#: Scale each feature to about 1; the score is their weighted sum.
WEIGHTS = [1e-2, 1e-4, 1e-5, 1e-3, 0.5, 1e-2, 1e-2]

BACKEND = f'''\
"""Wide-event scorer: a dot product of seven features with fixed weights."""

import numpy as np
from packflow import InferenceBackend

WEIGHTS = np.array({WEIGHTS!r})


class Backend(InferenceBackend):
    def execute(self, inputs):
        return inputs @ WEIGHTS

    def transform_outputs(self, scores):
        return [{{"score": s}} for s in scores.tolist()]
'''

# Written by hand (no yaml import): the reference's interpreter loads this file too.
CONFIG = (
    "name: wide-events\n"
    "version: 0.1.0\n"
    "inference_backend: inference:Backend\n"
    "loader: local\n"
    "backend_config:\n"
    "  input_format: numpy\n"
    "  feature_names:\n" + "".join(f"    - {f}\n" for f in FEATURES)
)

#: What a user of 0.4.1 writes around its loader (run by the reference's python).
REFERENCE_SCRIPT = """\
import json, sys
try:
    from loguru import logger
    logger.remove()
except ImportError:
    pass
from packflow.loaders import InferenceBackendLoader

project, src, dst, batch = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
backend = InferenceBackendLoader.from_project(project)
with open(src, "rb") as fin, open(dst, "w") as out:
    records = []
    for line in fin:
        records.append(json.loads(line))
        if len(records) == batch:
            out.writelines(json.dumps(row) + "\\n" for row in backend(records))
            records = []
    if records:
        out.writelines(json.dumps(row) + "\\n" for row in backend(records))
"""

_METHODS = ("GET", "GET", "GET", "POST", "PUT", "DELETE")
_STATUSES = (200, 200, 200, 200, 201, 204, 301, 304, 400, 404, 500, 503)
_ROUTES = ("/api/v2/orders", "/api/v2/users", "/api/v2/search", "/static/app.js", "/health")
_AGENTS = ("Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0", "curl/8.5.0", "python-requests/2.32")
_COUNTRIES = ("FR", "DE", "US", "BR", "JP", "IN", "NG", "AU")
_REGIONS = ("eu-west-1", "eu-central-1", "us-east-1", "ap-south-1")
_ROLES = ("reader", "writer", "admin", "billing", "support")


def wide_event(i: int, rng: random.Random) -> dict:
    """One event of about 600 bytes; the seven features are numbers."""
    region = rng.choice(_REGIONS)
    route = rng.choice(_ROUTES)
    return {
        "id": f"evt-{i:09d}-{rng.getrandbits(32):08x}",
        "ts": 1_700_000_000_000 + i * 37,
        "host": {
            "name": f"web-{rng.randint(1, 64):03d}.{region}.example.net",
            "ip": f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
            "cpu": {"load1": round(rng.uniform(0, 8), 2), "cores": rng.choice((4, 8, 16))},
        },
        "http": {
            "method": rng.choice(_METHODS),
            "path": f"{route}/{rng.randint(1, 99_999)}",
            "status": rng.choice(_STATUSES),
            "latency_ms": round(rng.lognormvariate(3, 1), 3),
            "request": {
                "bytes": rng.randint(0, 20_000),
                "headers": {
                    "user_agent": rng.choice(_AGENTS),
                    "accept": "application/json",
                },
            },
            "response": {"bytes": rng.randint(0, 500_000), "cached": rng.random() < 0.3},
        },
        "user": {
            "id": f"u-{rng.randint(1, 2_000_000)}",
            "roles": rng.sample(_ROLES, rng.randint(1, 3)),
            "geo": {
                "country": rng.choice(_COUNTRIES),
                "lat": rng.uniform(-60, 70),
                "lon": rng.uniform(-180, 180),
            },
        },
        "tags": ["prod", region, rng.choice(("canary", "stable", "stable"))],
        "trace": {
            "trace_id": f"{rng.getrandbits(64):016x}",
            "sampled": rng.random() < 0.1,
        },
        "sizes": [rng.randint(0, 4096) for _ in range(3)],
    }


def write_events(path: Path, n: int, seed: int = SEED) -> Path:
    """``n`` wide events as JSON Lines, the same bytes for the same ``seed``."""
    rng = random.Random(seed)
    with open(path, "wb") as out:
        chunk = []
        for i in range(n):
            chunk.append(json.dumps(wide_event(i, rng), separators=(",", ":")).encode() + b"\n")
            if len(chunk) == 10_000:
                out.write(b"".join(chunk))
                chunk = []
        out.write(b"".join(chunk))
    return path


def write_project(root: Path) -> Path:
    project = root / "wide-events"
    project.mkdir(parents=True, exist_ok=True)
    (project / "inference.py").write_text(BACKEND)
    (project / "packflow.yaml").write_text(CONFIG)
    return project


def write_reference_script(root: Path) -> Path:
    script = root / "reference_driver.py"
    script.write_text(REFERENCE_SCRIPT)
    return script


def reference_python() -> Path:
    env = os.environ.get("PACKFLOW_REFERENCE_PYTHON")
    path = Path(env) if env else REPO / ".venv-reference" / "bin" / "python"
    if not path.exists():
        raise SystemExit(f"no reference interpreter at {path} (run `make reference`)")
    return path


def _process_env(env: dict[str, str], pycache: Path) -> dict[str, str]:
    # Cached bytecode, as an installed package has: with PYTHONDONTWRITEBYTECODE
    # a checkout's modules would be compiled from source at every start (tens
    # of ms). The cache goes to a directory of its own, not into the sources.
    for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "PYTHONDONTWRITEBYTECODE"):
        env.pop(name, None)
    return {**env, "PYTHONPYCACHEPREFIX": str(pycache)}


def reference_env(pycache: Path) -> dict[str, str]:
    # PYTHONPATH would make the reference import this checkout's package.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return {**_process_env(env, pycache), "PACKFLOW_LOG_LEVEL": "ERROR"}


def ours_env(pycache: Path) -> dict[str, str]:
    return _process_env(dict(os.environ), pycache)


def ours_command(project: Path, src: Path, dst: Path) -> list[str]:
    args = ["run", str(project), "-i", str(src), "-o", str(dst)]
    return [sys.executable, "-m", "packflow.cli", *args]


def reference_command(python: Path, script: Path, project: Path, src: Path, dst: Path) -> list:
    return [str(python), str(script), str(project), str(src), str(dst), str(BATCH)]


def timed(cmd: list, env: dict[str, str], timeout: float) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env, timeout=timeout)
    return time.perf_counter() - start


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def compare(ours: Path, reference: Path) -> str:
    """How the two outputs differ: not at all, only in JSON separators (the
    reference's ``json.dumps`` writes ``", "`` and ``": "``, ``packflow run``
    compact JSON; the same line once rewritten compactly), or from some line on."""
    a, b = ours.read_bytes(), reference.read_bytes()
    if a == b:
        return "identical bytes"
    la, lb = a.splitlines(), b.splitlines()
    if len(la) != len(lb):
        return f"DIFFERENT: {len(la):,} lines from packflow, {len(lb):,} from the reference"
    for number, (x, y) in enumerate(zip(la, lb), 1):
        if x != json.dumps(json.loads(y), separators=(",", ":")).encode():
            return f"DIFFERENT from line {number}: packflow {x[:120]!r}, reference {y[:120]!r}"
    return (
        f"same lines except JSON separators ({len(la):,} lines; e.g. packflow {la[0]!r}, "
        f"reference {lb[0]!r}; each reference line rewritten with separators=(',', ':') "
        "equals packflow's)"
    )


def load_average() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=30_000, help="events (both sides)")
    parser.add_argument(
        "--ours-n", type=int, default=0, help="events for packflow's extra, larger file (0: none)"
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per process")
    parser.add_argument("--write-events", metavar="FILE", help="only write -n events to FILE")
    parser.add_argument("--keep", metavar="DIR", help="work in DIR (kept) instead of a temp dir")
    args = parser.parse_args(argv)
    if args.write_events:
        write_events(Path(args.write_events), args.n)
        return 0
    rounds = max(1, min(args.rounds, 50))
    with tempfile.TemporaryDirectory(prefix="packflow-wide-") as tmp:
        root = Path(args.keep) if args.keep else Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        project, script = write_project(root), write_reference_script(root)
        src = write_events(root / "events.jsonl", args.n)
        big = write_events(root / "events-big.jsonl", args.ours_n) if args.ours_n else None
        ours_out, ref_out = root / "ours.jsonl", root / "reference.jsonl"
        python = reference_python()
        cmds = {
            "packflow": (ours_command(project, src, ours_out), ours_env(root / "pycache")),
            "reference": (
                reference_command(python, script, project, src, ref_out),
                reference_env(root / "pycache-reference"),
            ),
        }
        one = root / "one.jsonl"
        one.write_bytes(src.read_bytes().split(b"\n", 1)[0] + b"\n")
        cmds["packflow 1 event"] = (
            ours_command(project, one, root / "one.out"),
            ours_env(root / "pycache"),
        )
        if big:
            cmds["packflow big"] = (
                ours_command(project, big, root / "big.out"),
                ours_env(root / "pycache"),
            )
        loads = [load_average()]
        times: dict[str, list[float]] = {name: [] for name in cmds}
        for cmd, env in cmds.values():  # warm the page cache, fill the bytecode caches
            timed(cmd, env, args.timeout)
        for _ in range(rounds):
            for name, (cmd, env) in cmds.items():
                times[name].append(timed(cmd, env, args.timeout))
        loads.append(load_average())
        size = src.stat().st_size
        print(f"events: {args.n:,} ({size / args.n:.0f} bytes each, {size / 2**20:.1f} MiB)")
        if big:
            print(f"packflow big: {args.ours_n:,} events ({big.stat().st_size / 2**20:.1f} MiB)")
        print(f"load averages (1/5/15 min): {loads[0]} at the start, {loads[1]} at the end")
        print(f"rounds: {rounds}, interleaved; medians (min)")
        med = {name: statistics.median(t) for name, t in times.items()}
        for name, t in times.items():
            n = {"packflow big": args.ours_n, "packflow 1 event": 1}.get(name, args.n)
            print(
                f"  {name:<13} {med[name]:8.3f} s ({min(t):.3f})  {n / med[name]:>12,.0f} events/s"
            )
        ratio = med["reference"] / med["packflow"]
        print(f"packflow vs reference, same file, whole processes: {ratio:.1f}x")
        if big:
            rate_ratio = (args.ours_n / med["packflow big"]) / (args.n / med["reference"])
            print(f"events/s ratio, packflow on the big file vs reference: {rate_ratio:.1f}x")
            per_event = (med["packflow big"] - med["packflow 1 event"]) / args.ours_n
            print(
                f"packflow: start-up (1 event) {med['packflow 1 event']:.3f} s, then "
                f"{per_event * 1e6:.2f} us per event ({1 / per_event:,.0f} events/s) "
                "on the big file"
            )
        print(
            f"outputs (sha256 packflow {digest(ours_out)}, reference {digest(ref_out)}): "
            f"{compare(ours_out, ref_out)}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
