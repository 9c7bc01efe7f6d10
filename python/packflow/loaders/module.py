"""``ModuleLoader``: a backend defined in an importable (installed) module."""

from __future__ import annotations

import importlib
from typing import Any

from packflow.exceptions import InferenceBackendLoadError
from packflow.loaders.base import InferenceBackendLoader
from packflow.loaders.utils import describe_exception, inference_backend_parts

_MISSING = object()


class ModuleLoader(InferenceBackendLoader, kind="module"):
    """``"pkg.module:Backend"`` is ``from pkg.module import Backend``, through the
    normal import system (``sys.path``, installed distributions)."""

    def load_backend_module(self) -> Any:
        try:
            module_name, object_name = inference_backend_parts(self.path)
        except ValueError as exc:
            raise InferenceBackendLoadError(f"Unable to load inference backend: {exc}") from None
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
                raise InferenceBackendLoadError(
                    f"Unable to load inference backend {self.path!r}: no module named "
                    f"{exc.name!r} is installed or on sys.path"
                ) from exc
            raise InferenceBackendLoadError(
                f"Unable to load inference backend {self.path!r}: importing {module_name!r} "
                f"raised {describe_exception(exc)}"
            ) from exc
        except (Exception, SystemExit) as exc:
            raise InferenceBackendLoadError(
                f"Unable to load inference backend {self.path!r}: importing {module_name!r} "
                f"raised {describe_exception(exc)}"
            ) from exc
        backend = getattr(module, object_name, _MISSING)
        if backend is _MISSING:
            raise InferenceBackendLoadError(
                f"Unable to load inference backend {self.path!r}: module {module_name!r} "
                f"({getattr(module, '__file__', None) or 'built-in'}) defines no {object_name!r}"
            )
        return backend
