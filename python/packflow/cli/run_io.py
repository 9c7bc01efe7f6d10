"""Files of ``packflow run``: checking every path before the run starts, the
input stream, output sinks that keep whole lines only, and the stats file
written atomically."""

from __future__ import annotations

import errno
import gzip
import json
import os
import stat
import sys
import tempfile
from dataclasses import dataclass
from typing import Any, BinaryIO, Optional

import click

from packflow.files import output_mode

#: Exit code of a run stopped by a read or write error (sysexits.h EX_IOERR).
EXIT_IO_ERROR = 74

__all__ = [
    "FileSink",
    "GuardedSink",
    "OutputWriteError",
    "RunPaths",
    "check_paths",
    "finish_run",
    "input_size",
    "open_input",
    "open_sink",
    "write_stats",
]


@dataclass(frozen=True)
class RunPaths:
    input: str
    output: str
    errors: Optional[str]
    stats: Optional[str]


def _identity(st: os.stat_result) -> tuple[int, int]:
    return (st.st_dev, st.st_ino)


def _check_writable(path: str, option: str) -> Optional[tuple[int, int]]:
    """Refuse an output path that cannot be written, before anything is read;
    the identity of the file when it is a regular file that exists already."""
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise click.BadParameter(f"{path!r} is a directory", param_hint=option)
    if not os.path.isdir(parent):
        why = "does not exist" if not os.path.exists(parent) else "is not a directory"
        raise click.BadParameter(f"directory {parent!r} {why}", param_hint=option)
    if os.path.exists(path):
        if not os.access(path, os.W_OK):
            raise click.BadParameter(f"{path!r} is not writable", param_hint=option)
        return _file_identity(os.stat(path))
    if not os.access(parent, os.W_OK | os.X_OK):
        raise click.BadParameter(f"directory {parent!r} is not writable", param_hint=option)
    return None


def _file_identity(st: os.stat_result) -> Optional[tuple[int, int]]:
    """The identity a same-file check compares: only a regular file's. Two
    outputs on /dev/null, a terminal or a pipe do not overwrite each other."""
    return _identity(st) if stat.S_ISREG(st.st_mode) else None


def check_paths(paths: RunPaths) -> None:
    """Every path problem as a usage error (exit 2) before the backend loads or
    any output is truncated: a missing or unreadable input, an input that is a
    directory, an output in a missing or read-only directory, and an output that
    is the input (or another output) under another name. Only regular files
    (and names not created yet) count as the same file: /dev/null is not."""
    seen: dict[tuple[int, int], str] = {}
    if paths.input != "-":
        if not os.path.exists(paths.input):
            raise click.BadParameter(f"{paths.input!r} does not exist", param_hint="-i/--input")
        if os.path.isdir(paths.input):
            raise click.BadParameter(f"{paths.input!r} is a directory", param_hint="-i/--input")
        if not os.access(paths.input, os.R_OK):
            raise click.BadParameter(f"{paths.input!r} is not readable", param_hint="-i/--input")
        ident = _file_identity(os.stat(paths.input))
        if ident is not None:
            seen[ident] = "-i/--input"
    elif _regular(sys.stdin):
        seen[_identity(os.fstat(sys.stdin.fileno()))] = "standard input"
    outputs = [("-o/--output", paths.output), ("--errors", paths.errors), ("--stats", paths.stats)]
    for option, path in outputs:
        if path is None:
            continue
        if path == "-":
            if option != "-o/--output":
                raise click.BadParameter("must be a file", param_hint=option)
            ident = _identity(os.fstat(sys.stdout.fileno())) if _regular(sys.stdout) else None
        else:
            ident = _check_writable(path, option)
        if ident is not None and ident in seen:
            raise click.BadParameter(
                f"{path!r} is the same file as {seen[ident]}; it would be overwritten",
                param_hint=option,
            )
        if ident is not None:
            seen[ident] = option
    # Names of files still to be created: the same name twice is the same new file.
    new = [(o, p) for o, p in outputs if p not in (None, "-") and not os.path.exists(p)]
    named = [(o, os.path.abspath(p)) for o, p in new]
    for i, (option, path) in enumerate(named):
        for other, other_path in named[:i]:
            if path == other_path:
                raise click.BadParameter(f"is the same file as {other}", param_hint=option)


def _regular(stream: Any) -> bool:
    try:
        return stat.S_ISREG(os.fstat(stream.fileno()).st_mode)
    except (OSError, ValueError, AttributeError):
        return False


