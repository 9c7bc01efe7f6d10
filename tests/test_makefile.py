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


def _plan(target: str, tmp_path: Path, *assignments: str) -> list[str]:
    done = subprocess.run(
        [
            "make",
            "-n",
            "--no-print-directory",
            target,
            f"VENV={tmp_path / 'fresh-venv'}",
            *assignments,
        ],
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


def test_mlserver_lives_in_its_own_venv_for_bench_v2_only(tmp_path):
    """MLServer (pinned) goes into a virtualenv of its own, only for `make
    bench-v2`: neither `make test` nor the project's venv gets it or its
    dependencies."""
    own = tmp_path / "fresh-mlserver"
    bench = _plan("bench-v2", tmp_path, f"MLSERVER_VENV={own}")
    mlserver = [line for line in bench if '"mlserver==' in line]
    assert mlserver, "make bench-v2 does not install MLServer"
    assert all(line.startswith(f"{own}/bin/python -m pip install") for line in mlserver)
    assert re.search(r'"mlserver==\d+\.\d+\.\d+"', mlserver[0]), "MLServer is not pinned"
    assert "benches/v2/run.py" in " ".join(bench)
    for target in ("test", "run"):
        plan = " ".join(_plan(target, tmp_path, f"MLSERVER_VENV={own}"))
        # (tmp_path's own name holds this test's, "mlserver" included.)
        for word in ('"mlserver', str(own), "benches/v2/run.py"):
            assert word not in plan, f"make {target} plans {word}"
