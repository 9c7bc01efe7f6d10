"""Fuzz one harness of ``fuzz_harnesses`` with atheris:

    python fuzz/atheris/run.py NAME [libFuzzer flags] [corpus dirs]

The harness modules and packflow's Python package are instrumented for
coverage; the extension module is the build in the environment (see
docs/fuzzing.md)."""

import sys

import atheris

with atheris.instrument_imports(include=["fuzz_values", "fuzz_harnesses", "oracle", "packflow"]):
    from fuzz_harnesses import HARNESSES


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in HARNESSES:
        sys.exit(f"usage: run.py NAME [libFuzzer args]; NAME one of {', '.join(HARNESSES)}")
    harness = HARNESSES[sys.argv.pop(1)]
    atheris.Setup(sys.argv, harness)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
