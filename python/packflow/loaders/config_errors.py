"""packflow.yaml's errors: each is what Packflow 0.4 raised (PyYAML's errors,
pydantic's ``ValidationError``, ``TypeError``) and a
:class:`~packflow.exceptions.PackflowConfigError` naming the file, line and field."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import yaml
from pydantic import ValidationError

from packflow.exceptions import PackflowConfigError


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


def _add_note(exc: BaseException, note: str) -> None:
    if hasattr(exc, "add_note"):
        exc.add_note(note)
    else:  # Python 3.10: the same attribute, which 3.11's tracebacks show
        exc.__notes__ = [*getattr(exc, "__notes__", ()), note]
