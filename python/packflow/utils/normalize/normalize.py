"""``ensure_native_types`` and ``ensure_valid_output``.

Native values and numpy values are converted in one Rust traversal; only
objects of other libraries (pandas, torch, PIL) call back into the handlers.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from packflow import _core
from packflow.utils.normalize.handlers import (
    NumpyTypeHandler as NumpyTypeHandler,  # numpy is converted in Rust; kept for its 0.4 path
)
from packflow.utils.normalize.handlers import (
    PandasDataFrameHandler,
    PandasSeriesHandler,
    PillowImageHandler,
    TorchScalarHandler,
    TorchTensorHandler,
)

# In the order they are tried; numpy is handled in Rust.
_FALLBACK_HANDLERS = (
    PandasSeriesHandler(),
    PandasDataFrameHandler(),
    TorchScalarHandler(),
    TorchTensorHandler(),
    PillowImageHandler(),
)


def _convert_other(obj: Any) -> object:
    for handler in _FALLBACK_HANDLERS:
        if handler.available() and handler.is_type(obj):
            return handler.convert(obj)
    raise TypeError(
        f'Returned type "{type(obj)}" is not supported. Please convert this object to a native '
        "Python type in your app. (Native types: dict, list, tuple, set, str, int, float, bool, "
        "None; numpy, pandas, torch and PIL values are converted.)"
    )


def ensure_native_types(obj: Any) -> Any:
    """``obj`` with numpy/pandas/torch/PIL values made native; tuples and sets become lists."""
    return _core.ensure_native_types(obj, _convert_other)


def ensure_valid_output(output: Iterable[Any], parent_key: str = "output") -> list[dict[str, Any]]:
    """One dict per item of ``output``: items made native, a non-dict item wrapped as
    ``{parent_key: item}`` (a one-element list unwrapped first)."""
    return _core.ensure_valid_output(output, parent_key, _convert_other)
