# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The cluster_peering role as a reconciler, on one lab of four real clusters.

Scenarios share the lab and reset it in between (peerings and config entries deleted). Every
scenario first runs in check mode and proves nothing was written. Ports: RECONCILER_LAB_PORT_BASE
(default 26500; clusters on base+100*i).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
import time

import pytest
import yaml

from conftest import ROOT, CountingProxy, consul, delete_all_peerings, read_env_file, wait_for
from module_runs import module_runs_by_action

PLAYBOOKS = os.path.join(ROOT, "playbooks")
TIMES = os.path.join(ROOT, "tests", "output", "reconciler-times.json")
HOSTS = ["cluster-01", "cluster-02", "cluster-03", "cluster-04"]
ESTABLISH_TASK = "Establish each new peering with the token its acceptor generated for this cluster"
MANAGED = {"managed-by": "seed.consul_peering"}


@pytest.fixture(scope="module")
def lab4(tmp_path_factory):
    state = tmp_path_factory.mktemp("reconciler-lab")
    env = dict(os.environ, LAB_CLUSTERS="4", LAB_STATE_DIR=str(state),
               LAB_PORT_BASE=os.environ.get("RECONCILER_LAB_PORT_BASE", "26500"))
    for k in ("LAB_ACL", "LAB_TLS", "LAB_MTLS"):
        env.pop(k, None)
    subprocess.run(["bash", os.path.join(ROOT, "lab", "lab.sh"), "up"], env=env, check=True, timeout=400)
    lab = read_env_file(str(state / "env"))
    urls = {h: lab["CLUSTER%d_URL" % (i + 1)] for i, h in enumerate(HOSTS)}
    try:
        yield dict(urls=urls, state=str(state), env=lab)
    finally:
        subprocess.run(["bash", os.path.join(ROOT, "lab", "lab.sh"), "down"], env=env, check=False, timeout=120)


def _answers(url):
    try:
        consul(url, path="/v1/status/leader", timeout=2)
        return True
    except OSError:
        return False


def reset(urls):
    for url in urls:
        if not _answers(url):
            continue  # a cluster a scenario stopped
        delete_all_peerings(url)
        for kind in ("exported-services", "service-intentions", "service-resolver"):
            for e in consul(url, path="/v1/config/" + kind)[1] or []:
                consul(url, "DELETE", "/v1/config/%s/%s" % (kind, e["Name"]))
        consul(url, "PUT", "/v1/agent/service/register", {"Name": "backend", "Port": 9090})
        consul(url, "PUT", "/v1/agent/service/register", {"Name": "frontend", "Port": 9091})


@pytest.fixture
def fleet(lab4):
    urls = lab4["urls"]
    reset(urls.values())
    yield urls
    reset(urls.values())


def write_inventory(tmp_path, hosts, groups, name="inventory.yml"):
    """hosts: {host: vars}; groups: {group: [hosts]}; hosts in no group stay ungrouped."""
    grouped = {h for members in groups.values() for h in members}
    inv = {"all": {
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"},
        "hosts": {h: v for h, v in hosts.items() if h not in grouped},
        "children": {g: {"hosts": {h: hosts[h] for h in members}} for g, members in groups.items()}}}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(inv))
    return str(path)


def run(ansible, book, inv, *extra, env=None, json_output=True):
    path = book if os.path.isabs(book) else os.path.join(PLAYBOOKS, book + ".yml")
    return ansible([path, "-i", inv, "--forks", "10"] + list(extra), playbook=True, json_output=json_output, env=env)


def changed(result):
    assert result.rc == 0, result.output[-8000:]
    return {h: s["changed"] for h, s in result.json()["stats"].items()}


def peerings(url):
    return {p["Name"]: p for p in consul(url, path="/v1/peerings")[1] or []}


def snapshot(urls):
    snap = {}
    for h, url in sorted(urls.items()):
        s = {"peerings": sorted((p["Name"], p["ID"], p["State"], p["ModifyIndex"]) for p in peerings(url).values())}
        for kind in ("exported-services", "service-intentions", "service-resolver"):
            s[kind] = sorted((e["Name"], e["ModifyIndex"]) for e in consul(url, path="/v1/config/" + kind)[1] or [])
        snap[h] = s
    return snap


