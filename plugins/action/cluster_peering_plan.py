# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The cluster_peering role's brain: who peers with whom, and what each stage does.

plan() is pure (no I/O, no Ansible objects) and unit-tested table by table. ActionModule only
collects its input from the play (hostvars, groups, the batch, the strategy) and returns this
host's slice of the plan.
"""

from __future__ import annotations

import datetime
import re
import time

from ansible.errors import AnsibleActionFail
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase

MEDIA = ("memory", "vault_file")
MANAGED_KEY = "managed-by"
MANAGED_VALUE = "seed.consul_peering"
# The acceptor's peering Meta also records the server external addresses its token carried: Consul's HTTP API
# returns them on neither side (the dialer keeps them as manual addresses it does not show), and without the
# record a change could not be told from no change.
SEA_KEY = "server-external-addresses"
# fullmatch: "$" alone would also accept a name followed by a newline.
PEER_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
# States in which a pair whose IDs agree is left alone (FAILING heals itself when the stream returns).
LIVE = ("ACTIVE", "ESTABLISHING", "FAILING")
# How long a pair whose IDs agree may go without contact (FAILING, or the acceptor's record read as PENDING
# while its dialer is live) before it is made again: docs/decisions.md, "FAILING is not re-peered at once".
FAILING_GRACE = 300
RFC3339 = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$")
LINEAR = ("linear", "debug", "host_pinned_linear")
SUPPORTED = ("run the play on every cluster of the topology, without --limit and without serial, with the "
             "linear strategy (the default); to unpeer one cluster, remove it from the inventory (or set its "
             "cluster_peering_state=absent) and run with cluster_peering_prune=true")


class PlanError(Exception):
    pass


def epoch(stamp):
    """Seconds since the epoch of one of Consul's RFC 3339 times, or None (unset, zero or unreadable)."""
    m = RFC3339.match(stamp) if isinstance(stamp, str) else None
    if not m or int(m.group(1)) < 2000:
        return None
    fraction = float("0." + m.group(7)) if m.group(7) else 0.0
    zone = m.group(8)
    offset = 0 if zone == "Z" else (int(zone[1:3]) * 60 + int(zone[4:6])) * (1 if zone[0] == "+" else -1)
    when = datetime.datetime(*[int(m.group(i)) for i in range(1, 7)], tzinfo=datetime.timezone.utc)
    return when.timestamp() + fraction - offset * 60


def last_contact(*records):
    """The latest stream contact (LastReceive, else LastHeartbeat) either side of a peering reports."""
    times = [epoch(r.get(k)) for r in records for k in ("last_receive", "last_heartbeat")]
    times = [t for t in times if t is not None]
    return max(times) if times else None


def is_managed(rec):
    return (rec.get("meta") or {}).get(MANAGED_KEY) == MANAGED_VALUE


def strategy_is_linear(name):
    short = (name or "linear").rsplit(".", 1)[-1]
    return short in LINEAR or short.endswith("linear")


def _removal_command(rec):
    module = "peering_token" if rec.get("role") == "acceptor" else "peering_establish"
    return "ansible <host> -m seed.consul_peering.%s -a 'peer_name=%s state=absent'" % (module, rec["name"])


def topology_pairs(clusters, acceptors, dialers, mesh):
    """{frozenset(a, d): (acceptor, dialer, fixed)}: every pair the inventory names, oriented.

    fixed: the orientation comes from the acceptors/dialers groups, not from the host-name order.
    """
    pairs = {}

    def add(a, d, fixed):
        key = frozenset((a, d))
        if a == d:
            return
        old = pairs.get(key)
        if old and old[2]:
            return
        pairs[key] = (a, d, fixed)

    for a in acceptors:
        for d in dialers:
            if a != d:
                if a in dialers and d in acceptors:
                    lo, hi = sorted((a, d))
                    add(lo, hi, False)
                else:
                    add(a, d, True)
    for i, a in enumerate(sorted(mesh)):
        for d in sorted(mesh)[i + 1:]:
            add(a, d, False)
    for h in sorted(clusters):
        for p in clusters[h].get("peers") or []:
            if p == h or p not in clusters:
                continue
            if h in acceptors and p in dialers:
                add(h, p, True)
            elif p in acceptors and h in dialers:
                add(p, h, True)
            else:
                lo, hi = sorted((h, p))
                add(lo, hi, False)
    return pairs


def _empty_host_plan(name):
    return dict(name=name, skip=False, delete_dialer=[], delete_acceptor=[], unref=[], tokens=[], token_peers=[],
                establish=[],
                exports=[], export_removals=[], intentions=[], intention_removals=[], failover=[],
                failover_removals=[], wait=[], agree=[], verify=[], reports=[], warnings=[], summary=[],
                renamed={}, peers=[], locks=[], handover_tokens=[], handover_establish=[], handover_drop=[],
                verify_exports=[])


def _add_unique(lst, value):
    if value not in lst:
        lst.append(value)


# How the modules say a cluster cannot be reached at all (consul_api's connection failures); any other
# failed read is a problem to fix, not a cluster to skip.
DOWN_TEXTS = ("cannot reach Consul at",)


