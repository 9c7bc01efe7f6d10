"""Where a stream's time goes, by job: start-up (imports by package, loading the
project) against per-batch work (reading, the Rust parse, the Python glue
between Rust calls, the model's hooks, check + dump, writing).

    .venv/bin/python benches/profile_run.py wide            # `packflow run`, whole process
    .venv/bin/python benches/profile_run.py wide -n 300000
    .venv/bin/python benches/profile_run.py w6              # make bench's W6 (run_stream)
    .venv/bin/python benches/profile_run.py wide --top 25   # ... and the heaviest functions

``wide`` profiles ``packflow run`` on benches/wide_stream.py's events in a
child process under cProfile (start-up included); ``w6`` profiles
``run_stream`` in this process on benches/test_w6_stream.py's workload, as
``make bench`` times it (no start-up). cProfile sees the Rust extension's
functions as single calls and the model's Python hooks, which Rust calls back,
as their children; each function's own time is given to the nearest job its
callers lead to (split by how much of its time each caller accounts for).
cProfile adds a fixed cost per Python call, so the glue's share is somewhat
high; the native split inside the Rust calls needs ``perf`` (see
docs/performance.md for the commands).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Optional

BENCHES = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCHES))

import wide_stream  # noqa: E402

Key = tuple[str, int, str]

#: Rust entry points, by job; anything else of _core is "Rust, other".
RUST = {
    "parse_lines_to_ndarray": "per batch: Rust parse (text to array)",
    "parse_lines": "per batch: Rust parse (text to records)",
    "check_and_dump_lines": "per batch: Rust check + dump",
    "run_prepared": "per batch: Rust pipeline (steps, timing)",
    "run": "per batch: Rust pipeline (steps, timing)",
    "line_batch_end": "per batch: reading: Rust line_batch_end",
    "join_lines": "per batch: reading: Rust join_lines (list of lines to one buffer)",
}
GLUE_FILES = (
    "packflow/engine/batch.py",
    "packflow/engine/runner.py",
    "packflow/backend/base.py",
    "packflow/backend/preprocessors.py",
    "packflow/runner.py",
    "packflow/cli/run.py",
)


def _package_of(path: str) -> str:
    parts = Path(path).parts
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1].split(".")[0]
    if "packflow" in parts:
        inside = parts[len(parts) - 1 - parts[::-1].index("packflow") :]
        return ".".join(inside).removesuffix(".py").removesuffix(".__init__")
    return "the standard library"


def anchor(key: Key, project: Optional[str]) -> Optional[str]:
    """The job a function's own time belongs to, or None to ask its callers."""
    path, _line, name = key
    if project and path.startswith(project):
        return "per batch: the model's hooks (Python, numpy)" if name != "<module>" else None
    if path == "~":
        for rust_name, job in RUST.items():
            if name in (
                f"<built-in method packflow._core.{rust_name}>",
                f"<method '{rust_name}' of 'packflow._core.Pipeline' objects>",
            ):
                return job
        if "packflow._core" in name:
            return "per batch: Rust, other calls"
        if name in ("<built-in method posix.write>", "<method 'write' of '_io.BytesIO' objects>"):
            return "per batch: writing output"
        if name == "<method 'read' of '_io.FileIO' objects>":
            return "per batch: reading: read() calls"
        return None
    if path.startswith("<frozen importlib") or name in (
        "<built-in method marshal.loads>",
        "<built-in method builtins.__import__>",
        "<built-in method _imp.create_dynamic>",
        "<built-in method _imp.exec_dynamic>",
    ):
        return "start-up: import machinery (finding modules, reading .pyc, loading .so)"
    if name == "<module>":
        return f"start-up: import {_package_of(path)}"
    if "packflow/loaders/" in path or "packflow/project/" in path or "project_arg.py" in path:
        return "start-up: loading the project (config, yaml, backend)"
    if "packflow/engine/reader.py" in path or "packflow/engine/file_ranges.py" in path:
        return "per batch: reading: LineReader (Python, bytes copies)"
    if "packflow/cli/run_io.py" in path or (path.endswith("runner.py") and name == "write"):
        return "per batch: writing output"
    for glue in GLUE_FILES:
        if path.endswith(glue):
            return f"per batch: Python glue: {glue.removeprefix('packflow/')}"
    if "/click/" in path:
        return "start-up: click (command line)"
    return None


