# The two commands a newcomer needs: `make run` and `make test`. Both set everything up.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install install-dev run index test lint deploy-check bench clean

PIP := $(BIN)/pip install --quiet --disable-pip-version-check -c requirements.lock

# requirements.lock pins every transitive dependency; pyproject.toml says what we depend on.
# Running the service needs only the package; the tests also need the tools, the LangChain
# baseline and llama.cpp (built from source the first time, about 10 minutes).
$(BIN)/.installed-run: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PIP) -e .
	touch $@

$(BIN)/.installed-dev: $(BIN)/.installed-run
	$(PIP) -e '.[dev,bench,llamacpp]'
	touch $@

install: $(BIN)/.installed-run

install-dev: $(BIN)/.installed-dev

# Incremental: a no-op when the corpus has not changed since the last run.
index: install
	$(BIN)/rag reindex

run: index
	$(BIN)/rag serve

test: lint
	$(BIN)/python -m pytest

lint: install-dev deploy-check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# No Docker engine needed: hadolint lints the Dockerfile, Compose v1 validates the compose file.
deploy-check: install-dev
	$(BIN)/hadolint Dockerfile
	@command -v docker-compose >/dev/null || { echo "docker-compose is missing:" \
		"apt-get install --no-install-recommends docker-compose"; exit 1; }
	docker-compose config -q
	docker-compose --profile llm config -q

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
