"""Running the app under uvicorn (uvloop and httptools), one process.

SIGTERM or SIGINT starts a drain: ``/readyz`` answers 503, the listening
socket closes, every queued and in-flight request is answered, then the
process exits 0. A second signal stops at once.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import re
import shlex
import signal
import sys
from collections.abc import Callable, Iterator
from typing import Any, Optional

from packflow.serving.app import PackflowApp

__all__ = ["ServeExtraMissing", "ServeResult", "require_serve_extra", "serve", "serve_requirements"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)

#: The serve extra as pyproject.toml declares it, for when the installed
#: distribution's metadata cannot be read (a source tree on PYTHONPATH).
SERVE_EXTRA_FALLBACK = (
    "uvicorn>=0.30",
    "uvloop>=0.19; sys_platform != 'win32'",
    "httptools>=0.6",
)
# uvloop is not in the extra on Windows (it does not build there).
_UVLOOP = sys.platform != "win32"
_PLATFORM_MARKER = re.compile(r"""sys_platform\s*(==|!=)\s*['"]([^'"]*)['"]""")
_EXTRA_CLAUSE = re.compile(r"""\s*(?:\band\s+)?extra\s*==\s*['"]serve['"]\s*(?:and\b)?""")


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


def serve_requirements() -> list[str]:
    """The requirements of the serve extra for this platform, from the
    installed packflow's metadata (so they match the installed version), or
    :data:`SERVE_EXTRA_FALLBACK` when it has none."""
    try:
        declared = importlib.metadata.requires("packflow") or []
    except importlib.metadata.PackageNotFoundError:
        declared = []
    found = [r for r in (_for_serve(line) for line in declared) if r is not None]
    if not found:
        found = [r for r in (_for_serve(line, True) for line in SERVE_EXTRA_FALLBACK) if r]
    return found


def _for_serve(line: str, in_extra: bool = False) -> Optional[str]:
    """``line`` without its marker if it belongs to the serve extra here, else None."""
    spec, _, marker = line.partition(";")
    if not in_extra:
        if not _EXTRA_CLAUSE.search(marker):
            return None
        marker = _EXTRA_CLAUSE.sub(" ", marker)
    marker = marker.strip()
    if marker and not _marker_holds(marker):
        return None
    return spec.strip().replace(" ", "")


def _marker_holds(marker: str) -> bool:
    platform = _PLATFORM_MARKER.fullmatch(marker)
    if platform:  # the only kind the extra uses: no need for packaging
        return (sys.platform == platform.group(2)) == (platform.group(1) == "==")
    try:
        from packaging.markers import Marker
    except ImportError:  # not a dependency; pip will judge it at install time
        return True
    return Marker(marker).evaluate()


def install_command(requirements: list[str]) -> str:
    """The pip command installing ``requirements`` into this Python. It names
    the requirements themselves, not this package with its extra: asked for by
    name, pip would fetch another packflow from the index over this one."""
    args = [sys.executable, "-m", "pip", "install", *requirements]
    return " ".join(shlex.quote(a) for a in args)


def require_serve_extra() -> None:
    """Import what :func:`serve` needs, or raise :class:`ServeExtraMissing`.
    Cheap: ``packflow serve`` calls it before loading a backend, whose
    ``initialize()`` may take minutes."""
    modules = ["uvicorn", "httptools"] + (["uvloop"] if _UVLOOP else [])
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ServeExtraMissing(
                module, str(exc) or type(exc).__name__, install_command(serve_requirements())
            ) from exc


def _uvicorn() -> Any:
    require_serve_extra()
    import uvicorn

    return uvicorn


class ServeResult:
    """How the server stopped: ``forced`` when a second signal cut the drain
    short, ``signal`` the name of the first signal (None if none came)."""

    def __init__(self, forced: bool, signal_name: Optional[str]):
        self.forced = forced
        self.signal = signal_name


def serve(
    app: PackflowApp,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    max_connections: Optional[int] = None,
    on_listening: Optional[Callable[[str, int], None]] = None,
) -> ServeResult:
    """Serve ``app`` until SIGTERM or SIGINT (blocking). ``on_listening(host,
    port)`` is called once the socket listens (``port`` 0 picks a free port;
    the callback gets the real one). ``max_connections`` bounds connections
    plus requests in progress (uvicorn answers 503 beyond it)."""
    uvicorn = _uvicorn()
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop" if _UVLOOP else "asyncio",
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
