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

__all__ = [
    "ServeExtraMissing",
    "ServeResult",
    "require_grpc_extra",
    "require_serve_extra",
    "serve",
]


class ServeExtraMissing(ImportError):
    """A module of the serve extra does not import; the message says how to
    install the extra's requirements (``command``) into this Python."""

    def __init__(self, module: str, reason: str, command: str, extra: str = "serve"):
        what = "serving" if extra == "serve" else f"serving with {extra}"
        super().__init__(
            f"{what} needs the {extra} extra, and {module} does not import ({reason}); "
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


#: The modules of the grpc extra's distributions (grpcio, protobuf).
_GRPC_MODULES = ("grpc", "google.protobuf")


def require_grpc_extra() -> None:
    """Import what the gRPC door needs (grpcio, protobuf, the generated
    stubs), or raise :class:`ServeExtraMissing` naming the grpc extra's
    install command. Cheap, as :func:`require_serve_extra`."""
    for module in (*_GRPC_MODULES, "packflow.serving.grpc_v2"):
        try:
            importlib.import_module(module)
        # The stubs check the runtimes' versions at import: too old a
        # protobuf is a VersionError, too old a grpcio a RuntimeError.
        except Exception as exc:  # noqa: BLE001 - each says what to install
            raise ServeExtraMissing(
                module, str(exc) or type(exc).__name__, install_hint("grpc"), extra="grpc"
            ) from exc


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
    grpc_port: Optional[int] = None,
    grpc_limits: Optional[Any] = None,
    on_grpc_listening: Optional[Callable[[str, int], None]] = None,
    reuse_port: bool = False,
    on_signals: Optional[Callable[[Callable[[], None]], None]] = None,
) -> ServeResult:
    """Serve ``app`` (one model's, or a :class:`MultiModelApp`) with
    packflow's HTTP/1.1 server until SIGTERM or SIGINT (blocking).
    ``on_listening(host, port)`` is called once the socket listens
    (``port`` 0 picks a free port; the callback gets the real one).
    ``limits`` bounds what clients may hold (a
    :class:`packflow.serving.http1.Limits`; by default its defaults with
    ``max_connections``). With ``grpc_port`` (0: a free one), the Open
    Inference Protocol's gRPC service listens there too, on the same loop and
    batcher (``grpc_limits``: a :class:`packflow.serving.grpc_v2.GrpcLimits`;
    ``on_grpc_listening`` as ``on_listening``). ``reuse_port``: listen with
    SO_REUSEPORT, beside other processes on the same ports (``packflow serve
    --workers``). ``on_signals``: as for
    :func:`packflow.serving.http1.run_until_signalled`. Raises
    ``RuntimeError`` when it cannot listen."""
    modules = require_serve_extra()
    if grpc_port is not None:
        require_grpc_extra()
    from packflow.serving.http1 import HttpServer, Limits, run_until_signalled

    if limits is None:
        limits = Limits(max_connections=max_connections)
    server = HttpServer(app, limits)
    server.reuse_port = reuse_port
    doors = []
    if grpc_port is not None:
        from packflow.serving.grpc_v2 import GrpcDoor

        models = app.apps if isinstance(app, MultiModelApp) else {app.name: app}
        doors.append(
            GrpcDoor(
                models, host, grpc_port, grpc_limits, on_grpc_listening, reuse_port, app.metrics
            )
        )
    main = run_until_signalled(server, host, port, on_listening, doors, on_signals)
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
