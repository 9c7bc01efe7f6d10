"""``packflow serve``: a project's backend over HTTP, with dynamic batching."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Optional

import click

from packflow.cli.config_pairs import config_option, load_error
from packflow.cli.project_arg import ProjectPath, check_project
from packflow.constants import (
    SERVE_HEADER_TIMEOUT_S,
    SERVE_HOST,
    SERVE_KEEP_ALIVE_S,
    SERVE_MAX_BATCH_ROWS,
    SERVE_MAX_BODY_BYTES,
    SERVE_MAX_CONNECTIONS,
    SERVE_MAX_QUEUE_ROWS,
    SERVE_MAX_WAIT_MS,
    SERVE_PORT,
    SERVE_REQUEST_TIMEOUT_S,
    SERVE_WORKERS,
)
from packflow.engine.gc_policy import freeze_loaded
from packflow.exceptions import describe_error


def _open(project: str, workdir: str) -> tuple[Path, Any]:
    """The project's folder (an archive is checked and extracted into
    ``workdir``) and its packflow.yaml, before any of its code runs."""
    from packflow.loaders.base import project_root
    from packflow.loaders.packflow_yaml import PackflowConfig

    path = Path(project)
    if path.is_file():
        from packflow.loaders.archive import extract_archive

        extract_archive(path, workdir)
        root = project_root(Path(workdir)).resolve()
    else:
        root = path.resolve()
    return root, PackflowConfig.from_project_path(root)


def _version(project_config: Any) -> Optional[str]:
    """The version of packflow.yaml, when it gives one."""
    if "version" in project_config.model_fields_set and project_config.version.strip():
        return project_config.version.strip()
    return None


def _check_apart(projects: list[tuple[str, Any]]) -> None:
    """A usage error for projects that cannot share a process: two of one
    name, or two whose packflow.yaml ``env`` set one variable to different
    values (the environment is the process's)."""
    named: dict[str, str] = {}
    env: dict[str, tuple[str, str]] = {}
    for project, cfg in projects:
        if cfg.name in named:
            raise click.UsageError(
                f"{named[cfg.name]} and {project} are both named {cfg.name!r} (the name in "
                "packflow.yaml): each model served needs its own name"
            )
        named[cfg.name] = project
        for key, value in cfg.env.items():
            other = env.setdefault(key, (project, value))
            if other[1] != value:
                raise click.UsageError(
                    f"{other[0]} and {project} set {key} to different values in packflow.yaml's "
                    "env, and a process has one environment: serve them in separate processes"
                )


@click.command("serve")
@click.argument("projects", nargs=-1, metavar="[PROJECT]...", type=ProjectPath(exists=True))
@click.option("--host", default=SERVE_HOST, show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=SERVE_PORT,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on; 0 picks a free one (the listening line says which).",
)
@click.option(
    "--grpc-port",
    default=None,
    type=click.IntRange(0, 65535),
    help="Also serve the Open Inference Protocol over gRPC on this port (0 picks a free "
    "one; the listening line says which); needs the grpc extra. Default: no gRPC.",
)
@click.option(
    "--max-batch-rows",
    default=SERVE_MAX_BATCH_ROWS,
    show_default=True,
    type=click.IntRange(min=1),
    help="Most rows per backend call.",
)
@click.option(
    "--max-wait-ms",
    default=SERVE_MAX_WAIT_MS,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Longest a row waits for company once the model is free (0: a batch starts "
    "as soon as the model is free, with whatever is queued).",
)
@click.option(
    "--max-queue-rows",
    default=SERVE_MAX_QUEUE_ROWS,
    show_default=True,
    type=click.IntRange(min=1),
    help="Most rows waiting for a batch; past it requests get 503 with Retry-After.",
)
@click.option(
    "--max-body-mb",
    default=SERVE_MAX_BODY_BYTES / (1 << 20),
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Largest request body in MiB; larger ones get 413 unread.",
)
@click.option(
    "--request-timeout-s",
    default=SERVE_REQUEST_TIMEOUT_S,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="A request not answered within this gets 504.",
)
@click.option(
    "--max-connections",
    default=SERVE_MAX_CONNECTIONS,
    show_default=True,
    type=click.IntRange(min=1),
    help="Most open client connections; past it the longest idle one is closed, and with "
    "none idle the new one gets 503 with Retry-After.",
)
@click.option(
    "--header-timeout-s",
    default=SERVE_HEADER_TIMEOUT_S,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="A new connection, or a request's first byte, without all its header fields "
    "this long after: closed (408 if the request had begun).",
)
@click.option(
    "--keep-alive-s",
    default=SERVE_KEEP_ALIVE_S,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="A connection idle this long after an answer is closed.",
)
@click.option(
    "--expose-errors",
    is_flag=True,
    help="Put a failing row's exception text in the answer (by default only the "
    "server's log has it: it may hold file paths or data).",
)
@click.option(
    "--workers",
    default=SERVE_WORKERS,
    show_default=True,
    type=click.IntRange(min=1),
    help="Server processes on the one port (Linux: SO_REUSEPORT spreads the "
    "connections); each loads every model. Limits apply to each.",
)
# A worker of `--workers N`: its settings from the supervisor (workers.py).
@click.option("--worker-spec", default=None, hidden=True)
@config_option
def serve_command(
    projects: tuple[str, ...],
    host: str,
    port: int,
    grpc_port: Optional[int],
    max_batch_rows: int,
    max_wait_ms: float,
    max_queue_rows: int,
    max_body_mb: float,
    request_timeout_s: float,
    max_connections: int,
    header_timeout_s: float,
    keep_alive_s: float,
    expose_errors: bool,
    workers: int,
    worker_spec: Optional[str],
    config: dict[str, Any],
) -> None:
    """Serve the backend of the project at PROJECT (default: the current
    folder) over HTTP; several projects are served side by side, each under
    its name.

    PROJECT is a project directory or an archive made by `packflow export`.
    Endpoints: POST /invocations (a JSON object, an array of objects, or JSON
    Lines), POST /v1/models/NAME:predict and GET /v1/models/NAME (KServe V1),
    the Open Inference Protocol (KServe V2) REST routes under /v2,
    GET /healthz, /readyz and /metrics (Prometheus); with --grpc-port, the
    protocol's gRPC service (inference.GRPCInferenceService). Rows of
    concurrent requests are batched, each model's apart (its own queue and
    limits); with several models /invocations takes the model's name in the
    X-Packflow-Model header. --config applies to every project. SIGTERM or
    SIGINT drains (every request in progress is answered) and exits 0; a
    second signal stops at once. With --workers N (Linux), N server
    processes, each loading every project, share the port.
    """
    from packflow.serving.server import (
        ServeExtraMissing,
        require_grpc_extra,
        require_serve_extra,
    )

    if worker_spec is not None:
        _serve_worker(json.loads(worker_spec))
        return
    settings = {
        "max_batch_rows": max_batch_rows,
        "max_wait_ms": max_wait_ms,
        "max_queue_rows": max_queue_rows,
        "max_body_bytes": max(1, int(max_body_mb * (1 << 20))),
        "request_timeout_s": request_timeout_s,
        "expose_errors": expose_errors,
        "max_connections": max_connections,
        "header_timeout_s": header_timeout_s,
        "keep_alive_s": keep_alive_s,
    }
    projects = projects or (".",)
    # Before any backend loads: an initialize() may take minutes, all wasted
    # on a server that cannot start.
    for project in projects:
        check_project(project)
    try:
        require_serve_extra()
        if grpc_port is not None:
            require_grpc_extra()
    except ServeExtraMissing as exc:
        raise click.ClickException(str(exc)) from None
    if workers > 1:
        from packflow.serving import workers as worker_processes

        if not worker_processes.reuse_port_spreads():
            raise click.UsageError(
                "--workers above 1 needs SO_REUSEPORT spreading connections between "
                "processes (Linux); here run one process per port, or several replicas"
            )
    # The server's own errors and the backend's log lines go to stderr.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    with contextlib.ExitStack() as stack:
        opened = []
        for project in projects:
            workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="packflow-serve-"))
            try:
                opened.append((project, *_open(project, workdir)))
            except Exception as exc:  # noqa: BLE001 - reported to the user
                prefix = f"{project}: " if len(projects) > 1 else ""
                load_error(prefix + describe_error(exc), type(exc).__name__)
        # Before any backend loads: initialize() may take minutes.
        _check_apart([(project, cfg) for project, _, cfg in opened])
        if workers > 1:
            forced, signal_name = _supervise(
                stack, opened, workers, host, port, grpc_port, settings, config
            )
        else:
            result = _load_and_serve(opened, host, port, grpc_port, settings, config)
            forced, signal_name = result.forced, result.signal
    if forced:
        click.echo(f"Stopped at once on a second signal ({signal_name} first).", err=True)
        sys.exit(1)
    if signal_name:
        click.echo(f"Drained and stopped on {signal_name}.", err=True)


