# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Faults provoked on the real lab while the modules and the role run.

Times are measured and reported (docs/reliability.md), never asserted.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import threading
import time

import pytest
import yaml

from conftest import ROOT, STATE, consul, wait_for

pytest_plugins = ["reliability_plugin"]

PREFIX = "ft-"
# In this developer's port range (25000..25999) and outside every lab's listeners (base+100*i+0..79).
CLOSED_PORT = 25990
SILENT_PORT = 25991


def peerings(url):
    return {p["Name"]: p for p in consul(url, path="/v1/peerings")[1] or []}


def delete_peerings(url, names=None, prefix=PREFIX):
    doomed = [n for n in peerings(url) if (n in names if names else n.startswith(prefix))]
    for n in doomed:
        consul(url, "DELETE", "/v1/peering/" + n)
    assert wait_for(lambda: not [n for n in peerings(url) if n in doomed], timeout=90), peerings(url)


def generate(url, name):
    status, body = consul(url, "POST", "/v1/peering/token", {"PeerName": name})
    assert status == 200, body
    return body["PeeringToken"]


def establish(url, name, token):
    status, body = consul(url, "POST", "/v1/peering/establish", {"PeerName": name, "PeeringToken": token})
    assert status == 200, body


def establish_when_ready(url, name, token, timeout=30):
    """Establish, retrying (bounded) while the just-restarted acceptor's peering TLS is not ready yet.

    Right after a restart Consul 1.22.7 refuses the secret exchange for a moment with
    "tls: unrecognized name" (its peering server certificate is not loaded yet); the exchange
    failed, so the secret is still unused and the same token may be tried again.
    """
    deadline = time.monotonic() + timeout
    while True:
        status, body = consul(url, "POST", "/v1/peering/establish", {"PeerName": name, "PeeringToken": token})
        if status == 200 or time.monotonic() > deadline or "unrecognized name" not in str(body):
            break
        time.sleep(0.5)
    assert status == 200, body


def active(url, name):
    return peerings(url).get(name, {}).get("State") == "ACTIVE"


def adhoc(ansible, module, args, **kw):
    return ansible(["localhost", "-m", "seed.consul_peering." + module, "-a", json.dumps(args)], json_output=True, **kw)


def result_of(run):
    """The one host result of an ad-hoc run (JSON callback)."""
    return run.json()["plays"][0]["tasks"][0]["hosts"]["localhost"]


def assert_clean(run):
    assert "Traceback" not in run.output, run.output[-4000:]


@pytest.fixture
def clean(lab):
    acc, dial = lab["ACCEPTOR_URL"], lab["DIALER_URL"]
    delete_peerings(acc)
    delete_peerings(dial)
    yield acc, dial
    delete_peerings(dial)
    delete_peerings(acc)


# -- API unreachable -----------------------------------------------------------------------------


def test_api_unreachable_connection_refused(ansible, reliability, lab):
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", CLOSED_PORT)) != 0, "port %d is in use" % CLOSED_PORT
    url = "http://127.0.0.1:%d" % CLOSED_PORT
    start = time.monotonic()
    run = adhoc(ansible, "peering_info", {"url": url})
    seconds = time.monotonic() - start
    assert_clean(run)
    res = result_of(run)
    assert run.rc != 0 and res.get("failed")
    # ConsulClient's bound: 1 try + 3 retries (backoff 0.5, 1, 2 s).
    assert res["msg"] == ("cannot reach Consul at %s: connection refused (after 4 attempts); is the agent running?"
                          % url), res["msg"]
    reliability.add("fault", "API unreachable (connection refused), `peering_info`",
                    "failed clearly after 4 attempts", res["msg"], seconds)


class SilentServer:
    """Accepts TCP connections, counts them, never answers: every request times out."""

    def __init__(self, port):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.accepted = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        while not self.stop.is_set():
            try:
                conn, dummy = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.accepted.append(conn)

    def close(self):
        self.stop.set()
        self.thread.join(5)
        for c in self.accepted:
            c.close()
        self.sock.close()


