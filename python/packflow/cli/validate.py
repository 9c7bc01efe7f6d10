"""``packflow validate``: run every project check and report errors and warnings."""

from __future__ import annotations

import click

from packflow.cli.messages import (
    describe,
    echo_checks,
    error,
    fail,
    reports_errors,
    success,
    warning,
)
from packflow.cli.project_arg import ProjectPath


@click.command()
@click.argument("path", default=".", type=ProjectPath(file_okay=False))
@click.option("-v", "--verbose", is_flag=True, help="List every check, passed or not.")
@click.option("--no-warnings", is_flag=True, help="Do not print warnings (errors still are).")
@reports_errors
def validate(path: str, verbose: bool, no_warnings: bool) -> None:
    """Run all project validation checks and report results

    PATH defaults to the current directory. Checks required files, packflow.yaml
    fields, requirements, recommended documents, and a load of the backend. Exits
    with status 1 when any check fails.
    """
    from packflow.project import PackflowProject
    from packflow.project.checks import split_levels

    try:
        project = PackflowProject(path)
        results = project.run_checks(project.load_config())
    except Exception as exc:  # noqa: BLE001 - a project that cannot be read fails validation
        error(describe(exc))
        fail("Validation failed: the project could not be read.")
    if verbose:
        click.echo(f"Validating {project.base_dir}")
        echo_checks(results)
    errors, warnings = split_levels(results)
    shown_warnings = [] if no_warnings else warnings

    if errors or shown_warnings:
        counts = [click.style(f"{len(errors)} error(s)", fg="red")] if errors else []
        if shown_warnings:
            counts.append(click.style(f"{len(shown_warnings)} warning(s)", fg="yellow"))
        click.echo("\n" + ", ".join(counts) + " found\n")
    for message in errors:
        error(message)
    for message in shown_warnings:
        warning(message)
    if errors:
        # The last line says how it ended, even when warnings came after the errors.
        fail(f"Validation failed with {len(errors)} error(s).")
    if shown_warnings:
        success("Validation passed with warnings.")
    else:
        success("All validation checks passed.")
