#!/usr/bin/env bash
# Local Consul lab: N single-server clusters on loopback, for integration tests.
#
#   lab/lab.sh up      start (or reuse) the clusters, wait until ready, write $LAB_STATE_DIR/env
#   lab/lab.sh down    stop the agents this lab started, remove their data and the env file
#   lab/lab.sh status  one line per cluster; exit 0 when all are up, 3 otherwise
#   lab/lab.sh restart stop every agent and start it again on the same data dir, with the
#                      binary the environment selects now (an in-place upgrade), wait until ready
#
# Environment:
#   LAB_CLUSTERS   number of clusters (default 2; cluster i has datacenter dc<i>)
#   LAB_PORT_BASE  cluster i listens on LAB_PORT_BASE + 100*i + offset (default 18000)
#   LAB_STATE_DIR  where configs, data, logs and pid files live (default lab/.state)
#   LAB_WAIT       seconds `up` waits for each cluster to become ready (default 60)
#   LAB_STOP_WAIT  seconds `down` waits after SIGTERM before SIGKILL (default 20)
#   LAB_ACL        1: ACLs on (default policy deny); `up` bootstraps a management token per
#                  cluster and makes least-privilege tokens (files, mode 0600; paths in the env file)
#   LAB_TLS        1: the HTTP API is served over HTTPS only, with a CA and certificates made by
#                  `consul tls` at `up` (CLUSTER<i>_URL=https://..., CLUSTER<i>_CACERT, client cert/key)
#   LAB_MTLS       1: like LAB_TLS, and HTTPS requires a client certificate (verify_incoming)
#                  The variants combine; see docs/lab.md. A running lab keeps its variant:
#                  `up` with other settings refuses until `down`.
#   LAB_SERVERS    servers per cluster: 1 (default) or 3 (HA: one raft of 3, bootstrap_expect=3,
#                  retry_join among them; server j>0 listens on offsets 80+/90+, see docs/lab.md).
#                  `up` also restarts a killed server of a running HA cluster, keeping its data;
#                  with LAB_RESTART=1 also a cluster whose servers are all stopped.
#   CONSUL_BIN     consul binary to use (otherwise lab/consul.sh finds or builds one)
#   CONSUL_VERSION a Consul release lab/consul.sh builds (and caches), e.g. 1.18.2 or "oldest"
#   CLUSTER<i>_CONSUL_BIN / CLUSTER<i>_CONSUL_VERSION
#                  the same for cluster i alone (mixed-version labs); unset: the lab's binary
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
prog="lab/lab.sh"

# Offsets from a cluster's base port. Every listener gets its own port so
# clusters (and two checkouts with different LAB_PORT_BASE) never collide.
OFF_HTTP=0 OFF_DNS=1 OFF_SERF_LAN=2 OFF_SERF_WAN=3 OFF_SERVER=4 OFF_GRPC=5 OFF_GRPC_TLS=6
PORT_NAMES=(http dns serf_lan serf_wan server grpc grpc_tls)
# Ranges Consul hands out to sidecar/expose registrations without an explicit
# port; nothing listens on them, they only keep clusters from assigning the same ones.
OFF_SIDECAR_MIN=20 OFF_SIDECAR_MAX=49 OFF_EXPOSE_MIN=50 OFF_EXPOSE_MAX=79

say() { printf '[lab] %s\n' "$*"; }
warn() { printf '[lab] %s\n' "$*" >&2; }
die() { printf '[lab] ERROR: %s\n' "$*" >&2; exit 1; }

usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
}

is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }

# --- state directory and lock ------------------------------------------------

init_state_dir() {
  local dir="${LAB_STATE_DIR:-$here/.state}"
  mkdir -p "$dir"
  STATE=$(cd "$dir" && pwd -P)
  ENV_FILE="$STATE/env"
}

# One lab command at a time per state directory. The lock fd is closed for the
# agents we start (see start_agent), so it is released when this script exits.
take_lock() {
  exec 8>"$STATE/.lock"
  flock -w 120 8 || die "another lab/lab.sh is still running on $STATE (waited 120s for $STATE/.lock)"
}

# Values recorded by the last `up` fill in what the caller did not set, so a
# bare `status` describes the lab that is actually there.
env_file_value() {
  [ -r "$ENV_FILE" ] || return 1
  sed -n "s/^$1=//p" "$ENV_FILE" | tail -n 1 | grep .
}

