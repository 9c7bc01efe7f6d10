# Everything a new machine needs is installed from here: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
REF_VENV := .venv-reference
REF_VERSION := 0.4.1
PY_LIBDIR := $(shell $(PYTHON) -c "import sysconfig; print(sysconfig.get_config_var('LIBDIR') or '')")
RUST_SRC := $(shell find src -name '*.rs') Cargo.toml pyproject.toml

.PHONY: help venv reference build-dev build-prod run test test-rust test-python bench lint fmt clean

help:
	@echo "make run      set up and run the example job"
	@echo "make test     set up and run every test (Rust, Python, differential, bench smoke)"
	@echo "make bench    benchmarks against the reference and peers, table in docs/performance.md"
	@echo "make lint     cargo fmt --check, cargo clippy, ruff"

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "maturin>=1.7,<2" "pydantic>=2.5,<3" "numpy>=1.24" "click>=8.1" \
		"pyyaml>=6" "pathspec>=0.11" "pytest>=8" "hypothesis>=6.100" "pytest-benchmark>=4" "ruff>=0.6" \
		"orjson>=3.9" "msgspec>=0.18" "pandas>=2" \
		"uvicorn>=0.30" "uvloop>=0.19" "httptools>=0.6" "httpx>=0.27" "prometheus_client>=0.20"
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
	PACKFLOW_REFERENCE_PYTHON=$(abspath $(REF_VENV))/bin/python $(PY) -m pytest -q tests
	$(PY) -m pytest -q benches --benchmark-disable -p no:cacheprovider

test: venv test-rust test-python

# Peers live in .venv only for this target (never needed by `make test`).
bench: build-prod reference
	$(PY) -m pip install -q "orjson>=3.9" "msgspec>=0.18" "pandas>=2" "threadpoolctl>=3"
	$(PY) benches/run.py --reference-python $(REF_VENV)/bin/python

# `packflow serve` against LitServe and FastAPI under wrk; table in docs/serving.md.
bench-serve: build-prod
	$(PY) -m pip install -q "litserve>=0.2" "fastapi>=0.110"
	$(PY) benches/serve/run.py

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
	rm -rf target $(VENV) $(REF_VENV)