def check_mode_writes_nothing(ansible, inv, urls, *extra):
    before = snapshot(urls)
    plan = run(ansible, "peer_clusters", inv, "--check", "--diff", *extra)
    assert plan.rc == 0, plan.output[-6000:]
    assert snapshot(urls) == before
    return plan


def consumers(url, service="backend"):
    status, entry = consul(url, path="/v1/config/exported-services/default")
    if status != 200:
        return []
    return sorted(c.get("Peer") for s in entry["Services"] if s["Name"] == service for c in s["Consumers"])


def intention_peers(url, dest="backend"):
    status, entry = consul(url, path="/v1/config/service-intentions/" + dest)
    return sorted((s["Name"], s.get("Peer")) for s in entry["Sources"]) if status == 200 else []


def failover_peers(url, service):
    status, entry = consul(url, path="/v1/config/service-resolver/" + service)
    if status != 200:
        return []
    return sorted(t.get("Peer") for f in (entry.get("Failover") or {}).values() for t in f.get("Targets") or [])


def references(url, service):
    """Every peer name the role's entries for service name on this cluster: exports, intention sources, failover."""
    return dict(exports=consumers(url, service), intentions=intention_peers(url, service),
                failover=failover_peers(url, service))


def assert_pair(acc_url, acc_side_name, dial_url, dial_side_name):
    a, d = peerings(acc_url)[acc_side_name], peerings(dial_url)[dial_side_name]
    assert a["State"] == "ACTIVE" and d["State"] == "ACTIVE", (a["State"], d["State"])
    assert a["ID"] == d["PeerID"]
    assert a.get("Meta") == MANAGED and d.get("Meta") == MANAGED


def record_time(key, seconds):
    os.makedirs(os.path.dirname(TIMES), exist_ok=True)
    data = {}
    if os.path.exists(TIMES):
        with open(TIMES) as f:
            data = json.load(f)
    data[key] = round(seconds, 1)
    with open(TIMES, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)


def test_full_mesh_of_four_then_rerun_writes_nothing(ansible, fleet, counting_proxy, tmp_path):
    hosts = {h: {"cluster_peering_url": u, "cluster_peering_exports": [{"name": "backend"}]} for h, u in fleet.items()}
    inv = write_inventory(tmp_path, hosts, {"consul_mesh": HOSTS})
    plan = check_mode_writes_nothing(ansible, inv, fleet)
    assert all(n > 0 for n in changed(plan).values())

    start = time.monotonic()
    first = run(ansible, "peer_clusters", inv)
    record_time("mesh4_first_run_s", time.monotonic() - start)
    assert all(n > 0 for n in changed(first).values())
    # Issue 20: one module execution per stage and host (read, token, exports, wait, verify), whatever the
    # number of peers; only establishing runs once per peering this host dials (cluster-04 dials three), and
    # the lock stages once per accepting cluster that changes (one host takes them all, run_once).
    runs = module_runs_by_action(first.json())
    stages = module_runs_by_action(first.json(), by_task=True)
    for i, h in enumerate(HOSTS):
        assert runs[h].get("peering_establish", 0) == i, (h, runs[h])
        assert max(n for t, n in stages[h].items() if not t.endswith(ESTABLISH_TASK) and "lock" not in t) == 1, \
            (h, stages[h])
    for i, a in enumerate(HOSTS):
        for d in HOSTS[i + 1:]:
            # The host whose name sorts first accepts.
            assert_pair(fleet[a], d, fleet[d], a)
            assert peerings(fleet[a])[d].get("PeerID") in (None, "")
    for h in HOSTS:
        assert sorted(peerings(fleet[h])) == sorted(set(HOSTS) - {h})
        assert consumers(fleet[h]) == sorted(set(HOSTS) - {h})

    proxies = {h: counting_proxy(u) for h, u in fleet.items()}
    via = write_inventory(tmp_path, {h: dict(v, cluster_peering_url=proxies[h].url) for h, v in hosts.items()},
                          {"consul_mesh": HOSTS}, name="via-proxies.yml")
    start = time.monotonic()
    second = run(ansible, "peer_clusters", via)
    record_time("mesh4_rerun_s", time.monotonic() - start)
    assert changed(second) == {h: 0 for h in HOSTS}
    for h, proxy in proxies.items():
        assert proxy.writes() == 0, (h, dict(proxy.counts))
        assert ("POST", "/v1/peering/token") not in proxy.counts
    record_time("mesh4_rerun_requests", sum(p.total() for p in proxies.values()))
    converged = run(ansible, "peer_clusters", inv, "--check")
    assert changed(converged) == {h: 0 for h in HOSTS}

    status = run(ansible, "peering_status", inv, json_output=False)
    assert status.rc == 0 and " yes" in status.output, status.output[-3000:]


