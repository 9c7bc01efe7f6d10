"""``packflow run -i kafka://HOST:PORT/TOPIC --group G``: the run on a topic
(see :mod:`packflow.kafka.door`), started from the ``run`` command's options,
with the command's signals, summary, ``--stats`` and exit codes.

Exit codes as ``run``'s: 0 done (``--stop-when-idle``); 2 a bad option, a
topic that does not exist; 74 the broker did not answer, or a message could
not be delivered (what was done is committed first); 130/143 a signal (what
was in flight is acknowledged and committed first, unless a second one came).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any, Optional

import click

from packflow.cli.config_pairs import load_error
from packflow.cli.run_io import (
    EXIT_IO_ERROR,
    FileSink,
    GuardedSink,
    OutputWriteError,
    RunPaths,
    check_paths,
    finish_run,
    open_sink,
    write_stats,
)
from packflow.cli.run_load import load_for_run
from packflow.cli.run_progress import Progress
from packflow.cli.run_signals import EXIT_FOR_SIGNAL, ForcedStop, RunSignals, interrupt_loading
from packflow.constants import (
    KAFKA_CONNECT_TIMEOUT_S,
    KAFKA_DRAIN_TIMEOUT_S,
    KAFKA_MAX_IN_FLIGHT,
    KAFKA_MAX_IN_FLIGHT_MB,
)
from packflow.engine.worker_setup import WorkerStartError, workers_count
from packflow.extras import install_hint
from packflow.kafka.address import (
    KafkaAddress,
    KafkaConfigError,
    is_kafka_url,
    parse_kafka_url,
    read_kafka_config,
)

__all__ = ["kafka_options", "open_topic_sinks", "run_kafka", "uses_kafka"]

#: The options only a Kafka input has.
KAFKA_ONLY = ("group", "stop_when_idle", "max_in_flight", "max_in_flight_mb")
#: ``run`` options a Kafka input does not take (a message is not a line of a
#: file, and the Ray engine reads files).
NOT_WITH_KAFKA = ("skip_lines", "batch_timeout_s", "address", "actors")


def kafka_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The Kafka options of ``run`` (the command takes them as ``**kafka``)."""
    options = [
        click.option(
            "--group",
            default=None,
            help="With -i kafka://...: the consumer group (offsets are committed there; "
            "processes in one group share the partitions).",
        ),
        click.option(
            "--stop-when-idle",
            default=None,
            type=click.FloatRange(min=0),
            metavar="SECONDS",
            help="With -i kafka://...: exit 0 once every partition held has been at its "
            "end this long, with everything committed (counted from the assignment).",
        ),
        click.option(
            "--kafka-config",
            default=None,
            type=click.Path(exists=True, dir_okay=False),
            help="librdkafka properties (key=value lines; consumer.KEY or producer.KEY "
            "for one side only): security protocol, SASL, TLS files, timeouts.",
        ),
        click.option(
            "--max-in-flight",
            default=KAFKA_MAX_IN_FLIGHT,
            show_default=True,
            type=click.IntRange(min=1),
            help="With -i kafka://...: most messages consumed and not yet acknowledged "
            "on the output side; at the cap, consumption waits.",
        ),
        click.option(
            "--max-in-flight-mb",
            default=KAFKA_MAX_IN_FLIGHT_MB,
            show_default=True,
            type=click.FloatRange(min=0, min_open=True),
            help="With -i kafka://...: the same cap on the messages' bytes (MiB).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def uses_kafka(ctx: click.Context) -> Optional[str]:
    """``"input"`` when the run reads a topic, ``"output"`` when only its
    outputs go to topics, else None; Kafka options that do not fit are a
    usage error."""
    p = ctx.params
    if is_kafka_url(p["input_path"]):
        return "input"
    for name in KAFKA_ONLY:
        if _given(ctx, name):
            option = "--" + name.replace("_", "-")
            raise click.UsageError(f"{option} needs a Kafka input (-i kafka://HOST:PORT/TOPIC)")
    if not any(is_kafka_url(p[name]) for name in ("output_path", "errors_path")):
        if p["kafka_config"] is not None:
            raise click.UsageError("--kafka-config needs a kafka:// input or output")
        return None
    if p["engine"] != "local":
        raise click.UsageError("--engine ray does not write to Kafka; use the local engine")
    if _given(ctx, "workers") and p["workers"] != "1":
        raise click.UsageError("--workers is not supported with a kafka:// output")
    return "output"


def open_topic_sinks(ctx: click.Context) -> dict[str, Any]:
    """For a file input: a sink per kafka:// output (``-o``, ``--errors``),
    by URL, once the broker has said the topic exists."""
    p = ctx.params
    try:
        from packflow.kafka.sink import Producers, TopicLineSink
        from packflow.kafka.source import KafkaDoorError
    except ImportError as exc:
        raise click.ClickException(
            f"Kafka needs confluent-kafka ({exc}); install it with: {install_hint('kafka')}"
        ) from exc
    _, producer_config = _split_config(p["kafka_config"])
    producers = Producers(producer_config, logging.getLogger("packflow.kafka"))
    sinks: dict[str, Any] = {}
    for name, hint in (("output_path", "-o/--output"), ("errors_path", "--errors")):
        if not is_kafka_url(p[name]):
            continue
        address = _address(p[name], hint)
        try:
            _check_topic(lambda a=address: producers.check_topic(a, KAFKA_CONNECT_TIMEOUT_S), hint)
        except KafkaDoorError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(EXIT_IO_ERROR)
        sinks[p[name]] = TopicLineSink(producers, address, KAFKA_DRAIN_TIMEOUT_S)
    return sinks


def _given(ctx: click.Context, name: str) -> bool:
    return ctx.get_parameter_source(name) not in (click.core.ParameterSource.DEFAULT, None)


def _address(value: str, hint: str) -> KafkaAddress:
    try:
        return parse_kafka_url(value)
    except KafkaConfigError as exc:
        raise click.BadParameter(str(exc), param_hint=hint) from exc


def _split_config(path: Optional[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The consumer's and the producer's properties from ``--kafka-config``:
    ``consumer.KEY`` and ``producer.KEY`` for one side, other keys for both."""
    if path is None:
        return {}, {}
    try:
        found = read_kafka_config(path)
    except KafkaConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--kafka-config") from exc
    consumer: dict[str, Any] = {}
    producer: dict[str, Any] = {}
    for key, value in found.items():
        side, _, rest = key.partition(".")
        if side == "consumer" and rest:
            consumer[rest] = value
        elif side == "producer" and rest:
            producer[rest] = value
        else:
            consumer[key] = producer[key] = value
    return consumer, producer


def run_kafka(project: str, config: dict[str, Any], ctx: click.Context, started: float) -> None:
    """The whole command for a Kafka input: check, connect, load, run, stop."""
    p = ctx.params
    for name in NOT_WITH_KAFKA:
        if _given(ctx, name):
            option = "--" + name.replace("_", "-")
            raise click.UsageError(f"{option} is not supported with a Kafka input")
    if p["engine"] != "local":
        raise click.UsageError("--engine ray does not read Kafka; use the local engine")
    if not p["group"]:
        raise click.UsageError("a Kafka input needs --group GROUP (the consumer group)")
    source_address = _address(p["input_path"], "-i/--input")
    targets: dict[str, Any] = {}
    for name, hint in (("output_path", "-o/--output"), ("errors_path", "--errors")):
        if is_kafka_url(p[name]):
            targets[name] = _address(p[name], hint)
    check_paths(
        RunPaths(
            os.devnull,
            os.devnull if "output_path" in targets else p["output_path"],
            None if "errors_path" in targets else p["errors_path"],
            p["stats_path"],
        )
    )
    try:
        from packflow.kafka.door import KafkaRun
        from packflow.kafka.offsets import OffsetTracker
        from packflow.kafka.sink import (
            Delivery,
            DropOutlet,
            FileOutlet,
            Producers,
            TopicOutlet,
            value_limit,
        )
        from packflow.kafka.source import KafkaDoorError, KafkaSource
    except ImportError as exc:
        raise click.ClickException(
            f"Kafka needs confluent-kafka ({exc}); install it with: {install_hint('kafka')}"
        ) from exc
    from packflow.cli.project_arg import check_project
    from packflow.engine import BatchEngine

    check_project(project)
    consumer_config, producer_config = _split_config(p["kafka_config"])
    logger = logging.getLogger("packflow.kafka")
    tracker = OffsetTracker()
    delivery = Delivery()
    source = KafkaSource(
        source_address,
        p["group"],
        tracker,
        config=consumer_config,
        max_value_bytes=p["max_line_bytes"],
        logger=logger,
    )
    producers = Producers(producer_config, logger)
    topics: dict[str, Any] = {}
    try:
        _check_topic(lambda: source.check_topic(KAFKA_CONNECT_TIMEOUT_S), "-i/--input")
        for name, address in targets.items():
            hint = "-o/--output" if name == "output_path" else "--errors"
            _check_topic(
                lambda a=address: producers.check_topic(a, KAFKA_CONNECT_TIMEOUT_S),  # type: ignore[misc]
                hint,
            )
            topics[name] = TopicOutlet(
                producers.get(address), address, producers.poll, value_limit(producer_config)
            )
    except KafkaDoorError as exc:
        source.close()
        click.echo(f"Error: {exc}", err=True)
        sys.exit(EXIT_IO_ERROR)

    previous = {s: signal.signal(s, interrupt_loading) for s in EXIT_FOR_SIGNAL}
    sinks: list[FileSink] = []
    pool = None
    try:
        # The Kafka clients run threads already: workers start by spawn.
        backend, pool = load_for_run(project, config, workers_count(p["workers"]), fork=False)
        outlets: dict[str, Any] = {}
        for name in ("output_path", "errors_path"):
            if name in topics:
                outlets[name] = topics[name]
            elif p[name] is None:
                outlets[name] = DropOutlet()
            else:
                try:
                    sink = open_sink(p[name])
                except OSError as exc:
                    raise click.ClickException(f"could not open an output: {exc}") from exc
                sinks.append(sink)
                outlets[name] = FileOutlet(GuardedSink(sink))
        signals = RunSignals()
        door = KafkaRun(
            BatchEngine(backend) if pool is None else None,
            backend,
            source,
            outlets["output_path"],
            outlets["errors_path"],
            producers,
            delivery,
            batch_size=p["batch_size"],
            max_wait_s=p["max_wait_ms"] / 1000.0,
            max_in_flight=p["max_in_flight"],
            max_in_flight_bytes=int(p["max_in_flight_mb"] * (1 << 20)),
            drain_timeout_s=KAFKA_DRAIN_TIMEOUT_S,
            stop_when_idle_s=p["stop_when_idle"],
            guard=signals,
            started=started,
            pool=pool,
        )

        def second_signal() -> None:
            # While stopping, it cuts the wait for acknowledgements short;
            # before, it interrupts the run where it is.
            was_stopping = door.stopping
            door.forced = True
            if not was_stopping:
                raise ForcedStop(signals.first or signal.SIGTERM)

        signals.on_force = second_signal
        for s in EXIT_FOR_SIGNAL:
            signal.signal(s, signals.handler)
        try:
            summary, exit_code = _loop(door, signals, p["stats_path"], p["stats_every_s"])
        except WorkerStartError as exc:  # a worker started mid-run could not load
            load_error(str(exc), exc.error_type or "")
        if exit_code:
            for sink in sinks:
                sink.trim()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if pool is not None:
            pool.kill()
        for sink in sinks:
            try:
                sink.close()
            except OSError:
                pass
    click.echo(summary.format(), err=True)
    finish_run(
        summary,
        exit_code,
        errors_path=p["errors_path"],
        stats_path=p["stats_path"],
        fail_on_error=p["fail_on_error"],
    )


def _check_topic(check: Callable[[], int], hint: str) -> None:
    from packflow.kafka.source import KafkaDoorError, KafkaUnreachable

    try:
        check()
    except KafkaUnreachable:
        raise
    except KafkaDoorError as exc:
        raise click.BadParameter(str(exc), param_hint=hint) from exc


def _loop(door: Any, signals: RunSignals, stats_path: Optional[str], every_s: float) -> Any:
    """Run until stopped; then drain, commit and leave the group (unless a
    second signal came). The summary (printed) and the exit code."""
    from packflow.kafka.source import KafkaDoorError

    progress = Progress(sys.stderr.isatty())
    next_snapshot = time.monotonic() + every_s

    def on_batch(summary: Any) -> None:
        nonlocal next_snapshot
        progress(summary)
        if stats_path and time.monotonic() >= next_snapshot:
            try:
                write_stats(stats_path, door.snapshot().to_dict())
            except OSError as exc:
                click.echo(f"Warning: could not update {stats_path}: {exc}", err=True)
            next_snapshot = time.monotonic() + every_s

    interrupted: Optional[str] = None
    exit_code = 0
    try:
        door.run(lambda: signals.stopping, on_batch)
    except ForcedStop as stop:
        door.forced = True
        interrupted = f"{stop} (second signal: what was in flight was not waited for)"
        exit_code = EXIT_FOR_SIGNAL[signals.first or stop.signum]
    except BrokenPipeError:
        # The reader of -o - went away (`| head`): stop quietly, committing
        # what was written; no traceback from the interpreter's last flush.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        interrupted = "closed output"
    except (KafkaDoorError, OutputWriteError) as exc:
        click.echo(f"Error: {exc}", err=True)
        interrupted, exit_code = "Kafka error", EXIT_IO_ERROR
    progress.done()
    if exit_code == 0 and signals.stopping:
        interrupted = signal.Signals(signals.first).name
        exit_code = EXIT_FOR_SIGNAL[signals.first]
    failed_commits = door.source.commit_failures
    try:
        door.stop(forced=door.forced)
    except ForcedStop:
        door.forced = True
        interrupted = f"{signal.Signals(signals.first).name} (second signal during the drain)"
    except (KafkaDoorError, OutputWriteError) as exc:
        click.echo(f"Error: {exc}", err=True)
        exit_code = exit_code or EXIT_IO_ERROR
    if not exit_code and door.delivery.failure is not None:
        # Failed while draining (after the loop looked last): its inputs stay
        # uncommitted, and a partition lost meanwhile no longer counts them.
        click.echo(f"Error: a message could not be delivered: {door.delivery.failure}", err=True)
        interrupted, exit_code = "Kafka error", EXIT_IO_ERROR
    if not exit_code and not door.forced and door.source.commit_failures > failed_commits:
        # Everything was delivered, but the broker did not take the last
        # commit: the next run reads those inputs again (duplicates, no loss).
        click.echo(
            "Error: the last commit of the input offsets failed; the inputs since the "
            "previous commit will be read again by the next run in the group",
            err=True,
        )
        interrupted, exit_code = "Kafka error", EXIT_IO_ERROR
    signals.hold()
    summary = door.finish(interrupted_by=interrupted)
    if summary.unacknowledged and not exit_code and interrupted != "closed output":
        click.echo(
            f"Error: {summary.unacknowledged} message(s) were not acknowledged within "
            f"{door.drain_timeout_s:g} s; their inputs stay uncommitted",
            err=True,
        )
        exit_code = EXIT_IO_ERROR
    return summary, exit_code