load_settings() {
  local from_file=${1:-no}
  if [ "$from_file" = yes ]; then
    [ -n "${LAB_CLUSTERS:-}" ] || LAB_CLUSTERS=$(env_file_value LAB_CLUSTERS || true)
    [ -n "${LAB_PORT_BASE:-}" ] || LAB_PORT_BASE=$(env_file_value LAB_PORT_BASE || true)
  fi
  if [ "$from_file" = yes ]; then
    [ -n "${LAB_ACL:-}" ] || LAB_ACL=$(env_file_value LAB_ACL || true)
    [ -n "${LAB_TLS:-}" ] || LAB_TLS=$(env_file_value LAB_TLS || true)
    [ -n "${LAB_MTLS:-}" ] || LAB_MTLS=$(env_file_value LAB_MTLS || true)
  fi
  ACL=${LAB_ACL:-0} TLS=${LAB_TLS:-0} MTLS=${LAB_MTLS:-0}
  local v
  for v in ACL TLS MTLS; do
    case ${!v} in 0|1) ;; *) die "LAB_$v must be 0 or 1 (got '${!v}')" ;; esac
  done
  # Client certificates only make sense over HTTPS.
  if [ "$MTLS" = 1 ]; then TLS=1; fi
  VARIANT="LAB_ACL=$ACL LAB_TLS=$TLS LAB_MTLS=$MTLS"
  ha_settings "$from_file"
  N=${LAB_CLUSTERS:-2}
  BASE=${LAB_PORT_BASE:-18000}
  WAIT=${LAB_WAIT:-60}
  STOP_WAIT=${LAB_STOP_WAIT:-20}
  if ! is_uint "$N" || [ "$N" -lt 1 ] || [ "$N" -gt 50 ]; then
    die "LAB_CLUSTERS must be an integer 1..50 (got '$N')"
  fi
  if ! is_uint "$BASE" || [ "$BASE" -lt 1024 ] || [ $((BASE + 100 * N + 99)) -gt 65535 ]; then
    die "LAB_PORT_BASE=$BASE with LAB_CLUSTERS=$N gives ports outside 1024..65535"
  fi
  CURL_TLS=()
  if [ "$TLS" = 1 ]; then
    CURL_TLS=(--cacert "$(ca_path)")
    if [ "$MTLS" = 1 ]; then CURL_TLS+=(--cert "$(client_cert_path)" --key "$(client_key_path)"); fi
  fi
  if ! is_uint "$WAIT" || [ "$WAIT" -lt 1 ]; then die "LAB_WAIT must be a positive integer (got '$WAIT')"; fi
  if ! is_uint "$STOP_WAIT" || [ "$STOP_WAIT" -lt 1 ]; then
    die "LAB_STOP_WAIT must be a positive integer (got '$STOP_WAIT')"
  fi
}

# --- per-cluster Consul binaries (mixed-version labs) ---------------------------

# CLUSTER<i>_CONSUL_BIN, else CLUSTER<i>_CONSUL_VERSION (built by consul.sh), else
# the lab's CONSUL_BIN. Resolved once per command into CLUSTER_BIN[i].
declare -a CLUSTER_BIN=()
resolve_cluster_bins() {
  local i var_bin var_ver b
  for i in $(seq 1 "$N"); do
    var_bin="CLUSTER${i}_CONSUL_BIN" var_ver="CLUSTER${i}_CONSUL_VERSION"
    if [ -n "${!var_bin:-}" ]; then
      b=$(CONSUL_BIN="${!var_bin}" bash "$here/consul.sh") || die "$var_bin=${!var_bin} does not run"
    elif [ -n "${!var_ver:-}" ]; then
      b=$(env -u CONSUL_BIN CONSUL_VERSION="${!var_ver}" bash "$here/consul.sh") \
        || die "no consul binary for $var_ver=${!var_ver} (lab/consul.sh failed)"
    else
      b=$CONSUL_BIN
    fi
    [ -x "$b" ] || die "consul binary '$b' for cluster$i is not executable"
    CLUSTER_BIN[i]=$b
  done
}

# "1.14.11" from `consul version` (first line "Consul v1.14.11").
consul_version_of() {
  "$1" version 2>/dev/null | sed -n '1s/^Consul v\([^ ]*\).*/\1/p'
}

# --- per-cluster layout --------------------------------------------------------

# SRV (0 unless set by the HA functions) selects server SRV of an HA cluster: its own
# listeners at offset+70+10*SRV (80-86, 90-96), its own directory under the cluster's.
port() {
  local off=$2
  if [ "${SRV:-0}" -gt 0 ] && [ "$off" -lt 10 ]; then off=$((off + 70 + 10 * SRV)); fi
  echo $((BASE + 100 * $1 + off))
}
cdir() { echo "$STATE/cluster$1"; }
sdir() { if [ "${SRV:-0}" -gt 0 ]; then echo "$STATE/cluster$1/s$SRV"; else echo "$STATE/cluster$1"; fi; }
node_name() { if [ "${SRV:-0}" -gt 0 ]; then echo "lab-c$1-s$SRV"; else echo "lab-c$1"; fi; }
cfg_path() { echo "$(sdir "$1")/consul.hcl"; }
tok_dir() { echo "$STATE/cluster$1/acl"; }
tok_path() { echo "$STATE/cluster$1/acl/$2.token"; }
tls_dir() { echo "$STATE/tls"; }
ca_path() { echo "$STATE/tls/consul-agent-ca.pem"; }
client_cert_path() { echo "$STATE/tls/dc1-client-consul-0.pem"; }
client_key_path() { echo "$STATE/tls/dc1-client-consul-0-key.pem"; }
server_cert_path() { echo "$STATE/cluster$1/tls/dc$1-server-consul-0.pem"; }
server_key_path() { echo "$STATE/cluster$1/tls/dc$1-server-consul-0-key.pem"; }
pid_path() { echo "$(sdir "$1")/consul.pid"; }
log_path() { echo "$(sdir "$1")/consul.log"; }
url() {
  if [ "$TLS" = 1 ]; then echo "https://127.0.0.1:$(port "$1" $OFF_HTTP)"; else echo "http://127.0.0.1:$(port "$1" $OFF_HTTP)"; fi
}
dc() { echo "dc$1"; }

all_ports() {
  local i=$1 off
  for off in $OFF_HTTP $OFF_DNS $OFF_SERF_LAN $OFF_SERF_WAN $OFF_SERVER $OFF_GRPC $OFF_GRPC_TLS; do
    port "$i" "$off"
  done
}

