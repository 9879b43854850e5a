# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Two Consul releases at once: mixed-version pairs and an in-place upgrade (make test-matrix).

Environment (tests/utils/matrix.py sets them):
- SMOKE_OLD_CONSUL_BIN, SMOKE_NEW_CONSUL_BIN: the oldest supported and the newest Consul binaries
  (default: lab/consul.sh with CONSUL_VERSION=oldest / default, built on first use).
- SMOKE_PORT_BASE: the labs use SMOKE_PORT_BASE + 1000 (default 14000; clusters on +100 and +200).

A dialer on Consul >= 1.21 (built with grpc-go >= 1.67, which enforces ALPN on TLS) cannot reach the
peering port of an acceptor on Consul <= 1.20 (grpc-go < 1.67: its gRPC TLS answer selects no ALPN
protocol): establishing fails with "missing selected ALPN property". grpc-go's documented switch
GRPC_ENFORCE_ALPN_ENABLED=false in the newer servers' environment lifts it; the newer cluster as the
acceptor needs nothing. The tests prove all three (docs/compatibility.md).
"""

from __future__ import annotations

import os
import subprocess

import pytest

from conftest import ROOT, consul, delete_all_peerings, read_env_file, wait_for
from test_smoke import (assert_peered, assert_rerun_writes_nothing, changed, peerings, playbook,
                        register_services, role_inventory)

LAB = os.path.join(ROOT, "lab", "lab.sh")
PORT_BASE = int(os.environ.get("SMOKE_PORT_BASE", "13000")) + 1000


def consul_bin(env_name, version):
    if os.environ.get(env_name):
        return os.environ[env_name]
    env = {k: v for k, v in os.environ.items() if k != "CONSUL_BIN"}
    env["CONSUL_VERSION"] = version
    return subprocess.run(["bash", os.path.join(ROOT, "lab", "consul.sh")], env=env, check=True,
                          capture_output=True, text=True, timeout=3600).stdout.strip()


@pytest.fixture(scope="module")
def bins():
    return {"old": consul_bin("SMOKE_OLD_CONSUL_BIN", "oldest"), "new": consul_bin("SMOKE_NEW_CONSUL_BIN", "default")}


def version_tuple(text):
    return tuple(int(x) for x in text.split(".")[:3])


def alpn_gap(old, new):
    """True when a dialer on `new` cannot reach an acceptor on `old` without the ALPN switch."""
    return version_tuple(old) < (1, 21) <= version_tuple(new)


def server_version(url):
    return consul(url, path="/v1/agent/self")[1]["Config"]["Version"]


def bin_version(path):
    return subprocess.run([path, "version"], capture_output=True, text=True, check=True).stdout.split()[1][1:]


@pytest.fixture
def two_version_lab(tmp_path):
    """start(bin1, bin2) -> the lab's env; restart(bin) switches both clusters' binary in place."""
    state = str(tmp_path / "lab")
    base_env = dict(os.environ, LAB_CLUSTERS="2", LAB_PORT_BASE=str(PORT_BASE), LAB_STATE_DIR=state)
    for k in ("LAB_ACL", "LAB_TLS", "LAB_MTLS", "CONSUL_VERSION", "CLUSTER1_CONSUL_BIN", "CLUSTER2_CONSUL_BIN"):
        base_env.pop(k, None)

    def start(bin1, bin2, agent_env=None):
        env = dict(base_env, CONSUL_BIN=bin1, CLUSTER1_CONSUL_BIN=bin1, CLUSTER2_CONSUL_BIN=bin2, **(agent_env or {}))
        subprocess.run(["bash", LAB, "up"], env=env, check=True, timeout=300)
        return read_env_file(os.path.join(state, "env"))

    def restart(new_bin):
        subprocess.run(["bash", LAB, "restart"], env=dict(base_env, CONSUL_BIN=new_bin), check=True, timeout=300)
        return read_env_file(os.path.join(state, "env"))

    try:
        yield start, restart
    finally:
        subprocess.run(["bash", LAB, "down"], env=base_env, check=False, timeout=120)


@pytest.mark.parametrize("acceptor,dialer", [("old", "new"), ("new", "old")])
def test_mixed_versions_peer_and_verify(ansible, bins, two_version_lab, counting_proxy, tmp_path, acceptor, dialer):
    start, dummy = two_version_lab
    agent_env = None
    if acceptor == "old" and alpn_gap(bin_version(bins["old"]), bin_version(bins["new"])):
        agent_env = {"GRPC_ENFORCE_ALPN_ENABLED": "false"}  # the documented workaround (module docstring)
    lab = start(bins[acceptor], bins[dialer], agent_env)
    acc, dial = lab["CLUSTER1_URL"], lab["CLUSTER2_URL"]
    assert (server_version(acc), server_version(dial)) == (bin_version(bins[acceptor]), bin_version(bins[dialer]))
    assert server_version(acc) != server_version(dial)
    register_services(acc, dial)
    inv = role_inventory(tmp_path, acc, dial)
    first = playbook(ansible, "peer_clusters", inv)
    assert all(n > 0 for n in changed(first).values()), changed(first)
    assert_peered(acc, dial)
    assert_rerun_writes_nothing(ansible, counting_proxy, tmp_path, acc, dial)
    down = playbook(ansible, "unpeer_clusters", inv)
    assert all(n > 0 for n in changed(down).values()), changed(down)
    assert peerings(acc) == {} and peerings(dial) == {}


def test_upgrade_in_place_keeps_the_peering(ansible, bins, two_version_lab, counting_proxy, tmp_path):
    start, restart = two_version_lab
    lab = start(bins["old"], bins["old"])
    acc, dial = lab["CLUSTER1_URL"], lab["CLUSTER2_URL"]
    old = bin_version(bins["old"])
    assert server_version(acc) == server_version(dial) == old
    register_services(acc, dial)
    inv = role_inventory(tmp_path, acc, dial)
    assert all(n > 0 for n in changed(playbook(ansible, "peer_clusters", inv)).values())
    peering_id = assert_peered(acc, dial)

    lab = restart(bins["new"])
    new = bin_version(bins["new"])
    assert (lab["CLUSTER1_URL"], lab["CLUSTER2_URL"]) == (acc, dial)
    assert server_version(acc) == server_version(dial) == new != old
    # Same data dirs: the peering is the one made on the old release, and it comes back ACTIVE.
    assert wait_for(lambda: peerings(acc).get("cluster-02", {}).get("State") == "ACTIVE"
                    and peerings(dial).get("cluster-01", {}).get("State") == "ACTIVE", timeout=120), \
        (peerings(acc), peerings(dial))
    # services re-register from the agents' own state (the data dir); imports come back
    assert assert_peered(acc, dial) == peering_id
    assert_rerun_writes_nothing(ansible, counting_proxy, tmp_path, acc, dial)


def test_newer_dialer_to_older_acceptor_without_the_alpn_switch(bins, two_version_lab):
    """Across the grpc-go 1.67 line, establishing fails naming ALPN; on one side of it, it works."""
    start, dummy = two_version_lab
    lab = start(bins["old"], bins["new"])
    acc, dial = lab["CLUSTER1_URL"], lab["CLUSTER2_URL"]
    status, body = consul(acc, "POST", "/v1/peering/token", {"PeerName": "cluster-02"})
    assert status == 200, body
    status, answer = consul(dial, "POST", "/v1/peering/establish",
                            {"PeerName": "cluster-01", "PeeringToken": body["PeeringToken"]}, timeout=120)
    if alpn_gap(bin_version(bins["old"]), bin_version(bins["new"])):
        assert status >= 500 and "missing selected ALPN property" in str(answer), (status, str(answer)[:300])
    else:
        assert status == 200, answer
        assert wait_for(lambda: peerings(dial).get("cluster-01", {}).get("State") == "ACTIVE", timeout=60)
    for url in (acc, dial):
        assert delete_all_peerings(url)
