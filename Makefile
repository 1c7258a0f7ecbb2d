# One-command set-up: `make run` (venv + install + enrich sample_images/) and `make test`.
PY      ?= python3.11
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
OUT     ?= out
PYTEST_ARGS ?=

.PHONY: install run test test-fast bench bench-scaleout samples clean train-gpu-bundle train-gpu

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
	rm -rf $(OUT) build *.egg-info .pytest_cache
