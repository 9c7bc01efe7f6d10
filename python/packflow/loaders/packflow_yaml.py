"""``packflow.yaml``: the project file naming the backend, its runtime and its metadata.

This module is the model (:class:`PackflowConfig`) and the messages for its
invalid fields; the file is read by :mod:`packflow.loaders.yaml_reader` (size
and alias limits, duplicate keys, the line of every field) and every error is
one of :mod:`packflow.loaders.config_errors`, re-exported here, where they were.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

from packflow import constants
from packflow._version import __version__
from packflow.loaders.config_errors import (
    FieldProblem,
    PackflowConfigComposerError,
    PackflowConfigConstructorError,
    PackflowConfigParserError,
    PackflowConfigReaderError,
    PackflowConfigScannerError,
    PackflowConfigSyntaxError,
    PackflowConfigTypeError,
    PackflowConfigValidationError,
    _add_note,
)
from packflow.loaders.yaml_reader import (
    MAX_FILE_BYTES,
    MAX_VALUES,
    Positions,
    _read_yaml_mapping,
    read_raw_config,
)
from packflow.logger import get_logger

#: What a project name may look like (it also names the project directory).
NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]*$"
#: ``module:Object``: exactly one colon, something on each side.
INFERENCE_BACKEND_PATTERN = r"^[^:]+:[^:]+$"

METADATA_KEYS = ("name", "version", "description", "maintainers")
RUNTIME_KEYS = ("inference_backend", "loader", "python_version")
# Optional mappings, written to packflow.yaml only when non-empty: (key, section title).
OPTIONAL_SECTIONS = (
    ("env", "ENVIRONMENT"),
    ("backend_config", "BACKEND CONFIG"),
    ("extra", "CUSTOM"),
)

NameStr = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
InferenceBackendStr = Annotated[str, StringConstraints(pattern=INFERENCE_BACKEND_PATTERN)]


def get_python_version() -> str:
    """``major.minor.micro`` of the running interpreter."""
    info = sys.version_info
    return f"{info.major}.{info.minor}.{info.micro}"


def python_version_warning(python_version: str) -> Optional[str]:
    """Why packflow.yaml's ``python_version`` does not fit the running
    interpreter (another minor version, or not dotted integers such as
    ``"3.11"`` or ``"3.11.4"``), in Packflow 0.4.1's words; ``None`` when it fits.
    The one verdict behind ``packflow validate`` and ``check_python_version``."""
    running = get_python_version()
    try:
        numbers = [int(part) for part in python_version.split(".")]
        wanted = (numbers[0], numbers[1])
    except (ValueError, IndexError):
        return (
            f"Could not parse python_version '{python_version}' in packflow.yaml. "
            f"Expected a version string like '{running}'."
        )
    if wanted != tuple(sys.version_info[:2]):
        return (
            f"packflow.yaml specifies Python {python_version}, but the current "
            f"environment is Python {running}. Update the python_version field or test "
            "under a matching interpreter."
        )
    return None


def normalize_archive_name(name: str) -> str:
    """The project name as used in an archive file name: ``-`` becomes ``_`` so the
    last ``-`` of ``<name>-<version>.zip`` always separates name from version."""
    return name.replace("-", "_")


class PackflowConfig(BaseModel):
    """The contents of a project's ``packflow.yaml``."""

    model_config = ConfigDict(extra="forbid")

    # Metadata
    name: NameStr
    version: str = "0.1.0"
    description: str = ""
    maintainers: list[str] = []

    # Runtime
    inference_backend: InferenceBackendStr = "inference:Backend"
    loader: Literal["local", "module"] = "local"
    python_version: str = get_python_version()

    # Environment variables set before the backend is imported.
    env: dict[str, str] = {}
    # Keyword arguments for the backend; explicit keyword arguments win over them.
    backend_config: dict = {}
    # Free-form settings for tools built on packflow.
    extra: dict = {}

    @classmethod
    def from_project_path(cls, base_dir: Union[str, Path]) -> PackflowConfig:
        """Read and validate ``<base_dir>/packflow.yaml``.

        A missing file is ``FileNotFoundError``. Everything else is a
        :class:`~packflow.exceptions.PackflowConfigError` naming the file and line:
        invalid fields a :class:`PackflowConfigValidationError` (pydantic's
        ``ValidationError``), invalid YAML a :class:`PackflowConfigSyntaxError`
        (``yaml.YAMLError``), an empty file or a top level that is not a mapping a
        :class:`PackflowConfigTypeError` (``TypeError``); a file over
        :data:`MAX_FILE_BYTES`, not UTF-8, with a key given twice, or whose aliases
        stand for more than :data:`MAX_VALUES` values, a plain ``PackflowConfigError``.
        """
        path = Path(base_dir).resolve() / constants.PACKAGING_CONFIG_NAME
        data, positions = _read_yaml_mapping(path)
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise _located_validation_error(exc, path, positions) from None

    def archive_file_name(self, base_dir: Union[str, Path]) -> Path:
        """``<base_dir>/<name with - as _>-<version>.zip`` (``base_dir`` resolved)."""
        version = self.version
        if not version or any(ch in version for ch in "/\\\0") or version in {".", ".."}:
            raise ValueError(
                f"version {version!r} cannot be used in an archive file name "
                "(it must be non-empty, without '/' or '\\')"
            )
        return Path(base_dir).resolve() / f"{normalize_archive_name(self.name)}-{version}.zip"

    def write_yaml(self, base_dir: Union[str, Path]) -> Path:
        """Write ``packflow.yaml`` into ``base_dir``: metadata, runtime, then the
        environment, backend config and custom sections when they are not empty."""
        path = Path(base_dir).resolve() / constants.PACKAGING_CONFIG_NAME
        data = self.model_dump()
        sections = [("METADATA", {k: data[k] for k in METADATA_KEYS})]
        sections.append(("RUNTIME", {k: data[k] for k in RUNTIME_KEYS}))
        sections.extend((title, {key: data[key]}) for key, title in OPTIONAL_SECTIONS if data[key])
        chunks = [f"# ---- {title} ----\n" + _dump_section(body) for title, body in sections]
        path.write_text("\n".join(chunks), encoding="utf-8")
        return path

    def write_requirements(self, base_dir: Union[str, Path]) -> Path:
        """Write ``requirements.txt`` pinning the installed packflow."""
        path = Path(base_dir).resolve() / constants.REQUIREMENTS_TEXT_NAME
        path.write_text(f"packflow=={__version__}\n", encoding="utf-8")
        return path