def is_down(read):
    """Whether a failed read means the cluster is down (unreachable), as opposed to any other failure."""
    if read.get("unreachable"):
        return True
    return any(str(read.get("msg") or "").startswith(t) for t in DOWN_TEXTS)


def plan(clusters, acceptors=(), dialers=(), mesh=(), batch=None, play_hosts=None, strategy="linear",
         prune=False, failing_grace=FAILING_GRACE, now=None, handover=None):
    """Plan every cluster. Returns {"errors": [...], "hosts": {host: host_plan}}.

    clusters: {inventory host: {
        name, state ('present'|'absent'), peers (host names), exports, intentions, failover,
        meta, server_external_addresses,
        remote: bool (cluster_peering_remote: another team's cluster, never contacted),
        observed: None (not read: outside the batch) | {"failed": bool, "msg": str,
                  "peerings": [peering_info summaries], "trust_domain": str}}}
    failing_grace, now: a pair whose IDs agree but whose stream is down (FAILING, or the acceptor's record
    PENDING while the dialer is live) is kept until neither side has heard from the other for
    failing_grace seconds before now (time.time() when None); then it is made again.
    handover: None (memory) | {"medium": "memory"|"vault_file", "file": path, "now": epoch seconds (else now),
        "max_age": seconds, "entries": {"<acceptor name>/<dialer name>": {peering_id, generated_at}}}
        (the handover file's entries without their tokens; see plan_remote_pair).
    """
    now = time.time() if now is None else now
    errors = []
    acceptors, dialers, mesh = list(acceptors), list(dialers), list(mesh)
    batch = list(clusters) if batch is None else list(batch)
    play_hosts = batch if play_hosts is None else list(play_hosts)
    handover = dict(handover or {})
    handover.setdefault("now", now)
    medium = handover.get("medium") or "memory"
    remote = {h for h in clusters if clusters[h].get("remote")}

    if not strategy_is_linear(strategy):
        return dict(errors=["the play's strategy is %r, but the role's stages must run in lock-step across "
                            "clusters (a token made on one cluster is used on another in the next stage); "
                            "%s" % (strategy, SUPPORTED)], hosts={})

    # Names and explicit peers.
    names = {}
    for h in sorted(clusters):
        c = clusters[h]
        name = c.get("name") or h
        if not isinstance(name, str) or not PEER_NAME.fullmatch(name):
            errors.append("cluster_peering_name '%s' of %s is not a valid peer name: use at most 63 lowercase "
                          "letters, digits and '-', starting and ending with a letter or digit" % (name, h))
        names[h] = name
        for p in c.get("peers") or []:
            if p not in clusters:
                errors.append("cluster_peering_peers of %s names '%s', which is not a host of the inventory "
                              "(list inventory host names)" % (h, p))
            elif p == h:
                errors.append("cluster_peering_peers of %s names the host itself" % h)
    seen = {}
    for h in sorted(names):
        seen.setdefault(names[h], []).append(h)
    for name, hosts in sorted(seen.items()):
        if len(hosts) > 1:
            errors.append("two clusters share a peer name '%s': %s; set cluster_peering_name per host"
                          % (name, ", ".join(hosts)))

    pairs = topology_pairs(clusters, acceptors, dialers, mesh)
    peers_of = {h: set() for h in clusters}
    for key in pairs:
        a, d = sorted(key)
        peers_of[a].add(d)
        peers_of[d].add(a)

    # The lock-step guard: every host the batch's pairs need must be in the batch.
    missing = {}
    for h in batch:
        for p in sorted(peers_of.get(h, ())):
            if p not in batch and p not in remote and h not in remote:
                missing.setdefault(p, []).append(h)
    if missing:
        needers = sorted({h for hs in missing.values() for h in hs})
        errors.append("this play's batch lacks %s, which the peerings of %s need: --limit and serial run only some "
                      "clusters, but each peering is made on both of its sides in the same stages; %s"
                      % (", ".join(sorted(missing)), ", ".join(needers), SUPPORTED))
    elif set(play_hosts) - set(batch) - remote:
        errors.append("this play runs in batches (serial): %s run in another batch; %s"
                      % (", ".join(sorted(set(play_hosts) - set(batch))), SUPPORTED))
    members = set(acceptors) | set(dialers) | set(mesh) | {h for h in clusters if clusters[h].get("peers")}
    for h in sorted(batch):
        # A host in the play but in no topology (a retired cluster) only has its managed peerings pruned.
        if h in clusters and h in members and not peers_of[h] and clusters[h].get("state", "present") == "present":
            errors.append("%s has no peer: no other cluster shares a topology group with it and it has no "
                          "cluster_peering_peers" % h)
    for h in sorted(remote):
        local_peers = sorted(p for p in peers_of[h] if p not in remote)
        if local_peers and medium == "memory":
            errors.append("%s is marked cluster_peering_remote (another team runs its side), so the peering "
                          "token with %s cannot be handed over in memory: set cluster_peering_handover: vault_file "
                          "(and cluster_peering_handover_file, cluster_peering_handover_password); see docs/teams.md"
                          % (h, ", ".join(local_peers)))
    if errors:
        return dict(errors=errors, hosts={})

    reachable = {h for h in batch if h not in remote and (clusters[h].get("observed") or {}).get("peerings") is not None
                 and not (clusters[h].get("observed") or {}).get("failed")}
    # Two hosts that are one cluster (what Consul says about itself, not the URL text).
    by_domain = {}
    for h in sorted(reachable):
        dom = clusters[h]["observed"].get("trust_domain")
        if dom:
            by_domain.setdefault(dom, []).append(h)
    for dom, hosts in sorted(by_domain.items()):
        if len(hosts) > 1:
            errors.append("%s are the same Consul cluster (Connect CA trust domain %s): a cluster cannot peer with "
                          "itself; point each inventory host at a different cluster" % (" and ".join(hosts), dom))
    for h in sorted(set(batch) - reachable - remote):
        obs = clusters[h].get("observed") or {}
        if obs.get("peerings") is None and obs.get("failed") and obs.get("down") is False:
            # Not a cluster that is down: bad input, a refused ACL token, a TLS problem, an answer that is not
            # Consul's. Skipping it would report success for an unpeer that did not happen.
            errors.append("%s could not be read, and not because it is down: %s" % (h, obs.get("msg") or "failed"))
            continue
        needed = clusters[h].get("state", "present") == "present" and any(
            clusters[p].get("state", "present") == "present" for p in peers_of[h])
        if needed:
            errors.append("%s could not be read (%s); peering needs every cluster of the topology: bring it back, or "
                          "to decommission it remove it from the inventory and run with cluster_peering_prune=true"
                          % (h, obs.get("msg") or "unreachable"))
    if errors:
        return dict(errors=errors, hosts={})

    hp = {h: _empty_host_plan(names[h]) for h in batch}
    recs = {h: {r["name"]: r for r in clusters[h]["observed"]["peerings"]} for h in reachable}
    accounted = {h: set() for h in reachable}
    new_pairs = []
    # (local host, remote peer) pairs whose peering is live or being made here: what the local side can verify.
    remote_verified = set()

    def wanted(a, d):
        return clusters[a].get("state", "present") == "present" and clusters[d].get("state", "present") == "present"

    def delete(h, rec):
        if rec["role"] == "acceptor":
            _add_unique(hp[h]["delete_acceptor"], rec["name"])
        else:
            _add_unique(hp[h]["delete_dialer"], rec["name"])
        accounted[h].add(rec["name"])

    def links(x, y):
        """(x, rx, y, ry): records that are one peering, x accepting: the acceptor's ID is the dialer's PeerID."""
        out = []
        for rx in recs[x].values():
            for ry in recs[y].values():
                if ry.get("peer_id") and rx.get("role") == "acceptor" and ry["peer_id"] == rx.get("id"):
                    out.append((x, rx, y, ry))
        return out

    def owner_elsewhere(h, rec, pair_peer):
        """The other play host this record is linked to, if it is not pair_peer."""
        for o in sorted(reachable):
            if o in (h, pair_peer):
                continue
            for r in recs[o].values():
                if (rec.get("role") == "acceptor" and r.get("peer_id") == rec.get("id")) or \
                        (rec.get("peer_id") and r.get("role") == "acceptor" and r.get("id") == rec.get("peer_id")):
                    return o
        return None

    for key in sorted(pairs, key=sorted):
        a, d, fixed = pairs[key]
        if a not in hp and d not in hp:
            continue
        if a in remote or d in remote:
            if (a in remote) != (d in remote) and (d if a in remote else a) in reachable:
                plan_remote_pair(a, d, clusters, names, recs, hp, accounted, delete, a in remote, handover,
                                 remote_verified)
            continue
        if a not in reachable or d not in reachable:
            # One side cannot be read (unpeering a dead cluster): clean the side that answers.
            for h, o in ((a, d), (d, a)):
                if h in reachable:
                    rec = recs[h].get(names[o])
                    if rec:
                        delete(h, rec)
                        hp[h]["summary"].append("remove the peering %s (%s cannot be read)" % (names[o], o))
            continue
        both = links(a, d) + links(d, a)
        if not wanted(a, d):
            for h, o in ((a, d), (d, a)):
                doomed = [recs[h].get(names[o])] + [r for (x, rx, y, ry) in both for hh, r in ((x, rx), (y, ry))
                                                    if hh == h]
                for r in doomed:
                    if r and r["name"] not in accounted[h]:
                        delete(h, r)
                        hp[h]["summary"].append("remove the peering %s with %s" % (r["name"], o))
            continue

        hp[a]["peers"].append(d)
        hp[d]["peers"].append(a)
        # A live pair under the wanted names, in the planned orientation or (when the inventory does not fix
        # the orientation) the other way round, is kept.
        kept = None
        for x, y in ([(a, d)] if fixed else [(a, d), (d, a)]):
            rx, ry = recs[x].get(names[y]), recs[y].get(names[x])
            if rx and ry and rx.get("role") == "acceptor" and ry.get("peer_id") == rx.get("id") \
                    and (rx["state"] in LIVE or rx["state"] == "PENDING") and ry["state"] in LIVE:
                kept = (x, y, rx, ry)
                break
        if kept and (kept[2]["state"] != "ACTIVE" or kept[3]["state"] != "ACTIVE"):
            x, y, rx, ry = kept
            down = [(h, r) for h, r in ((x, rx), (y, ry)) if r["state"] in ("FAILING", "PENDING")]
            contact = last_contact(rx, ry)
            silent = None if contact is None else max(0, int(now - contact))
            if down and silent is not None and silent > failing_grace:
                # Past the grace time: the stream is not coming back by itself (a peer that moved, a
                # changed address); a new token and a new stream are cheaper than waiting on.
                for h, r in ((x, rx), (y, ry)):
                    delete(h, r)
                    hp[h]["summary"].append(
                        "re-create the peering %s: %s, no contact with %s for %d s (cluster_peering_failing_grace "
                        "is %d s)" % (r["name"], "/".join(sorted({rr["state"] for dummy, rr in down})),
                                      names[y if h == x else x], silent, failing_grace))
                kept = None
            else:
                for h, r in down:
                    hp[h]["warnings"].append(
                        "the peering %s on %s is %s (its stream is down; last contact %s); it is kept, as it recovers "
                        "when the peer answers again, and made again once there is no contact for "
                        "cluster_peering_failing_grace (%d s)"
                        % (r["name"], h, r["state"], "unknown" if silent is None else "%d s ago" % silent,
                           failing_grace))
        if kept:
            x, y, rx, ry = kept
            accounted[x].add(rx["name"])
            accounted[y].add(ry["name"])
            # Anything else linking the two clusters is a duplicate (an old name): remove it.
            for (lx, lrx, ly, lry) in both:
                for h, r in ((lx, lrx), (ly, lry)):
                    if r is not rx and r is not ry and r["name"] not in accounted[h]:
                        other = y if h == x else x
                        delete(h, r)
                        _rename(hp[h], r["name"], names[other])
                        hp[h]["summary"].append("remove the duplicate peering %s (the same cluster as %s)"
                                                % (r["name"], names[other]))
            # Each side's meta was set by its own call (the token's, the establish's): each is compared.
            _meta_warnings(hp[x], clusters[x], rx, names[y])
            _meta_warnings(hp[y], clusters[y], ry, names[x])
            _sea_warning(hp[x], clusters[x], rx, x)
            continue

        # Not live: repair. Records linking the two clusters under other names are renames; both sides go.
        for (x, rx, y, ry) in both:
            for h, r, other in ((x, rx, y), (y, ry, x)):
                if r["name"] in accounted[h]:
                    continue
                delete(h, r)
                if r["name"] != names[other]:
                    _rename(hp[h], r["name"], names[other])
                    hp[h]["summary"].append("rename the peering %s to %s (%s was renamed): remove %s on both sides "
                                            "and peer again" % (r["name"], names[other], other, r["name"]))
                else:
                    hp[h]["summary"].append("re-create the peering %s (the other side was renamed)" % r["name"])
        for h, o, role in ((a, d, "acceptor"), (d, a, "dialer")):
            r = recs[h].get(names[o])
            if not r or r["name"] in accounted[h]:
                continue
            elsewhere = owner_elsewhere(h, r, o)
            if elsewhere:
                raise PlanError("%s already has a peering named '%s', and it is the peering with %s: %s and %s "
                                "cannot both be called '%s'; give one of them another cluster_peering_name"
                                % (h, r["name"], elsewhere, o, elsewhere, r["name"]))
            if r["state"] in LIVE and not is_managed(r):
                raise PlanError("%s already has a peering '%s' in state %s with a cluster that is not %s, and it is "
                                "not managed by this collection, so it is never touched: remove it yourself (%s) or "
                                "give %s another cluster_peering_name"
                                % (h, r["name"], r["state"], o, _removal_command(r).replace("<host>", h), o))
            if role == "acceptor" and r.get("role") == "acceptor" and r["state"] == "PENDING":
                accounted[h].add(r["name"])  # a new token replaces the unused one
                continue
            if role == "dialer" and r.get("role") == "dialer" and r["state"] == "TERMINATED":
                accounted[h].add(r["name"])  # Consul lets a terminated dialer establish again
                continue
            delete(h, r)
            hp[h]["summary"].append("remove the stale peering %s (%s, %s side) before peering again"
                                    % (r["name"], r["state"], r.get("role")))
        new_pairs.append((a, d))

    for a, d in new_pairs:
        na, nd = names[a], names[d]
        meta = _acceptor_meta(clusters[a])
        dmeta = dict(clusters[d].get("meta") or {})
        dmeta[MANAGED_KEY] = MANAGED_VALUE
        tok = dict(peer_name=nd, dialer=d, meta=meta)
        if clusters[a].get("server_external_addresses"):
            tok["server_external_addresses"] = list(clusters[a]["server_external_addresses"])
        hp[a]["tokens"].append(tok)
        # What the token stage sends, as peering_token's peers option takes it (one call for every dialer).
        hp[a]["token_peers"].append(dict((k, v) for k, v in tok.items() if k != "dialer"))
        hp[d]["establish"].append(dict(peer_name=na, acceptor=a, token_for=nd, meta=dmeta))
        hp[a]["wait"].append(dict(peer_name=nd))
        hp[d]["wait"].append(dict(peer_name=na))
        hp[a]["agree"].append(dict(peer_name=nd, dialer=d, dialer_peer_name=na))
        hp[a]["summary"].append("create the peering %s: generate a token for %s" % (nd, d))
        hp[d]["summary"].append("create the peering %s: establish with the token of %s" % (na, a))

    # Records no pair accounts for: managed ones are reported, and with prune removed; others only reported.
    for h in sorted(reachable):
        for name, r in sorted(recs[h].items()):
            if name in accounted[h] or any(names[p] == name for p in hp[h]["peers"]):
                continue
            if is_managed(r):
                if prune:
                    delete(h, r)
                    hp[h]["summary"].append("prune the managed peering %s (%s, %s): the inventory no longer names it"
                                            % (name, r["state"], r.get("role")))
                else:
                    hp[h]["reports"].append(
                        "%s has a managed %s-side peering '%s' in state %s that the inventory no longer names; it is "
                        "kept. Remove it with cluster_peering_prune=true, or: %s"
                        % (h, r.get("role") or "unknown", name, r["state"], _removal_command(r).replace("<host>", h)))
            else:
                hp[h]["reports"].append(
                    "%s has %s %s-side peering '%s' in state %s with a cluster that is not in this play, not managed "
                    "by this collection; it is left alone (if it is an orphan: %s)"
                    % (h, "an" if r.get("role") == "acceptor" else "a", r.get("role") or "unknown", name, r["state"],
                       _removal_command(r).replace("<host>", h)))

    # Exports, intentions, failover and verification, and references that must name a peer.
    for h in sorted(reachable):
        p = hp[h]
        c = clusters[h]
        peer_names = [names[x] for x in sorted(p["peers"])]
        deleted = set(p["delete_acceptor"]) | set(p["delete_dialer"])
        gone = sorted(deleted - set(peer_names))
        p["unref"] = gone
        existing = set(recs[h]) - deleted
        allowed = set(peer_names) | set(p["renamed"]) | existing | set(gone)

        state = c.get("state", "present")

        def resolve(ref, where, h=h, p=p, allowed=allowed, state=state):
            # Unpeering writes nothing from these lists, so a name that is gone already is no typo there.
            if ref not in allowed and state == "present":
                raise PlanError("%s on %s names '%s', which is not a peer of this cluster: its peers are %s "
                                "(names from cluster_peering_name, or existing peerings)"
                                % (where, h, ref, ", ".join(sorted(set(peer_names) | existing)) or "none"))
            return p["renamed"].get(ref, ref)

        for e in c.get("exports") or []:
            listed = e.get("peers")
            refs = [resolve(x, "cluster_peering_exports[%s].peers" % e["name"]) for x in listed] \
                if listed is not None else peer_names
            refs = [x for x in _uniq(refs) if x not in gone]
            svc = dict(name=e["name"])
            if e.get("namespace"):
                svc["namespace"] = e["namespace"]
            if refs and state == "present":
                p["exports"].append(dict(svc, consumers=[dict(peer=x) for x in refs]))
            if gone:
                p["export_removals"].append(dict(svc, consumers=[dict(peer=x) for x in gone]))
        for i in c.get("intentions") or []:
            sources = []
            for s in i.get("sources") or []:
                ref = resolve(s["peer"], "cluster_peering_intentions[%s].sources[%s].peer" % (i["name"], s["name"]))
                if ref in gone:
                    continue
                src = dict(action="allow")
                src.update({k: v for k, v in s.items() if v is not None})
                src["peer"] = ref
                sources.append(src)
            if sources and state == "present":
                p["intentions"].append(dict(name=i["name"], sources=sources))
            names_used = _uniq(s["name"] for s in i.get("sources") or [])
            if gone and names_used:
                p["intention_removals"].append(dict(name=i["name"], sources=[
                    dict(name=n, peer=x) for x in gone for n in names_used]))
        for f in c.get("failover") or []:
            listed = f.get("peers")
            refs = [resolve(x, "cluster_peering_failover[%s].peers" % f["name"]) for x in listed] \
                if listed is not None else peer_names
            refs = [x for x in _uniq(refs) if x not in gone]
            if refs and state == "present":
                p["failover"].append(dict(name=f["name"], targets=[dict(peer=x) for x in refs]))
            if gone:
                p["failover_removals"].append(dict(name=f["name"], targets=[dict(peer=x) for x in gone]))

    for h in sorted(reachable):
        for o in sorted(hp[h]["peers"]):
            if o in remote:
                # Only what the other team's inventory declares, and only once the peering is (being) made here.
                if (h, o) in remote_verified:
                    services = [x["name"] for x in clusters[o].get("exports") or []
                                if x.get("peers") is None or names[h] in x["peers"]]
                    if services:
                        hp[h]["verify"].append(dict(peer_name=names[o], expect_services=_uniq(services)))
                    mine = [x["name"] for x in hp[h]["exports"] if any(cn["peer"] == names[o] for cn in x["consumers"])]
                    if mine and any(x["peer_name"] == names[o] for x in hp[h]["verify_exports"]):
                        hp[h]["verify_exports"] = [dict(x, services=mine) if x["peer_name"] == names[o] else x
                                                   for x in hp[h]["verify_exports"]]
                    else:
                        hp[h]["verify_exports"] = [x for x in hp[h]["verify_exports"] if x["peer_name"] != names[o]]
                continue
            if o not in reachable:
                continue
            services = [x["name"] for x in hp.get(o, {}).get("exports", [])
                        if any(cn["peer"] == names[h] for cn in x["consumers"])]
            if services:
                hp[h]["verify"].append(dict(peer_name=names[o], expect_services=services))
    for h in hp:
        p = hp[h]
        if h not in reachable and h not in remote:
            p["skip"] = True
            p["summary"].append("skipped: %s cannot be read" % h)
        p["peers"] = sorted(p["peers"])
        if h in remote:
            p["skip"] = True
            p["summary"].append("not contacted: %s is marked cluster_peering_remote (another team runs its side)" % h)
        p["changes"] = bool(p["delete_acceptor"] or p["delete_dialer"] or p["tokens"] or p["establish"]
                            or p["handover_tokens"] or p["handover_establish"] or p["handover_drop"])
    # The clusters whose lock a run must hold before it changes peerings: the accepting side of every peering
    # it makes or removes (two runs making one peering both generate its token there), in peer-name order so
    # that overlapping runs take them in one order and cannot deadlock. Config entries need none (CAS writes).
    # In a one-side run the accepting side may be another team's cluster, never contacted: then the dialing
    # side that establishes from the handover file is locked instead (two runs would both dial one token).
    locks = sorted((h for h in hp if hp[h]["tokens"] or hp[h]["delete_acceptor"] or hp[h]["handover_tokens"]
                    or hp[h]["handover_establish"]), key=lambda h: (names[h], h))
    for h in hp:
        hp[h]["locks"] = locks
    return dict(errors=[], hosts=hp)