def two_groups(fleet, acc="cluster-01", dialers=("cluster-02",), names=None, intention_peers_=None, **per_host):
    names = names or {}
    hosts = {}
    for h in [acc] + list(dialers):
        hosts[h] = {"cluster_peering_url": fleet[h]}
        if h in names:
            hosts[h]["cluster_peering_name"] = names[h]
        hosts[h].update(per_host.get(h.replace("-", "_"), {}))
    hosts[acc]["cluster_peering_exports"] = [{"name": "backend"}]
    hosts[acc]["cluster_peering_intentions"] = [{"name": "backend", "sources": [
        {"name": "frontend", "peer": p} for p in (intention_peers_ or [names.get(d, d) for d in dialers])]}]
    return hosts, {"consul_acceptors": [acc], "consul_dialers": list(dialers)}


def dialer_naming(acceptor_name):
    """The dialer's own references to its acceptor: it exports frontend to it, lets its backend call frontend,
    and fails frontend over to it."""
    return {"cluster_peering_exports": [{"name": "frontend", "peers": [acceptor_name]}],
            "cluster_peering_intentions": [{"name": "frontend", "sources": [{"name": "backend",
                                                                             "peer": acceptor_name}]}],
            "cluster_peering_failover": [{"name": "frontend", "peers": [acceptor_name]}]}


def names_only(name):
    return dict(exports=[name], intentions=[("backend", name)], failover=[name])


def test_rename_dialer_then_acceptor_each_converges_in_one_run(ansible, fleet, tmp_path):
    a, d = fleet["cluster-01"], fleet["cluster-02"]
    hosts, groups = two_groups(fleet, names={"cluster-01": "east", "cluster-02": "west"},
                               cluster_02=dialer_naming("east"))
    changed(run(ansible, "peer_clusters", write_inventory(tmp_path, hosts, groups)))
    assert_pair(a, "west", d, "east")
    assert references(d, "frontend") == names_only("east")

    # Rename the dialer; the intention still names the old name: it moves to the new one.
    hosts, groups = two_groups(fleet, names={"cluster-01": "east", "cluster-02": "west2"}, intention_peers_=["west"],
                               cluster_02=dialer_naming("east"))
    inv = write_inventory(tmp_path, hosts, groups, name="renamed-dialer.yml")
    plan = check_mode_writes_nothing(ansible, inv, fleet)
    assert "rename the peering west to west2" in plan.output
    renamed = run(ansible, "peer_clusters", inv)
    assert all(n > 0 for n in changed(renamed).values())
    assert sorted(peerings(a)) == ["west2"] and sorted(peerings(d)) == ["east"]
    assert_pair(a, "west2", d, "east")
    assert consumers(a) == ["west2"]
    assert intention_peers(a) == [("frontend", "west2")]
    status, imported = consul(d, path="/v1/health/service/backend?peer=east")
    assert [e["Service"]["Service"] for e in imported] == ["backend"]

    assert references(d, "frontend") == names_only("east")

    # Rename the acceptor; the dialer's export, intention source and failover target still name the old
    # name: they move to the new one, and the old name is gone from them.
    hosts, groups = two_groups(fleet, names={"cluster-01": "east2", "cluster-02": "west2"},
                               cluster_02=dialer_naming("east"))
    inv = write_inventory(tmp_path, hosts, groups, name="renamed-acceptor.yml")
    plan = check_mode_writes_nothing(ansible, inv, fleet)
    assert "rename the peering east to east2" in plan.output, plan.output[-6000:]
    renamed = run(ansible, "peer_clusters", inv)
    assert all(n > 0 for n in changed(renamed).values())
    assert sorted(peerings(a)) == ["west2"] and sorted(peerings(d)) == ["east2"]
    assert_pair(a, "west2", d, "east2")
    assert references(d, "frontend") == names_only("east2")
    status, imported = consul(d, path="/v1/health/service/backend?peer=east2")
    assert [e["Service"]["Service"] for e in imported] == ["backend"]
    status, imported = consul(a, path="/v1/health/service/frontend?peer=west2")
    assert [e["Service"]["Service"] for e in imported] == ["frontend"]
    # The inventory updated to the new name is what the clusters now hold.
    hosts, groups = two_groups(fleet, names={"cluster-01": "east2", "cluster-02": "west2"},
                               cluster_02=dialer_naming("east2"))
    inv = write_inventory(tmp_path, hosts, groups, name="renamed-acceptor-updated.yml")
    assert changed(run(ansible, "peer_clusters", inv)) == {"cluster-01": 0, "cluster-02": 0}


