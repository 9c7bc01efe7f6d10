"""``packflow.yaml``: the project file naming the backend, its runtime and its metadata.

Reading it raises what Packflow 0.4 raised (PyYAML's errors, pydantic's
``ValidationError``, ``TypeError``), as subclasses that also are
:class:`~packflow.exceptions.PackflowConfigError` and name the file, line and
field. The YAML node graph is walked once, never through an alias twice, and
files whose aliases stand for too many values are refused before any value is built.
"""

from __future__ import annotations

import io
import os
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

from packflow import constants
from packflow._version import __version__
from packflow.exceptions import PackflowConfigError
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


# --- reading packflow.yaml -------------------------------------------------------------

#: Largest packflow.yaml read, in bytes: a project file, not a data file.
MAX_FILE_BYTES = 4 << 20
#: Most values (scalars, lists, mappings) a packflow.yaml may hold, counting every
#: alias as a full copy of what it names: refuses "billion laughs" alias bombs,
#: whose few hundred bytes name billions of values.
MAX_VALUES = 100_000

# Field path (keys and list indices as strings) -> 1-based line of its key or item.
Positions = dict[tuple[str, ...], int]


class PackflowConfigSyntaxError(yaml.YAMLError, PackflowConfigError):
    """packflow.yaml is not valid YAML, and a
    :class:`~packflow.exceptions.PackflowConfigError`.

    What is raised is a subclass of both this class and the error PyYAML raised
    (``PackflowConfigScannerError`` for a ``ScannerError``, ...: what Packflow 0.4
    raised), with its message and marks; ``path`` and ``line`` say where, and a
    note says it on one line (file, line, column, problem), as the note of a
    :class:`PackflowConfigValidationError` does for fields.
    """


class PackflowConfigScannerError(yaml.scanner.ScannerError, PackflowConfigSyntaxError):
    """PyYAML's ``ScannerError`` in packflow.yaml."""


class PackflowConfigParserError(yaml.parser.ParserError, PackflowConfigSyntaxError):
    """PyYAML's ``ParserError`` in packflow.yaml."""


class PackflowConfigComposerError(yaml.composer.ComposerError, PackflowConfigSyntaxError):
    """PyYAML's ``ComposerError`` in packflow.yaml (e.g. several documents)."""


class PackflowConfigConstructorError(yaml.constructor.ConstructorError, PackflowConfigSyntaxError):
    """PyYAML's ``ConstructorError`` in packflow.yaml (e.g. an unhashable key)."""


class PackflowConfigReaderError(yaml.reader.ReaderError, PackflowConfigSyntaxError):
    """PyYAML's ``ReaderError`` in packflow.yaml (a character YAML does not allow)."""


_SYNTAX_ERRORS: dict[type, type[PackflowConfigSyntaxError]] = {
    yaml.scanner.ScannerError: PackflowConfigScannerError,
    yaml.parser.ParserError: PackflowConfigParserError,
    yaml.composer.ComposerError: PackflowConfigComposerError,
    yaml.constructor.ConstructorError: PackflowConfigConstructorError,
    yaml.reader.ReaderError: PackflowConfigReaderError,
}


def _syntax_error(exc: yaml.YAMLError, path: Path, text: str) -> PackflowConfigSyntaxError:
    cls = _SYNTAX_ERRORS.get(type(exc), PackflowConfigSyntaxError)
    error = cls.__new__(cls, *exc.args)
    error.args = exc.args
    error.__dict__.update(vars(exc))  # PyYAML's errors keep their marks as attributes
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is not None:
        error.line = mark.line + 1
    elif isinstance(getattr(exc, "position", None), int):  # ReaderError: a character offset
        error.line = text.count("\n", 0, exc.position) + 1
    error.path = path
    _add_note(error, f"{path} {_syntax_problem(exc, error.line)}")
    return error


def _syntax_problem(exc: yaml.YAMLError, line: Optional[int]) -> str:
    """PyYAML's complaint on one line, where its message takes four (each mark
    with the file name again): ``line 3, column 18: expected ',' or ']', but got
    ':' (while parsing a flow sequence, line 2)``."""
    if isinstance(exc, yaml.reader.ReaderError):
        return f"line {line}: unacceptable character #x{exc.character:04x}: {exc.reason}"
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else f"line {line}"
    text = f"{where}: {getattr(exc, 'problem', None) or getattr(exc, 'context', None) or exc}"
    context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context and getattr(exc, "problem", None):
        text += f" ({context}, line {context_mark.line + 1})" if context_mark else f" ({context})"
    return text


class PackflowConfigTypeError(PackflowConfigError, TypeError):
    """packflow.yaml is empty or its top level is not a mapping: a ``TypeError`` (as
    with Packflow 0.4) and a :class:`~packflow.exceptions.PackflowConfigError`."""


@dataclass(frozen=True)
class FieldProblem:
    """One invalid field of packflow.yaml: its dotted path, the 1-based line of its
    key or item (``None`` when the field is absent), and what is wrong."""

    field: str
    line: Optional[int]
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}, field '{self.field}'" if self.line else f"field '{self.field}'"
        return f"{where}: {self.message}"


class PackflowConfigValidationError(ValidationError, PackflowConfigError):
    """packflow.yaml has invalid fields: pydantic's ``ValidationError`` (as with
    Packflow 0.4, same ``errors()`` and message) and a
    :class:`~packflow.exceptions.PackflowConfigError`. ``path`` is the file,
    ``problems`` the :class:`FieldProblem` of each error, in the order of
    ``errors()``; a note (shown under the traceback and by the CLI) lists them
    with their lines."""

    path: Path
    line: Optional[int]  # of the first problem that has one
    problems: list[FieldProblem]


