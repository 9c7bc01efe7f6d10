"""Loading inference backends: from a project directory, an installed module or an archive."""

from packflow.loaders.base import InferenceBackendLoader
from packflow.loaders.local import LocalLoader
from packflow.loaders.module import ModuleLoader
from packflow.loaders.packflow_yaml import PackflowConfig, apply_env_vars

__all__ = [
    "InferenceBackendLoader",
    "LocalLoader",
    "ModuleLoader",
    "PackflowConfig",
    "apply_env_vars",
]
