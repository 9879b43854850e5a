# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Pure helpers for peering: peer-name checks, token decoding, error wording.

No I/O here. Nothing in this file ever puts a token, or any part of one, into a
message: messages describe what is wrong with a token, never what it contains.
"""

from __future__ import annotations

import base64
import binascii
import json
import re

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
