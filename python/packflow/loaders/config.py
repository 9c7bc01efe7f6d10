"""Packflow 0.4's module path for the packflow.yaml model and its export checks,
kept for code that imports from it.

The model lives in :mod:`packflow.loaders.packflow_yaml`. The export checks
belong to the project layer, above the loaders (:mod:`packflow.project.checks`):
``validate_for_export`` and ``_validate_inference_backend`` import it when
called, never at import time, so the layers still import one way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

from packflow import constants as constants
from packflow.loaders.packflow_yaml import (
    METADATA_KEYS as _METADATA_KEYS,
)
from packflow.loaders.packflow_yaml import (
    NAME_PATTERN,
    InferenceBackendStr,
    NameStr,
    PackflowConfig,
    apply_env_vars,
    get_python_version,
    load_packflow_config,
    normalize_archive_name,
    python_version_warning,
    read_raw_config,
)
from packflow.loaders.packflow_yaml import (
    RUNTIME_KEYS as _RUNTIME_KEYS,
)
from packflow.logger import get_logger

#: The metadata fields of packflow.yaml (a list, as in Packflow 0.4).
METADATA_KEYS = list(_METADATA_KEYS)
#: The runtime fields of packflow.yaml (a list, as in Packflow 0.4).
RUNTIME_CONFIG_KEYS = list(_RUNTIME_KEYS)

# Where ``verbose=True`` reports each check: the logger `packflow validate -v` prints.
_report = get_logger("project")


def check_python_version(config: PackflowConfig, verbose: bool = False) -> Optional[str]:
    """A warning when packflow.yaml's ``python_version`` names another minor
    version than the running interpreter, or is not a dotted version of integers
    (``"3.11"``, ``"3.11.4"``); ``None`` when they agree. ``verbose`` logs a match."""
    warning = python_version_warning(config.python_version)
    if warning is not None:
        return warning
    if verbose:
        _report.info("python_version: %s (matches runtime)", config.python_version)
    return None


def validate_for_export(
    config: PackflowConfig,
    project_dir: Optional[Union[str, Path]] = None,
    verbose: bool = False,
) -> tuple[list[str], list[str]]:
    """``(errors, warnings)`` of packflow.yaml's fields: errors block an export.

    With ``project_dir``, also the backend file of the local loader and a smoke
    load of the backend (as :func:`packflow.project.checks.config_checks`).
    ``verbose`` logs every check at INFO level on the ``packflow.project`` logger.
    """
    from packflow.project import checks

    directory = Path(project_dir).resolve() if project_dir else None
    results = [
        check
        for check in checks.config_checks(config, directory)
        if check.subject != "python_version"
    ]
    if verbose:
        for check in results:
            _report.info("%s: %s", check.section, check.describe())
    errors, warnings = checks.split_levels(results)
    python_warning = check_python_version(config, verbose=verbose)
    if python_warning:
        warnings.append(python_warning)
    return errors, warnings


def _validate_inference_backend(
    config: PackflowConfig,
    project_dir: Optional[Union[str, Path]] = None,
    verbose: bool = False,
) -> list[str]:
    """Packflow 0.4.1's helper: the errors of loading and instantiating the
    project's backend (``[]`` when it loads, or without ``project_dir``)."""
    if not project_dir:
        return []
    from packflow.project import checks

    result = checks.smoke_load_check(Path(project_dir).resolve(), config)
    if verbose:
        _report.info("%s: %s", result.section, result.describe())
    return [result.message] if result.level == "error" else []


def _load_raw_packaging_config(base_dir: Union[str, Path]) -> object:
    """Packflow 0.4.1's helper: ``<base_dir>/packflow.yaml`` parsed, before any
    field is checked (``None`` for an empty file). A missing file is
    ``FileNotFoundError``; invalid YAML raises a subclass of PyYAML's error."""
    path = Path(base_dir).resolve() / constants.PACKAGING_CONFIG_NAME
    return read_raw_config(path)


__all__ = [
    "METADATA_KEYS",
    "NAME_PATTERN",
    "RUNTIME_CONFIG_KEYS",
    "InferenceBackendStr",
    "NameStr",
    "PackflowConfig",
    "apply_env_vars",
    "check_python_version",
    "get_python_version",
    "load_packflow_config",
    "normalize_archive_name",
    "validate_for_export",
]
