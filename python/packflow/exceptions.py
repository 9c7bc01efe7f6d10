"""Exceptions raised by packflow. All are plain ``Exception`` subclasses."""


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