render_config() {
  local i=$1
  cat <<EOF
# Written by lab/lab.sh for cluster$i; regenerated by 'up', removed by 'down'.
datacenter             = "$(dc "$i")"
node_name              = "$(node_name "$i")"
data_dir               = "$(sdir "$i")/data"
server                 = true
bootstrap_expect       = ${SERVERS:-1}
bind_addr              = "127.0.0.1"
client_addr            = "127.0.0.1"
advertise_addr         = "127.0.0.1"
advertise_addr_wan     = "127.0.0.1"
log_level              = "info"
disable_update_check   = true
enable_script_checks   = false

ports {
$(if [ "$TLS" = 1 ]; then
    printf '  # HTTPS only, on the port plain labs use for HTTP.\n'
    printf '  http             = -1\n  https            = %s\n' "$(port "$i" $OFF_HTTP)"
  else
    printf '  http             = %s\n  https            = -1\n' "$(port "$i" $OFF_HTTP)"
  fi)
  dns              = $(port "$i" $OFF_DNS)
  serf_lan         = $(port "$i" $OFF_SERF_LAN)
  serf_wan         = $(port "$i" $OFF_SERF_WAN)
  server           = $(port "$i" $OFF_SERVER)
  grpc             = $(port "$i" $OFF_GRPC)
  # Peering tokens advertise this port (the servers' grpc_tls_port service
  # meta), and dialers reach it over TLS signed by the acceptor's Connect CA.
  grpc_tls         = $(port "$i" $OFF_GRPC_TLS)
  sidecar_min_port = $(port "$i" $OFF_SIDECAR_MIN)
  sidecar_max_port = $(port "$i" $OFF_SIDECAR_MAX)
  expose_min_port  = $(port "$i" $OFF_EXPOSE_MIN)
  expose_max_port  = $(port "$i" $OFF_EXPOSE_MAX)
}

# Peering tokens need the Connect CA (its roots and the servers' peering TLS certificate).
connect {
  enabled = true
}

peering {
  enabled = true
}

ui_config {
  enabled = false
}

performance {
  raft_multiplier = 1
}
EOF
  ha_config "$i"
  if [ "$ACL" = 1 ]; then
    cat <<EOF

acl {
  enabled                  = true
  default_policy           = "deny"
  enable_token_persistence = true
}
EOF
  fi
  if [ "$TLS" = 1 ]; then
    # Only the HTTPS API: gRPC TLS (peering) keeps serving the Connect CA's certificate.
    cat <<EOF

tls {
  https {
    ca_file         = "$(ca_path)"
    cert_file       = "$(server_cert_path "$i")"
    key_file        = "$(server_key_path "$i")"
    verify_incoming = $([ "$MTLS" = 1 ] && echo true || echo false)
  }
}
EOF
  fi
}

# --- processes -----------------------------------------------------------------

