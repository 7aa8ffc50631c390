# The README's two commands: `make run` (install + the main job) and `make test`
# (install + the tests). Both create .venv if missing and install from constraints.txt.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
PIP_FLAGS ?= -q --disable-pip-version-check
JOBS ?= 2

.PHONY: install run test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch first and exactly (the CPU wheel); then the package, non-editable, so that the
# tests and the main job use what a user installs (no stale build/ folder carried into it).
install: $(BIN)/python
	rm -rf build *.egg-info
	$(PIP) install $(PIP_FLAGS) -c constraints.txt torch==2.13.0
	$(PIP) install $(PIP_FLAGS) -c constraints.txt ".[test]"
	$(PIP) install $(PIP_FLAGS) --no-deps --force-reinstall .

run: install
	$(BIN)/switchbench suite quick --jobs $(JOBS)

# Unit tests from the repo; doctests on the installed package (never the mapped folders).
test: install
	$(BIN)/python -m pytest --pyargs switchbench --doctest-modules -q -p no:cacheprovider
	$(BIN)/python -m pytest tests
