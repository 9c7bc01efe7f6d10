"""The checks behind ``packflow validate`` and ``export``: required files, packflow.yaml
fields, requirements, recommended documents, and a smoke load of the backend.

Each check yields a :class:`Check`; errors block an export, warnings do not.
Messages begin with Packflow 0.4.1's wording (scripts look for it), then say more.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Literal

from packflow import constants
from packflow._version import __version__
from packflow.exceptions import InferenceBackendLoadError
from packflow.loaders.base import InferenceBackendLoader
from packflow.loaders.local import LocalLoader
from packflow.loaders.packflow_yaml import PackflowConfig, python_version_warning
from packflow.project.templates import rendered_template_text

Level = Literal["ok", "warning", "error"]
#: How a check's level is shown: ``✓ name: demo``, ``⚠ 'description' is empty``.
SYMBOLS: dict[str, str] = {"ok": "✓", "warning": "⚠", "error": "✗"}

REQUIRED_FILES = (constants.PACKAGING_CONFIG_NAME, constants.REQUIREMENTS_TEXT_NAME)
RECOMMENDED_FILES = ("MODEL_CARD.md", "LICENSE.txt", "README.md")

# Text of the Packflow 0.4 templates, so files created by it are recognised as unedited.
_LEGACY_TEMPLATE_MARKERS = {
    "MODEL_CARD.md": ("{introduction}",),
    "README.md": ("# Project Name", "Brief description of the analytic"),
}


@dataclass(frozen=True)
class Check:
    """One line of a validation report."""

    section: str
    subject: str
    level: Level
    message: str

    def describe(self) -> str:
        """One line: the level's symbol, then the message (prefixed by the subject
        for a passed check, whose message alone says little)."""
        text = self.message if self.level != "ok" else f"{self.subject}: {self.message}"
        return f"{SYMBOLS[self.level]} {text}"


def split_levels(checks: list[Check]) -> tuple[list[str], list[str]]:
    """``(errors, warnings)``: the messages of the failed checks."""
    errors = [c.message for c in checks if c.level == "error"]
    warnings = [c.message for c in checks if c.level == "warning"]
    return errors, warnings


def project_checks(project_dir: Path, config: PackflowConfig | None) -> list[Check]:
    """Every check of the project in ``project_dir``.

    Without ``config`` the project's packflow.yaml is read (a failure to read it
    is an error); the smoke load needs it.
    """
    checks: list[Check] = []
    present = {}
    for name in REQUIRED_FILES:
        present[name] = (project_dir / name).is_file()
        if present[name]:
            checks.append(Check("Required files", name, "ok", "present"))
        else:
            checks.append(
                Check("Required files", name, "error", f"Required file '{name}' is missing.")
            )

    if present[constants.PACKAGING_CONFIG_NAME]:
        if config is None:
            try:
                config = PackflowConfig.from_project_path(project_dir)
            except Exception as exc:  # noqa: BLE001 - reported as a failed check
                # The notes name the file, line and field (PackflowConfigValidationError).
                message = "\n".join([str(exc), *getattr(exc, "__notes__", ())])
                checks.append(
                    Check("packflow.yaml", constants.PACKAGING_CONFIG_NAME, "error", message)
                )
        if config is not None:
            checks.extend(config_checks(config, project_dir))

    if present[constants.REQUIREMENTS_TEXT_NAME]:
        checks.extend(requirements_checks(project_dir / constants.REQUIREMENTS_TEXT_NAME))

    project_name = config.name if config is not None else project_dir.name
    checks.extend(recommended_file_checks(project_dir, project_name))
    return checks


# --- packflow.yaml ---------------------------------------------------------------------


def config_checks(config: PackflowConfig, project_dir: Path | None) -> Iterator[Check]:
    """Metadata and runtime fields, then (with ``project_dir``) the backend file and a
    smoke load of the backend."""
    section = "packflow.yaml"
    yield Check(section, "name", "ok", config.name)
    if not config.version.strip():
        yield Check(section, "version", "error", "'version' is required for export but is empty.")
    else:
        yield Check(section, "version", "ok", config.version)
    if not config.description.strip():
        yield Check(
            section,
            "description",
            "warning",
            "'description' is empty. A description is recommended before distributing.",
        )
    else:
        yield Check(section, "description", "ok", _shorten(config.description))
    if not any(m.strip() for m in config.maintainers):
        yield Check(
            section,
            "maintainers",
            "warning",
            "'maintainers' is empty. At least one maintainer is recommended before distributing.",
        )
    else:
        yield Check(section, "maintainers", "ok", ", ".join(config.maintainers))

    yield Check(section, "inference_backend", "ok", config.inference_backend)
    yield Check(section, "loader", "ok", config.loader)
    yield python_version_check(config)

    if project_dir is None:
        return
    backend_file_ok = True
    if config.loader == "local":
        backend_file_ok, check = _backend_file_check(config, project_dir)
        yield check
    if backend_file_ok:
        yield smoke_load_check(project_dir, config)


def _shorten(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def python_version_check(config: PackflowConfig) -> Check:
    """A warning when packflow.yaml's ``python_version`` is another minor version than
    the running interpreter (or is not a version at all)."""
    warning = python_version_warning(config.python_version)
    if warning is not None:
        return Check("packflow.yaml", "python_version", "warning", warning)
    return Check("packflow.yaml", "python_version", "ok", f"{config.python_version} (matches)")


def _backend_file_check(config: PackflowConfig, project_dir: Path) -> tuple[bool, Check]:
    try:
        source = LocalLoader(config.inference_backend, project_dir).source_file()
    except ValueError as exc:
        return False, Check(
            "packflow.yaml", "inference_backend", "error", f"'inference_backend' {exc}"
        )
    relative = source.relative_to(project_dir).as_posix()
    if not source.is_file():
        return False, Check(
            "packflow.yaml",
            relative,
            "error",
            f"Inference backend file '{relative}' is missing. Required for local loader with "
            f"inference_backend {config.inference_backend!r}.",
        )
    return True, Check("packflow.yaml", relative, "ok", "backend file present")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence prints and log records of the code being smoke-loaded, and undo what
    it does to the environment (packflow.yaml's ``env``): a check changes nothing."""
    previous = logging.root.manager.disable
    environment = dict(os.environ)
    logging.disable(logging.CRITICAL)
    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            yield
    finally:
        logging.disable(previous)
        if dict(os.environ) != environment:
            os.environ.clear()
            os.environ.update(environment)


