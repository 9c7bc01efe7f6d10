"""``packflow run``: stream JSON Lines from a file, a gzip file or stdin through a
project's backend and write JSON Lines out."""

from __future__ import annotations

import functools
import gzip
import json
import os
import signal
import stat
import sys
import time
from contextlib import ExitStack
from typing import Any, BinaryIO, Optional

import click

from packflow.engine import LineReader
from packflow.engine.workers import WorkerPool, WorkerStartError, workers_count
from packflow.runner import RunSummary, StreamRunner

_EXIT_FOR_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}


def _parse_config(pairs: tuple[str, ...]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--config")
        try:
            config[key] = json.loads(raw)
        except ValueError:
            config[key] = raw
    return config


def _open_input(path: str, stack: ExitStack) -> tuple[BinaryIO, bool]:
    """The byte stream to read and whether it is live (a pipe or terminal, where
    waiting for more data makes sense)."""
    if path == "-":
        stream = sys.stdin.buffer
    elif path.endswith(".gz"):
        return stack.enter_context(gzip.open(path, "rb")), False
    else:
        stream = stack.enter_context(open(path, "rb", buffering=0))
    try:
        mode = os.fstat(stream.fileno()).st_mode
        live = not stat.S_ISREG(mode)
    except (OSError, ValueError):
        live = False
    return stream, live


def _open_output(path: str, stack: ExitStack) -> BinaryIO:
    if path == "-":
        return sys.stdout.buffer
    if path.endswith(".gz"):
        return stack.enter_context(gzip.open(path, "wb"))
    return stack.enter_context(open(path, "wb"))


class _Progress:
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


def _load_backend(project: str, config: dict[str, Any]) -> Any:
    from packflow.loaders import InferenceBackendLoader

    return InferenceBackendLoader.from_path(project, **config)


def _start_pool(project: str, config: dict[str, Any], workers: int) -> WorkerPool:
    from packflow.loaders import InferenceBackendLoader

    load = functools.partial(InferenceBackendLoader.from_path, os.path.abspath(project), **config)
    pool = WorkerPool(load, workers)
    pool.start()
    return pool


def _workers_option(_ctx: click.Context, _param: click.Parameter, value: str) -> int:
    try:
        return workers_count(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


@click.command("run")
@click.argument("project", default=".", type=click.Path(exists=True))
@click.option(
    "-i",
    "--input",
    "input_path",
    default="-",
    show_default=True,
    help="JSON Lines file (.gz read as gzip), or - for stdin.",
)
@click.option(
    "-o",
    "--output",
    "output_path",
    default="-",
    show_default=True,
    help="Where output JSON Lines go (.gz written as gzip), or - for stdout.",
)
@click.option(
    "--batch-size",
    default=1000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Most rows per backend call.",
)
@click.option(
    "--max-wait-ms",
    default=50.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="On a live stream, the longest a row waits for its batch to fill.",
)
@click.option(
    "--errors",
    "errors_path",
    default=None,
    help="JSON Lines file for rows that failed (line, raw, step, error).",
)
@click.option(
    "--config",
    "config_pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="Backend config override (VALUE parsed as JSON when it is JSON).",
)
@click.option("--stats", "stats_path", default=None, help="Write the run summary here as JSON.")
@click.option("--fail-on-error", is_flag=True, help="Exit with status 1 if any row failed.")
@click.option(
    "--workers",
    default="1",
    show_default=True,
    metavar="N|auto",
    callback=_workers_option,
    help="Processes running the backend, each on whole batches (auto: one per usable "
    "core); the outputs and errors are the same as with 1.",
)
def run_command(
    project: str,
    input_path: str,
    output_path: str,
    batch_size: int,
    max_wait_ms: float,
    errors_path: Optional[str],
    config_pairs: tuple[str, ...],
    stats_path: Optional[str],
    fail_on_error: bool,
    workers: int,
) -> None:
    """Stream JSON Lines through the backend of the project at PROJECT.

    PROJECT is a project directory or an archive made by `packflow export`
    (checked against its packflow.lock before any of its code runs).

    Each input line gives one output line, in order; lines that are not JSON
    objects, and rows whose processing fails, go to --errors instead. A summary
    (rows, errors, rows/s, per-step p50/p99) is printed on stderr at the end.
    """
    config = _parse_config(config_pairs)
    pool: Optional[WorkerPool] = None
    try:
        if workers > 1:
            backend = pool = _start_pool(project, config, workers)
        else:
            backend = _load_backend(project, config)
    except Exception as exc:  # noqa: BLE001 - reported to the user
        raise click.ClickException(f"could not load the backend: {exc}") from exc

    received: dict[str, int] = {}

    def on_signal(signum: int, _frame: Any) -> None:
        if "signal" in received and pool is not None:
            pool.stop_now()  # a second signal: stop without the batches in flight
        received.setdefault("signal", signum)

    previous = {s: signal.signal(s, on_signal) for s in _EXIT_FOR_SIGNAL}
    progress = _Progress(sys.stderr.isatty())
    exit_code = 0
    interrupted: Optional[str] = None
    with ExitStack() as stack:
        if pool is not None:
            stack.enter_context(pool)  # closed at the end, killed on an error
        stream, live = _open_input(input_path, stack)
        sink = _open_output(output_path, stack)
        errors_sink = stack.enter_context(open(errors_path, "wb")) if errors_path else None
        runner = StreamRunner(backend, sink, errors_sink)
        try:
            reader = LineReader(
                stream,
                batch_size=batch_size,
                live=live,
                max_wait_ms=max_wait_ms,
                should_stop=lambda: "signal" in received,
            )
            # With workers, the batches in flight are finished after a signal.
            results = pool.map(reader) if pool is not None else ((b, None) for b in reader)
            for batch, result in results:
                if batch.rejected is not None:
                    runner.reject(batch.rejected)
                elif result is not None:
                    runner.write(result)
                else:
                    runner.process(batch.data, batch.first_line)
                progress(runner.summary)
                if "signal" in received and pool is None:
                    break
            if "signal" in received:
                signum = received["signal"]
                interrupted = signal.Signals(signum).name
                exit_code = _EXIT_FOR_SIGNAL[signum]
            summary = runner.finish(interrupted_by=interrupted)
        except WorkerStartError as exc:
            raise click.ClickException(f"could not load the backend: {exc}") from exc
        except BrokenPipeError:
            # The reader went away (`| head`): stop quietly, without a traceback
            # from the interpreter flushing stdout at exit.
            if pool is not None:
                pool.kill()
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            summary = runner.finish(interrupted_by="closed output", flush=False)
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
    progress.done()
    click.echo(summary.format(), err=True)
    if summary.errors and not errors_path:
        click.echo(
            f"Warning: {summary.errors} row(s) were rejected; pass --errors FILE to keep them.",
            err=True,
        )
    if stats_path:
        with open(stats_path, "w", encoding="utf-8") as fh:
            json.dump(summary.to_dict(), fh, indent=2)
    if exit_code == 0 and fail_on_error and summary.errors:
        exit_code = 1
    if exit_code:
        sys.exit(exit_code)
