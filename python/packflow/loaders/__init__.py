"""Loading inference backends: from a project directory, an installed module or an archive."""

from packflow.loaders.base import InferenceBackendLoader
from packflow.loaders.config import PackflowConfig, apply_env_vars
from packflow.loaders.local import LocalLoader
from packflow.loaders.module import ModuleLoader

__all__ = [
    "InferenceBackendLoader",
    "LocalLoader",
    "ModuleLoader",
    "PackflowConfig",
    "apply_env_vars",
]
