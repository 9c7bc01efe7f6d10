"""``packflow create``: a new project directory from the packaged template."""

from __future__ import annotations

import re
import subprocess
import sys

import click

from packflow.cli.messages import fail, reports_errors, success

# Kept in step with packflow.loaders.packflow_yaml.NAME_PATTERN (importing it here would load
# yaml and pydantic just to print --help).
NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]*$"
# Packflow 0.4.1's words (scripts match them).
NAME_RULE = (
    "Names must start with a letter and contain only letters, digits, hyphens, and underscores."
)


def stdin_is_interactive() -> bool:
    """Whether someone can answer prompts: stdin is a terminal."""
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (AttributeError, ValueError):  # closed or replaced by an object without isatty
        return False


def _git_email() -> str:
    try:
        done = subprocess.run(
            ["git", "config", "user.email"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def _check_name(value: str) -> str:
    value = value.strip()
    if not re.match(NAME_PATTERN, value):
        raise click.BadParameter(f"Invalid project name {value!r}. {NAME_RULE}")
    return value


def _ask(project_name: str | None) -> tuple[str, dict]:
    if project_name is None:
        project_name = click.prompt("Project name", value_proc=_check_name)
    click.echo(f"Creating packflow project {click.style(project_name, bold=True)}")
    description = click.prompt("Description", default="", show_default=False)
    version = click.prompt("Version", default="0.1.0")
    maintainer = click.prompt("Maintainer e-mail", default=_git_email(), show_default=True)
    config: dict = {"version": version.strip() or "0.1.0"}
    if description.strip():
        config["description"] = description.strip()
    if maintainer.strip():
        config["maintainers"] = [maintainer.strip()]
    return project_name, config


@click.command()
@click.argument("name", required=False)
@click.option(
    "-f",
    "--force",
    is_flag=True,
    help="Write into NAME even if the directory exists (template files are overwritten, "
    "nothing is deleted).",
)
@click.option(
    "--no-input",
    is_flag=True,
    help="Never prompt: take the defaults (for scripts and CI). Implied when stdin is "
    "not a terminal.",
)
@reports_errors
def create(name: str | None, force: bool, no_input: bool) -> None:
    """Initialize a new project from a template in the current working directory: NAME/.

    On a terminal, asks for the name (when NAME is not given), description, version
    and maintainer; otherwise uses defaults and requires NAME.
    """
    from packflow.project import PackflowProject

    if name is not None and not re.match(NAME_PATTERN, name):
        fail(f"Invalid project name {name!r}. {NAME_RULE}")
    if not no_input and stdin_is_interactive():
        name, config_data = _ask(name)
    else:
        if name is None:
            fail(
                "Project name is required in non-interactive mode. "
                "Usage: packflow create PROJECT_NAME [--no-input]"
            )
        config_data = {"version": "0.1.0"}

    project = PackflowProject.create(name, force=force, config_data=config_data)
    success(f"Created {name}/ ({project.base_dir})")
    click.echo("\nNext:")
    click.echo(f"  cd {name}")
    click.echo("  edit inference.py      write execute() (and the other steps if needed)")
    click.echo("  packflow validate      check files, fields and that the backend loads")
    click.echo("  packflow export        package the project as a zip")
