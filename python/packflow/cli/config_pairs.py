"""``--config KEY=VALUE`` options, shared by the commands that load a backend."""

from __future__ import annotations

import json
from typing import Any

import click


def parse_config_pairs(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs as a dict; a VALUE that is JSON is parsed as JSON,
    anything else stays a string."""
    config: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--config")
        try:
            config[key] = json.loads(raw)
        except ValueError:
            config[key] = raw
    return config
