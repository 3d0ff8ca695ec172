# Tessera's two commands: `make quickstart` and `make test`. Both install
# what they need on a fresh machine (libtorch from the torch wheel, into a
# cache outside the clone), build the workspace and the plugins, then run.

SHELL := /bin/bash
TORCH_VERSION := 2.13.0
CACHE ?= $(HOME)/.cache/tessera
VENV := $(CACHE)/torch-$(TORCH_VERSION)
STAMP := $(VENV)/.tessera-stamp
# The authors' MNIST-1D generator (PyPI `mnist1d`, with numpy and scipy),
# which a test compares Tessera's `mnist1d` source with.
MNIST1D_VERSION := 0.0.2.post1
MNIST1D_STAMP := $(VENV)/.mnist1d-$(MNIST1D_VERSION)-stamp
# The folder of libtorch (include/ and lib/) inside the wheel.
LIBTORCH_DIR = $(firstword $(wildcard $(VENV)/lib/python3*/site-packages/torch))
export CARGO_TARGET_DIR ?= $(CACHE)/target
# The commit `tessera --version` and run folders name (crates/cli/build.rs).
export TESSERA_BUILD_COMMIT ?= $(shell git rev-parse --short=10 HEAD 2>/dev/null)
BIN := $(CARGO_TARGET_DIR)/release/tessera
CARGO := cargo
CARGO_ENV = LIBTORCH=$(LIBTORCH_DIR)

# tessera_runs (python/): the reader of run folders, with pandas, into the
# same Python environment; the tests also need pytest and TensorBoard (whose
# own reader checks the event files tessera_runs writes) and jsonschema
# (which checks results.json against the published schema).
PANDAS_VERSION := 3.1.1
PYTEST_VERSION := 9.2.0
TENSORBOARD_VERSION := 2.21.0
JSONSCHEMA_VERSION := 4.25.1
PANDAS_STAMP := $(VENV)/.pandas-$(PANDAS_VERSION)-stamp
# moto's S3-compatible server, which the object-storage tests start
# (testing/s3/start.sh) and read shards from.
MOTO_VERSION := 5.2.6
MOTO_STAMP := $(VENV)/.moto-$(MOTO_VERSION)-stamp
PYTEST_STAMP := $(VENV)/.pytest-$(PYTEST_VERSION)-tensorboard-$(TENSORBOARD_VERSION)-jsonschema-$(JSONSCHEMA_VERSION)-stamp

# mdbook for the book (docs/book/), installed into the cache like libtorch.
MDBOOK_VERSION := 0.5.4
MDBOOK := $(CACHE)/tools/bin/mdbook

.PHONY: quickstart test build libtorch mnist1d python bench lint fmt clean-cache figures fuzz docs

quickstart: build python
	$(BIN) run examples/quickstart.toml

# The tests start a local Slurm cluster (testing/slurm/start.sh: installs
# slurm-wlm and munge when missing, needs root) and a local S3-compatible
# server (testing/s3/start.sh: moto), and stop both when they end.
test: build $(MNIST1D_STAMP) $(MDBOOK) python $(PYTEST_STAMP) $(MOTO_STAMP)
	$(CARGO_ENV) TESSERA_VENV=$(VENV) testing/run-tests.sh

# Also tessera-graph, the host without libtorch (tessera-cli without its
# `torch` feature, in its own target folder): `tessera` hands graph runs to it.
GRAPH_TARGET := $(CACHE)/target-graph

build: $(STAMP)
	$(CARGO_ENV) $(CARGO) build --release --workspace
	CARGO_TARGET_DIR=$(GRAPH_TARGET) $(CARGO) build --release -p tessera-cli --no-default-features --bin tessera
	install -m 755 $(GRAPH_TARGET)/release/tessera $(CARGO_TARGET_DIR)/release/tessera-graph

libtorch: $(STAMP)

mnist1d: $(MNIST1D_STAMP)