def test_remove_a_dialer_reported_then_pruned_on_both_sides(ansible, fleet, tmp_path):
    a, d2, d3 = fleet["cluster-01"], fleet["cluster-02"], fleet["cluster-03"]
    hosts, groups = two_groups(fleet, dialers=("cluster-02", "cluster-03"))
    changed(run(ansible, "peer_clusters", write_inventory(tmp_path, hosts, groups)))
    assert consumers(a) == ["cluster-02", "cluster-03"]
    assert intention_peers(a) == [("frontend", "cluster-02"), ("frontend", "cluster-03")]

    # cluster-03 leaves the topology (still an inventory host, so its side can be cleaned too).
    groups = {"consul_acceptors": ["cluster-01"], "consul_dialers": ["cluster-02"]}
    hosts["cluster-01"]["cluster_peering_intentions"][0]["sources"] = [{"name": "frontend", "peer": "cluster-02"}]
    inv = write_inventory(tmp_path, hosts, groups, name="without-03.yml")
    kept = run(ansible, "peer_clusters", inv, json_output=False)
    assert kept.rc == 0, kept.output[-5000:]
    assert "managed acceptor-side peering 'cluster-03' in state ACTIVE that the inventory no longer names" \
        in " ".join(kept.output.split()), kept.output[-5000:]
    assert "peer_name=cluster-03 state=absent" in kept.output
    assert peerings(a)["cluster-03"]["State"] == "ACTIVE"
    # The inventory no longer names cluster-03 in the intentions, but without prune nothing that names it
    # is removed: what the prune run removes below, it removes itself.
    assert consumers(a) == ["cluster-02", "cluster-03"]
    assert intention_peers(a) == [("frontend", "cluster-02"), ("frontend", "cluster-03")]

    check_mode_writes_nothing(ansible, inv, fleet, "-e", "cluster_peering_prune=true")
    pruned = run(ansible, "peer_clusters", inv, "-e", "cluster_peering_prune=true")
    assert changed(pruned)["cluster-01"] > 0 and changed(pruned)["cluster-03"] > 0
    assert sorted(peerings(a)) == ["cluster-02"] and peerings(d3) == {}
    assert consumers(a) == ["cluster-02"]
    assert intention_peers(a) == [("frontend", "cluster-02")]
    assert_pair(a, "cluster-02", d2, "cluster-01")
    again = run(ansible, "peer_clusters", inv, "-e", "cluster_peering_prune=true")
    assert set(changed(again).values()) == {0}

    # A per-host cluster_peering_state=absent unpeers that cluster only, without crashing.
    hosts["cluster-02"]["cluster_peering_state"] = "absent"
    hosts["cluster-01"]["cluster_peering_intentions"] = []
    inv = write_inventory(tmp_path, hosts, groups, name="02-absent.yml")
    assert changed(run(ansible, "peer_clusters", inv))["cluster-02"] > 0
    assert peerings(a) == {} and peerings(d2) == {}


