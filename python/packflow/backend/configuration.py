"""Backend configuration: a pydantic model users subclass, and the hierarchy that fills it.

Lowest first: the model's defaults < keyword arguments given to the backend <
the ``configs`` object of the JSON file named by ``BACKEND_CONFIG_FILE_PATH``.
Dicts merge key by key; lists and scalars are replaced.
"""

from __future__ import annotations

import difflib
import enum
import json
import os
import stat
import warnings
from collections.abc import Iterable
from typing import Any

from pydantic import AliasChoices, BaseModel, field_validator

from packflow.constants import BACKEND_CONFIG_PATH_ENV_VAR_NAME
from packflow.exceptions import PackflowConfigWarning, UnknownConfigKeysError
from packflow.logger import get_logger

logger = get_logger()

#: The largest ``BACKEND_CONFIG_FILE_PATH`` file that is read (16 MiB); a larger
#: one is ignored with a warning, without being read.
MAX_CONFIG_FILE_BYTES = 16 * 1024 * 1024


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

    @field_validator("nested_field_delimiter")
    @classmethod
    def _delimiter_is_not_empty(cls, value: str) -> str:
        if not value:
            raise ValueError(
                "nested_field_delimiter must not be empty: nested paths such as 'src.port' "
                "are split on it"
            )
        return value


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

    ``path`` defaults to ``$BACKEND_CONFIG_FILE_PATH``; unset or empty means no
    file. A file that cannot be used is ignored with a
    :class:`~packflow.exceptions.PackflowConfigWarning` (also logged) saying why:
    it does not exist, is not a regular file (a directory, a FIFO: never opened
    for a blocking read), is larger than :data:`MAX_CONFIG_FILE_BYTES`, is not
    JSON, or has no ``configs`` object. Packflow 0.4.1 does not read the file at
    all, so a stale variable warns rather than keeping a backend from starting.
    """
    if path is None:
        path = os.environ.get(BACKEND_CONFIG_PATH_ENV_VAR_NAME)
    if not path:
        return {}
    try:
        data = json.loads(_read_config_file(path))
    except _Unusable as exc:
        return _ignore(path, str(exc))
    except (ValueError, RecursionError) as exc:
        return _ignore(path, f"is not valid JSON ({exc})")
    configs = data.get("configs") if isinstance(data, dict) else None
    if not isinstance(configs, dict):
        return _ignore(path, "has no 'configs' object")
    return configs


class _Unusable(Exception):
    """Why the override file cannot be read: the end of the warning's sentence."""


_NOT_REGULAR = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def _read_config_file(path: str | os.PathLike) -> bytes:
    """The file's bytes; a regular file of at most ``MAX_CONFIG_FILE_BYTES``.

    Opened without blocking (a FIFO with no writer would block a plain open) and
    checked on the open descriptor, so the file read is the file checked.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise _Unusable("does not exist") from None
    except OSError as exc:
        raise _Unusable(f"cannot be opened ({exc.strerror or exc})") from None
    try:
        info = os.fstat(fd)
        mode, size = info.st_mode, info.st_size
        if not stat.S_ISREG(mode):
            kind = next((name for test, name in _NOT_REGULAR if test(mode)), "a special file")
            raise _Unusable(f"is {kind}, not a regular file")
        if size > MAX_CONFIG_FILE_BYTES:
            raise _Unusable(
                f"is larger than the {MAX_CONFIG_FILE_BYTES >> 20} MiB limit ({size:,} bytes)"
            )
        chunks, left = [], MAX_CONFIG_FILE_BYTES + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        if left <= 0:  # it grew past the limit since fstat
            raise _Unusable(f"is larger than the {MAX_CONFIG_FILE_BYTES >> 20} MiB limit")
        return b"".join(chunks)
    except OSError as exc:
        raise _Unusable(f"cannot be read ({exc.strerror or exc})") from None
    finally:
        os.close(fd)


def _ignore(path: str | os.PathLike, reason: str) -> dict:
    message = f"{BACKEND_CONFIG_PATH_ENV_VAR_NAME}={os.fspath(path)} {reason}; it is ignored"
    logger.warning(message)
    warnings.warn(message, PackflowConfigWarning, stacklevel=3)
    return {}


def config_keys(config_model: BackendConfig | type[BackendConfig]) -> list[str]:
    """The keys ``config_model`` reads from keyword arguments, in field order (a
    field's alias instead of its name when it has one and the model does not
    also validate by name)."""
    cls = config_model if isinstance(config_model, type) else type(config_model)
    by_name = bool(
        cls.model_config.get("populate_by_name") or cls.model_config.get("validate_by_name")
    )
    keys: list[str] = []
    for name, field in cls.model_fields.items():
        aliases: list[str] = []
        alias = field.validation_alias if field.validation_alias is not None else field.alias
        if isinstance(alias, str):
            aliases = [alias]
        elif isinstance(alias, AliasChoices):
            aliases = [choice for choice in alias.choices if isinstance(choice, str)]
        if by_name or not aliases:
            keys.append(name)
        keys.extend(a for a in aliases if a not in keys)
    return keys


def check_config_keys(
    config_model: BackendConfig | type[BackendConfig], keys: Iterable[str]
) -> None:
    """Raise :class:`~packflow.exceptions.UnknownConfigKeysError` (a ``ValueError``)
    if any of ``keys`` is not a key of ``config_model``, naming each unknown key
    (with the nearest known one when it looks like a typo) and the known keys.

    Packflow 0.4 ignores unknown keyword arguments, and so does the Python API
    here (it logs a warning); a command line should call this on the keys the
    user typed, for example ``packflow run --config treshold=0.9``. A model that
    allows extra fields (``extra="allow"``) accepts every key.
    """
    cls = config_model if isinstance(config_model, type) else type(config_model)
    if cls.model_config.get("extra") == "allow":
        return
    known = config_keys(cls)
    unknown = [key for key in dict.fromkeys(keys) if key not in known]
    if not unknown:
        return
    described = []
    for key in unknown:
        close = difflib.get_close_matches(str(key), known, n=1)
        described.append(f"{key!r} (did you mean {close[0]!r}?)" if close else repr(key))
    noun = "key" if len(unknown) == 1 else "keys"
    raise UnknownConfigKeysError(
        f"unknown config {noun} for {cls.__name__}: {', '.join(described)}; "
        f"known keys: {', '.join(known)}",
        unknown,
        known,
    )


def load_backend_configuration(
    backend_config_model: BackendConfig | type[BackendConfig] = BackendConfig,
    **backend_kwargs: Any,
) -> BackendConfig:
    """Validate ``backend_kwargs`` merged under the file overrides with the config model.

    Keys the model does not have are ignored, as in Packflow 0.4, and logged as a
    warning (see :func:`check_config_keys` for a strict check).
    """
    overrides = load_config_file_overrides()
    raw = deep_merge(backend_kwargs, overrides) if overrides else dict(backend_kwargs)
    logger.debug("Raw backend configuration: %r", raw)
    model_class = (
        backend_config_model
        if isinstance(backend_config_model, type)
        else type(backend_config_model)
    )
    if issubclass(model_class, BaseModel):
        try:
            check_config_keys(model_class, raw)
        except UnknownConfigKeysError as exc:
            logger.warning("%s (ignored)", exc)
    config = backend_config_model.model_validate(raw)
    logger.info("Configuration: %r", config)
    return config