def _shown_models(names: list[str]) -> str:
    if len(names) == 1:
        return f"model {names[0]!r}"
    return "models " + ", ".join(repr(n) for n in names)


def _listening_lines(names: list[str], suffix: str = "") -> tuple[Any, Any]:
    """The callbacks that print where the server listens."""
    shown_models = _shown_models(names)

    def listening(bound_host: str, bound_port: int) -> None:
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        click.echo(f"Listening on http://{shown}:{bound_port} ({shown_models}){suffix}")

    def grpc_listening(bound_host: str, bound_port: int) -> None:
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        click.echo(f"Listening for gRPC on {shown}:{bound_port} ({shown_models}){suffix}")

    return listening, grpc_listening


def _load_and_serve(
    opened: list[tuple[str, Path, Any]],
    host: str,
    port: int,
    grpc_port: Optional[int],
    settings: dict[str, Any],
    config: dict[str, Any],
    worker: Optional[dict[str, Any]] = None,
    on_signals: Any = None,
) -> Any:
    """Load every project's backend and serve them until a signal (the
    :class:`~packflow.serving.server.ServeResult`); ``worker``: as worker
    ``index`` of ``--workers`` (its listening is told to the supervisor;
    ``on_signals``: as for :func:`packflow.serving.server.serve`)."""
    from packflow.loaders import InferenceBackendLoader
    from packflow.serving import create_app
    from packflow.serving.http1 import Limits
    from packflow.serving.multi import MultiModelApp
    from packflow.serving.server import serve

    apps = []
    for project, root, cfg in opened:
        try:
            backend = InferenceBackendLoader.from_project(root, strict_config=True, **config)
        except Exception as exc:  # noqa: BLE001 - reported to the user
            prefix = f"{project}: " if len(opened) > 1 else ""
            load_error(prefix + describe_error(exc), type(exc).__name__)
        apps.append(
            create_app(
                backend,
                name=cfg.name,
                version=_version(cfg),
                max_batch_rows=settings["max_batch_rows"],
                max_wait_ms=settings["max_wait_ms"],
                max_queue_rows=settings["max_queue_rows"],
                max_body_bytes=settings["max_body_bytes"],
                request_timeout_s=settings["request_timeout_s"],
                expose_errors=settings["expose_errors"],
            )
        )
    freeze_loaded()
    if worker is None:
        app = MultiModelApp(apps)
        listening, grpc_listening = _listening_lines([a.name for a in apps])
    else:
        from packflow.serving.workers import SharedMetrics, WorkerApp, report_to_supervisor

        app = WorkerApp(apps)
        app.shared = SharedMetrics(worker["metrics_dir"], worker["index"], worker["count"])

        def listened(*_: Any) -> None:
            app.start_publishing()
            report_to_supervisor(worker["status_fd"], listening=True)

        # Told once every server of the worker listens (the gRPC one last).
        listening = None if grpc_port is not None else listened
        grpc_listening = listened if grpc_port is not None else None
    try:
        return serve(
            app,
            host=host,
            port=port,
            limits=Limits(
                max_connections=settings["max_connections"],
                header_timeout_s=settings["header_timeout_s"],
                keep_alive_s=settings["keep_alive_s"],
            ),
            on_listening=listening,
            grpc_port=grpc_port,
            on_grpc_listening=grpc_listening,
            reuse_port=worker is not None,
            on_signals=on_signals,
        )
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from exc


