# Paddock developer entry points. Every target that needs the venv creates it first.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The pinned kubectl/helm that cluster/build.sh builds.
CLUSTER_BIN := $(shell bash -c 'source cluster/lib/common.sh && echo $$BIN_DIR')
CLUSTER_ENV := PATH="$(CLUSTER_BIN):$(CURDIR)/$(VENV)/bin:$$PATH" KUBECONFIG="$(CURDIR)/.cluster/kubeconfig"

.PHONY: help install test test-unit test-cluster lint crds cluster-up cluster-down images demo bench clean

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install Paddock with dev extras

test: $(STAMP) ## Run the whole test suite (unit + cluster)
	$(VPY) -m pytest tests -q

test-unit: $(STAMP) ## Run the unit tests only (no cluster)
	$(VPY) -m pytest tests/unit -q

lint: $(STAMP) ## ruff + mypy --strict on both packages
	$(VPY) -m ruff check operator harness tests images
	$(VPY) -m ruff format --check operator harness tests
	$(VPY) -m mypy operator/paddock_operator harness/paddock_harness

crds: $(STAMP) ## Regenerate the CRD YAML and the API reference from the pydantic models
	$(VPY) -m paddock_operator.crdgen --out crds --out charts/paddock/crds
	$(VPY) -m paddock_operator.apidoc --out docs/api-reference.md

cluster-up: ## Start the local single-node cluster (root)
	bash cluster/up.sh

cluster-down: ## Stop the local cluster and remove everything it made
	bash cluster/down.sh

images: ## Build the offline images and import them into the local containerd
	bash images/build.sh all

demo: $(STAMP) ## Run the whole thing: cluster, images, Helm install, a live run
	bash hack/demo.sh

bench: $(STAMP) ## Run the benchmarks against the local cluster (see bench/)
	bash cluster/up.sh
	$(CLUSTER_ENV) $(VPY) bench/workspace_ready.py -n 10
	$(CLUSTER_ENV) $(VPY) bench/exec_latency.py -n 200
	$(CLUSTER_ENV) $(VPY) bench/concurrent_runs.py

clean: ## Remove the venv and caches (not the cluster)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
