# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The peering_events source against a stub Consul HTTP server (loopback, no real Consul).

The stub answers GET /v1/peerings like Consul: X-Consul-Index, and a request with ?index=
blocks until the index changes or ?wait= passes. Faults (5xx, 403, a dropped connection, a
stopped server, an index that goes backwards) are scripted per test.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import runpy
import threading
import time
import tracemalloc
from urllib.parse import parse_qs, urlsplit

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
SOURCE = os.path.join(ROOT, "extensions", "eda", "plugins", "event_source", "peering_events.py")
# ansible-rulebook loads a source with runpy.run_path; so do the tests.
src = runpy.run_path(SOURCE)

TOKEN = "9f1c2d3e-acl0-4bad-secr-etvalue00042"
MANAGED = {"managed-by": "seed.consul_peering"}


def peering(name, state="ACTIVE", pid=None, meta=None, **stream):
    return {"ID": pid or "id-" + name, "Name": name, "State": state, "PeerID": "peer-" + name,
            "Meta": meta, "PeerCAPems": ["-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"],
            "PeerServerAddresses": ["127.0.0.1:8503"],
            "StreamStatus": dict({"ImportedServices": ["backend"], "ExportedServices": None,
                                  "LastHeartbeat": "2026-12-02T02:00:00Z"}, **stream)}


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802 (http.server's name)
        stub = self.server.stub
        parts = urlsplit(self.path)
        query = dict((k, v[0]) for k, v in parse_qs(parts.query).items())
        stub.requests.append(dict(path=parts.path, query=query, token=self.headers.get("X-Consul-Token")))
        with stub.cond:
            fault = stub.faults.pop(0) if stub.faults else None
        if fault == "drop" or stub.stopped:
            self.close_connection = True
            self.connection.close()
            return
        if fault is not None:
            self._send(fault[0], fault[1].encode(), "text/plain", stub.index)
            return
        if "index" in query:
            asked = int(query["index"])
            wait = float(query.get("wait", "300s").rstrip("s"))
            with stub.cond:
                stub.cond.wait_for(lambda: stub.index != asked or stub.stopped, timeout=wait)
        if stub.stopped:  # a stopped server answers nothing, also on a kept-alive connection
            self.close_connection = True
            self.connection.close()
            return
        with stub.cond:
            body, index = json.dumps(stub.peerings).encode(), stub.index
        self._send(200, body, "application/json", index)

    def _send(self, status, body, ctype, index):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Consul-Index", str(index))
        self.end_headers()
        self.wfile.write(body)


class StubConsul:
    def __init__(self, peerings=(), index=10, port=0):
        self.peerings = list(peerings)
        self.index = index
        self.cond = threading.Condition()
        self.faults = []
        self.requests = []
        self.start(port)

    def start(self, port=0):
        self.stopped = False
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        self.server.daemon_threads = True
        self.server.stub = self
        self.port = self.server.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        with self.cond:
            self.stopped = True
            self.cond.notify_all()
        self.server.shutdown()
        self.server.server_close()

    def set(self, peerings, index=None):
        with self.cond:
            self.peerings = list(peerings)
            self.index = self.index + 1 if index is None else index
            self.cond.notify_all()

    def fail(self, *faults):
        with self.cond:
            self.faults.extend(faults)
            self.cond.notify_all()


@pytest.fixture
def stub():
    servers = []

    def make(*args, **kwargs):
        s = StubConsul(*args, **kwargs)
        servers.append(s)
        return s

    yield make
    for s in servers:
        try:
            s.stop()
        except Exception:  # pylint: disable=broad-except
            pass


class Watch:
    """Runs the source's main() in its own event loop thread; events land in a thread-safe list."""

    def __init__(self, args):
        self.events = []
        self.cond = threading.Condition()
        self.error = None
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, args=(args,), daemon=True)
        self.thread.start()

    def _run(self, args):
        outer = self

        class Q:
            async def put(self, event):
                with outer.cond:
                    outer.events.append(event)
                    outer.cond.notify_all()

        asyncio.set_event_loop(self.loop)
        self.task = self.loop.create_task(src["main"](Q(), args))
        try:
            self.loop.run_until_complete(self.task)
        except asyncio.CancelledError:
            pass
        except Exception as e:  # pylint: disable=broad-except
            self.error = e

    def wait(self, predicate, timeout=15):
        """The events so far, once predicate(events) holds (bounded)."""
        with self.cond:
            done = self.cond.wait_for(lambda: predicate(self.events) or self.error, timeout=timeout)
            assert done and not self.error, (self.error, self.events)
            return list(self.events)

    def stop(self):
        self.loop.call_soon_threadsafe(self.task.cancel)
        self.thread.join(10)