@pytest.mark.parametrize("module,args,safe", [
    ("peering_info", {}, True),
    ("exported_services", {"services": [{"name": "x", "consumers": [{"peer": "ft-nobody"}]}]}, True),
], ids=["read", "config-entry-write"])
def test_api_unreachable_timeout_is_retried_a_bounded_number_of_times(ansible, reliability, lab, module, args, safe):
    server = SilentServer(SILENT_PORT)
    try:
        url = "http://127.0.0.1:%d" % SILENT_PORT
        start = time.monotonic()
        run = adhoc(ansible, module, dict(args, url=url, timeout=1))
        seconds = time.monotonic() - start
        connections = len(server.accepted)
    finally:
        server.close()
    assert_clean(run)
    res = result_of(run)
    assert run.rc != 0 and res.get("failed")
    assert res["msg"].startswith("cannot reach Consul at %s: no answer within 1.0s (after 4 attempts)" % url), res["msg"]
    assert "raise timeout" in res["msg"], res["msg"]
    # The first request is the entry's GET (safe to repeat): exactly 4 connections, then one GET
    # /v1/status/leader to explain the timeout (a silent server gives no answer: the message above stands).
    assert connections == 5, connections
    reliability.add("fault", "API silent (read timeout 1 s), `%s`" % module,
                    "failed clearly; %d connections seen by the server" % connections, res["msg"], seconds)


# -- a Consul server restarted while a module waits for ACTIVE ------------------------------------


def agent_pid(cluster):
    with open(os.path.join(STATE, "cluster%d" % cluster, "consul.pid")) as f:
        return int(f.read().strip())


def restart_agent(cluster, url, down_seconds=1.0):
    """Stop the lab agent of cluster<i> and start it again with the same command line and data dir.

    lab.sh up would wipe a stopped cluster's directory (it starts a stopped cluster fresh),
    so the agent is started here from its own /proc/<pid>/cmdline.
    """
    pid = agent_pid(cluster)
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        cmd = [a.decode() for a in f.read().split(b"\0") if a]
    assert any(a.startswith("-config-file=" + STATE) for a in cmd), cmd
    os.kill(pid, signal.SIGTERM)
    assert wait_for(lambda: not os.path.exists("/proc/%d/cmdline" % pid) or not open("/proc/%d/cmdline" % pid).read(),
                    timeout=30, interval=0.1)
    time.sleep(down_seconds)
    log = open(os.path.join(STATE, "cluster%d" % cluster, "consul.log"), "ab")
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    log.close()
    with open(os.path.join(STATE, "cluster%d" % cluster, "consul.pid"), "w") as f:
        f.write("%d\n" % proc.pid)
    assert wait_for(lambda: consul(url, path="/v1/status/leader", timeout=2)[1] not in (None, "", '""')
                    if _up(url) else False, timeout=60, interval=0.3)
    return proc.pid


def _up(url):
    try:
        return consul(url, path="/v1/status/leader", timeout=2)[0] == 200
    except OSError:
        return False


