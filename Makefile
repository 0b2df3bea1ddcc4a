# The two entry points of a fresh machine: `make demo` and `make test`. Each sets up what it needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The main run uses the pair zero-to-jupyterhub 4.4 ships; the hub extra allows JupyterHub 6 too.
MAIN_PINS := "jupyterhub==5.5.*" "jupyterhub-kubespawner==7.0.*"
STAMP  := $(VENV)/.installed-$(shell (cat pyproject.toml; echo '$(MAIN_PINS)') | sha1sum | cut -c1-12)
# The second version pair the `hubcompat` tests run against, in a venv of its own.
HUB6_PINS  := "jupyterhub>=6,<7" "jupyterhub-kubespawner>=7.1,<8"
HUB6_VENV  := .venv-hub6
HUB6_TESTS := tests/simcluster/test_kubespawner.py tests/hub/test_hybrid_spawner.py tests/hub/test_options.py
HUB6_STAMP := $(HUB6_VENV)/.installed-$(shell (cat pyproject.toml; echo '$(HUB6_PINS)') | sha1sum | cut -c1-12)

.PHONY: mutation demo test check lint typecheck extras pytest pytest-hub6 system-deps bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[dev]" $(MAIN_PINS)
	rm -f $(VENV)/.installed-*; touch $@

$(HUB6_STAMP): pyproject.toml
	test -x $(HUB6_VENV)/bin/python || $(PYTHON) -m venv $(HUB6_VENV)
	$(HUB6_VENV)/bin/pip install --quiet --disable-pip-version-check -e ".[test]" $(HUB6_PINS)
	rm -f $(HUB6_VENV)/.installed-*; touch $@

NODE_STAMP := node_modules/.installed-$(shell cat package.json package-lock.json | sha1sum | cut -c1-12)

# Debian packages the suite drives for real: kubectl (client only); util-linux and iproute2 for
# simcluster's process runtime, nftables for its hung fault; Node.js + npm for configurable-http-proxy;
# chromium and its matching chromium-driver for the browser test of the demo (tests/e2e); the OpenSSH
# client, rsync and OpenSSH's sshd (the peer SSH tests and benchmarks compare with), and PostgreSQL
# (the service's store is tested on it as well as on sqlite).
system-deps:
	@missing=""; \
	command -v kubectl >/dev/null || missing="$$missing kubernetes-client"; \
	command -v ip >/dev/null || missing="$$missing iproute2"; \
	command -v nft >/dev/null || missing="$$missing nftables"; \
	command -v unshare >/dev/null || missing="$$missing util-linux"; \
	command -v npm >/dev/null || missing="$$missing nodejs npm"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null || missing="$$missing chromium-driver"; \
	command -v ssh >/dev/null || missing="$$missing openssh-client"; \
	test -x /usr/sbin/sshd || missing="$$missing openssh-server"; \
	command -v rsync >/dev/null || missing="$$missing rsync"; \
	ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then apt-get update -qq && apt-get install -y -qq $$missing; fi

# configurable-http-proxy, pinned by package-lock.json
$(NODE_STAMP): package.json package-lock.json | system-deps
	npm ci --no-audit --no-fund --loglevel=error
	rm -f node_modules/.installed-*; touch $@

## The main job: the whole hub on this machine until Ctrl-C (hybridhub demo: simcluster's on-prem and
## EKS clusters, the hybridhub service, JupyterHub with HybridSpawner and the proxy; its files in .demo/).
demo: $(STAMP) system-deps $(NODE_STAMP)
	$(BIN)/hybridhub demo

## The whole test suite: lint, types, tests.
test: $(STAMP) system-deps $(NODE_STAMP) lint typecheck extras pytest pytest-hub6

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

## Each side imported in a venv holding only its extra (.venv-extras/SIDE, built with uv, reused while
## pyproject.toml is unchanged), and each side's imports compared with what its extra declares.
## `$(BIN)/python tests/packaging/check_extras.py --lowest` does the same with the lowest versions allowed.
extras: $(STAMP)
	$(BIN)/python tests/packaging/check_extras.py

pytest: $(STAMP) system-deps $(NODE_STAMP)
	$(BIN)/python -m pytest

## The `hubcompat` tests (KubeSpawner against simcluster) again with JupyterHub 6 + KubeSpawner 7.1.
pytest-hub6: $(HUB6_STAMP) system-deps
	$(HUB6_VENV)/bin/python -m pytest -m hubcompat -p no:cacheprovider $(HUB6_TESTS)

## Mutation testing of placement and the attempt builder (setup.cfg [mutmut]); not part of `test`.
mutation: $(STAMP)
	rm -rf mutants
	$(BIN)/mutmut run --max-children 2
	$(BIN)/mutmut results

bench: $(STAMP)
	$(BIN)/python bench/simcluster_api.py

clean:
	rm -rf $(VENV) $(HUB6_VENV) .venv-extras node_modules .sim .demo .pytest_cache .mypy_cache .ruff_cache
