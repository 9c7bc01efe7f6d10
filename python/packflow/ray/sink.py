"""Writing a job's results: output JSON Lines to one directory, error rows to
another, packflow's own bytes (no pandas or Arrow JSON round trip), and the
job's accounting checked once every write task has finished.

Each write task writes one ``part-<job>-<task>.jsonl`` per directory, to a
hidden temporary name first and renamed when complete, so a retried task
replaces its file instead of adding a second one.
"""

from __future__ import annotations

import json
import os
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Optional

import pyarrow as pa
import pyarrow.fs
from ray.data import Datasink
from ray.data.block import BlockAccessor

from packflow import _core

__all__ = ["JobCounts", "JsonLinesDatasink"]


@dataclass
class JobCounts:
    """What the write tasks saw: rows read, written and rejected, batches, and
    each actor's latest per-step histograms (``stats_state()``)."""

    read: int = 0
    written: int = 0
    errors: int = 0
    batches: int = 0
    files: list[str] = field(default_factory=list)
    batch_lines: dict[str, list[tuple[int, int]]] = field(default_factory=lambda: defaultdict(list))
    actor_stats: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    actor_rows: dict[str, int] = field(default_factory=dict)
    actor_busy_ms: dict[str, float] = field(default_factory=dict)

    def add(self, other: JobCounts) -> None:
        self.read += other.read
        self.written += other.written
        self.errors += other.errors
        self.batches += other.batches
        self.files.extend(other.files)
        for file, spans in other.batch_lines.items():
            self.batch_lines[file].extend(spans)
        for actor, rows in other.actor_rows.items():
            self.actor_rows[actor] = self.actor_rows.get(actor, 0) + rows
        for actor, ms in other.actor_busy_ms.items():
            self.actor_busy_ms[actor] = self.actor_busy_ms.get(actor, 0.0) + ms
        for actor, stats in other.actor_stats.items():
            if _calls(stats) >= _calls(self.actor_stats.get(actor, {})):
                self.actor_stats[actor] = stats

    def check(self) -> None:
        """Raise ``RuntimeError`` unless read = written + errors and every file's
        batches cover it exactly once, from line 1 to its end row."""
        if self.read != self.written + self.errors:
            raise RuntimeError(
                f"accounting error: read {self.read} != written {self.written} "
                f"+ errors {self.errors}"
            )
        for file, spans in self.batch_lines.items():
            expected, ended = 1, False
            for first, lines in sorted(spans):
                if ended:
                    raise RuntimeError(
                        f"accounting error: {file}: a batch at line {first} after the file's end"
                    )
                if first < expected:
                    raise RuntimeError(
                        f"accounting error: {file}: lines {first}-{expected - 1} written twice"
                    )
                if first > expected:
                    raise RuntimeError(
                        f"accounting error: {file}: lines {expected}-{first - 1} never written"
                    )
                ended = lines == 0  # the end row
                expected = first + lines
            if not ended:
                raise RuntimeError(f"accounting error: {file}: lines from {expected} are missing")

    def actor_rates(self) -> dict[str, float]:
        """Rows per second of each actor while it was busy (in its calls)."""
        return {
            actor: self.actor_rows[actor] / (ms / 1000)
            for actor, ms in self.actor_busy_ms.items()
            if ms > 0 and actor in self.actor_rows
        }

    def steps(self) -> dict[str, dict[str, float]]:
        """Per step, the statistics of every actor's calls, merged from their
        histograms (as those of one backend that made all the calls)."""
        merged = _core.StepStats()
        for state in self.actor_stats.values():
            merged.merge_stats(state)
        return merged.stats()


def _calls(state: dict[str, dict[str, Any]]) -> int:
    return sum(s["count"] for s in state.values())


def _state_from_json(text: str) -> dict[str, dict[str, Any]]:
    """A ``stats_state()`` back from JSON (its bucket pairs are tuples)."""
    state = json.loads(text)
    for step in state.values():
        step["buckets"] = [tuple(pair) for pair in step["buckets"]]
    return state


def _is_uri(path: str) -> bool:
    return "://" in path and not path.startswith("local://")


