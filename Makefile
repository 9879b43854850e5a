# seed.consul_peering: every entry point a user or CI needs.
#   make demo        peer two local Consul clusters end to end and show the result
#   make test        every gate: sanity, lint, units, integration (real lab), molecule
#   make lab-up / lab-down / lab-status / consul / venv / bench
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON      ?= python3.11
VENV        := .venv
BIN         := $(CURDIR)/$(VENV)/bin
PIP_VERSION := 24.2
# ansible-test needs the collection under ansible_collections/<ns>/<name>, as a copy.
SANITY_TREE := $(CURDIR)/tests/output/sanity/ansible_collections/seed/consul_peering
COLL_PATH   := $(CURDIR)/.ansible/collections
PYTEST_ARGS ?=
# Target Pythons checked besides 3.11 (ansible-core 2.19 runs modules on 3.8-3.13).
SANITY_TARGET_PYTHONS ?= 3.8 3.9 3.10 3.12 3.13
PYENV_ROOT ?= $(HOME)/.pyenv

export PATH := $(BIN):$(PATH)
export ANSIBLE_COLLECTIONS_PATH := $(COLL_PATH)

.PHONY: help venv consul lab-up lab-down lab-status test sanity lint units integration molecule \
        changelog-lint collection-link demo demo-clean bench clean test-ha

help:
	@sed -n 's/^#   //p' $(MAKEFILE_LIST)

# --- environment -----------------------------------------------------------
venv: $(VENV)/.installed
$(VENV)/.installed: requirements.txt requirements-test.txt
	@echo "[venv] creating $(VENV) with $(PYTHON) and installing pinned requirements"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check pip==$(PIP_VERSION)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-test.txt
	@touch $@
	@echo "[venv] ready: $$($(BIN)/ansible --version | head -1)"

consul:
	@bash lab/consul.sh

# The collection as Ansible finds it by FQCN: a link to this checkout.
collection-link:
	@mkdir -p $(COLL_PATH)/ansible_collections/seed
	@ln -sfn $(CURDIR) $(COLL_PATH)/ansible_collections/seed/consul_peering

# --- lab -------------------------------------------------------------------
lab-up:
	@bash lab/lab.sh up

lab-down:
	@bash lab/lab.sh down

lab-status:
	@bash lab/lab.sh status

# --- gates -----------------------------------------------------------------
test: venv sanity lint units changelog-lint integration molecule
	@echo "[test] all gates passed"

sanity: venv
	@echo "[sanity] copying the tree to $(SANITY_TREE)"
	@rm -rf $(SANITY_TREE) && mkdir -p $(SANITY_TREE)
	@git ls-files -z --cached --others --exclude-standard | \
	  while IFS= read -r -d '' f; do [ -e "$$f" ] && printf '%s\0' "$$f"; done | \
	  xargs -0 cp --parents -t $(SANITY_TREE)
	@# its own git index, so ansible-test lists exactly these files (not the parent checkout's)
	@cd $(SANITY_TREE) && git init -q && git add -A
	@mkdir -p ~/.ansible/test/cache
	@cp tests/utils/get_pip_standin.py ~/.ansible/test/cache/get_pip_$(subst .,_,$(PIP_VERSION)).py
	@echo "[sanity] ansible-test sanity --python 3.11 (first run builds its tool venvs: a few minutes)"
	@cd $(SANITY_TREE) && $(BIN)/ansible-test sanity --python 3.11 --color no --requirements $(SANITY_ARGS)
	@# Modules run on whatever Python the target has (a Consul server over SSH): compile and import
	@# are checked on every target Python ansible-core supports that this machine has (pyenv).
	@for py in $(SANITY_TARGET_PYTHONS); do \
	  bin=$$(ls -d $(PYENV_ROOT)/versions/$$py.*/bin 2>/dev/null | tail -n 1); \
	  if [ -z "$$bin" ]; then echo "[sanity] python$$py not on this machine: skipped"; continue; fi; \
	  echo "[sanity] compile and import on python$$py"; \
	  (cd $(SANITY_TREE) && PATH="$$bin:$$PATH" $(BIN)/ansible-test sanity --python $$py --color no --requirements \
	     --test compile --test import $(SANITY_ARGS)) || exit 1; \
	done

lint: venv collection-link
	@echo "[lint] ansible-lint --profile production"
	@NO_COLOR=1 $(BIN)/ansible-lint --profile production --offline

units: venv
	@echo "[units] pytest tests/unit"
	@$(BIN)/python -m pytest -q tests/unit $(PYTEST_ARGS)

changelog-lint: venv
	@$(BIN)/antsibull-changelog lint

integration: venv
	@CONSUL_BIN=$$(bash lab/consul.sh) && export CONSUL_BIN && bash lab/lab.sh up
	@echo "[integration] pytest tests/integration (real Consul lab)"
	@$(BIN)/python -m pytest -q tests/integration $(PYTEST_ARGS)

molecule: venv collection-link
	@if [ -d extensions/molecule ] && ls extensions/molecule/*/molecule.yml >/dev/null 2>&1; then \
	  echo "[molecule] molecule test --all"; \
	  cd extensions && NO_COLOR=1 PY_COLORS=0 ANSIBLE_FORCE_COLOR=0 $(BIN)/molecule test --all; \
	else echo "[molecule] no scenario yet"; fi

# --- demo ------------------------------------------------------------------
demo: venv collection-link
	@bash lab/demo.sh

demo-clean:
	@bash lab/lab.sh down

bench: venv collection-link
	@bash bench/run.sh

clean:
	rm -rf .ansible tests/output

# HA scenarios (issue 17): one 3-server-per-cluster lab for leader loss, survival, partition,
# lost state, concurrency and load; writes docs/reliability-ha.md. HA_PORT_BASE picks the ports.
test-ha: venv collection-link
	@echo "[test-ha] pytest tests/integration/test_ha.py (HA lab, LAB_SERVERS=3)"
	@$(BIN)/python -m pytest -q tests/integration/test_ha.py $(PYTEST_ARGS)
