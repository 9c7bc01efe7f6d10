"""``packflow inspect``: show an archive's manifest and check the files against it."""

from __future__ import annotations

import json

import click

from packflow.cli.messages import error, fail, reports_errors, success, warning


@click.command()
@click.argument("archive", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON only.")
@reports_errors
def inspect(archive: str, as_json: bool) -> None:
    """Print the packflow.lock manifest of ARCHIVE and verify it.

    Every entry must be a safe relative path, and every file must match its size
    and SHA-256 in the manifest. Exits with status 1 when anything does not.
    """
    from packflow.loaders.archive import inspect_archive

    report = inspect_archive(archive)
    if as_json:
        click.echo(json.dumps(report.manifest, indent=2, sort_keys=True))
    else:
        click.echo(f"Archive: {report.path.resolve()}")
        manifest = report.manifest
        if manifest is not None:
            click.echo(
                f"Project: {manifest.get('name')} {manifest.get('version')} "
                f"(exported with packflow {manifest.get('packflow_version')})"
            )
        click.echo(f"Files ({len(report.files)}):")
        for entry in report.files:
            click.echo(f"  {entry.sha256}  {entry.size:>10}  {entry.path}")
    for message in report.warnings:
        warning(message)
    if report.problems:
        for message in report.problems:
            error(message)
        fail(f"{archive} failed verification ({len(report.problems)} problem(s)).")
    if report.manifest is not None:
        success(f"All {len(report.files)} files match the manifest.")
