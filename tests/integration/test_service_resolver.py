# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""service_resolver against the real lab, driven through ansible.

cluster1 holds the resolvers and dials cluster2 over an ACTIVE peering named
sr-c2 (created here over HTTP), so that failover and redirect name a real peer.
Everything created here is named sr-*.
"""

from __future__ import annotations

import json

import pytest

from conftest import consul, wait_for

PEER = "sr-c2"


def result_of(run, host="localhost"):
    assert run.stdout.strip(), run.output
    return run.json()["plays"][0]["tasks"][0]["hosts"][host]


def module(ansible, args, check=False, diff=False):
    cmd = ["localhost", "-m", "seed.consul_peering.service_resolver", "-a", json.dumps(args)]
    if check:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    return result_of(ansible(cmd, json_output=True))


def entry(url, name):
    status, body = consul(url, path="/v1/config/service-resolver/" + name)
    return body if status == 200 else None


def chain(url, name):
    status, body = consul(url, path="/v1/discovery-chain/" + name)
    assert status == 200, body
    return body["Chain"]


def failover_targets(compiled):
    """The compiled chain's failover targets of its start resolver, as target records."""
    node = compiled["Nodes"][compiled["StartNode"]]
    ids = ((node.get("Resolver") or {}).get("Failover") or {}).get("Targets") or []
    return [compiled["Targets"][i] for i in ids]


@pytest.fixture(scope="module")
def peered(lab):
    """cluster1 dials cluster2: cluster1 knows cluster2 as sr-c2 (ACTIVE)."""
    local, remote = lab["CLUSTER1_URL"], lab["CLUSTER2_URL"]
    status, body = consul(remote, "POST", "/v1/peering/token", {"PeerName": "sr-c1"})
    assert status == 200, body
    status, body = consul(local, "POST", "/v1/peering/establish",
                          {"PeerName": PEER, "PeeringToken": body["PeeringToken"]})
    assert status == 200, body
    assert wait_for(lambda: (consul(local, path="/v1/peering/" + PEER)[1] or {}).get("State") == "ACTIVE", timeout=60)
    yield local
    consul(local, "DELETE", "/v1/peering/" + PEER)
    consul(remote, "DELETE", "/v1/peering/sr-c1")
    wait_for(lambda: consul(local, path="/v1/peering/" + PEER)[0] == 404
             and consul(remote, path="/v1/peering/sr-c1")[0] == 404, timeout=60)


@pytest.fixture
def url(peered):
    yield peered
    status, entries = consul(peered, path="/v1/config/service-resolver")
    for e in entries or []:
        if e["Name"].startswith("sr-"):
            consul(peered, "DELETE", "/v1/config/service-resolver/" + e["Name"])


def test_failover_to_peer_lifecycle(ansible, url, counting_proxy):
    proxy = counting_proxy(url)
    args = {"url": proxy.url, "name": "sr-frontend", "connect_timeout": "15s",
            "failover": [{"subset": "*", "targets": [{"peer": PEER}]}]}
    res = module(ansible, args)
    assert res["changed"] and res["operation"] == "create", res
    stored = entry(url, "sr-frontend")
    assert stored["Failover"] == {"*": {"Targets": [{"Peer": PEER}]}}
    assert stored["ConnectTimeout"] == "15s"
    assert res["entry"]["ModifyIndex"] == stored["ModifyIndex"]

    # Consul accepted it as a peer target: the compiled chain fails over to sr-frontend on sr-c2.
    targets = failover_targets(chain(url, "sr-frontend"))
    assert [(t["Service"], t["Peer"]) for t in targets] == [("sr-frontend", PEER)]

    # Second run: ok, one GET, ModifyIndex unchanged.
    before = stored["ModifyIndex"]
    proxy.reset()
    res = module(ansible, args)
    assert not res["changed"] and res["operation"] == "none", res
    print("requests for an idempotent service_resolver call: %s" % dict(proxy.counts))
    assert dict(proxy.counts) == {("GET", "/v1/config/service-resolver/sr-frontend"): 1}
    assert entry(url, "sr-frontend")["ModifyIndex"] == before

    # Same durations spelt differently are no change either.
    res = module(ansible, dict(args, connect_timeout="15000ms"))
    assert not res["changed"], res

    # Change: a second target, the peer first, then the local datacenter's other service.
    res = module(ansible, dict(args, url=url, failover=[{"targets": [{"peer": PEER}, {"service": "sr-backup"}]}]),
                 diff=True)
    assert res["changed"] and res["operation"] == "update", res
    assert res["diff"]["before"]["Failover"]["*"]["Targets"] == [{"Peer": PEER}]
    assert res["diff"]["after"]["Failover"]["*"]["Targets"] == [{"Peer": PEER}, {"Service": "sr-backup"}]
    assert entry(url, "sr-frontend")["ModifyIndex"] > before
    assert [(t["Service"], t.get("Peer")) for t in failover_targets(chain(url, "sr-frontend"))] == \
        [("sr-frontend", PEER), ("sr-backup", None)]

    # Remove only the peer's target: the other stays.
    drop_peer = {"url": url, "name": "sr-frontend", "state": "absent", "failover": [{"targets": [{"peer": PEER}]}]}
    res = module(ansible, drop_peer)
    assert res["changed"] and res["operation"] == "update", res
    stored = entry(url, "sr-frontend")
    assert stored["Failover"] == {"*": {"Targets": [{"Service": "sr-backup"}]}}
    assert stored["ConnectTimeout"] == "15s"
    assert not module(ansible, drop_peer)["changed"]

    # Remove (check mode first: nothing happens).
    res = module(ansible, {"url": url, "name": "sr-frontend", "state": "absent"}, check=True)
    assert res["changed"] and res["operation"] == "delete"
    assert entry(url, "sr-frontend") is not None
    res = module(ansible, {"url": url, "name": "sr-frontend", "state": "absent"})
    assert res["changed"] and res["operation"] == "delete"
    assert entry(url, "sr-frontend") is None
    res = module(ansible, {"url": url, "name": "sr-frontend", "state": "absent"})
    assert not res["changed"]