@pytest.fixture
def watch():
    watches = []

    def make(**args):
        w = Watch(args)
        watches.append(w)
        return w

    yield make
    for w in watches:
        w.stop()


def kinds(events, cluster_events=True):
    return [(e["type"], e.get("peer_name"), e.get("old_state"), e.get("new_state")) for e in events
            if cluster_events or "peer_name" in e]


FAST = dict(wait=2, settle=0.6, backoff_max=0.2)


# -- blocking-query index handling ---------------------------------------------------------------


def test_initial_snapshot_then_blocking_queries_follow_the_index(stub, watch):
    consul = stub([peering("dc2", meta=MANAGED), peering("other")], index=42)
    w = watch(url=consul.url, name="dc1", **FAST)
    events = w.wait(lambda ev: len(ev) == 2)
    assert kinds(events) == [("appeared", "dc2", None, "ACTIVE"), ("appeared", "other", None, "ACTIVE")]
    dc2, other = events
    assert dc2["initial"] is True and dc2["managed"] is True and dc2["managed_by"] == "seed.consul_peering"
    assert other["managed"] is False and other["managed_by"] is None and other["peering_meta"] == {}
    assert dc2["pair"] == "dc1|dc2" and dc2["cluster"] == "dc1" and dc2["url"] == consul.url
    assert dc2["last_heartbeat"] == "2026-12-02T02:00:00Z" and dc2["imported_services"] == ["backend"]
    assert "PeerCAPems" not in json.dumps(events) and "127.0.0.1:8503" not in json.dumps(events)
    # The first read is a plain GET; the next one blocks on the index the first answer carried.
    assert wait_until(lambda: len(consul.requests) >= 2)
    assert consul.requests[0]["query"] == {}
    assert consul.requests[1]["query"] == {"index": "42", "wait": "2s"}
    consul.set([peering("dc2", state="FAILING", meta=MANAGED), peering("other")], index=57)
    events = w.wait(lambda ev: len(ev) == 3)
    assert kinds(events[2:]) == [("state_changed", "dc2", "ACTIVE", "FAILING")]
    assert wait_until(lambda: any(r["query"].get("index") == "57" for r in consul.requests))


def test_quiet_cluster_is_read_once_per_wait_and_emits_nothing(stub, watch):
    consul = stub([peering("dc2")], index=7)
    w = watch(url=consul.url, wait=1, settle=0.5)
    w.wait(lambda ev: len(ev) == 1)
    time.sleep(2.5)  # a few blocking-query timeouts on an unchanged index
    assert len(w.events) == 1
    blocking = [r for r in consul.requests if r["query"].get("index") == "7"]
    # One request per wait (1 s + the stub's answer), not a hot loop.
    assert 2 <= len(blocking) <= 4, consul.requests


def test_index_going_backwards_resets_and_a_missing_peering_settles(stub, watch):
    consul = stub([peering("dc2", meta=MANAGED)], index=100)
    w = watch(url=consul.url, **FAST)
    w.wait(lambda ev: len(ev) == 1)
    assert wait_until(lambda: any(r["query"].get("index") == "100" for r in consul.requests))
    # A restarted server whose state is not restored yet: a lower index and no peerings.
    consul.set([], index=3)
    assert wait_until(lambda: any(r["query"].get("index") == "3" for r in consul.requests))
    seen = len(consul.requests)
    # The reset: after the backwards answer, one plain read (no index), then blocking again.
    assert {} in [r["query"] for r in consul.requests[:seen]]
    consul.set([peering("dc2", meta=MANAGED)], index=4)
    time.sleep(1.0)  # past settle: the peering came back within it, so nothing happened
    assert kinds(w.events) == [("appeared", "dc2", None, "ACTIVE")]
    # A real deletion later is reported, once.
    consul.set([], index=5)
    events = w.wait(lambda ev: len(ev) == 2)
    assert kinds(events[1:]) == [("deleted", "dc2", "ACTIVE", None)]
    assert events[1]["managed"] is True  # the last meta seen


