"""``packflow run --engine ray``: the same project over a Ray Data job (see
:mod:`packflow.ray`), started from the ``run`` command's options."""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from packflow.cli.config_pairs import load_error
from packflow.cli.run_io import finish_run
from packflow.extras import install_hint

#: ``run`` options that only the local engine has (a live pipe, per-batch
#: timeouts, resuming one file); given to the Ray engine they are an error.
LOCAL_ONLY = ("max_wait_ms", "batch_timeout_s", "skip_lines", "stats_every_s", "workers")


def run_on_ray(project: str, config: dict[str, Any], ctx: click.Context) -> None:
    """Run the job, print the summary on stderr, write --stats, and exit with
    the ``run`` command's codes (1: the project could not be loaded on the
    actors, or --fail-on-error and some row failed)."""
    params = ctx.params
    for name in LOCAL_ONLY:
        if ctx.get_parameter_source(name) != click.core.ParameterSource.DEFAULT:
            option = "--" + name.replace("_", "-")
            raise click.UsageError(f"{option} is not supported with --engine ray")
    for name, option in (("input_path", "-i"), ("output_path", "-o")):
        if params[name] == "-":
            raise click.UsageError(f"--engine ray reads and writes files: give {option}")
    try:
        import ray.data

        from packflow.ray import ProjectLoadError, run_files
    except ImportError as exc:
        raise click.ClickException(
            f"the ray engine needs Ray ({exc}); install it with: {install_hint('ray')}"
        ) from exc

    if not ray.is_initialized():
        ray.init(address=params["address"], include_dashboard=False, logging_level=logging.WARNING)
    ray.data.DataContext.get_current().enable_progress_bars = sys.stderr.isatty()
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # the summary says what matters
    try:
        summary = run_files(
            project,
            params["input_path"],
            params["output_path"],
            params["errors_path"],
            config=config,
            actors=params["actors"],
            num_cpus=params["cpus_per_actor"],
            batch_size=params["batch_size"],
            max_line_bytes=params["max_line_bytes"],
        )
    except ProjectLoadError as exc:
        load_error(exc.error, exc.error_type)
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(summary.format(), err=True)
    finish_run(
        summary,
        0,
        errors_path=params["errors_path"],
        stats_path=params["stats_path"],
        fail_on_error=params["fail_on_error"],
        errors_arg="DIR",
    )
