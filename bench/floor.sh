#!/usr/bin/env bash
# The floor: what a user would write instead of the role, with the consul CLI.
# Peers ACCEPTOR (peer name $ACCEPTOR_NAME) with DIALER ($DIALER_NAME), exports
# $SERVICE to the dialer, allows $SOURCE from the dialer to call it, waits until
# both sides are ACTIVE and the service is visible on the dialer.
#   floor.sh ACCEPTOR_URL DIALER_URL
# Env: CONSUL_BIN, ACCEPTOR_NAME (dc1), DIALER_NAME (dc2), SERVICE (backend),
#      SOURCE (frontend), POLL (seconds between polls, 0.1), FLOOR_TIMEOUT (60)
set -euo pipefail
A=$1 D=$2
consul=${CONSUL_BIN:?CONSUL_BIN is required}
an=${ACCEPTOR_NAME:-dc1} dn=${DIALER_NAME:-dc2}
svc=${SERVICE:-backend} src=${SOURCE:-frontend}
poll=${POLL:-0.1} limit=${FLOOR_TIMEOUT:-60}

# The token stays in a shell variable: never on disk, never printed.
token=$("$consul" peering generate-token -http-addr="$A" -name="$dn")
"$consul" peering establish -http-addr="$D" -name="$an" -peering-token="$token" >/dev/null
unset token

"$consul" config write -http-addr="$A" - >/dev/null <<JSON
{"Kind": "exported-services", "Name": "default",
 "Services": [{"Name": "$svc", "Consumers": [{"Peer": "$dn"}]}]}
JSON
"$consul" config write -http-addr="$A" - >/dev/null <<JSON
{"Kind": "service-intentions", "Name": "$svc",
 "Sources": [{"Name": "$src", "Peer": "$dn", "Action": "allow"}]}
JSON

deadline=$((SECONDS + limit))
until "$consul" peering read -http-addr="$A" -name="$dn" 2>/dev/null | grep -q 'State: *ACTIVE' \
   && "$consul" peering read -http-addr="$D" -name="$an" 2>/dev/null | grep -q 'State: *ACTIVE'; do
  [ "$SECONDS" -lt "$deadline" ] || { echo "floor: peering not ACTIVE after ${limit}s" >&2; exit 1; }
  sleep "$poll"
done
# The CLI has no "services imported from a peer" listing; the health API is what a user would poll.
until curl -fsS --max-time 5 "$D/v1/health/service/$svc?peer=$an" | grep -q '"Service"'; do
  [ "$SECONDS" -lt "$deadline" ] || { echo "floor: $svc not visible on the dialer after ${limit}s" >&2; exit 1; }
  sleep "$poll"
done
