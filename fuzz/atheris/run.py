"""Fuzz one harness of ``fuzz_harnesses`` with atheris:

    python fuzz/atheris/run.py NAME [libFuzzer flags] [corpus dirs]

The harness modules and packflow's Python package are instrumented for
coverage. The extension is the one installed in the environment, or, when
``PACKFLOW_FUZZ_CORE`` names a build of it compiled with sanitizer coverage
(``make fuzz`` makes one), that build: its coverage counters then register
with atheris's libFuzzer, which guides the fuzzing by the Rust code too."""

import os
import sys

import atheris

HARNESS = None


def test_one_input(data: bytes) -> None:
    HARNESS(data)


def load_instrumented_core(path: str) -> None:
    """Imports ``path`` as ``packflow._core`` before packflow imports its own."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("packflow._core", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["packflow._core"] = module
    spec.loader.exec_module(module)


def main() -> None:
    global HARNESS
    names = (
        "parse_lines parse_lines_to_ndarray dumps dumps_lines check_and_dump_lines flatten_dict "
        "flatten_records records_to_ndarray ensure_valid_output records_preprocessor"
    ).split()
    if len(sys.argv) < 2 or sys.argv[1] not in names:
        sys.exit(f"usage: run.py NAME [libFuzzer args]; NAME one of {', '.join(names)}")
    name = sys.argv.pop(1)
    # Setup loads atheris's libFuzzer with its symbols global, so the
    # instrumented extension, loaded after it, finds the coverage hooks.
    atheris.Setup(sys.argv, test_one_input)
    core = os.environ.get("PACKFLOW_FUZZ_CORE")
    if core:
        load_instrumented_core(core)
    with atheris.instrument_imports(
        include=["fuzz_values", "fuzz_harnesses", "oracle", "packflow"]
    ):
        from fuzz_harnesses import HARNESSES
    assert sorted(names) == sorted(HARNESSES), "run.py's list of names is out of date"
    HARNESS = HARNESSES[name]
    atheris.Fuzz()


if __name__ == "__main__":
    main()
