"""``InferenceBackendLoader``: find a backend, check it is one, instantiate it."""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Union

from packflow.backend.base import InferenceBackend
from packflow.exceptions import InferenceBackendLoadError
from packflow.loaders.config import PackflowConfig, apply_env_vars
from packflow.loaders.utils import LOAD_FAILED, describe_exception

NOT_A_BACKEND = "Loaded object does not appear to be a packflow InferenceBackend. Received type: "


class InferenceBackendLoader(ABC):
    """Base of the loaders. ``path`` is a ``module:Object`` reference; subclasses
    say where the module comes from (a file in a project, an installed module)."""

    def __init__(self, path: str):
        self.path = path

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r})"

    @abstractmethod
    def load_backend_module(self) -> Any:
        """Import and return the object ``path`` names: a backend class or instance.

        Only fetch the object: :meth:`load` turns failures into
        ``InferenceBackendLoadError``, checks the type and instantiates classes.
        """

    def load(self, **backend_kwargs: Any) -> InferenceBackend:
        """The backend, ready to call.

        A class is instantiated with ``backend_kwargs``; an instance is returned as
        is. Import failures and objects that are not an ``InferenceBackend`` are
        ``InferenceBackendLoadError``; errors raised by the backend's own
        constructor propagate unchanged.
        """
        try:
            backend = self.load_backend_module()
        except InferenceBackendLoadError:
            raise
        except Exception as exc:
            raise InferenceBackendLoadError(
                f"{LOAD_FAILED}{exc} (loading {self.path!r}: {describe_exception(exc)})"
            ) from exc

        if isinstance(backend, type):
            # Check before instantiating: never run the constructor of a foreign class.
            if not issubclass(backend, InferenceBackend):
                raise InferenceBackendLoadError(
                    f"{NOT_A_BACKEND}{type.__repr__(backend)} ({self.path!r} is a class that "
                    "does not subclass packflow.InferenceBackend; it was not instantiated)"
                )
            backend = backend(**backend_kwargs)

        if not isinstance(backend, InferenceBackend):
            raise InferenceBackendLoadError(
                f"{NOT_A_BACKEND}{type.__repr__(type(backend))} ({self.path!r} is a "
                f"{_qualname(type(backend))} object, not a packflow.InferenceBackend class or "
                "instance)"
            )
        return backend

    @classmethod
    def from_project(cls, project_path: Union[str, Path] = ".", **backend_kwargs: Any):
        """Load the backend of the project in ``project_path``, as packflow.yaml says.

        Sets packflow.yaml's ``env``, puts the project directory first on
        ``sys.path``, and instantiates the backend with packflow.yaml's
        ``backend_config`` updated by ``backend_kwargs`` (explicit arguments win;
        the ``BACKEND_CONFIG_FILE_PATH`` file still wins over both).
        """
        from packflow.loaders.local import LocalLoader
        from packflow.loaders.module import ModuleLoader

        project_dir = Path(project_path).resolve()
        config = PackflowConfig.from_project_path(project_dir)
        apply_env_vars(config)
        if str(project_dir) not in sys.path:
            sys.path.insert(0, str(project_dir))

        if config.loader == "local":
            loader: InferenceBackendLoader = LocalLoader(config.inference_backend, project_dir)
        else:
            loader = ModuleLoader(config.inference_backend)
        return loader.load(**{**config.backend_config, **backend_kwargs})

    @classmethod
    def from_archive(
        cls,
        archive_path: Union[str, Path],
        extract_dir: Union[str, Path, None] = None,
        **backend_kwargs: Any,
    ):
        """Load the backend of an exported project archive (``packflow export``).

        The archive is checked first: every entry must stay inside the target (no
        absolute paths, no ``..``, no symlinks) and match the ``packflow.lock``
        manifest when there is one; otherwise
        :class:`~packflow.exceptions.PackflowArchiveError` and nothing is written.
        It is extracted to ``extract_dir`` (kept) or to a temporary directory that
        is removed once the returned backend is garbage-collected or at exit.
        """
        from packflow.loaders.archive import load_from_archive

        return load_from_archive(cls, archive_path, extract_dir, backend_kwargs)


def _qualname(obj: type) -> str:
    module = getattr(obj, "__module__", None)
    name = getattr(obj, "__qualname__", repr(obj))
    return f"{module}.{name}" if module and module != "builtins" else name
