# finetune-operator — the two commands a newcomer runs are `make demo` and `make test`.
# Everything else here is a building block of those two.

SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: help venv lock lint fmt crds cluster-up cluster-down cluster-build cluster-status test test-unit demo bench bench-data faults clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml hack/pyproject.toml requirements.lock
	hack/install_venv.sh $(PYTHON) $(VENV)
	touch $(STAMP)

venv: $(STAMP)  ## create .venv and install the project with every extra (from requirements.lock)

lock:  ## re-resolve requirements.lock from pyproject.toml
	test -x $(VENV)/bin/uv || { $(PYTHON) -m venv $(VENV) && $(VENV)/bin/pip install --quiet uv; }
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --extra operator --extra trainer \
	  --python-version 3.11 --quiet -o requirements.lock

lint: venv  ## ruff and the import layering contract
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

fmt: venv  ## format and autofix
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

crds: venv  ## regenerate crds/ and docs/api.md from the finetune_api models (and the chart's copy of crds/)
	$(PY) -m finetune_api.generate
	if [ -d helm/finetune-operator/crds ]; then cp crds/*.yaml helm/finetune-operator/crds/; fi

cluster-up: venv  ## start (or reuse) the local cluster and S3 server; writes .cluster/kubeconfig and .cluster/env
	$(PY) -m localcluster up

cluster-down:  ## stop the local cluster and S3 server (idempotent)
	@if [ -x $(PY) ]; then $(PY) -m localcluster down; fi

cluster-build: venv  ## build the cluster's Go binaries into ~/.cache/finetune-operator (done by cluster-up when missing)
	$(PY) -m localcluster build

cluster-status: venv  ## show what of the local cluster is running
	$(PY) -m localcluster status

test: venv lint  ## install everything, lint, and run every test (unit, integration, e2e); stops what it started
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)
	$(PY) -m localcluster build  # builds shown one line each here, not inside pytest's captured output
	$(PY) -m localcluster.helm >/dev/null
	$(PY) -m pytest tests/integration tests/e2e --durations=20 $(PYTEST_ARGS)

test-unit: venv  ## only the fast unit tests (nothing running needed)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

demo: venv  ## the whole loop: cluster, S3, operator, a real 2-worker fine-tuning job, a preemption, resume
	$(PY) -m localcluster.demo

bench: venv bench-data  ## benchmarks; JSON under bench/results/
	$(PY) bench/run_all.py

bench-data:  ## data sets the benchmarks need from Debian (WordNet glosses for bench/quality.py); never needed by make test
	@test -f /usr/share/wordnet/data.noun || { apt-get update && apt-get install -y --no-install-recommends wordnet-base; }

faults: venv  ## the seeded fault campaign (worker kills, S3 outages): JSON to stdout and bench/results/faults.json; docs/reliability.md
	$(PY) bench/faults.py

clean: cluster-down  ## remove .venv and local cluster state
	rm -rf $(VENV) .cluster
