"""The README's two commands as make plans them on a machine with nothing set up.

`make -n` prints every command a target would run without running any, so a
virtualenv path that does not exist shows the whole plan of a fresh clone.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# What only the tests, benchmarks and linters use: `make run` must not install them.
TEST_ONLY = (
    "pytest",
    "hypothesis",
    "ruff",
    "pandas",
    "orjson",
    "msgspec",
    "httpx",
    "uvicorn",
    "tritonclient",
)

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def _plan(target: str, tmp_path: Path) -> list[str]:
    done = subprocess.run(
        ["make", "-n", "--no-print-directory", target, f"VENV={tmp_path / 'fresh-venv'}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def _installed(plan: list[str]) -> str:
    return " ".join(line for line in plan if "pip install" in line)


def test_make_run_installs_only_what_the_run_needs(tmp_path):
    installs = _installed(_plan("run", tmp_path))
    assert "maturin" in installs  # the build installs pyproject's runtime dependencies
    for tool in TEST_ONLY:
        assert not re.search(rf'"{tool}[>=<\[]', installs), f"make run installs {tool}"


def test_make_test_installs_the_test_tools(tmp_path):
    installs = _installed(_plan("test", tmp_path))
    for tool in ("pytest", "hypothesis", "ruff"):
        assert f'"{tool}>=' in installs


def test_make_run_says_what_it_does_before_each_long_step(tmp_path):
    plan = _plan("run", tmp_path)
    build = next(i for i, line in enumerate(plan) if "maturin develop" in line)
    assert not re.search(r"\s-q(\s|$)", plan[build]), "the build must show cargo's progress"
    announced = [line for line in plan[:build] if line.startswith("echo") and "== make:" in line]
    assert any("Rust extension" in line for line in announced)
    assert any("runtime dependencies" in line for line in announced)
    # The runtime dependencies come with the build: pyproject.toml is their one list.
    assert not re.search(r"maturin develop.*(-q|--skip-install)", plan[build])
