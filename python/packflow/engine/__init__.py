"""The batch engine and the line reader: the one seam every front door uses.

``packflow run``, :func:`packflow.run_stream`, ``packflow serve``, the Ray engine
and ``--workers`` all hand raw JSON Lines bytes to a :class:`BatchEngine` and get
output bytes and error rows back; none of them re-implements batching, retry or
error rows. :class:`LineReader` cuts a byte stream into such batches, and
:class:`WorkerPool` runs them in worker processes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from packflow.engine.batch import BatchEngine, BatchResult, ErrorRow
from packflow.engine.reader import (
    DEFAULT_MAX_LINE_BYTES,
    InputReadError,
    LineBatch,
    LineReader,
)

__all__ = [
    "DEFAULT_MAX_LINE_BYTES",
    "BatchEngine",
    "BatchResult",
    "ErrorRow",
    "InputReadError",
    "LineBatch",
    "LineReader",
    "WorkerPool",
    "WorkerStartError",
]

if TYPE_CHECKING:
    from packflow.engine.workers import WorkerPool, WorkerStartError


def __getattr__(name: str) -> Any:
    # The pool pulls in multiprocessing; load it only when asked for.
    if name in ("WorkerPool", "WorkerStartError"):
        from packflow.engine import workers

        return getattr(workers, name)
    raise AttributeError(f"module 'packflow.engine' has no attribute {name!r}")
