# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""cluster_peering_failover: the role writes service-resolvers that fail over to peers, and removes them."""

from __future__ import annotations

import os
import subprocess

import pytest
import yaml

from conftest import ROOT, consul, delete_all_peerings, read_env_file

PLAYBOOKS = os.path.join(ROOT, "playbooks")


def inventory(tmp_path, acc_url, dial_url, failover):
    inv = {"all": {
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"},
        "children": {
            "consul_acceptors": {"hosts": {"cluster-01": {
                "cluster_peering_url": acc_url, "cluster_peering_failover": failover}}},
            "consul_dialers": {"hosts": {"cluster-02": {
                "cluster_peering_url": dial_url,
                "cluster_peering_exports": [{"name": "rf-backend", "peers": ["cluster-01"]}]}}}}}}
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(inv))
    return str(path)


def playbook(ansible, name, inv):
    return ansible([os.path.join(PLAYBOOKS, name + ".yml"), "-i", inv], playbook=True, json_output=True)


def changed(run):
    assert run.rc == 0, run.output[-6000:]
    return {h: s["changed"] for h, s in run.json()["stats"].items()}


def resolver(url, name):
    status, body = consul(url, path="/v1/config/service-resolver/" + name)
    return body if status == 200 else None


def chain_failover(url, name):
    status, body = consul(url, path="/v1/discovery-chain/" + name)
    assert status == 200, body
    compiled = body["Chain"]
    node = compiled["Nodes"][compiled["StartNode"]]
    ids = ((node.get("Resolver") or {}).get("Failover") or {}).get("Targets") or []
    return [(compiled["Targets"][i]["Service"], compiled["Targets"][i].get("Peer")) for i in ids]


def test_role_failover_to_peer_and_unpeer(ansible, lab, tmp_path):
    acc, dial = lab["CLUSTER1_URL"], lab["CLUSTER2_URL"]
    for url in (acc, dial):
        delete_all_peerings(url)
        status, body = consul(url, "PUT", "/v1/agent/service/register", {"Name": "rf-backend", "Port": 9090})
        assert status == 200, body
    inv = inventory(tmp_path, acc, dial, [{"name": "rf-backend", "peers": ["cluster-02"]}])
    try:
        first = playbook(ansible, "peer_clusters", inv)
        assert changed(first)["cluster-01"] > 0
        stored = resolver(acc, "rf-backend")
        assert stored["Failover"] == {"*": {"Targets": [{"Peer": "cluster-02"}]}}
        assert chain_failover(acc, "rf-backend") == [("rf-backend", "cluster-02")]
        # the dialer has no failover configured: no resolver written there
        assert resolver(dial, "rf-backend") is None

        second = playbook(ansible, "peer_clusters", inv)
        assert changed(second) == {"cluster-01": 0, "cluster-02": 0}
        assert resolver(acc, "rf-backend")["ModifyIndex"] == stored["ModifyIndex"]

        gone = playbook(ansible, "unpeer_clusters", inv)
        assert changed(gone)["cluster-01"] > 0
        assert resolver(acc, "rf-backend") is None
        assert not consul(acc, path="/v1/peerings")[1]
    finally:
        consul(acc, "DELETE", "/v1/config/service-resolver/rf-backend")
        for url in (acc, dial):
            delete_all_peerings(url)
            consul(url, "PUT", "/v1/agent/service/deregister/rf-backend")


def test_failover_to_a_cluster_that_is_not_a_peer_is_refused(ansible, lab, tmp_path):
    acc, dial = lab["CLUSTER1_URL"], lab["CLUSTER2_URL"]
    before = consul(acc, path="/v1/peerings")[1]
    inv = inventory(tmp_path, acc, dial, [{"name": "rf-backend", "peers": ["cluster-09"]}])
    run = playbook(ansible, "peer_clusters", inv)
    assert run.rc != 0
    assert "names 'cluster-09', which is not a peer of this cluster" in run.output
    assert resolver(acc, "rf-backend") is None
    assert consul(acc, path="/v1/peerings")[1] == before


def star_inventory(tmp_path, acc_url, dialers, failover, name):
    """cluster-01 accepts and fails over; dialers {host: url} each export rf-backend to it."""
    dial = {h: {"cluster_peering_url": u, "cluster_peering_exports": [{"name": "rf-backend", "peers": ["cluster-01"]}]}
            for h, u in dialers.items()}
    inv = {"all": {
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"},
        "children": {
            "consul_acceptors": {"hosts": {"cluster-01": {
                "cluster_peering_url": acc_url, "cluster_peering_failover": failover}}},
            "consul_dialers": {"hosts": dial}}}}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(inv))
    return str(path)


@pytest.fixture
def three(tmp_path):
    """A separate lab of three clusters, ports inside this test file's range (LAB_PORT_BASE 21300)."""
    env = dict(os.environ, LAB_CLUSTERS="3", LAB_PORT_BASE=os.environ.get("FAILOVER_LAB_PORT_BASE", "21300"),
               LAB_STATE_DIR=str(tmp_path / "three-lab"))
    subprocess.run(["bash", os.path.join(ROOT, "lab", "lab.sh"), "up"], env=env, check=True, timeout=300)
    try:
        yield read_env_file(str(tmp_path / "three-lab" / "env"))
    finally:
        subprocess.run(["bash", os.path.join(ROOT, "lab", "lab.sh"), "down"], env=env, check=False, timeout=120)


def test_unpeering_one_peer_of_a_star_keeps_the_others_targets(ansible, three, tmp_path):
    acc = three["CLUSTER1_URL"]
    dialers = {"cluster-02": three["CLUSTER2_URL"], "cluster-03": three["CLUSTER3_URL"]}
    for url in [acc] + list(dialers.values()):
        status, body = consul(url, "PUT", "/v1/agent/service/register", {"Name": "rf-backend", "Port": 9090})
        assert status == 200, body
    failover = [{"name": "rf-backend", "peers": ["cluster-03", "cluster-02"]}]
    full = star_inventory(tmp_path, acc, dialers, failover, "full.yml")
    assert changed(playbook(ansible, "peer_clusters", full))["cluster-01"] > 0
    assert resolver(acc, "rf-backend")["Failover"] == {"*": {"Targets": [{"Peer": "cluster-03"}, {"Peer": "cluster-02"}]}}
    assert chain_failover(acc, "rf-backend") == [("rf-backend", "cluster-03"), ("rf-backend", "cluster-02")]

    # Unpeer cluster-03 alone: its target goes, cluster-02's stays, and so does that peering.
    only_03 = star_inventory(tmp_path, acc, {"cluster-03": dialers["cluster-03"]}, failover, "only-03.yml")
    assert changed(playbook(ansible, "unpeer_clusters", only_03))["cluster-01"] > 0
    assert resolver(acc, "rf-backend")["Failover"] == {"*": {"Targets": [{"Peer": "cluster-02"}]}}
    assert sorted(p["Name"] for p in consul(acc, path="/v1/peerings")[1] or []) == ["cluster-02"]

    # Then cluster-02: nothing left, the resolver is deleted.
    only_02 = star_inventory(tmp_path, acc, {"cluster-02": dialers["cluster-02"]}, failover, "only-02.yml")
    assert changed(playbook(ansible, "unpeer_clusters", only_02))["cluster-01"] > 0
    assert resolver(acc, "rf-backend") is None
    assert not consul(acc, path="/v1/peerings")[1]
