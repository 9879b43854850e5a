# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A compact smoke of the collection on one (Consul, ansible-core) cell of the compatibility matrix.

Run by tests/utils/matrix.py (make test-matrix) with the Python of the ansible-core venv under test
(.venv-2.16 ... .venv-2.21), so `ansible` and `ansible-playbook` are that release's. Environment:

- CONSUL_BIN or CONSUL_VERSION: the Consul the lab runs (lab/lab.sh; default: the pinned release).
- SMOKE_PORT_BASE: the lab's LAB_PORT_BASE (default 13000; clusters on +100 and +200).
- SMOKE_REPORT: a JSON file the field probe writes its findings to (what this Consul lacks).

It starts its own two-cluster lab in a temporary state directory and stops it at the end. It proves:
the peering lifecycle with the modules (token, establish, info), the config-entry modules, the role's
pair with exports, intentions and failover, the rerun (changed=0 and no write), the repair of a
peering the acceptor deleted, unpeering, and which newer fields this server lacks.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess

import pytest
import yaml

from conftest import ROOT, consul, delete_all_peerings, read_env_file, wait_for

PLAYBOOKS = os.path.join(ROOT, "playbooks")
LAB = os.path.join(ROOT, "lab", "lab.sh")
PORT_BASE = int(os.environ.get("SMOKE_PORT_BASE", "13000"))


def version_tuple(text):
    return tuple(int(x) for x in text.split("-")[0].split("+")[0].split(".")[:3])


@pytest.fixture(scope="module")
def smoke_lab(tmp_path_factory):
    """Two clusters of the Consul under test; {"env": the lab's env file, "version": the server's}."""
    state = str(tmp_path_factory.mktemp("smoke-lab"))
    env = dict(os.environ, LAB_CLUSTERS="2", LAB_PORT_BASE=str(PORT_BASE), LAB_STATE_DIR=state)
    for k in ("LAB_ACL", "LAB_TLS", "LAB_MTLS"):
        env.pop(k, None)
    try:
        subprocess.run(["bash", LAB, "up"], env=env, check=True, timeout=900)
        lab = read_env_file(os.path.join(state, "env"))
        status, info = consul(lab["CLUSTER1_URL"], path="/v1/agent/self")
        assert status == 200, info
        yield {"env": lab, "version": info["Config"]["Version"]}
    finally:
        subprocess.run(["bash", LAB, "down"], env=env, check=False, timeout=120)


def reset(*urls):
    for url in urls:
        assert delete_all_peerings(url), "peerings left on %s" % url
        for kind in ("exported-services", "service-intentions", "service-resolver", "service-defaults"):
            for entry in consul(url, path="/v1/config/" + kind)[1] or []:
                consul(url, "DELETE", "/v1/config/%s/%s" % (kind, entry["Name"]))


@pytest.fixture
def urls(smoke_lab):
    acc, dial = smoke_lab["env"]["CLUSTER1_URL"], smoke_lab["env"]["CLUSTER2_URL"]
    reset(acc, dial)
    yield acc, dial
    reset(acc, dial)


def write_yaml(path, data):
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def stats(run):
    assert run.rc == 0, run.output[-6000:]
    return run.json()["stats"]


def changed(run):
    return {h: s["changed"] for h, s in stats(run).items()}


def peerings(url):
    return {p["Name"]: p for p in consul(url, path="/v1/peerings")[1] or []}


# --- what this Consul lacks: raw HTTP probes, independent of the collection ---------------------

