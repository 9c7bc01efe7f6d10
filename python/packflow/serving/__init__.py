"""``packflow serve``: a backend over HTTP, with dynamic batching, Prometheus
metrics and backpressure.

:func:`create_app` gives the ASGI app (to mount in any ASGI stack);
:func:`packflow.serving.server.serve` runs it under uvicorn (this package's
optional ``serve`` extra), as the ``packflow serve`` command does.
"""

from __future__ import annotations

from packflow.serving.app import PackflowApp, create_app

__all__ = ["PackflowApp", "create_app"]
