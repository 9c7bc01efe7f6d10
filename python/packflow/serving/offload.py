"""Large V2 bodies read, and their answers written, beside the event loop.

The event loop's thread bounds one server process: it holds the GIL for
every request's HTTP, routing and batching, and reading a 100-row V2 body
and writing its answer took a third of its time. :class:`V2Offload` hands
them to a Rust thread that never takes the GIL (``_core.V2Offload``): the
loop goes on with other connections meanwhile, on another core, and picks
the results up when that thread rings (a descriptor the loop watches). A
hand-off costs the loop a few microseconds, so only bodies of 4 KiB or more
and answers of 32 rows or more go there (JSON or binary data alike).
"""

from __future__ import annotations

import asyncio
from typing import Any, Optional

from packflow import _core
from packflow.logger import get_logger

#: Bodies from this size are read on the offload thread (Rust reads a
#: 100-row body of 9 features, 12 kB, in about 23 us).
OFFLOAD_BODY_BYTES = 4 << 10
#: Answers of this many rows or more are written there (100 rows take
#: about 14 us).
OFFLOAD_ANSWER_ROWS = 32


class V2Offload:
    """The offload thread of one app, started on first use, on the loop
    that uses it (a new loop gets a new thread). ``read`` and ``write`` give
    what ``_core.v2_read_request`` and ``_core.v2_write_answer`` give, and
    ``None`` where those would (Python then does the work)."""

    def __init__(self) -> None:
        self._core: Optional[_core.V2Offload] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._waiting: dict[int, asyncio.Future] = {}
        #: False where no thread may start: the loop cannot watch a
        #: descriptor (no add_reader), or :meth:`shut` was called.
        self._usable = True
        #: Whether a thread that could not start was logged.
        self._warned = False

    async def read(
        self, plan: Any, body: bytes, header_length: Optional[bytes] = None
    ) -> Optional[tuple]:
        core = self._ready()
        ticket = core.read(plan, body, header_length) if core is not None else None
        if ticket is None:
            return _core.v2_read_request(plan, body, header_length)
        return await self._result(ticket)

    async def write(
        self,
        lines: list[bytes],
        outputs: Optional[list[str]],
        model_name: str,
        model_version: Optional[str],
        id: Optional[str],
        binary: Optional[dict[str, bool]] = None,
        binary_default: bool = False,
    ) -> Optional[tuple[bytes, Optional[int]]]:
        args = (lines, outputs, model_name, model_version, id, binary, binary_default)
        core = self._ready()
        ticket = core.write(*args) if core is not None else None
        if ticket is None:
            return _core.v2_write_answer(*args)
        return await self._result(ticket)

    def close(self) -> None:
        """Stop the thread (once its jobs are done). The callers still
        waiting read and write for themselves (as when the thread cannot
        answer): a request the app is still answering is answered, not
        cancelled. A later call starts a new thread."""
        core, loop = self._core, self._loop
        self._core = self._loop = None
        if core is None:
            return
        try:
            loop.remove_reader(core.fileno())
        except (RuntimeError, ValueError, OSError):  # that loop is closed
            pass
        core.stop()
        waiting, self._waiting = self._waiting, {}
        for future in waiting.values():
            if not future.done():
                try:
                    future.set_result(None)
                except RuntimeError:  # its loop has closed: nobody waits on it
                    pass

    def shut(self) -> None:
        """:meth:`close` for good: later calls read and write in place. For
        an app that closes: the requests it still answers start no thread
        that nothing would stop."""
        self._usable = False
        self.close()

    def _ready(self) -> Optional[_core.V2Offload]:
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return self._core
        if not self._usable:
            return None
        self.close()
        try:
            core = _core.V2Offload()
        except (OSError, RuntimeError) as exc:
            self._cannot_start(exc)
            return None
        try:
            loop.add_reader(core.fileno(), self._collect)
        except NotImplementedError:  # a loop that cannot watch descriptors
            core.stop()
            self._usable = False
            return None
        except OSError as exc:
            core.stop()
            self._cannot_start(exc)
            return None
        self._core, self._loop = core, loop
        return core

    def _cannot_start(self, exc: BaseException) -> None:
        """No descriptor or thread left (a limit of the process, maybe for
        a while): the caller reads or writes in place, and the next call
        tries again. Said once."""
        if not self._warned:
            self._warned = True
            get_logger().warning(
                "the V2 offload thread cannot start (%s): large V2 bodies are read "
                "and answers written on the event loop until it can",
                exc,
            )

    def _result(self, ticket: int) -> asyncio.Future:
        future = self._loop.create_future()
        self._waiting[ticket] = future
        return future

    def _collect(self) -> None:
        """Hand each finished job's result to its caller (one that has gone
        is skipped)."""
        core = self._core
        if core is None:
            return
        waiting = self._waiting
        try:
            done = core.take()
        except BaseException:
            # Nothing can be handed out: the callers read and write for
            # themselves rather than wait for ever.
            for future in waiting.values():
                if not future.done():
                    future.set_result(None)
            waiting.clear()
            raise
        for ticket, result in done:
            future = waiting.pop(ticket, None)
            if future is not None and not future.done():
                future.set_result(result)
