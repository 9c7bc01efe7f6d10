"""Reading JSON Lines files into a Ray dataset of line batches that keep their
file and line numbers, so a bad line becomes an error row rather than a failed job.

Each read task streams its files through :class:`packflow.LineReader` (the same
reader as ``packflow run``) and emits one row per batch of complete lines:
``file``, ``first_line``, ``lines`` (line numbers used, blank lines included),
``data`` (the raw bytes) and ``rejected`` (the reader's message for a line over
its length limit, whose first bytes are then ``data``). After a file's last
batch comes an end row (``lines`` 0, empty ``data``) whose ``first_line`` is one
past the file's last line: the sink checks that every file's batches tile it
from line 1 to that end, so a lost or doubled batch cannot go unnoticed.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator
from typing import Any, Optional, Union

import pyarrow as pa
import ray.data
from ray.data.datasource import FileBasedDatasource

from packflow.constants import RUN_BATCH_SIZE
from packflow.engine import DEFAULT_MAX_LINE_BYTES, LineReader

__all__ = ["LINES_SCHEMA", "JsonLinesDatasource", "expand_paths", "read_json_lines"]

LINES_SCHEMA = pa.schema(
    [
        ("file", pa.string()),
        ("first_line", pa.int64()),
        ("lines", pa.int64()),
        ("data", pa.binary()),
        ("rejected", pa.string()),
    ]
)
_GLOB_CHARS = frozenset("*?[")


def expand_paths(paths: Union[str, list[str]]) -> list[str]:
    """``paths`` with local glob patterns expanded (sorted); URIs and plain paths
    are kept as given (Ray lists directories itself). A pattern matching nothing
    is a ``FileNotFoundError``."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    expanded: list[str] = []
    for path in map(str, paths):
        if "://" in path or not _GLOB_CHARS.intersection(path):
            expanded.append(path)
            continue
        matches = sorted(p for p in glob.glob(path, recursive=True) if os.path.isfile(p))
        if not matches:
            raise FileNotFoundError(f"no file matches {path!r}")
        expanded.extend(matches)
    return expanded


class JsonLinesDatasource(FileBasedDatasource):
    """Files of JSON Lines (``.gz`` and the other compressions Ray infers from
    the name are decompressed) as rows of line batches; see the module docstring
    for the columns."""

    def __init__(
        self,
        paths: Union[str, list[str]],
        *,
        batch_size: int = RUN_BATCH_SIZE,
        batches_per_block: int = 8,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        **file_based_args: Any,
    ):
        if batch_size < 1 or batches_per_block < 1:
            raise ValueError("batch_size and batches_per_block must be at least 1")
        super().__init__(expand_paths(paths), **file_based_args)
        self.batch_size = batch_size
        self.batches_per_block = batches_per_block
        self.max_line_bytes = max_line_bytes

    def get_name(self) -> str:
        return "JsonLines"

    def _read_stream(self, f: pa.NativeFile, path: str) -> Iterator[pa.Table]:
        reader = LineReader(f, batch_size=self.batch_size, max_line_bytes=self.max_line_bytes)
        rows: list[tuple[int, int, bytes, Optional[str]]] = []
        for batch in reader:
            lines = reader.next_line - batch.first_line
            if batch.rejected is not None:
                rows.append((batch.first_line, lines, batch.rejected.raw, batch.rejected.error))
            else:
                rows.append((batch.first_line, lines, batch.data, None))
            if len(rows) >= self.batches_per_block:
                yield _lines_table(path, rows)
                rows = []
        rows.append((reader.next_line, 0, b"", None))
        yield _lines_table(path, rows)


def _lines_table(path: str, rows: list[tuple[int, int, bytes, Optional[str]]]) -> pa.Table:
    first_lines, lines, data, rejected = zip(*rows)
    return pa.Table.from_arrays(
        [
            pa.array([path] * len(rows), pa.string()),
            pa.array(first_lines, pa.int64()),
            pa.array(lines, pa.int64()),
            pa.array(data, pa.binary()),
            pa.array(rejected, pa.string()),
        ],
        schema=LINES_SCHEMA,
    )


def read_json_lines(
    paths: Union[str, list[str]],
    *,
    batch_size: int = RUN_BATCH_SIZE,
    batches_per_block: int = 8,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    filesystem: Any = None,
    **read_args: Any,
) -> ray.data.Dataset:
    """A dataset of line batches from JSON Lines files: local paths, globs,
    directories, or any URI Ray reads (``s3://``, ``gs://``...).

    ``batch_size`` lines go to one backend call; ``batches_per_block`` batches
    make one Ray block, the unit an actor takes at a time. ``read_args`` go to
    ``ray.data.read_datasource`` (e.g. ``num_cpus``, ``override_num_blocks``).
    """
    source = JsonLinesDatasource(
        paths,
        batch_size=batch_size,
        batches_per_block=batches_per_block,
        max_line_bytes=max_line_bytes,
        filesystem=filesystem,
    )
    return ray.data.read_datasource(source, **read_args)
