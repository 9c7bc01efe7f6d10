"""The ``packflow`` group itself: ``-h`` on every command, and a reader that
closes standard output early (``| head``) ending a command quietly."""

from __future__ import annotations

import os
import subprocess

import pytest
from click.testing import CliRunner

from packflow.cli import COMMANDS, cli
from tests.support.sample_projects import write_project
from tests.support.testkit import PACKFLOW


@pytest.mark.parametrize("args", [[], *([name] for name in sorted(COMMANDS))])
def test_dash_h_is_help_everywhere(args):
    short = CliRunner().invoke(cli, [*args, "-h"])
    long = CliRunner().invoke(cli, [*args, "--help"])
    assert short.exit_code == 0, short.output
    assert short.output == long.output
    assert "-h, --help" in short.output


def _closed_stdout(args, cwd):
    """``packflow ARGS`` writing to a pipe whose reader is already gone."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [*PACKFLOW, *args], stdout=write_end, stderr=subprocess.PIPE, cwd=cwd, timeout=120
        )
    finally:
        os.close(write_end)


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    root = tmp_path_factory.mktemp("closed-stdout")
    write_project(root / "p")
    subprocess.run([*PACKFLOW, "export", "p", "-o", "dist"], cwd=root, check=True)
    return root, root / "dist" / "sample-0.1.0.zip"


@pytest.mark.parametrize(
    "args",
    [
        ["inspect", "{archive}"],
        ["inspect", "--json", "{archive}"],
        ["validate", "-v", "p"],
        ["export", "-v", "p", "-o", "dist2"],
    ],
)
def test_closed_stdout_ends_quietly(archive, args):
    root, path = archive
    done = _closed_stdout([a.format(archive=path) for a in args], cwd=root)
    assert done.stderr == b""
    assert done.returncode == 0
