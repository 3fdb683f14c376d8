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
TORCH_SPEC := torch==$(TORCH_VERSION)+cpu --extra-index-url $(TORCH_CPU_INDEX)
else
TORCH_SPEC := torch==$(TORCH_VERSION)
endif

$(BIN)/vaekit: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH_SPEC)
	$(BIN)/pip install -q -e '.[dev,dask,spark]'
	touch $(BIN)/vaekit

setup: $(BIN)/vaekit

demo: setup
	$(BIN)/vaekit train --epochs 30 --out runs/demo --overwrite

test: setup
	$(BIN)/ruff check src tests scripts bench
	$(BIN)/python -m pytest -q

.PHONY: setup demo test
