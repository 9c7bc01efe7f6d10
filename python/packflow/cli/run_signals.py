"""Signals during ``packflow run``: the first SIGINT/SIGTERM asks for a graceful
stop, the second stops at once, a third exits on the spot; and the exit code
each signal ends the run with."""

from __future__ import annotations

import os
import signal
from typing import Any, Optional

__all__ = ["EXIT_FOR_SIGNAL", "ForcedStop", "RunSignals", "interrupt_loading"]

#: The exit code of a run stopped by each signal (128 + its number).
EXIT_FOR_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}


class ForcedStop(BaseException):
    """A second SIGINT/SIGTERM: stop now, even inside the backend."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class RunSignals:
    """The first SIGINT/SIGTERM asks for a graceful stop (the batch in flight
    finishes and is written); the second stops at once, interrupting the
    backend (while an output write is in progress it waits for the write to
    end, so files keep whole lines); a third exits on the spot."""

    def __init__(self) -> None:
        #: Called instead of raising on the second signal (a worker pool stops
        #: its own loop: ``WorkerPool.stop_now``).
        self.on_force: Optional[Any] = None
        #: Called before the third signal exits on the spot (temporary files).
        self.on_exit: Optional[Any] = None
        self.forced = False
        self.first: Optional[int] = None
        self.count = 0
        self._writing = False
        self._pending: Optional[int] = None

    def handler(self, signum: int, _frame: Any) -> None:
        self.count += 1
        if self.first is None:
            self.first = signum
        if self.count == 1:
            return
        if self.count >= 3:
            if self.on_exit is not None:
                self.on_exit()
            os._exit(EXIT_FOR_SIGNAL[self.first])
        self.forced = True
        if self.on_force is not None:
            self.on_force()
            return
        if self._writing:
            self._pending = signum
            return
        raise ForcedStop(signum)

    def hold(self) -> None:
        """From now on a second signal no longer interrupts (the run is over and
        its summary is being written); a third still exits at once."""
        self._writing = True
        self._pending = None

    @property
    def stopping(self) -> bool:
        return self.first is not None

    def __enter__(self) -> None:
        self._writing = True

    def __exit__(self, *exc: Any) -> None:
        self._writing = False
        if self._pending is not None and exc[0] is None:
            raise ForcedStop(self._pending)


def interrupt_loading(signum: int, _frame: Any) -> None:
    """The handler while the backend loads: any signal stops the load."""
    raise ForcedStop(signum)
