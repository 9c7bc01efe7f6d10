"""``packflow serve``: a backend over HTTP, with dynamic batching, Prometheus
metrics and backpressure.

:func:`create_app` gives one model's ASGI app (to mount in any ASGI stack);
:class:`MultiModelApp` puts several behind one set of routes;
:func:`packflow.serving.server.serve` runs either on packflow's own HTTP/1.1
server (this package's optional ``serve`` extra), as the ``packflow serve``
command does.
"""

from __future__ import annotations

from packflow.serving.app import PackflowApp, create_app
from packflow.serving.multi import MultiModelApp

__all__ = ["MultiModelApp", "PackflowApp", "create_app"]