# (probe, the Consul CE release that introduced it, config entries to write first, the write, how
# to find the field again on a read). Introduced versions: Consul's source and CHANGELOG (see
# docs/compatibility.md). The probe decides from what the server does, not from this table; the
# table is what the probe checks the server against.
SG = "smoke-sg"
PROBES = [
    ("peering token ServerExternalAddresses", "1.14.0", [],
     ("POST", "/v1/peering/token", {"PeerName": "smoke-probe", "ServerExternalAddresses": ["192.0.2.9:8503"]}),
     "token:192.0.2.9:8503"),
    ("exported-services Consumers[].SamenessGroup", "1.16.0", [],
     ("PUT", "/v1/config", {"Kind": "exported-services", "Name": "default",
                            "Services": [{"Name": "smoke-probe", "Consumers": [{"SamenessGroup": SG}]}]}),
     "/v1/config/exported-services/default:SamenessGroup"),
    ("service-resolver Failover[].SamenessGroup", "1.16.0", [],
     ("PUT", "/v1/config", {"Kind": "service-resolver", "Name": "smoke-probe", "Failover": {"*": {"SamenessGroup": SG}}}),
     "/v1/config/service-resolver/smoke-probe:SamenessGroup"),
    ("service-resolver Redirect.SamenessGroup", "1.16.0", [],
     ("PUT", "/v1/config", {"Kind": "service-resolver", "Name": "smoke-probe", "Redirect": {"SamenessGroup": SG}}),
     "/v1/config/service-resolver/smoke-probe:SamenessGroup"),
    ("service-resolver Failover[].Policy", "1.16.0", [],
     ("PUT", "/v1/config", {"Kind": "service-resolver", "Name": "smoke-probe",
                            "Failover": {"*": {"Targets": [{"Peer": "smoke-peer"}], "Policy": {"Mode": "sequential"}}}}),
     "/v1/config/service-resolver/smoke-probe:Policy"),
    ("service-resolver PrioritizeByLocality", "1.16.0", [],
     ("PUT", "/v1/config", {"Kind": "service-resolver", "Name": "smoke-probe", "PrioritizeByLocality": {"Mode": "failover"}}),
     "/v1/config/service-resolver/smoke-probe:PrioritizeByLocality"),
    ("service-resolver RequestTimeout", "1.14.0", [],
     ("PUT", "/v1/config", {"Kind": "service-resolver", "Name": "smoke-probe", "RequestTimeout": "15s"}),
     "/v1/config/service-resolver/smoke-probe:RequestTimeout"),
    ("service-resolver Failover[].Targets[].Peer", "1.14.0", [],
     ("PUT", "/v1/config", {"Kind": "service-resolver", "Name": "smoke-probe", "Failover": {"*": {"Targets": [{"Peer": "smoke-peer"}]}}}),
     "/v1/config/service-resolver/smoke-probe:smoke-peer"),
    ("service-intentions Sources[].SamenessGroup", "1.16.0", [],
     ("PUT", "/v1/config", {"Kind": "service-intentions", "Name": "smoke-probe",
                            "Sources": [{"Name": "web", "SamenessGroup": SG, "Action": "allow"}]}),
     "/v1/config/service-intentions/smoke-probe:SamenessGroup"),
    ("service-intentions Sources[].Peer", "1.14.0", [],
     ("PUT", "/v1/config", {"Kind": "service-intentions", "Name": "smoke-probe",
                            "Sources": [{"Name": "web", "Peer": "smoke-peer", "Action": "allow"}]}),
     "/v1/config/service-intentions/smoke-probe:smoke-peer"),
    ("service-intentions HTTP Header[].Contains and IgnoreCase", "1.20.1",
     [{"Kind": "service-defaults", "Name": "smoke-probe", "Protocol": "http"}],
     ("PUT", "/v1/config", {"Kind": "service-intentions", "Name": "smoke-probe", "Sources": [
         {"Name": "web", "Permissions": [{"Action": "allow", "HTTP": {
             "Header": [{"Name": "x-team", "Contains": "ops", "IgnoreCase": True}]}}]}]}),
     "/v1/config/service-intentions/smoke-probe:IgnoreCase"),
]


