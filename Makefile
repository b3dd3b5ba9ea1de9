# `make test` installs everything it needs (a venv in .venv; vLLM for the CPU in ~/.cache/editjudge)
# and runs the whole suite: lint, types, unit, integration and end-to-end tests on real vLLM.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: test lint unit e2e install browser clean

test: install browser lint
	$(BIN)/pytest -q

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[server,dev,plot]'
	touch $@

# The HTML report's page tests drive a real headless Chromium (Debian's package, through the
# playwright Python package). Installed here where we can (root with apt-get); without it those
# tests skip, except in CI (CI=true), where they fail.
browser:
	@if [ -n "$$EDITJUDGE_CHROMIUM" ] || command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing chromium (apt-get) for the report's page tests"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
			>/dev/null) || echo "could not install chromium: the page tests will skip (fail in CI)"; \
	else echo "no chromium and no root apt-get: the page tests will skip (fail in CI)"; fi

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
