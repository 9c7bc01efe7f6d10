"""The garbage collector in a process that runs one long stream.

What is loaded before the first batch (modules, the backend and its model)
lives as long as the process; every full collection would walk all of it again.
Once the backend is loaded, :func:`freeze_loaded` moves those objects out of
the collector's view (:func:`gc.freeze`), so collections during the run walk
only what the batches allocate. For processes packflow owns (``packflow run``,
its worker processes, ``packflow serve``), never for a library caller's.
"""

from __future__ import annotations

import gc

__all__ = ["freeze_loaded"]


def freeze_loaded() -> None:
    """Leave every object alive now out of future collections."""
    gc.freeze()
