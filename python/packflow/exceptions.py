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
    """A backend could not be imported or instantiated by a loader."""


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
