"""The batch engine and the line reader: the one seam every front door uses.

``packflow run``, :func:`packflow.run_stream`, ``packflow serve``, the Ray engine
and ``--workers`` all hand raw JSON Lines bytes to a :class:`BatchEngine` and get
output bytes and error rows back; none of them re-implements batching, retry or
error rows. :class:`LineReader` cuts a byte stream into such batches.
"""

from __future__ import annotations

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
]