def _dump_section(body: dict) -> str:
    text = yaml.safe_dump(body, sort_keys=False, allow_unicode=True, default_flow_style=False)
    # Readable unicode, unless a character YAML treats as a line break (NEL, U+2028)
    # would not survive it: then escape everything that is not ASCII.
    if yaml.safe_load(text) != body:
        text = yaml.safe_dump(body, sort_keys=False, allow_unicode=False, default_flow_style=False)
    return text


def apply_env_vars(config: PackflowConfig) -> dict[str, Optional[str]]:
    """Export the ``env`` mapping of packflow.yaml into ``os.environ``.

    A variable already set to a different value is overwritten, with a warning.
    Returns the previous value of each variable set (``None``: it was unset), for
    :func:`restore_env`.
    """
    logger = get_logger()
    previous: dict[str, Optional[str]] = {}
    for key, value in config.env.items():
        current = os.environ.get(key)
        previous.setdefault(key, current)
        if current is not None and current != value:
            logger.warning("packflow.yaml env overrides %s (was %r, now %r)", key, current, value)
        os.environ[key] = value
    return previous


def restore_env(previous: dict[str, Optional[str]]) -> None:
    """Undo :func:`apply_env_vars`: each variable back to its value before, or unset."""
    for key, value in previous.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def load_packflow_config(path_or_module: Union[str, Path]) -> PackflowConfig:
    """The config of the project directory ``path_or_module`` (the name is Packflow
    0.4's; only directories are read); ``NotADirectoryError`` if there is none."""
    project_dir = Path(path_or_module).resolve()
    if not project_dir.is_dir():
        raise NotADirectoryError(
            f"Could not identify packflow project at {path_or_module}: it is not a directory"
        )
    return PackflowConfig.from_project_path(project_dir)


_FRIENDLY_MESSAGES = {
    ("name", "string_pattern_mismatch"): (
        "must start with a letter and contain only letters, digits, '-' and '_'"
    ),
    ("inference_backend", "string_pattern_mismatch"): (
        "must be 'module:Object' with exactly one colon, e.g. 'inference:Backend'"
    ),
}


def _problems(exc: ValidationError, positions: Positions) -> Iterator[FieldProblem]:
    known = ", ".join(PackflowConfig.model_fields)
    for error in exc.errors():
        loc = tuple(str(part) for part in error["loc"] if part != "[key]")
        field = ".".join(loc) or "<top level>"
        line = next(
            (positions[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in positions), None
        )
        kind = error["type"]
        value = error.get("input")
        if kind == "missing":
            yield FieldProblem(field, line, "is required")
            continue
        if kind == "extra_forbidden" and len(loc) == 1:
            yield FieldProblem(
                field,
                line,
                f"is not a packflow.yaml field (known fields: {known}; "
                "put your own settings under 'extra')",
            )
            continue
        message = _FRIENDLY_MESSAGES.get((loc[0] if loc else "", kind), error["msg"])
        if (
            kind == "string_type"
            and isinstance(value, (int, float))
            and not isinstance(value, bool)
        ):
            message += " (YAML read a number here: put the value in quotes)"
        yield FieldProblem(field, line, f"{message} (got {value!r})")


def _located_validation_error(
    exc: ValidationError, path: Path, positions: Positions
) -> ValidationError:
    """``exc`` as a :class:`PackflowConfigValidationError` with a note naming the
    file, and the line and field of each problem."""
    problems = list(_problems(exc, positions))
    try:
        located: ValidationError = PackflowConfigValidationError.from_exception_data(
            exc.title, exc.errors()
        )
    except Exception:  # noqa: BLE001 - an error pydantic cannot rebuild: keep the original
        located = exc
    located.path, located.problems = path, problems
    located.line = next((p.line for p in problems if p.line), None)
    if len(problems) == 1:
        note = f"{path} {problems[0]}"
    else:
        note = f"{path} has {len(problems)} problems:\n" + "\n".join(f"  {p}" for p in problems)
    _add_note(located, note)
    return located


__all__ = [
    "INFERENCE_BACKEND_PATTERN",
    "MAX_FILE_BYTES",
    "MAX_VALUES",
    "FieldProblem",
    "PackflowConfigComposerError",
    "PackflowConfigConstructorError",
    "PackflowConfigParserError",
    "PackflowConfigReaderError",
    "PackflowConfigScannerError",
    "PackflowConfigSyntaxError",
    "PackflowConfigTypeError",
    "PackflowConfigValidationError",
    "NAME_PATTERN",
    "PackflowConfig",
    "apply_env_vars",
    "get_python_version",
    "load_packflow_config",
    "normalize_archive_name",
    "python_version_warning",
    "read_raw_config",
    "restore_env",
]
