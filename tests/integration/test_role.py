# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The cluster_peering role and the playbooks, end to end on the real lab."""

from __future__ import annotations

import os
import re
import subprocess

import pytest
import yaml

from conftest import ROOT, consul, delete_all_peerings, read_env_file, wait_for
from module_runs import module_runs

PLAYBOOKS = os.path.join(ROOT, "playbooks")
# A peering token is base64 of a JSON object that starts with {"CA": ...
TOKEN_MARK = re.compile(r"eyJD[A-Za-z0-9+/=]{40,}")


def inventory(tmp_path, acceptors, dialers, exports=True, name="inventory.yml"):
    """An inventory of the role's two groups; acceptors/dialers: {host: url}."""
    def host(url):
        return {"cluster_peering_url": url}

    acc = {h: host(u) for h, u in acceptors.items()}
    dial = {h: host(u) for h, u in dialers.items()}
    if exports:
        for h in acc:
            acc[h]["cluster_peering_exports"] = [{"name": "backend"}]
            acc[h]["cluster_peering_intentions"] = [
                {"name": "backend", "sources": [{"name": "frontend", "peer": d} for d in dialers]}]
    inv = {"all": {
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"},
        "children": {"consul_acceptors": {"hosts": acc}, "consul_dialers": {"hosts": dial}}}}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(inv))
    return str(path)


def playbook(ansible, name, inv, *extra, json_output=True, env=None):
    return ansible([os.path.join(PLAYBOOKS, name + ".yml"), "-i", inv, "--forks", "10"] + list(extra),
                   playbook=True, json_output=json_output, env=env)


def stats(run):
    assert run.rc == 0, run.output[-6000:]
    return run.json()["stats"]


def changed(run):
    return {h: s["changed"] for h, s in stats(run).items()}


def register(url, name, port):
    status, body = consul(url, "PUT", "/v1/agent/service/register", {"Name": name, "Port": port})
    assert status == 200, body


def deregister(url, name):
    consul(url, "PUT", "/v1/agent/service/deregister/" + name)


def peerings(url):
    return {p["Name"]: p for p in consul(url, path="/v1/peerings")[1] or []}


def config_entries(url):
    out = {}
    for kind in ("exported-services", "service-intentions"):
        status, entries = consul(url, path="/v1/config/" + kind)
        out[kind] = [(e["Name"], e["ModifyIndex"]) for e in (entries or [])]
    return out


def reset(*urls):
    for url in urls:
        delete_all_peerings(url)
        consul(url, "DELETE", "/v1/config/exported-services/default")
        consul(url, "DELETE", "/v1/config/service-intentions/backend")


@pytest.fixture
def pair(lab, tmp_path):
    acc, dial = lab["ACCEPTOR_URL"], lab["DIALER_URL"]
    reset(acc, dial)
    register(acc, "backend", 9090)
    register(dial, "frontend", 9091)
    yield {"acceptor": acc, "dialer": dial,
           "inventory": inventory(tmp_path, {"cluster-01": acc}, {"cluster-02": dial})}
    reset(acc, dial)
    deregister(acc, "backend")
    deregister(dial, "frontend")


@pytest.mark.parametrize("in_process", [True, False], ids=["in-process", "module-process"])
def test_pair_peers_and_rerun_changes_nothing(ansible, pair, counting_proxy, tmp_path, in_process):
    # module-process: every module task of the role runs as a module process, as over SSH.
    path = ("-e", "seed_consul_peering_in_process=%s" % str(in_process).lower())
    first = playbook(ansible, "peer_clusters", pair["inventory"], *path)
    assert all(n > 0 for n in changed(first).values()), changed(first)

    acc, dial = peerings(pair["acceptor"]), peerings(pair["dialer"])
    assert acc["cluster-02"]["State"] == "ACTIVE"
    assert dial["cluster-01"]["State"] == "ACTIVE"
    assert acc["cluster-02"]["ID"] == dial["cluster-01"]["PeerID"]
    status, imported = consul(pair["dialer"], path="/v1/health/service/backend?peer=cluster-01")
    assert [e["Service"]["Service"] for e in imported] == ["backend"]
    status, entry = consul(pair["acceptor"], path="/v1/config/service-intentions/backend")
    assert [(s["Name"], s["Peer"], s["Action"]) for s in entry["Sources"]] == [("frontend", "cluster-02", "allow")]

    # A second run, through counting proxies: changed=0 everywhere, no write, no token.
    proxies = {"cluster-01": counting_proxy(pair["acceptor"]), "cluster-02": counting_proxy(pair["dialer"])}
    inv = inventory(tmp_path, {"cluster-01": proxies["cluster-01"].url}, {"cluster-02": proxies["cluster-02"].url},
                    name="via-proxies.yml")
    second = playbook(ansible, "peer_clusters", inv, *path)
    assert changed(second) == {"cluster-01": 0, "cluster-02": 0}
    for name, proxy in proxies.items():
        assert proxy.writes() == 0, (name, dict(proxy.counts))
        assert ("POST", "/v1/peering/token") not in proxy.counts
    assert peerings(pair["acceptor"])["cluster-02"]["ID"] == acc["cluster-02"]["ID"]