def attribute(stats: pstats.Stats, project: Optional[str]) -> dict[str, float]:
    """Seconds per job: each function's own time, given to its own job or
    split over its callers' jobs in proportion to their share of its time."""
    table = stats.stats  # type: ignore[attr-defined]
    memo: dict[Key, dict[str, float]] = {}

    def shares(key: Key, seen: frozenset) -> dict[str, float]:
        if key in memo:
            return memo[key]
        own = anchor(key, project)
        if own is not None:
            result = {own: 1.0}
        else:
            _cc, _nc, _tt, _ct, callers = table[key]
            weights = {c: v[3] for c, v in callers.items() if c not in seen and c in table}
            total = sum(weights.values())
            if not weights or total <= 0:
                result = {"other (unattributed)": 1.0}
            else:
                result = defaultdict(float)
                for caller, w in weights.items():
                    for job, share in shares(caller, seen | {key}).items():
                        result[job] += share * w / total
                result = dict(result)
        # Kept for every function: a share computed inside a cycle leaves out
        # the edge back into it, which is what a cycle's time needs anyway.
        memo[key] = result
        return result

    jobs: dict[str, float] = defaultdict(float)
    for key, (_cc, _nc, tt, _ct, _callers) in table.items():
        for job, share in shares(key, frozenset()).items():
            jobs[job] += tt * share
    return dict(jobs)


def report(stats: pstats.Stats, project: Optional[str], title: str, top: int) -> None:
    jobs = attribute(stats, project)
    total = sum(jobs.values())
    startup = sum(v for k, v in jobs.items() if k.startswith("start-up"))
    batch = sum(v for k, v in jobs.items() if k.startswith("per batch"))
    print(f"## {title}\n")
    print(f"profiled total {total:.3f} s: start-up {startup:.3f} s, per batch {batch:.3f} s\n")
    print("| job | s | % of all | % of per-batch |")
    print("|---|---|---|---|")
    small = {k: v for k, v in jobs.items() if k.startswith("start-up") and v < total / 200}
    if len(small) > 1:
        for k in small:
            del jobs[k]
        jobs[f"start-up: the rest ({len(small)} packages, each < 0.5%)"] = sum(small.values())
    for job, secs in sorted(jobs.items(), key=lambda kv: (not kv[0].startswith("start"), -kv[1])):
        of_batch = f"{100 * secs / batch:.1f}" if job.startswith("per batch") and batch else ""
        print(f"| {job} | {secs:.3f} | {100 * secs / total:.1f} | {of_batch} |")
    if top:
        out = io.StringIO()
        stats.stream = out  # type: ignore[attr-defined]
        stats.sort_stats("tottime").print_stats(top)
        stats.stream = sys.stdout  # type: ignore[attr-defined]
        print("\n```\n" + out.getvalue().strip() + "\n```")
    print()


#: ``packflow run`` under cProfile, timed in CPU time (this process's), so that
#: time the process spends preempted on a loaded machine is not counted.
CHILD = """
import cProfile, runpy, sys, time
out = sys.argv[1]
sys.argv = ["packflow", *sys.argv[2:]]
profiler = cProfile.Profile(time.process_time)
try:
    profiler.runcall(runpy.run_module, "packflow.cli", run_name="__main__", alter_sys=True)
except SystemExit as stop:
    if stop.code:
        raise
finally:
    profiler.dump_stats(out)
"""


def profile_wide(n: int, top: int) -> None:
    with tempfile.TemporaryDirectory(prefix="packflow-profile-") as tmp:
        root = Path(tmp)
        project = wide_stream.write_project(root)
        src = wide_stream.write_events(root / "events.jsonl", n)
        prof = root / "run.prof"
        args = wide_stream.ours_command(project, src, root / "out.jsonl")[3:]
        cmd = [sys.executable, "-c", CHILD, str(prof), *args]
        env = wide_stream.ours_env(root / "pycache")
        # The first run fills the bytecode cache, as installing a package does.
        subprocess.run(cmd, check=True, capture_output=True, env=env)
        subprocess.run(cmd, check=True, capture_output=True, env=env)
        stats = pstats.Stats(str(prof))
        report(stats, str(project), f"`packflow run` on {n:,} wide events (whole process)", top)


def profile_w6(rounds: int, top: int) -> None:
    import test_w6_stream as w6

    from packflow.runner import run_stream

    lines = w6._lines()
    backend = w6._backend()
    run_stream(backend, lines, io.BytesIO(), batch_size=w6.BATCH)  # warm
    profiler = cProfile.Profile(time.process_time)
    for _ in range(rounds):
        sink = io.BytesIO()
        profiler.enable()
        run_stream(backend, lines, sink, batch_size=w6.BATCH)
        profiler.disable()
    stats = pstats.Stats(profiler)
    project = str(Path(w6.__file__).resolve())
    title = f"W6: run_stream on {w6.N:,} events x {rounds} rounds (in process, no start-up)"
    report(stats, project, title, top)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("workload", choices=("wide", "w6"))
    parser.add_argument("-n", type=int, default=300_000, help="wide: events")
    parser.add_argument("--rounds", type=int, default=10, help="w6: rounds of the stream")
    parser.add_argument("--top", type=int, default=0, help="also list the N heaviest functions")
    args = parser.parse_args(argv)
    for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        os.environ.pop(name, None)
    if args.workload == "wide":
        profile_wide(args.n, args.top)
    else:
        profile_w6(max(1, min(args.rounds, 100)), args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
