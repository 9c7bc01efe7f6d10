"""What a run needs to know about worker processes before it starts any: how
many to start, and the error a failed start raises. Kept apart from the pool
(:mod:`packflow.engine.workers`, which imports multiprocessing and the range
machinery) so that a run in one process never imports those.
"""

from __future__ import annotations

import os
from typing import Optional, Union

__all__ = ["AUTO_MIN_INPUT_BYTES", "WorkerStartError", "usable_cores", "workers_count"]


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


#: Below this many input bytes, ``"auto"`` runs in one process. Starting the
#: workers (a fresh interpreter and a load of the project each) took 0.9 to
#: 2.6 s in our measurements (2 cores shared with other jobs), and two workers
#: can at best halve the rest of the run. One process runs the example project
#: at about 100 MB/s of input, so workers cannot pay for it below several
#: hundred MB; a backend doing about 10 us of Python per row runs at about
#: 14 MB/s, where halving that time pays for the start-up from about 64 MiB,
#: on cores that are idle. See docs/streaming.md, "When workers pay".
AUTO_MIN_INPUT_BYTES = 64 << 20


def workers_count(value: Union[int, str], input_bytes: Optional[int] = None) -> int:
    """A worker count from ``N`` (an int or its text, at least 1) or ``"auto"``:
    :func:`usable_cores`, or 1 when ``input_bytes`` (the input's size, ``None``
    when unknown, as for a pipe) is below :data:`AUTO_MIN_INPUT_BYTES`, where
    starting workers costs more than they save. Anything else is a
    ``ValueError``."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "auto":
            if input_bytes is not None and input_bytes < AUTO_MIN_INPUT_BYTES:
                return 1
            return usable_cores()
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"workers must be a whole number or 'auto', got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"workers must be at least 1 (or 'auto'), got {value!r}")
    return value


class WorkerStartError(RuntimeError):
    """A worker could not load the backend: the loader (or the backend's
    ``initialize()``) raised, or the process died before it was ready.

    The message is the worker's exception text; ``error_type`` is that
    exception's class name and ``worker_traceback`` its formatted traceback
    (both ``None`` when the process died without raising).
    """

    def __init__(
        self,
        message: str,
        error_type: Optional[str] = None,
        worker_traceback: Optional[str] = None,
    ):
        super().__init__(message)
        self.error_type = error_type
        self.worker_traceback = worker_traceback
