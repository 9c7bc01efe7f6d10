"""``packflow.yaml``: the project file naming the backend, its runtime and its metadata.

Reading it reports problems by line and field (``packflow.yaml line 3, field
'loader': ...``) rather than as a bare YAML or pydantic dump.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

from packflow import constants
from packflow.exceptions import (
    PackflowConfigError,
    PackflowConfigTypeError,
    PackflowConfigValidationError,
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

        A missing file is ``FileNotFoundError``; unparsable YAML or invalid fields
        are :class:`~packflow.exceptions.PackflowConfigError` naming line and field.
        """
        path = Path(base_dir).resolve() / constants.PACKAGING_CONFIG_NAME
        data, positions = _read_yaml_mapping(path)
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            where = _format_validation_error(path, exc, positions)
            raise PackflowConfigValidationError.from_validation_error(exc, where) from exc

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
        from packflow import __version__

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


def apply_env_vars(config: PackflowConfig) -> None:
    """Export the ``env`` mapping of packflow.yaml into ``os.environ``.

    A variable already set to a different value is overwritten, with a warning.
    """
    logger = get_logger()
    for key, value in config.env.items():
        current = os.environ.get(key)
        if current is not None and current != value:
            logger.warning("packflow.yaml env overrides %s (was %r, now %r)", key, current, value)
        os.environ[key] = value


def load_packflow_config(path: Union[str, Path]) -> PackflowConfig:
    """The config of the project directory ``path``; ``NotADirectoryError`` if there is none."""
    project_dir = Path(path).resolve()
    if not project_dir.is_dir():
        raise NotADirectoryError(f"{path} is not a packflow project directory")
    return PackflowConfig.from_project_path(project_dir)


def validate_for_export(
    config: PackflowConfig, project_dir: Union[str, Path, None] = None, verbose: bool = False
) -> tuple[list[str], list[str]]:
    """``(errors, warnings)`` of the packflow.yaml fields; with ``project_dir``, also the
    backend file and a smoke load. ``verbose`` prints every check."""
    from packflow.project import checks, echo_checks

    directory = Path(project_dir).resolve() if project_dir is not None else None
    results = list(checks.config_checks(config, directory))
    if verbose:
        echo_checks(results)
    return checks.split_levels(results)


# --- reading packflow.yaml with positions ---------------------------------------------

# Field path (keys and list indices as strings) -> 1-based line of its key or item.
Positions = dict[tuple[str, ...], int]


def _read_yaml_mapping(path: Path) -> tuple[dict, Positions]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(
            f"Not a packflow project (no {constants.PACKAGING_CONFIG_NAME} found in "
            f"{path.parent}). Run 'packflow create <name>' to start one."
        ) from None
    except UnicodeDecodeError as exc:
        raise PackflowConfigError(f"{path} is not UTF-8 text ({exc.reason})") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        error_class = PackflowConfigYAMLError.matching(type(exc))
        raise error_class(_format_yaml_error(path, exc), exc, path) from None
    except yaml.YAMLError as exc:
        raise PackflowConfigError(f"{path} is not valid YAML: {exc}") from None
    if data is None:
        raise PackflowConfigTypeError(
            f"{path} is empty: it needs at least a 'name' field (e.g. 'name: my-project')"
        )
    if not isinstance(data, dict) or not isinstance(root, yaml.MappingNode):
        line = root.start_mark.line + 1 if root is not None else 1
        raise PackflowConfigTypeError(
            f"{path} line {line}: the top level must be a mapping of fields "
            f"('name: ...', 'version: ...'), not a {type(data).__name__}"
        )
    positions: Positions = {}
    _collect_positions(root, (), positions, path)
    return data, positions


