"""``make bench-workers``: ``packflow run --workers`` at 1 and 2 workers, for a
CPU-bound toy backend (about 1 ms of pure-Python work per 100 rows) and for the
light W6 backend (one matrix product per batch), on events of
``packflow.sample_data``.

    .venv/bin/python benches/workers.py                 # measure, print the table
    .venv/bin/python benches/workers.py --write-docs    # ... and put it in docs/performance.md
    .venv/bin/python benches/workers.py --quick         # tiny sizes (the smoke test)
    .venv/bin/python benches/workers.py --report --write-docs   # from the saved run

Two figures per case, the runs of each case interleaved (1, 2, 1, 2, ...) so
the load of this shared machine falls on both alike:

- steady state: rows/s through an already started pool (or the in-process
  engine for 1 worker), from a file to a file, process start not counted;
- end to end: the wall time of the ``packflow run`` command, start included.

It also reports where the parent's CPU time goes: the CPU seconds of the
parent process (reader, dispatch, writing) and of the workers, per run.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from packflow.cli.run_io import FileSink
from packflow.engine import BatchEngine, LineReader
from packflow.engine.file_ranges import (
    RangeSpec,
    cut_ranges,
    make_segment_dir,
    range_bytes_for,
    remove_segment_dir,
)
from packflow.engine.runner import StreamRunner
from packflow.engine.workers import WorkerPool
from packflow.loaders import InferenceBackendLoader
from packflow.sample_data import NUMERIC_FEATURES, sample_lines

REPO = Path(__file__).resolve().parents[1]
# Run as a script, this file has benches/ on sys.path, not the repository.
sys.path.insert(0, str(REPO))
from tests.support.sample_projects import write_project  # noqa: E402

DOC = REPO / "docs" / "performance.md"
SAVED = REPO / ".benchmarks" / "workers.json"
COMMAND = ".venv/bin/python benches/workers.py --rounds 5 --write-docs   # make bench-workers"
TARGETS = {"cpu": 1.8, "light": 1.6}
BEGIN, END = "<!-- workers: begin -->", "<!-- workers: end -->"

LIGHT = """
import numpy as np
from packflow import InferenceBackend

WEIGHTS = np.array([1e-9, 1e-4, 1e-2, 1e-2, 1e-3, 1e-6, 1e-6, 1e-2, 1.0])


class Backend(InferenceBackend):
    def execute(self, inputs):
        return inputs @ WEIGHTS

    def transform_outputs(self, scores):
        return [{"score": s, "alert": a} for s, a in zip(scores.tolist(), (scores > 2.0).tolist())]
"""

# About 10 us of interpreter work per row (a small loop per feature): a tree
# ensemble or post-processing written in Python.
CPU = """
from packflow import InferenceBackend


class Backend(InferenceBackend):
    def execute(self, inputs):
        out = []
        for row in inputs.tolist():
            acc = 0.0
            for x in row:
                for k in range(ROUNDS):
                    acc = acc * 0.5 + x * k
            out.append({"score": acc, "alert": acc > 1e6})
        return out
"""
CPU_ROUNDS = 8


@dataclass
class Case:
    name: str
    slug: str
    source: str
    rows: int
    batch_size: int = 1000


def case_project(root: Path, case: Case) -> Path:
    return write_project(
        root / case.slug,
        name=case.slug,
        backend=case.source.replace("ROUNDS", str(CPU_ROUNDS)),
        backend_config={"input_format": "numpy", "feature_names": list(NUMERIC_FEATURES)},
    )


def write_input(path: Path, rows: int) -> Path:
    with open(path, "wb") as fh:
        for start in range(0, rows, 100_000):
            fh.write(b"".join(sample_lines(min(100_000, rows - start))))
    return path


def _cpu_of(pids: list[int]) -> float:
    """CPU seconds used so far by these processes (Linux /proc)."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def _cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def steady_in_process(project: Path, src: Path, out: Path, batch_size: int) -> tuple[float, float]:
    backend = InferenceBackendLoader.from_path(str(project))
    engine = BatchEngine(backend)
    with open(src, "rb", buffering=0) as fin, open(out, "wb") as sink:
        runner = StreamRunner(backend, sink, engine=engine)
        cpu, start = _cpu_self(), time.perf_counter()
        # As `packflow run -i FILE` does: the next batch read while this one runs.
        runner.run(LineReader(fin, batch_size=batch_size), read_ahead=True)
        runner.finish()
        return time.perf_counter() - start, _cpu_self() - cpu


