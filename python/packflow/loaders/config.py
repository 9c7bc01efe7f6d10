"""Packflow 0.4's module path for the packflow.yaml model, kept for code that
imports from it: the model lives in :mod:`packflow.loaders.packflow_yaml`.

Its export checks (0.4's ``validate_for_export`` and ``check_python_version``)
are :func:`packflow.project.checks.config_checks` and
:func:`~packflow.project.checks.python_version_check`: they belong to the
project layer, above the loaders.
"""

from packflow.loaders.packflow_yaml import (
    METADATA_KEYS as _METADATA_KEYS,
)
from packflow.loaders.packflow_yaml import (
    NAME_PATTERN,
    PackflowConfig,
    apply_env_vars,
    get_python_version,
    normalize_archive_name,
)
from packflow.loaders.packflow_yaml import (
    RUNTIME_KEYS as _RUNTIME_KEYS,
)

#: The metadata fields of packflow.yaml (a list, as in Packflow 0.4).
METADATA_KEYS = list(_METADATA_KEYS)
#: The runtime fields of packflow.yaml (a list, as in Packflow 0.4).
RUNTIME_CONFIG_KEYS = list(_RUNTIME_KEYS)

__all__ = [
    "METADATA_KEYS",
    "NAME_PATTERN",
    "RUNTIME_CONFIG_KEYS",
    "PackflowConfig",
    "apply_env_vars",
    "get_python_version",
    "normalize_archive_name",
]
