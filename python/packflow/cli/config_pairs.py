"""``--config KEY=VALUE`` options, shared by the commands that load a backend:
parsed into keyword arguments, and checked against the backend's config model
(a key it does not have is a usage error, not a silently ignored typo)."""

from __future__ import annotations

import json
from typing import Any, NoReturn

import click

from packflow.exceptions import UnknownConfigKeysError


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


#: The ``--config KEY=VALUE`` option of every command that loads a backend; the
#: command receives the pairs parsed, as a dict named ``config``.
config_option = click.option(
    "--config",
    "config",
    multiple=True,
    metavar="KEY=VALUE",
    callback=lambda _ctx, _param, pairs: parse_config_pairs(pairs),
    help="Backend config override (VALUE parsed as JSON when it is JSON).",
)


def load_error(message: str, error_type: str) -> NoReturn:
    """Stop the command for a backend that could not be loaded, given the
    error's text and class name (a worker process or a Ray actor reports
    both): an unknown ``--config`` key (:class:`UnknownConfigKeysError`) is a
    usage error (exit 2), anything else exit 1 with the loader's message."""
    if error_type == UnknownConfigKeysError.__name__:
        raise click.BadParameter(message, param_hint="--config")
    raise click.ClickException(f"could not load the backend: {message}")
