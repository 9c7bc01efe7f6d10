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


DOC = REPO / "docs" / "performance.md"
BEGIN, END = "<!-- builds: begin -->", "<!-- builds: end -->"


def table(best: dict[str, dict[str, float]], names: list[str], reference: bool) -> str:
    before, after = names
    head = f"| case | {before} | {after} | {after} / {before} |"
    rule = "|---|---|---|---|"
    if reference:
        head += f" reference | reference / {after} |"
        rule += "---|---|"
    lines = [head, rule]
    for case in sorted(best["after"]):
        if case not in best["before"]:
            continue
        b, a = best["before"][case], best["after"][case]
        line = f"| {case} | {b * 1e3:.4g} ms | {a * 1e3:.4g} ms | {a / b:.3f} |"
        if reference:
            r = best["reference"].get(case)
            line += f" {r * 1e3:.4g} ms | {r / a:.1f}x |" if r else " not run | |"
        lines.append(line)
    return "\n".join(lines)


def write_docs(text: str, python: str) -> None:
    """Puts the table in docs/performance.md between its markers (benches/run.py
    keeps that section when it rewrites the file)."""
    section = f"""{BEGIN}
## The portable build beside the fast one

The extension built with the `portable` cargo feature (the public C API only;
docs/compatibility.md) against the default fast build, on the same benchmark
files, alternating, in one run, on {python}: `make bench-portable
PORTABLE_BENCH=X.Y`, that is `benches/compare_builds.py FAST PORTABLE --names
fast,portable --reference REFERENCE --write-docs`. Best median per case over
the rounds; the reference (packflow 0.4.1, in its own virtualenv) ran once.
The portable build's budget: within 2x of the fast one on every case and ahead
of the reference (docs/compatibility.md says what the differences are made of).

{text}
{END}"""
    doc = DOC.read_text()
    start, stop = doc.find(BEGIN), doc.find(END)
    if start >= 0 and stop > start:
        doc = doc[:start] + section + doc[stop + len(END) :]
    else:
        doc = doc.rstrip("\n") + "\n\n" + section + "\n"
    DOC.write_text(doc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", help="python of the earlier build")
    parser.add_argument("after", help="python of the build under test")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--min-rounds", type=int, default=20)
    parser.add_argument("-k", dest="only", help="only these cases (a pytest -k expression)")
    parser.add_argument("--names", default="before,after", help="the two builds' column names")
    parser.add_argument("--reference", help="python of the reference: its medians too (once)")
    parser.add_argument("--write-docs", action="store_true", help="the table into performance.md")
    args = parser.parse_args()
    names = args.names.split(",")
    best: dict[str, dict[str, float]] = {"before": {}, "after": {}, "reference": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for who in ("before", "after"):
                path = Path(tmp) / f"{who}-{r}.json"
                medians = run_once(getattr(args, who), path, args.min_rounds, args.only)
                for case, median in medians.items():
                    best[who][case] = min(best[who].get(case, median), median)
                print(f"round {r + 1}: {who} done", file=sys.stderr)
        if args.reference:
            # Its slow cases take seconds a call: a few rounds are enough.
            path = Path(tmp) / "reference.json"
            best["reference"] = run_once(args.reference, path, 3, args.only)
            print("reference done", file=sys.stderr)
    text = table(best, names, bool(args.reference))
    print(text)
    if args.write_docs:
        python = subprocess.run(
            [args.after, "-c", "import platform; print(platform.python_version())"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        write_docs(text, f"CPython {python}")


if __name__ == "__main__":
    main()
