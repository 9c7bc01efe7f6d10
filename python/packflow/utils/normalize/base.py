"""``TypeConversionHandler``: converts one family of third-party values to native Python."""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from types import ModuleType
from typing import Any

from packflow.logger import get_logger

logger = get_logger()


class TypeConversionHandler(ABC):
    """A converter for values of one library (numpy, pandas, torch, PIL).

    The library is never imported by packflow: a handler is available once the
    application itself has imported it, since only then can such values exist.
    """

    def __repr__(self) -> str:
        return type(self).__name__

    @property
    def module(self) -> ModuleType | None:
        """The library's module if the application has imported it, else None."""
        return sys.modules.get(self.package_name)

    def available(self) -> bool:
        """Whether the library is loaded, so values of it can show up."""
        return self.module is not None

    @property
    @abstractmethod
    def package_name(self) -> str:
        """Import name of the library this handler converts from."""

    @abstractmethod
    def is_type(self, obj: Any) -> bool:
        """Whether ``obj`` is a value this handler converts (only asked when available)."""

    @abstractmethod
    def convert(self, obj: Any) -> object:
        """A native, JSON-serializable Python value for ``obj``."""