def test_check_mode_on_fresh_lab_writes_nothing_and_converged_reports_no_change(ansible, pair):
    before_peerings = (peerings(pair["acceptor"]), peerings(pair["dialer"]))
    before_entries = (config_entries(pair["acceptor"]), config_entries(pair["dialer"]))
    plan = playbook(ansible, "peer_clusters", pair["inventory"], "--check", "--diff")
    assert all(n > 0 for n in changed(plan).values()), changed(plan)
    assert (peerings(pair["acceptor"]), peerings(pair["dialer"])) == before_peerings
    assert (config_entries(pair["acceptor"]), config_entries(pair["dialer"])) == before_entries

    assert stats(playbook(ansible, "peer_clusters", pair["inventory"]))
    plan = playbook(ansible, "peer_clusters", pair["inventory"], "--check", "--diff")
    assert changed(plan) == {"cluster-01": 0, "cluster-02": 0}


def test_unpeer_then_peer_again(ansible, pair):
    stats(playbook(ansible, "peer_clusters", pair["inventory"]))
    down = playbook(ansible, "unpeer_clusters", pair["inventory"])
    assert all(n > 0 for n in changed(down).values()), changed(down)
    assert peerings(pair["acceptor"]) == {} and peerings(pair["dialer"]) == {}
    status, entry = consul(pair["acceptor"], path="/v1/config/exported-services/default")
    assert status == 404 or not any(
        c.get("Peer") == "cluster-02" for s in entry.get("Services", []) for c in s.get("Consumers", [])), entry
    again = playbook(ansible, "unpeer_clusters", pair["inventory"])
    assert changed(again) == {"cluster-01": 0, "cluster-02": 0}

    stats(playbook(ansible, "peer_clusters", pair["inventory"]))
    assert peerings(pair["dialer"])["cluster-01"]["State"] == "ACTIVE"


def test_dialer_whose_peering_was_deleted_by_the_acceptor_is_repaired(ansible, pair):
    stats(playbook(ansible, "peer_clusters", pair["inventory"]))
    old_id = peerings(pair["acceptor"])["cluster-02"]["ID"]
    consul(pair["acceptor"], "DELETE", "/v1/peering/cluster-02")
    assert wait_for(lambda: "cluster-02" not in peerings(pair["acceptor"]), timeout=60)
    assert wait_for(lambda: peerings(pair["dialer"]).get("cluster-01", {}).get("State") == "TERMINATED", timeout=60)

    repair = playbook(ansible, "peer_clusters", pair["inventory"])
    assert all(n > 0 for n in changed(repair).values()), changed(repair)
    acc, dial = peerings(pair["acceptor"]), peerings(pair["dialer"])
    assert dial["cluster-01"]["State"] == "ACTIVE"
    assert acc["cluster-02"]["ID"] == dial["cluster-01"]["PeerID"] != old_id


def test_no_token_in_output_at_vvv(ansible, pair):
    run = playbook(ansible, "peer_clusters", pair["inventory"], "-vvv", json_output=False)
    assert run.rc == 0, run.output[-4000:]
    assert "EstablishmentSecret" not in run.output
    assert not TOKEN_MARK.search(run.output)
    assert peerings(pair["dialer"])["cluster-01"]["State"] == "ACTIVE"


def test_peering_status_prints_a_table(ansible, pair):
    stats(playbook(ansible, "peer_clusters", pair["inventory"]))
    run = playbook(ansible, "peering_status", pair["inventory"], json_output=False)
    assert run.rc == 0, run.output
    assert re.search(r"cluster-02\s+ACTIVE\s+acceptor\s+0\s+1", run.output), run.output
    assert re.search(r"cluster-01\s+ACTIVE\s+dialer\s+1\s+0", run.output), run.output


def test_bad_peer_name_fails_before_any_write(ansible, pair, tmp_path):
    inv = inventory(tmp_path, {"Cluster_01": pair["acceptor"]}, {"cluster-02": pair["dialer"]}, name="bad.yml")
    run = playbook(ansible, "peer_clusters", inv, json_output=False)
    assert run.rc != 0
    assert "not a valid peer name" in run.output
    assert peerings(pair["acceptor"]) == {} and peerings(pair["dialer"]) == {}


