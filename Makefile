# Two entry points (see README): `make demo` and `make test`. Both create .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

$(BIN)/vaekit: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, from the CPU wheel, so that no dependency pulls another (CUDA) build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(BIN)/vaekit

setup: $(BIN)/vaekit

demo: setup
	$(BIN)/vaekit train --epochs 30 --out runs/demo --overwrite

test: setup
	$(BIN)/ruff check src tests scripts bench
	$(BIN)/python -m pytest -q

.PHONY: setup demo test