def test_index_zero_is_never_sent_as_a_blocking_index(stub, watch):
    consul = stub([], index=0)
    w = watch(url=consul.url, **FAST)
    assert wait_until(lambda: len(consul.requests) >= 2)
    assert consul.requests[1]["query"]["index"] == "1"
    consul.set([peering("dc2")], index=8)
    w.wait(lambda ev: kinds(ev) == [("appeared", "dc2", None, "ACTIVE")])


# -- failures: 5xx, dropped connections, a stopped server, ACLs -------------------------------


def test_5xx_then_recovery_emits_unreachable_once_and_reachable(stub, watch):
    consul = stub([peering("dc2")], index=11)
    w = watch(url=consul.url, **FAST)
    w.wait(lambda ev: len(ev) == 1)
    consul.fail((500, "No cluster leader"), (500, "No cluster leader"), (503, "unavailable"), "drop")
    consul.set([peering("dc2")], index=12)
    events = w.wait(lambda ev: any(e["type"] == "cluster_reachable" for e in ev))
    assert [e["type"] for e in events] == ["appeared", "cluster_unreachable", "cluster_reachable"]
    down = events[1]
    assert down["status"] == 500 and "No cluster leader" in down["error"] and down["cluster"] == consul.url[7:]
    assert events[2]["down_seconds"] >= 0
    # Reconnected with a plain read (the index was reset), then blocking again.
    after = consul.requests[-3:]
    assert {} in [r["query"] for r in consul.requests[-6:]], after
    consul.set([peering("dc2", state="FAILING")], index=13)
    events = w.wait(lambda ev: len(ev) == 4)
    assert kinds(events[3:]) == [("state_changed", "dc2", "ACTIVE", "FAILING")]


def test_stopped_and_restarted_server(stub, watch):
    consul = stub([peering("dc2")], index=20)
    w = watch(url=consul.url, **FAST)
    w.wait(lambda ev: len(ev) == 1)
    consul.stop()
    consul.set([peering("dc2")], index=21)  # wakes the blocked handler, whose answer is lost with the server
    events = w.wait(lambda ev: any(e["type"] == "cluster_unreachable" for e in ev))
    down = [e for e in events if e["type"] == "cluster_unreachable"][0]
    assert down["status"] is None and "cannot" in down["error"]
    time.sleep(0.7)  # several bounded retries (backoff_max 0.2 s): still one unreachable event
    assert [e["type"] for e in w.events].count("cluster_unreachable") == 1
    consul.start(consul.port)
    events = w.wait(lambda ev: any(e["type"] == "cluster_reachable" for e in ev))
    assert [e["type"] for e in events] == ["appeared", "cluster_unreachable", "cluster_reachable"]


def test_backoff_is_bounded_and_grows():
    settings, clusters = src["parse_args"]({"url": "http://127.0.0.1:9", "backoff_max": 4})
    pauses = []

    async def sleep(seconds):
        pauses.append(seconds)
        if len(pauses) >= 8:
            raise asyncio.CancelledError()

    def read(client, index, wait):
        raise src["ConsulError"]("cannot reach Consul at http://127.0.0.1:9: connection refused")

    class Q:
        def __init__(self):
            self.events = []

        async def put(self, event):
            self.events.append(event)

    q = Q()
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(src["watch_cluster"](q, clusters[0], settings, sleep=sleep, read=read))
    rounded = [round(p, 1) for p in pauses]
    assert rounded[:4] == [0.5, 1.0, 2.0, 4.0] or all(abs(a - b) <= b * 0.1 for a, b in zip(pauses, [0.5, 1, 2, 4]))
    assert max(pauses) <= 4 * 1.1 and pauses[-1] >= 4
    assert [e["type"] for e in q.events] == ["cluster_unreachable"]


