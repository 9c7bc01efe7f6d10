"""The inference backend, its configuration, preprocessors, metrics and validation."""

from packflow.backend.base import InferenceBackend
from packflow.backend.configuration import BackendConfig

__all__ = ["BackendConfig", "InferenceBackend"]
