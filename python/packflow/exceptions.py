"""Exceptions raised by packflow.

The seven of Packflow 0.4 are plain ``Exception`` subclasses. Where Packflow 0.4
raised another library's exception (pydantic's ``ValidationError`` for invalid
packflow.yaml fields), packflow raises a subclass of it, so the same ``except``
clauses catch it.
"""

from __future__ import annotations


class InferenceBackendInitializationError(Exception):
    """``initialize()`` of a backend raised."""


class InferenceBackendRuntimeError(Exception):
    """A step of a backend call failed, or the call's input or output had the wrong type.

    ``step`` names the step that failed (``"preprocess"``, ``"transform_inputs"``,
    ``"execute"``, ``"transform_outputs"``) when a step raised, else ``None``.
    """

    step: str | None = None


class InferenceBackendValidationError(Exception):
    """``check_io()`` found inputs or outputs that do not meet packflow's I/O format."""


class InferenceBackendLoadError(Exception):
    """A backend could not be imported or instantiated by a loader.

    What a loader's ``load_backend_module()`` raises is also an instance of the
    exception Packflow 0.4.1 let through there (``AttributeError`` for a missing
    object, ``FileNotFoundError`` for a missing file, the import's own error...):
    see :func:`load_error_like`.
    """


# One class per foreign type, made on first use: (InferenceBackendLoadError, that type).
_LOAD_ERRORS_LIKE: dict[type, type] = {}


def _load_error_class(like: type) -> type[InferenceBackendLoadError]:
    cls = _LOAD_ERRORS_LIKE.get(like)
    if cls is None:
        # Same name as the base, so messages and the CLI's "InferenceBackendLoadError:"
        # read as before; __reduce__ rebuilds it by the foreign type in another process.
        cls = type(
            "InferenceBackendLoadError",
            (InferenceBackendLoadError, like),
            {
                "__module__": __name__,
                "__qualname__": "InferenceBackendLoadError",
                "__doc__": f"An InferenceBackendLoadError that is also a {like.__name__}.",
                "__str__": lambda self: str(self.args[0]) if self.args else "",
                "__reduce__": lambda self: (load_error_like, (like, *self.args[:1])),
            },
        )
        _LOAD_ERRORS_LIKE[like] = cls
    return cls


def load_error_like(like: type[BaseException], message: str = "") -> InferenceBackendLoadError:
    """An :class:`InferenceBackendLoadError` with ``message`` that is also an
    instance of ``like``, so both ``except InferenceBackendLoadError`` and the
    ``except like`` that Packflow 0.4.1's code needed catch it.

    Plain ``InferenceBackendLoadError`` when ``like`` is not an ``Exception``
    subclass (``SystemExit`` must not become a load error that escapes
    ``except Exception``) or cannot be combined with it (a final class, a
    layout conflict).
    """
    if not (isinstance(like, type) and issubclass(like, Exception)):
        return InferenceBackendLoadError(message)
    if issubclass(like, InferenceBackendLoadError):
        return like(message)
    try:
        cls = _load_error_class(like)
        error = cls.__new__(cls, message)
        # Not cls(message): some foreign types' __init__ wants other arguments
        # (UnicodeDecodeError takes five); the message is all a load error carries.
        error.args = (message,)
    except TypeError:
        return InferenceBackendLoadError(message)
    return error


class UnknownPreprocessorError(Exception):
    """No preprocessor exists for the requested input format."""


class PreprocessorInitError(Exception):
    """A preprocessor's configuration is incomplete or inconsistent."""


class PreprocessorRuntimeError(Exception):
    """A preprocessor failed on a batch; the message names the row and key path."""


class PackflowConfigError(ValueError):
    """A project's packflow.yaml is malformed or has invalid fields. ``path`` is the
    file and ``line`` the 1-based line (``None`` when unknown); the subclasses that
    reading raises are also what Packflow 0.4 raised (see
    :mod:`packflow.loaders.packflow_yaml`)."""

    path = None
    line = None


class UnknownConfigKeysError(ValueError):
    """Configuration keys that the backend's config model does not have (a typo such
    as ``treshold``), from :func:`packflow.backend.configuration.check_config_keys`.

    ``unknown``: the keys, in the order given; ``known``: the model's keys.
    """

    def __init__(self, message: str, unknown: list[str], known: list[str]):
        super().__init__(message)
        self.unknown = unknown
        self.known = known


class PackflowConfigWarning(UserWarning):
    """A configuration source was ignored: the ``BACKEND_CONFIG_FILE_PATH`` file is
    missing, not a regular file, too large, not JSON, or has no ``configs`` object."""


class PackflowArchiveError(ValueError):
    """A project archive is unsafe to extract (an entry escapes the target, is absolute
    or a symlink), is not a zip file, or does not match its manifest."""


def describe_error(exc: BaseException) -> str:
    """The text to show a user for ``exc``: its message followed by its notes
    (``add_note``), as a traceback shows them, since the notes are where packflow
    names the file and line.

    An error in a packflow.yaml is its notes alone: they say each problem with
    its file, line and field, where the message is pydantic's or PyYAML's own
    text (kept for code written against Packflow 0.4) with its web links. Every
    door that reports a load failure (the CLI, worker processes, Ray actors)
    says it with this, so a bad packflow.yaml reads the same everywhere."""
    notes = list(getattr(exc, "__notes__", ()))
    if isinstance(exc, PackflowConfigError) and notes:
        return "\n".join(notes)
    return "\n".join([str(exc) or type(exc).__name__, *notes])
