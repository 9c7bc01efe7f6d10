"""Where :func:`run_stream` lived before the engine package: the stream runner is
now :mod:`packflow.engine.runner`; this module keeps the old import path."""

from __future__ import annotations

from packflow.engine.runner import BatchTimeout, RunSummary, StreamRunner, run_stream

__all__ = ["BatchTimeout", "RunSummary", "StreamRunner", "run_stream"]
