"""The ``packflow`` command line: a click group whose commands live in their own modules.

Commands are imported when they are run (or listed by ``--help``), so starting
the CLI stays cheap. To add one, write ``packflow/cli/<name>.py`` with a click
command and add a line to :data:`COMMANDS`.
"""

from __future__ import annotations

import importlib

import click

from packflow._version import __version__
from packflow.cli.messages import exit_on_closed_stdout

# Packflow 0.4.1's names in this module, imported on first use: starting the CLI stays cheap.
_FROM_LOADERS_CONFIG = ("NAME_PATTERN", "validate_for_export")


def __getattr__(name: str):
    if name in _FROM_LOADERS_CONFIG:
        return getattr(importlib.import_module("packflow.loaders.config"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: Command name -> ``"module:attribute"`` of its click command.
COMMANDS = {
    "create": "packflow.cli.create:create",
    "validate": "packflow.cli.validate:validate",
    "export": "packflow.cli.export:export",
    "inspect": "packflow.cli.inspect_archive:inspect",
    "run": "packflow.cli.run:run_command",
    "serve": "packflow.cli.serve:serve_command",
}


#: ``-h`` is ``--help`` on the group and, inherited through the context, on every command.
CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}


class LazyGroup(click.Group):
    """A group that imports a registered command only when it is needed, and
    ends quietly when its reader closes standard output (``| head``)."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            exit_on_closed_stdout()

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in COMMANDS:
            module_name, attribute = COMMANDS[cmd_name].split(":")
            command = getattr(importlib.import_module(module_name), attribute)
            self.add_command(command, cmd_name)
        return command


@click.group(cls=LazyGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "--version", prog_name="packflow")
def cli() -> None:
    """Create, check, package and run packflow inference projects."""


__all__ = ["COMMANDS", "CONTEXT_SETTINGS", "LazyGroup", "cli"]
