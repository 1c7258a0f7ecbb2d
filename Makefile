# One-command set-up: `make run` (venv + install + enrich sample_images/) and `make test`.
PY      ?= python3.11
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
OUT     ?= out
PYTEST_ARGS ?=

.PHONY: install run test test-fast bench bench-scaleout samples clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/htr enrich sample_images -o $(OUT)

test: $(STAMP)
	PREFECT_SERVER_ANALYTICS_ENABLED=false $(BIN)/python -m pytest -q -ra $(PYTEST_ARGS)

test-fast: $(STAMP)
	PREFECT_SERVER_ANALYTICS_ENABLED=false $(BIN)/python -m pytest -q -ra -m "not slow" $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/run_bench.py

bench-scaleout: $(STAMP)
	$(BIN)/python bench/bench_scaleout.py

samples: $(STAMP)
	$(BIN)/python sample_images/make_samples.py

clean:
	rm -rf $(OUT) build *.egg-info .pytest_cache
