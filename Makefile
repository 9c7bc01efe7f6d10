# Everything a new machine needs is installed from here: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
REF_VENV := .venv-reference
REF_VERSION := 0.4.1
PY_LIBDIR := $(shell $(PYTHON) -c "import sysconfig; print(sysconfig.get_config_var('LIBDIR') or '')")
RUST_SRC := $(shell find src -name '*.rs') Cargo.toml pyproject.toml

.PHONY: help venv reference build-dev build-prod run test test-rust test-python bench lint fmt clean \
	test-matrix wheels wheel-smoke

help:
	@echo "make run      set up and run the example job"
	@echo "make test     set up and run every test (Rust, Python, differential, bench smoke)"
	@echo "make bench    benchmarks against the reference and peers, table in docs/performance.md"
	@echo "make lint     cargo fmt --check, cargo clippy, ruff"
	@echo "make test-matrix  build and run the matrix tests on every other supported Python found"
	@echo "make wheels   release wheels (one per Python found) and an sdist in dist/"
	@echo "make wheel-smoke  make wheels, then install each in a fresh venv and run the smoke"

# What a development virtualenv holds, on every Python version.
DEV_DEPS := "maturin>=1.7,<2" "pydantic>=2.5,<3" "numpy>=1.24" "click>=8.1" \
	"pyyaml>=6" "pathspec>=0.11" "pytest>=8" "hypothesis>=6.100" "pytest-benchmark>=4" "ruff>=0.6" \
	"orjson>=3.9" "msgspec>=0.18" "pandas>=2"

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(DEV_DEPS)
	touch $@

venv: $(VENV)/.installed

# The reference implementation, in its own virtualenv: the oracle of the differential tests.
$(REF_VENV)/.installed:
	$(PYTHON) -m venv $(REF_VENV)
	$(REF_VENV)/bin/python -m pip install -q --upgrade pip
	$(REF_VENV)/bin/python -m pip install -q "packflow==$(REF_VERSION)" pytest pytest-benchmark
	touch $@

reference: $(REF_VENV)/.installed

$(VENV)/.build-release: $(VENV)/.installed $(RUST_SRC)
	VIRTUAL_ENV=$(abspath $(VENV)) PATH=$(abspath $(VENV))/bin:$$PATH $(VENV)/bin/maturin develop --release -q
	rm -f $(VENV)/.build-dev
	touch $@

build-prod: $(VENV)/.build-release

build-dev: $(VENV)/.installed
	VIRTUAL_ENV=$(abspath $(VENV)) PATH=$(abspath $(VENV))/bin:$$PATH $(VENV)/bin/maturin develop -q
	rm -f $(VENV)/.build-release

# The main job: a generated stream of 100,000 firewall events (one in 5,000
# malformed) through the example project, outputs and errors under out/.
run: build-prod
	mkdir -p out
	$(PY) -m packflow.testing 100000 --malformed-every 5000 -o out/events.jsonl
	$(VENV)/bin/packflow run examples/firewall-anomaly -i out/events.jsonl -o out/scores.jsonl \
		--errors out/errors.jsonl --stats out/stats.json
	@echo "first outputs (out/scores.jsonl):"; head -n 3 out/scores.jsonl
	@echo "errors file (out/errors.jsonl): $$(wc -l < out/errors.jsonl) lines"; head -n 1 out/errors.jsonl

# The embedded interpreter of the test binary imports numpy from the venv.
test-rust: venv
	LD_LIBRARY_PATH=$(PY_LIBDIR):$$LD_LIBRARY_PATH PYO3_PYTHON=$(PYTHON) \
		PYTHONPATH=$$($(PY) -c "import sysconfig; print(sysconfig.get_paths()['purelib'])") \
		cargo test --quiet

test-python: build-prod reference
	PACKFLOW_REFERENCE_PYTHON=$(abspath $(REF_VENV))/bin/python $(PY) -m pytest -q -m "not wheels" tests
	$(PY) -m pytest -q benches --benchmark-disable -p no:cacheprovider

test: venv test-rust test-python

