# `make test` installs everything it needs (a venv in .venv; vLLM for the CPU in ~/.cache/editjudge)
# and runs the whole suite: lint, types, unit, integration and end-to-end tests on real vLLM.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: test lint unit e2e install clean

test: install lint
	$(BIN)/pytest -q

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[server,dev,plot]'
	touch $@

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/hadolint Dockerfile
	$(BIN)/docker-compose -f docker-compose.yml config -q
	$(BIN)/docker-compose -f docker-compose.yml --profile monitoring --profile tls config -q

unit: install  # everything but the real-vLLM end-to-end tests
	$(BIN)/pytest -q --ignore=tests/e2e

e2e: install
	$(BIN)/pytest -q tests/e2e

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
