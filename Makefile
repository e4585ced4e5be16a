# gpuplan: `make demo` and `make test` do all set-up themselves in .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint install clean bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml setup.py gpuplan/native/_gapbb.c gpuplan/native/_shop.c gpuplan/native/wrapper.c | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/gpuplan solve examples/cluster.json -o build/demo-plan.json
	$(BIN)/gpuplan show build/demo-plan.json
	@echo "plan JSON written to build/demo-plan.json"

lint: $(STAMP)
	$(BIN)/ruff check gpuplan tests benchmarks
	$(BIN)/ruff format --check gpuplan tests benchmarks

test: lint
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) build .pytest_cache .ruff_cache .hypothesis
