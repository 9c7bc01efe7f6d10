"""The callable classes that ``map_batches`` runs in an actor pool: each actor
loads the project once, then sends every batch through a :class:`BatchEngine`.

A result row per input batch: ``file``, ``first_line``, ``lines`` (as read),
``read``, ``written``, ``output`` (the JSON Lines of the outputs, packflow's own
bytes), ``errors`` (the error rows as JSON Lines, each naming its ``file``),
``actor`` (which actor ran it), and on the last row of each call ``busy_ms``
(the call's time in the actor) and ``stats`` (the actor's per-step histograms
so far, ``stats_state()`` as JSON) for the job's summary.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Optional, Union

import pyarrow as pa

from packflow.backend import InferenceBackend
from packflow.backend.configuration import check_config_keys
from packflow.engine import BatchEngine, BatchResult, ErrorRow
from packflow.exceptions import describe_error
from packflow.loaders import InferenceBackendLoader
from packflow.serialize import dumps_lines

__all__ = ["RESULTS_SCHEMA", "LinesActor", "ProjectLoadError", "ProjectSpec", "RecordsActor"]

RESULTS_SCHEMA = pa.schema(
    [
        ("file", pa.string()),
        ("first_line", pa.int64()),
        ("lines", pa.int64()),
        ("read", pa.int64()),
        ("written", pa.int64()),
        ("output", pa.binary()),
        ("errors", pa.binary()),
        ("actor", pa.string()),
        ("busy_ms", pa.float64()),
        ("stats", pa.string()),
    ]
)


class ProjectLoadError(RuntimeError):
    """An actor could not load the project (its ``initialize()`` failed, its
    archive did not verify...). ``error_type`` and ``error`` are the original
    exception's class name and text; the job stops with this error."""

    def __init__(self, error_type: str, error: str):
        super().__init__(f"could not load the project on a Ray actor: {error_type}: {error}")
        self.error_type = error_type
        self.error = error

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.error_type, self.error))


class ProjectSpec:
    """What every actor loads: a project directory (a path every node can read),
    an exported archive (its bytes travel with the spec, so any node can load
    it, still checked against its ``packflow.lock``), or a backend class."""

    def __init__(self, project: Union[str, os.PathLike, type], config: Optional[dict] = None):
        self.config = dict(config or {})
        self.backend_class: Optional[type] = None
        self.directory: Optional[str] = None
        self.archive: Optional[bytes] = None
        self.archive_name = ""
        if isinstance(project, type):
            if not issubclass(project, InferenceBackend):
                raise TypeError(f"{project.__qualname__} is not an InferenceBackend subclass")
            self.backend_class = project
            return
        path = Path(project)
        if path.is_file():
            self.archive = path.read_bytes()
            self.archive_name = path.name
        elif path.is_dir():
            self.directory = str(path.resolve())
        else:
            raise FileNotFoundError(f"no project directory or archive at {str(project)!r}")

    def __repr__(self) -> str:
        if self.backend_class is not None:
            return f"ProjectSpec({self.backend_class.__qualname__})"
        return f"ProjectSpec({self.directory or self.archive_name!r})"

    def load(self) -> InferenceBackend:
        """The backend, constructed (so ``initialize()`` has run). A ``config``
        key the backend's config model does not have is an
        :class:`~packflow.exceptions.UnknownConfigKeysError`, raised before
        ``initialize()``."""
        if self.backend_class is not None:
            check_config_keys(self.backend_class.backend_config_model, self.config)
            return self.backend_class(**self.config)
        if self.directory is not None:
            return InferenceBackendLoader.from_path(
                self.directory, strict_config=True, **self.config
            )
        with tempfile.TemporaryDirectory(prefix="packflow-ray-") as tmp:
            archive = Path(tmp) / self.archive_name
            archive.write_bytes(self.archive or b"")
            return InferenceBackendLoader.from_archive(archive, strict_config=True, **self.config)


