"""Run cases through the reference ``packflow==0.4.1`` in its own virtualenv.

Both packages import as ``packflow``, so the reference runs in a subprocess: the
cases go in pickled on stdin, the outcomes come back pickled on stdout. An
outcome is ``("ok", value)`` or ``("err", exception type name, message)``.

The interpreter is ``$PACKFLOW_REFERENCE_PYTHON`` (set by ``make test``), else
``.venv-reference/bin/python`` in the repository. When the variable is set the
reference must be there; otherwise tests that need it are skipped.
"""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]

_RUNNER = r"""
import pickle, sys, importlib, logging
try:
    from loguru import logger
    logger.remove()
except Exception:
    pass
module_name, func_name, cases = pickle.load(sys.stdin.buffer)
target = importlib.import_module(module_name)
for part in func_name.split("."):
    target = getattr(target, part)
out = []
for args, kwargs in cases:
    try:
        out.append(("ok", target(*args, **kwargs)))
    except BaseException as exc:
        out.append(("err", type(exc).__name__, str(exc)))
sys.stdout.buffer.write(pickle.dumps(out))
"""


def reference_python() -> Path | None:
    env = os.environ.get("PACKFLOW_REFERENCE_PYTHON")
    if env:
        path = Path(env)
        if not path.exists():
            raise RuntimeError(f"PACKFLOW_REFERENCE_PYTHON={env} does not exist")
        return path
    default = REPO / ".venv-reference" / "bin" / "python"
    return default if default.exists() else None


def reference_env() -> dict[str, str]:
    """The environment for the reference's interpreter: this one's, without
    ``PYTHONPATH`` (which, set to run this package from a checkout, would make
    the reference import this package instead of 0.4.1) and quiet."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return {**env, "PACKFLOW_LOG_LEVEL": "ERROR"}


def require_reference() -> Path:
    path = reference_python()
    if path is None:
        pytest.skip("reference packflow==0.4.1 not installed (run `make reference`)")
    return path


def call_reference(
    module: str, func: str, cases: list[tuple[tuple, dict]], timeout: float = 300
) -> list[tuple]:
    """Call ``module.func(*args, **kwargs)`` for each case in the reference."""
    python = require_reference()
    proc = subprocess.run(
        [str(python), "-c", _RUNNER],
        input=pickle.dumps((module, func, cases)),
        capture_output=True,
        timeout=timeout,
        env=reference_env(),
    )
    if proc.returncode != 0:
        raise RuntimeError(f"reference run failed:\n{proc.stderr.decode(errors='replace')}")
    return pickle.loads(proc.stdout)


def run_reference_script(script: str, payload: Any = None, timeout: float = 300) -> Any:
    """Run ``script`` in the reference; it reads ``payload`` with
    ``pickle.load(sys.stdin.buffer)`` and sets ``result``, which is returned."""
    python = require_reference()
    wrapper = (
        "import pickle, sys\n"
        "try:\n    from loguru import logger; logger.remove()\nexcept Exception:\n    pass\n"
        "payload = pickle.load(sys.stdin.buffer)\n"
        f"{script}\n"
        "sys.stdout.buffer.write(pickle.dumps(result))\n"
    )
    proc = subprocess.run(
        [str(python), "-c", wrapper],
        input=pickle.dumps(payload),
        capture_output=True,
        timeout=timeout,
        env=reference_env(),
    )
    if proc.returncode != 0:
        raise RuntimeError(f"reference script failed:\n{proc.stderr.decode(errors='replace')}")
    return pickle.loads(proc.stdout)


def run_script_both(
    script: str, function: str, cases: list[Any], tmp_path: Path
) -> list[tuple[Any, Any]]:
    """``(reference outcome, our outcome)`` per case of ``function(cases, work)``,
    a function ``script`` defines, run in the reference and then here. Both run in
    the same directory ``work`` (emptied in between), so paths in messages match."""
    work = tmp_path / "work"
    work.mkdir()
    theirs = run_reference_script(
        f"{script}\nresult = {function}(payload[0], payload[1])\n", (cases, str(work))
    )
    shutil.rmtree(work)
    work.mkdir()
    namespace: dict[str, Any] = {"__name__": f"packflow_compat_{function}"}
    exec(compile(script, "<script>", "exec"), namespace)
    ours = namespace[function](cases, str(work))
    return list(zip(theirs, ours))


def call_ours(target: Any, cases: list[tuple[tuple, dict]]) -> list[tuple]:
    """The same outcome shape for this package."""
    out = []
    for args, kwargs in cases:
        try:
            out.append(("ok", target(*args, **kwargs)))
        except BaseException as exc:  # noqa: BLE001 - compared, not swallowed
            out.append(("err", type(exc).__name__, str(exc)))
    return out


__all__ = [
    "call_ours",
    "call_reference",
    "reference_env",
    "reference_python",
    "require_reference",
    "sys",
]
