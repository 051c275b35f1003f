# Two commands for a newcomer: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= otel-config.yaml

.PHONY: run test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamp files re-run the install whenever pyproject.toml changes.
$(VENV)/.server-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[server,native]'
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.server-installed

# The compiled mapper (collector/native.py) is built once per version of semconv/'s sources, in
# about a minute. Without it (no C compiler) the collector maps with the plain Python source.
run: $(VENV)/.server-installed
	$(BIN)/spanfuse build-mapper || echo "spanfuse: mapping runs as plain Python"
	$(BIN)/spanfuse serve --config $(CONFIG)

# Tests run against the compiled mapper, as the collector does; they also check that it maps
# exactly as the plain source, and run the mapping tests on the plain source too.
test: $(VENV)/.test-installed
	$(BIN)/spanfuse build-mapper
	SPANFUSE_REQUIRE_NATIVE=1 $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.test-installed
	$(BIN)/ruff check .

bench: $(VENV)/.test-installed
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) data build .pytest_cache .ruff_cache