def open_input(path: str) -> tuple[BinaryIO, bool]:
    """The byte stream to read and whether it is live (a pipe or terminal, where
    waiting for more data makes sense)."""
    if path == "-":
        stream: BinaryIO = sys.stdin.buffer
    elif path.endswith(".gz"):
        return gzip.open(path, "rb"), False  # type: ignore[return-value]
    else:
        stream = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by the caller
    try:
        live = not stat.S_ISREG(os.fstat(stream.fileno()).st_mode)
    except (OSError, ValueError):
        live = False
    return stream, live


def input_size(path: str) -> Optional[int]:
    """The bytes the input holds, for ``--workers auto``; ``None`` when that is
    not known before reading (a pipe, a terminal). Standard input redirected
    from a file counts what is left of it; a ``.gz`` file its uncompressed
    size as its trailer records it (modulo 4 GiB: a recorded size smaller than
    the compressed file has wrapped, or belongs to the last of several
    members, and counts as unknown)."""
    try:
        if path == "-":
            fd = sys.stdin.fileno()
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return None
            return max(0, st.st_size - os.lseek(fd, 0, os.SEEK_CUR))
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            return None
        if not path.endswith(".gz"):
            return st.st_size
        if st.st_size < 18:  # smaller than an empty gzip member
            return 0
        with open(path, "rb") as fh:
            fh.seek(-4, os.SEEK_END)
            recorded = int.from_bytes(fh.read(4), "little")
        return recorded if recorded >= st.st_size else None
    except (OSError, ValueError, AttributeError):
        return None


#: What copy_file_range or sendfile fail with where they cannot serve a pair of
#: descriptors (another file system, an O_APPEND file, no such call).
_NO_COPY = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EBADF, errno.EOPNOTSUPP}


class FileSink:
    """A binary sink that writes each batch with one unbuffered write loop and
    remembers the offset after the last complete write, so a failed or
    interrupted run can cut a regular file back to whole lines (``trim``).

    ``name`` is the path the user gave (for messages). Gzip files are written
    through :mod:`gzip` and cannot be trimmed; the gzip stream is finished on
    close so what was written stays readable.
    """

    def __init__(
        self,
        name: str,
        fd: int,
        gz: Optional[gzip.GzipFile] = None,
        own: bool = True,
        raw: Optional[BinaryIO] = None,
    ):
        self.name = name
        self.fd = fd
        self.gz = gz
        self.own = own
        self.raw = raw
        self.regular = _regular_fd(fd)
        self.good = os.lseek(fd, 0, os.SEEK_CUR) if self.regular else 0
        #: How copy_from moves bytes; the next way down once the kernel refuses.
        self._copier = (
            "copy_file_range" if self.regular and hasattr(os, "copy_file_range") else "sendfile"
        )

    def write(self, data: bytes) -> None:
        if self.gz is not None:
            self.gz.write(data)
            return
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]
        self.good += len(data)

    def copy_from(self, fd: int, size: int) -> None:
        """Append ``size`` bytes of the file ``fd`` (from its start) without
        reading them into Python: ``copy_file_range`` into a regular file,
        ``sendfile`` into a pipe or terminal; plain reads and writes for gzip,
        or where the kernel refuses both (an ``O_APPEND`` descriptor)."""
        offset = 0
        while offset < size:
            left = size - offset
            if self.gz is not None:
                chunk = os.pread(fd, min(left, 1 << 20), offset)
                self.gz.write(chunk)
                n = len(chunk)
            else:
                n = self._copy(fd, offset, left)
                self.good += n
            if n <= 0:
                raise OSError(errno.EIO, f"segment file ended at {offset} of {size} bytes")
            offset += n

    def _copy(self, fd: int, offset: int, count: int) -> int:
        while True:
            try:
                if self._copier == "copy_file_range":
                    return os.copy_file_range(fd, self.fd, count, offset)
                if self._copier == "sendfile":
                    return os.sendfile(self.fd, fd, offset, count)
                chunk = os.pread(fd, min(count, 1 << 20), offset)
                self.write(chunk)
                self.good -= len(chunk)  # counted by the caller
                return len(chunk)
            except OSError as exc:
                if self._copier == "write" or exc.errno not in _NO_COPY:
                    raise
                self._copier = "sendfile" if self._copier == "copy_file_range" else "write"

    def flush(self) -> None:
        if self.gz is not None:
            self.gz.flush()

    def trim(self) -> None:
        """Cut a regular file back to the end of the last complete write."""
        if self.gz is None and self.regular:
            try:
                os.ftruncate(self.fd, self.good)
            except OSError:
                pass

    def close(self) -> None:
        try:
            if self.gz is not None:
                self.gz.close()
        finally:
            if self.raw is not None:
                self.raw.close()
            elif self.own:
                os.close(self.fd)


