"""Handlers for numpy, pandas, torch and PIL values."""

from __future__ import annotations

import base64
import io
from typing import Any

from packflow.utils.normalize.base import TypeConversionHandler


class NumpyTypeHandler(TypeConversionHandler):
    """numpy arrays and scalars -> lists and Python scalars."""

    @property
    def package_name(self) -> str:
        return "numpy"

    def is_type(self, obj: Any) -> bool:
        np = self.module
        return isinstance(obj, (np.ndarray, np.generic))

    def convert(self, obj: Any) -> object:
        return obj.tolist()


class PandasSeriesHandler(TypeConversionHandler):
    """pandas Series -> list."""

    @property
    def package_name(self) -> str:
        return "pandas"

    def is_type(self, obj: Any) -> bool:
        return isinstance(obj, self.module.Series)

    def convert(self, obj: Any) -> object:
        return obj.to_list()


class PandasDataFrameHandler(TypeConversionHandler):
    """pandas DataFrame -> ``{"index", "columns", "data"}`` (``to_dict("split")``)."""

    @property
    def package_name(self) -> str:
        return "pandas"

    def is_type(self, obj: Any) -> bool:
        return isinstance(obj, self.module.DataFrame)

    def convert(self, obj: Any) -> object:
        return obj.to_dict("split")


class TorchScalarHandler(TypeConversionHandler):
    """A one-element float or int torch tensor -> Python scalar."""

    @property
    def package_name(self) -> str:
        return "torch"

    def is_type(self, obj: Any) -> bool:
        torch = self.module
        return isinstance(obj, (torch.FloatTensor, torch.IntTensor)) and obj.numel() == 1

    def convert(self, obj: Any) -> object:
        return obj.item()


class TorchTensorHandler(TypeConversionHandler):
    """Any other torch tensor -> nested lists."""

    @property
    def package_name(self) -> str:
        return "torch"

    def is_type(self, obj: Any) -> bool:
        return isinstance(obj, self.module.Tensor)

    def convert(self, obj: Any) -> object:
        return obj.detach().cpu().numpy().tolist()


class PillowImageHandler(TypeConversionHandler):
    """A PIL image -> base64 of its PNG encoding."""

    @property
    def package_name(self) -> str:
        return "PIL.Image"

    def is_type(self, obj: Any) -> bool:
        return isinstance(obj, self.module.Image)

    def convert(self, obj: Any) -> object:
        buffer = io.BytesIO()
        obj.save(buffer, format="PNG")
        return base64.b64encode(buffer.getvalue()).decode("ascii")
