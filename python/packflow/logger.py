"""The ``packflow`` logger: standard :mod:`logging`, level from ``PACKFLOW_LOG_LEVEL``.

As a library, packflow installs no handler of its own; configure logging in the
application (``logging.basicConfig(level="INFO")``) to see its messages.
"""

from __future__ import annotations

import logging
import os

from packflow.constants import LOG_LEVEL_ENV_VAR_NAME

LOGGER_NAME = "packflow"


def _level_from_env() -> int:
    raw = os.environ.get(LOG_LEVEL_ENV_VAR_NAME, "INFO").strip().upper()
    if raw.isdigit():
        return int(raw)
    level = logging.getLevelName(raw)
    return level if isinstance(level, int) else logging.INFO


_logger = logging.getLogger(LOGGER_NAME)
_logger.setLevel(_level_from_env())
_logger.addHandler(logging.NullHandler())


def get_logger(name: str | None = None) -> logging.Logger:
    """The packflow logger, or a child of it (``packflow.<name>``)."""
    return _logger if not name else _logger.getChild(name)
