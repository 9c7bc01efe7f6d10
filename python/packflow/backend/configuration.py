"""Backend configuration: a pydantic model users subclass, and the hierarchy that fills it.

Lowest first: the model's defaults < keyword arguments given to the backend <
the ``configs`` object of the JSON file named by ``BACKEND_CONFIG_FILE_PATH``.
Dicts merge key by key; lists and scalars are replaced.
"""

from __future__ import annotations

import enum
import json
import os
from typing import Any

from pydantic import BaseModel

from packflow.constants import BACKEND_CONFIG_PATH_ENV_VAR_NAME
from packflow.logger import get_logger

logger = get_logger()


class InputFormats(enum.Enum):
    """How raw records are prepared before ``transform_inputs``/``execute`` see them."""

    PASSTHROUGH = "passthrough"
    RECORDS = "records"
    NUMPY = "numpy"


class BackendConfig(BaseModel):
    """Settings every backend has; subclass it to add your own fields."""

    verbose: bool = False

    input_format: InputFormats = InputFormats.RECORDS
    rename_fields: dict = {}
    feature_names: list[str] = []
    flatten_nested_inputs: bool = False
    flatten_lists: bool = False
    nested_field_delimiter: str = "."
    ignore_delimiter_collisions: bool = False

    output_keys: list[str] = []


def deep_merge(base: dict, override: dict) -> dict:
    """A new dict: ``override`` over ``base``; nested dicts merge, anything else replaces."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_config_file_overrides(path: str | os.PathLike | None = None) -> dict:
    """The ``configs`` object of the override file, or ``{}`` when there is none.

    A missing file, unreadable JSON, or a file without a ``configs`` object is
    logged and ignored: a bad override must not keep a backend from starting.
    """
    if path is None:
        path = os.environ.get(BACKEND_CONFIG_PATH_ENV_VAR_NAME)
    if not path:
        return {}
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        logger.warning("Backend config file %s does not exist; ignoring it", path)
        return {}
    except (OSError, ValueError) as exc:
        logger.warning("Backend config file %s could not be read (%s); ignoring it", path, exc)
        return {}
    configs = data.get("configs") if isinstance(data, dict) else None
    if not isinstance(configs, dict):
        logger.warning("Backend config file %s has no 'configs' object; ignoring it", path)
        return {}
    return configs


def load_backend_configuration(
    backend_config_model: BackendConfig | type[BackendConfig] = BackendConfig,
    **backend_kwargs: Any,
) -> BackendConfig:
    """Validate ``backend_kwargs`` merged under the file overrides with the config model."""
    overrides = load_config_file_overrides()
    raw = deep_merge(backend_kwargs, overrides) if overrides else dict(backend_kwargs)
    logger.debug("Raw backend configuration: %r", raw)
    config = backend_config_model.model_validate(raw)
    logger.info("Configuration: %r", config)
    return config