def test_refusals_write_nothing(ansible, fleet, tmp_path):
    hosts, groups = two_groups(fleet, dialers=("cluster-02", "cluster-03"))
    inv = write_inventory(tmp_path, hosts, groups)
    before = snapshot(fleet)

    limited = run(ansible, "peer_clusters", inv, "-l", "cluster-01", json_output=False)
    assert limited.rc != 0 and "lacks cluster-02, cluster-03" in limited.output, limited.output[-3000:]
    assert "remove it from the inventory" in limited.output
    assert "HostVarsVars" not in limited.output

    serial = tmp_path / "serial.yml"
    serial.write_text(yaml.safe_dump([{"name": "Peer one cluster at a time", "hosts": "consul_acceptors:consul_dialers",
                                       "gather_facts": False, "serial": 1,
                                       "roles": [{"role": "seed.consul_peering.cluster_peering"}]}]))
    batched = run(ansible, str(serial), inv, json_output=False)
    assert batched.rc != 0 and "lacks cluster-02, cluster-03" in batched.output, batched.output[-3000:]

    start = time.monotonic()
    free = run(ansible, "peer_clusters", inv, env={"ANSIBLE_STRATEGY": "free"}, json_output=False)
    assert free.rc != 0 and "strategy is 'free'" in free.output, free.output[-3000:]
    assert time.monotonic() - start < 100  # refused up front, not after a wait timeout

    same = dict(hosts)
    same["cluster-02"] = dict(hosts["cluster-02"], cluster_peering_url=fleet["cluster-01"].replace("127.0.0.1",
                                                                                                   "localhost"))
    run_same = run(ansible, "peer_clusters", write_inventory(tmp_path, same, groups, name="same.yml"),
                   json_output=False)
    assert run_same.rc != 0 and "cluster-01 and cluster-02 are the same Consul cluster" in run_same.output, \
        run_same.output[-3000:]

    typo = dict(hosts)
    typo["cluster-01"] = dict(hosts["cluster-01"], cluster_peering_exports=[{"name": "backend",
                                                                             "peers": ["cluster-2"]}])
    run_typo = run(ansible, "peer_clusters", write_inventory(tmp_path, typo, groups, name="typo.yml"),
                   json_output=False)
    assert run_typo.rc != 0 and "names 'cluster-2', which is not a peer of this cluster" in run_typo.output
    for plan_args in (["-l", "cluster-01"], ["--check"]):
        r = run(ansible, "peer_clusters", write_inventory(tmp_path, typo, groups, name="typo.yml"), *plan_args,
                json_output=False)
        assert r.rc != 0

    # A typo'd peer in an intention source and in a failover target: refused by the plan, naming the option.
    for label, settings, option in (
            ("intention", {"cluster_peering_intentions": [{"name": "backend", "sources": [
                {"name": "frontend", "peer": "cluster-02"}, {"name": "frontend", "peer": "cluster-3"}]}]},
             "cluster_peering_intentions[backend].sources[frontend].peer on cluster-01 names 'cluster-3'"),
            ("failover", {"cluster_peering_failover": [{"name": "backend", "peers": ["cluster-02", "cluster-3"]}]},
             "cluster_peering_failover[backend].peers on cluster-01 names 'cluster-3'")):
        typo = dict(hosts)
        typo["cluster-01"] = dict(hosts["cluster-01"], **settings)
        r = run(ansible, "peer_clusters", write_inventory(tmp_path, typo, groups, name="typo-%s.yml" % label),
                json_output=False)
        flat = " ".join(r.output.split())
        assert r.rc != 0 and "refused before any write" in flat and option in flat, (label, r.output[-3000:])
        assert "which is not a peer of this cluster: its peers are cluster-02, cluster-03" in flat, flat[-3000:]
    assert snapshot(fleet) == before


