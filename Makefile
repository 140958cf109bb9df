# The documented commands. `make dev` and `make test` need only python3 (3.11+) and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: dev test chromium lint typecheck format clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

dev: $(STAMP) ## run zapflow with embedded Temporal, Postgres and Redis
	$(BIN)/zapflow dev

test: $(STAMP) chromium ## run the whole test suite (starts its own embedded stack)
	$(BIN)/pytest -q

# the browser tests drive Debian's chromium; installed when missing and we may (root with apt-get)
chromium:
	@test -x /usr/bin/chromium || [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; } || \
	  echo "could not install chromium: the browser tests will skip"

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
