# vertex-edge - see README.md. `make run` and `make test` each install what they need.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
# dvc runs stage commands (`python -m steps.train ...`) with this PATH: use the venv's python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: help install run gate setup seed repro metrics test test-fast lint bench clean

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
	@echo "next: commit the results so experiments have a baseline (README 'Team workflow'):"
	@echo "  git add edge.yaml dvc.lock data metrics models reports && git commit -m 'first run' && dvc push"

gate: install  ## the quality gate as an exit code (1 when the model is below params.yaml evaluate.min_accuracy)
	$(PY) -m steps.gate

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

# --- CI and cloud targets (vertex) ---
# The gcp target (edge.yaml), Docker with BuildKit, and for webapp-deploy helm with a kube context on
# the GKE cluster. Images are tagged with the git commit; `python edge.py images` names them.
IMAGE_TAG ?= $(shell git rev-parse HEAD 2>/dev/null)
DOCKER ?= docker
HELM ?= helm
WEBAPP_RELEASE ?= webapp
WEBAPP_NAMESPACE ?= webapp
HELM_ARGS ?=

.PHONY: images-build images-push vertex-repro webapp-deploy

images-build: install  ## build the trainer, prediction and web-app images (tag: the git commit)
	DOCKER_BUILDKIT=1 $(DOCKER) build -f models/trainer/Dockerfile -t "$$($(PY) edge.py images --only trainer --tag $(IMAGE_TAG))" .
	DOCKER_BUILDKIT=1 $(DOCKER) build -f services/prediction/Dockerfile -t "$$($(PY) edge.py images --only prediction --tag $(IMAGE_TAG))" .
	DOCKER_BUILDKIT=1 $(DOCKER) build -f services/webapp/Dockerfile -t "$$($(PY) edge.py images --only webapp --tag $(IMAGE_TAG))" .

images-push: images-build  ## push the three images to Artifact Registry ('gcloud auth configure-docker' first)
	for image in $$($(PY) edge.py images --tag $(IMAGE_TAG)); do $(DOCKER) push "$$image" || exit 1; done

vertex-repro: install  ## dvc repro with the Vertex AI pipeline (dvc-step2.yaml): train runs as a CustomJob
	$(PY) edge.py pipeline use vertex
	$(PY) -m dvc repro

webapp-deploy: install  ## helm upgrade --install the web app on GKE, in front of the Vertex AI endpoint
	$(PY) edge.py images --webapp-values --tag $(IMAGE_TAG) | $(HELM) upgrade --install $(WEBAPP_RELEASE) helm/webapp \
		--namespace $(WEBAPP_NAMESPACE) --create-namespace --values - --wait --timeout 10m $(HELM_ARGS)
