# The documented commands. `make dev` and `make test` need only python3 (3.11+) and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: dev test lint typecheck format clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

dev: $(STAMP) ## run zapflow with embedded Temporal, Postgres and Redis
	$(BIN)/zapflow dev

test: $(STAMP) ## run the whole test suite (starts its own embedded stack)
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check zapflow tests migrations
	$(BIN)/ruff format --check zapflow tests migrations

typecheck: $(STAMP)
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix zapflow tests migrations
	$(BIN)/ruff format zapflow tests migrations

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
