#!/usr/bin/env bash
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Build the collection's documentation site (modules, role, environment variables) as HTML
# with antsibull-docs and Sphinx, offline.
#
#   bash docs/build.sh [OUT]      # default OUT: docs/build (git-ignored, build_ignored)
#   open OUT/html/index.html
#
# Tools come from .venv (requirements-test.txt pins antsibull-docs, sphinx-ansible-theme);
# VENV_BIN=/path/to/bin overrides. Warnings are errors (sphinx-build -W), so a broken
# reference in a module's or the role's documentation fails the build.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-$root/docs/build}
bin=${VENV_BIN:-$root/.venv/bin}
export PATH="$bin:$PATH"
say() { printf '[docs] %s\n' "$*"; }

for tool in antsibull-docs sphinx-build ansible-doc; do
  command -v "$tool" >/dev/null || { echo "[docs] ERROR: $tool not found (make venv installs it)" >&2; exit 1; }
done

# The collection as ansible-doc finds it: this checkout under ansible_collections/seed/.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/collections/ansible_collections/seed"
ln -s "$root" "$work/collections/ansible_collections/seed/consul_peering"
export ANSIBLE_COLLECTIONS_PATH="$work/collections" ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=False

rm -rf "$out"
mkdir -p "$out"
src="$out/src"
mkdir -m 700 "$src"   # antsibull-docs writes only into a directory that only its owner can write

say "sphinx project in $src"
antsibull-docs sphinx-init --use-current --squash-hierarchy --fail-on-error \
  --project seed.consul_peering --copyright "seed.consul_peering contributors" \
  --title "seed.consul_peering" --dest-dir "$src" seed.consul_peering >/dev/null

# Offline: no intersphinx inventories to download. The labels of Ansible's own docs that
# generated pages link to get a local page pointing at docs.ansible.com instead.
cat >>"$src/conf.py" <<'PY'

# docs/build.sh: build offline.
intersphinx_mapping = {}
PY
chmod 700 "$src/rst"
say "collection docs (RST) with antsibull-docs"
antsibull-docs --config-file "$src/antsibull-docs.cfg" collection --fail-on-error --use-current \
  --squash-hierarchy --dest-dir "$src/rst" seed.consul_peering >/dev/null
cat >"$src/rst/ansible_refs.rst" <<'RST'
:orphan:

.. _ansible_configuration_settings:

Ansible configuration settings
==============================

See `Ansible Configuration Settings <https://docs.ansible.com/ansible/latest/reference_appendices/config.html>`_.

.. _common_return_values:

Common return values
====================

See `Return Values <https://docs.ansible.com/ansible/latest/reference_appendices/common_return_values.html>`_.

.. _action_plugins:

Action plugins
==============

See `Action plugins <https://docs.ansible.com/ansible/latest/plugins/action.html>`_.
RST

say "HTML with sphinx-build -W"
sphinx-build -q -b html -c "$src" -W --keep-going "$src/rst" "$out/html"
say "done: $out/html/index.html"