def test_acl_denied_is_reported_and_the_token_never_appears(stub, watch):
    consul = stub([peering("dc2")], index=5)
    consul.fail((403, "Permission denied: token with AccessorID 'a1b2' lacks permission 'peering:read'"),
                (403, "ACL not found for token %s" % TOKEN))
    w = watch(url=consul.url, token=TOKEN, **FAST)
    events = w.wait(lambda ev: any(e["type"] == "appeared" for e in ev))
    assert [e["type"] for e in events] == ["cluster_unreachable", "cluster_reachable", "appeared"]
    assert events[0]["status"] == 403 and "lacks permission 'peering:read'" in events[0]["error"]
    assert consul.requests[0]["token"] == TOKEN  # sent to Consul as the header...
    assert TOKEN not in json.dumps(w.events)  # ...and in no event


def test_token_echoed_in_an_error_is_scrubbed(stub, watch):
    consul = stub([], index=5)
    consul.fail((500, "internal error for token %s" % TOKEN))
    w = watch(url=consul.url, token=TOKEN, **FAST)
    events = w.wait(lambda ev: any(e["type"] == "cluster_reachable" for e in ev))
    assert TOKEN not in json.dumps(events) and "********" in events[0]["error"]


def test_env_fallbacks_are_the_modules(stub, watch, monkeypatch, tmp_path):
    consul = stub([peering("dc2")], index=5)
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    monkeypatch.setenv("CONSUL_HTTP_ADDR", "127.0.0.1:%d" % consul.port)
    monkeypatch.setenv("CONSUL_HTTP_TOKEN_FILE", str(token_file))
    monkeypatch.delenv("CONSUL_HTTP_TOKEN", raising=False)
    monkeypatch.delenv("CONSUL_HTTP_SSL", raising=False)
    w = watch(**FAST)
    events = w.wait(lambda ev: len(ev) == 1)
    assert events[0]["cluster"] == "127.0.0.1:%d" % consul.port
    assert consul.requests[0]["token"] == TOKEN


def test_two_clusters_are_watched_independently(stub, watch):
    one, two = stub([peering("dc2", meta=MANAGED)], index=5), stub([peering("dc1", meta=MANAGED)], index=9)
    w = watch(clusters=[{"name": "dc1", "url": one.url}, {"name": "dc2", "url": two.url}], **FAST)
    events = w.wait(lambda ev: len(ev) == 2)
    assert sorted((e["cluster"], e["peer_name"], e["pair"]) for e in events) == [
        ("dc1", "dc2", "dc1|dc2"), ("dc2", "dc1", "dc1|dc2")]
    two.stop()
    one.set([], index=6)
    events = w.wait(lambda ev: len(ev) == 4)
    assert sorted((e["type"], e["cluster"]) for e in events[2:]) == [("cluster_unreachable", "dc2"), ("deleted", "dc1")]


# -- arguments -----------------------------------------------------------------------------------


@pytest.mark.parametrize("args, message", [
    ({"wiat": 5}, "unknown argument(s) wiat"),
    ({"wait": 0}, "wait must be positive"),
    ({"wait": "soon"}, "wait must be a number of seconds"),
    ({"failing_grace": -1}, "failing_grace must be >= 0"),
    ({"clusters": []}, "clusters must be a non-empty list"),
    ({"clusters": [{"name": "a", "url": "http://127.0.0.1:1"}, {"name": "a", "url": "http://127.0.0.1:2"}]},
     "two clusters are named 'a'"),
    ({"clusters": [{"url": "http://127.0.0.1:1", "tokne": "x"}]}, "clusters[0] has unknown key(s) tokne"),
    ({"url": "ftp://consul"}, "only http:// and https://"),
    ({"url": "http://127.0.0.1:1", "client_cert": "/tmp/c.pem"}, "client_cert and client_key must be given together"),
    ({"url": "http://127.0.0.1:1", "validate_certs": "maybe"}, "validate_certs must be a boolean"),
    ({"url": "http://127.0.0.1:1", "emit_initial": "perhaps"}, "emit_initial must be a boolean"),
])
def test_bad_arguments_fail_before_any_request(args, message):
    with pytest.raises(ValueError) as err:
        asyncio.run(src["main"](None, args))
    assert message in str(err.value)


