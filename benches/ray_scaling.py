"""The Ray engine against Ray's own floor, for docs/scaling.md (not a pytest file).

    .venv/bin/python benches/ray_scaling.py                    # 1,000,000 events, 2 actors
    .venv/bin/python benches/ray_scaling.py --events 200000 --repeat 1

On one local cluster (``ray.init(num_cpus=2)``), over the same JSON Lines files:

- floor: Ray reads the lines (the same datasource as packflow), an identity
  ``map_batches`` on the same actor pool hands every block back unchanged, and
  a sink writes the raw bytes out: what any Ray Data job over these files pays;
- packflow: ``packflow.ray.run_files`` with the example project (Rust parse,
  the backend, Rust JSON, error rows, the accounting check);
- local: ``packflow run`` over the same files in one process, no Ray.

Runs alternate floor and packflow ``--repeat`` times after a small warm-up job
(worker processes started, imports done) and print the medians and each run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import ray
import ray.data
from ray.data import Datasink
from ray.data.block import BlockAccessor

from packflow.ray import JsonLinesDatasink, cpus_per_actor, process, read_json_lines
from packflow.sample_data import sample_lines

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "firewall-anomaly"


class Identity:
    """The floor's ``map_batches`` class: the block back, unchanged."""

    def __call__(self, batch: pa.Table) -> pa.Table:
        return batch


class RawBytesSink(Datasink):
    """The floor's sink: the ``data`` column's bytes, one file per write task."""

    def __init__(self, directory: str):
        self.directory = directory

    @property
    def min_rows_per_write(self) -> int:
        return 64  # as JsonLinesDatasink

    def on_write_start(self, schema: Any = None) -> None:
        os.makedirs(self.directory, exist_ok=True)

    def write(self, blocks: Any, ctx: Any) -> int:
        n = 0
        with open(os.path.join(self.directory, f"part-{ctx.task_idx:06d}.jsonl"), "wb") as fh:
            for block in blocks:
                for data in BlockAccessor.for_block(block).to_arrow().column("data").to_pylist():
                    fh.write(data)
                    n += data.count(b"\n")
        return n


def make_inputs(directory: Path, events: int, files: int) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / f"events-{k}.jsonl" for k in range(files)]
    stamp = directory / f"made-{events}-{files}"
    if not stamp.exists():
        per_file = events // files
        for k, path in enumerate(paths):
            with open(path, "wb") as fh:
                fh.writelines(sample_lines(per_file, seed=k, malformed_every=5000))
        stamp.touch()
    return paths


def run_floor(paths: list[Path], out: Path, actors: int, batch_size: int) -> float:
    started = time.perf_counter()
    lines = read_json_lines([str(p) for p in paths], batch_size=batch_size)
    ds = lines.map_batches(
        Identity,
        batch_format="pyarrow",
        batch_size=None,
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=cpus_per_actor(actors),
    )
    ds.write_datasink(RawBytesSink(str(out)))
    return time.perf_counter() - started


def run_packflow(
    paths: list[Path], out: Path, actors: int, batch_size: int
) -> tuple[float, dict[str, float], int]:
    started = time.perf_counter()
    lines = read_json_lines([str(p) for p in paths], batch_size=batch_size)
    sink = JsonLinesDatasink(str(out / "out"), str(out / "err"))
    process(lines, EXAMPLE, actors=actors).write_datasink(sink)
    wall = time.perf_counter() - started
    assert sink.counts is not None
    return wall, sink.counts.actor_rates(), sink.counts.read


def run_local(paths: list[Path], out: Path, batch_size: int) -> float:
    started = time.perf_counter()
    for k, path in enumerate(paths):
        subprocess.run(
            [sys.executable, "-m", "packflow.cli", "run", str(EXAMPLE), "-i", str(path)]
            + ["-o", str(out / f"{k}.jsonl"), "--errors", str(out / f"{k}.err")]
            + ["--batch-size", str(batch_size)],
            check=True,
            capture_output=True,
        )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "pf-ray")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    paths = make_inputs(args.data_dir / "in", args.events, args.files)
    work = args.data_dir / "work"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False

    def fresh() -> Path:
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        return work

    run_packflow(paths[:1], fresh(), args.actors, args.batch_size)  # warm-up
    floors, ours, rates = [], [], []
    for _ in range(args.repeat):
        floors.append(run_floor(paths, fresh(), args.actors, args.batch_size))
        wall, actor_rates, read = run_packflow(paths, fresh(), args.actors, args.batch_size)
        assert read == args.events // args.files * args.files
        ours.append(wall)
        rates.extend(actor_rates.values())
    local = run_local(paths, fresh(), args.batch_size)
    shutil.rmtree(work, ignore_errors=True)

    floor, pf = statistics.median(floors), statistics.median(ours)
    events = args.events // args.files * args.files
    figures = {
        "events": events,
        "files": args.files,
        "actors": args.actors,
        "cpus_per_actor": cpus_per_actor(args.actors),
        "floor_s": floors,
        "packflow_s": ours,
        "local_s": local,
        "floor_median_s": floor,
        "packflow_median_s": pf,
        "added_pct": 100 * (pf - floor) / floor,
        "packflow_rows_per_s": events / pf,
        "floor_rows_per_s": events / floor,
        "local_rows_per_s": events / local,
        "per_actor_busy_rows_per_s": statistics.median(rates),
        "load_before_after": os.getloadavg(),
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
