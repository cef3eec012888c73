# The same targets for people and CI. `make demo` runs touchline; `make test` installs what the
# tests need and runs them all (lint included).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: demo serve install install-test lock system-deps lint test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# requirements.lock pins the versions CI tested, so a fresh machine installs the same ones.
install: $(BIN)/python
	$(BIN)/python -m pip install --quiet -c requirements.lock -e .

install-test: $(BIN)/python
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[test]'

lock: install-test
	{ echo "# What CI tested: every package of the test environment, pinned. \`make lock\` writes it anew after a dependency change."; \
	  $(BIN)/python -m pip freeze --exclude-editable; } > requirements.lock

demo: install
	$(BIN)/touchline demo

serve: install
	$(BIN)/touchline serve

system-deps:
	scripts/install-system-deps

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: system-deps install-test
	$(MAKE) lint
	$(BIN)/pytest $(PYTEST_ARGS)

bench: system-deps install-test
	@for module in $$(ls bench/*/run.py | sed 's|/|.|g; s|\.py$$||'); do \
		echo "== $$module"; $(BIN)/python -m $$module || exit 1; done

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
