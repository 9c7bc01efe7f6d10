"""Running the app with packflow's HTTP/1.1 server (:mod:`.http1`, on
uvloop with httptools), one process.

SIGTERM or SIGINT starts a drain: ``/readyz`` answers 503, the listening
socket closes, every queued and in-flight request is answered, then the
process exits 0. A second signal stops at once.
"""

from __future__ import annotations

import asyncio
import importlib
import re
from collections.abc import Callable
from typing import Any, Optional

from packflow.constants import SERVE_HOST, SERVE_MAX_CONNECTIONS, SERVE_PORT
from packflow.extras import extra_requirements, install_hint
from packflow.serving.app import PackflowApp
from packflow.serving.multi import MultiModelApp

__all__ = ["ServeExtraMissing", "ServeResult", "require_serve_extra", "serve"]


class ServeExtraMissing(ImportError):
    """A module of the serve extra does not import; the message says how to
    install the extra's requirements (``command``) into this Python."""

    def __init__(self, module: str, reason: str, command: str):
        super().__init__(
            f"serving needs the serve extra, and {module} does not import ({reason}); "
            f"install the extra's requirements into this Python:\n  {command}"
        )
        self.name = module
        self.command = command


def require_serve_extra() -> list[str]:
    """Import what :func:`serve` needs (the modules are returned), or raise
    :class:`ServeExtraMissing`.
    Cheap: ``packflow serve`` calls it before loading a backend, whose
    ``initialize()`` may take minutes."""
    # The extra's distributions import under their own names; the extra's
    # platform markers (no uvloop on Windows) decide which apply here.
    modules = [re.match(r"[A-Za-z0-9_.-]+", req).group(0) for req in extra_requirements("serve")]
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ServeExtraMissing(
                module, str(exc) or type(exc).__name__, install_hint("serve")
            ) from exc
    return modules


class ServeResult:
    """How the server stopped: ``forced`` when a second signal cut the drain
    short, ``signal`` the name of the first signal (None if none came)."""

    def __init__(self, forced: bool, signal_name: Optional[str]):
        self.forced = forced
        self.signal = signal_name


def serve(
    app: PackflowApp | MultiModelApp,
    *,
    host: str = SERVE_HOST,
    port: int = SERVE_PORT,
    max_connections: int = SERVE_MAX_CONNECTIONS,
    limits: Optional[Any] = None,
    on_listening: Optional[Callable[[str, int], None]] = None,
) -> ServeResult:
    """Serve ``app`` (one model's, or a :class:`MultiModelApp`) with
    packflow's HTTP/1.1 server until SIGTERM or SIGINT (blocking).
    ``on_listening(host, port)`` is called once the socket listens
    (``port`` 0 picks a free port; the callback gets the real one).
    ``limits`` bounds what clients may hold (a
    :class:`packflow.serving.http1.Limits`; by default its defaults with
    ``max_connections``). Raises ``RuntimeError`` when it cannot listen."""
    modules = require_serve_extra()
    from packflow.serving.http1 import HttpServer, Limits, run_until_signalled

    if limits is None:
        limits = Limits(max_connections=max_connections)
    server = HttpServer(app, limits)
    main = run_until_signalled(server, host, port, on_listening)
    if "uvloop" in modules:
        import uvloop

        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    try:
        asyncio.set_event_loop(loop)
        forced, signal_name = loop.run_until_complete(main)
        return ServeResult(forced, signal_name)
    except OSError as exc:
        raise RuntimeError(f"could not listen on {host}:{port}: {exc.strerror or exc}") from None
    finally:
        _close(loop)


def _close(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what is left (after a forced stop: requests still running) and
    close the loop."""
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    asyncio.set_event_loop(None)
    loop.close()
