# The two entry points of a fresh machine: `make demo` and `make test`. Each sets up what it needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: demo test check lint typecheck pytest system-deps bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[dev]"
	rm -f $(VENV)/.installed-*; touch $@

# Debian packages the suite drives for real: kubectl (client only).
system-deps:
	@command -v kubectl >/dev/null || { apt-get update -qq && apt-get install -y -qq kubernetes-client; }

## The main job: emulated on-prem + EKS clusters, a kubeconfig in .sim/ (contexts onprem, eks).
demo: $(STAMP) system-deps
	$(BIN)/hybridhub sim up --kubeconfig .sim/kubeconfig --endpoints .sim/endpoints.json

## The whole test suite: lint, types, tests.
test: $(STAMP) system-deps lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) system-deps
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python bench/simcluster_api.py

clean:
	rm -rf $(VENV) .sim .pytest_cache .mypy_cache .ruff_cache
