# One-command set-up: `make run` (venv + install + enrich sample_images/) and `make test`.
PY      ?= python3.11
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
OUT     ?= out
PYTEST_ARGS ?=

.PHONY: install run lint test test-fast bench bench-scaleout samples clean train-gpu-bundle train-gpu viewer

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	$(BIN)/pip install --quiet --no-deps $$($(BIN)/python -c "import tomllib; print(' '.join(tomllib.load(open('pyproject.toml', 'rb'))['tool']['htr']['install-without-deps']))")
	touch $(STAMP)

# The reading room's browser assets (`htr serve`): OpenSeadragon from the npm registry, pinned by
# web/package-lock.json, copied into the package's static folder (not kept in git).
VIEWER_JS := htr/portal/static/vendor/openseadragon.min.js

$(VIEWER_JS): web/package.json web/package-lock.json
	cd web && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	mkdir -p $(@D)
	cp web/node_modules/openseadragon/build/openseadragon/openseadragon.min.js $@
	cp web/node_modules/openseadragon/LICENSE.txt $(@D)/openseadragon-LICENSE.txt

viewer: $(VIEWER_JS)

install: $(STAMP) $(VIEWER_JS)

run: $(STAMP)
	$(BIN)/htr enrich sample_images -o $(OUT)

# ruff lint and format check, mypy ([tool.ruff], [tool.mypy] in pyproject.toml); `make test` runs it first.
lint: $(STAMP)
	$(BIN)/ruff check
	$(BIN)/ruff format --check
	$(BIN)/mypy

test: $(STAMP) $(VIEWER_JS) lint
	PREFECT_SERVER_ANALYTICS_ENABLED=false $(BIN)/python -m pytest -q -ra --durations=25 $(PYTEST_ARGS)

test-fast: $(STAMP) $(VIEWER_JS) lint
	PREFECT_SERVER_ANALYTICS_ENABLED=false $(BIN)/python -m pytest -q -ra -m "not slow" $(PYTEST_ARGS)

# Plain kraken vs htr enrich (Kraken's path, the fast path, 1 vs 2 workers): speed and quality on 12 GT pages,
# into bench/results.json ("enrich"). e.g. BENCH_ARGS="--pages 3 --no-scaling" for a quicker look.
BENCH_ARGS ?=

bench: $(STAMP)
	$(BIN)/python bench/run_bench.py $(BENCH_ARGS)

bench-scaleout: $(STAMP)
	$(BIN)/python bench/bench_scaleout.py

# GPU fine-tuning on a bare machine (torch, numpy, Pillow; no kraken, no network): build the bundle here,
# carry it there, run `make train-gpu` (deploy/gpu-train/README.md).
GPU_BUNDLE  ?= .train/gpu-bundle
GPU_OUT     ?= .train/gpu-out
GPU_MINUTES ?= 8
GPU_BASE    ?= default

train-gpu-bundle: $(STAMP)
	$(BIN)/python deploy/gpu-train/pack.py ../shared/gt -o $(GPU_BUNDLE) --base $(GPU_BASE)

train-gpu:
	bash deploy/gpu-train/train_gpu.sh $(GPU_BUNDLE) $(GPU_OUT) $(GPU_MINUTES)

samples: $(STAMP)
	$(BIN)/python sample_images/make_samples.py

clean:
	rm -rf $(OUT) build *.egg-info .pytest_cache web/node_modules htr/portal/static/vendor
