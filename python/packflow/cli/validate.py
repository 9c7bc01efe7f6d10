"""``packflow validate``: run every project check and report errors and warnings."""

from __future__ import annotations

import click

from packflow.cli.messages import echo_checks, error, reports_errors, success, warning


@click.command()
@click.argument("path", default=".", type=click.Path(file_okay=False))
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

    project = PackflowProject(path)
    results = project.run_checks(project.load_config())
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
        raise SystemExit(1)
    if shown_warnings:
        success("Validation passed with warnings.")
    else:
        success("All validation checks passed.")
