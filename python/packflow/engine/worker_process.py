"""What runs in a worker process of a :class:`~packflow.engine.WorkerPool`, and
the frames it and the parent exchange over its two pipes.

A frame is a fixed header (kind, batch sequence number, first line, payload
length) and the payload: a batch's raw lines from the parent, or a range of the
input file for the worker to read itself (``file_ranges.py``); a pickled
:class:`~packflow.engine.BatchResult`, the worker's step statistics or its
start-up error from the worker. Internal to the pool.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import struct
import traceback
from collections.abc import Callable, Iterable
from typing import Any, Optional

from packflow.engine.batch import BatchEngine
from packflow.engine.file_ranges import run_range
from packflow.engine.gc_policy import freeze_loaded
from packflow.exceptions import describe_error

HEADER = struct.Struct("<QQQQ")
# Parent -> worker.
BATCH, SEND_STATS, RANGE = 1, 6, 7
# Worker -> parent.
READY, FAILED, RESULT, STATS = 2, 3, 4, 5


def write_frame(fd: int, kind: int, seq: int, arg: int, payload: bytes = b"") -> None:
    """Write one frame to a blocking fd, however many writes it takes."""
    views = [memoryview(HEADER.pack(kind, seq, arg, len(payload))), memoryview(payload)]
    while views:
        n = os.writev(fd, views)
        while n and views:
            if n >= len(views[0]):
                n -= len(views[0])
                views.pop(0)
            else:
                views[0] = views[0][n:]
                n = 0
        while views and not len(views[0]):
            views.pop(0)


def _read_exact(fd: int, n: int) -> Optional[bytes]:
    """``n`` bytes from a blocking fd; None at the end of the stream."""
    chunks = []
    while n:
        chunk = os.read(fd, n)
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    # One read is the common case (the pipe holds a whole batch): no join copy.
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _send_stats(wfd: int, backend: Any) -> None:
    """The step statistics since they were last sent: sent once, merged once."""
    state = backend.stats_state()
    backend.reset_stats()
    write_frame(wfd, STATS, 0, 0, pickle.dumps(state))


def worker_main(
    load: Callable[[], Any],
    allow_nan: bool,
    batches: Any,
    results: Any,
    inherited: Iterable[int] = (),
) -> None:
    """A worker: load the backend once, then run every batch that arrives until
    the parent closes the pipe, sending its step statistics when asked and
    before it exits. ``batches`` and ``results`` are the worker's ends of its
    two pipes (``multiprocessing`` connections, used as plain fds);
    ``inherited``, the parent's descriptors a forked worker closes first."""
    for fd in inherited:
        with contextlib.suppress(OSError):
            os.close(fd)
    # The parent decides when to stop: a terminal's Ctrl-C reaches the whole
    # process group, and the batch in hand must still be finished and sent.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # stdout is the parent's output stream: a print in user code must not land
    # in the middle of its lines.
    os.dup2(2, 1)
    rfd, wfd = batches.fileno(), results.fileno()
    try:
        backend = load()
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which stops the run
        detail = (type(exc).__name__, describe_error(exc), traceback.format_exc())
        write_frame(wfd, FAILED, 0, 0, pickle.dumps(detail))
        return
    freeze_loaded()
    engine = BatchEngine(backend, allow_nan=allow_nan)
    files: dict[str, int] = {}
    try:
        write_frame(wfd, READY, 0, 0)
        while True:
            header = _read_exact(rfd, HEADER.size)
            if header is None:
                break
            kind, seq, first_line, length = HEADER.unpack(header)
            if kind == SEND_STATS:
                _send_stats(wfd, backend)
                continue
            data = _read_exact(rfd, length) if length else b""
            if data is None:
                break
            if kind == RANGE:
                # A range of the input file: read here, outputs to a segment file.
                spec, part, timeout = pickle.loads(data)
                if spec.path not in files:
                    files[spec.path] = os.open(spec.path, os.O_RDONLY)
                result = run_range(engine, files[spec.path], spec, part, seq, timeout)
            else:
                result = engine.process(data, first_line)
            write_frame(wfd, RESULT, seq, 0, pickle.dumps(result, pickle.HIGHEST_PROTOCOL))
        _send_stats(wfd, backend)
    except BrokenPipeError:
        pass  # the parent is gone: nobody to tell


class FrameReader:
    """Frames from a non-blocking fd, as they complete. Each read asks for just
    the rest of the current header or payload, so no bytes are buffered twice."""

    def __init__(self) -> None:
        self.need = HEADER.size
        self.header: Optional[tuple[int, int, int]] = None
        self.chunks: list[bytes] = []

    def read(self, fd: int) -> tuple[list[tuple[int, int, int, bytes]], bool]:
        """The frames completed by what can be read now, and whether the stream
        ended."""
        frames = []
        while True:
            try:
                chunk = os.read(fd, self.need)
            except BlockingIOError:
                return frames, False
            if not chunk:
                return frames, True
            self.chunks.append(chunk)
            self.need -= len(chunk)
            if self.need:
                continue
            data = self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)
            self.chunks = []
            if self.header is None:
                kind, seq, arg, length = HEADER.unpack(data)
                if length:
                    self.header, self.need = (kind, seq, arg), length
                    continue
                frames.append((kind, seq, arg, b""))
            else:
                frames.append((*self.header, data))
                self.header = None
            self.need = HEADER.size
