"""Turn model outputs (numpy, pandas, torch, PIL values) into JSON-ready Python values."""

from packflow.utils.normalize.base import TypeConversionHandler
from packflow.utils.normalize.handlers import (
    NumpyTypeHandler,
    PandasDataFrameHandler,
    PandasSeriesHandler,
    PillowImageHandler,
    TorchScalarHandler,
    TorchTensorHandler,
)
from packflow.utils.normalize.normalize import ensure_native_types, ensure_valid_output

__all__ = [
    "NumpyTypeHandler",
    "PandasDataFrameHandler",
    "PandasSeriesHandler",
    "PillowImageHandler",
    "TorchScalarHandler",
    "TorchTensorHandler",
    "TypeConversionHandler",
    "ensure_native_types",
    "ensure_valid_output",
]