def handover_key(acceptor_name, dialer_name):
    """The handover file's entry of the peering `acceptor_name` accepts from `dialer_name`."""
    return "%s/%s" % (acceptor_name, dialer_name)


RUN_AGAIN = "the acceptor's team must run the role again to hand over a new token"


def _when(epoch):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _remove_stale(h, rec, other, hp, delete):
    """Delete h's record under the pair's name before peering again; a live unmanaged one is refused."""
    if rec["state"] in LIVE and not is_managed(rec):
        raise PlanError("%s already has a peering '%s' in state %s, not managed by this collection, so it "
                        "is never touched: remove it yourself (%s) or give %s another cluster_peering_name"
                        % (h, rec["name"], rec["state"], _removal_command(rec).replace("<host>", h), other))
    delete(h, rec)
    hp[h]["summary"].append("remove the stale peering %s (%s, %s side) before peering again"
                            % (rec["name"], rec["state"], rec.get("role")))


def plan_remote_pair(a, d, clusters, names, recs, hp, accounted, delete, acceptor_is_remote, handover, verified):
    """One side of a peering whose other side another team runs (cluster_peering_remote): the handover.

    The acceptor's side (d remote) generates a token and publishes it in the handover file, unless its peering
    is live (nothing to do) or PENDING with a token in the file that is still valid (nothing to do: the other
    team has not dialed yet). The dialer's side (a remote) establishes with the file's token, unless its
    peering is live; then it removes a used token left in the file. A token older than max_age, or one this
    cluster already dialed (a peering here carries its peering ID), is refused: the dialer cannot see the
    acceptor, so that is what it can check; a secret the acceptor no longer honours (used, replaced) is
    refused by Consul at establishment, and the role says the same.
    """
    na, nd = names[a], names[d]
    key = handover_key(na, nd)
    entry = (handover.get("entries") or {}).get(key)
    path = handover.get("file") or "the handover file"
    now = handover.get("now") or time.time()
    max_age = int(handover.get("max_age") or 0)
    wanted = all(clusters[x].get("state", "present") == "present" for x in (a, d))
    h, o = (d, a) if acceptor_is_remote else (a, d)
    rec = recs[h].get(names[o])
    if not wanted:
        if rec and rec["name"] not in accounted[h]:
            delete(h, rec)
            hp[h]["summary"].append("remove the peering %s with %s (%s's team removes its own side)"
                                    % (rec["name"], o, o))
        return
    hp[h]["peers"].append(o)
    fresh = bool(entry) and max_age > 0 and now - float(entry.get("generated_at") or 0) <= max_age
    if not acceptor_is_remote:
        meta = _acceptor_meta(clusters[a])
        if rec and rec.get("role") == "acceptor" and rec["state"] in LIVE:
            accounted[a].add(rec["name"])
            verified.add((a, d))
            hp[a]["verify_exports"].append(dict(peer_name=nd, services=[]))
            _meta_warnings(hp[a], clusters[a], rec, nd)
            _sea_warning(hp[a], clusters[a], rec, a)
            if entry and entry.get("peering_id") == rec.get("id"):
                hp[a]["reports"].append("%s still holds the used token of the %s peering %s: %s's run removes it"
                                        % (path, rec["state"], nd, d))
            return
        if rec and rec.get("role") == "acceptor" and rec["state"] == "PENDING":
            accounted[a].add(rec["name"])
            if fresh and entry.get("peering_id") == rec.get("id"):
                hp[a]["reports"].append(
                    "the peering %s is PENDING: %s's team has not established it yet with the token in %s (made %s, "
                    "refused by the dialer after %s); no new token is made until then"
                    % (nd, d, path, _when(float(entry["generated_at"])), _when(float(entry["generated_at"]) + max_age)))
                return
            why = "its token in %s is older than cluster_peering_handover_max_age" % path if entry and \
                not fresh else "%s holds no token for it" % path
            hp[a]["summary"].append("replace the token of the PENDING peering %s (%s)" % (nd, why))
        elif rec:
            _remove_stale(a, rec, d, hp, delete)
        tok = dict(peer_name=nd, dialer=d, acceptor_name=na, key=key, meta=meta)
        if clusters[a].get("server_external_addresses"):
            tok["server_external_addresses"] = list(clusters[a]["server_external_addresses"])
        hp[a]["handover_tokens"].append(tok)
        hp[a]["summary"].append("create the peering %s: generate a token and hand it over in %s for %s's team"
                                % (nd, path, d))
        return

    dmeta = dict(clusters[d].get("meta") or {})
    dmeta[MANAGED_KEY] = MANAGED_VALUE
    if rec and rec.get("role") == "dialer" and rec["state"] in LIVE:
        accounted[d].add(rec["name"])
        verified.add((d, a))
        if entry and entry.get("peering_id") == rec.get("peer_id"):
            hp[d]["handover_drop"].append(key)
            hp[d]["summary"].append("remove the used token of the peering %s from %s" % (na, path))
        elif entry:
            hp[d]["reports"].append("%s holds a token for %s that is not the one of the %s peering %s (another "
                                    "peering ID); the live peering is kept and the token is not used"
                                    % (path, na, rec["state"], na))
        return
    if not entry:
        raise PlanError("%s holds no token for the peering %s of %s with %s (entry %s): %s (or first)"
                        % (path, na, d, a, key, RUN_AGAIN))
    if not fresh:
        raise PlanError("the token for the peering %s in %s was made %s, longer ago than "
                        "cluster_peering_handover_max_age (%d s), so it is refused: %s"
                        % (na, path, _when(float(entry.get("generated_at") or 0)), max_age, RUN_AGAIN))
    used = [r for r in recs[d].values() if r.get("peer_id") and r.get("peer_id") == entry.get("peering_id")]
    if used:
        raise PlanError("the token for the peering %s in %s was already used: this cluster's peering %s (%s) dialed "
                        "that peering (ID %s), so its single-use secret is spent: %s"
                        % (na, path, used[0]["name"], used[0]["state"], entry.get("peering_id"), RUN_AGAIN))
    if rec:
        accounted[d].add(rec["name"])
        if not (rec.get("role") == "dialer" and rec["state"] == "TERMINATED"):
            _remove_stale(d, rec, a, hp, delete)
    verified.add((d, a))
    hp[d]["handover_establish"].append(dict(peer_name=na, acceptor=a, key=key, meta=dmeta,
                                            peering_id=entry.get("peering_id")))
    hp[d]["wait"].append(dict(peer_name=na))
    hp[d]["summary"].append("create the peering %s: establish with the token %s's team handed over in %s"
                            % (na, a, path))


