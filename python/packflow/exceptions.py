"""Exceptions raised by packflow.

The seven of Packflow 0.4 are plain ``Exception`` subclasses. Where Packflow 0.4
raised another library's exception (pydantic's ``ValidationError`` for invalid
packflow.yaml fields), packflow raises a subclass of it, so the same ``except``
clauses catch it.
"""

from __future__ import annotations

from pydantic import ValidationError


class InferenceBackendInitializationError(Exception):
    """``initialize()`` of a backend raised."""


class InferenceBackendRuntimeError(Exception):
    """A step of a backend call failed, or the call's input or output had the wrong type."""


class InferenceBackendValidationError(Exception):
    """``check_io()`` found inputs or outputs that do not meet packflow's I/O format."""


class InferenceBackendLoadError(Exception):
    """A backend could not be imported or instantiated by a loader."""


class UnknownPreprocessorError(Exception):
    """No preprocessor exists for the requested input format."""


class PreprocessorInitError(Exception):
    """A preprocessor's configuration is incomplete or inconsistent."""


class PreprocessorRuntimeError(Exception):
    """A preprocessor failed on a batch; the message names the row and key path."""


class PackflowConfigError(ValueError):
    """A project's packflow.yaml is malformed or has invalid fields; the message names
    the line and the field."""


class PackflowConfigValidationError(PackflowConfigError, ValidationError):
    """packflow.yaml has fields of the wrong type or value.

    Also pydantic's ``ValidationError`` (which Packflow 0.4 raises there), with the
    same ``errors()``. The message is where the problems are in the file (``where``:
    line and field of each), then pydantic's own report.
    """

    where: str = ""

    @classmethod
    def from_validation_error(
        cls, exc: ValidationError, where: str
    ) -> PackflowConfigValidationError | PackflowConfigError:
        """The same errors as ``exc`` with ``where`` in front (a plain
        ``PackflowConfigError`` if pydantic cannot rebuild them)."""
        details = [
            {key: error[key] for key in ("type", "loc", "input", "ctx") if key in error}
            for error in exc.errors()
        ]
        try:
            err = cls.from_exception_data(exc.title, details)  # type: ignore[arg-type]
        except (KeyError, TypeError, ValueError):
            return PackflowConfigError(where)
        err.where = where
        return err

    def __str__(self) -> str:
        return f"{self.where}\n{ValidationError.__str__(self)}"


class PackflowConfigTypeError(PackflowConfigError, TypeError):
    """packflow.yaml is empty or its top level is not a mapping of fields; also a
    ``TypeError``, as in Packflow 0.4."""


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