def test_server_restarted_while_module_waits_for_active(ansible, clean, reliability, tmp_path):
    acc, dial = clean
    token = generate(acc, "ft-restart-c2")
    # peering_info waits on the acceptor for the PENDING peering to become ACTIVE...
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": [{
        "name": "wait for ACTIVE", "seed.consul_peering.peering_info": {
            "url": acc, "peer_name": "ft-restart-c2", "wait_for": "active", "wait_timeout": 90}}]}]
    (tmp_path / "wait.yml").write_text(json.dumps(play))
    out = {}
    wait_args = [str(tmp_path / "wait.yml"), "-i", "localhost,", "-c", "local"]
    thread = threading.Thread(target=lambda: out.update(run=ansible(wait_args, playbook=True, json_output=True)))
    start = time.monotonic()
    thread.start()
    time.sleep(4)  # the module is polling by now
    old_pid = agent_pid(1)
    new_pid = restart_agent(1, acc)
    restarted_after = time.monotonic() - start
    # ...the acceptor's data survives the restart, so the token is still good: dial it. Right after the
    # election Consul 1.22.7 answers /v1/peerings with [] (and GET /v1/peering/<name> with 404) for a
    # moment before the peerings show again: wait for it, bounded, and report how long it took.
    t0 = time.monotonic()
    assert wait_for(lambda: "ft-restart-c2" in peerings(acc), timeout=30, interval=0.1)
    invisible = time.monotonic() - t0
    establish_when_ready(dial, "ft-restart-c1", token)
    thread.join(180)
    seconds = time.monotonic() - start
    assert not thread.is_alive()
    run = out["run"]
    assert_clean(run)
    res = run.json()["plays"][0]["tasks"][0]["hosts"]["localhost"]
    if run.rc == 0:
        outcome = ("recovered: ACTIVE after the restart (agent pid %d -> %d at %.0f s; peerings listed empty for "
                   "%.1f s after the election)" % (old_pid, new_pid, restarted_after, invisible))
        assert res["peering"]["state"] == "ACTIVE"
        msg = "peering %s, waited %s s" % (res["peering"]["state"], res.get("waited"))
    else:
        outcome = "failed clearly at its bound"
        msg = res["msg"]
        assert re.search(r"cannot reach Consul|not ACTIVE", msg), msg
    reliability.add("fault", "acceptor agent restarted while `peering_info wait_for=active` polls", outcome, msg, seconds)
    assert wait_for(lambda: active(acc, "ft-restart-c2") and active(dial, "ft-restart-c1"), timeout=60)


# -- the acceptor deletes the peering under an ACTIVE dialer ---------------------------------------


def test_establish_fresh_token_on_terminated_dialer(ansible, clean, reliability):
    acc, dial = clean
    establish(dial, "ft-term-c1", generate(acc, "ft-term-c2"))
    assert wait_for(lambda: active(dial, "ft-term-c1") and active(acc, "ft-term-c2"), timeout=60)
    old_id = peerings(acc)["ft-term-c2"]["ID"]
    consul(acc, "DELETE", "/v1/peering/ft-term-c2")
    assert wait_for(lambda: peerings(dial).get("ft-term-c1", {}).get("State") == "TERMINATED", timeout=60)
    assert wait_for(lambda: "ft-term-c2" not in peerings(acc), timeout=60)

    token = generate(acc, "ft-term-c2")
    start = time.monotonic()
    run = adhoc(ansible, "peering_establish",
                {"url": dial, "peer_name": "ft-term-c1", "peering_token": token, "wait_timeout": 60})
    seconds = time.monotonic() - start
    assert_clean(run)
    res = result_of(run)
    assert run.rc == 0, res
    assert res["changed"] is True and res["operation"] == "reestablish", res
    assert res["peering"]["state"] == "ACTIVE"
    new_id = peerings(acc)["ft-term-c2"]["ID"]
    assert new_id != old_id and peerings(dial)["ft-term-c1"]["PeerID"] == new_id
    assert token not in run.output
    again = result_of(adhoc(ansible, "peering_establish", {"url": dial, "peer_name": "ft-term-c1", "peering_token": token}))
    assert again["changed"] is False and again["operation"] == "none", again
    reliability.add("fault", "acceptor deleted the peering under an ACTIVE dialer; `peering_establish` with a fresh "
                    "token on the TERMINATED dialer", "repaired (reestablish), then idempotent",
                    "operation %s, state %s, new PeerID matches the acceptor" % (res["operation"], res["peering"]["state"]),
                    seconds)


# -- a token used twice ----------------------------------------------------------------------------