def _uniq(items):
    out = []
    for x in items:
        if x not in out:
            out.append(x)
    return out


def _rename(p, old, new):
    if old != new:
        p["renamed"][old] = new


def _acceptor_meta(cluster):
    """The Meta of a token this acceptor generates: the user's, the managed mark, the external addresses."""
    meta = dict(cluster.get("meta") or {})
    meta[MANAGED_KEY] = MANAGED_VALUE
    if cluster.get("server_external_addresses"):
        meta[SEA_KEY] = ",".join(sorted(cluster["server_external_addresses"]))
    return meta


def _meta_warnings(p, cluster, rec, peer_name):
    want = dict(cluster.get("meta") or {})
    have = {k: v for k, v in (rec.get("meta") or {}).items() if k not in (MANAGED_KEY, SEA_KEY)}
    if want and want != have:
        p["warnings"].append("cluster_peering_meta of %s differs from the meta of its ACTIVE peering %s (%s): it "
                             "applies only with a new token, i.e. when the peering is made again (delete it, then "
                             "run the role)" % (p["name"], peer_name, have or "none"))


def _sea_warning(p, acceptor_cluster, acceptor_rec, acceptor_host):
    """Warn when the acceptor's external addresses differ from those its ACTIVE peering's token carried (SEA_KEY)."""
    want = sorted(acceptor_cluster.get("server_external_addresses") or [])
    recorded = (acceptor_rec.get("meta") or {}).get(SEA_KEY)
    have = sorted(a for a in (recorded or "").split(",") if a)
    if want != have:
        p["warnings"].append("cluster_peering_server_external_addresses of %s (%s) differ from the addresses the token "
                             "of its ACTIVE peering %s carried (%s): they apply only with a new token, i.e. when the "
                             "peering is made again (delete it, then run the role)"
                             % (acceptor_host, ", ".join(want) or "none", acceptor_rec["name"],
                                ", ".join(have) or "none recorded"))