def steady_pool(pool: WorkerPool, src: Path, out: Path, batch_size: int) -> tuple[float, float]:
    """What ``packflow run --workers 2`` does with a regular file: the workers
    read their own ranges of it and write segment files; this process cuts the
    file and joins the segments."""
    segments = make_segment_dir(str(out))
    spec = RangeSpec(
        str(src), batch_size, 64 << 20, segments, range_bytes=range_bytes_for(src.stat().st_size, 2)
    )
    try:
        with open(src, "rb", buffering=0) as fin, open(out, "wb") as sink:
            runner = StreamRunner(pool, FileSink(str(out), sink.fileno(), own=False))
            cpu, start = _cpu_self(), time.perf_counter()
            ranges = cut_ranges(fin, spec, input_bytes=src.stat().st_size, workers=2)
            runner.run(ranges, through=functools.partial(pool.map_ranges, spec=spec))
            runner.finish()
            return time.perf_counter() - start, _cpu_self() - cpu
    finally:
        remove_segment_dir(segments)


def end_to_end(project: Path, src: Path, out: Path, workers: int, batch_size: int) -> float:
    cmd = [sys.executable, "-m", "packflow.cli", "run", str(project), "-i", str(src)]
    cmd += ["-o", str(out), "--workers", str(workers), "--batch-size", str(batch_size)]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - start


