"""Type stubs for ``packflow._core``, the Rust extension. Users import the
public wrappers in ``packflow.utils`` and ``packflow.backend`` instead."""

from typing import Any, Optional

import numpy as np

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
