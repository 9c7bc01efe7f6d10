"""``python -m packflow.cli``: the same as the ``packflow`` command."""

from packflow.cli import cli

if __name__ == "__main__":
    cli()
