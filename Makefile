# The two commands of the README: `make run` (the stack) and `make test` (the whole suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
PYTEST_ARGS ?=

.PHONY: install run api test lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

run: install
	$(BIN)/llm-backend api

test: install
	$(BIN)/python -m pytest -v -rA $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check api cli shared worker tests

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
