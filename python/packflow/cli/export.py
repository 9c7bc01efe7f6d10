"""``packflow export``: validate the project and write its reproducible zip archive."""

from __future__ import annotations

import click

from packflow.cli.messages import echo_checks, reports_errors, success, warning
from packflow.cli.project_arg import ProjectPath


@click.command()
@click.argument("path", default=".", type=ProjectPath(file_okay=False))
@click.option("-v", "--verbose", is_flag=True, help="List every check and every archived file.")
@click.option(
    "-o",
    "--output-dir",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Directory to write the archive to (created if missing).",
)
@reports_errors
def export(path: str, verbose: bool, output_dir: str) -> None:
    """Package the project as a distributable .zip archive.

    Writes the project in PATH (default: the current directory) to
    OUTPUT_DIR/<name>-<version>.zip. Validation errors stop the export. VCS, cache
    and virtualenv folders, *.pyc and .gitignore'd files are left out; the archive
    lists every file with its SHA-256 in packflow.lock, and the same files always
    give the same bytes.
    """
    from packflow.loaders.archive import sha256_file
    from packflow.project import PackflowProject

    project = PackflowProject(path)
    if verbose:
        click.echo(f"Exporting {project.base_dir}")
    try:
        archive = project.export(output_directory=output_dir)
    finally:
        if verbose:
            echo_checks(project.export_checks)
    if verbose:
        files = [entry["path"] for entry in (project.export_manifest or {}).get("files", [])]
        click.echo(f"\nArchive contents ({len(files)} files + packflow.lock):")
        for name in files:
            click.echo(f"  {name}")
    for message in project.export_warnings:
        warning(message)
    count = len((project.export_manifest or {}).get("files", []))
    success(f"Saved Package to {archive} ({count} files, sha256 {sha256_file(archive)})")