@pytest.fixture
def star(tmp_path):
    """A separate lab of one acceptor and four dialers (LAB_CLUSTERS=5); STAR_LAB_PORT_BASE picks its ports."""
    # 500 above the main lab's base (20000 when none is set), so parallel labs do not collide.
    base = int(os.environ.get("STAR_LAB_PORT_BASE") or int(os.environ.get("LAB_PORT_BASE") or 19500) + 500)
    env = dict(os.environ, LAB_CLUSTERS="5", LAB_PORT_BASE=str(base),
               LAB_STATE_DIR=str(tmp_path / "star-lab"))
    subprocess.run(["bash", os.path.join(ROOT, "lab", "lab.sh"), "up"], env=env, check=True, timeout=300)
    lab = read_env_file(str(tmp_path / "star-lab" / "env"))
    try:
        yield lab
    finally:
        subprocess.run(["bash", os.path.join(ROOT, "lab", "lab.sh"), "down"], env=env, check=False, timeout=120)


def test_star_of_one_acceptor_and_four_dialers_costs_what_one_pair_costs_per_host(
        ansible, star, tmp_path, counting_proxy):
    """Issue 20: module executions per host do not grow with the number of peers, and the rerun writes nothing."""
    acc = star["CLUSTER1_URL"]
    dialers = {"cluster-%02d" % i: star["CLUSTER%d_URL" % i] for i in (2, 3, 4, 5)}
    register(acc, "backend", 9090)

    one_inv = inventory(tmp_path, {"cluster-01": acc}, {"cluster-02": dialers["cluster-02"]}, name="one.yml")
    one = playbook(ansible, "peer_clusters", one_inv)
    one_runs = module_runs(one.json())
    assert all(n > 0 for n in changed(one).values())
    reset(acc, *dialers.values())

    inv = inventory(tmp_path, {"cluster-01": acc}, dialers)
    first = playbook(ansible, "peer_clusters", inv)
    assert all(n > 0 for n in changed(first).values())
    runs = module_runs(first.json())
    # The acceptor makes four peerings with the module executions one peering takes; each dialer as one.
    assert runs["cluster-01"] == one_runs["cluster-01"], (runs, one_runs)
    assert {runs[d] for d in dialers} == {one_runs["cluster-02"]}, (runs, one_runs)
    acc_peerings = peerings(acc)
    for name, url in dialers.items():
        dial = peerings(url)["cluster-01"]
        assert dial["State"] == "ACTIVE"
        assert acc_peerings[name]["ID"] == dial["PeerID"]
        status, imported = consul(url, path="/v1/health/service/backend?peer=cluster-01")
        assert [e["Service"]["Service"] for e in imported] == ["backend"]

    # The rerun, through counting proxies: nothing changed, nothing written, no token, and no more module
    # executions per host than the first run's.
    proxies = {"cluster-01": counting_proxy(acc)}
    proxies.update((name, counting_proxy(url)) for name, url in dialers.items())
    inv2 = inventory(tmp_path, {"cluster-01": proxies["cluster-01"].url},
                     dict((name, proxies[name].url) for name in dialers), name="via-proxies.yml")
    second = playbook(ansible, "peer_clusters", inv2)
    assert set(changed(second).values()) == {0}
    for name, proxy in proxies.items():
        assert proxy.writes() == 0, (name, dict(proxy.counts))
        assert ("POST", "/v1/peering/token") not in proxy.counts
    rerun_runs = module_runs(second.json())
    assert all(rerun_runs[h] <= runs[h] for h in runs), (rerun_runs, runs)
    reset(acc, *dialers.values())


def test_orphaned_pending_peering_is_reported_and_left_alone(ansible, pair):
    # A token generated for a cluster that never dialed (e.g. a run interrupted, or a peer
    # removed from the inventory) leaves a PENDING peering the role must not hide.
    status, body = consul(pair["acceptor"], "POST", "/v1/peering/token", {"PeerName": "cluster-99"})
    assert status == 200, body
    run = playbook(ansible, "peer_clusters", pair["inventory"], json_output=False)
    assert run.rc == 0, run.output[-4000:]
    assert re.search(r"acceptor-side peering 'cluster-99' in state PENDING with a\s+cluster that is not in this play",
                     run.output), run.output[-4000:]
    assert peerings(pair["acceptor"])["cluster-99"]["State"] == "PENDING"
    assert peerings(pair["dialer"])["cluster-01"]["State"] == "ACTIVE"
