"""Run a stream of JSON Lines through a backend in micro-batches.

Parsing, the numpy fast path, output checks and JSON Lines writing are single
calls into ``packflow._core`` per batch; Python only moves batches around. Every
input line ends up in exactly one place: the output (one line per good input
line, in input order) or the errors sink (a JSON line naming the line number,
the raw line, the step and the error).
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, BinaryIO, Optional

from packflow import _core
from packflow.backend.configuration import InputFormats
from packflow.backend.preprocessors import NumpyPreprocessor

__all__ = ["RunSummary", "StreamRunner", "run_stream"]

_STEP_RE = re.compile(r"^(\w+)\(\) failed")


@dataclass
class RunSummary:
    """What a run did. ``read == written + errors`` always holds."""

    read: int = 0
    written: int = 0
    errors: int = 0
    batches: int = 0
    wall_seconds: float = 0.0
    rows_per_second: float = 0.0
    steps: dict[str, dict[str, float]] = field(default_factory=dict)
    interrupted_by: Optional[str] = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def format(self) -> str:
        """A short human summary (several lines)."""
        lines = [
            f"rows read {self.read}, written {self.written}, errors {self.errors}",
            f"wall {self.wall_seconds:.3f} s, {self.rows_per_second:,.0f} rows/s, "
            f"{self.batches} batches",
        ]
        for step, s in self.steps.items():
            lines.append(
                f"  {step:<17} p50 {s['p50_ms']:.3f} ms  p99 {s['p99_ms']:.3f} ms  "
                f"({int(s['count'])} calls)"
            )
        if self.interrupted_by:
            lines.append(f"interrupted by {self.interrupted_by}")
        return "\n".join(lines)


def _step_of(exc: BaseException) -> str:
    match = _STEP_RE.match(str(exc))
    if match:
        return match.group(1)
    name = type(exc).__name__
    if name == "InferenceBackendValidationError":
        return "validate"
    if isinstance(exc, (TypeError, ValueError)):
        return "serialize"
    return "run"


def _error_message(exc: BaseException) -> str:
    text = str(exc)
    cause = exc.__cause__
    if cause is not None and str(cause) and str(cause) not in text:
        text = f"{text} ({type(cause).__name__}: {cause})"
    return text


class StreamRunner:
    """Feeds batches of JSON Lines bytes to a backend and writes the results.

    ``sink`` and ``errors`` take bytes (``write``); ``errors=None`` drops error
    rows after counting them.
    """

    def __init__(
        self,
        backend: Any,
        sink: BinaryIO,
        errors: Optional[BinaryIO] = None,
        *,
        flush_each_batch: bool = True,
    ):
        self.backend = backend
        self.sink = sink
        self.errors_sink = errors
        self.flush_each_batch = flush_each_batch
        self.summary = RunSummary()
        self._started = time.perf_counter()
        pre = getattr(backend, "_preprocessor", None)
        self._numpy_direct = False
        if (
            backend.config.input_format == InputFormats.NUMPY
            and isinstance(pre, NumpyPreprocessor)
            and pre._fast_call() is pre._plan
        ):
            self._features = list(pre.features)
            self._delimiter = backend.config.nested_field_delimiter
            self._numpy_direct = True

    # -- one batch -------------------------------------------------------------

    def process(self, data: bytes, first_line: int) -> None:
        """Run one buffer of complete lines (line numbers from ``first_line``)."""
        pipeline = self.backend._pipeline
        start = _core.monotonic_ns()
        parsed = None
        if self._numpy_direct:
            parsed = _core.parse_lines_to_ndarray(data, self._features, self._delimiter, first_line)
        prepared = parsed is not None
        if parsed is None:
            parsed = _core.parse_lines(data, first_line)
        parse_ns = _core.monotonic_ns() - start

        self.summary.read += parsed.lines
        self.summary.batches += 1
        if parsed.errors:
            self._write_errors([(ln, raw, "parse", msg) for ln, raw, msg in parsed.errors])
        line_numbers = parsed.line_numbers
        n = len(line_numbers)
        if n:
            try:
                if prepared:
                    out = pipeline.run_prepared(self.backend, parsed.array, n, parse_ns)
                else:
                    out = pipeline.run(self.backend, parsed.records)
                payload = _core.check_and_dump_lines(out, n)
            except Exception:
                payload = self._retry_rows(data, first_line, line_numbers, prepared, parsed)
            else:
                self.summary.written += n
            if payload:
                self.sink.write(payload)
        if self.flush_each_batch:
            self.sink.flush()
            if self.errors_sink is not None:
                self.errors_sink.flush()

    def _retry_rows(
        self, data: bytes, first_line: int, line_numbers: list[int], prepared: bool, parsed: Any
    ) -> bytes:
        """A batch failed: run its rows one at a time so only the failing rows
        go to the errors sink. Only this rare path loops over rows in Python."""
        records = _core.parse_lines(data, first_line).records if prepared else parsed.records
        raw_lines = data.split(b"\n")
        good: list[bytes] = []
        bad: list[tuple[int, bytes, str, str]] = []
        for line_no, record in zip(line_numbers, records):
            try:
                out = self.backend._pipeline.run(self.backend, [record])
                good.append(_core.check_and_dump_lines(out, 1))
            except Exception as exc:  # noqa: BLE001 - recorded in the errors sink
                raw = raw_lines[line_no - first_line].rstrip(b"\r")
                bad.append((line_no, raw, _step_of(exc), _error_message(exc)))
        self.summary.written += len(good)
        if bad:
            self._write_errors(bad)
        return b"".join(good)

    def _write_errors(self, rows: list[tuple[int, bytes, str, str]]) -> None:
        self.summary.errors += len(rows)
        if self.errors_sink is None:
            return
        entries = [
            {
                "line": line_no,
                "raw": raw.decode("utf-8", errors="backslashreplace"),
                "step": step,
                "error": message,
            }
            for line_no, raw, step, message in rows
        ]
        self.errors_sink.write(_core.dumps_lines(entries))

    def finish(self, interrupted_by: Optional[str] = None, flush: bool = True) -> RunSummary:
        """Flush the sinks (unless ``flush`` is false, for a sink that has gone
        away) and fill in the timing part of the summary."""
        for sink in (self.sink, self.errors_sink) if flush else ():
            if sink is not None:
                sink.flush()
        s = self.summary
        s.wall_seconds = time.perf_counter() - self._started
        s.rows_per_second = s.read / s.wall_seconds if s.wall_seconds > 0 else 0.0
        s.steps = self.backend.get_stats()
        s.interrupted_by = interrupted_by
        if s.read != s.written + s.errors:
            raise RuntimeError(
                f"accounting error: read {s.read} != written {s.written} + errors {s.errors}"
            )
        return s


def _batches_of_items(source: Iterable[bytes], batch_size: int) -> Iterator[tuple[bytes, int]]:
    """Batches of ``batch_size`` single-line items as one buffer, with the line
    number of the first item."""
    it = iter(source)
    line = 1
    while True:
        items = list(itertools.islice(it, batch_size))
        if not items:
            return
        yield _core.join_lines(items), line
        line += len(items)


def run_stream(
    backend: Any,
    source: Iterable[bytes],
    sink: BinaryIO,
    *,
    errors: Optional[BinaryIO] = None,
    batch_size: int = 1000,
    should_stop: Optional[Callable[[], bool]] = None,
    on_batch: Optional[Callable[[RunSummary], None]] = None,
) -> RunSummary:
    """Run ``source`` (an iterable of bytes, one JSON object per item: lines of a
    file, messages of a broker client) through ``backend`` in batches of up to
    ``batch_size`` items. Each good item gives one JSON line on ``sink`` (in
    order); each bad one a JSON line on ``errors`` (``{"line", "raw", "step",
    "error"}``). ``should_stop`` is polled between batches; ``on_batch`` sees the
    running summary after each batch. Returns the final :class:`RunSummary`.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    runner = StreamRunner(backend, sink, errors)
    for data, first_line in _batches_of_items(source, batch_size):
        runner.process(data, first_line)
        if on_batch is not None:
            on_batch(runner.summary)
        if should_stop is not None and should_stop():
            return runner.finish(interrupted_by="stop request")
    return runner.finish()
