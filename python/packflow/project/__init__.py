"""``PackflowProject``: create a project from a template, validate it, export it as a zip."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from typing import Any, Union

from packflow import constants
from packflow.loaders.archive import write_archive
from packflow.loaders.config import validate_for_export
from packflow.loaders.local import LocalLoader
from packflow.loaders.packflow_yaml import PackflowConfig, apply_env_vars, normalize_archive_name
from packflow.logger import get_logger
from packflow.project import checks
from packflow.project.export import EXCLUDED_DIRS, EXCLUDED_PATTERNS, collect_export_files
from packflow.project.templates import DEFAULT_TEMPLATE, render, template_files

#: Packflow 0.4's names for what export leaves out (read-only views: the rules
#: themselves live in :mod:`packflow.project.export`).
EXPORT_EXCLUDE_DIRS = EXCLUDED_DIRS
EXPORT_EXCLUDE_PATTERNS = frozenset(EXCLUDED_PATTERNS)

FILE_PERMISSIONS = 0o644
DIR_PERMISSIONS = 0o755
# Written whatever ``optional_files`` says: without them there is no project.
MANDATORY_TEMPLATE_FILES = frozenset(
    {"inference.py", constants.PACKAGING_CONFIG_NAME, constants.REQUIREMENTS_TEXT_NAME}
)

_logger = get_logger("project")


class PackflowProject:
    """A project directory: ``packflow.yaml``, the backend module and its documents."""

    REQUIRED_FILES = list(checks.REQUIRED_FILES)
    RECOMMENDED_FILES = list(checks.RECOMMENDED_FILES)

    def __init__(self, base_dir: Union[str, Path]):
        self.base_dir = Path(base_dir).resolve()
        #: Warnings of the last :meth:`export` (validation and skipped files).
        self.export_warnings: list[str] = []
        #: The manifest written into the last exported archive.
        self.export_manifest: dict | None = None
        #: Every validation check of the last :meth:`export`, passed or not.
        self.export_checks: list[checks.Check] = []

    def __repr__(self) -> str:
        return f"{type(self).__name__} @ {self.base_dir}"

    @property
    def has_packflow_config(self) -> bool:
        return (self.base_dir / constants.PACKAGING_CONFIG_NAME).exists()

    # --- create ------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        project_name: str,
        force: bool = False,
        template: str = DEFAULT_TEMPLATE,
        config_data: dict[str, Any] | None = None,
        optional_files: list[str] | None = None,
    ) -> PackflowProject:
        """Make the directory ``./<name>`` (relative to the working directory) from a template.

        ``config_data`` fills packflow.yaml fields beside the name. ``optional_files``
        limits which non-mandatory template files are written (``None``: all of
        them). An existing directory needs ``force=True`` (its other files are
        kept, template files overwritten). If writing fails, a directory this call
        created is removed again.
        """
        config = PackflowConfig(**{"name": project_name, **(config_data or {})})
        sources = template_files(template)
        if optional_files is not None:
            unknown = sorted(set(optional_files) - set(sources))
            if unknown:
                raise ValueError(
                    f"Unknown optional file(s) {', '.join(unknown)} for template {template!r}; "
                    f"it has: {', '.join(sorted(set(sources) - MANDATORY_TEMPLATE_FILES))}"
                )
            wanted = MANDATORY_TEMPLATE_FILES | set(optional_files)
            sources = {name: src for name, src in sources.items() if name in wanted}

        target = Path(config.name).resolve()
        if target.exists() and not target.is_dir():
            raise FileExistsError(f"{target} exists and is not a directory")
        created = not target.exists()
        if not created and not force:
            # Packflow 0.4.1's error: the OSError of making the directory.
            exists = FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(target))
            note = "Use force (packflow create --force) to write the project into it."
            exists.__notes__ = [note]  # add_note() is 3.11+; tracebacks and the CLI show it
            raise exists
        target.mkdir(parents=True, exist_ok=True)
        try:
            for name, source in sources.items():
                destination = target / name
                destination.write_bytes(render(name, source.read_bytes(), config.name))
                os.chmod(destination, FILE_PERMISSIONS)
            os.chmod(target, DIR_PERMISSIONS)
            config.write_yaml(target)
            config.write_requirements(target)
        except BaseException:
            if created:
                shutil.rmtree(target, ignore_errors=True)
            raise
        return cls(target)

    # --- read and validate -------------------------------------------------------------

    def load_config(self) -> PackflowConfig:
        """packflow.yaml, with its ``env`` applied to ``os.environ``."""
        config = PackflowConfig.from_project_path(self.base_dir)
        apply_env_vars(config)
        return config

    def run_checks(self, config: PackflowConfig | None = None) -> list[checks.Check]:
        """Every validation check as a list of :class:`~packflow.project.checks.Check`."""
        return checks.project_checks(self.base_dir, config)

    def validate_required_files(
        self, verbose: bool = False, config: PackflowConfig | None = None
    ) -> tuple[list[str], list[str]]:
        """``(errors, warnings)`` of the project.

        Required: packflow.yaml (valid fields, the backend file of the local
        loader, a backend that loads and instantiates) and requirements.txt naming
        packflow. Warnings: metadata left empty, another Python minor version,
        requirements not installed or at other versions, and a README.md,
        MODEL_CARD.md or LICENSE.txt that is missing, empty or still the template.
        Without ``config``, packflow.yaml is read from the project.
        ``verbose`` logs every check at INFO level on the ``packflow.project``
        logger (``packflow validate -v`` prints them).
        """
        results = self.run_checks(config)
        if verbose:
            _log_checks(results)
        return checks.split_levels(results)

    # --- export ------------------------------------------------------------------------

    def export_files(self, output_file: Path | None = None) -> list[str]:
        """The archive paths :meth:`export` would write (the manifest aside)."""
        config = PackflowConfig.from_project_path(self.base_dir)
        stem = normalize_archive_name(config.name)
        return collect_export_files(self.base_dir, stem, output_file).paths

    def export(self, output_directory: Union[str, Path] = ".", verbose: bool = False) -> Path:
        """Validate, then write ``<output_directory>/<name>-<version>.zip``; return its path.

        Validation errors block the export (``ValueError`` listing them); warnings
        end up in :attr:`export_warnings`. The archive is reproducible: same files,
        same bytes. It includes ``packflow.lock``, the SHA-256 of every file.
        The checks end up in :attr:`export_checks`; ``verbose`` also logs them and
        the archived files at INFO level on the ``packflow.project`` logger.
        """
        self.export_checks = []
        # Not load_config(): exporting must not leave packflow.yaml's env in os.environ.
        config = PackflowConfig.from_project_path(self.base_dir)
        self.export_checks = self.run_checks(config)
        if verbose:
            _logger.info("Exporting %s", self.base_dir)
            _log_checks(self.export_checks)
        errors, warnings = checks.split_levels(self.export_checks)
        if errors:
            raise ValueError(
                "Export blocked due to validation errors:\n" + "\n".join(f"  - {e}" for e in errors)
            )
        out_dir = Path(output_directory).resolve()
        archive = config.archive_file_name(out_dir)
        selection = collect_export_files(
            self.base_dir, normalize_archive_name(config.name), archive
        )
        missing = [
            name for name in self._files_the_archive_needs(config) if name not in selection.paths
        ]
        if missing:
            raise ValueError(
                "Export blocked: "
                + ", ".join(repr(m) for m in missing)
                + " would be left out of the archive (check .gitignore), and the project "
                "cannot load without it"
            )
        out_dir.mkdir(parents=True, exist_ok=True)
        self.export_manifest = write_archive(archive, selection.files, config.name, config.version)
        self.export_warnings = warnings + selection.warnings
        if verbose:
            _logger.info(
                "Archive contents (%d files + %s): %s",
                len(selection.files),
                constants.ARCHIVE_MANIFEST_NAME,
                ", ".join(selection.paths),
            )
        return archive

    def _files_the_archive_needs(self, config: PackflowConfig) -> list[str]:
        needed = [constants.PACKAGING_CONFIG_NAME, constants.REQUIREMENTS_TEXT_NAME]
        if config.loader == "local":
            source = LocalLoader(config.inference_backend, self.base_dir).source_file()
            needed.append(source.relative_to(self.base_dir).as_posix())
        return needed


def _log_checks(results: list[checks.Check]) -> None:
    for check in results:
        _logger.info("%s: %s", check.section, check.describe())


__all__ = [
    "EXPORT_EXCLUDE_DIRS",
    "EXPORT_EXCLUDE_PATTERNS",
    "PackflowConfig",
    "PackflowProject",
    "apply_env_vars",
    "validate_for_export",
]
