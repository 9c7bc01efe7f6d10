"""Loading ``packflow run``'s backend: in this process, or in the worker
processes of a started :class:`~packflow.engine.WorkerPool`. A load that fails
or is interrupted ends the command."""

from __future__ import annotations

import functools
import os
import signal
import sys
from typing import Any, Optional

import click

from packflow.cli.config_pairs import load_error
from packflow.cli.messages import describe
from packflow.cli.run_signals import EXIT_FOR_SIGNAL, ForcedStop
from packflow.engine.gc_policy import freeze_loaded
from packflow.engine.workers import WorkerPool, WorkerStartError

__all__ = ["load_for_run"]


def load_for_run(
    project: str, config: dict[str, Any], workers: int
) -> tuple[Any, Optional[WorkerPool]]:
    """The backend (or the started pool standing for it) and the pool; a load
    that fails or is interrupted ends the command."""
    try:
        if workers > 1:
            pool = _start_pool(project, config, workers)
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


def _start_pool(project: str, config: dict[str, Any], workers: int) -> WorkerPool:
    from packflow.loaders import InferenceBackendLoader

    load = functools.partial(
        InferenceBackendLoader.from_path,
        os.path.abspath(project),
        strict_config=True,
        **config,
    )
    # On Linux the workers are forked from this process, which has imported
    # everything they need and runs no other thread yet: they start in
    # milliseconds instead of a fresh interpreter's few tenths of a second.
    context = "fork" if sys.platform == "linux" else "spawn"
    pool = WorkerPool(load, workers, context=context)
    pool.start()
    return pool
