"""Packflow: write, run and package inference code over streaming records.

The public API matches Packflow 0.4; loops over records and values run in the
Rust extension ``packflow._core``.
"""

from __future__ import annotations

import gc as _gc
from typing import TYPE_CHECKING, Any

# Importing numpy, pydantic and the package allocates objects that all stay
# alive: collections during the imports would only walk them again and again
# (about a seventh of `import packflow`). The collector is paused meanwhile.
_collecting = _gc.isenabled()
_gc.disable()
try:
    from packflow._build import PortableBuildWarning, build_info, warn_if_automatic
    from packflow._version import __version__
    from packflow.backend import BackendConfig, InferenceBackend
    from packflow.engine import BatchEngine, BatchResult, ErrorRow, LineReader
    from packflow.engine.runner import RunSummary, run_stream
finally:
    if _collecting:
        _gc.enable()

if TYPE_CHECKING:
    from packflow.project import PackflowProject

__all__ = [
    "BackendConfig",
    "BatchEngine",
    "BatchResult",
    "ErrorRow",
    "InferenceBackend",
    "LineReader",
    "PackflowProject",
    "PortableBuildWarning",
    "RunSummary",
    "__version__",
    "build_info",
    "run_stream",
]

warn_if_automatic()


def __getattr__(name: str) -> Any:
    # The project machinery pulls in yaml and pathspec; load it only when asked for.
    if name == "PackflowProject":
        from packflow.project import PackflowProject

        return PackflowProject
    raise AttributeError(f"module 'packflow' has no attribute {name!r}")