def test_token_used_twice(ansible, clean, reliability):
    acc, dial = clean
    token = generate(acc, "ft-twice-c2")
    first = result_of(adhoc(ansible, "peering_establish", {"url": dial, "peer_name": "ft-twice-c1", "peering_token": token}))
    assert first["changed"] is True and first["peering"]["state"] == "ACTIVE", first

    start = time.monotonic()
    same = adhoc(ansible, "peering_establish", {"url": dial, "peer_name": "ft-twice-c1", "peering_token": token})
    same_s = time.monotonic() - start
    assert_clean(same)
    assert result_of(same)["changed"] is False and result_of(same)["operation"] == "none"
    reliability.add("fault", "token used twice, same peer name (already ACTIVE with its PeerID)", "ok, no write",
                    "changed=false, operation=none", same_s)

    before = peerings(dial)
    start = time.monotonic()
    other = adhoc(ansible, "peering_establish", {"url": dial, "peer_name": "ft-twice-other", "peering_token": token})
    other_s = time.monotonic() - start
    assert_clean(other)
    res = result_of(other)
    assert other.rc != 0 and res.get("failed"), res
    assert token not in other.output
    assert re.search(r"already been used|single-use|generate a new token|already", res["msg"]), res["msg"]
    after = peerings(dial)
    assert "ft-twice-other" not in after, after
    assert after["ft-twice-c1"]["State"] == "ACTIVE" and after["ft-twice-c1"]["ModifyIndex"] == \
        before["ft-twice-c1"]["ModifyIndex"]
    reliability.add("fault", "token used twice, another peer name", "failed clearly, nothing left behind",
                    res["msg"], other_s)


# -- 50 concurrent writers ---------------------------------------------------------------------------

WRITERS = 50


def concurrent_play(tmp_path, task):
    hosts = {"w%02d" % i: {"writer": i} for i in range(WRITERS)}
    local = {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"}
    inv = {"all": {"hosts": hosts, "vars": local}}
    (tmp_path / "writers.yml").write_text(yaml.safe_dump(inv))
    play = [{"hosts": "all", "gather_facts": False, "tasks": [task]}]
    (tmp_path / "concurrent.yml").write_text(yaml.safe_dump(play))
    return [str(tmp_path / "concurrent.yml"), "-i", str(tmp_path / "writers.yml"), "--forks", str(WRITERS)]


def writer_results(run):
    return run.json()["plays"][0]["tasks"][0]["hosts"]


@pytest.mark.parametrize("kind", ["exported-services", "service-intentions"])
def test_concurrent_writers_lose_no_update(ansible, lab, reliability, tmp_path, kind):
    acc = lab["ACCEPTOR_URL"]
    if kind == "exported-services":
        entry_path = "/v1/config/exported-services/default"
        task = {"name": "write", "seed.consul_peering.exported_services": {
            "url": acc, "services": [{"name": "cw-{{ '%02d' % writer }}", "consumers": [{"peer": "ft-cw"}]}]}}
    else:
        entry_path = "/v1/config/service-intentions/ft-cw-dest"
        task = {"name": "write", "seed.consul_peering.service_intentions": {
            "url": acc, "name": "ft-cw-dest",
            "sources": [{"name": "cw-{{ '%02d' % writer }}", "peer": "ft-cw", "action": "allow"}]}}
    consul(acc, "DELETE", entry_path)
    try:
        start = time.monotonic()
        run = ansible(concurrent_play(tmp_path, task), playbook=True, json_output=True)
        seconds = time.monotonic() - start
        assert_clean(run)
        results = writer_results(run)
        failed = {h: r.get("msg") for h, r in results.items() if r.get("failed")}
        conflicts = sum(r.get("cas_conflicts", 0) for r in results.values())
        most = max(r.get("cas_conflicts", 0) for r in results.values())
        status, entry = consul(acc, path=entry_path)
        assert status == 200, entry
        items = entry["Services"] if kind == "exported-services" else entry["Sources"]
        names = sorted(i["Name"] for i in items)
        expected = ["cw-%02d" % i for i in range(WRITERS)]
        lost = sorted(set(expected) - set(names))
        reliability.add("fault", "%d concurrent writers to one %s entry" % (WRITERS, kind),
                        "%d/%d written, %d lost, %d failed" % (len(names), WRITERS, len(lost), len(failed)),
                        "CAS conflicts: %d in total, at most %d for one writer" % (conflicts, most), seconds)
        assert not failed, failed
        assert lost == [], lost
        assert all(r.get("changed") for r in results.values())
    finally:
        consul(acc, "DELETE", entry_path)


# -- the playbook interrupted after token generation ------------------------------------------------


def role_inventory(tmp_path, acc, dial, name="inventory.yml"):
    inv = {"all": {
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"},
        "children": {"consul_acceptors": {"hosts": {"ft-acc": {"cluster_peering_url": acc}}},
                     "consul_dialers": {"hosts": {"ft-dial": {"cluster_peering_url": dial}}}}}}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(inv))
    return str(path)