def fail_establish(method, path):
    """Consul's kind of 500 for the establish call; everything else is forwarded."""
    if method == "POST" and path == "/v1/peering/establish":
        return 500, "simulated failure: the acceptor's servers cannot be reached"
    return None


def test_failed_establish_deletes_the_pending_peering_and_forgets_the_token(ansible, fleet, tmp_path):
    a, d = fleet["cluster-01"], fleet["cluster-02"]
    proxy = CountingProxy(d, answer=fail_establish).start()
    try:
        hosts, groups = two_groups(fleet)
        hosts["cluster-02"]["cluster_peering_url"] = proxy.url
        failed = run(ansible, "peer_clusters", write_inventory(tmp_path, hosts, groups), "-vvv", json_output=False)
    finally:
        proxy.stop()
    assert failed.rc != 0
    assert "could not establish cluster-01" in failed.output and "simulated failure" in failed.output
    assert "eyJD" not in failed.output and "EstablishmentSecret" not in failed.output
    # The token's PENDING peering is gone, so the token is void.
    assert "cluster-02" not in peerings(a) and peerings(d) == {}

    hosts, groups = two_groups(fleet)
    direct = write_inventory(tmp_path, hosts, groups, name="direct.yml")
    assert all(n > 0 for n in changed(run(ansible, "peer_clusters", direct)).values())
    assert_pair(a, "cluster-02", d, "cluster-01")