def probe_one(url, setup, write, find):
    """One probe -> (outcome, detail): supported | dropped | enterprise-only | rejected."""
    for entry in setup:
        status, body = consul(url, "PUT", "/v1/config", entry)
        assert status == 200, body
    method, path, body = write
    status, answer = consul(url, method, path, body)
    if status != 200:
        text = answer if isinstance(answer, str) else json.dumps(answer)
        outcome = "enterprise-only" if "enterprise" in text.lower() else "rejected"
        return outcome, "HTTP %s: %s" % (status, text.strip()[:200])
    if find.startswith("token:"):
        token = json.loads(base64.b64decode(answer["PeeringToken"]))
        found = find[len("token:"):] in json.dumps({k: token.get(k) for k in ("ManualServerAddresses", "ServerAddresses")})
        consul(url, "DELETE", "/v1/peering/" + body["PeerName"])
    else:
        read_path, needle = find.split(":", 1)
        status, stored = consul(url, path=read_path)
        found = status == 200 and needle in json.dumps(stored)
    return ("supported", "stored and read back") if found else ("dropped", "HTTP 200, but a read does not show it")


def test_field_support_matches_the_introducing_release(smoke_lab, urls):
    acc = urls[0]
    version = smoke_lab["version"]
    have = version_tuple(version)
    findings, wrong = [], []
    for name, introduced, setup, write, find in PROBES:
        reset(acc)
        outcome, detail = probe_one(acc, setup, write, find)
        findings.append({"probe": name, "introduced": introduced, "outcome": outcome, "detail": detail})
        new_enough = have >= version_tuple(introduced)
        # New enough: Consul CE keeps it or refuses it as Enterprise-only; older: it must not be kept.
        if new_enough and outcome not in ("supported", "enterprise-only"):
            wrong.append((name, introduced, outcome, detail))
        if not new_enough and outcome == "supported":
            wrong.append((name, introduced, outcome, detail))
    report = os.environ.get("SMOKE_REPORT")
    if report:
        with open(report, "w") as f:
            json.dump({"consul": version, "probes": findings}, f, indent=2)
    assert not wrong, "Consul %s disagrees with the introduced-in table: %s" % (version, wrong)


# --- the modules: lifecycle and config entries --------------------------------------------------

def test_server_runs_the_consul_under_test(smoke_lab):
    want = os.environ.get("CONSUL_VERSION")
    if want and want not in ("oldest", "default", "newest"):
        assert smoke_lab["version"] == want
    bin_version = subprocess.run([smoke_lab["env"]["CONSUL_BIN"], "version"], capture_output=True, text=True,
                                 check=True).stdout.split()[1]
    assert bin_version == "v" + smoke_lab["version"]


def test_module_lifecycle_token_establish_info(ansible, urls, tmp_path):
    acc, dial = urls
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "token", "seed.consul_peering.peering_token": {"url": acc, "peer_name": "smoke-dialer"},
         "register": "tok"},
        {"name": "establish", "seed.consul_peering.peering_establish": {
            "url": dial, "peer_name": "smoke-acceptor", "peering_token": "{{ tok.peering_token }}"}},
        {"name": "info", "seed.consul_peering.peering_info": {
            "url": acc, "peer_name": "smoke-dialer", "wait_for": "active"}, "register": "info"},
        {"name": "token again", "seed.consul_peering.peering_token": {"url": acc, "peer_name": "smoke-dialer"},
         "register": "again"},
        {"name": "again is ok", "ansible.builtin.assert": {"that": ["not again.changed", "again.peering_token is not defined"]}},
    ]}]
    run = ansible([write_yaml(tmp_path / "lifecycle.yml", play), "-i", "localhost,", "-c", "local"],
                  playbook=True, json_output=True)
    stats(run)
    tasks = {t["task"]["name"]: t["hosts"]["localhost"] for t in run.json()["plays"][0]["tasks"]}
    assert tasks["token"]["changed"] is True
    assert tasks["establish"]["changed"] is True
    assert tasks["info"]["changed"] is False
    a, d = peerings(acc)["smoke-dialer"], peerings(dial)["smoke-acceptor"]
    assert a["State"] == "ACTIVE" and d["State"] == "ACTIVE"
    assert a["ID"] == d["PeerID"]

    gone = [{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"seed.consul_peering.peering_token": {"url": acc, "peer_name": "smoke-dialer", "state": "absent"}},
        {"seed.consul_peering.peering_establish": {"url": dial, "peer_name": "smoke-acceptor", "state": "absent"}}]}]
    assert stats(ansible([write_yaml(tmp_path / "gone.yml", gone), "-i", "localhost,", "-c", "local"],
                         playbook=True, json_output=True))
    assert wait_for(lambda: not peerings(acc) and not peerings(dial), timeout=60)


