"""Two builds of packflow on the same benchmark files, alternating, in one run:
did a change make any workload slower?

Each PYTHON is an interpreter with a build of this package installed (for
example the release build of an earlier commit in its own virtualenv, and
``.venv/bin/python``). Only packflow's own cases run (no reference, no peers,
no 1M-row batches); every file runs ``--rounds`` times per build, the builds
interleaved so that drift of the machine hits both. Prints a Markdown table:
the best median of each case per build, and after/before.

    git worktree add ../before <commit> && cd ../before
    python3 -m venv .venv && .venv/bin/pip install maturin pydantic numpy click \\
        pyyaml pathspec pytest pytest-benchmark && .venv/bin/maturin develop --release
    cd - && .venv/bin/python benches/compare_builds.py ../before/.venv/bin/python \\
        .venv/bin/python
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from run import bench_env

REPO = Path(__file__).resolve().parents[1]
SELECT = "packflow and not 1M and not reference"


def run_once(python: str, json_path: Path, min_rounds: int, only: str | None) -> dict[str, float]:
    select = f"({SELECT}) and ({only})" if only else SELECT
    cmd = [
        python, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(REPO / "benches"),
        "-k", select, f"--benchmark-min-rounds={min_rounds}", f"--benchmark-json={json_path}",
    ]  # fmt: skip
    subprocess.run(cmd, check=True, env=bench_env(), cwd=REPO, stdout=subprocess.DEVNULL)
    data = json.loads(json_path.read_text())
    return {b["fullname"].split("::")[-1]: b["stats"]["median"] for b in data["benchmarks"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", help="python of the earlier build")
    parser.add_argument("after", help="python of the build under test")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--min-rounds", type=int, default=20)
    parser.add_argument("-k", dest="only", help="only these cases (a pytest -k expression)")
    args = parser.parse_args()
    best: dict[str, dict[str, float]] = {"before": {}, "after": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for who in ("before", "after"):
                path = Path(tmp) / f"{who}-{r}.json"
                medians = run_once(getattr(args, who), path, args.min_rounds, args.only)
                for case, median in medians.items():
                    best[who][case] = min(best[who].get(case, median), median)
                print(f"round {r + 1}: {who} done", file=sys.stderr)
    print("| case | before | after | after / before |")
    print("|---|---|---|---|")
    for case in sorted(best["after"]):
        if case in best["before"]:
            b, a = best["before"][case], best["after"][case]
            print(f"| {case} | {b * 1e3:.4g} ms | {a * 1e3:.4g} ms | {a / b:.3f} |")


if __name__ == "__main__":
    main()