def load_average() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def measure(case: Case, root: Path, rounds: int) -> dict:
    project = case_project(root, case)
    src = write_input(root / f"{case.slug}.jsonl", case.rows)
    out = root / f"{case.slug}.out.jsonl"
    load = functools.partial(InferenceBackendLoader.from_path, str(project))
    times: dict[str, list[float]] = {"1": [], "2": [], "cli 1": [], "cli 2": []}
    parent_cpu: list[float] = []
    workers_cpu: list[float] = []
    alone_cpu: list[float] = []
    loads = [load_average()]
    with WorkerPool(load, 2) as pool:
        steady_pool(pool, src, out, case.batch_size)  # warm: page cache, first batches
        steady_in_process(project, src, out, case.batch_size)
        for _ in range(rounds):
            wall, cpu = steady_in_process(project, src, out, case.batch_size)
            times["1"].append(wall)
            alone_cpu.append(cpu)
            before = _cpu_of(pool.pids)
            wall, cpu = steady_pool(pool, src, out, case.batch_size)
            workers_cpu.append(_cpu_of(pool.pids) - before)
            times["2"].append(wall)
            parent_cpu.append(cpu)
        pool.close()
        step_stats = pool.get_stats()
    for _ in range(rounds):
        for n in (1, 2):
            times[f"cli {n}"].append(end_to_end(project, src, out, n, case.batch_size))
    loads.append(load_average())
    assert step_stats.get("execute", {}).get("count"), "the pool's statistics are empty"
    return {
        "name": case.name,
        "slug": case.slug,
        "rows": case.rows,
        "median": {k: statistics.median(v) for k, v in times.items()},
        "best": {k: min(v) for k, v in times.items()},
        "parent_cpu": statistics.median(parent_cpu),
        "alone_cpu": statistics.median(alone_cpu),
        "workers_cpu": statistics.median(workers_cpu),
        "loads": loads,
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def cpu_bound(r: dict) -> float:
    """The best 2 workers can do against 1 process on two otherwise idle cores:
    the run takes at least the parent's CPU time and half of all CPU time."""
    parent, total = r["parent_cpu"], r["parent_cpu"] + r["workers_cpu"]
    return r["alone_cpu"] / max(parent, total / 2)


def rate(rows: int, seconds: float) -> str:
    return f"{rows / seconds / 1e3:,.0f}k rows/s"


def table(results: list[dict]) -> str:
    lines = [
        "| backend | rows | CPU per 100 rows, 1 process | 1 worker | 2 workers | 2 vs 1 "
        "(median, best) | CPU s: 1 process / parent + workers at 2 | 2 vs 1 on two idle "
        "cores, from CPU time | `packflow run` 1 / 2 workers (start included) |",
        "|" + "---|" * 9,
    ]
    for r in results:
        m, b, rows = r["median"], r["best"], r["rows"]
        lines.append(
            f"| {r['name']} | {rows:,} | {1e5 * r['alone_cpu'] / rows:.3g} ms | "
            f"{rate(rows, m['1'])} | {rate(rows, m['2'])} | "
            f"{m['1'] / m['2']:.2f}x, {b['1'] / b['2']:.2f}x | "
            f"{r['alone_cpu']:.2f} / {r['parent_cpu']:.2f} + {r['workers_cpu']:.2f} | "
            f"{cpu_bound(r):.2f}x | "
            f"{m['cli 1']:.2f} s / {m['cli 2']:.2f} s ({m['cli 1'] / m['cli 2']:.2f}x) |"
        )
    return "\n".join(lines)


def verdicts(results: list[dict]) -> str:
    """The targets are for the whole command (start included), as the issue
    sets them; the steady figures say what the pool itself does."""
    out = []
    for r in results:
        target, bound = TARGETS[r["slug"]], cpu_bound(r)
        m = r["median"]
        whole, steady = m["cli 1"] / m["cli 2"], m["1"] / m["2"]
        verdict = "met" if whole >= target else "missed"
        out.append(
            f"- {r['name']}: target {target}x for the whole command; `packflow run` "
            f"{whole:.2f}x (steady {steady:.2f}x, from CPU time {bound:.2f}x): **{verdict}**."
        )
    return "\n".join(out)


def section(results: list[dict], rounds: int) -> str:
    loads = "\n".join(
        f"  - {r['name']}: {' at the start, '.join(r['loads'])} at the end" for r in results
    )
    return f"""## Workers: one machine

`packflow run --workers` at 1 and 2 workers on this {os.cpu_count()}-core machine,
written by `make bench-workers` on {results[0]["when"]}; {rounds} rounds each,
1 and 2 workers interleaved. Targets (issue 17): `packflow run --workers 2`,
the whole command on a million events from a regular file, at least 1.8x one
process for the CPU-bound backend (about 0.5 ms of pure-Python work per 100
rows), 1.6x for the light one (W6's: one matrix product per batch).

```
{COMMAND}
```

- Load averages (1/5/15 minutes) while it ran, on a machine shared with other
  work:
{loads}
- *1 worker*, *2 workers*: steady rows/s from a file to a file, through the
  in-process engine (what `--workers 1` runs) and through an already started
  pool of 2 whose workers read their own ranges of the file (what
  `--workers 2 -i FILE` runs); median of the rounds.
- *CPU s*: CPU seconds of one steady run in one process, and at 2 workers
  of the parent process (cutting the file into ranges, its event loop,
  joining the segments) and of the two workers: what running the batches
  elsewhere costs on top of the work handed out.
- *2 vs 1 from CPU time*: the speed-up those CPU seconds allow on two cores
  that nothing else uses (a run takes at least the parent's CPU time and half
  of all the CPU time).
- *`packflow run`*: wall time of the command, start included: the parent's
  imports, then (on Linux) two workers forked from it, each loading the
  project; median of the rounds.

{table(results)}

{verdicts(results)}

{WHERE_THE_TIME_GOES}"""


WHERE_THE_TIME_GOES = """\
**Reading the wall-clock columns.** Linux groups processes by session for
scheduling (autogroup): while other sessions keep the cores busy, all of this
run's processes share one session's slice, so a second worker gets no more CPU
and *2 vs 1* stays near 1x whatever the pool does. The CPU-time column does not
depend on that: it is the best wall-clock ratio the measured CPU seconds allow
once two cores are free.

**Where the time goes.** With a regular input file each worker reads its own
byte ranges and writes its outputs to segment files, so the parent never
carries the rows: it spends about 0.12 s of CPU per million rows (most of it
cutting the file into ranges: reading it in 1 MiB chunks and finding the batch
ends, the same batching one process does). On Linux the workers are forked
from the parent once it has imported numpy, pydantic and packflow, so a worker
starts in milliseconds (each then loads the project itself).

**One process uses the second core too.** Since the text reader reads the
next batch on a second thread while this one runs (src/read_ahead.rs), one
process running a numpy-preprocessor backend on a file keeps both cores busy
where the reading is a large part of the work: the light backend's million
events take about 0.76 s in one process (1.05 s before), and two workers,
which run the same work on the same two cores, cannot halve that; their
ratio on the light backend is near 1x by construction, and the light target
(set when one process used one core) is out of reach on two cores. The
CPU-bound backend's model is Python under the GIL, so there the second worker
is what uses the second core."""


def write_docs(text: str) -> None:
    doc = DOC.read_text()
    if BEGIN in doc:
        before, rest = doc.split(BEGIN, 1)
        after = rest.split(END, 1)[1]
        doc = before + BEGIN + "\n" + text + "\n" + END + after
    else:
        doc = doc.rstrip("\n") + "\n\n" + BEGIN + "\n" + text + "\n" + END + "\n"
    DOC.write_text(doc)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="tiny inputs: a smoke run")
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--report", action="store_true", help="no runs: the saved results")
    args = parser.parse_args(argv)
    scale = 100 if args.quick else 1
    cases = [
        Case("CPU-bound toy", "cpu", CPU, 1_000_000 // scale),
        Case("light (W6)", "light", LIGHT, 1_000_000 // scale),
    ]
    rounds = 1 if args.quick else args.rounds
    if args.report:
        saved = json.loads(SAVED.read_text())
        results, rounds = saved["results"], saved["rounds"]
    else:
        with tempfile.TemporaryDirectory(prefix="packflow-bench-workers-") as tmp:
            results = []
            for case in cases:
                results.append(measure(case, Path(tmp), rounds))
                print(f"{case.name}: done (load {' -> '.join(results[-1]['loads'])})", flush=True)
        if not args.quick:
            SAVED.parent.mkdir(exist_ok=True)
            SAVED.write_text(json.dumps({"results": results, "rounds": rounds}, indent=2))
    text = section(results, rounds)
    print(text)
    if args.write_docs and not args.quick:
        write_docs(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
