#!/usr/bin/env bash
# The floor: what a user would write instead of the role, with the consul CLI, every pair in parallel.
#
#   floor.sh ACCEPTOR_URL DIALER_URL      one pair (names from ACCEPTOR_NAME, DIALER_NAME)
#   floor.sh - < spec                     any topology, one line per step:
#     pair   ACCEPTOR_URL ACCEPTOR_NAME DIALER_URL DIALER_NAME
#     export URL PEER_NAME...   URL exports $SERVICE to these peers and allows $SOURCE from them
#     import URL PEER_NAME      wait until $SERVICE of PEER_NAME is visible at URL
#
# Every pair runs in its own background job (token, establish, wait until both sides are ACTIVE),
# every cluster writes its exports and intentions at once (Consul accepts a consumer or a source
# naming a peer that does not exist yet), and every import is polled in parallel: the floor is
# Consul's own time plus one CLI start-up per step, not the sum over pairs.
# Env: CONSUL_BIN, ACCEPTOR_NAME (dc1), DIALER_NAME (dc2), SERVICE (backend),
#      SOURCE (frontend), POLL (seconds between polls, 0.1), FLOOR_TIMEOUT (60)
set -euo pipefail
consul=${CONSUL_BIN:?CONSUL_BIN is required}
svc=${SERVICE:-backend} src=${SOURCE:-frontend}
poll=${POLL:-0.1} limit=${FLOOR_TIMEOUT:-60}

if [ "${1:-}" = - ]; then
  spec=$(cat)
else
  A=$1 D=$2 an=${ACCEPTOR_NAME:-dc1} dn=${DIALER_NAME:-dc2}
  spec="pair $A $an $D $dn
export $A $dn
import $D $an"
fi

active() {  # url name
  "$consul" peering read -http-addr="$1" -name="$2" 2>/dev/null | grep -q 'State: *ACTIVE'
}

peer_pair() {  # acceptor_url acceptor_name dialer_url dialer_name
  local token deadline=$((SECONDS + limit))
  # The token stays in a shell variable: never on disk, never printed.
  token=$("$consul" peering generate-token -http-addr="$1" -name="$4")
  "$consul" peering establish -http-addr="$3" -name="$2" -peering-token="$token" >/dev/null
  unset token
  until active "$1" "$4" && active "$3" "$2"; do
    [ "$SECONDS" -lt "$deadline" ] || { echo "floor: $2-$4 not ACTIVE after ${limit}s" >&2; return 1; }
    sleep "$poll"
  done
}

export_to() {  # url peer...
  local url=$1 consumers="" sources="" p
  shift
  for p in "$@"; do
    consumers+="${consumers:+, }{\"Peer\": \"$p\"}"
    sources+="${sources:+, }{\"Name\": \"$src\", \"Peer\": \"$p\", \"Action\": \"allow\"}"
  done
  "$consul" config write -http-addr="$url" - >/dev/null <<JSON
{"Kind": "exported-services", "Name": "default", "Services": [{"Name": "$svc", "Consumers": [$consumers]}]}
JSON
  "$consul" config write -http-addr="$url" - >/dev/null <<JSON
{"Kind": "service-intentions", "Name": "$svc", "Sources": [$sources]}
JSON
}

imported() {  # url peer
  local deadline=$((SECONDS + limit))
  # The CLI has no "services imported from a peer" listing; the health API is what a user would poll.
  until curl -fsS --max-time 5 "$1/v1/health/service/$svc?peer=$2" | grep -q '"Service"'; do
    [ "$SECONDS" -lt "$deadline" ] || { echo "floor: $svc of $2 not visible at $1 after ${limit}s" >&2; return 1; }
    sleep "$poll"
  done
}

jobs_=()
while read -r kind args; do
  case "$kind" in
    pair) peer_pair $args & jobs_+=($!) ;;
    export) export_to $args & jobs_+=($!) ;;
    "") ;;
    *) ;;
  esac
done <<<"$spec"
rc=0
for j in "${jobs_[@]}"; do wait "$j" || rc=1; done
[ "$rc" = 0 ] || exit 1
# Imports last: a service is visible only once its peering is ACTIVE and its export written.
jobs_=()
while read -r kind args; do
  [ "$kind" = import ] || continue
  imported $args & jobs_+=($!)
done <<<"$spec"
for j in "${jobs_[@]}"; do wait "$j" || rc=1; done
exit "$rc"