def test_playbook_interrupted_after_token_converges_on_rerun(ansible, clean, reliability, tmp_path):
    acc, dial = clean
    inv = role_inventory(tmp_path, acc, dial)
    # The role's token step alone, as if ansible-playbook had been stopped right after it (the token
    # lived in memory only, so it is lost): the acceptor is left with a PENDING peering for ft-dial.
    stop_after_token = [{"hosts": "consul_acceptors", "gather_facts": False, "tasks": [{
        "name": "Generate a peering token (then the run is interrupted)",
        "seed.consul_peering.peering_token": {"url": "{{ cluster_peering_url }}", "peer_name": "ft-dial"},
        "no_log": True}]}]
    (tmp_path / "stop.yml").write_text(yaml.safe_dump(stop_after_token))
    first = ansible([str(tmp_path / "stop.yml"), "-i", inv], playbook=True)
    assert first.rc == 0, first.output[-3000:]
    assert peerings(acc)["ft-dial"]["State"] == "PENDING"
    assert "ft-acc" not in peerings(dial)
    pending_id = peerings(acc)["ft-dial"]["ID"]

    start = time.monotonic()
    run = ansible([os.path.join(ROOT, "playbooks", "peer_clusters.yml"), "-i", inv], playbook=True, json_output=True)
    seconds = time.monotonic() - start
    assert_clean(run)
    assert run.rc == 0, run.output[-4000:]
    stats = run.json()["stats"]
    assert stats["ft-acc"]["changed"] > 0 and stats["ft-dial"]["changed"] > 0, stats
    # The playbook's first play only groups the hosts; the role's tasks are in the play after it.
    tasks = {t["task"]["name"]: t["hosts"] for play in run.json()["plays"] for t in play["tasks"]}
    token_task = [h for n, h in tasks.items() if "Generate a peering token for each dialer" in n][0]
    assert token_task["ft-acc"]["changed"] is True
    acc_p, dial_p = peerings(acc), peerings(dial)
    assert not [n for n, p in list(acc_p.items()) + list(dial_p.items()) if p["State"] == "PENDING"], (acc_p, dial_p)
    assert acc_p["ft-dial"]["State"] == "ACTIVE" and dial_p["ft-acc"]["State"] == "ACTIVE"
    # The PENDING peering got a new token, same ID (Consul keeps the ID across generations).
    assert acc_p["ft-dial"]["ID"] == pending_id == dial_p["ft-acc"]["PeerID"]
    reliability.add("fault", "playbook stopped after the token step, `peer_clusters` run again",
                    "converged: the PENDING peering got a new token and is ACTIVE; reported as changed",
                    "changed: ft-acc %d, ft-dial %d; no PENDING peering left"
                    % (stats["ft-acc"]["changed"], stats["ft-dial"]["changed"]), seconds)


def test_orphaned_pending_peering_of_a_dialer_not_in_inventory(ansible, clean, reliability, tmp_path):
    """A PENDING acceptor peering whose dialer is gone from the inventory: what does the role say?"""
    acc, dial = clean
    generate(acc, "ft-gone")
    inv = role_inventory(tmp_path, acc, dial)
    start = time.monotonic()
    run = ansible([os.path.join(ROOT, "playbooks", "peer_clusters.yml"), "-i", inv], playbook=True, json_output=False)
    seconds = time.monotonic() - start
    assert_clean(run)
    assert run.rc == 0, run.output[-4000:]
    assert active(acc, "ft-dial") and active(dial, "ft-acc")
    still = peerings(acc).get("ft-gone", {}).get("State")
    reported = "ft-gone" in run.output
    reliability.add("fault", "orphaned PENDING acceptor peering of a dialer not in the inventory",
                    "left %s, %s by the role" % (still, "reported" if reported else "NOT reported"),
                    "the role only looks at the peer names of the hosts in the play", seconds)
    # The role must not touch a peering it was not asked about.
    assert still == "PENDING"