@contextlib.contextmanager
def tcp_forwarder(port):
    """A TCP forwarder on 127.0.0.1 (a port the kernel picks) to 127.0.0.1:port; yields (address, connections).

    Consul's HTTP API does not show the addresses a dialer got from a token's ServerExternalAddresses (it
    keeps them apart from PeerServerAddresses and dials them first), so the forwarder shows that they
    were dialed: the gRPC stream, TLS included, passes through it untouched.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    accepted = []
    stop = threading.Event()

    def pump(src, dst):
        with contextlib.suppress(OSError):
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def serve():
        while not stop.is_set():
            try:
                client, dummy = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", int(port)), timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            accepted.append((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=pump, args=(a, b), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield "127.0.0.1:%d" % listener.getsockname()[1], accepted
    finally:
        stop.set()
        listener.close()
        for pair in accepted:
            for sock in pair:
                with contextlib.suppress(OSError):
                    sock.close()
        thread.join(timeout=5)


def pairs_inventory(tmp_path, urls, name, meta, addresses):
    """cluster_peering_peers: 01-02 and 02-03, so cluster-02 dials cluster-01 and accepts cluster-03."""
    hosts = {"cluster-01": {"cluster_peering_url": urls["cluster-01"], "cluster_peering_peers": ["cluster-02"],
                            "cluster_peering_exports": [{"name": "backend"}]},
             "cluster-02": {"cluster_peering_url": urls["cluster-02"], "cluster_peering_meta": meta,
                            "cluster_peering_server_external_addresses": addresses},
             "cluster-03": {"cluster_peering_url": urls["cluster-03"], "cluster_peering_peers": ["cluster-02"],
                            "cluster_peering_exports": [{"name": "backend"}]}}
    return write_inventory(tmp_path, hosts, {}, name=name)


META_WARNING = "cluster_peering_meta of cluster-02 differs from the meta of its ACTIVE peering cluster-03"
DIALER_META_WARNING = "cluster_peering_meta of cluster-02 differs from the meta of its ACTIVE peering cluster-01"
ADDRESSES_WARNING = "cluster_peering_server_external_addresses of cluster-01"


def test_explicit_pairs_with_meta_and_addresses_then_rerun_writes_nothing(
        ansible, fleet, lab4, counting_proxy, tmp_path):
    """cluster_peering_peers: 01-02 and 02-03 (cluster-02 accepts one and dials the other), 01-03 not peered.

    cluster-02's cluster_peering_meta and cluster_peering_server_external_addresses reach its token (the
    acceptor's peering Meta; cluster-03 dials the external address); a rerun writes nothing, and a change
    of the meta on the ACTIVE peering is warned about, not written.
    """
    c1, c2, c3 = (fleet[h] for h in ("cluster-01", "cluster-02", "cluster-03"))
    with tcp_forwarder(lab4["env"]["CLUSTER2_GRPC_TLS_PORT"]) as (external, dialed):
        inv = pairs_inventory(tmp_path, fleet, "pairs.yml", {"team": "red"}, [external])
        check_mode_writes_nothing(ansible, inv, fleet)
        first = run(ansible, "peer_clusters", inv)
        assert all(n > 0 for n in changed(first).values()), changed(first)
        assert sorted(peerings(c1)) == ["cluster-02"] and sorted(peerings(c3)) == ["cluster-02"]
        assert sorted(peerings(c2)) == ["cluster-01", "cluster-03"]
        accepted, dialing = peerings(c2)["cluster-03"], peerings(c2)["cluster-01"]
        # cluster-02 accepts from cluster-03 (its name sorts first) and dials cluster-01.
        assert accepted["ID"] == peerings(c3)["cluster-02"]["PeerID"] and not accepted.get("PeerID")
        assert dialing["PeerID"] == peerings(c1)["cluster-02"]["ID"]
        assert all(p["State"] == "ACTIVE"
                   for p in (accepted, dialing, peerings(c1)["cluster-02"], peerings(c3)["cluster-02"]))
        # The meta reaches the token (acceptor side) and the establish call (dialer side), beside the mark; the
        # acceptor's also records the external addresses its token carried (Consul's API shows them nowhere).
        recorded = dict(MANAGED, team="red", **{"server-external-addresses": external})
        assert accepted["Meta"] == recorded and dialing["Meta"] == dict(MANAGED, team="red")
        assert peerings(c1)["cluster-02"]["Meta"] == MANAGED and peerings(c3)["cluster-02"]["Meta"] == MANAGED
        # cluster-03 reached cluster-02 through the token's external address, i.e. the forwarder.
        assert dialed, "cluster-03 never dialed the external address %s" % external
        for peer in ("cluster-01", "cluster-03"):
            status, imported = consul(c2, path="/v1/health/service/backend?peer=" + peer)
            assert [e["Service"]["Service"] for e in imported] == ["backend"], peer

        proxies = {h: counting_proxy(u) for h, u in fleet.items() if h != "cluster-04"}
        urls = {h: p.url for h, p in proxies.items()}
        again = run(ansible, "peer_clusters", pairs_inventory(tmp_path, urls, "pairs-via-proxies.yml",
                                                              {"team": "red"}, [external]))
        assert changed(again) == {"cluster-01": 0, "cluster-02": 0, "cluster-03": 0}
        assert META_WARNING not in " ".join(again.output.split())
        assert DIALER_META_WARNING not in " ".join(again.output.split())
        assert "cluster_peering_server_external_addresses" not in " ".join(again.output.split())
        # A changed meta and changed addresses on the ACTIVE peering: warned about, not written.
        moved = "127.0.0.1:%s" % lab4["env"]["CLUSTER2_GRPC_PORT"]
        warned = run(ansible, "peer_clusters", pairs_inventory(tmp_path, urls, "pairs-changed.yml", {"team": "blue"},
                                                               [moved]))
        assert changed(warned) == {"cluster-01": 0, "cluster-02": 0, "cluster-03": 0}
        flat = " ".join(warned.output.split())
        assert META_WARNING + " ({'team': 'red'}): it applies only with a new token" in flat, flat[-5000:]
        # cluster-02 also dials cluster-01: that peering's meta was set by its establish call, and is warned too.
        assert DIALER_META_WARNING + " ({'team': 'red'}): it applies only with a new token" in flat, flat[-5000:]
        assert "cluster_peering_server_external_addresses of cluster-02 (%s) differ from the addresses the token " \
               "of its ACTIVE peering cluster-03 carried (%s)" % (moved, external) in flat, flat[-5000:]
        for h, proxy in proxies.items():
            assert proxy.writes() == 0, (h, dict(proxy.counts))
            assert ("POST", "/v1/peering/token") not in proxy.counts
        assert peerings(c2)["cluster-03"]["Meta"] == recorded
        delete_all_peerings(c3)  # before the forwarder goes, so cluster-03 stops dialing through it


def test_unchanged_server_external_addresses_do_not_warn(ansible, fleet, lab4, tmp_path):
    hosts, groups = two_groups(fleet, acc="cluster-01", dialers=("cluster-02",))
    with tcp_forwarder(lab4["env"]["CLUSTER1_GRPC_TLS_PORT"]) as (external, dialed):
        hosts["cluster-01"]["cluster_peering_server_external_addresses"] = [external]
        inv = write_inventory(tmp_path, hosts, groups)
        changed(run(ansible, "peer_clusters", inv))
        assert dialed and peerings(fleet["cluster-02"])["cluster-01"]["State"] == "ACTIVE"
        again = run(ansible, "peer_clusters", inv)
        try:
            assert changed(again) == {"cluster-01": 0, "cluster-02": 0}
            flat = " ".join(again.output.split())
            assert ADDRESSES_WARNING not in flat, flat[flat.index(ADDRESSES_WARNING):][:400]
        finally:
            delete_all_peerings(fleet["cluster-02"])


def test_decommission_a_stopped_cluster(ansible, fleet, lab4, tmp_path):
    """Last in the file: it stops cluster-04 (the lab fixture's teardown copes)."""
    a, d3, d4 = fleet["cluster-01"], fleet["cluster-03"], fleet["cluster-04"]
    hosts, groups = two_groups(fleet, dialers=("cluster-03", "cluster-04"))
    full = write_inventory(tmp_path, hosts, groups)
    changed(run(ansible, "peer_clusters", full))
    assert consumers(a) == ["cluster-03", "cluster-04"]

    pid_file = os.path.join(lab4["state"], "cluster4", "consul.pid")
    with open(pid_file) as f:
        pid = int(f.read().strip())
    os.kill(pid, signal.SIGTERM)
    assert wait_for(lambda: not _answers(d4), timeout=30)

    alive = {h: u for h, u in fleet.items() if h != "cluster-04"}
    # Peering with a dead cluster in the inventory is refused, naming it.
    refused = run(ansible, "peer_clusters", full, json_output=False)
    assert refused.rc != 0 and "cluster-04 could not be read" in refused.output, refused.output[-3000:]

    # Decommission: out of the inventory, prune; the survivors are cleaned.
    del hosts["cluster-04"]
    hosts["cluster-01"]["cluster_peering_intentions"][0]["sources"] = [{"name": "frontend", "peer": "cluster-03"}]
    groups = {"consul_acceptors": ["cluster-01"], "consul_dialers": ["cluster-03"]}
    inv = write_inventory(tmp_path, hosts, groups, name="decommissioned.yml")
    # Without prune the dead cluster's peering, the export to it and the intention source naming it stay.
    kept = run(ansible, "peer_clusters", inv, json_output=False)
    assert kept.rc == 0, kept.output[-5000:]
    assert "peer_name=cluster-04 state=absent" in kept.output, kept.output[-5000:]
    assert sorted(peerings(a)) == ["cluster-03", "cluster-04"]
    assert consumers(a) == ["cluster-03", "cluster-04"]
    assert intention_peers(a) == [("frontend", "cluster-03"), ("frontend", "cluster-04")]
    check_mode_writes_nothing(ansible, inv, alive, "-e", "cluster_peering_prune=true")
    gone = run(ansible, "peer_clusters", inv, "-e", "cluster_peering_prune=true")
    assert changed(gone)["cluster-01"] > 0
    assert sorted(peerings(a)) == ["cluster-03"]
    assert consumers(a) == ["cluster-03"]
    assert intention_peers(a) == [("frontend", "cluster-03")]

    # Unpeering with the dead cluster still in the inventory cleans every side that answers.
    hosts4, groups4 = two_groups(fleet, dialers=("cluster-03", "cluster-04"))
    down = run(ansible, "unpeer_clusters", write_inventory(tmp_path, hosts4, groups4, name="unpeer.yml"))
    assert changed(down)["cluster-01"] > 0
    assert peerings(a) == {} and peerings(d3) == {}
    assert consumers(a) == []
