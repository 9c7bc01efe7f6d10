"""The PROJECT argument of the commands that take a project (``run``,
``serve``, ``validate``, ``export``): a project folder or an exported archive,
never the folder's packflow.yaml; and that packflow.yaml read before the
backend loads, so a bad one reads the same in every command."""

from __future__ import annotations

import os
from typing import Any, Optional

import click

from packflow.cli.messages import describe, fail
from packflow.constants import PACKAGING_CONFIG_NAME
from packflow.exceptions import PackflowConfigError


def _config_file_given(path: str) -> Optional[str]:
    """Why ``path`` is not a project when it is a project's packflow.yaml (or
    another YAML file) rather than its folder; ``None`` otherwise."""
    if not os.path.isfile(path):
        return None
    name = os.path.basename(path)
    if name != PACKAGING_CONFIG_NAME and not name.endswith((".yaml", ".yml")):
        return None
    folder = os.path.dirname(path) or "."
    what = f"the project's {name}" if name == PACKAGING_CONFIG_NAME else "a YAML file"
    return f"{path!r} is {what}: pass the project folder ({folder!r}) or an exported archive"


class ProjectPath(click.Path):
    """``click.Path`` that refuses a packflow.yaml given for its project folder
    with a message saying what to pass instead (a usage error, exit 2)."""

    def convert(self, value: Any, param: Optional[click.Parameter], ctx: Optional[click.Context]):
        why = (
            _config_file_given(os.fspath(value)) if isinstance(value, (str, os.PathLike)) else None
        )
        if why is not None:
            self.fail(why, param, ctx)
        return super().convert(value, param, ctx)


def check_project(path: str) -> None:
    """Read a project folder's packflow.yaml before its backend loads (the
    PROJECT argument, a :class:`ProjectPath`, has refused a packflow.yaml given
    for its folder): a missing or invalid one ends the command with ``Error:``
    and the file, line and field of each problem (exit 1), as ``packflow
    validate`` says it. An archive is left to the loader, which checks it
    before it runs anything and says its errors the same way."""
    if not os.path.isdir(path):
        return
    from packflow.loaders.packflow_yaml import PackflowConfig  # yaml, pydantic: only now

    try:
        PackflowConfig.from_project_path(path)
    except (PackflowConfigError, FileNotFoundError) as exc:
        fail(describe(exc))