class _ProjectActor:
    def __init__(self, spec: ProjectSpec, allow_nan: bool = False):
        try:
            self.backend = spec.load()
        except Exception as exc:
            raise ProjectLoadError(type(exc).__name__, describe_error(exc)) from exc
        self.engine = BatchEngine(self.backend, allow_nan=allow_nan)
        self.actor_id = uuid.uuid4().hex

    def _table(self, columns: dict[str, list[Any]], started_ns: int) -> pa.Table:
        n = len(columns["read"])
        busy: list[Optional[float]] = [None] * n
        stats: list[Optional[str]] = [None] * n
        if n:
            stats[-1] = json.dumps(self.backend.stats_state())
            busy[-1] = (time.perf_counter_ns() - started_ns) / 1e6
        columns = {**columns, "actor": [self.actor_id] * n, "busy_ms": busy, "stats": stats}
        return pa.Table.from_pydict(columns, schema=RESULTS_SCHEMA)


def _errors_jsonl(file: Optional[str], rows: list[ErrorRow]) -> bytes:
    if not rows:
        return b""
    return dumps_lines([{"file": file, **row.to_dict()} for row in rows])


class LinesActor(_ProjectActor):
    """Batches of raw JSON Lines: rows of :func:`packflow.ray.read_json_lines`
    (``data``, ``file``, ``first_line``, ``lines``, ``rejected``), or of
    ``ray.data.read_binary_files(..., include_paths=True)`` (``bytes``, ``path``:
    a whole file per row)."""

    def __call__(self, batch: pa.Table) -> pa.Table:
        started = time.perf_counter_ns()
        names = set(batch.column_names)
        n = batch.num_rows
        data_col = "data" if "data" in names else "bytes"
        data = batch.column(data_col).to_pylist()
        files = _column(batch, "file" if "file" in names else "path", n)
        firsts = _column(batch, "first_line", n)
        lines = _column(batch, "lines", n)
        rejected = _column(batch, "rejected", n)
        out: dict[str, list[Any]] = {
            "file": files,
            "first_line": [],
            "lines": [],
            "read": [],
            "written": [],
            "output": [],
            "errors": [],
        }
        for raw, file, first, count, reason in zip(data, files, firsts, lines, rejected):
            # A whole file per row (read_binary_files) starts at line 1; its row
            # keeps first_line None, so the sink does not expect an end row for it.
            start = 1 if first is None else first
            if reason is not None:
                result = BatchEngine.fail_batch(raw, start, "read", reason)
            else:
                result = self.engine.process(raw, start)
            if count is None:
                count = raw.count(b"\n") + (1 if raw and not raw.endswith(b"\n") else 0)
            _append(out, first, count, result, _errors_jsonl(file, result.errors))
        return self._table(out, started)


class RecordsActor(_ProjectActor):
    """Batches of records (any columns). ``line_column``/``file_column`` name
    columns that identify a record in its error row (and are not passed to the
    backend); without ``line_column`` the line is the record's place in its
    batch."""

    def __init__(
        self,
        spec: ProjectSpec,
        allow_nan: bool = False,
        file_column: Optional[str] = None,
        line_column: Optional[str] = None,
    ):
        super().__init__(spec, allow_nan)
        self.file_column = file_column
        self.line_column = line_column

    def __call__(self, batch: pa.Table) -> pa.Table:
        started = time.perf_counter_ns()
        n = batch.num_rows
        files = _column(batch, self.file_column, n) if self.file_column else [None] * n
        line_ids = _column(batch, self.line_column, n) if self.line_column else None
        keep = [c for c in batch.column_names if c not in (self.file_column, self.line_column)]
        records = batch.select(keep).to_pylist()
        result = self.engine.process_records(records, 1)
        errors = [
            {"file": files[row.line - 1], **row.to_dict()}
            | ({"line": line_ids[row.line - 1]} if line_ids is not None else {})
            for row in result.errors
        ]
        out: dict[str, list[Any]] = {
            "file": [files[0] if n and len(set(files)) == 1 else None],
            "first_line": [],
            "lines": [],
            "read": [],
            "written": [],
            "output": [],
            "errors": [],
        }
        _append(out, None, n, result, dumps_lines(errors) if errors else b"")
        return self._table(out, started)


def _column(batch: pa.Table, name: Optional[str], n: int) -> list[Any]:
    if name is None or name not in batch.column_names:
        return [None] * n
    return batch.column(name).to_pylist()


def _append(
    out: dict[str, list[Any]], first: Optional[int], lines: int, result: BatchResult, errors: bytes
) -> None:
    out["first_line"].append(first)
    out["lines"].append(lines)
    out["read"].append(result.read)
    out["written"].append(result.written)
    out["output"].append(result.output)
    out["errors"].append(errors)
