"""What ``packflow run`` shows while it runs: a progress line on a terminal, and
the ``--stats`` file rewritten every ``--stats-every-s``."""

from __future__ import annotations

import sys
import time

import click

from packflow.cli.run_io import write_stats
from packflow.engine.runner import RunSummary, StreamRunner

__all__ = ["Progress", "write_snapshot"]


class Progress:
    """A one-line progress display on a terminal, at most twice a second."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.started = time.perf_counter()
        self.last = 0.0

    def __call__(self, summary: RunSummary) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self.last < 0.5:
            return
        self.last = now
        rate = summary.read / max(now - self.started, 1e-9)
        sys.stderr.write(
            f"\r{summary.read:,} rows  {rate:,.0f} rows/s  {summary.errors:,} errors   "
        )
        sys.stderr.flush()

    def done(self) -> None:
        if self.enabled and self.last:
            sys.stderr.write("\n")


def write_snapshot(path: str, runner: StreamRunner) -> None:
    try:
        write_stats(path, runner.snapshot().to_dict())
    except OSError as exc:
        click.echo(f"Warning: could not update {path}: {exc}", err=True)