# --- every supported Python: the test matrix and the wheels --------------------
# CPython minor versions this package supports (pyproject: requires-python).
SUPPORTED := 3.10 3.11 3.12 3.13
PYENV_ROOT ?= $(shell pyenv root 2>/dev/null)
DEFAULT_MINOR := $(shell $(PYTHON) -c "import sys; print('%d.%d' % sys.version_info[:2])")
# The interpreter of CPython $(1): the newest pyenv install of it, else python$(1) on PATH.
find_python = $(or $(lastword $(sort $(wildcard $(PYENV_ROOT)/versions/$(1).*/bin/python$(1)))),$(shell command -v python$(1) 2>/dev/null))
# The versions `make test` does not cover (it runs on $(PYTHON)).
MATRIX := $(filter-out $(DEFAULT_MINOR),$(SUPPORTED))
# A fast subset per version: the differential tests (against the reference
# packflow) and the hostile-input tests, selected by markers (tests/conftest.py),
# less the property-based (hypothesis) ones, which `make test` runs at length.
# MATRIX_TESTS=tests runs everything.
MATRIX_TESTS ?= -m "(differential or hostile) and not hypothesis" tests
# Each version builds in its own target directory, so switching does not rebuild.
matrix_env = CARGO_TARGET_DIR=$(abspath target/py$(1)) VIRTUAL_ENV=$(abspath .venv-$(1)) \
	PATH=$(abspath .venv-$(1))/bin:$$PATH

# Kept between runs (make would delete them as intermediate files).
.PRECIOUS: .venv-%/.installed .venv-%/.build-release

.venv-%/.installed: pyproject.toml
	$(call find_python,$*) -m venv .venv-$*
	.venv-$*/bin/python -m pip install -q --upgrade pip
	.venv-$*/bin/python -m pip install -q $(DEV_DEPS)
	touch $@

.venv-%/.build-release: .venv-%/.installed $(RUST_SRC)
	$(call matrix_env,$*) .venv-$*/bin/maturin develop --release -q
	touch $@

# One version: build into .venv-X.Y, then the subset (MATRIX_TESTS=tests: all of it).
test-python-%: .venv-%/.build-release reference
	PACKFLOW_REFERENCE_PYTHON=$(abspath $(REF_VENV))/bin/python \
		.venv-$*/bin/python -m pytest -q -p no:cacheprovider $(MATRIX_TESTS)

test-matrix:
	@for v in $(MATRIX); do \
		if [ -z "$$($(MAKE) -s --no-print-directory python-path-$$v)" ]; then \
			echo "test-matrix: CPython $$v not found (pyenv root or python$$v on PATH): skipped"; \
			continue; \
		fi; \
		echo "== test-matrix: CPython $$v"; \
		$(MAKE) --no-print-directory test-python-$$v || exit 1; \
	done

python-path-%:
	@echo $(call find_python,$*)

# One release wheel per supported Python found, and an sdist. Each builds in the
# target directory its `maturin develop` used, so a built version is not rebuilt.
wheels: venv
	rm -rf dist
	@for v in $(SUPPORTED); do \
		py="$$($(MAKE) -s --no-print-directory python-path-$$v)"; \
		if [ -z "$$py" ]; then echo "wheels: CPython $$v not found: skipped"; continue; fi; \
		echo "== wheel for CPython $$v ($$py)"; \
		target=$(abspath target)/py$$v; [ "$$v" = "$(DEFAULT_MINOR)" ] && target=$(abspath target); \
		CARGO_TARGET_DIR=$$target $(VENV)/bin/maturin build --release -q -i "$$py" -o dist || exit 1; \
	done
	$(VENV)/bin/maturin sdist -o dist
	@ls dist

# Each wheel installed in a fresh virtualenv with no Rust toolchain on PATH.
wheel-smoke: wheels
	$(PY) -m pytest -q -p no:cacheprovider -m wheels tests/test_wheels.py

# Peers live in .venv only for this target (never needed by `make test`).
bench: build-prod reference
	$(PY) -m pip install -q "orjson>=3.9" "msgspec>=0.18" "pandas>=2" "threadpoolctl>=3"
	$(PY) benches/run.py --reference-python $(REF_VENV)/bin/python

lint: venv
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	$(VENV)/bin/ruff check python tests benches examples
	$(VENV)/bin/ruff format --check python tests benches examples

fmt: venv
	cargo fmt
	$(VENV)/bin/ruff format python tests benches examples
	$(VENV)/bin/ruff check --fix python tests benches examples

clean:
	rm -rf target dist $(VENV) $(REF_VENV) $(foreach v,$(SUPPORTED),.venv-$(v))