def test_config_entry_modules_write_once(ansible, urls, tmp_path):
    acc = urls[0]
    tasks = [
        {"name": "exports", "seed.consul_peering.exported_services": {
            "url": acc, "services": [{"name": "smoke-api", "consumers": [{"peer": "smoke-peer"}]}]}},
        {"name": "intentions", "seed.consul_peering.service_intentions": {
            "url": acc, "name": "smoke-api", "sources": [{"name": "web", "peer": "smoke-peer", "action": "allow"}]}},
        {"name": "resolver", "seed.consul_peering.service_resolver": {
            "url": acc, "name": "smoke-web", "failover": [{"targets": [{"peer": "smoke-peer"}]}]}},
    ]
    path = write_yaml(tmp_path / "entries.yml", [{"hosts": "localhost", "gather_facts": False, "tasks": tasks}])
    first = ansible([path, "-i", "localhost,", "-c", "local"], playbook=True, json_output=True)
    assert stats(first)["localhost"]["changed"] == 3
    second = ansible([path, "-i", "localhost,", "-c", "local"], playbook=True, json_output=True)
    assert stats(second)["localhost"]["changed"] == 0
    exported = consul(acc, path="/v1/config/exported-services/default")[1]
    assert exported["Services"][0]["Consumers"] == [{"Peer": "smoke-peer"}]
    # (not on smoke-api: Consul refuses new failover targets for a peer-exported TCP service)
    resolver = consul(acc, path="/v1/config/service-resolver/smoke-web")[1]
    assert resolver["Failover"] == {"*": {"Targets": [{"Peer": "smoke-peer"}]}}
    sources = consul(acc, path="/v1/config/service-intentions/smoke-api")[1]["Sources"]
    assert [(s["Name"], s["Peer"], s["Action"]) for s in sources] == [("web", "smoke-peer", "allow")]


# --- the role, through the public playbooks -----------------------------------------------------

def role_inventory(tmp_path, acc, dial, name="inventory.yml"):
    """cluster-01 accepts: exports backend to cluster-02, lets its frontend call it, and fails
    rf-backend over to cluster-02, which dials and exports rf-backend back."""
    inv = {"all": {
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"},
        "children": {
            "consul_acceptors": {"hosts": {"cluster-01": {
                "cluster_peering_url": acc,
                "cluster_peering_exports": [{"name": "backend"}],
                "cluster_peering_intentions": [{"name": "backend", "sources": [{"name": "frontend", "peer": "cluster-02"}]}],
                "cluster_peering_failover": [{"name": "rf-backend", "peers": ["cluster-02"]}]}}},
            "consul_dialers": {"hosts": {"cluster-02": {
                "cluster_peering_url": dial,
                "cluster_peering_exports": [{"name": "rf-backend", "peers": ["cluster-01"]}]}}}}}}
    return write_yaml(tmp_path / name, inv)


def playbook(ansible, name, inv):
    return ansible([os.path.join(PLAYBOOKS, name + ".yml"), "-i", inv, "--forks", "10"], playbook=True,
                   json_output=True)


