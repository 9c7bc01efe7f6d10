"""``LocalLoader``: a backend defined in a source file of a project directory."""

from __future__ import annotations

import errno
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Union

from packflow.backend.base import InferenceBackend as InferenceBackend
from packflow.exceptions import load_error_like
from packflow.loaders.base import InferenceBackendLoader
from packflow.loaders.utils import LOAD_FAILED, exception_origin, inference_backend_parts


class LocalLoader(InferenceBackendLoader, kind="local"):
    """``"dir.module:Backend"`` is the object ``Backend`` of ``<base_dir>/dir/module.py``.

    The file is executed from source every time the loader loads it, and
    registered in ``sys.modules`` under its dotted name. ``base_dir`` is put on
    ``sys.path`` so the file can import its sibling modules.

    :meth:`load_backend_module` raises ``InferenceBackendLoadError`` that is also
    what Packflow 0.4.1 raised there: ``ValueError`` (a malformed path),
    ``FileNotFoundError``, the import's own error, ``AttributeError`` (no such
    object in the file).
    """

    def __init__(self, path: str, base_dir: Union[str, Path] = "."):
        super().__init__(path)
        self.base_dir = Path(base_dir).resolve()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r}, base_dir={str(self.base_dir)!r})"

    @classmethod
    def for_project(cls, path: str, project_dir: Path) -> LocalLoader:
        return cls(path, base_dir=project_dir)

    def source_file(self) -> Path:
        """The file ``path`` points to (whether or not it exists)."""
        module_name, _ = inference_backend_parts(self.path)
        segments = module_name.split(".")
        if any(not s.strip() or "/" in s or "\\" in s for s in segments):
            raise ValueError(
                f"inference_backend {self.path!r}: {module_name!r} is not a dotted module path "
                "inside the project (use names separated by single dots, like 'pkg.module')"
            )
        return self.base_dir.joinpath(*segments).with_suffix(".py")

    def load_backend_module(self, **backend_kwargs: Any) -> Any:
        # backend_kwargs: accepted, and unused, as in Packflow 0.4.1 (load() instantiates).
        try:
            module_name, object_name = inference_backend_parts(self.path)
            source = self.source_file()
        except ValueError as exc:
            raise load_error_like(ValueError, f"{LOAD_FAILED}{exc}") from None
        if not source.is_file():
            missing = FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(source))
            raise load_error_like(
                FileNotFoundError,
                f"{LOAD_FAILED}{missing} (the local loader reads '{module_name}' of "
                f"{self.path!r} relative to {self.base_dir})",
            )
        try:
            module = _import_from_source(module_name, source, self.base_dir)
        except (Exception, SystemExit) as exc:
            raise load_error_like(
                type(exc),
                f"{LOAD_FAILED}{exc} (importing {source} for {self.path!r} raised "
                f"{exception_origin(exc, source)})",
            ) from exc
        try:
            return getattr(module, object_name)
        except AttributeError as exc:
            raise load_error_like(
                AttributeError, f"{LOAD_FAILED}{exc} ({source} defines no {object_name!r})"
            ) from None

    @staticmethod
    def _dot_notation_to_pypath(path: str, base_dir: Union[str, Path] = ".") -> str:
        """Packflow 0.4.1's helper: the absolute ``.py`` path of the dotted module
        name ``path`` under ``base_dir`` (``"a.b"`` -> ``<base_dir>/a/b.py``), as a
        str. Unlike :meth:`source_file` it checks nothing."""
        relative = Path(*path.split(".")) if path else Path()
        return str((Path(base_dir) / relative).with_suffix(".py").resolve())

    @staticmethod
    def _import_module_from_source(path: Union[str, Path]) -> ModuleType:
        """Packflow 0.4.1's helper: execute the Python file ``path`` as a module
        named by the file's stem, registered in ``sys.modules``, and return it.
        A missing file is ``FileNotFoundError``; errors of the module propagate."""
        source = Path(path).resolve(strict=True)
        return _import_from_source(source.stem, source, None)


def _import_from_source(module_name: str, source: Path, base_dir: Union[Path, None]) -> ModuleType:
    spec = importlib.util.spec_from_file_location(module_name, source)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import Python source from {source}")
    if base_dir is not None and str(base_dir) not in sys.path:
        sys.path.insert(0, str(base_dir))
    module = importlib.util.module_from_spec(spec)
    previous = sys.modules.get(module_name)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        # Leave sys.modules as it was: no half-initialised module behind.
        if previous is None:
            sys.modules.pop(module_name, None)
        else:
            sys.modules[module_name] = previous
        raise
    return module
