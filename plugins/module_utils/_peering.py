# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The peering domain: names, tokens, summaries, Consul's errors in plain words, and the workflows.

The first half is pure (no I/O): peer-name and address checks, token decoding, summaries and
messages. The second half is the peering workflows the modules run (make a token, establish,
wait, remove), whose only I/O is the ConsulClient they are given (consul_api.py, the transport).

Nothing in this file ever puts a token, or any part of one, into a message: messages describe what
is wrong with a token, never what it contains.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time

from ansible_collections.seed.consul_peering.plugins.module_utils.consul_api import ConsulError

# Whole-string matches only (fullmatch): "$" alone would accept a trailing newline.
PEER_NAME_RE = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")

# Fields a usable peering token must carry (Consul's structs.PeeringToken).
REQUIRED_TOKEN_FIELDS = ("ServerAddresses", "ServerName", "PeerID", "EstablishmentSecret")

# States in which a peering is alive, or on its way to being alive.
LIVE_STATES = ("ACTIVE", "ESTABLISHING")


class TokenError(ValueError):
    """A peering token that cannot be used; the message never contains the token."""


def peer_name_problem(name, option="peer_name"):
    """Return why name is not a valid peer name, or None when it is."""
    if name is None or name == "":
        return "%s must not be empty" % option
    if not isinstance(name, str):
        return "%s must be a string" % option
    if len(name) > 63:
        return "%s %r is %d characters long; a peer name is a DNS label of at most 63" % (option, name, len(name))
    if not PEER_NAME_RE.fullmatch(name):
        hints = []
        if name != name.lower():
            hints.append("uppercase letters")
        if re.search(r"[^A-Za-z0-9-]", name):
            hints.append("characters other than letters, digits and '-'")
        if name.startswith("-") or name.endswith("-"):
            hints.append("a leading or trailing '-'")
        return "%s %r is not a valid peer name (%s): use lowercase letters, digits and '-', " \
               "starting and ending with a letter or digit" % (option, name, ", ".join(hints) or "invalid form")
    return None


_HOST_PORT_RE = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?):([0-9]{1,5})")


def server_addresses_problem(addresses, option="server_external_addresses"):
    """Return why a list of server addresses is not a list of host:port, or None when it is.

    Consul stores any string it is given here and the dialing cluster fails later, far from the
    cause; so the addresses are checked before the token is generated.
    """
    for index, address in enumerate(addresses or []):
        m = _HOST_PORT_RE.fullmatch(address or "")
        if not m or not 0 < int(m.group(3)) <= 65535:
            return ("%s[%d] %r is not a host:port address (the dialing cluster connects to it; e.g. "
                    "'203.0.113.10:8503' or '[2001:db8::1]:8503', port 1-65535)" % (option, index, address))
    return None


