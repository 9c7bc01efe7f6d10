"""Running the app under uvicorn (uvloop and httptools), one process.

SIGTERM or SIGINT starts a drain: ``/readyz`` answers 503, the listening
socket closes, every queued and in-flight request is answered, then the
process exits 0. A second signal stops at once.
"""

from __future__ import annotations

import contextlib
import importlib
import re
import signal
from collections.abc import Callable, Iterator
from typing import Any, Optional

from packflow.constants import SERVE_HOST, SERVE_PORT
from packflow.extras import extra_requirements, install_hint
from packflow.serving.app import PackflowApp

__all__ = ["ServeExtraMissing", "ServeResult", "require_serve_extra", "serve"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


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
    app: PackflowApp,
    *,
    host: str = SERVE_HOST,
    port: int = SERVE_PORT,
    max_connections: Optional[int] = None,
    on_listening: Optional[Callable[[str, int], None]] = None,
) -> ServeResult:
    """Serve ``app`` until SIGTERM or SIGINT (blocking). ``on_listening(host,
    port)`` is called once the socket listens (``port`` 0 picks a free port;
    the callback gets the real one). ``max_connections`` bounds connections
    plus requests in progress (uvicorn answers 503 beyond it)."""
    modules = require_serve_extra()
    import uvicorn

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop" if "uvloop" in modules else "asyncio",
        http="httptools",
        lifespan="on",
        interface="asgi3",
        access_log=False,
        proxy_headers=False,
        log_level="warning",
        server_header=False,
        limit_concurrency=max_connections,
    )

    class Server(uvicorn.Server):
        """uvicorn's server with our signal rules: the first signal drains,
        the second forces, and neither is re-raised once the drain is done
        (uvicorn re-raises it, which would make the exit status the signal's)."""

        received: Optional[int] = None

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            previous = {s: signal.signal(s, self.handle_exit) for s in _SIGNALS}
            try:
                yield
            finally:
                for s, handler in previous.items():
                    signal.signal(s, handler)

        def handle_exit(self, sig: int, frame: Any) -> None:
            if self.should_exit:
                self.force_exit = True
                return
            self.received = sig
            app.drain()
            self.should_exit = True

        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets=sockets)
            if self.started and on_listening is not None:
                bound = self.servers[0].sockets[0].getsockname()
                on_listening(bound[0], bound[1])

    server = Server(config)
    server.run()
    name = signal.Signals(server.received).name if server.received is not None else None
    return ServeResult(server.force_exit, name)