def _supervise(
    stack: contextlib.ExitStack,
    opened: list[tuple[str, Path, Any]],
    count: int,
    host: str,
    port: int,
    grpc_port: Optional[int],
    settings: dict[str, Any],
    config: dict[str, Any],
) -> tuple[bool, Optional[str]]:
    """``--workers N`` (N > 1): start N workers on one port, announce them
    once all listen, and stop them at a signal: ``(forced, first signal)``."""
    from packflow.serving.workers import SPEC_FILE, Supervisor, WorkerFailed, reserve_port

    # The ports are picked here (0: a free one) and held bound until the
    # supervisor exits, so every worker, and any replacement, gets the same.
    try:
        held = stack.enter_context(reserve_port(host, port))
        held_grpc = None
        if grpc_port is not None:
            held_grpc = stack.enter_context(reserve_port(host, grpc_port, " for gRPC"))
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
    bound_host, bound_port = held.getsockname()[:2]
    metrics_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="packflow-metrics-"))
    spec = {
        "count": count,
        "metrics_dir": metrics_dir,
        "projects": [[project, str(root)] for project, root, _ in opened],
        "host": host,
        "port": bound_port,
        "grpc_port": held_grpc.getsockname()[1] if held_grpc is not None else None,
        "settings": settings,
        "config": config,
    }

    # The settings every worker shares go in a file of the private folder,
    # not on the command line: one argument holds 128 KiB at most on Linux,
    # and --config values may be larger together.
    (Path(metrics_dir) / SPEC_FILE).write_text(json.dumps(spec))

    def command(index: int, watch_fd: int, status_fd: int) -> list[str]:
        own = {"metrics_dir": metrics_dir, "index": index}
        own.update(watch_fd=watch_fd, status_fd=status_fd)
        return [sys.executable, "-m", "packflow.cli", "serve", "--worker-spec", json.dumps(own)]

    listening, grpc_listening = _listening_lines(
        [cfg.name for _, _, cfg in opened], f" ({count} workers)"
    )

    def announce() -> None:
        listening(bound_host, bound_port)
        if held_grpc is not None:
            grpc_listening(bound_host, spec["grpc_port"])

    try:
        return Supervisor(count, command).run(announce)
    except WorkerFailed as exc:
        message = exc.message or "a worker failed"
        if exc.code == 2:  # a usage error (an unknown --config key): as one process shows it
            raise click.UsageError(message) from None
        raise _ExitCode(message, exc.code) from None


