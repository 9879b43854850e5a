# seed.consul_peering: every entry point a user or CI needs.
#   make demo        peer two local Consul clusters end to end and show the result
#   make test        every gate: sanity, lint, units, integration (real lab), molecule
#   make lab-up / lab-down / lab-status / consul / venv / bench
#   make galaxy-import   galaxy-importer on the built tarball, as Galaxy on upload (no warning allowed)
#   make role-readme     regenerate roles/cluster_peering/README.md from meta/argument_specs.yml
#   make docsite         regenerate docs/docsite/rst/ (the docs site's guides) from docs/*.md
#   make release         cut the release of galaxy.yml's version: changelog, build, import, tag (RELEASE_TAG=1)
#   make test-matrix every Consul x ansible-core cell (docs/compatibility.md); CONSUL_VERSIONS=, CORE_VERSIONS= narrow it
#   make test-compat the quick version check make test runs: oldest+newest Consul x oldest+newest ansible-core
#   make test-ha     the HA lab scenarios (leader loss, partitions, concurrency, load); test-ha-ci: CI's subset
#   make core-venvs  .venv-2.16 ... .venv-2.21 (one ansible-core each); make core-venv-2.18 for one
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
        changelog-lint collection-link demo demo-clean bench clean galaxy-import role-readme docsite release \
        test-matrix test-compat core-venvs test-ha test-ha-ci

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

# ansible-core releases beside .venv, each in its own venv (tests/utils/core_venv.sh; git-ignored .venv-*/).
CORE_MINORS := $(shell bash tests/utils/core_venv.sh --list 2>/dev/null)
core-venvs: $(addprefix core-venv-,$(CORE_MINORS))
core-venv-%:
	@bash tests/utils/core_venv.sh $* >/dev/null
	@echo "[core-venv] .venv-$*: $$(.venv-$*/bin/ansible --version | head -1) on $$(.venv-$*/bin/python --version)"

# --- lab -------------------------------------------------------------------
lab-up:
	@bash lab/lab.sh up

lab-down:
	@bash lab/lab.sh down

lab-status:
	@bash lab/lab.sh status

# --- gates -----------------------------------------------------------------
test: venv sanity lint units changelog-lint galaxy-import integration molecule test-compat
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
	@# extensions/ is not collection content (the shipped .ansible-lint excludes it): its own config
	@echo "[lint] ansible-lint extensions/ (extensions/.ansible-lint)"
	@cd extensions && NO_COLOR=1 $(BIN)/ansible-lint --offline

units: venv
	@echo "[units] pytest tests/unit"
	@$(BIN)/python -m pytest -q tests/unit $(PYTEST_ARGS)

changelog-lint: venv
	@$(BIN)/antsibull-changelog lint

integration: venv
	@CONSUL_BIN=$$(bash lab/consul.sh) && export CONSUL_BIN && bash lab/lab.sh up
	@echo "[integration] pytest tests/integration (real Consul lab)"
	@# test_smoke.py and test_versions.py belong to the version matrix (test-compat, test-matrix), and
	@# test_ha.py to make test-ha: they start labs of their own (other Consul releases, 3-server clusters).
	@$(BIN)/python -m pytest -q tests/integration --ignore=tests/integration/test_smoke.py \
	  --ignore=tests/integration/test_versions.py --ignore=tests/integration/test_ha.py $(PYTEST_ARGS)