def _config_error(cls: type, message: str, path: Path, line: Optional[int] = None):
    exc = cls(message)
    exc.path, exc.line = path, line
    return exc


class _NamedText(io.StringIO):
    """Text handed to PyYAML as a stream named like the file, so its marks name the
    file (``in "/x/packflow.yaml", line 3, column 1``)."""

    def __init__(self, text: str, name: str):
        super().__init__(text)
        self.name = name


def _read_text(path: Path) -> str:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise FileNotFoundError(
            f"Not a packflow project (no {constants.PACKAGING_CONFIG_NAME} found in "
            f"{path.parent}). Run 'packflow create <name>' to start one."
        ) from None
    if not stat.S_ISREG(mode):  # a directory, or a FIFO that would block the read
        raise _config_error(PackflowConfigError, f"{path} is not a regular file", path)
    with open(path, "rb") as fh:
        raw = fh.read(MAX_FILE_BYTES + 1)
    if len(raw) > MAX_FILE_BYTES:
        raise _config_error(
            PackflowConfigError,
            f"{path} is larger than {MAX_FILE_BYTES >> 20} MiB: packflow.yaml describes a "
            "project; keep data in files next to it",
            path,
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise _config_error(
            PackflowConfigError, f"{path} line {line}: not UTF-8 text ({exc.reason})", path, line
        ) from None


def _compose(text: str, path: Path) -> tuple[Any, yaml.Node]:
    """``(data, root node)`` from one parse: the node graph is checked before any
    Python value is built from it."""
    loader = None
    try:
        loader = yaml.SafeLoader(_NamedText(text, str(path)))  # reads the first characters
        root = loader.get_single_node()
        if root is not None:
            _check_size(root, path)
        return (loader.construct_document(root) if root is not None else None), root
    except yaml.YAMLError as exc:
        raise _syntax_error(exc, path, text) from None
    except RecursionError:
        raise _config_error(
            PackflowConfigError, f"{path} is nested too deeply to be a packflow.yaml", path
        ) from None
    finally:
        if loader is not None:
            loader.dispose()


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_size(root: yaml.Node, path: Path) -> None:
    """Refuse alias bombs and self-referencing aliases.

    Counts the values the document stands for, every alias as a copy of its
    anchor, visiting each node once (aliases share their anchor's node).
    """
    counts: dict[int, int] = {}
    open_nodes: set[int] = set()  # being visited: their subtree is not counted yet
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            open_nodes.discard(key)
            counts[key] = 1 + sum(counts[id(child)] for child in _children(node))
            if counts[key] > MAX_VALUES:
                line = node.start_mark.line + 1
                raise _config_error(
                    PackflowConfigError,
                    f"{path} line {line}: its YAML aliases (*name) stand for more than "
                    f"{MAX_VALUES:,} values: refusing what looks like an alias bomb",
                    path,
                    line,
                )
            continue
        if key in counts:
            continue
        open_nodes.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in open_nodes:
                line = child.start_mark.line + 1
                raise _config_error(
                    PackflowConfigError,
                    f"{path} line {line}: the value anchored here contains an alias to itself",
                    path,
                    line,
                )
            if id(child) not in counts:
                stack.append((child, False))


def read_raw_config(path: Path) -> Any:
    """``path`` parsed as YAML with the hardened reader (size and alias limits,
    duplicate keys refused), before any field is checked: ``None`` for an empty
    file. A missing file is ``FileNotFoundError``."""
    return _compose(_read_text(path), path)[0]


def _read_yaml_mapping(path: Path) -> tuple[dict, Positions]:
    data, root = _compose(_read_text(path), path)
    if data is None:
        raise _config_error(
            PackflowConfigTypeError,
            f"{path} is empty: it needs at least a 'name' field (e.g. 'name: my-project')",
            path,
        )
    if not isinstance(data, dict) or not isinstance(root, yaml.MappingNode):
        line = root.start_mark.line + 1
        raise _config_error(
            PackflowConfigTypeError,
            f"{path} line {line}: the top level must be a mapping of fields "
            f"('name: ...', 'version: ...'), not a {type(data).__name__}",
            path,
            line,
        )
    return data, _positions(root, path)


def _positions(root: yaml.Node, path: Path) -> Positions:
    """The line of every field; a key given twice in a mapping is an error.

    Nodes are visited once, in document order, so an anchor's contents are
    located under the anchor's path, and a field under an alias at the alias.
    """
    positions: Positions = {}
    visited: set[int] = set()
    stack: list[tuple[yaml.Node, tuple[str, ...]]] = [(root, ())]
    while stack:
        node, prefix = stack.pop()
        if id(node) in visited:
            continue
        visited.add(id(node))
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            children = []
            for key_node, value_node in node.value:
                key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
                line = key_node.start_mark.line + 1
                if key in seen and key != "?":
                    field = ".".join((*prefix, key))
                    raise _config_error(
                        PackflowConfigError,
                        f"{path} line {line}: field '{field}' is given twice "
                        f"(first on line {seen[key]})",
                        path,
                        line,
                    )
                seen[key] = line
                positions.setdefault((*prefix, key), line)
                children.append((value_node, (*prefix, key)))
            stack.extend(reversed(children))
        elif isinstance(node, yaml.SequenceNode):
            children = []
            for index, item in enumerate(node.value):
                positions.setdefault((*prefix, str(index)), item.start_mark.line + 1)
                children.append((item, (*prefix, str(index))))
            stack.extend(reversed(children))
    return positions


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


def _add_note(exc: BaseException, note: str) -> None:
    if hasattr(exc, "add_note"):
        exc.add_note(note)
    else:  # Python 3.10: the same attribute, which 3.11's tracebacks show
        exc.__notes__ = [*getattr(exc, "__notes__", ()), note]


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
