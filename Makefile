# Everything needs only Python 3.11+, git and make: the first target run creates .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test lint typecheck unit bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'  # hatchling: a plain path file, no import hook
	$(BIN)/python -m compileall -q fleetgit  # as a regular install does; hooks start faster
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/fleetgit demo

test: lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check fleetgit tests bench
	$(BIN)/ruff format --check fleetgit tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
