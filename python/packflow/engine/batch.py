"""``BatchEngine``: raw JSON Lines bytes in, output JSON Lines bytes and error
rows out, through one backend on its fastest path.

Per batch, one Rust call (``Pipeline.run_lines``, src/engine.rs): read the
lines (straight into the feature array when the backend's preprocessor is the
stock numpy one, else into dicts), run the backend's steps (preprocess ->
transform_inputs -> execute -> transform_outputs; the hooks are the only
Python), check the outputs and write them as JSON Lines. When the steps or the
check fail, the batch is halved and each half run again, down to single rows,
so that only the rows that fail become error rows and the rest are written: one
bad row in 1,000 costs about 20 backend calls, not 1,000. A row whose cells the
text reader cannot read as numbers (a string, a missing feature) is tried alone
before its batch, so that a batch it would take down is never run. That retry
is the only loop here.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, NamedTuple, Optional, Protocol

import numpy as np

from packflow import _core
from packflow.exceptions import InferenceBackendRuntimeError, InferenceBackendValidationError

__all__ = ["BatchEngine", "BatchResult", "EngineBackend", "ErrorRow"]


class EngineBackend(Protocol):
    """What the engine needs of a backend; every constructed
    :class:`~packflow.InferenceBackend` has it. ``_pipeline`` runs its steps
    (and holds their statistics); calling the backend runs them on records."""

    _pipeline: _core.Pipeline

    def __call__(self, inputs: list[dict]) -> Any: ...

    def get_stats(self) -> dict[str, dict[str, float]]: ...


class Attempt(Protocol):
    """One run of some rows: their output lines, or why there are none (a
    :class:`packflow._core.BatchOutcome`, or :class:`_RecordsAttempt`)."""

    @property
    def output(self) -> bytes: ...

    @property
    def failure(self) -> Optional[BaseException]: ...

    @property
    def failed_step(self) -> Optional[str]: ...

    @property
    def suspect(self) -> Optional[int]:
        """The row (from 0, within the rows run) most likely at fault, when
        something points at one, else None."""


class _RecordsAttempt(NamedTuple):
    output: bytes
    failure: Optional[BaseException] = None
    failed_step: Optional[str] = None
    suspect: Optional[int] = None


class ErrorRow(NamedTuple):
    """One input line that produced no output.

    ``step`` is where it failed: ``read`` (the line was longer than the reader's
    limit), ``parse`` (not UTF-8, not JSON, not an object), a backend step
    (``preprocess``, ``transform_inputs``, ``execute``, ``transform_outputs``),
    ``run`` (the backend call failed outside a step, e.g. its output was not a
    list), ``validate`` (wrong output count, a row not a dict, an unserializable
    value) or ``serialize`` (a value JSON cannot hold, such as NaN).

    ``error_type`` is the class name of the exception that failed the row: for
    a backend step, the exception the backend raised (not the
    ``InferenceBackendRuntimeError`` packflow wraps it in); for ``validate``
    ``InferenceBackendValidationError``; for ``run`` the exception packflow
    raised (``InferenceBackendRuntimeError`` for an output that is not a
    list); for ``serialize`` the writer's ``ValueError`` or ``TypeError``. It
    is ``None`` for the rows packflow refuses itself, without an exception:
    ``read``, ``parse`` and a batch that timed out or whose worker died (steps
    ``timeout``, ``worker``).
    """

    line: int
    raw: bytes
    step: str
    error: str
    error_type: Optional[str] = None

    def to_dict(self) -> dict[str, Any]:
        """The row as written to an errors file: ``raw`` decoded as UTF-8 (bytes
        that are not UTF-8 as backslash escapes)."""
        return {
            "line": self.line,
            "raw": self.raw.decode("utf-8", errors="backslashreplace"),
            "step": self.step,
            "error": self.error,
            "error_type": self.error_type,
        }


@dataclass(frozen=True)
class BatchResult:
    """What one batch gave.

    ``output`` holds one JSON line per good input line, in input order, and
    ``line_numbers`` the input line number of each of those output lines.
    ``read`` counts the batch's non-blank lines; ``read == written +
    len(errors)`` always holds.
    """

    output: bytes
    errors: list[ErrorRow]
    read: int
    written: int
    line_numbers: list[int] = field(default_factory=list)

    def errors_jsonl(self) -> bytes:
        """The error rows as JSON Lines (``{"line", "raw", "step", "error",
        "error_type"}``)."""
        return errors_to_jsonl(self.errors)


def errors_to_jsonl(rows: list[ErrorRow]) -> bytes:
    """Error rows as JSON Lines, in the errors-file format."""
    if not rows:
        return b""
    return _core.dumps_lines([row.to_dict() for row in rows])


def _step_of(exc: BaseException, default: str) -> str:
    step = getattr(exc, "step", None)
    return step if isinstance(step, str) else default


def _error_type(exc: BaseException) -> str:
    """The class name an error row reports: a step's failure is the backend's
    own exception, which packflow raised again as its cause."""
    if isinstance(exc, InferenceBackendRuntimeError) and exc.__cause__ is not None:
        return type(exc.__cause__).__name__
    return type(exc).__name__


def _failed_row(line: int, raw: bytes, attempt: Attempt) -> ErrorRow:
    exc = attempt.failure
    if exc is None:
        raise ValueError("a row that did not fail has no error row")
    return ErrorRow(line, raw, attempt.failed_step or "run", _message(exc), _error_type(exc))


def _as_data(exc: BaseException, outer: Optional[BaseException]) -> BaseException:
    """An attempt's exception kept as data, as ``run_lines`` keeps its own
    (src/engine.rs ``as_data``): without the tracebacks of it, its cause and
    its context, which would hold this call's frames and, through them, the
    attempt itself, a cycle only the collector frees. ``outer``, the exception
    the caller was handling when it called the engine, is the caller's: the
    walk stops there."""
    todo, seen = [exc], 0
    while todo and seen < 16:
        e = todo.pop()
        seen += 1
        if e is outer:
            continue
        e.__traceback__ = None
        todo.extend(x for x in (e.__cause__, e.__context__) if x is not None)
    return exc


def _message(exc: BaseException) -> str:
    """The exception's text, with its cause's when the text does not hold it."""
    text = str(exc)
    cause = exc.__cause__
    if cause is not None and str(cause) and str(cause) not in text:
        text = f"{text} ({type(cause).__name__}: {cause})"
    return text


def _cuts(start: int, stop: int, suspect: Optional[int]) -> list[tuple[int, int]]:
    """How a failed segment ``start:stop`` is split: around its suspect row
    (``suspect`` counts from ``start``), else in halves."""
    if suspect is not None and 0 <= suspect < stop - start:
        at = start + suspect
        return [(lo, hi) for lo, hi in ((start, at), (at, at + 1), (at + 1, stop)) if lo < hi]
    middle = (start + stop) // 2
    return [(start, middle), (middle, stop)]


class _LineEnds:
    """Where the lines of a buffer start and stop, found (by numpy, not a
    Python loop over the lines) only when first asked: the rare failed batch
    needs them, and the search for its bad rows from kept cells only for the
    raw text of those rows."""

    def __init__(self, data: bytes):
        self._data = data
        self._ends: Optional[np.ndarray] = None

    def _all(self) -> np.ndarray:
        if self._ends is None:
            self._ends = np.flatnonzero(np.frombuffer(self._data, dtype=np.uint8) == 0x0A) + 1
        return self._ends

    def start(self, index: int) -> int:
        """Where line ``index`` (from 0) starts."""
        return int(self._all()[index - 1]) if index else 0

    def stop(self, index: int) -> int:
        """Just past line ``index``'s newline (the end of the buffer for a
        last line without one)."""
        ends = self._all()
        return int(ends[index]) if index < len(ends) else len(self._data)


def _joined(parts: list[BatchResult]) -> BatchResult:
    """Results of consecutive runs of lines as one."""
    errors: list[ErrorRow] = []
    line_numbers: list[int] = []
    for part in parts:
        errors.extend(part.errors)
        line_numbers.extend(part.line_numbers)
    return BatchResult(
        b"".join(part.output for part in parts),
        errors,
        sum(part.read for part in parts),
        sum(part.written for part in parts),
        line_numbers,
    )


class BatchEngine:
    """Runs batches of raw JSON Lines through one backend.

    ``backend`` is a constructed :class:`~packflow.InferenceBackend`. Besides
    it the engine holds only a hint learnt from earlier batches (whether rows
    the text reader could not read as numbers have tended to fail), which
    changes how many backend calls a failing batch takes, never what it gives.
    One engine (like its backend) serves one caller at a time; run one engine
    per thread or process for parallelism.

    ``allow_nan``: write NaN and infinities as ``NaN``/``Infinity`` (not JSON)
    instead of rejecting the row.
    """

    def __init__(self, backend: EngineBackend, *, allow_nan: bool = False):
        self.backend = backend
        self.allow_nan = allow_nan
        # Whether to try a suspect row alone before its batch (see
        # ``_around_suspects``): off after a suspect ran fine alone, on again
        # when a batch with a suspect failed.
        self._suspects_fail = True

    def __repr__(self) -> str:
        return f"BatchEngine({type(self.backend).__name__})"

    def process(
        self, data: bytes, first_line: int = 1, *, ahead: Optional[tuple[bytes, int]] = None
    ) -> BatchResult:
        """Run one buffer of JSON Lines; its lines are numbered from ``first_line``.

        A last line without a newline counts; blank lines are skipped but keep
        their number. Raises only what is not a row's fault: a ``TypeError`` for
        ``data`` that is not bytes, and ``BaseException``s (``KeyboardInterrupt``,
        ``SystemExit``) from the backend's hooks, which are never caught.

        ``ahead``: the batch the next call will bring, as ``(data,
        first_line)``, when the caller already holds it. With the stock numpy
        preprocessor its text is then read into the feature array on a second
        thread while this batch's hooks run, and the next call only picks the
        array up; the results are the same with or without it.
        """
        backend = self.backend
        out = backend._pipeline.run_lines(
            backend,
            data,
            first_line,
            allow_nan=self.allow_nan,
            stop_at_suspect=self._suspects_fail,
            ahead=ahead,
        )
        if out.stopped_line is not None:
            return self._around_suspects(data, first_line, out)
        if out.failure is None:
            errors = [ErrorRow(line, raw, "parse", msg) for line, raw, msg in out.errors]
            return BatchResult(out.output, errors, out.read, out.written, out.line_numbers)
        return self._settle(data, first_line, out, out)

    def _settle(
        self, data: bytes, first_line: int, out: _core.BatchOutcome, whole: Attempt
    ) -> BatchResult:
        """The result of the lines ``out`` read from ``data``, whose run as one
        batch gave ``whole`` (``out`` itself, or a run of its kept cells):
        when that failed, the search for the rows at fault."""
        errors = [ErrorRow(line, raw, "parse", msg) for line, raw, msg in out.errors]
        line_numbers = out.line_numbers
        if whole.failure is None:
            return BatchResult(whole.output, errors, out.read, len(line_numbers), line_numbers)
        if out.suspect is not None:
            self._suspects_fail = True
        backend = self.backend
        pipeline = backend._pipeline
        run_lines = pipeline.run_lines
        allow_nan = self.allow_nan
        ends = _LineEnds(data)

        def raw_of(line: int) -> bytes:
            return data[ends.start(line - first_line) : ends.stop(line - first_line)].rstrip(
                b"\r\n"
            )

        def run_rows(start: int, stop: int) -> Attempt:
            # From the cells the first read kept, when the text reader read
            # every row into the array (a hook may have changed the array it
            # got, so it is built afresh); else the rows' text read again: one
            # slice of ``data``, whatever bad or blank lines lie between the
            # rows (reading the slice leaves those out again).
            again = (
                pipeline.rerun(backend, out, start, stop, allow_nan=allow_nan)
                if out.can_rerun
                else None
            )
            if again is not None:
                return again
            chunk = data[
                ends.start(line_numbers[start] - first_line) : ends.stop(
                    line_numbers[stop - 1] - first_line
                )
            ]
            return run_lines(backend, chunk, line_numbers[start], allow_nan=allow_nan)

        return self._retry(run_rows, line_numbers, raw_of, errors, out.read, whole)

    def _around_suspects(
        self, data: bytes, first_line: int, out: _core.BatchOutcome
    ) -> BatchResult:
        """The reader stopped at a suspect line (``out.stopped_line``: its cells
        are not all plain numbers) before anything ran. Such a line usually
        fails, and run with the batch it takes the batch down with it (one
        string cell makes the whole feature array strings), so it runs alone
        first. When it fails alone, the rows before it run as one batch from
        the cells already read and the rest of the lines are read the same
        way: the batch that would fail is never run. When it runs fine alone,
        the lines run whole, as they would have (its batch-mates may compute
        differently beside it), and the engine stops trying suspects first
        until a batch with one fails again."""
        backend = self.backend
        pipeline = backend._pipeline
        run_lines = pipeline.run_lines
        allow_nan = self.allow_nan
        parts: list[BatchResult] = []
        while True:
            ends = _LineEnds(data)
            line = out.stopped_line
            begin, end = ends.start(line - first_line), ends.stop(line - first_line)
            alone = run_lines(backend, data[begin:end], line, allow_nan=allow_nan)
            if alone.failure is None and alone.written:
                self._suspects_fail = False
                whole = run_lines(backend, data, first_line, allow_nan=allow_nan)
                parts.append(self._settle(data, first_line, whole, whole))
                break
            rows = len(out.line_numbers)
            before = pipeline.rerun(backend, out, 0, rows, allow_nan=allow_nan) if rows else out
            parts.append(self._settle(data, first_line, out, before))
            if alone.failure is not None:
                raw = data[begin:end].rstrip(b"\r\n")
                parts.append(BatchResult(b"", [_failed_row(line, raw, alone)], 1, 0, []))
            else:
                # Not a row after all: the rest of the line did not parse.
                errors = [ErrorRow(n, raw, "parse", msg) for n, raw, msg in alone.errors]
                parts.append(BatchResult(b"", errors, alone.read, 0, []))
            data, first_line = data[end:], line + 1
            if not data:
                break
            out = run_lines(backend, data, first_line, allow_nan=allow_nan, stop_at_suspect=True)
            if out.stopped_line is None:
                parts.append(self._settle(data, first_line, out, out))
                break
        return _joined(parts)

    def process_rows(self, rows: _core.FeatureRows, first_line: int = 1) -> BatchResult:
        """Run rows already read into the numpy preprocessor's cells (numeric
        tensors a door has read; see :class:`packflow._core.FeatureRows`); row
        ``i`` is line ``first_line + i``. The feature array is built from the
        cells as it would be read from the same numbers as JSON Lines, and the
        result is the same; an error row's ``raw`` is its row as a JSON array.
        Only for a backend whose preprocessor is the stock numpy one
        (``backend._pipeline.reads_arrays``), else a ``ValueError``."""
        backend = self.backend
        pipeline = backend._pipeline
        allow_nan = self.allow_nan
        out = pipeline.run_rows(backend, rows, first_line, allow_nan=allow_nan)
        if out.failure is None:
            return BatchResult(out.output, [], out.read, out.written, out.line_numbers)

        def run_rows(start: int, stop: int) -> Attempt:
            again = pipeline.rerun(backend, out, start, stop, allow_nan=allow_nan)
            assert again is not None  # a failed run of rows keeps its cells
            return again

        def raw_of(line: int) -> bytes:
            return rows.row_json(line - first_line)

        return self._retry(run_rows, out.line_numbers, raw_of, [], out.read, out)

    def process_records(self, records: list[dict], first_line: int = 1) -> BatchResult:
        """Run records that are already dicts (a JSON array body, a dataset of
        rows); record ``i`` is line ``first_line + i``. An error row's ``raw`` is
        the record as JSON."""
        if not isinstance(records, list):
            raise TypeError(f"records must be a list of dicts, got {type(records).__name__}")
        n = len(records)
        line_numbers = list(range(first_line, first_line + n))
        if not n:
            return BatchResult(b"", [], 0, 0, [])
        backend = self.backend
        allow_nan = self.allow_nan
        outer = sys.exc_info()[1]

        def run_rows(start: int, stop: int) -> Attempt:
            try:
                outputs = backend(records[start:stop])
            except Exception as exc:  # noqa: BLE001 - the attempt's failure
                return _RecordsAttempt(b"", _as_data(exc, outer), _step_of(exc, "run"))
            try:
                payload = _core.check_and_dump_lines(outputs, stop - start, allow_nan=allow_nan)
            except InferenceBackendValidationError as exc:
                return _RecordsAttempt(b"", _as_data(exc, outer), "validate")
            except Exception as exc:  # noqa: BLE001 - the attempt's failure
                return _RecordsAttempt(b"", _as_data(exc, outer), "serialize")
            return _RecordsAttempt(payload)

        first = run_rows(0, n)
        if first.failure is None:
            return BatchResult(first.output, [], n, n, line_numbers)

        def raw_of(line: int) -> bytes:
            record = records[line - first_line]
            try:
                return _core.dumps(record, allow_nan=True)
            except Exception:  # noqa: BLE001 - only for the error row's text
                return repr(record).encode("utf-8", errors="backslashreplace")

        return self._retry(run_rows, line_numbers, raw_of, [], n, first)

    @staticmethod
    def fail_batch(data: bytes, first_line: int, step: str, error: str) -> BatchResult:
        """Every non-blank line of ``data`` as an error row with ``step`` and
        ``error``: for a batch that never finished (it timed out, or the process
        running it died), so its rows are dead-lettered rather than lost."""
        errors = [
            ErrorRow(first_line + i, raw.rstrip(b"\r"), step, error)
            for i, raw in enumerate(data.split(b"\n"))
            if raw.strip(b" \t\r")
        ]
        return BatchResult(b"", errors, len(errors), 0, [])

    def _retry(
        self,
        run_rows: Callable[[int, int], Attempt],
        line_numbers: list[int],
        raw_of: Callable[[int], bytes],
        errors: list[ErrorRow],
        read: int,
        whole: Attempt,
    ) -> BatchResult:
        """The whole batch failed (``whole``): halve it and run each half,
        halving again what fails, so only the failing rows become error rows.
        ``run_rows(start, stop)`` runs rows ``start:stop`` (output, checked and
        written, or the failure and its step).

        A failed run that names a suspect row (the first row whose features
        were not plain numbers) is cut around that row instead: the rows
        before it, the row alone, the rows after it. A segment that succeeds
        is written as it is; a single row that fails gets the error row a
        batch of one gives (the step, the exception). With ``k`` bad rows in
        ``n`` halving takes about ``2 k log2(n / k)`` backend calls (a suspect
        that is the bad row, 3), where running every row alone took ``n``.
        Only this rare path loops in Python, over segments rather than rows."""
        good: list[bytes] = []
        good_lines: list[int] = []
        # Segments to run, the leftmost on top so outputs stay in input order;
        # each with its attempt when it has run already (the whole batch has).
        pending: list[tuple[int, int, Optional[Attempt]]] = [(0, len(line_numbers), whole)]
        while pending:
            start, stop, attempt = pending.pop()
            if attempt is None:
                attempt = run_rows(start, stop)
            if attempt.failure is None:
                good.append(attempt.output)
                good_lines.extend(line_numbers[start:stop])
            elif stop - start == 1:
                line = line_numbers[start]
                errors.append(_failed_row(line, raw_of(line), attempt))
            else:
                # Pushed last segment first: the first is run first.
                for lo, hi in reversed(_cuts(start, stop, attempt.suspect)):
                    pending.append((lo, hi, None))
        # The parse errors came first; the errors file is in input-line order.
        errors.sort(key=attrgetter("line"))
        return BatchResult(b"".join(good), errors, read, len(good_lines), good_lines)