def smoke_load_check(project_dir: Path, config: PackflowConfig) -> Check:
    """Load and instantiate the backend as ``InferenceBackendLoader.from_project`` would."""
    try:
        with _quiet():
            InferenceBackendLoader.from_project(project_dir)
    except (Exception, SystemExit) as exc:
        if isinstance(exc, InferenceBackendLoadError):
            detail = str(exc)
        else:
            detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return Check(
            "Smoke load",
            "inference_backend",
            "error",
            f"'inference_backend' failed the smoke load: {detail}",
        )
    return Check("Smoke load", "inference_backend", "ok", "InferenceBackendLoader.from_project")


# --- requirements.txt ------------------------------------------------------------------


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class _Requirement:
    name: str
    line: str
    specifier: object | None  # packaging's SpecifierSet, or an "==" version without it

    def accepts(self, version: str) -> bool:
        if self.specifier is None:
            return True
        if isinstance(self.specifier, str):
            return version == self.specifier
        return self.specifier.contains(version, prereleases=True)


def _parse_requirements(text: str) -> Iterator[_Requirement]:
    try:
        from packaging.requirements import InvalidRequirement, Requirement
    except ImportError:  # packaging is optional: fall back to names and "==" pins
        Requirement = None  # noqa: N806
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue  # comments and pip options (-r, --index-url, -e)
        if Requirement is not None:
            try:
                req = Requirement(line)
            except InvalidRequirement:
                continue
            if req.marker is not None and not req.marker.evaluate():
                continue
            yield _Requirement(req.name, line, req.specifier if str(req.specifier) else None)
            continue
        match = re.match(
            r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(?:==\s*([^\s,;]+))?", line
        )
        if match:
            yield _Requirement(match.group(1), line, match.group(2))


def requirements_checks(path: Path) -> Iterator[Check]:
    """packflow must be listed; other requirements should be installed at matching versions."""
    section = "requirements.txt"
    listed_packflow = False
    for req in _parse_requirements(path.read_text(encoding="utf-8", errors="replace")):
        if _canonical(req.name) == "packflow":
            listed_packflow = True
            if not req.accepts(__version__):
                yield Check(
                    section,
                    "packflow",
                    "warning",
                    f"'packflow' is required as {req.line!r} but {__version__} is installed.",
                )
            else:
                yield Check(section, "packflow", "ok", req.line)
            continue
        try:
            installed = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            yield Check(
                section,
                req.name,
                "warning",
                f"'{req.name}' from requirements.txt is not installed in this environment.",
            )
            continue
        if not req.accepts(installed):
            yield Check(
                section,
                req.name,
                "warning",
                f"'{req.name}' is required as {req.line!r} but {installed} is installed.",
            )
        else:
            yield Check(section, req.name, "ok", f"{installed} installed")
    if not listed_packflow:
        yield Check(
            section,
            "packflow",
            "error",
            "'packflow' is not listed in requirements.txt. The backend cannot run without it.",
        )


# --- recommended documents -------------------------------------------------------------


def recommended_file_checks(project_dir: Path, project_name: str) -> Iterator[Check]:
    """README, model card and license: present, not empty, edited since ``create``."""
    section = "Recommended files"
    for name in RECOMMENDED_FILES:
        path = project_dir / name
        if not path.is_file():
            yield Check(section, name, "warning", f"Recommended file '{name}' is missing.")
            continue
        content = path.read_text(encoding="utf-8", errors="replace").strip()
        if not content:
            yield Check(section, name, "warning", f"'{name}' is empty.")
        elif _is_unedited_template(name, content, project_name):
            yield Check(
                section, name, "warning", f"'{name}' appears to be unchanged from template."
            )
        else:
            yield Check(section, name, "ok", "present")


def _is_unedited_template(name: str, content: str, project_name: str) -> bool:
    template = rendered_template_text(name, project_name)
    if template is not None and content == template.strip():
        return True
    return any(marker in content for marker in _LEGACY_TEMPLATE_MARKERS.get(name, ()))