def test_cluster_items_inherit_top_level_options():
    settings, clusters = src["parse_args"]({
        "token": TOKEN, "validate_certs": "false", "wait": 30, "eda_feedback_queue": object(),
        "clusters": [{"name": "dc1", "url": "https://consul.dc1.test:8501"},
                     {"url": "consul.dc2.test:8500", "token": "other-token"}]}, environ={})
    assert settings["wait"] == 30 and settings["failing_grace"] == 60
    assert [c["name"] for c in clusters] == ["dc1", "consul.dc2.test:8500"]
    assert clusters[0]["conn"]["token"] == TOKEN and clusters[1]["conn"]["token"] == "other-token"
    assert clusters[0]["conn"]["validate_certs"] is False
    assert clusters[1]["url"] == "http://consul.dc2.test:8500"


# -- the transitions computed (pure) ---------------------------------------------------------------


def state_machine(**settings):
    base = dict(src["DEFAULTS"], emit_initial=True, pending_threshold=10, failing_grace=5, terminated_grace=20)
    base.update(settings)
    return src["ClusterState"]("dc1", "http://127.0.0.1:8500", base)


def steps(machine, table):
    out = []
    for now, records in table:
        out.append(kinds(machine.update(records, now)))
    return out


def test_transitions_table():
    m = state_machine()
    got = steps(m, [
        (0, [peering("a", "PENDING", meta=MANAGED), peering("b", "ACTIVE")]),
        (1, [peering("a", "ESTABLISHING", meta=MANAGED), peering("b", "ACTIVE")]),
        (2, [peering("a", "ACTIVE", meta=MANAGED), peering("b", "FAILING")]),
        (6, [peering("a", "ACTIVE", meta=MANAGED), peering("b", "FAILING")]),      # b FAILING 4 s: not yet
        (8, [peering("a", "ACTIVE", meta=MANAGED), peering("b", "FAILING")]),      # 6 s > grace 5
        (9, [peering("a", "ACTIVE", meta=MANAGED), peering("b", "FAILING")]),      # once only
        (10, [peering("a", "TERMINATED", meta=MANAGED), peering("b", "ACTIVE")]),
        (11, [peering("a", "DELETING", meta=MANAGED), peering("b", "ACTIVE")]),
        (12, [peering("b", "ACTIVE")]),
        (13, [peering("b", "ACTIVE", pid="id-b-2")]),                               # deleted and made again
        (14, [peering("b", "ACTIVE", pid="id-b-2"), peering("c", "PENDING")]),
        (30, [peering("b", "ACTIVE", pid="id-b-2"), peering("c", "PENDING")]),      # c PENDING 16 s > 10
    ])
    assert got == [
        [("appeared", "a", None, "PENDING"), ("appeared", "b", None, "ACTIVE")],
        [("state_changed", "a", "PENDING", "ESTABLISHING")],
        [("state_changed", "a", "ESTABLISHING", "ACTIVE"), ("state_changed", "b", "ACTIVE", "FAILING")],
        [],
        [("stuck", "b", "FAILING", "FAILING")],
        [],
        [("state_changed", "a", "ACTIVE", "TERMINATED"), ("state_changed", "b", "FAILING", "ACTIVE")],
        [("state_changed", "a", "TERMINATED", "DELETING")],
        [("deleted", "a", "DELETING", None)],
        [("deleted", "b", "ACTIVE", None), ("appeared", "b", None, "ACTIVE")],
        [("appeared", "c", None, "PENDING")],
        [("stuck", "c", "PENDING", "PENDING")],
    ]