def _filesystem(path: str) -> tuple[pyarrow.fs.FileSystem, str]:
    if _is_uri(path):
        return pyarrow.fs.FileSystem.from_uri(path)
    return pyarrow.fs.LocalFileSystem(), os.path.abspath(path.removeprefix("local://"))


class JsonLinesDatasink(Datasink):
    """Writes the result rows of :func:`packflow.ray.process`: ``output`` bytes
    under ``output_dir``, ``errors`` bytes under ``errors_dir`` (``None``: error
    rows are counted, not kept). ``batches_per_file``: result rows (batches of
    lines) Ray gathers for one write task, so one part file. After the write,
    :attr:`counts` holds the job's :class:`JobCounts`, already checked."""

    def __init__(
        self, output_dir: str, errors_dir: Optional[str] = None, *, batches_per_file: int = 64
    ):
        self.output_dir = str(output_dir)
        self.errors_dir = None if errors_dir is None else str(errors_dir)
        self.batches_per_file = batches_per_file
        self.job = uuid.uuid4().hex[:12]
        self.counts: Optional[JobCounts] = None

    @property
    def min_rows_per_write(self) -> Optional[int]:
        return self.batches_per_file

    @property
    def supports_distributed_writes(self) -> bool:
        # A plain path is a directory of the driver's machine: write there.
        return all(_is_uri(d) for d in (self.output_dir, self.errors_dir) if d is not None)

    def get_name(self) -> str:
        return "PackflowJsonLines"

    def on_write_start(self, schema: Any = None) -> None:
        for directory in (self.output_dir, self.errors_dir):
            if directory is not None:
                fs, path = _filesystem(directory)
                fs.create_dir(path, recursive=True)

    def write(self, blocks: Iterable[Any], ctx: Any) -> JobCounts:
        counts = JobCounts()
        name = f"part-{self.job}-{ctx.task_idx:06d}.jsonl"
        with _PartFile(self.output_dir, name) as out, _PartFile(self.errors_dir, name) as err:
            for block in blocks:
                table: pa.Table = BlockAccessor.for_block(block).to_arrow()
                columns = table.to_pydict()
                for file, first, lines, read, output, errors, actor, busy, stats in zip(
                    columns["file"],
                    columns["first_line"],
                    columns["lines"],
                    columns["read"],
                    columns["output"],
                    columns["errors"],
                    columns["actor"],
                    columns["busy_ms"],
                    columns["stats"],
                ):
                    out.write(output)
                    err.write(errors)
                    # Count the lines actually written, not what the engine said.
                    counts.read += read
                    counts.written += output.count(b"\n")
                    counts.errors += errors.count(b"\n")
                    counts.batches += 1 if lines else 0  # not a file's end row
                    if file is not None and first is not None:
                        counts.batch_lines[file].append((first, lines))
                    if actor is not None:
                        counts.actor_rows[actor] = counts.actor_rows.get(actor, 0) + read
                    if busy is not None:
                        counts.actor_busy_ms[actor] = counts.actor_busy_ms.get(actor, 0.0) + busy
                    if stats is not None:
                        counts.add(JobCounts(actor_stats={actor: _state_from_json(stats)}))
        counts.files = [f for f in (out.final, err.final) if f]
        return counts

    def on_write_complete(self, write_result: Any) -> None:
        counts = JobCounts()
        for part in write_result.write_returns:
            counts.add(part)
        counts.check()
        self.counts = counts


class _PartFile:
    """One part file, created on the first non-empty write and renamed from a
    hidden temporary name when closed without error."""

    def __init__(self, directory: Optional[str], name: str):
        self.directory = directory
        self.name = name
        self.stream: Any = None
        self.final = ""

    def __enter__(self) -> _PartFile:
        return self

    def write(self, data: bytes) -> None:
        if not data or self.directory is None:
            return
        if self.stream is None:
            self.fs, base = _filesystem(self.directory)
            self.tmp = f"{base}/.{self.name}.tmp"
            self.path = f"{base}/{self.name}"
            self.stream = self.fs.open_output_stream(self.tmp)
        self.stream.write(data)

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if self.stream is None:
            return
        self.stream.close()
        if exc_type is None:
            self.fs.move(self.tmp, self.path)
            self.final = self.path
        else:
            self.fs.delete_file(self.tmp)
