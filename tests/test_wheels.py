"""The wheels in dist/ work where no Rust toolchain is: each is installed in a fresh
virtualenv of its own Python, with cargo and rustc off PATH and binary packages
only, then runs the README example and `packflow run` on the example project.

Run by `make wheel-smoke` (which builds them first); skipped while dist/ holds no
wheel."""

from __future__ import annotations

import ast
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DIST = REPO / "dist"
WHEELS = sorted(DIST.glob("packflow-*.whl"))
EXAMPLE = REPO / "examples" / "firewall-anomaly"

pytestmark = [
    pytest.mark.wheels,
    pytest.mark.skipif(not WHEELS, reason="no wheels in dist/ (run `make wheels`)"),
]


def wheel_python(wheel: Path) -> str | None:
    """The interpreter a wheel is for, found as the Makefile finds it: the newest
    pyenv install of that version, else python3.X on PATH."""
    tag = wheel.name.split("-")[2]  # "cp312"
    version = f"{tag[2]}.{tag[3:]}"
    root = os.environ.get("PYENV_ROOT")
    if not root and shutil.which("pyenv"):
        done = subprocess.run(["pyenv", "root"], capture_output=True, text=True)
        root = done.stdout.strip() if done.returncode == 0 else None
    if root:
        found = sorted(Path(root).glob(f"versions/{version}.*/bin/python{version}"))
        if found:
            return str(found[-1])
    return shutil.which(f"python{version}")


def path_without_rust() -> str:
    """PATH less every directory holding cargo or rustc."""
    keep = [
        d
        for d in os.environ.get("PATH", "").split(os.pathsep)
        if d and not any((Path(d) / tool).exists() for tool in ("cargo", "rustc"))
    ]
    return os.pathsep.join(keep)


def events(n: int, malformed_at: int) -> bytes:
    """Firewall events with the example project's nine features, one line broken."""
    rng = random.Random(0)
    lines = []
    for i in range(n):
        if i == malformed_at:
            lines.append(b'{"ts": 1700000000, "src": ')
            continue
        event = {
            "ts": 1_700_000_000 + i,
            "src": {
                "ip": f"10.0.{i // 256 % 256}.{i % 256}",
                "port": rng.randint(1024, 65535),
                "geo": {"lat": rng.uniform(-90, 90), "lon": rng.uniform(-180, 180)},
            },
            "dst": {"ip": "192.168.1.1", "port": rng.choice([22, 53, 443, 8080])},
            "proto": "tcp",
            "bytes": {"in": rng.randint(0, 300_000), "out": rng.randint(0, 700_000)},
            "rule": {"id": rng.randint(0, 99), "name": "r"},
            "score": rng.random(),
        }
        lines.append(json.dumps(event).encode())
    return b"\n".join(lines) + b"\n"


@pytest.fixture(params=WHEELS, ids=lambda w: w.name.split("-")[2])
def installed(request, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A fresh virtualenv with the wheel installed: its bin directory and the
    environment (no Rust on PATH) to run it in."""
    wheel: Path = request.param
    python = wheel_python(wheel)
    if python is None:
        pytest.skip(f"no interpreter found for {wheel.name}")
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = os.pathsep.join([str(venv / "bin"), path_without_rust()])
    assert shutil.which("cargo", path=env["PATH"]) is None
    assert shutil.which("rustc", path=env["PATH"]) is None
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--only-binary=:all:"]
    done = subprocess.run([*pip, str(wheel)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return venv / "bin", env


def run(cmd: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{cmd}\n{done.stdout}\n{done.stderr}"
    return done


def test_the_installed_wheel_is_what_runs(installed, tmp_path):
    bin_dir, env = installed
    code = "import packflow._core as c; print(c.__file__)"
    done = run([str(bin_dir / "python"), "-c", code], env, tmp_path)
    assert Path(done.stdout.strip()).is_relative_to(bin_dir.parent)


def test_readme_example(installed, tmp_path):
    bin_dir, env = installed
    (example,) = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.S)[:1]
    done = run([str(bin_dir / "python"), "-c", example], env, tmp_path)
    first, second = done.stdout.splitlines()[:2]
    # What tests/test_readme.py checks of the same example: two sessions, two answers.
    quiet, noisy = ast.literal_eval(first)
    assert quiet["alert"] is False and noisy["alert"] is True
    assert second.startswith("batch_size=2")


def test_packflow_run_on_the_example_project(installed, tmp_path):
    bin_dir, env = installed
    project = tmp_path / "firewall-anomaly"
    shutil.copytree(EXAMPLE, project)
    (tmp_path / "events.jsonl").write_bytes(events(1000, malformed_at=500))
    run(
        [
            str(bin_dir / "packflow"),
            "run",
            str(project),
            "-i",
            "events.jsonl",
            "-o",
            "scores.jsonl",
            "--errors",
            "errors.jsonl",
        ],
        env,
        tmp_path,
    )
    scores = [json.loads(line) for line in (tmp_path / "scores.jsonl").read_text().splitlines()]
    errors = (tmp_path / "errors.jsonl").read_text().splitlines()
    assert len(scores) == 999 and len(errors) == 1
    assert all(0.0 <= row["anomaly_score"] <= 1.0 for row in scores)


def test_wheels_hold_the_stub_and_the_data():
    for wheel in WHEELS:
        names = zipfile.ZipFile(wheel).namelist()
        for wanted in ("packflow/_core.pyi", "packflow/py.typed"):
            assert wanted in names, (wheel.name, wanted)
        assert any(n.startswith("packflow/_core.") and n.endswith(".so") for n in names)
        # `packflow create` writes the template's .gitignore from this file
        assert "packflow/project_templates/minimal/gitignore" in names


def test_sdist_holds_the_rust_sources():
    (sdist,) = DIST.glob("packflow-*.tar.gz")
    names = {n.split("/", 1)[1] for n in tarfile.open(sdist).getnames() if "/" in n}
    for wanted in (
        "Cargo.toml",
        "Cargo.lock",
        "build.rs",
        "src/lib.rs",
        "src/ffi.rs",
        "src/build_select.rs",
    ):
        assert wanted in names, wanted


def test_wheels_are_for_glibc_2_17_and_newer():
    # manylinux2014: installable on RHEL 7+, Ubuntu 14.04+, Debian 8+ (x86_64).
    for wheel in WHEELS:
        platforms = wheel.name.removesuffix(".whl").split("-")[-1].split(".")
        assert "manylinux_2_17_x86_64" in platforms, wheel.name
        meta = zipfile.ZipFile(wheel).read("packflow-0.5.0.dist-info/WHEEL").decode()
        python, abi = wheel.name.split("-")[2:4]
        assert f"Tag: {python}-{abi}-manylinux_2_17_x86_64" in meta


def test_auditwheel_finds_no_symbol_newer_than_glibc_2_17():
    auditwheel = Path(sys.executable).with_name("auditwheel")
    if not auditwheel.exists():
        pytest.skip("auditwheel is not installed here (`make wheels` installs it into .venv)")
    for wheel in WHEELS:
        done = subprocess.run([str(auditwheel), "show", str(wheel)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert 'consistent with the following platform tag:\n"manylinux_2_17_x86_64"' in done.stdout


def test_one_wheel_per_interpreter_running_this_test():
    tag = f"cp{sys.version_info[0]}{sys.version_info[1]}"
    assert any(w.name.split("-")[2] == tag for w in WHEELS)
