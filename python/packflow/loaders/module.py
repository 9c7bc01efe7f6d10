"""``ModuleLoader``: a backend defined in an importable (installed) module."""

from __future__ import annotations

import importlib
from typing import Any

from packflow import exceptions as exceptions
from packflow.backend.base import InferenceBackend as InferenceBackend
from packflow.exceptions import InferenceBackendLoadError, load_error_like
from packflow.loaders.base import InferenceBackendLoader
from packflow.loaders.utils import LOAD_FAILED, exception_origin, inference_backend_parts

_MISSING = object()


class ModuleLoader(InferenceBackendLoader, kind="module"):
    """``"pkg.module:Backend"`` is ``from pkg.module import Backend``, through the
    normal import system (``sys.path``, installed distributions).

    :meth:`load_backend_module` raises ``InferenceBackendLoadError`` that is also
    what Packflow 0.4.1 raised there: ``ValueError`` (a malformed path), the
    import's own error (``ModuleNotFoundError``...).
    """

    def load_backend_module(self) -> Any:
        try:
            module_name, object_name = inference_backend_parts(self.path)
        except ValueError as exc:
            raise load_error_like(ValueError, f"{LOAD_FAILED}{exc}") from None
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
                raise load_error_like(
                    type(exc),
                    f"{LOAD_FAILED}{exc} (for {self.path!r}: {exc.name!r} is not installed "
                    "or on sys.path)",
                ) from exc
            raise load_error_like(
                type(exc),
                f"{LOAD_FAILED}{exc} (importing {module_name!r} for {self.path!r} raised "
                f"{exception_origin(exc)})",
            ) from exc
        except (Exception, SystemExit) as exc:
            raise load_error_like(
                type(exc),
                f"{LOAD_FAILED}{exc} (importing {module_name!r} for {self.path!r} raised "
                f"{exception_origin(exc)})",
            ) from exc
        backend = getattr(module, object_name, _MISSING)
        if backend is _MISSING:
            raise InferenceBackendLoadError(
                f"{LOAD_FAILED}Backend with name `{object_name}` does not exist in loaded "
                f"module `{module!r}`"
            )
        return backend
