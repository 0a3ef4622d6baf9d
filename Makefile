# vertex-edge - see README.md. `make run` and `make test` each install what they need.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
# dvc runs stage commands (`python -m steps.train ...`) with this PATH: use the venv's python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: help install run setup seed repro metrics test test-fast lint bench clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 14

$(VENV)/.installed: requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required (set PYTHON=/path/to/python3.11)")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	@touch $@

install: $(VENV)/.installed  ## create .venv and install the pinned requirements

run: install  ## the main job: setup (local), seed the data, dvc repro, print metrics and the experiment id
	$(PY) edge.py setup --target local --yes
	$(PY) edge.py data seed
	$(PY) -m dvc repro
	$(PY) -m dvc metrics show
	$(PY) edge.py experiments list --last 1

test: install  ## the whole test suite (no network needed)
	$(PY) -m pytest

test-fast: install  ## unit tests only
	$(PY) -m pytest -m "not slow and not browser"

lint: install  ## ruff, hadolint on the Dockerfiles, CircleCI schema
	$(PY) -m ruff check .
	$(VENV)/bin/hadolint services/*/Dockerfile models/*/Dockerfile
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.circle-ci .circleci/config.yml

bench: install  ## the benchmarks (see benchmarks/README.md)
	$(PY) -m benchmarks.run_all

clean:  ## remove the venv and caches (keeps data and .edge)
	rm -rf $(VENV) .pytest_cache .ruff_cache