def test_check_mode_creates_nothing(ansible, url, counting_proxy):
    proxy = counting_proxy(url)
    res = module(ansible, {"url": proxy.url, "name": "sr-check", "failover": [{"targets": [{"peer": PEER}]}]},
                 check=True)
    assert res["changed"] and res["operation"] == "create"
    assert res["entry"]["Failover"] == {"*": {"Targets": [{"Peer": PEER}]}}
    assert proxy.writes() == 0
    assert entry(url, "sr-check") is None


def test_redirect_to_a_peers_service(ansible, url):
    args = {"url": url, "name": "sr-billing", "redirect": {"service": "sr-billing", "peer": PEER}}
    res = module(ansible, args)
    assert res["changed"] and res["operation"] == "create", res
    assert entry(url, "sr-billing")["Redirect"] == {"Service": "sr-billing", "Peer": PEER}
    compiled = chain(url, "sr-billing")
    start = compiled["Nodes"][compiled["StartNode"]]
    target = compiled["Targets"][start["Resolver"]["Target"]]
    assert (target["Service"], target["Peer"]) == ("sr-billing", PEER)
    assert not module(ansible, args)["changed"]


def test_subsets_and_load_balancer_are_idempotent(ansible, url):
    args = {"url": url, "name": "sr-api", "request_timeout": "90s", "default_subset": "v1",
            "subsets": [{"name": "v1", "filter": "Service.Meta.version == v1"},
                        {"name": "v2", "filter": "Service.Meta.version == v2", "only_passing": True}],
            "failover": [{"subset": "v2", "targets": [{"peer": PEER}]}],
            "load_balancer": {"policy": "ring_hash", "ring_hash_config": {"minimum_ring_size": 1024},
                              "hash_policies": [{"field": "cookie", "field_value": "s",
                                                 "cookie_config": {"ttl": "10s", "path": "/"}},
                                                {"source_ip": True, "terminal": True}]}}
    assert module(ansible, args)["changed"]
    stored = entry(url, "sr-api")
    assert stored["RequestTimeout"] == "1m30s"
    assert stored["Subsets"]["v2"] == {"Filter": "Service.Meta.version == v2", "OnlyPassing": True}
    res = module(ansible, args)
    assert not res["changed"], res["diff"] if "diff" in res else res
    assert entry(url, "sr-api")["ModifyIndex"] == stored["ModifyIndex"]


@pytest.mark.parametrize("args, message", [
    ({"failover": [{"targets": [{}]}]}, "failover[0].targets[0]: the target names nothing"),
    ({"redirect": {"service": "sr-bad", "peer": PEER}, "failover": [{"targets": [{"peer": PEER}]}]},
     "redirect and failover cannot both be set"),
    ({"connect_timeout": "5", "failover": [{"targets": [{"peer": PEER}]}]}, "connect_timeout: '5' has no unit"),
    ({"request_timeout": "1m30", "failover": [{"targets": [{"peer": PEER}]}]}, "request_timeout: '1m30' has no unit"),
    ({"redirect": {"peer": PEER}}, "redirect.peer: needs redirect.service too"),
    ({"failover": [{"targets": [{"peer": PEER, "service_subset": "v1"}]}]}, "set peer or service_subset, not both"),
    ({"failover": [{"targets": [{"peer": PEER, "namespace": "team"}]}]}, "needs Consul Enterprise"),
])
def test_bad_input_is_rejected_with_no_write(ansible, url, counting_proxy, args, message):
    proxy = counting_proxy(url)
    res = module(ansible, dict(args, url=proxy.url, name="sr-bad"))
    assert res.get("failed") and message in res["msg"], res
    assert proxy.writes() == 0
    assert entry(url, "sr-bad") is None