def _seconds(value):
    try:
        seconds = int(value)
    except (TypeError, ValueError):
        seconds = -1
    if seconds < 0 or isinstance(value, bool):
        raise AnsibleActionFail("refused before any write: cluster_peering_failing_grace must be a number of seconds "
                                "(0 or more), not %r" % (value,))
    return seconds


def plan_or_errors(*args, **kwargs):
    try:
        return plan(*args, **kwargs)
    except PlanError as e:
        return dict(errors=[str(e)], hosts={})


class ActionModule(ActionBase):
    """Collects the plan's input from the play; sends nothing to any host."""

    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(("read_var",))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        read_var = self._task.args.get("read_var") or "cluster_peering__read"
        hostvars = task_vars.get("hostvars") or {}
        groups = task_vars.get("groups") or {}
        me = task_vars.get("inventory_hostname")

        def var(h, name, default=None):
            hv = hostvars[h] if h in hostvars else {}
            try:
                value = hv[name] if name in hv else default
            except Exception:  # pylint: disable=broad-except
                value = default
            return default if value is None else value

        def mine(name, default=None):
            value = task_vars.get(name, default)
            value = self._templar.template(value) if value is not None else default
            return default if value is None else value

        acceptors = list(groups.get(mine("cluster_peering_acceptors_group", "consul_acceptors")) or [])
        dialers = list(groups.get(mine("cluster_peering_dialers_group", "consul_dialers")) or [])
        mesh = list(groups.get(mine("cluster_peering_mesh_group", "consul_mesh")) or [])
        batch = list(task_vars.get("ansible_play_batch") or [me])
        play_hosts = list(task_vars.get("ansible_play_hosts_all") or batch)
        universe = set(acceptors) | set(dialers) | set(mesh) | set(play_hosts)
        for h in list(universe):
            for p in var(h, "cluster_peering_peers") or []:
                universe.add(p)
        clusters = {}
        for h in sorted(universe):
            if h not in hostvars:
                continue  # plan() names the unknown host in cluster_peering_peers
            # Hosts of the batch published their settings (role parameters and defaults included);
            # others are only needed for the guard, from the inventory.
            is_remote = boolean(var(h, "cluster_peering_remote", False), strict=False)
            config = var(h, "cluster_peering__config") if h in batch and not is_remote else None
            if not isinstance(config, dict):
                config = dict(name=var(h, "cluster_peering_name", h), state=var(h, "cluster_peering_state", "present"),
                              peers=var(h, "cluster_peering_peers", []))
                if is_remote:
                    # What the other team's cluster exports, when this team's inventory says so: verified here.
                    config["exports"] = var(h, "cluster_peering_exports", [])
            observed = None
            if h in batch and not is_remote:
                read = var(h, read_var)
                if isinstance(read, dict) and not read.get("skipped"):
                    failed = bool(read.get("failed") or read.get("unreachable"))
                    observed = dict(failed=failed, msg=read.get("msg"), down=is_down(read),
                                    peerings=None if failed else list(read.get("peerings") or []),
                                    trust_domain=read.get("trust_domain"))
                else:
                    observed = dict(failed=True, msg="not read in this play", peerings=None)
            clusters[h] = dict(
                name=config.get("name") or h,
                state=config.get("state") or "present",
                peers=list(config.get("peers") or []),
                exports=list(config.get("exports") or []),
                intentions=list(config.get("intentions") or []),
                failover=list(config.get("failover") or []),
                meta=dict(config.get("meta") or {}),
                server_external_addresses=list(config.get("server_external_addresses") or []),
                observed=observed,
                remote=is_remote,
            )
        strategy = "linear"
        play = self._task.get_play() if hasattr(self._task, "get_play") else None
        if play is not None:
            strategy = getattr(play, "strategy", None) or "linear"
        out = plan_or_errors(clusters, acceptors=acceptors, dialers=dialers, mesh=mesh, batch=batch,
                             play_hosts=play_hosts, strategy=strategy,
                             prune=boolean(mine("cluster_peering_prune", False), strict=False),
                             failing_grace=_seconds(mine("cluster_peering_failing_grace", FAILING_GRACE)),
                             handover=self._handover(mine))
        if out["errors"]:
            raise AnsibleActionFail("refused before any write: " + " | ".join(out["errors"]))
        mine = out["hosts"].get(me) or _empty_host_plan(me)
        result.update(changed=False, plan=mine, summary=mine["summary"] or ["no change"])
        for w in mine["warnings"]:
            self._display.warning(w)
        return result

    @staticmethod
    def _handover(mine):
        """The handover medium, and the handover file's entries (no token) the role's inspect step read."""
        medium = mine("cluster_peering_handover", "memory")
        if medium not in MEDIA:
            raise AnsibleActionFail("cluster_peering_handover must be one of %s (got %r)" % (", ".join(MEDIA), medium))
        out = dict(medium=medium, now=time.time(), max_age=int(mine("cluster_peering_handover_max_age", 86400)),
                   file=mine("cluster_peering_handover_file", None), entries={})
        inspected = mine("cluster_peering__handover", None)
        if medium != "memory" and isinstance(inspected, dict):
            out["file"] = inspected.get("path") or out["file"]
            out["entries"] = dict(inspected.get("entries") or {})
        return out
