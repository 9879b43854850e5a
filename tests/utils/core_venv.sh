#!/usr/bin/env bash
# Make (or reuse) .venv-<minor>: one ansible-core release in its own venv, with a Python it
# supports, plus what the unit suite and the smoke need (requests, pytest and PyYAML as pinned
# for .venv). Prints the venv's bin directory.
#   tests/utils/core_venv.sh 2.16        (any of CORE_RELEASES below)
#   tests/utils/core_venv.sh --list      the minors, oldest first
# The pip index is the only network use; a venv that matches its marker is reused as is.
set -euo pipefail
cd "$(dirname "$0")/../.."

# minor -> the newest patch release and the Python it runs on here (pyenv). ansible-core
# 2.20 and 2.21 need Python >= 3.12; 2.16 and 2.17 support 3.10-3.12, 2.18 and 2.19 3.11-3.13.
declare -A CORE=([2.16]=2.16.19 [2.17]=2.17.14 [2.18]=2.18.19 [2.19]=2.19.14 [2.20]=2.20.10 [2.21]=2.21.5)
declare -A PY=([2.16]=3.11 [2.17]=3.11 [2.18]=3.11 [2.19]=3.11 [2.20]=3.12 [2.21]=3.13)
CORE_RELEASES="2.16 2.17 2.18 2.19 2.20 2.21"

if [ "${1:-}" = --list ]; then tr ' ' '\n' <<<"$CORE_RELEASES"; exit 0; fi
minor=${1:?usage: $0 <ansible-core minor, e.g. 2.16>}
[ -n "${CORE[$minor]:-}" ] || { echo "core_venv: unknown ansible-core minor '$minor' (known: $CORE_RELEASES)" >&2; exit 2; }

find_python() {
  local want=$1 p
  for p in "python$want" "$HOME/.pyenv/versions/$want"*/bin/python3; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null | grep -qx "$want"; then
      command -v "$p"; return 0
    fi
  done
  return 1
}

pin() { grep -i "^$1==" requirements.txt requirements-test.txt -h | head -1; }
venv=".venv-$minor"
want="ansible-core==${CORE[$minor]} $(pin requests) $(pin pytest)"
marker="$venv/.installed"
# Same marker format as tests/integration/test_packaging.py (one requirement a line).
if [ -x "$venv/bin/python" ] && [ "$(tr '\n' ' ' <"$marker" 2>/dev/null | sed 's/ *$//')" = "$want" ]; then
  echo "$PWD/$venv/bin"; exit 0
fi
python=$(find_python "${PY[$minor]}") || { echo "core_venv: no Python ${PY[$minor]} for ansible-core $minor (pyenv install ${PY[$minor]})" >&2; exit 1; }
echo "[core-venv] $venv: ansible-core ${CORE[$minor]} on $("$python" --version)" >&2
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
# shellcheck disable=SC2086
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check $want >&2
# ansible-core < 2.19 has no ansible.module_utils.testing.patch_module_args (the unit tests use
# it): the test-harness shim of tests/integration/test_packaging.py, in this venv only.
site=$("$venv/bin/python" -c 'import ansible, os; print(os.path.dirname(ansible.__file__))')
if [ ! -e "$site/module_utils/testing.py" ]; then
  cp tests/utils/patch_module_args_shim.py "$site/module_utils/testing.py"
fi
tr ' ' '\n' <<<"$want" >"$marker"
echo "$PWD/$venv/bin"