# A pid is one of ours only if it is a live consul agent started with this
# cluster's config file (the path is unique to this state directory).
is_ours() {
  local pid=$1 cfg=$2
  is_uint "$pid" || return 1
  [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' '\n' 2>/dev/null <"/proc/$pid/cmdline" | grep -qxF -- "-config-file=$cfg"
}

# The agent for cluster i: from its pid file, else found by its config path
# (e.g. the pid file was lost). Prints the pid, or fails.
find_pid() {
  local i=$1 cfg pidf pid p
  cfg=$(cfg_path "$i"); pidf=$(pid_path "$i")
  if [ -r "$pidf" ]; then
    pid=$(tr -dc '0-9' <"$pidf")
    if is_ours "$pid" "$cfg"; then echo "$pid"; return 0; fi
  fi
  for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    if is_ours "$pid" "$cfg"; then echo "$pid"; return 0; fi
  done
  return 1
}

# Every agent started from any config under this state directory, as "pid cfg" lines.
all_our_agents() {
  local p arg cfg
  for p in /proc/[0-9]*; do
    cfg=
    while IFS= read -r -d '' arg; do
      case $arg in
        "-config-file=$STATE/cluster"*/consul.hcl) cfg=${arg#-config-file=}; break ;;
      esac
    done 2>/dev/null <"$p/cmdline" || true
    if [ -n "$cfg" ]; then echo "${p#/proc/} $cfg"; fi
  done
  return 0
}

port_owner() {
  # Best effort: "name pid" of whatever listens on the port.
  ss -Hltunp "( sport = :$1 )" 2>/dev/null \
    | sed -n 's/.*users:(("\([^"]*\)",pid=\([0-9]*\).*/\1 (pid \2)/p' | head -n 1
}

port_in_use() {
  local p=$1
  if command -v ss >/dev/null 2>&1; then
    [ -n "$(ss -Hltun "( sport = :$p )" 2>/dev/null)" ]
  else
    # TCP only, but every lab listener except dns/serf has a TCP side too.
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null
  fi
}

check_ports_free() {
  local i=$1 p idx=0 owner
  for p in $(all_ports "$i"); do
    if port_in_use "$p"; then
      owner=$(port_owner "$p")
      die "port $p (cluster$i ${PORT_NAMES[$idx]}) on 127.0.0.1 is already in use${owner:+ by $owner}, not by this lab; stop it or choose another LAB_PORT_BASE (now $BASE)"
    fi
    idx=$((idx + 1))
  done
}

start_agent() {
  local i=$1 pid
  mkdir -p "$(sdir "$i")/data"
  render_config "$i" >"$(cfg_path "$i")"
  : >"$(log_path "$i")"
  # Detached in its own session; fd 8 (our lock) is closed so the agent does not hold it.
  setsid nohup "${CLUSTER_BIN[i]:-$CONSUL_BIN}" agent "-config-file=$(cfg_path "$i")" \
    </dev/null >>"$(log_path "$i")" 2>&1 8>&- &
  pid=$!
  echo "$pid" >"$(pid_path "$i")"
  START_TIME[i]=$(date +%s)
  say "cluster$i${SRV:+ server $SRV} $(dc "$i") starting Consul $(consul_version_of "${CLUSTER_BIN[i]:-$CONSUL_BIN}") (pid $pid, ports $(port "$i" 0)-$(port "$i" $OFF_GRPC_TLS), log $(log_path "$i"))"
}

http_get() {
  curl -fsS --max-time 3 "${CURL_TLS[@]}" "$1" 2>/dev/null
}

# --- TLS material (made by the consul binary itself) -----------------------------

# One CA for the whole lab (so one CONSUL_CACERT serves every cluster), made once
# per lab life; one client certificate for mTLS; a server certificate per cluster.
make_ca() {
  local d; d=$(tls_dir)
  if [ -s "$(ca_path)" ] && [ -s "$(client_cert_path)" ]; then return 0; fi
  rm -rf "$d"; mkdir -p "$d"; chmod 700 "$d"
  (cd "$d" && "$CONSUL_BIN" tls ca create -days 30 >/dev/null && "$CONSUL_BIN" tls cert create -client -days 30 >/dev/null) \
    || die "consul tls ca create / cert create -client failed in $d"
  chmod 600 "$d"/*-key.pem
  say "TLS: CA $(ca_path), client certificate $(client_cert_path)"
}

make_server_cert() {
  local i=$1 d; d=$(cdir "$i")/tls
  mkdir -p "$d"; chmod 700 "$d"
  (cd "$d" && "$CONSUL_BIN" tls cert create -server -dc "$(dc "$i")" -days 30 \
      -ca "$(ca_path)" -key "$(tls_dir)/consul-agent-ca-key.pem" >/dev/null 2>&1) \
    || die "consul tls cert create -server -dc $(dc "$i") failed in $d"
  chmod 600 "$(server_key_path "$i")"
}

# --- ACLs --------------------------------------------------------------------------

# Least-privilege tokens made on every ACL lab cluster, by name. The rules are the
# ones docs/acl.md proves per module (tests/integration/test_acl.py).
ACL_ROLES=(peering peering_read exports intentions verify role)
acl_rules() {
  case $1 in
    agent) printf 'node%s "lab-c%s" { policy = "write" }\n' "$([ "${SERVERS:-1}" -gt 1 ] && echo _prefix)" "$2"; printf 'service_prefix "" { policy = "read" }\n' ;;
    peering) printf 'peering = "write"\n' ;;
    peering_read) printf 'peering = "read"\n' ;;
    exports) printf 'mesh = "write"\n' ;;
    intentions) printf 'service_prefix "" {\n  policy     = "deny"\n  intentions = "write"\n}\n' ;;
    verify) printf 'peering = "read"\nservice_prefix "" { policy = "read" }\nnode_prefix "" { policy = "read" }\n' ;;
    role) printf 'peering = "write"\nmesh = "write"\nkey_prefix "seed/consul_peering/" { policy = "write" }\nsession_prefix "" { policy = "write" }\nservice_prefix "" {\n  policy     = "read"\n  intentions = "write"\n}\nnode_prefix "" { policy = "read" }\n' ;;
  esac
}

# A JSON string literal (enough for the rules above: backslash, quote, newline).
json_str() {
  local s=$1
  s=${s//\\/\\\\}; s=${s//\"/\\\"}; s=${s//$'\n'/\\n}
  printf '"%s"' "$s"
}

# A new random secret into a file only we can read; never on a command line.
new_secret_file() {
  (umask 077 && tr -d '\n' </proc/sys/kernel/random/uuid >"$1")
}

# api METHOD URL HEADER_FILE BODY. The body goes to curl on stdin (a function argument
# is no process argument). The answer (it may hold a secret) is discarded on success; on
# failure its start, an error text, is kept in API_ERROR.
API_ERROR=
api() {
  local method=$1 u=$2 hdr=$3 body=$4 out
  local -a h=()
  if [ -n "$hdr" ]; then h=(-H "@$hdr"); fi
  if out=$(curl -sS --max-time 10 --fail-with-body "${CURL_TLS[@]}" "${h[@]}" -X "$method" --data-binary @- "$u" 2>&1 <<<"$body"); then
    return 0
  fi
  API_ERROR=${out:0:300}
  return 1
}

acl_setup() {
  local i=$1 d u mgmt hdr role start f
  d=$(tok_dir "$i"); u=$(url "$i")
  mkdir -p "$d"; chmod 700 "$d"
  mgmt=$(tok_path "$i" management); hdr="$d/.management.header"
  new_secret_file "$mgmt"
  # printf is a builtin: the secret reaches curl through a file and stdin only.
  (umask 077 && printf 'X-Consul-Token: %s\n' "$(cat "$mgmt")" >"$hdr")
  start=$(date +%s)
  # The ACL system may refuse the bootstrap for a moment after the election.
  until api PUT "$u/v1/acl/bootstrap" "" "$(printf '{"BootstrapSecret": "%s"}' "$(cat "$mgmt")")"; do
    if [ $(( $(date +%s) - start )) -ge "$WAIT" ]; then
      fail_cluster "$i" "ACL bootstrap failed for ${WAIT}s: $API_ERROR"
    fi
    sleep 0.5
  done
  for role in agent "${ACL_ROLES[@]}"; do
    api PUT "$u/v1/acl/policy" "$hdr" "$(printf '{"Name": "lab-%s", "Rules": %s}' "$role" "$(json_str "$(acl_rules "$role" "$i")")")" \
      || fail_cluster "$i" "creating ACL policy lab-$role failed: $API_ERROR"
    f=$(tok_path "$i" "$role")
    new_secret_file "$f"
    api PUT "$u/v1/acl/token" "$hdr" \
      "$(printf '{"SecretID": "%s", "Description": "lab %s token", "Policies": [{"Name": "lab-%s"}]}' "$(cat "$f")" "$role" "$role")" \
      || fail_cluster "$i" "creating the ACL token for lab-$role failed: $API_ERROR"
  done
  # The agent registers its node and services with its own token (persisted: enable_token_persistence).
  api PUT "$u/v1/agent/token/agent" "$hdr" "$(printf '{"Token": "%s"}' "$(cat "$(tok_path "$i" agent)")")" \
    || fail_cluster "$i" "setting the agent token failed: $API_ERROR"
  say "cluster$i ACLs bootstrapped; tokens (mode 0600) in $d"
}

# A reused ACL cluster must still have its token files, and the management one must work.
acl_check() {
  local i=$1 role
  for role in management agent "${ACL_ROLES[@]}"; do
    [ -s "$(tok_path "$i" "$role")" ] \
      || die "cluster$i runs with ACLs but its token file $(tok_path "$i" "$role") is missing; run '$prog down' first"
  done
  curl -fsS --max-time 5 "${CURL_TLS[@]}" -H "@$(tok_dir "$i")/.management.header" "$(url "$i")/v1/acl/token/self" >/dev/null 2>&1 \
    || die "cluster$i's management token ($(tok_path "$i" management)) is not accepted; run '$prog down' first"
}

# Prints the leader address and succeeds once the cluster has a leader and its
# Connect CA is initialised (roots with a trust domain: peering tokens need both).
ready() {
  local u leader roots
  u=$(url "$1")
  leader=$(http_get "$u/v1/status/leader") || return 1
  leader=${leader//\"/}
  [ -n "$leader" ] || return 1
  roots=$(http_get "$u/v1/connect/ca/roots") || return 1
  grep -q '"TrustDomain": *"[^"]' <<<"$roots" || return 1
  grep -q '"RootCert"' <<<"$roots" || return 1
  ha_ready "$1" || return 1
  echo "$leader"
}

leader_of() {
  local l
  l=$(http_get "$(url "$1")/v1/status/leader") || return 1
  l=${l//\"/}
  [ -n "$l" ] && echo "$l"
}

fail_cluster() {
  local i=$1 why=$2 pid
  {
    printf '[lab] ERROR: cluster%s %s (%s): %s\n' "$i" "$(dc "$i")" "$(url "$i")" "$why"
    printf '[lab] last 30 lines of %s:\n' "$(log_path "$i")"
    tail -n 30 "$(log_path "$i")" 2>/dev/null | sed 's/^/    /'
  } >&2
  if pid=$(find_pid "$i"); then
    stop_pids "$pid" >/dev/null
  fi
  die "lab not up; the log stays in $(cdir "$i"), '$prog down' cleans up"
}

# SIGTERM, a bounded wait, then SIGKILL. Arguments: pids (all already checked to be ours).
stop_pids() {
  local pid deadline left
  for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
  deadline=$(( $(date +%s) + STOP_WAIT ))
  while :; do
    left=()
    for pid in "$@"; do still_running "$pid" && left+=("$pid"); done
    [ ${#left[@]} -eq 0 ] && return 0
    [ "$(date +%s)" -ge "$deadline" ] && break
    sleep 0.2
  done
  warn "pid(s) ${left[*]} still running ${STOP_WAIT}s after SIGTERM; sending SIGKILL"
  for pid in "${left[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  deadline=$(( $(date +%s) + 10 ))
  for pid in "${left[@]}"; do
    while still_running "$pid"; do
      [ "$(date +%s)" -ge "$deadline" ] && { warn "pid $pid survived SIGKILL"; return 1; }
      sleep 0.2
    done
  done
}

# Gone or a zombie (a zombie has no cmdline; its parent may not reap it at once).
still_running() {
  [ -r "/proc/$1/cmdline" ] && [ -n "$(tr -d '\0' 2>/dev/null <"/proc/$1/cmdline")" ]
}

# --- HA clusters (LAB_SERVERS > 1) --------------------------------------------------
# Server 0 of a cluster is the single-server layout (paths, ports, node name); server j>0
# has SRV=j (see port/sdir/node_name). These functions are the only HA-specific code.

ha_settings() {
  local from_file=$1
  if [ "$from_file" = yes ] && [ -z "${LAB_SERVERS:-}" ]; then LAB_SERVERS=$(env_file_value LAB_SERVERS || true); fi
  SERVERS=${LAB_SERVERS:-1}
  case $SERVERS in 1|2|3) ;; *) die "LAB_SERVERS must be 1, 2 or 3 (got '$SERVERS')" ;; esac
  if [ "$SERVERS" -gt 1 ]; then
    VARIANT="$VARIANT LAB_SERVERS=$SERVERS"
    local top=$(( ${LAB_PORT_BASE:-18000} + 100 * ${LAB_CLUSTERS:-2} + 96 ))
    [ "$top" -lt 32768 ] \
      || die "LAB_SERVERS=$SERVERS needs ports up to $top, inside the kernel's ephemeral range (32768+): lower LAB_PORT_BASE"
  fi
}

ha_config() {
  local i=$1 j
  [ "${SERVERS:-1}" -gt 1 ] || return 0
  printf '\n# HA: one raft of %s servers in %s.\nretry_join = [' "$SERVERS" "$(dc "$i")"
  for j in $(seq 0 $((SERVERS - 1))); do
    printf '%s"127.0.0.1:%s"' "$([ "$j" -gt 0 ] && echo ', ')" "$(SRV=$j port "$i" $OFF_SERF_LAN)"
  done
  printf ']\n'
}

# Start the servers j>0 of cluster i that are not running (data kept: a killed server rejoins).
ha_start_rest() {
  local i=$1 j
  [ "$SERVERS" -gt 1 ] || return 0
  for j in $(seq 1 $((SERVERS - 1))); do
    if SRV=$j find_pid "$i" >/dev/null; then continue; fi
    SRV=$j check_ports_free "$i"
    SRV=$j start_agent "$i"
  done
}

# LAB_RESTART=1: a cluster whose servers are all stopped is started again with its data
# (a whole-cluster outage), instead of being rebuilt empty.
ha_restart_wanted() {
  [ "${LAB_RESTART:-0}" = 1 ] && [ -d "$(cdir "$1")/data" ] && [ -s "$(cfg_path "$1")" ]
}

ha_any_alive() {
  local i=$1 j
  for j in $(seq 0 $((SERVERS - 1))); do
    if SRV=$j find_pid "$i" >/dev/null; then return 0; fi
  done
  return 1
}

# A running HA cluster: keep every live server (same config), restart the dead ones with their data.
ha_reuse() {
  local i=$1 j pid want have restarted=0 leader
  for j in $(seq 0 $((SERVERS - 1))); do
    if pid=$(SRV=$j find_pid "$i"); then
      want=$(SRV=$j render_config "$i")
      have=$(cat "$(SRV=$j cfg_path "$i")" 2>/dev/null || true)
      [ "$want" = "$have" ] \
        || die "cluster$i server $j (pid $pid) runs with a different configuration; run '$prog down' first"
      echo "$pid" >"$(SRV=$j pid_path "$i")"
    else
      SRV=$j check_ports_free "$i"
      SRV=$j start_agent "$i"
      restarted=1
    fi
  done
  if [ "$restarted" = 0 ] && leader=$(ready "$i"); then
    say "cluster$i $(dc "$i") $(url "$i") already up ($SERVERS servers, leader $leader): reusing it"
  else
    START_TIME[i]=$(date +%s)
    to_wait+=("$i")
  fi
}

# Every live server of cluster i knows the same leader and the raft has all servers.
ha_ready() {
  local i=$1 peers n
  [ "${SERVERS:-1}" -gt 1 ] || return 0
  peers=$(http_get "$(url "$i")/v1/status/peers") || return 1
  n=$(grep -o '"[0-9.]*:[0-9]*"' <<<"$peers" | wc -l)
  [ "$n" -eq "$SERVERS" ] || return 1
  # A restarted server must have rejoined: every server names the same leader.
  local j want have
  want=$(leader_of "$i") || return 1
  for j in $(seq 1 $((SERVERS - 1))); do
    have=$(SRV=$j leader_of "$i") || return 1
    [ "$have" = "$want" ] || return 1
  done
}

ha_acl_agent_tokens() {
  local i=$1 j hdr
  [ "$SERVERS" -gt 1 ] || return 0
  hdr="$(tok_dir "$i")/.management.header"
  for j in $(seq 1 $((SERVERS - 1))); do
    api PUT "$(SRV=$j url "$i")/v1/agent/token/agent" "$hdr" "$(printf '{"Token": "%s"}' "$(cat "$(tok_path "$i" agent)")")" \
      || fail_cluster "$i" "setting the agent token on server $j failed: $API_ERROR"
  done
}

ha_stop_cluster() {
  local i=$1 j pid
  local -a pids=()
  for j in 1 2; do
    if pid=$(SRV=$j find_pid "$i"); then pids+=("$pid"); fi
  done
  [ ${#pids[@]} -eq 0 ] || stop_pids "${pids[@]}"
}

ha_env() {
  local i j
  echo "LAB_SERVERS=$SERVERS"
  [ "$SERVERS" -gt 1 ] || return 0
  for i in $(seq 1 "$N"); do
    for j in $(seq 0 $((SERVERS - 1))); do
      echo "CLUSTER${i}_SERVER${j}_URL=$(SRV=$j url "$i")"
      echo "CLUSTER${i}_SERVER${j}_RPC=127.0.0.1:$(SRV=$j port "$i" $OFF_SERVER)"
      echo "CLUSTER${i}_SERVER${j}_PID_FILE=$(SRV=$j pid_path "$i")"
      echo "CLUSTER${i}_SERVER${j}_DATA_DIR=$(SRV=$j sdir "$i")/data"
    done
  done
}

# status for an HA cluster: asks any live server; the leader is shown with its server number.
ha_status_line() {
  local i=$1 j pid leader= lj=- alive=0 pids=() u
  for j in $(seq 0 $((SERVERS - 1))); do
    if pid=$(SRV=$j find_pid "$i"); then
      alive=$((alive + 1)); pids+=("s$j:$pid")
      if [ -z "$leader" ]; then leader=$(SRV=$j leader_of "$i" || true); fi
    else
      pids+=("s$j:-")
    fi
  done
  for j in $(seq 0 $((SERVERS - 1))); do
    if [ -n "$leader" ] && [ "$leader" = "127.0.0.1:$(SRV=$j port "$i" $OFF_SERVER)" ]; then lj=s$j; fi
  done
  local state=down
  if [ -n "$leader" ]; then state=up; fi
  printf 'cluster%s %s %s %s leader=%s(%s) servers=%s/%s pid=%s\n' "$i" "$(dc "$i")" "$(url "$i")" "$state" \
    "${leader:-none}" "$lj" "$alive" "$SERVERS" "$(IFS=,; echo "${pids[*]}")"
  [ "$state" = up ]
}

# --- commands --------------------------------------------------------------------

cmd_up() {
  local i pid leader elapsed now t0 want have
  command -v curl >/dev/null 2>&1 || die "curl is required"
  command -v setsid >/dev/null 2>&1 || die "setsid (util-linux) is required"
  load_settings no
  t0=$(date +%s)
  CONSUL_BIN=$(bash "$here/consul.sh") || die "no consul binary (lab/consul.sh failed)"
  [ -x "$CONSUL_BIN" ] || die "consul binary '$CONSUL_BIN' is not executable"
  resolve_cluster_bins
  take_lock

  # A running lab keeps the variant it was started with.
  local running_variant
  if [ -n "$(all_our_agents)" ]; then
    running_variant=$(cat "$STATE/variant" 2>/dev/null || echo "LAB_ACL=0 LAB_TLS=0 LAB_MTLS=0")
    [ "$running_variant" = "$VARIANT" ] \
      || die "the lab in $STATE runs with $running_variant, but this 'up' asks for $VARIANT; run '$prog down' first (or use the same settings)"
  fi
  echo "$VARIANT" >"$STATE/variant"

  # Clusters beyond LAB_CLUSTERS left from an earlier, larger lab.
  local d n
  for d in "$STATE"/cluster*; do
    [ -d "$d" ] || continue
    n=${d##*/cluster}
    is_uint "$n" || continue
    if [ "$n" -gt "$N" ]; then
      if pid=$(find_pid "$n"); then
        say "cluster$n is beyond LAB_CLUSTERS=$N: stopping pid $pid"
        stop_pids "$pid"
      fi
      ha_stop_cluster "$n"
      rm -rf "$d"
    fi
  done

  local -a to_start=() to_wait=()
  START_TIME=()
  for i in $(seq 1 "$N"); do
    if [ "$SERVERS" -gt 1 ] && { ha_any_alive "$i" || ha_restart_wanted "$i"; }; then ha_reuse "$i"; continue; fi
    if pid=$(find_pid "$i"); then
      want=$(render_config "$i")
      have=$(cat "$(cfg_path "$i")" 2>/dev/null || true)
      [ "$want" = "$have" ] \
        || die "cluster$i (pid $pid) runs with a different configuration (LAB_PORT_BASE or lab.sh changed?); run '$prog down' first"
      [ "$(readlink -f "/proc/$pid/exe" 2>/dev/null)" = "$(readlink -f "${CLUSTER_BIN[i]}")" ] \
        || die "cluster$i (pid $pid) runs $(readlink -f "/proc/$pid/exe" 2>/dev/null), not ${CLUSTER_BIN[i]}; run '$prog down' first (or '$prog restart' to switch binaries on the same data)"
      echo "$pid" >"$(pid_path "$i")"
      if leader=$(ready "$i"); then
        say "cluster$i $(dc "$i") $(url "$i") already up (pid $pid, leader $leader): reusing it"
      else
        say "cluster$i $(dc "$i") $(url "$i") already running (pid $pid) but not ready yet: reusing it, waiting"
        START_TIME[i]=$(date +%s)
        to_wait+=("$i")
      fi
    else
      if [ -e "$(pid_path "$i")" ]; then
        say "cluster$i: stale pid file ($(tr -dc '0-9' <"$(pid_path "$i")" || true) is not our agent): cleaning, starting fresh"
      fi
      rm -rf "$(cdir "$i")"
      to_start+=("$i")
    fi
  done

  for i in "${to_start[@]}"; do check_ports_free "$i"; done
  if [ "$TLS" = 1 ]; then
    make_ca
    for i in "${to_start[@]}"; do make_server_cert "$i"; done
  fi
  for i in "${to_start[@]}"; do start_agent "$i"; ha_start_rest "$i"; to_wait+=("$i"); done

  # Wait for all of them together; each has its own LAB_WAIT budget from its start.
  local -a pending=("${to_wait[@]}") next
  while [ ${#pending[@]} -gt 0 ]; do
    next=()
    for i in "${pending[@]}"; do
      now=$(date +%s)
      if leader=$(ready "$i"); then
        pid=$(find_pid "$i" || echo '?')
        say "cluster$i $(dc "$i") $(url "$i") ready in $((now - START_TIME[i]))s (pid $pid, leader $leader)"
      elif ! find_pid "$i" >/dev/null; then
        fail_cluster "$i" "the agent exited during startup"
      elif [ $((now - START_TIME[i])) -ge "$WAIT" ]; then
        fail_cluster "$i" "not ready after ${WAIT}s (no leader or Connect CA roots); raise LAB_WAIT if the machine is slow"
      else
        next+=("$i")
      fi
    done
    pending=("${next[@]}")
    [ ${#pending[@]} -gt 0 ] && sleep 0.5
  done

  if [ "$ACL" = 1 ]; then
    for i in $(seq 1 "$N"); do
      if [[ " ${to_start[*]} " == *" $i "* ]]; then acl_setup "$i"; ha_acl_agent_tokens "$i"; else acl_check "$i"; fi
    done
  fi

  write_env
  elapsed=$(( $(date +%s) - t0 ))
  say "up: $N cluster(s) ready in ${elapsed}s; environment in $ENV_FILE"
}

write_env() {
  local i tmp role
  tmp=$(mktemp "$STATE/.env.XXXXXX")
  {
    echo "CONSUL_BIN=$CONSUL_BIN"
    echo "LAB_CLUSTERS=$N"
    echo "LAB_PORT_BASE=$BASE"
    echo "LAB_STATE_DIR=$STATE"
    echo "LAB_ACL=$ACL"
    echo "LAB_TLS=$TLS"
    echo "LAB_MTLS=$MTLS"
    ha_env
    if [ "$TLS" = 1 ]; then
      echo "LAB_CACERT=$(ca_path)"
      echo "LAB_CLIENT_CERT=$(client_cert_path)"
      echo "LAB_CLIENT_KEY=$(client_key_path)"
    fi
    echo "ACCEPTOR_URL=$(url 1)"
    if [ "$N" -ge 2 ]; then echo "DIALER_URL=$(url 2)"; fi
    for i in $(seq 1 "$N"); do
      echo "CLUSTER${i}_URL=$(url "$i")"
      echo "CLUSTER${i}_DC=$(dc "$i")"
      echo "CLUSTER${i}_GRPC_PORT=$(port "$i" $OFF_GRPC)"
      echo "CLUSTER${i}_GRPC_TLS_PORT=$(port "$i" $OFF_GRPC_TLS)"
      echo "CLUSTER${i}_CONSUL_BIN=${CLUSTER_BIN[i]:-$CONSUL_BIN}"
      echo "CLUSTER${i}_CONSUL_VERSION=$(consul_version_of "${CLUSTER_BIN[i]:-$CONSUL_BIN}")"
      if [ "$TLS" = 1 ]; then
        echo "CLUSTER${i}_CACERT=$(ca_path)"
        echo "CLUSTER${i}_CLIENT_CERT=$(client_cert_path)"
        echo "CLUSTER${i}_CLIENT_KEY=$(client_key_path)"
        echo "CLUSTER${i}_TLS_SERVER_NAME=server.$(dc "$i").consul"
      fi
      if [ "$ACL" = 1 ]; then
        # Paths only: the secrets stay in their 0600 files.
        echo "CLUSTER${i}_TOKEN_FILE=$(tok_path "$i" management)"
        for role in "${ACL_ROLES[@]}"; do
          echo "CLUSTER${i}_TOKEN_FILE_${role^^}=$(tok_path "$i" "$role")"
        done
      fi
    done
  } >"$tmp"
  mv -f "$tmp" "$ENV_FILE"
}

cmd_down() {
  local pid cfg i
  load_settings yes
  take_lock
  local -a pids=() names=()
  while read -r pid cfg; do
    [ -n "$pid" ] || continue
    i=${cfg%/consul.hcl}; i=${i##*/cluster}
    pids+=("$pid"); names+=("cluster$i")
  done < <(all_our_agents)
  if [ ${#pids[@]} -eq 0 ]; then
    say "no lab agent running in $STATE"
  else
    say "stopping ${names[*]} (pid ${pids[*]})"
    local t0; t0=$(date +%s)
    stop_pids "${pids[@]}" || die "could not stop every agent; left the state in $STATE"
    say "stopped in $(( $(date +%s) - t0 ))s"
  fi
  rm -rf "$STATE"/cluster* "$ENV_FILE" "$STATE"/.env.* "$STATE/tls" "$STATE/variant"
  say "down: removed data and state under $STATE"
}

# Stop every agent, start it again on its data dir with the binary selected now
# (CONSUL_BIN / CONSUL_VERSION / CLUSTER<i>_...), and wait until each is ready again.
cmd_restart() {
  local i pid leader now t0
  load_settings yes
  t0=$(date +%s)
  CONSUL_BIN=$(bash "$here/consul.sh") || die "no consul binary (lab/consul.sh failed)"
  resolve_cluster_bins
  take_lock
  [ -n "$(all_our_agents)" ] || die "no lab agent running in $STATE; use '$prog up'"
  local -a pids=()
  for i in $(seq 1 "$N"); do
    pid=$(find_pid "$i") || die "cluster$i has no running agent; use '$prog up'"
    pids+=("$pid")
  done
  say "restarting cluster1..cluster$N (pid ${pids[*]}) on their data dirs"
  stop_pids "${pids[@]}" || die "could not stop every agent"
  START_TIME=()
  for i in $(seq 1 "$N"); do start_agent "$i"; done
  local -a pending next
  pending=($(seq 1 "$N"))
  while [ ${#pending[@]} -gt 0 ]; do
    next=()
    for i in "${pending[@]}"; do
      now=$(date +%s)
      if leader=$(ready "$i"); then
        say "cluster$i $(dc "$i") ready again in $((now - START_TIME[i]))s (Consul $(consul_version_of "${CLUSTER_BIN[i]}"), leader $leader)"
      elif ! find_pid "$i" >/dev/null; then
        fail_cluster "$i" "the agent exited during the restart"
      elif [ $((now - START_TIME[i])) -ge "$WAIT" ]; then
        fail_cluster "$i" "not ready ${WAIT}s after the restart"
      else
        next+=("$i")
      fi
    done
    pending=("${next[@]}")
    [ ${#pending[@]} -gt 0 ] && sleep 0.5
  done
  write_env
  say "restart: $N cluster(s) ready in $(( $(date +%s) - t0 ))s"
}

cmd_status() {
  local i pid leader all_up=0 state
  load_settings yes
  for i in $(seq 1 "$N"); do
    if [ "$SERVERS" -gt 1 ]; then ha_status_line "$i" || all_up=3; continue; fi
    state=down leader=- pid=-
    if pid=$(find_pid "$i"); then
      if leader=$(leader_of "$i"); then state=up; else state=down leader=none; fi
    else
      pid=-
      # Answering without an agent of ours: someone else's, say so.
      if leader=$(leader_of "$i"); then state="down(port answered by a process not started by this lab)"; fi
    fi
    [ "$state" = up ] || all_up=3
    printf 'cluster%s %s %s %s leader=%s pid=%s\n' "$i" "$(dc "$i")" "$(url "$i")" "$state" "${leader:--}" "$pid"
  done
  return "$all_up"
}

main() {
  local cmd=${1:-}
  case "$cmd" in
    up|down|status|restart) ;;
    -h|--help|help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
  init_state_dir
  "cmd_$cmd"
}

main "$@"
