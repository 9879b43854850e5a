# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""peering_events: an ansible-rulebook event source that watches Consul cluster peerings.

One watcher per cluster reads GET /v1/peerings as a Consul blocking query and
emits one event per state transition it sees.
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
short_description: Watch Consul cluster peerings and emit an event per state change.
description:
  - An ansible-rulebook event source plugin that watches the cluster peerings of one or more Consul
    clusters (C(GET /v1/peerings)) and puts one event on the queue for every state transition it
    sees, so that a rulebook can repair a broken peering (see the
    C(seed.consul_peering.repair_peerings) rulebook and C(docs/eda.md)).
  - Each cluster is read with Consul blocking queries (C(?index=&wait=)); a peering created,
    deleted, established or terminated wakes the query at once.
  - Consul computes the C(ACTIVE) and C(FAILING) states from the peering stream when it answers a
    read, and a blocking query does not wake when they change (measured on Consul 1.22.7). So every
    blocking query waits at most O(wait) seconds; its answer then carries the freshly computed
    state. O(wait) is therefore the bound on how late an C(ACTIVE) <-> C(FAILING) change is seen.
  - 'Event C(type)s: V(appeared) (a peering seen for the first time, also for every peering found at
    start with C(initial=true)), V(state_changed), V(deleted), V(stuck) (a peering has stayed in
    C(PENDING), C(FAILING) or C(TERMINATED) longer than its threshold), V(cluster_unreachable) and
    V(cluster_reachable).'
  - 'A peering event has: C(type), C(cluster) (the O(clusters[].name) it was read from), C(url),
    C(peer_name), C(pair) (the cluster and peer names, sorted and joined by C(|), the same from both
    sides of a peering when clusters are named as their peers name them), C(old_state),
    C(new_state), C(managed) (whether the peering meta C(managed-by) is C(seed.consul_peering)),
    C(managed_by), C(peering_meta), C(peering_id), C(peer_id), C(last_heartbeat), C(last_receive),
    C(last_send), C(imported_services), C(exported_services), C(seconds_in_state), C(initial) and
    C(observed_at). A V(deleted) event carries the last meta seen, so a rulebook still knows whether
    the peering was managed.'
  - 'A cluster event has C(type), C(cluster), C(url), C(status) (the HTTP status, or none for a
    network error), C(error) (the reason, in words) and, on V(cluster_reachable), C(down_seconds).'
  - After a failed read the source retries with a bounded exponential backoff (up to
    O(backoff_max) seconds) and emits V(cluster_unreachable) once, then V(cluster_reachable) when
    the cluster answers again. A restarted Consul may list no peerings for a moment and its index
    may go backwards; after a reconnect or a backwards index, a peering that is missing is reported
    V(deleted) only if it is still missing O(settle) seconds later.
  - No event carries a secret; the ACL token is only ever sent to Consul as a header, and error
    texts are scrubbed of it.