def _regular_fd(fd: int) -> bool:
    try:
        return stat.S_ISREG(os.fstat(fd).st_mode)
    except OSError:
        return False


def open_sink(path: str) -> FileSink:
    """A sink for ``path`` (``-``: standard output); truncates an existing file."""
    if path == "-":
        sys.stdout.flush()
        return FileSink("standard output", sys.stdout.fileno(), own=False)
    if path.endswith(".gz"):
        raw = open(path, "wb")  # noqa: SIM115 - closed by FileSink.close
        return FileSink(path, raw.fileno(), gz=gzip.GzipFile(fileobj=raw, mode="wb"), raw=raw)
    return FileSink(path, os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666))


def write_stats(path: str, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON to ``path`` atomically: a reader (or a resumed run)
    sees the old file or the new one, never a half-written one. The file gets
    the mode any other output gets (0666 less the umask), not the private
    mode of a temporary file."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".packflow-stats-", dir=directory)
    try:
        os.fchmod(fd, output_mode())
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def first_error_text(summary: Any, limit: int = 200) -> str:
    """``line N, step S: Type: message`` for the summary's first rejected row,
    on one line and at most ``limit`` characters; ``""`` when it has none."""
    first = getattr(summary, "first_error", None)
    if not first:
        return ""
    message = " ".join(str(first.get("error", "")).split())
    if first.get("error_type"):
        message = f"{first['error_type']}: {message}"
    where = f"line {first.get('line')}"
    if first.get("line") is None and "offset" in first:  # a Kafka input's message
        where = f"partition {first.get('partition')} offset {first.get('offset')}"
    text = f"{where}, step {first.get('step')}: {message}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def finish_run(
    summary: Any,
    exit_code: int,
    *,
    errors_path: Optional[str],
    stats_path: Optional[str],
    fail_on_error: bool,
    errors_arg: str = "FILE",
) -> None:
    """The end of every ``run`` engine, once its summary is printed: warn about
    rejected rows nobody keeps (with the first one's reason), write ``--stats``
    (a failure to is exit 74, and is said), apply ``--fail-on-error`` (exit 1,
    and an ``Error:`` line saying so), and exit with the code."""
    first = first_error_text(summary)
    if summary.errors and not errors_path:
        click.echo(
            f"Warning: {summary.errors} row(s) were rejected; "
            f"pass --errors {errors_arg} to keep them." + (f" The first: {first}" if first else ""),
            err=True,
        )
    if stats_path:
        try:
            write_stats(stats_path, summary.to_dict())
        except OSError as exc:
            click.echo(f"Error: could not write the stats to {stats_path}: {exc}", err=True)
            exit_code = exit_code or EXIT_IO_ERROR
    if exit_code == 0 and fail_on_error and summary.errors:
        where = f"they are in {errors_path}" if errors_path else "they were not kept (no --errors)"
        click.echo(
            f"Error: {summary.errors} row(s) failed, so --fail-on-error exits with status 1; "
            f"{where}.",
            err=True,
        )
        exit_code = 1
    if exit_code:
        sys.exit(exit_code)


class OutputWriteError(Exception):
    def __init__(self, name: str, cause: OSError):
        super().__init__(f"could not write to {name}: {cause.strerror or cause}")


class GuardedSink:
    """Turns a failed write into an error naming the file (a closed pipe stays
    a ``BrokenPipeError``: that ends the run quietly)."""

    def __init__(self, sink: FileSink):
        self.sink = sink

    def write(self, data: bytes) -> None:
        try:
            self.sink.write(data)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise OutputWriteError(self.sink.name, exc) from exc

    def copy_from(self, fd: int, size: int) -> None:
        try:
            self.sink.copy_from(fd, size)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise OutputWriteError(self.sink.name, exc) from exc

    def flush(self) -> None:
        try:
            self.sink.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise OutputWriteError(self.sink.name, exc) from exc