def test_meta_survives_deleting():
    """Consul 1.22.7 lists a peering being deleted with State DELETING and no Meta."""
    m = state_machine()
    m.update([peering("a", meta=MANAGED)], 0)
    cleared = m.update([peering("a", meta=None)], 1)
    deleting = m.update([peering("a", "DELETING", meta=None)], 2)
    gone = m.update([], 3)
    assert kinds(cleared + deleting + gone) == [("state_changed", "a", "ACTIVE", "DELETING"),
                                                ("deleted", "a", "DELETING", None)]
    assert [e["managed"] for e in deleting + gone] == [True, True]


def test_stuck_repeat_and_terminated_grace():
    m = state_machine(stuck_repeat=15)
    got = steps(m, [(0, [peering("a", "TERMINATED")]), (19, [peering("a", "TERMINATED")]),
                    (21, [peering("a", "TERMINATED")]), (30, [peering("a", "TERMINATED")]),
                    (36, [peering("a", "TERMINATED")]), (40, [peering("a", "ACTIVE")])])
    assert got == [[("appeared", "a", None, "TERMINATED")], [], [("stuck", "a", "TERMINATED", "TERMINATED")], [],
                   [("stuck", "a", "TERMINATED", "TERMINATED")], [("state_changed", "a", "TERMINATED", "ACTIVE")]]


def test_no_initial_events_when_asked():
    m = state_machine(emit_initial=False)
    assert steps(m, [(0, [peering("a")]), (1, [peering("a"), peering("b")])]) == [[], [("appeared", "b", None, "ACTIVE")]]


def test_event_fields_are_plain_and_carry_no_peer_material():
    m = state_machine()
    event = m.update([peering("a", meta=dict(MANAGED, team="blue"))], 0)[0]
    assert json.loads(json.dumps(event)) == event
    assert set(event) == {
        "type", "cluster", "url", "peer_name", "pair", "old_state", "new_state", "managed", "managed_by",
        "peering_meta", "peering_id", "peer_id", "last_heartbeat", "last_receive", "last_send", "imported_services",
        "exported_services", "seconds_in_state", "initial", "observed_at"}
    assert event["peering_meta"] == {"managed-by": "seed.consul_peering", "team": "blue"}


def test_memory_after_1000_transitions_is_flat():
    """The source keeps one record per peering, whatever the number of transitions."""
    m = state_machine(stuck_repeat=1)
    states = ["ACTIVE", "FAILING", "TERMINATED", "ACTIVE", "DELETING"]
    names = ["peer-%02d" % i for i in range(10)]

    def run(transitions, t0):
        count = 0
        t = t0
        while count < transitions:
            t += 1
            step = [peering(n, states[(t + i) % len(states)]) for i, n in enumerate(names)]
            count += sum(1 for e in m.update(step, t) if e["type"] in ("state_changed", "appeared", "deleted"))
        return t, count

    tracemalloc.start()
    # Warm up, traced: every peering and code path seen, and the interpreter's own caches
    # (they grow once, by about 190 KiB, during the first ~150 answers).
    t, dummy = run(2000, 0)
    held = tracemalloc.get_traced_memory()[0]
    dummy, transitions = run(1000, t)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    grown = after - held
    print("\n[memory] %d peerings, after warm-up: %d bytes traced; after %d more transitions: %+d bytes" % (
        len(names), held, transitions, grown))
    assert transitions >= 1000
    assert grown < 64 * 1024, grown


def wait_until(probe, timeout=10, interval=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return True
        time.sleep(interval)
    return probe()


def test_documentation_covers_every_argument():
    import yaml

    doc = yaml.safe_load(src["DOCUMENTATION"])
    assert doc["short_description"] and doc["description"]
    documented = set(doc["options"])
    accepted = set(src["CONNECTION_KEYS"]) | set(src["DEFAULTS"]) | {"clusters", "emit_initial", "name"}
    assert documented == accepted
    for key, default in src["DEFAULTS"].items():
        assert float(doc["options"][key]["default"]) == default, key
    examples = yaml.safe_load(src["EXAMPLES"])
    assert "seed.consul_peering.peering_events" in examples[0]["sources"][0]