molecule: venv collection-link
	@if [ -d extensions/molecule ] && ls extensions/molecule/*/molecule.yml >/dev/null 2>&1; then \
	  echo "[molecule] molecule test --all"; \
	  cd extensions && NO_COLOR=1 PY_COLORS=0 ANSIBLE_FORCE_COLOR=0 $(BIN)/molecule test --all; \
	else echo "[molecule] no scenario yet"; fi

# --- publishing (docs/decisions.md, "Ready to publish") ---------------------------
# galaxy-importer pins attrs<24, older than the shared .venv's: a venv of its own.
IMPORTER_VENV := .venv-importer
IMPORT_DIR    := $(CURDIR)/tests/output/galaxy-import
$(IMPORTER_VENV)/.installed: requirements-importer.txt requirements-test.txt requirements.txt
	@echo "[galaxy-import] creating $(IMPORTER_VENV) (galaxy-importer and its ansible-lint)"
	@test -x $(IMPORTER_VENV)/bin/python || $(PYTHON) -m venv $(IMPORTER_VENV)
	@$(IMPORTER_VENV)/bin/python -m pip install --quiet --disable-pip-version-check pip==$(PIP_VERSION)
	@$(IMPORTER_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-importer.txt
	@touch $@

# Scratch copy of the tree; project URLs galaxy.yml lacks get a marked placeholder there only.
galaxy-import: venv $(IMPORTER_VENV)/.installed
	@$(BIN)/python tests/utils/galaxy_import.py --scratch $(IMPORT_DIR)

role-readme: venv
	@$(BIN)/python tests/utils/role_readme.py

# docs/*.md as RST pages of the docs site (antsibull-docs takes extra docs as RST only).
docsite: venv
	@$(BIN)/python tests/utils/docsite.py

# The release of galaxy.yml's version, in order: checks, changelog, build, importer, tag.
# The tag is printed, not made, unless RELEASE_TAG=1. Checklist: docs/release.md.
RELEASE_VERSION = $(shell $(BIN)/python -c 'import yaml; print(yaml.safe_load(open("galaxy.yml"))["version"])')
DIST_DIR        := $(CURDIR)/tests/output/release
release: venv collection-link $(IMPORTER_VENV)/.installed
	@$(BIN)/python tests/utils/release.py check
	@echo "[release] 1/4 changelog: antsibull-changelog release --version $(RELEASE_VERSION)"
	@$(BIN)/python tests/utils/release.py changelog
	@$(BIN)/antsibull-changelog lint
	@echo "[release] 2/4 build into $(DIST_DIR)"
	@mkdir -p $(DIST_DIR) && $(BIN)/ansible-galaxy collection build --force --output-path $(DIST_DIR) .
	@echo "[release] 3/4 galaxy-importer on the release tarball"
	@$(BIN)/python tests/utils/galaxy_import.py $(DIST_DIR)/seed-consul_peering-$(RELEASE_VERSION).tar.gz
	@echo "[release] 4/4 tag"
	@$(BIN)/python tests/utils/release.py tag $(if $(RELEASE_TAG),--create,)
# --- versions (docs/compatibility.md) ----------------------------------------
# The whole matrix: every Consul release (lab/consul.sh --list) with the newest ansible-core, every
# ansible-core (tests/utils/core_venv.sh --list) with the newest Consul, units everywhere, sanity on the
# oldest and newest ansible-core, mixed versions and the in-place upgrade; rewrites docs/compatibility.md.
CONSUL_VERSIONS ?=
CORE_VERSIONS ?=
test-matrix: venv
	@$(BIN)/python tests/utils/matrix.py --consul "$(CONSUL_VERSIONS)" --core "$(CORE_VERSIONS)"

# What make test / .ci/run cover beyond the pinned Consul and .venv's ansible-core: the oldest supported
# Consul with the oldest and the newest ansible-core (units on both; the smoke on both cells). The newest
# Consul is the integration suite's own lab, and test_packaging.py runs the oldest ansible-core against it.
COMPAT_OLDEST_CONSUL := $(shell . lab/consul.env && echo $$CONSUL_VERSION_OLDEST)
COMPAT_OLDEST_CORE   := $(firstword $(CORE_MINORS))
COMPAT_NEWEST_CORE   := $(lastword $(CORE_MINORS))
test-compat: venv
	@$(BIN)/python tests/utils/matrix.py --quick --consul "$(COMPAT_OLDEST_CONSUL)" \
	  --core "$(COMPAT_OLDEST_CORE),$(COMPAT_NEWEST_CORE)" \
	  --cells "$(COMPAT_OLDEST_CONSUL):$(COMPAT_NEWEST_CORE),$(COMPAT_OLDEST_CONSUL):$(COMPAT_OLDEST_CORE)"

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

# The HA cases CI runs after make test (.ci/run): leader loss at every stage, lost quorum, leader
# failover, a 10 s partition, lost state and the concurrent runs. The 60 s stop of a whole cluster and
# the load of 200 peerings stay in make test-ha.
test-ha-ci: venv collection-link
	@HA_PARTITION_SECONDS=10 $(MAKE) --no-print-directory test-ha \
	  PYTEST_ARGS="-k 'not load_many and not whole_acceptor_stopped' $(PYTEST_ARGS)"