class _ExitCode(click.ClickException):
    """A worker's error, with the worker's exit code."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.exit_code = code


def _serve_worker(spec: dict[str, Any]) -> None:
    """One worker of ``--workers N``: serve, and tell the supervisor (not
    stderr) why when it cannot start, so the message shows once."""
    from packflow.serving.workers import (
        SPEC_FILE,
        SharedMetrics,
        SupervisorWatch,
        report_to_supervisor,
    )

    supervisor = os.getppid()
    own = SharedMetrics(spec["metrics_dir"], spec["index"], 0)
    # A replacement: its dead predecessor's metrics would be reported as
    # current until this worker listens (a load may take minutes).
    own.withdraw(orphaned=False)
    watch = SupervisorWatch(spec["watch_fd"], own)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        try:
            shared = json.loads((Path(spec["metrics_dir"]) / SPEC_FILE).read_text())
        except (OSError, ValueError) as exc:  # the supervisor has stopped meanwhile
            raise click.ClickException(f"could not read the server's settings: {exc}") from None
        spec = {**shared, **spec}
        # The supervisor has extracted the archives: folders here.
        opened = [(project, *_open(root, "")) for project, root in spec["projects"]]
        result = _load_and_serve(
            opened,
            spec["host"],
            spec["port"],
            spec["grpc_port"],
            spec["settings"],
            spec["config"],
            worker=spec,
            on_signals=watch.serving,
        )
    except click.ClickException as exc:
        report_to_supervisor(spec["status_fd"], error=exc.format_message(), code=exc.exit_code)
        sys.exit(exc.exit_code)
    finally:
        metrics = SharedMetrics(spec["metrics_dir"], spec["index"], spec.get("count", 0))
        # Orphaned: the supervisor died (no byte on the watch pipe), or it
        # died after asking for the drain (this worker has a new parent).
        metrics.withdraw(orphaned=watch.orphaned or os.getppid() != supervisor)
    # The supervisor says how the server stopped.
    sys.exit(1 if result.forced else 0)