def decode_token(token):
    """Decode a peering token (base64 of JSON) and check it has what establishing needs.

    Returns the decoded dict. Raises TokenError with a message that says what is
    wrong without quoting the token.
    """
    if token is None or not str(token).strip():
        raise TokenError("peering_token is empty")
    raw = clean_token(token)
    if len(raw) > 1024 * 1024:
        raise TokenError("peering_token is %d bytes long; a peering token is a few kilobytes" % len(raw))
    try:
        padded = raw + "=" * (-len(raw) % 4)
        data = base64.b64decode(padded.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise TokenError("peering_token is not base64: it was not produced by 'consul peering generate-token' "
                         "or the peering_token module, or it was cut or altered when copied")
    try:
        decoded = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise TokenError("peering_token decodes from base64 but is not JSON: the token is truncated or corrupt")
    if not isinstance(decoded, dict):
        raise TokenError("peering_token does not decode to a JSON object: it is not a Consul peering token")
    missing = [f for f in REQUIRED_TOKEN_FIELDS if not decoded.get(f)]
    if missing:
        raise TokenError("peering_token is missing %s: it is not a complete Consul peering token" % ", ".join(missing))
    addrs = decoded["ServerAddresses"]
    if not isinstance(addrs, list) or not all(isinstance(a, str) and a for a in addrs):
        raise TokenError("peering_token has a malformed ServerAddresses list")
    return decoded


def clean_token(token):
    """The token without whitespace: a line-wrapped copy decodes as Consul's base64 decoder reads it."""
    return re.sub(r"\s+", "", str(token))


def wait_timeout_problem(value, option="wait_timeout"):
    """Why a wait in seconds is unusable, or None."""
    if value is not None and value < 0:
        return "%s must be 0 or more seconds, got %s" % (option, value)
    return None


def meta_problem(meta, option="meta"):
    """Why meta cannot be peering meta (a map of strings), or None. Numbers and booleans become strings."""
    for key, value in (meta or {}).items():
        if isinstance(value, (dict, list, tuple, set)):
            return ("%s.%s is a %s; peering meta values are strings (Consul stores a map of string to string): "
                    "encode it, for example with to_json" % (option, key, type(value).__name__))
    return None


def token_summary(decoded):
    """The non-secret parts of a decoded token, safe to return to the user."""
    remote = decoded.get("Remote") or {}
    return dict(
        peer_id=decoded.get("PeerID"),
        server_name=decoded.get("ServerName"),
        server_addresses=list(decoded.get("ServerAddresses") or []),
        remote_datacenter=remote.get("Datacenter"),
        remote_partition=remote.get("Partition"),
    )


# Plain-language explanations of the peering failures Consul reports. {name} is the local peer name.
MSG_SECRET_USED = (
    "the peering token has already been used or was replaced by a newer one (its establishment secret is "
    "single-use): generate a new token on the accepting cluster and establish with that")
MSG_NAME_IS_ACCEPTOR = (
    "a peering named {name!r} already exists on this cluster as the accepting side (it generated a token); "
    "a cluster cannot dial a peering it accepts: use another peer_name or delete that peering first")
MSG_NAME_IS_DIALER = (
    "a peering named {name!r} already exists on this cluster as the dialing side (it was established with "
    "a token); a token cannot be generated for it: use another peer_name or delete that peering first")
MSG_SAME_CLUSTER = (
    "the peering token was generated by this same cluster: a cluster cannot peer with itself; generate the "
    "token on the other (accepting) cluster")
MSG_DELETING = (
    "the peering {name!r} is still being deleted on this cluster; wait until the deletion finishes "
    "(state=absent waits for it) and try again")

# Consul's texts (wordings vary between versions, so match loosely). Seen from Consul 1.22:
#   403 "a new peering token must be generated: invalid peering establishment secret"
#   500 "cannot create peering with name: \"x\"; there is an existing peering expecting to be dialed"
#   500 "cannot create peering with name: \"x\"; there is already an established peering"
#   500 "cannot create a peering within the same cluster \"server.dc1.peering.<id>.consul\". ..."
#   500 "failed to write peering: cannot write to peering that is marked for deletion"
_ERROR_EXPLANATIONS = (
    (r"invalid peering establishment secret|establishment secret", MSG_SECRET_USED),
    (r"expecting to be dialed|existing peering .* is an acceptor|cannot establish a peering .* acceptor",
     MSG_NAME_IS_ACCEPTOR),
    (r"already an established peering|cannot generate.*(dialer|establish)|peering .* was established by",
     MSG_NAME_IS_DIALER),
    (r"same cluster|own peering token|cannot establish a peering with itself|peering with itself",
     MSG_SAME_CLUSTER),
    (r"currently being deleted|is being deleted|marked for deletion|DELETING", MSG_DELETING),
)


def explain_peering_error(text, name=None):
    """A plain-language message for a known Consul peering failure, or None."""
    for pattern, message in _ERROR_EXPLANATIONS:
        if re.search(pattern, text or "", re.IGNORECASE):
            return message.format(name=name)
    return None


def peering_role(peering):
    """'dialer' for a peering made by establishing, 'acceptor' for one made by generating a token.

    The same rule as Consul's ShouldDial(): a peering that knows addresses to dial is a dialer.
    """
    if peering.get("PeerServerAddresses") or peering.get("ManualServerAddresses"):
        return "dialer"
    return "acceptor"


def peering_summary(peering):
    """The fields of a Consul peering record that a user wants to see, snake_cased."""
    if not peering:
        return {}
    stream = peering.get("StreamStatus") or {}
    return dict(
        name=peering.get("Name"),
        id=peering.get("ID"),
        state=peering.get("State"),
        peer_id=peering.get("PeerID") or None,
        peer_server_name=peering.get("PeerServerName") or None,
        peer_server_addresses=list(peering.get("PeerServerAddresses") or []),
        role=peering_role(peering),
        partition=peering.get("Partition") or None,
        meta=dict(peering.get("Meta") or {}),
        remote_datacenter=(peering.get("Remote") or {}).get("Datacenter"),
        remote_partition=(peering.get("Remote") or {}).get("Partition"),
        imported_services=sorted(stream.get("ImportedServices") or []),
        exported_services=sorted(stream.get("ExportedServices") or []),
        last_heartbeat=stream.get("LastHeartbeat"),
        last_receive=stream.get("LastReceive"),
        last_send=stream.get("LastSend"),
        create_index=peering.get("CreateIndex"),
        modify_index=peering.get("ModifyIndex"),
    )


def peering_diff_view(summary):
    """What diff mode shows of a peering: who it is, its side, state, peer and meta."""
    if not summary:
        return {}
    view = dict(name=summary.get("name"), role=summary.get("role"), state=summary.get("state"),
                meta=dict(summary.get("meta") or {}))
    if summary.get("peer_id"):
        view["peer_id"] = summary["peer_id"]
    return view


def normalize_meta(meta):
    """Meta as Consul stores it (string to string), so YAML numbers and booleans compare and encode alike."""
    if meta is None:
        return None
    out = {}
    for key, value in meta.items():
        if isinstance(value, bool):
            value = "true" if value else "false"
        out[str(key)] = "" if value is None else str(value)
    return out


_STATE_HINTS = {
    "PENDING": "a token was generated but no cluster has established the peering with it yet",
    "ESTABLISHING": "the dialing cluster's servers have not (yet) connected to the accepting cluster's servers; "
                    "check that they can reach the addresses in the token (the accepting servers' gRPC TLS port) "
                    "and that those servers are up",
    "FAILING": "the peering stream has errors; see the Consul server logs on both clusters",
    "TERMINATED": "the other cluster deleted the peering; delete it here too, or peer again with a new token",
    "DELETING": "the peering is being deleted",
}


def not_active_message(name, peering, waited):
    """Why the peering named name is not ACTIVE after waited seconds, for an operator."""
    if not peering:
        return "no peering named %r exists on this cluster (waited %ds for it to become ACTIVE)" % (name, waited)
    state = peering.get("State") or "UNKNOWN"
    hint = _STATE_HINTS.get(state)
    return "the peering %r is %s, not ACTIVE, after %ds%s" % (name, state, waited, ": " + hint if hint else "")


# --- workflows (I/O through the client) ----------------------------------------------------

# Polling: peering state changes and imports usually land within a second or two
# on a healthy cluster, so the first polls come fast and the interval backs off
# to at most POLL_MOST seconds (bench/ measured these; see docs/benchmarks.md).
POLL_FIRST = 0.1
POLL_FACTOR = 1.5
POLL_MOST = 1.0


def wait_until(probe, timeout, sleep=time.sleep, clock=time.monotonic, first=POLL_FIRST, most=POLL_MOST,
               factor=POLL_FACTOR):
    """Call probe() until it returns a truthy value or timeout seconds pass.

    Polls fast at first (first seconds) and backs off by factor to at most
    `most` seconds between calls, so a short wait costs little latency and a
    long one few requests. Returns (value, waited_seconds); value is the last
    falsy result on timeout.
    """
    start = clock()
    delay = first
    while True:
        value = probe()
        waited = clock() - start
        if value or waited >= timeout:
            return value, waited
        sleep(min(delay, max(0.0, timeout - waited)))
        delay = min(most, delay * factor)


def peering_failure(err, name):
    """err reworded when Consul's text names a known peering problem (Consul's own text kept at the end)."""
    text = err.body if err.body is not None else err.msg
    explained = explain_peering_error(text, name)
    if explained is None:
        return err
    return ConsulError("%s (Consul said: %s)" % (explained, (text or "").strip()), status=err.status, body=err.body)


def wait_for_peering(client, name, done, timeout):
    """Poll GET /v1/peering/<name> until done(peering or None); returns (peering, reached, waited).

    Peering reads are polled because blocking queries do not wake on state changes.
    """
    last = {}

    def probe():
        last["peering"] = client.get_peering(name)
        return done(last["peering"])

    reached, waited = wait_until(probe, timeout, sleep=client.sleep)
    return last["peering"], bool(reached), waited


def wait_peering_gone(client, name, timeout):
    """Wait until the peering is gone (GET answers 404); DELETING is transient."""
    peering, gone, waited = wait_for_peering(client, name, lambda p: p is None, timeout)
    if not gone:
        raise ConsulError(
            "the peering %r is still being deleted (state %s) after %ds; Consul removes it in the background "
            "once the peering's data is cleaned up: try again later or raise wait_timeout"
            % (name, peering.get("State"), waited)
        )
    return waited


def delete_peering_and_wait(client, name, timeout):
    """DELETE answers 200 at once; the peering is gone only when GET answers 404."""
    client.delete_peering(name)
    return wait_peering_gone(client, name, timeout)


def remove_peering(client, name, timeout, check_mode=False):
    """state=absent for a peering, on either side: delete it and wait until it is gone.

    Returns a module result. A peering already DELETING is waited for but not deleted
    again, so it does not count as a change made by this run.
    """
    existing = client.get_peering(name)
    before = peering_summary(existing)
    result = dict(changed=False, operation="none", peering={}, diff=dict(before=peering_diff_view(before), after={}))
    if not existing:
        return result
    deleting = existing.get("State") == "DELETING"
    result["changed"] = not deleting
    result["operation"] = "wait_deleted" if deleting else "delete"
    if check_mode:
        result["peering"] = before
        return result
    if not deleting:
        client.delete_peering(name)
    result["waited"] = round(wait_peering_gone(client, name, timeout), 1)
    return result


def generate_token(client, name, meta=None, server_external_addresses=None):
    """POST /v1/peering/token, with Consul's known refusals in plain words; returns the token (a secret)."""
    try:
        return client.generate_peering_token(name, meta=meta, server_external_addresses=server_external_addresses)
    except ConsulError as e:
        raise peering_failure(e, name)


def token_operation(existing, regenerate):
    """What the accepting side must do: none, generate, regenerate or recreate."""
    if not existing:
        return "generate"
    state = existing.get("State")
    if state == "TERMINATED":
        return "recreate"
    if state == "DELETING":
        return "generate"
    if state in LIVE_STATES and not regenerate:
        return "none"
    return "regenerate"


def ensure_token(client, params, check_mode, warn):
    """state=present of peering_token: a fresh token unless the peering is alive (or regenerate)."""
    name = params["peer_name"]
    meta = normalize_meta(params["meta"])
    existing = client.get_peering(name)
    before = peering_summary(existing)
    # A peering being deleted is waited for below, whichever side it was.
    if existing and existing.get("State") != "DELETING" and peering_role(existing) == "dialer":
        raise ConsulError(MSG_NAME_IS_DIALER.format(name=name))
    operation = token_operation(existing, params["regenerate"])
    # Consul keeps the Meta a peering was created with; a later generation cannot change it.
    if existing and operation in ("none", "regenerate") and meta is not None and before["meta"] != meta:
        warn("meta of the existing peering %r differs from the requested meta; Consul sets meta only when "
             "a peering is created (delete it with state=absent and generate again to change it)" % name)
    if existing and operation == "none" and params["server_external_addresses"] is not None:
        warn("server_external_addresses go into a new token only; the peering %r is %s and keeps the addresses "
             "its dialing cluster was given: generate with regenerate=true and establish again to change them"
             % (name, existing.get("State")))
    after_view = dict(peering_diff_view(before) or dict(name=name, role="acceptor"),
                      state="PENDING" if operation != "none" else before.get("state"))
    if operation in ("generate", "recreate"):
        after_view["meta"] = meta or {}
    result = dict(changed=operation != "none", operation=operation, peering=before,
                  diff=dict(before=peering_diff_view(before), after=after_view))
    if operation == "none" or check_mode:
        return result

    if existing and existing.get("State") == "TERMINATED":
        # A token for a terminated peering is refused when used: the peering must be made anew.
        delete_peering_and_wait(client, name, params["wait_timeout"])
    elif existing and existing.get("State") == "DELETING":
        wait_peering_gone(client, name, params["wait_timeout"])

    token = generate_token(client, name, meta=meta, server_external_addresses=params["server_external_addresses"])
    client.add_secret(token)
    try:
        decoded = decode_token(token)
    except TokenError as e:
        raise ConsulError("Consul generated a peering token this module cannot read: %s" % e)
    client.add_secret(decoded.get("EstablishmentSecret"))
    after = peering_summary(client.get_peering(name))
    result.update(peering=after, peering_token=token, token_info=token_summary(decoded))
    result["diff"]["after"] = peering_diff_view(after)
    return result


def is_active(peering):
    return bool(peering) and peering.get("State") == "ACTIVE"


def establish_operation(existing, decoded):
    """What the dialing side must do: none, establish or reestablish."""
    if not existing or existing.get("State") == "DELETING":
        return "establish"
    if existing.get("State") in LIVE_STATES and existing.get("PeerID") == decoded["PeerID"]:
        return "none"
    return "reestablish"


def wait_active(client, name, peer_id, timeout):
    # The peer ID too: re-pointing an active peering keeps its state until the new stream takes over.
    peering, reached, waited = wait_for_peering(
        client, name, lambda p: is_active(p) and p.get("PeerID") == peer_id, timeout)
    if not reached:
        if is_active(peering):
            raise ConsulError("the peering %r is still ACTIVE with its previous peer (PeerID %s) after %ds, not with "
                              "the token's (PeerID %s)" % (name, peering.get("PeerID"), waited, peer_id))
        raise ConsulError(not_active_message(name, peering, waited))
    return peering, waited


def remove_leftover(client, name, decoded, timeout):
    """Undo the record Consul writes before a secret exchange that then fails.

    Consul keeps it (a re-establishment must not drop an active peering), but for a peering
    that did not exist before, it is only debris that would also claim the name for a dialer.
    """
    try:
        left = client.get_peering(name)
        if left and left.get("State") == "PENDING" and left.get("PeerID") == decoded["PeerID"]:
            client.delete_peering(name)
            wait_peering_gone(client, name, timeout)
    except ConsulError:
        pass  # the establishment's own error is the one to report


# How Consul words a dialing server's failure to reach the accepting servers (gRPC dial errors,
# repeated once per attempt and address in one message).
_UNREACHABLE_CAUSES = (
    (r"connection refused", "connection refused (nothing listens there)"),
    (r"i/o timeout|context deadline exceeded|DeadlineExceeded|timed out", "no answer (timed out)"),
    (r"no route to host|network is unreachable|host is unreachable", "no route to that address"),
    (r"no such host|name resolution|lookup [^ ]+ on", "the name does not resolve"),
    (r"x509|certificate|tls: ", "the TLS handshake failed"),
)


def explain_unreachable(text, addresses):
    """A short message when Consul could not reach the accepting servers, or None if that is not the failure."""
    text = text or ""
    if not re.search(r"(exchange|dial|connect|transport|rpc error|Unavailable)", text, re.IGNORECASE):
        return None
    causes = [why for pattern, why in _UNREACHABLE_CAUSES if re.search(pattern, text, re.IGNORECASE)]
    if not causes:
        return None
    return ("this cluster's servers could not reach the accepting cluster's servers at %s: %s. The dialing "
            "cluster's Consul servers (not this machine) connect to the addresses in the token, the accepting "
            "servers' gRPC TLS port (or the server_external_addresses it was generated with): check those servers "
            "are up and reachable from here, then generate a new token and establish again"
            % (", ".join(addresses) or "(no address in the token)", "; ".join(causes)))


def establish(client, name, token, decoded, meta):
    """POST /v1/peering/establish, with Consul's refusals in plain words, and one short message when the
    accepting servers cannot be reached (Consul repeats its gRPC error once per attempt)."""
    addresses = list(decoded.get("ManualServerAddresses") or decoded.get("ServerAddresses") or [])
    try:
        client.establish_peering(name, token, meta=meta)
    except ConsulError as e:
        text = e.body if e.body is not None else e.msg
        unreachable = explain_unreachable(text, addresses)
        if unreachable:
            # Consul's multi-error: "18 errors occurred:\n\t* failed to ...\n\t* ..."; the first item says it all.
            items = [line.strip()[2:] for line in (text or "").splitlines() if line.strip().startswith("* ")]
            first = (items[0] if items else (text or "").strip().splitlines()[0])[:300]
            raise ConsulError("%s (Consul said, first of its errors: %s)" % (unreachable, first), status=e.status,
                              body=e.body)
        if e.status is None and "no answer within" in e.msg and not e.no_leader:
            raise ConsulError("%s; establishing waits for this cluster's servers to exchange the secret with the "
                              "accepting cluster's servers at %s, which did not answer in time: check they are "
                              "reachable from this cluster's servers" % (e.msg.split(";")[0], ", ".join(addresses)))
        raise peering_failure(e, name)


def ensure_established(client, params, check_mode, warn):
    """state=present of peering_establish: dial with the token unless already peered through it."""
    name = params["peer_name"]
    token = clean_token(params["peering_token"])
    decoded = decode_token(token)
    client.add_secret(token)
    client.add_secret(decoded.get("EstablishmentSecret"))
    meta = normalize_meta(params["meta"])
    existing = client.get_peering(name)
    before = peering_summary(existing)
    # A peering being deleted is waited for below, whichever side it was.
    if existing and existing.get("State") != "DELETING" and peering_role(existing) == "acceptor":
        raise ConsulError(MSG_NAME_IS_ACCEPTOR.format(name=name))
    operation = establish_operation(existing, decoded)
    if operation == "none" and meta is not None and before["meta"] != meta:
        warn("meta of the peering %r differs from the requested meta; Consul sets meta when a peering is "
             "established, so it changes the next time the peering is established with a new token" % name)
    after_view = dict(name=name, role="dialer", state="ACTIVE" if params["wait"] else "ESTABLISHING",
                      meta=meta or {}, peer_id=decoded["PeerID"])
    if operation == "none":
        after_view = dict(peering_diff_view(before), state="ACTIVE" if params["wait"] else before["state"])
    result = dict(changed=operation != "none", operation=operation, peering=before,
                  token_info=token_summary(decoded),
                  diff=dict(before=peering_diff_view(before), after=after_view))
    if check_mode or (operation == "none" and (not params["wait"] or is_active(existing))):
        return result

    if operation != "none":
        if existing and existing.get("State") == "DELETING":
            wait_peering_gone(client, name, params["wait_timeout"])
            existing = None
        elif existing and existing.get("State") == "TERMINATED":
            # Establishing over a TERMINATED record can leave the acceptor's new peering TERMINATED and this
            # one ESTABLISHING (seen on 1.14.11 and 1.22.7 when config entries on both sides name the peer):
            # the record is deleted first, and the peering made anew.
            delete_peering_and_wait(client, name, params["wait_timeout"])
            existing = None
        try:
            establish(client, name, token, decoded, meta)
        except ConsulError:
            if not existing:
                remove_leftover(client, name, decoded, params["wait_timeout"])
            raise
    if params["wait"]:
        after, waited = wait_active(client, name, decoded["PeerID"], params["wait_timeout"])
        result["waited"] = round(waited, 1)
    else:
        after = client.get_peering(name)
    result["peering"] = peering_summary(after)
    result["diff"]["after"] = peering_diff_view(result["peering"])
    return result


def wait_for_imports(client, name, services, timeout):
    """Poll the health API until every service is visible from the peer; fail naming the missing ones."""
    wanted = sorted(set(services))
    seen = set()
    filtered = set()

    def probe():
        for svc in wanted:
            if svc not in seen:
                instances, filtered_by_acls = client.service_instances_from_peer(svc, name)
                if instances:
                    seen.add(svc)
                    filtered.discard(svc)
                elif filtered_by_acls:
                    filtered.add(svc)
        return len(seen) == len(wanted)

    done, waited = wait_until(probe, timeout, sleep=client.sleep)
    if not done:
        missing = [s for s in wanted if s not in seen]
        if filtered:
            raise ConsulError(
                "%s exported by peer %r cannot be seen with this ACL token: Consul filtered the answer by ACLs "
                "(X-Consul-Results-Filtered-By-ACLs). Reading imported services needs service:read on all services and "
                "node:read on all nodes (service_prefix \"\" and node_prefix \"\" with policy read), "
                "or service:write on any one service" % (", ".join(sorted(filtered)), name))
        peering = client.get_peering(name) or {}
        imported = set((peering.get("StreamStatus") or {}).get("ImportedServices") or [])
        listed = [s for s in missing if s in imported]
        raise ConsulError(
            "after %ds, %s exported by peer %r %s not visible on this cluster "
            "(GET /v1/health/service/<name>?peer=%s is empty)%s: check the peer's exported-services entry "
            "names this cluster as a consumer, that the service has at least one registered instance on the peer "
            "(Consul imports only services with instances), and that the peering is ACTIVE"
            % (waited, ", ".join(missing), name, "is" if len(missing) == 1 else "are", name,
               "; the peering lists %s as imported, so the exported service has no healthy instance to show"
               % ", ".join(listed) if listed else ""))
    return wanted, waited


# --- several peers in one module call ----------------------------------------------------------

def batch_problems(peers, option="peers"):
    """Why a list of per-peer options cannot be run (bad or repeated names), or []."""
    problems = []
    seen = set()
    for i, peer in enumerate(peers or []):
        name = peer.get("peer_name")
        problems.append(peer_name_problem(name, "%s[%d].peer_name" % (option, i)))
        if name in seen:
            problems.append("%s names the peer %r more than once" % (option, name))
        seen.add(name)
    return [p for p in problems if p]


def for_each_peer(params, one, secret=None, inherit=()):
    """Run one(params of a single peer) for each item of params["peers"], in order.

    Each item's options override the module's own (inherit: options an item may leave unset to take the
    module's value). Returns the module result: changed when any peer changed, "peers" (each peer's result
    without its secret), "secrets" (secret of each peer that has one, keyed by peer name) and a diff keyed
    by peer name. A failure names its peer and what was done before it.
    """
    result = dict(changed=False, peers=[], secrets={}, diff=dict(before={}, after={}))
    for item in params["peers"]:
        single = dict(params, peers=None)
        single.update((k, v) for k, v in item.items() if v is not None or k not in inherit)
        name = single["peer_name"]
        try:
            res = one(single)
        except ConsulError as e:
            done = ", ".join("%s (%s)" % (r["peer_name"], r.get("operation", "none")) for r in result["peers"])
            raise ConsulError("peer %s: %s%s" % (name, e.msg, "; done before it: " + done if done else ""),
                              status=e.status, body=e.body, maybe_applied=e.maybe_applied)
        diff = res.pop("diff", None) or {}
        result["diff"]["before"][name] = diff.get("before", {})
        result["diff"]["after"][name] = diff.get("after", {})
        if secret and res.get(secret):
            result["secrets"][name] = res.pop(secret)
        res["peer_name"] = name
        result["peers"].append(res)
        result["changed"] = result["changed"] or bool(res.get("changed"))
    return result


def wait_all_active(client, names, timeout):
    """Poll GET /v1/peerings (one request for every peer) until each named peering is ACTIVE.

    Returns ({name: peering or None}, waited); fails naming each one that is not ACTIVE in time.
    """
    last = {}

    def probe():
        listed = dict((x.get("Name"), x) for x in client.list_peerings() or [])
        last.update((n, listed.get(n)) for n in names)
        return all(is_active(last[n]) for n in names)

    reached, waited = wait_until(probe, timeout, sleep=client.sleep)
    if not reached:
        raise ConsulError("; ".join(not_active_message(n, last[n], waited) for n in names if not is_active(last[n])))
    return last, waited


def check_peers(client, peers, wait_for, timeout, clock=time.monotonic):
    """peering_info with peers: read (or wait for) several peerings and their imports in one call.

    peers: [{"peer_name", "expect_services"}]. One deadline for the whole call. Returns the result's
    peerings (in order; {} for one that does not exist), visible_services (by peer) and waited.
    """
    start = clock()
    names = [x["peer_name"] for x in peers]
    if wait_for == "active":
        found, dummy = wait_all_active(client, names, timeout)
    else:
        listed = dict((x.get("Name"), x) for x in client.list_peerings() or [])
        found = dict((n, listed.get(n)) for n in names)
    visible = {}
    for x in peers:
        if x.get("expect_services"):
            left = max(0.0, timeout - (clock() - start))
            visible[x["peer_name"]] = wait_for_imports(client, x["peer_name"], x["expect_services"], left)[0]
    return dict(peerings=[peering_summary(found[n]) for n in names], visible_services=visible,
                waited=round(clock() - start, 1))
