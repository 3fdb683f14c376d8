# Two entry points (see README): `make demo` and `make test`. Both create .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

# torch is installed first and alone, so that no dependency can pull another build. Where there is
# no NVIDIA GPU (no working nvidia-smi) on Linux we ask for the CPU build by its local version
# "+cpu": pip can then never fall back to PyPI's default build and its gigabytes of CUDA packages,
# and a +cpu wheel in pip's find-links (as on our CI machines) installs offline. With a GPU, or on
# macOS (whose PyPI wheels are CPU builds already), the default build.
TORCH_VERSION := 2.13.0
TORCH_CPU_INDEX := https://download.pytorch.org/whl/cpu
HAS_NVIDIA_GPU := $(shell nvidia-smi -L >/dev/null 2>&1 && echo yes)
ifeq ($(HAS_NVIDIA_GPU)$(shell uname -s),Linux)
# A +cpu wheel already in pip's find-links installs without asking any index (offline, no retries);
# else it comes from PyTorch's CPU index. Its dependencies come from PyPI afterwards.
TORCH_PIN := torch==$(TORCH_VERSION)+cpu
TORCH_INSTALL := ($(BIN)/pip install -q --no-index --no-deps $(TORCH_PIN) 2>/dev/null || \
	$(BIN)/pip install -q $(TORCH_PIN) --extra-index-url $(TORCH_CPU_INDEX)) && $(BIN)/pip install -q $(TORCH_PIN)
else
TORCH_INSTALL := $(BIN)/pip install -q torch==$(TORCH_VERSION)
endif

# One .venv for both targets. `setup` (what `make demo` needs) installs torch, then vaekit's core;
# `setup-test` adds the extras the tests need on top of it. Each finished step leaves a stamp file in
# .venv, so `make demo` then `make test` installs only the extras, and `make test` alone does both.
CORE_STAMP := $(VENV)/.vaekit-core
TEST_STAMP := $(VENV)/.vaekit-dev-dask-spark-docs
DOCS_STAMP := $(VENV)/.vaekit-docs

$(CORE_STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(TORCH_INSTALL)
	$(BIN)/pip install -q -e .
	touch $(CORE_STAMP)

$(TEST_STAMP): $(CORE_STAMP)
	$(BIN)/pip install -q -e '.[dev,dask,spark,docs]'
	touch $(TEST_STAMP)

$(DOCS_STAMP): $(CORE_STAMP)
	$(BIN)/pip install -q -e '.[docs]'
	touch $(DOCS_STAMP)

setup: $(CORE_STAMP)

setup-test: $(TEST_STAMP)

setup-docs: $(DOCS_STAMP)

demo: setup
	$(BIN)/vaekit train --epochs 30 --out runs/demo --overwrite

# The documentation site, built as CI builds it (--strict: a broken link or docstring fails): open site/index.html.
# (tests/test_docs_site.py builds it too, so make test fails where this would.)
docs: setup-docs
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict -d site

# mypy on the public API as users call it (tests/typecheck/public_api.py) and the standard-library
# modules ([tool.mypy] in pyproject.toml): about 7 s on a cold cache, 1 s after.
typecheck: setup-test
	$(BIN)/mypy

test: setup-test typecheck
	$(BIN)/ruff check src tests scripts bench
	$(BIN)/python -m pytest -q

.PHONY: setup setup-test setup-docs demo docs test typecheck
