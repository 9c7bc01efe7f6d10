"""The serving examples of README.md and docs/serving.md, run as written
against a real `packflow serve` of the example project, in a folder holding
what `make run` writes (out/events.jsonl, by the Makefile's own command)."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from packflow.extras import DECLARED_EXTRAS
from tests.serving.harness import EXAMPLE, REPO

README = REPO / "README.md"
SERVING_DOC = REPO / "docs" / "serving.md"
DEFAULT_BODY_LIMIT = 16 << 20  # --max-body-mb's default


def _bash_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, re.S)


def _readme_serving_blocks() -> list[str]:
    section = README.read_text().split("## Serving over HTTP", 1)[1].split("\n## ", 1)[0]
    return _bash_blocks(section)


def _commands(block: str) -> list[tuple[str, list[str]]]:
    """Each command of a block (continued over lines while a quote is open or
    a line ends in a backslash) with the ``# `` lines after it: its output."""
    out: list[tuple[str, list[str]]] = []
    pending = ""
    for line in block.splitlines():
        if not pending and line.startswith("#"):
            if out:
                out[-1][1].append(line[2:])
            continue
        pending = f"{pending}\n{line}" if pending else line
        if pending.count("'") % 2 == 0 and not pending.endswith("\\"):
            out.append((pending, []))
            pending = ""
    assert not pending, f"unfinished command: {pending!r}"
    return out


def _strip_comment(command: str) -> str:
    return re.sub(r"\s+#[^'\"]*$", "", command)


@pytest.fixture(scope="module")
def after_make_run(tmp_path_factory) -> Path:
    """A folder with out/events.jsonl as `make run` writes it."""
    makefile = (REPO / "Makefile").read_text()
    (line,) = [
        x.strip() for x in makefile.splitlines() if "packflow.sample_data" in x and "-o out/" in x
    ]
    assert line.endswith("-o out/events.jsonl"), line
    folder = tmp_path_factory.mktemp("checkout")
    (folder / "out").mkdir()
    args = shlex.split(line.replace("$(PY)", shlex.quote(sys.executable)))
    subprocess.run(args, cwd=folder, check=True, timeout=120)
    return folder


def _run_examples(blocks: list[str], server, folder: Path) -> int:
    """Run every curl and head command of ``blocks``; returns how many ran."""
    if shutil.which("curl") is None:
        pytest.skip("no curl")
    ran = 0
    for block in blocks:
        for command, expected in _commands(block):
            command = _strip_comment(command)
            if "packflow serve " in command:
                # The server these commands talk to serves this project.
                assert "serve examples/firewall-anomaly " in command, command
                assert (REPO / "examples" / "firewall-anomaly") == EXAMPLE
                continue
            if not command.startswith(("curl ", "head ")):
                continue
            command = command.replace("localhost:8080", f"127.0.0.1:{server.port}")
            done = subprocess.run(
                ["bash", "-c", command], cwd=folder, capture_output=True, timeout=60
            )
            assert done.returncode == 0, (command, done.stderr)
            if expected:
                assert done.stdout.decode().strip() == "\n".join(expected), command
            ran += 1
    return ran


def test_the_readme_serving_example_works_as_written(example_server, after_make_run):
    blocks = _readme_serving_blocks()
    assert blocks
    ran = _run_examples(blocks, example_server, after_make_run)
    # Every file the example posts exists once its commands ran (curl sends an
    # empty body for one that does not) and fits the default body limit.
    posted = re.findall(r"--data-binary @(\S+)", "".join(blocks))
    assert posted
    for name in posted:
        path = after_make_run / name
        assert path.is_file(), f"{name} does not exist after make run and the example"
        assert 0 < path.stat().st_size <= DEFAULT_BODY_LIMIT, name
    # The whole of make run's file is over the limit: why the example cuts a sample.
    assert (after_make_run / "out" / "events.jsonl").stat().st_size > DEFAULT_BODY_LIMIT
    assert blocks[0].startswith("make run"), "the example starts from what make run writes"
    assert ran >= 2


def test_the_serving_doc_examples_print_what_they_show(example_server, after_make_run):
    blocks = [b for b in _bash_blocks(SERVING_DOC.read_text()) if "localhost:8080" in b]
    assert _run_examples(blocks, example_server, after_make_run) >= 8


def _extra_without_markers(extra: str = "serve") -> list[str]:
    # The declared list (tests/test_extras.py keeps it equal to pyproject.toml's).
    return [line.split(";")[0].strip() for line in DECLARED_EXTRAS[extra]]


def test_every_documented_install_installs_this_package_with_the_extra():
    """A documented command that lists the extra's requirements lists all of
    them, as declared; the others install this package's wheel with the extra.
    (tests/test_extras.py checks that no document installs the index's packflow.)"""
    blocks = _readme_serving_blocks() + _bash_blocks(SERVING_DOC.read_text())
    installs = [
        _strip_comment(c) for b in blocks for c, _ in _commands(b) if " pip install " in f" {c}"
    ]
    assert len(installs) >= 4
    for command in installs:
        listed = [a for a in shlex.split(command) if ">=" in a]
        if listed:
            # The serve extra, or the grpc one (for --grpc-port).
            extras = (_extra_without_markers(), _extra_without_markers("grpc"))
            assert listed in extras, command
        else:
            assert command.endswith('[serve]"'), command
