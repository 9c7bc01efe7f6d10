"""Fuzz one harness of ``fuzz_harnesses`` with atheris:

    python fuzz/atheris/run.py NAME [libFuzzer flags] [corpus dirs]

The harness modules and packflow's Python package are instrumented for
coverage. The extension is the one installed in the environment, or, when
``PACKFLOW_FUZZ_CORE`` names a build of it compiled with sanitizer coverage
(``make fuzz`` makes one), that build: its coverage counters then register
with atheris's libFuzzer, which so is guided by the Rust code as well."""

import os
import sys

import atheris

NAMES = (
    "parse_lines parse_lines_to_ndarray dumps dumps_lines check_and_dump_lines flatten_dict "
    "flatten_records records_to_ndarray ensure_valid_output records_preprocessor"
).split()
HARNESS = None
NAME = ""


def load_instrumented_core(path: str) -> None:
    """Imports ``path`` as ``packflow._core`` before packflow imports its own."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("packflow._core", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["packflow._core"] = module
    spec.loader.exec_module(module)


def test_one_input(data: bytes) -> None:
    global HARNESS
    if HARNESS is None:
        # Loaded on the first input: atheris loads its libFuzzer in Fuzz(), and
        # an instrumented extension resolves its coverage hooks from it.
        core = os.environ.get("PACKFLOW_FUZZ_CORE")
        if core:
            load_instrumented_core(core)
        with atheris.instrument_imports(include=["fuzz_values", "fuzz_harnesses", "packflow"]):
            from fuzz_harnesses import HARNESSES
        assert sorted(NAMES) == sorted(HARNESSES), "run.py's list of names is out of date"
        HARNESS = HARNESSES[NAME]
    HARNESS(data)


def main() -> None:
    global NAME
    if len(sys.argv) < 2 or sys.argv[1] not in NAMES:
        sys.exit(f"usage: run.py NAME [libFuzzer args]; NAME one of {', '.join(NAMES)}")
    NAME = sys.argv.pop(1)
    atheris.Setup(sys.argv, test_one_input)
    # The libFuzzer that Fuzz() loads must export its coverage hooks.
    sys.setdlopenflags(sys.getdlopenflags() | os.RTLD_GLOBAL)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
