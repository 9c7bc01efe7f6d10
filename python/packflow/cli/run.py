"""``packflow run``: stream JSON Lines from a file, a gzip file or stdin through a
project's backend and write JSON Lines out.

Exit codes: 0 done; 1 the backend could not be loaded, or ``--fail-on-error``
and some row failed; 2 a bad option or path (checked before anything is read
or truncated); 74 reading the input or writing an output failed mid-run (the
summary says how far the run got); 130/143 stopped by SIGINT/SIGTERM.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import stat
import sys
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Optional

import click

from packflow.cli.config_pairs import config_option, load_error
from packflow.cli.project_arg import ProjectPath, check_project
from packflow.cli.run_io import (
    EXIT_IO_ERROR,
    FileSink,
    GuardedSink,
    OutputWriteError,
    RunPaths,
    check_paths,
    finish_run,
    input_size,
    open_input,
    open_sink,
)
from packflow.cli.run_kafka import kafka_options, open_topic_sinks, run_kafka, uses_kafka
from packflow.cli.run_load import load_for_run
from packflow.cli.run_progress import Progress, write_snapshot
from packflow.cli.run_signals import EXIT_FOR_SIGNAL, ForcedStop, RunSignals, interrupt_loading
from packflow.constants import RUN_BATCH_SIZE, RUN_MAX_WAIT_MS
from packflow.engine import DEFAULT_MAX_LINE_BYTES, InputReadError, LineReader
from packflow.engine.runner import RunSummary, StreamRunner
from packflow.engine.worker_setup import WorkerStartError, workers_count
from packflow.kafka.address import is_kafka_url

if TYPE_CHECKING:
    from packflow.engine.workers import WorkerPool


def _show_warnings() -> None:
    """The library logs through a NullHandler; the CLI shows its warnings."""
    logger = logging.getLogger("packflow")
    if not any(getattr(h, "_packflow_cli", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setLevel(logging.WARNING)
        handler.setFormatter(logging.Formatter("Warning: %(message)s"))
        handler._packflow_cli = True  # type: ignore[attr-defined]
        logger.addHandler(handler)


def _workers_option(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    """Checked here (a usage error), counted once the input's size is known."""
    try:
        workers_count(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    return value


@click.command("run")
@click.argument("project", default=".", type=ProjectPath(exists=True))
@click.option(
    "-i",
    "--input",
    "input_path",
    default="-",
    show_default=True,
    help="JSON Lines file (.gz read as gzip), - for stdin, or kafka://HOST:PORT/TOPIC "
    "(with --group; docs/kafka.md).",
)
@click.option(
    "-o",
    "--output",
    "output_path",
    default="-",
    show_default=True,
    help="Where output JSON Lines go (.gz written as gzip), - for stdout, or "
    "kafka://HOST:PORT/TOPIC (with a Kafka input).",
)
@click.option(
    "--batch-size",
    default=RUN_BATCH_SIZE,
    show_default=True,
    type=click.IntRange(min=1),
    help="Most rows per backend call.",
)
@click.option(
    "--max-wait-ms",
    default=RUN_MAX_WAIT_MS,
    show_default=True,
    type=click.FloatRange(min=0),
    help="On a live stream, the longest a row waits for its batch to fill.",
)
@click.option(
    "--errors",
    "errors_path",
    default=None,
    help="JSON Lines file for rows that failed (line, raw, step, error, error_type), or "
    "kafka://HOST:PORT/TOPIC for dead letters (with a Kafka input).",
)
@config_option
@click.option(
    "--stats",
    "stats_path",
    default=None,
    help="Write the run summary here as JSON (also every --stats-every-s during the run).",
)
@click.option("--fail-on-error", is_flag=True, help="Exit with status 1 if any row failed.")
@click.option(
    "--max-line-bytes",
    default=DEFAULT_MAX_LINE_BYTES,
    show_default=True,
    type=click.IntRange(min=1),
    help="Longer lines become error rows (step read) and are skipped unread.",
)
@click.option(
    "--batch-timeout-s",
    default=None,
    type=click.FloatRange(min=0, min_open=True),
    help="A batch running longer is interrupted; its rows become error rows (step timeout).",
)
@click.option(
    "--skip-lines",
    default=0,
    type=click.IntRange(min=0),
    help="Pass over the first N input lines (resume: N = last_line from --stats).",
)
@click.option(
    "--stats-every-s",
    default=5.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="How often the --stats file is rewritten (atomically) while running.",
)
@click.option(
    "--workers",
    default="1",
    show_default=True,
    metavar="N|auto",
    callback=_workers_option,
    help="Processes running the backend, each on whole batches (auto: one per usable "
    "core, or 1 for an input file under 64 MiB, where starting workers costs more than "
    "they save); the outputs and errors are the same as with 1.",
)
@click.option(
    "--engine",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="ray: a Ray Data job (needs the ray extra); -i is then files, a glob or a URI, "
    "-o and --errors directories.",
)
@click.option("--address", default=None, help="With --engine ray: the cluster (default: local).")
@click.option(
    "--actors", default=2, show_default=True, type=click.IntRange(min=1), help="Ray actors."
)
@click.option(
    "--cpus-per-actor",
    default=None,
    type=click.FloatRange(min=0, min_open=True),
    help="CPUs Ray reserves per actor (default: up to 1, leaving one for reads and writes).",
)
@kafka_options
def run_command(
    project: str,
    input_path: str,
    output_path: str,
    batch_size: int,
    max_wait_ms: float,
    errors_path: Optional[str],
    config: dict[str, Any],
    stats_path: Optional[str],
    fail_on_error: bool,
    max_line_bytes: int,
    batch_timeout_s: Optional[float],
    skip_lines: int,
    stats_every_s: float,
    workers: str,
    engine: str,
    address: Optional[str],
    actors: int,
    cpus_per_actor: Optional[float],
    **kafka: Any,
) -> None:
    """Stream JSON Lines through the backend of the project at PROJECT.

    PROJECT is a project directory or an archive made by `packflow export`
    (checked against its packflow.lock before any of its code runs).

    Each input line gives one output line, in order; lines that are not JSON
    objects, and rows whose processing fails, go to --errors instead. A summary
    (rows, errors, rows/s, per-step p50/p99) is printed on stderr at the end.
    """
    _show_warnings()
    kafka = uses_kafka(click.get_current_context())  # kafka:// URLs (docs/kafka.md)
    if kafka == "input":
        return run_kafka(project, config, click.get_current_context(), time.perf_counter())
    if engine == "ray":
        from packflow.cli.run_ray import run_on_ray

        check_project(project)
        return run_on_ray(project, config, click.get_current_context())
    paths = RunPaths(input_path, output_path, errors_path, stats_path)
    check_paths(_files_only(paths))
    check_project(project)
    topics = open_topic_sinks(click.get_current_context()) if kafka else {}
    n_workers = workers_count(workers, input_size(input_path))
    if n_workers > 1 and batch_timeout_s is not None and not _regular_file(input_path):
        # Workers time their batches only where they read the input themselves.
        raise click.BadParameter(
            "works with --workers only on a regular input file (not standard input, "
            "a pipe or a .gz file)",
            param_hint="--batch-timeout-s",
        )
    # The run's wall time counts from here: loading the backend, or starting
    # the workers, is part of what a run costs (and workers cost most there).
    started = time.perf_counter()
    # SIGINT and SIGTERM stop the load (exit 130/143), whatever the handlers
    # this process inherited (a shell starts background jobs with SIGINT ignored).
    previous = {s: signal.signal(s, interrupt_loading) for s in EXIT_FOR_SIGNAL}
    pool: Optional[WorkerPool] = None
    try:
        backend, pool = load_for_run(project, config, n_workers)
        signals = RunSignals()
        if pool is not None:
            signals.on_force = pool.stop_now
        for s in EXIT_FOR_SIGNAL:
            signal.signal(s, signals.handler)
        summary, exit_code = _run(
            backend,
            pool,
            paths,
            signals,
            batch_size,
            max_wait_ms,
            max_line_bytes,
            batch_timeout_s,
            skip_lines,
            stats_every_s,
            started,
            topics,
        )
    except WorkerStartError as exc:  # a worker started mid-run could not load
        load_error(str(exc), exc.error_type or "")
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if pool is not None:
            pool.kill()
    finish_run(
        summary,
        exit_code,
        errors_path=errors_path,
        stats_path=stats_path,
        fail_on_error=fail_on_error,
    )


def _run(
    backend: Any,
    pool: Optional[WorkerPool],
    paths: RunPaths,
    signals: RunSignals,
    batch_size: int,
    max_wait_ms: float,
    max_line_bytes: int,
    batch_timeout_s: Optional[float],
    skip_lines: int,
    stats_every_s: float,
    started: float,
    topics: dict[str, Any],
) -> tuple[RunSummary, int]:
    """The read-run-write loop; returns the summary (already printed) and the
    exit code. Outputs are opened (and truncated) only once the input is open."""
    try:
        stream, live = open_input(paths.input)
    except OSError as exc:
        raise click.ClickException(f"could not open {paths.input}: {exc.strerror or exc}") from exc
    if paths.input == "-" and _is_terminal(sys.stdin):
        # Otherwise a user who forgot -i waits for output that never comes.
        click.echo(
            "Reading JSON Lines from standard input (the terminal): one object per line, "
            "Ctrl-D to end. Give -i FILE to read a file.",
            err=True,
        )
    sinks: list[FileSink] = []
    segments: Optional[str] = None
    try:
        try:
            # A kafka:// output is a sink of its own (packflow.kafka.sink.TopicLineSink).
            sinks.append(topics.get(paths.output) or open_sink(paths.output))
            if paths.errors:
                sinks.append(topics.get(paths.errors) or open_sink(paths.errors))
        except OSError as exc:
            raise click.ClickException(f"could not open an output: {exc}") from exc
        out = GuardedSink(sinks[0])
        err = GuardedSink(sinks[1]) if paths.errors else None
        runner = StreamRunner(
            backend,
            out,
            err,
            batch_timeout_s=batch_timeout_s,
            write_guard=signals,
            started=started,
            # A topic's flush waits for the broker: once, at the end.
            flush_each_batch=not topics,
        )
        through: Any = pool.map if pool is not None else None
        batches: Iterable[Any]
        if pool is not None and reads_itself(paths.input, live):
            from packflow.engine.file_ranges import (  # with workers only
                RangeSpec,
                cut_ranges,
                make_segment_dir,
                range_bytes_for,
            )

            # Each worker reads its own ranges of the file and writes its outputs
            # to segment files; this process cuts, orders and joins them.
            segments = make_segment_dir(paths.output)
            signals.on_exit = functools.partial(_drop_segments, pool, segments)
            size = os.fstat(stream.fileno()).st_size
            spec = RangeSpec(
                os.path.abspath(paths.input),
                batch_size,
                max_line_bytes,
                segments,
                range_bytes=range_bytes_for(size, pool.workers),
            )
            batches = cut_ranges(
                stream,
                spec,
                skip_lines=skip_lines,
                should_stop=lambda: signals.stopping,
                input_bytes=size,
                workers=pool.workers,
            )
            through = functools.partial(pool.map_ranges, spec=spec, batch_timeout_s=batch_timeout_s)
        else:
            batches = LineReader(
                stream,
                batch_size=batch_size,
                live=live,
                max_wait_ms=max_wait_ms,
                max_line_bytes=max_line_bytes,
                should_stop=lambda: signals.stopping,
                skip_lines=skip_lines,
            )
        progress = Progress(sys.stderr.isatty())
        exit_code = 0
        interrupted: Optional[str] = None
        flush = True
        next_snapshot = time.monotonic() + stats_every_s

        def on_batch(summary: RunSummary) -> None:
            nonlocal next_snapshot
            progress(summary)
            if paths.stats and time.monotonic() >= next_snapshot:
                write_snapshot(paths.stats, runner)
                next_snapshot = time.monotonic() + stats_every_s

        try:
            # With workers, the batches in flight are finished after a first
            # signal (no more are taken); a second one ends map() at once.
            runner.run(
                batches,
                through=through,
                should_stop=lambda: signals.stopping,
                on_batch=on_batch,
                # A file never makes the reader wait: its next batch is read
                # while this one runs.
                read_ahead=not live,
            )
            if signals.forced:
                name = signal.Signals(signals.first).name
                interrupted = f"{name} (second signal: the batches in flight were dropped)"
                exit_code = EXIT_FOR_SIGNAL[signals.first]
            elif signals.stopping:
                interrupted = signal.Signals(signals.first).name
                exit_code = EXIT_FOR_SIGNAL[signals.first]
        except ForcedStop as stop:
            interrupted = f"{stop} (second signal: the batch in flight was dropped)"
            exit_code = EXIT_FOR_SIGNAL[signals.first or stop.signum]
        except BrokenPipeError:
            # The reader went away (`| head`): stop quietly, without a traceback
            # from the interpreter flushing stdout at exit.
            if pool is not None:
                pool.kill()
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            interrupted, flush = "closed output", False
        except OutputWriteError as exc:
            click.echo(f"Error: {exc}", err=True)
            interrupted, exit_code, flush = "output error", EXIT_IO_ERROR, False
        except InputReadError as exc:
            click.echo(
                f"Error: could not read {paths.input} at line {exc.line}: {exc.cause}", err=True
            )
            interrupted, exit_code = "input error", EXIT_IO_ERROR
        signals.hold()
        progress.done()
        try:
            summary = runner.finish(interrupted_by=interrupted, flush=flush)
        except OutputWriteError as exc:
            click.echo(f"Error: {exc}", err=True)
            summary = runner.finish(interrupted_by="output error", flush=False)
            exit_code = exit_code or EXIT_IO_ERROR
        if exit_code:
            for sink in sinks:
                sink.trim()
    finally:
        if segments is not None:
            from packflow.engine.file_ranges import remove_segment_dir

            if pool is not None:
                pool.kill()  # no worker may write a segment after this
            remove_segment_dir(segments)
        for sink in sinks:
            try:
                sink.close()
            except OSError:
                pass
        if stream is not sys.stdin.buffer:
            stream.close()
    click.echo(summary.format(), err=True)
    return summary, exit_code


def _files_only(paths: RunPaths) -> RunPaths:
    """The paths check_paths checks: a kafka:// output is not a file."""
    return RunPaths(
        paths.input,
        os.devnull if is_kafka_url(paths.output) else paths.output,
        None if is_kafka_url(paths.errors) else paths.errors,
        paths.stats,
    )


def _drop_segments(pool: WorkerPool, segments: str) -> None:
    """Before a third signal exits on the spot: no worker may write a segment
    after its directory is gone."""
    from packflow.engine.file_ranges import remove_segment_dir

    pool.kill()
    remove_segment_dir(segments)


def _regular_file(path: str) -> bool:
    try:
        return reads_itself(path, not stat.S_ISREG(os.stat(path).st_mode))
    except OSError:
        return False


def reads_itself(path: str, live: bool) -> bool:
    """Whether workers read the input themselves: a regular file, not gzip
    (whose bytes are only known by reading them in order) and not a pipe."""
    return path != "-" and not path.endswith(".gz") and not live


def _is_terminal(stream: Any) -> bool:
    try:
        return stream is not None and stream.isatty()
    except (AttributeError, ValueError):  # closed, or replaced by an object without isatty
        return False
