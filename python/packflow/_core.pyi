"""Stubs of ``packflow._core``, the Rust extension. Users import the public
modules (``packflow.utils``, ``packflow.backend``...), not this one."""

from collections.abc import Callable
from typing import Any, Optional

import numpy as np

MAX_DEPTH: int
"""Deepest nesting any traversal follows; deeper input (or a cycle) is an error."""

# --- pipeline and timers -----------------------------------------------------

class Pipeline:
    """Runs a backend's steps (preprocess, transform_inputs, execute,
    transform_outputs), timing each with a monotonic nanosecond clock and keeping
    the last call's times plus a log-bucketed histogram per step."""

    def __init__(self, preprocess: Optional[Callable[[Any], Any]], verbose: bool = False) -> None:
        """``preprocess`` is called with the batch; None means the identity."""
    def run(self, backend: Any, inputs: Any) -> Any:
        """Run one call: a dict gives one output, a list of dicts a list. Step
        failures raise ``InferenceBackendRuntimeError("<step>() failed ...")``."""
    def last_times(self) -> dict[str, float]:
        """Milliseconds per step of the last call (5 decimals), steps that ran only."""
    @property
    def batch_size(self) -> Optional[int]:
        """Rows in the last call; None before the first."""
    def stats(self) -> dict[str, dict[str, float]]:
        """Per step: count, total_ms, mean_ms, min_ms, max_ms, p50_ms, p90_ms, p99_ms."""
    def reset_stats(self) -> None:
        """Clear the histograms (the last call's times stay)."""

def monotonic_ns() -> int:
    """Nanoseconds from a monotonic clock with an arbitrary origin."""

# --- records -> ndarray ---------------------------------------------------

def records_to_ndarray(
    records: list[dict],
    feature_names: list[str],
    dtype: Optional[Any] = None,
    delimiter: Optional[str] = None,
) -> np.ndarray:
    """``numpy.array(rows, dtype=dtype)`` where each row holds one record's
    ``feature_names`` values, each looked up like ``get_nested_field`` (missing
    -> None). Plain bool/int/float cells are written straight into the array;
    anything else is handed to ``numpy.array``, so the result is numpy's own.

    ``records`` must be a list of dicts (ValueError naming the row index
    otherwise); ``feature_names`` a list or tuple of str (TypeError); the
    delimiter defaults to "." and must not be empty (ValueError)."""

class NumpyPlan:
    """The numpy preprocessor's feature paths, compiled once."""

    def __init__(self, features: list[str], delimiter: str) -> None:
        """Compile ``features`` (list or tuple of str) split by ``delimiter``
        (non-empty, else ValueError)."""

    def __call__(self, records: list[dict]) -> np.ndarray:
        """``records_to_ndarray(records, features, None, delimiter)``; any
        failure is raised as ``packflow.exceptions.PreprocessorRuntimeError``
        ("Failed to preprocess inputs with the following exception: ...") with
        the original error as its ``__cause__``."""

    @property
    def features(self) -> list[str]:
        """The feature paths, in column order."""

    @property
    def delimiter(self) -> str:
        """The nested field delimiter."""
