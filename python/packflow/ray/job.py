"""A project over a Ray dataset: ``map_batches`` with a fixed pool of actors,
each holding one backend; and ``run_files``, the whole job behind
``packflow run --engine ray``.
"""

from __future__ import annotations

import math
import os
import re
import time
from typing import Any, Optional, Union

import ray
import ray.data

from packflow.constants import RUN_BATCH_SIZE
from packflow.engine import DEFAULT_MAX_LINE_BYTES
from packflow.jsonl import parse_lines
from packflow.logger import get_logger
from packflow.ray.actor import LinesActor, ProjectLoadError, ProjectSpec, RecordsActor
from packflow.ray.sink import JsonLinesDatasink
from packflow.ray.source import read_json_lines
from packflow.runner import RunSummary

__all__ = [
    "cpus_per_actor",
    "error_rows",
    "output_rows",
    "process",
    "project_load_error",
    "run_files",
]

Project = Union[str, "os.PathLike[str]", type]
logger = get_logger("ray")


def cpus_per_actor(actors: int) -> float:
    """CPUs to reserve per actor so that ``actors`` actors leave one CPU of the
    cluster for the read and write tasks (on a 2-CPU machine, 2 actors get 0.5
    each; on a large cluster, 1). Ray reserves; it does not cap: a busy actor
    still uses a whole core."""
    total = float(ray.cluster_resources().get("CPU", 1.0))
    share = math.floor((total - 1.0) / actors * 100) / 100  # down: never over the CPU left
    return max(0.1, min(1.0, share))


def process(
    dataset: ray.data.Dataset,
    project: Project,
    *,
    config: Optional[dict[str, Any]] = None,
    records: bool = False,
    batch_size: Optional[int] = None,
    actors: int = 2,
    num_cpus: Optional[float] = None,
    num_gpus: Optional[float] = None,
    allow_nan: bool = False,
    file_column: Optional[str] = None,
    line_column: Optional[str] = None,
) -> ray.data.Dataset:
    """Run ``project`` over ``dataset`` in a pool of ``actors`` actors; each
    loads the project once (``initialize()`` runs once per actor) and sends
    every batch through :class:`packflow.BatchEngine`, as ``packflow run`` does.

    ``project`` is a project directory (readable on every node), an exported
    archive (shipped to the actors and checked against its ``packflow.lock``) or
    an :class:`~packflow.InferenceBackend` subclass; ``config`` overrides its
    backend config (a key its config model does not have stops the job with
    :class:`ProjectLoadError`, before ``initialize()``). ``dataset`` holds raw
    JSON Lines (:func:`read_json_lines`, or
    ``ray.data.read_binary_files(..., include_paths=True)``), or records when
    ``records`` is true.

    ``batch_size``: dataset rows per call. For records, the records per backend
    call (default 1,000); for raw lines, batches of lines per call (default: a
    whole block; one batch when ``num_gpus`` is set, as Ray then needs a size).

    Returns a lazy dataset of results, one row per input batch (see
    :mod:`packflow.ray.actor`): write it with :class:`JsonLinesDatasink`, or
    take :func:`output_rows` and :func:`error_rows` from it (materialize it
    first to run the job once for both).
    """
    if actors < 1:
        raise ValueError("actors must be at least 1")
    if not ray.is_initialized():
        ray.init()
    spec = ProjectSpec(project, config)
    if records:
        actor_cls: type = RecordsActor
        args: tuple[Any, ...] = (spec, allow_nan, file_column, line_column)
    else:
        actor_cls, args = LinesActor, (spec, allow_nan)
    if num_cpus is None:
        num_cpus = cpus_per_actor(actors)
    total = float(ray.cluster_resources().get("CPU", 0.0))
    if actors * num_cpus > total - 1:
        # Read and write tasks need a CPU each; with none left the job waits forever.
        logger.warning(
            "%d actors x %g CPUs leave less than one of the cluster's %g CPUs for reading "
            "and writing: the job may wait until the cluster grows",
            actors,
            num_cpus,
            total,
        )
    if batch_size is None:
        batch_size = RUN_BATCH_SIZE if records else (1 if num_gpus else None)
    return dataset.map_batches(
        actor_cls,
        batch_format="pyarrow",
        batch_size=batch_size,
        compute=ray.data.ActorPoolStrategy(size=actors),
        fn_constructor_args=args,
        num_cpus=num_cpus,
        num_gpus=num_gpus,
    )


_LOAD_ERROR = re.compile(
    r"ProjectLoadError: could not load the project on a Ray actor: ([\w.]+): (.*)$", re.M
)


def project_load_error(exc: BaseException) -> Optional[ProjectLoadError]:
    """The :class:`ProjectLoadError` behind a Ray error, if an actor died of one.

    Ray reports an actor whose constructor raised as ``ActorDiedError`` carrying
    only the traceback's text, so the error is found there."""
    match = _LOAD_ERROR.search(str(exc))
    return ProjectLoadError(match.group(1), match.group(2)) if match else None


def output_rows(results: ray.data.Dataset) -> ray.data.Dataset:
    """The output rows of :func:`process` results, one dict per row."""
    return results.flat_map(_outputs_of)


def error_rows(results: ray.data.Dataset) -> ray.data.Dataset:
    """The error rows of :func:`process` results: ``file``, ``line``, ``raw``,
    ``step``, ``error``, ``error_type``."""
    return results.flat_map(_errors_of)


def _outputs_of(row: dict[str, Any]) -> list[dict[str, Any]]:
    return parse_lines(row["output"]).records


def _errors_of(row: dict[str, Any]) -> list[dict[str, Any]]:
    return parse_lines(row["errors"]).records


def run_files(
    project: Project,
    inputs: Union[str, list[str]],
    output_dir: str,
    errors_dir: Optional[str] = None,
    *,
    config: Optional[dict[str, Any]] = None,
    actors: int = 2,
    num_cpus: Optional[float] = None,
    batch_size: int = RUN_BATCH_SIZE,
    batches_per_block: int = 8,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    allow_nan: bool = False,
) -> RunSummary:
    """Read JSON Lines files (paths, globs, directories or URIs), run them
    through ``project`` on the connected Ray cluster (a local one is started
    when none is), write the outputs under ``output_dir`` and the error rows
    under ``errors_dir``. Returns the job's :class:`~packflow.RunSummary`
    after checking that every line of every file was written exactly once as
    an output or an error row."""
    if not ray.is_initialized():
        ray.init()
    started = time.perf_counter()
    lines = read_json_lines(
        inputs,
        batch_size=batch_size,
        batches_per_block=batches_per_block,
        max_line_bytes=max_line_bytes,
    )
    results = process(
        lines, project, config=config, actors=actors, num_cpus=num_cpus, allow_nan=allow_nan
    )
    sink = JsonLinesDatasink(output_dir, errors_dir)
    try:
        results.write_datasink(sink)
    except Exception as exc:
        load_error = project_load_error(exc)
        if load_error is None:
            raise
        raise load_error from exc
    counts = sink.counts
    assert counts is not None  # set by on_write_complete, which checked it
    wall = time.perf_counter() - started
    return RunSummary(
        read=counts.read,
        written=counts.written,
        errors=counts.errors,
        batches=counts.batches,
        wall_seconds=wall,
        rows_per_second=counts.read / wall if wall > 0 else 0.0,
        steps=counts.steps(),
    )
