# trademesh — the two commands a user needs: `make run` and `make test`.
# Works on a fresh machine with only Python 3.11 and make: uv is bootstrapped through pip if missing.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
UV_VERSION := 0.13.9
BOOTSTRAP := .trademesh/bootstrap
UV := $(shell command -v uv 2>/dev/null || echo $(BOOTSTRAP)/bin/uv)
export UV_PYTHON_DOWNLOADS := never
export UV_LINK_MODE := copy

.PHONY: help install deploy-tools manifests run test lint typecheck unit bench asyncapi clean infra-up infra-down new-service

help:
	@echo "make run    start the embedded infrastructure and every service (Ctrl-C stops all)"
	@echo "make test   lint, type-check and run the whole test suite on real engines"
	@echo "make bench  run the benchmarks under benchmarks/"
	@echo "make manifests  regenerate the chart values, compose services and k8s/base from services/*/deploy/values.yaml"
	@echo "./trademesh --help  the command line, from .venv (make install sets it up, and repairs an interrupted install)"

$(BOOTSTRAP)/bin/uv:
	@echo "uv not found: installing uv $(UV_VERSION) into $(BOOTSTRAP) with pip"
	$(PYTHON) -m venv $(BOOTSTRAP)
	$(BOOTSTRAP)/bin/python -m pip install --quiet "uv==$(UV_VERSION)"

# The workspace's members; the stamp changes when one is added or deleted, so that the next make
# re-locks and re-syncs (a deleted service leaves uv.lock and the virtualenv as they were before).
MEMBERS := $(sort $(wildcard libs/*/pyproject.toml services/*/pyproject.toml))
MEMBERS_STAMP := .trademesh/members
$(shell mkdir -p .trademesh && (echo '$(MEMBERS)' | cmp -s - $(MEMBERS_STAMP) || echo '$(MEMBERS)' > $(MEMBERS_STAMP)))

# `uv sync` re-locks when a pyproject changed; CI sets UV_LOCKED=1 so that a stale uv.lock fails.
# scripts/sync_venv.py runs the sync, then checks every installed package against its RECORD and
# imports every workspace package; what an interrupted sync left broken is reinstalled (or the
# virtualenv rebuilt), and the stamp is written only once all is sound (decision 0118).
SYNC := $(PYTHON) scripts/sync_venv.py --uv $(UV) --venv .venv --stamp
.venv/.synced: uv.lock pyproject.toml $(MEMBERS) $(MEMBERS_STAMP) scripts/sync_venv.py | $(UV)
	$(SYNC) $@ -- --all-packages

install: .venv/.synced

# The deployment checkers: the `deploy` dependency group (helm-python-sdk, kubernetes-validate,
# python-hcl2, detect-secrets, jsonschema), checkov in a virtualenv of its own (its pins would
# hold the workspace's packages back), and, where apt runs as root, Debian's packages of the
# tools the tests run: promtool (prometheus) and chromium (the API docs rendered in a browser;
# Playwright drives it, never a browser of its own). `uv sync --inexact` adds the group without
# removing anything; the stamp follows .venv/.synced, whose exact sync removes the group again.
CHECKOV_VERSION := 3.3.30
TOOLS := .trademesh/tools
.venv/.deploy-synced: .venv/.synced
	$(SYNC) $@ -- --all-packages --group deploy --inexact

$(TOOLS)/checkov/bin/checkov: | $(UV)
	$(UV) venv --quiet --clear --python $(PYTHON) $(TOOLS)/checkov
	$(UV) pip install --quiet --no-config --python $(TOOLS)/checkov/bin/python "checkov==$(CHECKOV_VERSION)"

# command:Debian package, installed together (one apt-get) when a command is missing.
DEBIAN_TOOLS := promtool:prometheus chromium:chromium

deploy-tools: .venv/.deploy-synced $(TOOLS)/checkov/bin/checkov
	@missing=""; \
	for tool in $(DEBIAN_TOOLS); do \
		command -v "$${tool%%:*}" >/dev/null || missing="$$missing $${tool#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing Debian's$$missing"; \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing >/dev/null \
			|| { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing >/dev/null; }; \
		else \
			echo "Debian's$$missing not installed and apt-get is not usable here: the tests that need them will say they could not run"; \
		fi; \
	fi

# Regenerates what is derived from services/*/deploy/values.yaml and the topic registry: the
# umbrella chart's dependencies and values, compose's services and k8s/base (a test fails when
# the committed files are stale).
manifests: .venv/.deploy-synced
	$(UV) run --no-sync trademesh deploy manifests
	$(UV) run --no-sync python terraform/topics.py

run: install
	$(UV) run trademesh up $(ARGS)

lint: install
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run lint-imports

# Every library and service package, checked as installed (one shared virtualenv).
PACKAGES := $(foreach d,$(wildcard libs/*/src/trademesh_* services/*/src/trademesh_*),-p $(notdir $(d)))

typecheck: install
	$(UV) run mypy $(PACKAGES)

# TRADEMESH_REQUIRE_TOOLS: a deployment check whose tool is missing fails instead of skipping.
# Two passes: the unit and integration tests in TEST_WORKERS processes (pytest-xdist; a file's
# tests stay together, each process has its own engines), then the whole-platform suites and
# the `serial` tests alone, since they load every core or touch state all test processes share.
TEST_WORKERS ?= 2
test: lint typecheck deploy-tools
	TRADEMESH_REQUIRE_TOOLS=1 $(UV) run --no-sync pytest -m "not e2e and not serial" -n $(TEST_WORKERS) --dist loadfile
	TRADEMESH_REQUIRE_TOOLS=1 $(UV) run --no-sync pytest -m "e2e or serial"

unit: install
	$(UV) run pytest -m unit

bench: install
	@set -e; for script in benchmarks/*.py; do echo "== $$script"; $(UV) run python $$script; done

asyncapi: install
	$(UV) run trademesh events asyncapi --output docs/asyncapi.json

# make new-service NAME=pricing-demo ARGS="--consumes md.bars.v1"
new-service: install
	$(UV) run trademesh new-service $(NAME) $(ARGS)

infra-up: install
	$(UV) run trademesh infra up

infra-down: install
	$(UV) run trademesh infra down

clean:
	-$(UV) run trademesh infra down
	rm -rf .trademesh .venv .mypy_cache .ruff_cache .pytest_cache
