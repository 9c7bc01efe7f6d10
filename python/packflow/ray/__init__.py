"""Packflow on Ray Data: the same project, unchanged, over a Ray dataset.

Ray Data is the engine (streaming execution, actor pools, retries, nodes);
packflow brings a reader that keeps each line's file and number, an actor that
loads the project once and sends every batch through :class:`packflow.BatchEngine`
(Rust parse, the backend, Rust JSON), and a sink that writes packflow's own bytes
and checks that every line was written exactly once.

Needs this package's ``ray`` extra (docs/scaling.md says how to install it);
``import packflow`` does not import Ray.
"""

from __future__ import annotations

from packflow.ray.actor import LinesActor, ProjectLoadError, ProjectSpec, RecordsActor
from packflow.ray.job import (
    cpus_per_actor,
    error_rows,
    output_rows,
    process,
    project_load_error,
    run_files,
)
from packflow.ray.sink import JobCounts, JsonLinesDatasink
from packflow.ray.source import JsonLinesDatasource, read_json_lines

__all__ = [
    "JobCounts",
    "JsonLinesDatasink",
    "JsonLinesDatasource",
    "LinesActor",
    "ProjectLoadError",
    "ProjectSpec",
    "RecordsActor",
    "cpus_per_actor",
    "error_rows",
    "output_rows",
    "process",
    "project_load_error",
    "read_json_lines",
    "run_files",
]
