"""``InferenceBackendLoader``: find a backend, check it is one, instantiate it."""

from __future__ import annotations

import atexit
import shutil
import tempfile
import weakref
from abc import ABC, abstractmethod
from collections.abc import Collection
from pathlib import Path
from typing import Any, ClassVar, Optional, Union

from packflow import constants
from packflow import exceptions as exceptions
from packflow.backend.base import InferenceBackend
from packflow.backend.configuration import check_config_keys
from packflow.exceptions import InferenceBackendLoadError
from packflow.loaders import project_modules
from packflow.loaders.archive import MANIFEST_NAME, ArchiveLimits, extract_archive
from packflow.loaders.packflow_yaml import PackflowConfig, apply_env_vars, restore_env
from packflow.loaders.utils import LOAD_FAILED, exception_origin

NOT_A_BACKEND = "Loaded object does not appear to be a packflow InferenceBackend. Received type: "


class InferenceBackendLoader(ABC):
    """Base of the loaders. ``path`` is a ``module:Object`` reference; subclasses
    say where the module comes from (a file in a project, an installed module).

    A subclass declared with ``kind="name"`` handles ``loader: name`` in
    packflow.yaml (``class LocalLoader(InferenceBackendLoader, kind="local")``).
    """

    #: packflow.yaml's ``loader`` value -> the class that loads such projects.
    _project_loaders: ClassVar[dict[str, type[InferenceBackendLoader]]] = {}

    def __init_subclass__(cls, kind: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if kind is not None:
            InferenceBackendLoader._project_loaders[kind] = cls

    def __init__(self, path: str):
        self.path = path

    @classmethod
    def for_project(cls, path: str, project_dir: Path) -> InferenceBackendLoader:
        """The loader of ``path`` for the project in ``project_dir``."""
        return cls(path)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r})"

    @abstractmethod
    def load_backend_module(self) -> Any:
        """Import and return the object ``path`` names: a backend class or instance.

        Only fetch the object: :meth:`load` turns failures into
        ``InferenceBackendLoadError``, checks the type and instantiates classes.
        """

    def load(
        self, *, strict_config_keys: Collection[str] = (), **backend_kwargs: Any
    ) -> InferenceBackend:
        """The backend, ready to call.

        A class is instantiated with ``backend_kwargs``; an instance is returned as
        is. Import failures and objects that are not an ``InferenceBackend`` are
        ``InferenceBackendLoadError``; errors raised by the backend's own
        constructor propagate unchanged.

        ``strict_config_keys``: keys a user typed (``--config KEY=VALUE``) that the
        backend's config model must have, checked before the constructor runs
        (so before ``initialize()``): otherwise
        :class:`~packflow.exceptions.UnknownConfigKeysError`, where keyword
        arguments alone are ignored with a warning, as in Packflow 0.4.
        """
        try:
            backend = self.load_backend_module()
        except InferenceBackendLoadError:
            raise
        except Exception as exc:
            raise InferenceBackendLoadError(
                f"{LOAD_FAILED}{exc} (loading {self.path!r}: {exception_origin(exc)})"
            ) from exc

        if isinstance(backend, type):
            # Check before instantiating: never run the constructor of a foreign class.
            if not issubclass(backend, InferenceBackend):
                raise InferenceBackendLoadError(
                    f"{NOT_A_BACKEND}{type.__repr__(backend)} ({self.path!r} is a class that "
                    "does not subclass packflow.InferenceBackend; it was not instantiated)"
                )
            if strict_config_keys:
                check_config_keys(backend.backend_config_model, strict_config_keys)
            backend = backend(**backend_kwargs)
        elif strict_config_keys and isinstance(backend, InferenceBackend):
            check_config_keys(backend.config, strict_config_keys)

        if not isinstance(backend, InferenceBackend):
            raise InferenceBackendLoadError(
                f"{NOT_A_BACKEND}{type.__repr__(type(backend))} ({self.path!r} is a "
                f"{_qualname(type(backend))} object, not a packflow.InferenceBackend class or "
                "instance)"
            )
        return backend

    @classmethod
    def from_project(
        cls,
        project_path: Union[str, Path] = ".",
        *,
        strict_config: bool = False,
        **backend_kwargs: Any,
    ):
        """Load the backend of the project in ``project_path``, as packflow.yaml says.

        Sets packflow.yaml's ``env``, puts the project directory first on
        ``sys.path``, and instantiates the backend with packflow.yaml's
        ``backend_config`` updated by ``backend_kwargs`` (explicit arguments win;
        the ``BACKEND_CONFIG_FILE_PATH`` file still wins over both).

        A module of this project with the same name as one already imported from
        another project still in use is refused (``InferenceBackendLoadError``):
        Python has one module per name per process (see
        :mod:`packflow.loaders.project_modules`).

        ``strict_config``: every key of ``backend_kwargs`` must be a key of the
        backend's config model, checked before ``initialize()`` (see :meth:`load`);
        for arguments a user typed, such as ``--config KEY=VALUE``.
        """
        return cls._load_project(Path(project_path).resolve(), backend_kwargs, True, strict_config)

    @classmethod
    def _load_project(
        cls,
        project_dir: Path,
        backend_kwargs: dict,
        keep_env: bool,
        strict_config: bool = False,
    ) -> Any:
        config = PackflowConfig.from_project_path(project_dir)
        loader_cls = InferenceBackendLoader._project_loaders[config.loader]
        loader = loader_cls.for_project(config.inference_backend, project_dir)
        # A local loader executes its module afresh: that name cannot be stale.
        fresh = config.inference_backend.partition(":")[0] if config.loader == "local" else None
        with project_modules.loading(project_dir, fresh) as register:
            previous_env = apply_env_vars(config)
            try:
                backend = loader.load(
                    strict_config_keys=tuple(backend_kwargs) if strict_config else (),
                    **{**config.backend_config, **backend_kwargs},
                )
            finally:
                if not keep_env:
                    restore_env(previous_env)
            register(backend)
        return backend

    @classmethod
    def from_path(
        cls,
        path: Union[str, Path],
        *,
        strict_config: bool = False,
        **backend_kwargs: Any,
    ):
        """Load a project given as a directory (:meth:`from_project`) or as an
        archive from ``packflow export`` (:meth:`from_archive`: checked against
        its ``packflow.lock`` before any of its code is imported)."""
        if Path(path).is_file():
            return cls.from_archive(path, strict_config=strict_config, **backend_kwargs)
        return cls.from_project(path, strict_config=strict_config, **backend_kwargs)

    @classmethod
    def from_archive(
        cls,
        archive_path: Union[str, Path],
        extract_dir: Union[str, Path, None] = None,
        *,
        archive_limits: Optional[ArchiveLimits] = None,
        strict_config: bool = False,
        **backend_kwargs: Any,
    ):
        """Load the backend of an exported project archive (``packflow export``).

        Loading an archive runs its code: load only archives you would run. The
        archive is checked before anything is written: its size, number of
        entries and manifest size against ``archive_limits`` (default
        :data:`~packflow.loaders.archive.DEFAULT_LIMITS`); every entry must stay
        inside the target (no absolute paths, ``..`` or symlinks) and be writable
        (no file and folder of the same name, no name too long); and every file
        must match ``packflow.lock`` when there is one (which proves the archive
        is intact, not who made it). Otherwise
        :class:`~packflow.exceptions.PackflowArchiveError`.

        The files go to ``extract_dir`` (kept) or to a temporary directory that is
        removed, with the project's modules and ``sys.path`` entry, once the
        returned backend is garbage-collected (or at exit). packflow.yaml's
        ``env`` applies while the backend is imported and built, then the
        environment is restored. ``strict_config``: see :meth:`from_project`.
        """
        temporary = extract_dir is None
        target = Path(tempfile.mkdtemp(prefix="packflow-archive-") if temporary else extract_dir)
        try:
            extract_archive(archive_path, target, archive_limits)
            root = project_root(target).resolve()
            backend = cls._load_project(root, backend_kwargs, False, strict_config)
        except BaseException:
            if temporary:
                _remove_extracted_project(str(target))
            raise
        if temporary:
            try:
                weakref.finalize(backend, _remove_extracted_project, str(target))
            except TypeError:  # not weak-referenceable (__slots__ without __weakref__)
                atexit.register(_remove_extracted_project, str(target))
        return backend


def project_root(extracted: Path) -> Path:
    """The directory holding packflow.yaml: the root, or a single top-level folder."""
    if (extracted / constants.PACKAGING_CONFIG_NAME).is_file():
        return extracted
    children = [p for p in extracted.iterdir() if p.name != MANIFEST_NAME]
    if len(children) == 1 and (children[0] / constants.PACKAGING_CONFIG_NAME).is_file():
        return children[0]
    raise FileNotFoundError(
        f"The archive has no {constants.PACKAGING_CONFIG_NAME} at its root: "
        "it is not an exported packflow project"
    )


def _remove_extracted_project(directory: str) -> None:
    project_modules.release(Path(directory).resolve())
    shutil.rmtree(directory, ignore_errors=True)


def _qualname(obj: type) -> str:
    module = getattr(obj, "__module__", None)
    name = getattr(obj, "__qualname__", repr(obj))
    return f"{module}.{name}" if module and module != "builtins" else name