# This checkout's tessera_runs, installed over any other checkout's (its
# tests import it from python/ either way).
python: $(PANDAS_STAMP)
	$(VENV)/bin/pip install --disable-pip-version-check -q --no-deps --no-build-isolation ./python
	@rm -rf python/build python/*.egg-info

$(PANDAS_STAMP): $(STAMP)
	$(VENV)/bin/pip install --disable-pip-version-check -q pandas==$(PANDAS_VERSION) "setuptools>=61"
	@touch $(PANDAS_STAMP)

$(PYTEST_STAMP): $(STAMP)
	$(VENV)/bin/pip install --disable-pip-version-check -q pytest==$(PYTEST_VERSION) tensorboard==$(TENSORBOARD_VERSION) jsonschema==$(JSONSCHEMA_VERSION)
	@touch $(PYTEST_STAMP)

$(MOTO_STAMP): $(STAMP)
	$(VENV)/bin/pip install --disable-pip-version-check -q "moto[server]==$(MOTO_VERSION)"
	@test -x $(VENV)/bin/moto_server || { echo "moto's server did not install into $(VENV)"; exit 1; }
	@touch $(MOTO_STAMP)

$(MNIST1D_STAMP): $(STAMP)
	$(VENV)/bin/pip install --disable-pip-version-check -q mnist1d==$(MNIST1D_VERSION)
	@$(VENV)/bin/python -c "import mnist1d.data" || { echo "the mnist1d package did not install into $(VENV)"; exit 1; }
	@touch $(MNIST1D_STAMP)

# The torch wheel with its dependencies (the book's "libtorch" page): the
# same libtorch for Rust, and `import torch` for the PyTorch comparisons.
$(STAMP):
	@command -v python3 >/dev/null || { echo "python3 is needed to install libtorch (Debian: apt-get install python3 python3-venv)"; exit 1; }
	@mkdir -p $(CACHE)
	@if [ ! -x $(VENV)/bin/pip ]; then \
	  python3 -m venv $(VENV) || { echo "python3 -m venv failed: install python3-venv (Debian: apt-get install python3-venv)"; exit 1; }; \
	fi
	$(VENV)/bin/pip install --disable-pip-version-check -q torch==$(TORCH_VERSION)
	@test -d "$$(echo $(VENV)/lib/python3*/site-packages/torch/lib)" || { echo "torch $(TORCH_VERSION) did not install into $(VENV)"; exit 1; }
	@echo "torch $(TORCH_VERSION) full" > $(STAMP)

# Rerun the examples that have expected figures (or EXAMPLES="quickstart ...")
# and compare every figure exactly; BLESS=1 writes the expected files instead.
figures: build
	BIN=$(BIN) scripts/figures $(EXAMPLES)

# The book: the settings reference regenerated from the code, then mdbook
# into docs/book/build/ (make test checks both are current and build).
docs: $(STAMP) $(MDBOOK)
	BLESS=1 $(CARGO_ENV) $(CARGO) test --release -p tessera-config --lib -q the_books_settings_reference_is_current
	$(MDBOOK) build docs/book

$(MDBOOK):
	$(CARGO) install --locked --root $(CACHE)/tools mdbook --version $(MDBOOK_VERSION) --no-default-features --features search

# Every reader of user files under cargo-fuzz, FUZZ_SECONDS (300) a target
# (FUZZ_TARGETS to choose); installs cargo-fuzz into the cache.
fuzz:
	CACHE=$(CACHE) testing/fuzz.sh

bench: build
	$(CARGO_ENV) $(CARGO) bench --workspace

lint: $(STAMP)
	testing/layers.py
	testing/long-functions.py
	$(CARGO) fmt --all --check
	$(CARGO_ENV) $(CARGO) clippy --release --workspace --all-targets -- -D warnings
	CARGO_TARGET_DIR=$(GRAPH_TARGET) $(CARGO) clippy --release -p tessera-engine -p tessera-cli --no-default-features --lib --bins -- -D warnings
	cd fuzz && $(CARGO) fmt --check && CARGO_TARGET_DIR=$(CACHE)/target-fuzz-check $(CARGO) clippy --lib --bins -- -D warnings

fmt:
	$(CARGO) fmt --all

clean-cache:
	rm -rf $(CACHE)
