#!/usr/bin/env bash
# make bench: measure the collection against the consul CLI on a lab of its own,
# then write docs/benchmarks.md. Self-contained and idempotent; prints progress.
#
# Environment (all optional):
#   BENCH_PORT_BASE   port base of the bench lab (default 26000: not the test lab's 18000)
#   BENCH_STATE_DIR   the bench lab's state directory (default bench/results/lab, git-ignored)
#   BENCH_REPS        repetitions of the pair and module measurements (default 5)
#   BENCH_SCALE_REPS  repetitions of each scale point (default 5)
#   BENCH_TOPO_REPS   repetitions of each fleet (floor, first run, rerun; default 3)
#   BENCH_TOPOLOGIES  comma list of fleets: 1x1,1x4,1x8,3x3,mesh4 (default: all)
#   BENCH_BASELINE    another checkout of the collection (e.g. a git worktree of main): its role is measured
#                     alternately with this one on the fleets, for a before/after table
#   BENCH_ONLY        comma list of floor,polling,role,modules,scale,overhead,topologies (default: all)
#   BENCH_OUT         the generated document (default docs/benchmarks.md)
#   BENCH_KEEP_LAB    1: leave the bench lab running afterwards
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
cd "$root"

say() { printf '[bench] %s\n' "$*"; }

results="$root/bench/results"
mkdir -p "$results"
export LAB_STATE_DIR=${BENCH_STATE_DIR:-$results/lab}
export LAB_PORT_BASE=${BENCH_PORT_BASE:-26000}
# The largest fleet, a star of one acceptor and 8 dialers, needs 9 clusters.
export LAB_CLUSTERS=9
out=${BENCH_OUT:-$root/docs/benchmarks.md}
py="$root/.venv/bin/python"
[ -x "$py" ] || { echo "[bench] ERROR: no venv at $root/.venv (run 'make venv' or 'make bench')" >&2; exit 1; }

# The collection by FQCN, as `make collection-link` makes it.
mkdir -p "$root/.ansible/collections/ansible_collections/seed"
ln -sfn "$root" "$root/.ansible/collections/ansible_collections/seed/consul_peering"

CONSUL_BIN=$(bash lab/consul.sh)
export CONSUL_BIN

started=$(date +%s)
load_start=$(uptime | sed 's/^ *//')
say "machine: $(nproc) CPUs; $load_start"
say "lab: $LAB_CLUSTERS clusters, port base $LAB_PORT_BASE, state $LAB_STATE_DIR (fresh)"

stop_lab() {
  if [ "${BENCH_KEEP_LAB:-0}" != 1 ]; then
    bash lab/lab.sh down >/dev/null || echo "[bench] WARNING: 'LAB_STATE_DIR=$LAB_STATE_DIR lab/lab.sh down' failed" >&2
  fi
}
trap stop_lab EXIT
# A fresh lab every time: whatever an earlier run left in this state directory goes first.
bash lab/lab.sh down >/dev/null
bash lab/lab.sh up | sed 's/^/  /'

"$py" "$here/bench.py" --env "$LAB_STATE_DIR/env" --out "$results/results.json" \
  --reps "${BENCH_REPS:-5}" --scale-reps "${BENCH_SCALE_REPS:-5}" --topo-reps "${BENCH_TOPO_REPS:-3}" \
  --topologies "${BENCH_TOPOLOGIES:-1x1,1x4,1x8,3x3,mesh4}" --baseline "${BENCH_BASELINE:-}" \
  --only "${BENCH_ONLY:-floor,polling,role,modules,scale,overhead,topologies}"

load_end=$(uptime | sed 's/^ *//')
"$py" "$here/report.py" --results "$results/results.json" --env "$LAB_STATE_DIR/env" --out "$out" \
  --started "$started" --load "at start=$load_start" --load "at end=$load_end"
say "done in $(( $(date +%s) - started ))s; results: $out (raw: $results/results.json)"