def register_services(acc, dial):
    for url, name, port in ((acc, "backend", 9090), (acc, "rf-backend", 9092), (dial, "frontend", 9091),
                            (dial, "rf-backend", 9093)):
        status, body = consul(url, "PUT", "/v1/agent/service/register", {"Name": name, "Port": port})
        assert status == 200, body


def imported(url, service, peer):
    status, body = consul(url, path="/v1/health/service/%s?peer=%s" % (service, peer))
    return [e["Service"]["Service"] for e in body] if status == 200 else []


def assert_peered(acc, dial):
    a, d = peerings(acc), peerings(dial)
    assert a["cluster-02"]["State"] == "ACTIVE", a
    assert d["cluster-01"]["State"] == "ACTIVE", d
    assert a["cluster-02"]["ID"] == d["cluster-01"]["PeerID"]
    assert wait_for(lambda: imported(dial, "backend", "cluster-01") == ["backend"], timeout=60)
    assert wait_for(lambda: imported(acc, "rf-backend", "cluster-02") == ["rf-backend"], timeout=60)
    return a["cluster-02"]["ID"]


def assert_rerun_writes_nothing(ansible, counting_proxy, tmp_path, acc, dial):
    proxies = {"cluster-01": counting_proxy(acc), "cluster-02": counting_proxy(dial)}
    inv = role_inventory(tmp_path, proxies["cluster-01"].url, proxies["cluster-02"].url, name="via-proxies.yml")
    again = playbook(ansible, "peer_clusters", inv)
    assert changed(again) == {"cluster-01": 0, "cluster-02": 0}
    for name, proxy in proxies.items():
        assert proxy.writes() == 0, (name, dict(proxy.counts))


def test_role_pair_rerun_repair_unpeer(ansible, urls, counting_proxy, tmp_path):
    acc, dial = urls
    register_services(acc, dial)
    inv = role_inventory(tmp_path, acc, dial)

    first = playbook(ansible, "peer_clusters", inv)
    assert all(n > 0 for n in changed(first).values()), changed(first)
    first_id = assert_peered(acc, dial)
    sources = consul(acc, path="/v1/config/service-intentions/backend")[1]["Sources"]
    assert [(s["Name"], s["Peer"], s["Action"]) for s in sources] == [("frontend", "cluster-02", "allow")]
    # failover: the acceptor's resolver and the compiled discovery chain name the peer
    resolver = consul(acc, path="/v1/config/service-resolver/rf-backend")[1]
    assert resolver["Failover"] == {"*": {"Targets": [{"Peer": "cluster-02"}]}}
    chain = consul(acc, path="/v1/discovery-chain/rf-backend")[1]["Chain"]
    node = chain["Nodes"][chain["StartNode"]]
    targets = [chain["Targets"][t] for t in node["Resolver"]["Failover"]["Targets"]]
    assert [(t["Service"], t.get("Peer")) for t in targets] == [("rf-backend", "cluster-02")]

    assert_rerun_writes_nothing(ansible, counting_proxy, tmp_path, acc, dial)

    # repair: the acceptor deleted its side; the dialer's turns TERMINATED; a run peers them again
    consul(acc, "DELETE", "/v1/peering/cluster-02")
    assert wait_for(lambda: "cluster-02" not in peerings(acc), timeout=60)
    assert wait_for(lambda: peerings(dial).get("cluster-01", {}).get("State") == "TERMINATED", timeout=60)
    repair = playbook(ansible, "peer_clusters", inv)
    assert all(n > 0 for n in changed(repair).values()), changed(repair)
    assert assert_peered(acc, dial) != first_id

    down = playbook(ansible, "unpeer_clusters", inv)
    assert all(n > 0 for n in changed(down).values()), changed(down)
    assert peerings(acc) == {} and peerings(dial) == {}
    assert consul(acc, path="/v1/config/service-resolver/rf-backend")[0] == 404
    assert changed(playbook(ansible, "unpeer_clusters", inv)) == {"cluster-01": 0, "cluster-02": 0}
