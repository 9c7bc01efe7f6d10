"""Loading ``packflow run``'s backend: in this process, or in the worker
processes of a started :class:`~packflow.engine.WorkerPool`. A load that fails
or is interrupted ends the command."""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import signal
import sys
import tempfile
from typing import TYPE_CHECKING, Any, Optional

import click

from packflow.cli.config_pairs import load_error
from packflow.cli.messages import describe
from packflow.cli.run_signals import EXIT_FOR_SIGNAL, ForcedStop
from packflow.engine.gc_policy import freeze_loaded
from packflow.engine.worker_setup import WorkerStartError

if TYPE_CHECKING:
    from packflow.engine.workers import WorkerPool

__all__ = ["load_for_run"]


def load_for_run(
    project: str, config: dict[str, Any], workers: int, *, fork: bool = True
) -> tuple[Any, Optional[WorkerPool]]:
    """The backend (or the started pool standing for it) and the pool; a load
    that fails or is interrupted ends the command. ``fork=False``: start the
    workers as fresh interpreters even on Linux (a process that runs other
    threads already, such as a Kafka client's, must not be forked)."""
    try:
        if workers > 1:
            pool = _start_pool(project, config, workers, fork)
            return pool, pool
        backend = _load_backend(project, config)
        freeze_loaded()
        return backend, None
    except (KeyboardInterrupt, ForcedStop) as exc:
        click.echo("Interrupted while loading the backend.", err=True)
        sys.exit(EXIT_FOR_SIGNAL[getattr(exc, "signum", signal.SIGINT)])
    except WorkerStartError as exc:
        load_error(str(exc), exc.error_type or "")
    except Exception as exc:  # noqa: BLE001 - reported to the user
        load_error(describe(exc), type(exc).__name__)


def _load_backend(project: str, config: dict[str, Any]) -> Any:
    from packflow.loaders import InferenceBackendLoader

    return InferenceBackendLoader.from_path(project, strict_config=True, **config)


def load_in_worker(project: str, extract_root: Optional[str], config: dict[str, Any]) -> Any:
    """A worker's load: the project directory, or the archive extracted into a
    fresh directory under ``extract_root``, which the parent removes after the
    run (a worker is stopped with SIGKILL, or forked ones end without exit
    handlers, so it cannot be trusted to remove its own)."""
    from packflow.loaders import InferenceBackendLoader

    if extract_root is None:
        return InferenceBackendLoader.from_path(project, strict_config=True, **config)
    target = tempfile.mkdtemp(prefix="worker-", dir=extract_root)
    return InferenceBackendLoader.from_archive(project, target, strict_config=True, **config)


def _start_pool(project: str, config: dict[str, Any], workers: int, fork: bool) -> WorkerPool:
    project = os.path.abspath(project)
    extract_root = None
    if os.path.isfile(project):
        extract_root = tempfile.mkdtemp(prefix="packflow-archive-workers-")
        # After the pool is stopped (run_command's `finally`), at exit.
        atexit.register(shutil.rmtree, extract_root, True)
    load = functools.partial(load_in_worker, project, extract_root, config)
    # On Linux the workers are forked from this process, which has imported
    # everything they need and runs no other thread yet: they start in
    # milliseconds instead of a fresh interpreter's few tenths of a second.
    context = "fork" if fork and sys.platform == "linux" else "spawn"
    from packflow.engine.workers import WorkerPool  # multiprocessing: with workers only

    pool = WorkerPool(load, workers, context=context)
    pool.start()
    return pool
