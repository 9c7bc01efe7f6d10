"""How every command reports: ``Success:``/``Warning:`` on stdout, ``Error:`` on stderr,
and a non-zero exit for any error."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, NoReturn

import click

from packflow.exceptions import describe_error as describe

if TYPE_CHECKING:  # the commands import the project machinery only when they run
    from packflow.project.checks import Check

_LEVEL_COLOURS = {"ok": "green", "warning": "yellow", "error": "red"}


def success(message: str) -> None:
    click.echo(f"{click.style('Success:', fg='green')} {message}")


def warning(message: str) -> None:
    click.echo(f"{click.style('Warning:', fg='yellow')} {message}")


def error(message: str) -> None:
    click.echo(f"{click.style('Error:', fg='red')} {message}", err=True)


def echo_checks(results: Iterable[Check]) -> None:
    """Every check, grouped by section: one ``✓``/``⚠``/``✗`` line each."""
    section = None
    for check in results:
        if check.section != section:
            section = check.section
            click.echo(f"\n{section}:")
        symbol, _, text = check.describe().partition(" ")
        click.echo(f"  {click.style(symbol, fg=_LEVEL_COLOURS[check.level])} {text}")


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``Error: message`` and exit with ``code``."""
    error(message)
    raise SystemExit(code)


def exit_on_closed_stdout() -> NoReturn:
    """End a command whose reader closed standard output (``| head``): exit 0,
    as ``packflow run`` does, without a traceback. Standard output is pointed
    at the null device first, so the interpreter's last flush cannot fail too."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)
    raise SystemExit(0)


def reports_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn an exception escaping a command into ``Error: ...`` and exit status 1.

    click's own exits (usage errors, ``--help``, aborted prompts) pass through,
    and so does a closed standard output (the group ends that quietly).
    """

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (
            click.exceptions.Exit,
            click.ClickException,
            click.Abort,
            SystemExit,
            BrokenPipeError,
        ):
            raise
        except Exception as exc:  # noqa: BLE001 - every failure becomes a clean message
            fail(describe(exc))

    return wrapper