options:
  clusters:
    description:
      - The clusters to watch. Each item may set O(clusters[].name) and any connection option
        below; an option not set in an item is taken from the top-level option of the same name,
        then from Consul's environment variables, as for the collection's modules.
      - If not set, one cluster, described by the top-level connection options.
    type: list
    elements: dict
    suboptions:
      name:
        description:
          - The cluster's name in events. Use the name its peers know it by (the role's
            C(cluster_peering_name)), so that both sides of a peering give the same C(pair).
          - Defaults to the host and port of its URL.
        type: str
  name:
    description:
      - The name of the one cluster described by the top-level options (without O(clusters)).
    type: str
  url:
    description:
      - Address of the Consul HTTP API (URL or V(host:port)); falls back to E(CONSUL_HTTP_ADDR),
        then V(http://127.0.0.1:8500).
    type: str
  token:
    description:
      - ACL token (needs C(peering:read)); falls back to E(CONSUL_HTTP_TOKEN), then the file named
        by E(CONSUL_HTTP_TOKEN_FILE). Never part of an event.
    type: str
  ca_path:
    description: CA file or directory for V(https://); falls back to E(CONSUL_CACERT), E(CONSUL_CAPATH).
    type: path
  client_cert:
    description: Client certificate for mutual TLS; falls back to E(CONSUL_CLIENT_CERT).
    type: path
  client_key:
    description: Key of O(client_cert); falls back to E(CONSUL_CLIENT_KEY).
    type: path
  validate_certs:
    description: Verify the server certificate; falls back to E(CONSUL_HTTP_SSL_VERIFY), then V(true).
    type: bool
  tls_server_name:
    description: Name to verify the server certificate against; falls back to E(CONSUL_TLS_SERVER_NAME).
    type: str
  partition:
    description: Admin partition (Consul Enterprise); falls back to E(CONSUL_PARTITION).
    type: str
  datacenter:
    description: Datacenter to read (C(?dc=)).
    type: str
  timeout:
    description:
      - Seconds to wait for Consul beyond the blocking query's own O(wait).
    type: float
    default: 10
  wait:
    description:
      - The longest a blocking query waits, in seconds (Consul adds up to 1/16 of it as jitter).
      - Also the bound on how late a computed state change (C(ACTIVE) <-> C(FAILING)) is seen, and
        the cadence of requests on a quiet cluster (60/O(wait) a minute).
    type: float
    default: 10
  pending_threshold:
    description: Seconds a peering may stay C(PENDING) (token generated, never dialed) before a V(stuck) event.
    type: float
    default: 300
  failing_grace:
    description: Seconds a peering may stay C(FAILING) before a V(stuck) event.
    type: float
    default: 60
  terminated_grace:
    description:
      - Seconds a peering may stay C(TERMINATED) before a V(stuck) event (the state change itself is
        an event at once).
    type: float
    default: 300
  stuck_repeat:
    description:
      - Emit the V(stuck) event again every this many seconds while the peering stays in that state;
        V(0) emits it once. Lets a rulebook retry a repair that its throttle dropped.
    type: float
    default: 0
  settle:
    description:
      - After a reconnect or an index that went backwards, seconds a missing peering must stay missing
        before it is reported V(deleted).
    type: float
    default: 15
  backoff_max:
    description:
      - Longest pause between two attempts to read an unreachable cluster, in seconds; also the
        longest a cluster that is back can go unnoticed.
    type: float
    default: 10
  emit_initial:
    description: Emit an V(appeared) event (C(initial=true)) for every peering found at start.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Watch two clusters' peerings
  hosts: all
  sources:
    - seed.consul_peering.peering_events:
        token: "{{ consul_token }}"
        ca_path: /etc/consul/ca.pem
        failing_grace: 60
        clusters:
          - name: dc1
            url: https://consul.dc1.example.com:8501
          - name: dc2
            url: https://consul.dc2.example.com:8501
  rules:
    - name: Show a managed peering that broke
      condition: event.managed == true and event.new_state == "TERMINATED"
      action:
        print_event:
"""

import asyncio
import os
import random
import sys
import threading
import time
from datetime import datetime, timezone
from urllib.parse import urlsplit


def _import_consul_api():
    """The collection's HTTP client, importable also when ansible-rulebook runs this file by path."""
    try:
        from ansible_collections.seed.consul_peering.plugins.module_utils import consul_api
        return consul_api
    except ImportError:
        # .../ansible_collections/seed/consul_peering/extensions/eda/plugins/event_source/this.py
        here = os.path.abspath(__file__)
        parts = here.split(os.sep)
        if len(parts) > 8 and parts[-8] == "ansible_collections":
            sys.path.insert(0, os.sep.join(parts[:-8]))
            from ansible_collections.seed.consul_peering.plugins.module_utils import consul_api
            return consul_api
        raise


consul_api = _import_consul_api()
ConsulError = consul_api.ConsulError

MANAGED_BY = "seed.consul_peering"
CONNECTION_KEYS = ("url", "token", "ca_path", "client_cert", "client_key", "validate_certs",
                   "tls_server_name", "partition", "datacenter", "timeout")
DEFAULTS = dict(wait=10.0, pending_threshold=300.0, failing_grace=60.0, terminated_grace=300.0,
                stuck_repeat=0.0, settle=15.0, backoff_max=10.0, timeout=10.0)
# Pause between two answers that came back at once (a flapping peering bumps the index fast).
MIN_SPACING = 0.05
BACKOFF_FIRST = 0.5


def _as_bool(value, option):
    if isinstance(value, bool) or value is None:
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on", "y", "t"):
        return True
    if text in ("0", "false", "no", "off", "n", "f"):
        return False
    raise ValueError("peering_events: %s must be a boolean, got %r" % (option, value))


def _as_seconds(value, option, positive=False):
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError("peering_events: %s must be a number of seconds, got %r" % (option, value))
    if number < 0 or (positive and number == 0):
        raise ValueError("peering_events: %s must be %s, got %r" % (option, "positive" if positive else ">= 0", value))
    return number


def parse_args(args, environ=None):
    """Validate the source arguments; returns (settings, [cluster dicts]). Raises ValueError."""
    args = dict(args or {})
    args.pop("eda_feedback_queue", None)
    known = set(CONNECTION_KEYS) | set(DEFAULTS) | {"clusters", "emit_initial", "name"}
    unknown = sorted(set(args) - known)
    if unknown:
        raise ValueError("peering_events: unknown argument(s) %s; known: %s" % (", ".join(unknown), ", ".join(sorted(known))))
    settings = {}
    for key, default in DEFAULTS.items():
        value = args.get(key)
        settings[key] = default if value is None else _as_seconds(value, key, positive=key in ("wait", "timeout", "backoff_max"))
    settings["emit_initial"] = _as_bool(args.get("emit_initial", True), "emit_initial")
    items = args.get("clusters")
    if items is None:
        items = [{"name": args.get("name")}]
    elif args.get("name"):
        raise ValueError("peering_events: name names the one cluster of the top-level options; with clusters, name each item")
    if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
        raise ValueError("peering_events: clusters must be a non-empty list of mappings (name, url, token, ...)")
    clusters, names = [], set()
    for pos, item in enumerate(items):
        bad = sorted(k for k in set(item) - set(CONNECTION_KEYS) - {"name"})
        if bad:
            raise ValueError("peering_events: clusters[%d] has unknown key(s) %s" % (pos, ", ".join(bad)))
        params = dict((k, item.get(k, args.get(k))) for k in CONNECTION_KEYS)
        params["validate_certs"] = _as_bool(params["validate_certs"], "validate_certs")
        params["timeout"] = settings["timeout"] if params["timeout"] is None else _as_seconds(params["timeout"], "timeout", True)
        try:
            conn = consul_api.resolve_connection(params, environ=environ)
        except ConsulError as e:
            raise ValueError("peering_events: clusters[%d]: %s" % (pos, e))
        netloc = urlsplit(conn["url"])
        public_url = "%s://%s" % (netloc.scheme, netloc.hostname if netloc.port is None else "%s:%s" % (netloc.hostname, netloc.port))
        name = str(item.get("name") or public_url.split("://", 1)[1])
        if name in names:
            raise ValueError("peering_events: two clusters are named %r; give each a distinct name" % name)
        names.add(name)
        clusters.append(dict(name=name, url=public_url, conn=conn))
    return settings, clusters


# -- what a peering looks like in an event -------------------------------------------------------


def peering_view(raw):
    """The fields of a /v1/peerings record an event carries (no CA, addresses or anything secret)."""
    stream = raw.get("StreamStatus") or {}
    meta = raw.get("Meta") or {}
    return dict(
        state=raw.get("State"),
        peering_id=raw.get("ID"),
        peer_id=raw.get("PeerID") or None,
        peering_meta=dict((str(k), str(v)) for k, v in meta.items()),
        last_heartbeat=stream.get("LastHeartbeat"),
        last_receive=stream.get("LastReceive"),
        last_send=stream.get("LastSend"),
        imported_services=list(stream.get("ImportedServices") or []),
        exported_services=list(stream.get("ExportedServices") or []),
    )


def _now_iso():
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


STUCK_STATES = {"PENDING": "pending_threshold", "FAILING": "failing_grace", "TERMINATED": "terminated_grace"}


class ClusterState:
    """What one watcher knows about one cluster's peerings, and the events a new answer means.

    Pure: no I/O, the clock is passed in, so the transitions are unit-tested as a table.
    """

    def __init__(self, name, url, settings):
        self.name = name
        self.url = url
        self.settings = settings
        self.known = {}      # peer name -> view, plus "since" (monotonic) and "stuck_at"
        self.missing = {}    # peer name -> monotonic time first seen missing while settling
        self.settle_until = 0.0
        self.baseline = False

    def start_settling(self, now):
        self.settle_until = now + self.settings["settle"]

    def _event(self, kind, name, view, old_state, new_state, now, **extra):
        meta = view.get("peering_meta") or {}
        event = dict(
            type=kind, cluster=self.name, url=self.url, peer_name=name,
            pair="|".join(sorted([self.name, name])),
            old_state=old_state, new_state=new_state,
            managed=meta.get("managed-by") == MANAGED_BY, managed_by=meta.get("managed-by"),
            peering_meta=dict(meta), peering_id=view.get("peering_id"), peer_id=view.get("peer_id"),
            last_heartbeat=view.get("last_heartbeat"), last_receive=view.get("last_receive"),
            last_send=view.get("last_send"), imported_services=list(view.get("imported_services") or []),
            exported_services=list(view.get("exported_services") or []),
            seconds_in_state=round(max(0.0, now - view.get("since", now)), 1), initial=False,
            observed_at=_now_iso(),
        )
        event.update(extra)
        return event

    def update(self, raw_list, now):
        """Events for a new answer of /v1/peerings (a list of peering records)."""
        events = []
        fresh = {}
        for raw in raw_list or []:
            if isinstance(raw, dict) and raw.get("Name"):
                fresh[raw["Name"]] = peering_view(raw)
        first = not self.baseline
        self.baseline = True
        settling = now < self.settle_until
        for name, view in sorted(fresh.items()):
            self.missing.pop(name, None)
            old = self.known.get(name)
            if old is not None and old.get("peering_id") != view.get("peering_id"):
                # Deleted and created again between two answers: two events, in that order.
                events.append(self._event("deleted", name, old, old["state"], None, now))
                old = None
            if old is None:
                view["since"], view["stuck_at"] = now, None
                self.known[name] = view
                if not first or self.settings["emit_initial"]:
                    events.append(self._event("appeared", name, view, None, view["state"], now, initial=first))
                continue
            if not view["peering_meta"]:
                # Meta is set when a peering is made; Consul 1.22.7 clears it (and the stream
                # status) when the peering is being deleted, which would make it look unmanaged.
                view["peering_meta"] = old["peering_meta"]
            view["since"], view["stuck_at"] = old["since"], old["stuck_at"]
            if view["state"] != old["state"]:
                view["since"], view["stuck_at"] = now, None
                self.known[name] = view
                events.append(self._event("state_changed", name, view, old["state"], view["state"], now))
            else:
                self.known[name] = view
        for name in sorted(set(self.known) - set(fresh)):
            old = self.known[name]
            if settling:
                self.missing.setdefault(name, now)
                continue
            self.missing.pop(name, None)
            del self.known[name]
            events.append(self._event("deleted", name, old, old["state"], None, now))
        events.extend(self.stuck_events(now))
        return events

    def stuck_events(self, now):
        events = []
        for name, view in sorted(self.known.items()):
            option = STUCK_STATES.get(view["state"])
            if option is None or name in self.missing:
                continue
            if now - view["since"] < self.settings[option]:
                continue
            repeat = self.settings["stuck_repeat"]
            if view["stuck_at"] is None or (repeat > 0 and now - view["stuck_at"] >= repeat):
                view["stuck_at"] = now
                events.append(self._event("stuck", name, view, view["state"], view["state"], now))
        return events


# -- talking to Consul ---------------------------------------------------------------------------


class IndexTracker:
    """The blocking-query index, kept as Consul's guide says: reset when it goes backwards, never 0."""

    def __init__(self):
        self.index = 0

    def next(self, header):
        """Take the X-Consul-Index of an answer; returns True when it went backwards (a reset)."""
        try:
            new = int(header)
        except (TypeError, ValueError):
            new = 0
        went_back = new < self.index
        if went_back:
            self.index = 0
        else:
            self.index = max(new, 1)
        return went_back


def new_client(conn):
    """A ConsulClient for one cluster (retries are the source's own, with backoff and events)."""
    return consul_api.ConsulClient(dict(conn), retries=0)


def read_peerings(client, index, wait):
    """GET /v1/peerings, blocking when index is set; returns (list, X-Consul-Index header)."""
    resp = client.watch_peerings(index, wait)
    return resp.value or [], resp.index


async def _in_thread(fn, *args):
    """Run a blocking call in a daemon thread (a blocking query must never hold up the engine's shutdown)."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def deliver(value, error):
        if not future.done():
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(value)

    def run():
        try:
            value, error = fn(*args), None
        except Exception as e:  # pylint: disable=broad-except
            value, error = None, e
        try:
            loop.call_soon_threadsafe(deliver, value, error)
        except RuntimeError:
            pass  # the loop is gone: nobody waits for this answer

    threading.Thread(target=run, name="peering_events", daemon=True).start()
    return await future


def _failure(client, error):
    if isinstance(error, ConsulError):
        return error.status, client.scrub(error.msg)
    return None, client.scrub("cannot read peerings: %s: %s" % (type(error).__name__, error))


async def watch_cluster(queue, cluster, settings, clock=time.monotonic, sleep=asyncio.sleep, read=read_peerings):
    """Watch one cluster until cancelled."""
    client = new_client(cluster["conn"])
    state = ClusterState(cluster["name"], cluster["url"], settings)
    tracker = IndexTracker()
    down_since = None
    backoff = BACKOFF_FIRST
    while True:
        started = clock()
        try:
            peerings, header = await _in_thread(read, client, tracker.index, settings["wait"])
        except Exception as e:  # pylint: disable=broad-except
            status, reason = _failure(client, e)
            if down_since is None:
                down_since = clock()
                await queue.put(dict(type="cluster_unreachable", cluster=state.name, url=state.url, status=status,
                                     error=reason, observed_at=_now_iso()))
            tracker.index = 0
            await sleep(backoff * (1 + random.random() * 0.1))
            backoff = min(settings["backoff_max"], backoff * 2)
            continue
        backoff = BACKOFF_FIRST
        now = clock()
        if down_since is not None:
            await queue.put(dict(type="cluster_reachable", cluster=state.name, url=state.url, status=None, error=None,
                                 down_seconds=round(now - down_since, 1), observed_at=_now_iso()))
            down_since = None
            state.start_settling(now)
        if tracker.next(header):
            state.start_settling(now)
        for event in state.update(peerings, now):
            await queue.put(event)
        if now - started < MIN_SPACING:
            await sleep(MIN_SPACING)


async def main(queue, args):
    """Watch every configured cluster; puts plain dicts on queue."""
    settings, clusters = parse_args(args)
    tasks = [asyncio.ensure_future(watch_cluster(queue, c, settings)) for c in clusters]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()


if __name__ == "__main__":

    class MockQueue:
        """Prints the events (python peering_events.py; CONSUL_HTTP_ADDR says which cluster)."""

        async def put(self, event):
            print(event, flush=True)

    asyncio.run(main(MockQueue(), {}))