def _collect_positions(node: yaml.Node, prefix: tuple[str, ...], out: Positions, path: Path):
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
            line = key_node.start_mark.line + 1
            if key in seen and key != "?":
                field = ".".join((*prefix, key))
                raise PackflowConfigError(
                    f"{path} line {line}: field '{field}' is given twice "
                    f"(first on line {seen[key]})"
                )
            seen[key] = line
            out[(*prefix, key)] = line
            _collect_positions(value_node, (*prefix, key), out, path)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            out[(*prefix, str(index))] = item.start_mark.line + 1
            _collect_positions(item, (*prefix, str(index)), out, path)


class PackflowConfigYAMLError(PackflowConfigError, yaml.MarkedYAMLError):
    """packflow.yaml is not valid YAML. Also yaml's ``MarkedYAMLError`` (which
    Packflow 0.4 raises there): the message is the file, line and column, then
    yaml's own report, its marks naming the file."""

    def __init__(self, where: str, exc: yaml.MarkedYAMLError, path: Path):
        # Marks as yaml gives them for a file: named by its path, without a snippet.
        for mark in (exc.context_mark, exc.problem_mark):
            if mark is not None:
                mark.name, mark.buffer = str(path), None
        yaml.MarkedYAMLError.__init__(
            self, exc.context, exc.context_mark, exc.problem, exc.problem_mark, exc.note
        )
        self.where = where

    def __str__(self) -> str:
        return f"{self.where}\n{yaml.MarkedYAMLError.__str__(self)}"

    @classmethod
    @functools.cache
    def matching(cls, yaml_class: type) -> type[PackflowConfigYAMLError]:
        """The subclass that is also ``yaml_class`` (``ScannerError``, ``ParserError``...)."""
        if not issubclass(yaml_class, yaml.MarkedYAMLError) or yaml_class is yaml.MarkedYAMLError:
            return cls
        return type(f"PackflowConfig{yaml_class.__name__}", (cls, yaml_class), {})


def _format_yaml_error(path: Path, exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = exc.problem or "could not be parsed"
    context = f" ({exc.context})" if exc.context else ""
    return f"{path}{where}: invalid YAML: {problem}{context}"


_FRIENDLY_MESSAGES = {
    ("name", "string_pattern_mismatch"): (
        "must start with a letter and contain only letters, digits, '-' and '_'"
    ),
    ("inference_backend", "string_pattern_mismatch"): (
        "must be 'module:Object' with exactly one colon, e.g. 'inference:Backend'"
    ),
}


def _problems(exc: ValidationError, positions: Positions) -> Iterator[str]:
    known = ", ".join(PackflowConfig.model_fields)
    for error in exc.errors():
        loc = tuple(str(part) for part in error["loc"] if part != "[key]")
        field = ".".join(loc) or "<top level>"
        line = next(
            (positions[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in positions), None
        )
        where = f"line {line}, field '{field}'" if line else f"field '{field}'"
        kind = error["type"]
        value = error.get("input")
        if kind == "missing":
            yield f"{where}: is required"
            continue
        if kind == "extra_forbidden" and len(loc) == 1:
            yield (
                f"{where}: is not a packflow.yaml field (known fields: {known}; "
                "put your own settings under 'extra')"
            )
            continue
        message = _FRIENDLY_MESSAGES.get((loc[0] if loc else "", kind), error["msg"])
        if (
            kind == "string_type"
            and isinstance(value, (int, float))
            and not isinstance(value, bool)
        ):
            message += " (YAML read a number here: put the value in quotes)"
        yield f"{where}: {message} (got {value!r})"


def _format_validation_error(path: Path, exc: ValidationError, positions: Positions) -> str:
    problems = list(_problems(exc, positions))
    if len(problems) == 1:
        return f"{path} {problems[0]}"
    return f"{path} has {len(problems)} problems:\n" + "\n".join(f"  {p}" for p in problems)


__all__ = [
    "INFERENCE_BACKEND_PATTERN",
    "NAME_PATTERN",
    "PackflowConfig",
    "apply_env_vars",
    "get_python_version",
    "load_packflow_config",
    "normalize_archive_name",
    "validate_for_export",
]
