# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The least-privilege ACL rules of docs/acl.md, proven on a lab with ACLs on (LAB_ACL=1).

Each module runs with a token that has exactly the documented policy and succeeds; with one
rule removed (or weakened) it fails, and the message names the permission Consul says is
missing. The role runs end to end with one least-privilege token per cluster.

The lab is this file's own (module-scoped, LAB_STATE_DIR under tmp, ports 24400-24579), so
the default lab and the other test files are not disturbed.
"""

from __future__ import annotations

import json
import os
import uuid

import pytest
import yaml

from conftest import ROOT, acl_lab_up, consul, wait_for

PLAYBOOKS = os.path.join(ROOT, "playbooks")
PORT_BASE = "24300"

# The minimal rules per module (docs/acl.md) and, per module, the rule sets with one rule
# removed or weakened, with the permission the failure must name.
PEERING_WRITE = 'peering = "write"'
PEERING_READ = 'peering = "read"'
MESH_WRITE = 'mesh = "write"'
INTENTIONS_WRITE = 'service "backend" {\n  policy     = "deny"\n  intentions = "write"\n}'
SERVICES_READ = 'service_prefix "" { policy = "read" }'
NODES_READ = 'node_prefix "" { policy = "read" }'
# Consul 1.22 answers a *denied* peering read (GET /v1/peering/<name>, /v1/peerings) only after
# about 11.5 s (a granted one at once); the default request timeout of 10 s would expire first.
SLOW_DENIAL = {"timeout": 30}


@pytest.fixture(scope="module")
def acl_lab(tmp_path_factory):
    with acl_lab_up(tmp_path_factory.mktemp("acl-lab"), PORT_BASE) as values:
        values["MGMT"] = {i: read_secret(values["CLUSTER%d_TOKEN_FILE" % i]) for i in (1, 2)}
        yield values


def read_secret(path):
    with open(path) as f:
        return f.read().strip()


def mgmt_call(lab, i, method, path, body=None):
    return consul(lab["CLUSTER%d_URL" % i], method, path, body, token=lab["MGMT"][i])


def reset(lab):
    """No peerings, no exported services and no intentions for backend on either cluster."""
    for i in (1, 2):
        for p in mgmt_call(lab, i, "GET", "/v1/peerings")[1] or []:
            mgmt_call(lab, i, "DELETE", "/v1/peering/" + p["Name"])
        mgmt_call(lab, i, "DELETE", "/v1/config/exported-services/default")
        mgmt_call(lab, i, "DELETE", "/v1/config/service-intentions/backend")
    for i in (1, 2):
        assert wait_for(lambda i=i: not mgmt_call(lab, i, "GET", "/v1/peerings")[1], timeout=60)


@pytest.fixture
def token_file(acl_lab, tmp_path):
    """token_file(cluster, *rules) -> path of a 0600 file holding a new token with exactly those rules."""
    made = []

    def make(i, *rules):
        name = "test-" + uuid.uuid4().hex[:10]
        status, policy = mgmt_call(acl_lab, i, "PUT", "/v1/acl/policy", {"Name": name, "Rules": "\n".join(rules)})
        assert status == 200, policy
        status, token = mgmt_call(acl_lab, i, "PUT", "/v1/acl/token", {"Policies": [{"Name": name}]})
        assert status == 200, token
        made.append((i, token["AccessorID"], policy["ID"]))
        path = tmp_path / (name + ".token")
        path.write_text(token["SecretID"])
        path.chmod(0o600)
        return str(path)

    yield make
    for i, accessor, policy_id in made:
        mgmt_call(acl_lab, i, "DELETE", "/v1/acl/token/" + accessor)
        mgmt_call(acl_lab, i, "DELETE", "/v1/acl/policy/" + policy_id)


@pytest.fixture
def call(ansible, acl_lab):
    """call(cluster, token_file, module, args) -> the task's result; the token comes from CONSUL_HTTP_TOKEN_FILE."""

    def run(i, token_path, module, args):
        env = {"CONSUL_HTTP_ADDR": acl_lab["CLUSTER%d_URL" % i], "CONSUL_HTTP_TOKEN_FILE": token_path}
        cli = ["localhost", "-m", "seed.consul_peering." + module] + (["-a", json.dumps(args)] if args else [])
        proc = ansible(cli, env=env, json_output=True)
        try:
            result = proc.json()["plays"][0]["tasks"][0]["hosts"]["localhost"]
        except (ValueError, KeyError, IndexError):
            pytest.fail("no JSON result from ansible (rc %s):\n%s" % (proc.rc, proc.output))
        secret = read_secret(token_path)
        assert secret not in proc.output, "the ACL token leaked into ansible's output"
        return result

    return run


def assert_denied(result, permission):
    assert result.get("failed"), result
    assert result.get("status") == 403, result.get("msg")
    assert "lacks permission '%s'" % permission in result["msg"], result["msg"]
    assert "Traceback" not in json.dumps(result)


@pytest.fixture
def clean(acl_lab):
    reset(acl_lab)
    yield acl_lab
    reset(acl_lab)


def peering_token_secret(lab, name):
    """A peering token generated on cluster1 for name, with the management token (test setup)."""
    status, body = mgmt_call(lab, 1, "POST", "/v1/peering/token", {"PeerName": name})
    assert status == 200, body
    return body["PeeringToken"]


def test_unauthenticated_lab_api_is_denied(acl_lab):
    """The lab really runs with default policy deny: no token, no peerings."""
    status, body = consul(acl_lab["CLUSTER1_URL"], path="/v1/config/exported-services/default")
    assert status == 403, body
    assert "anonymous token lacks permission 'mesh:read'" in body


def test_lab_token_files_are_private_and_not_in_env(acl_lab):
    env_text = open(os.path.join(acl_lab["LAB_STATE_DIR"], "env")).read()
    for i in (1, 2):
        for key in [k for k in acl_lab if k.startswith("CLUSTER%d_TOKEN_FILE" % i)]:
            path = acl_lab[key]
            assert os.stat(path).st_mode & 0o777 == 0o600, path
            assert read_secret(path) not in env_text
    for role in ("PEERING", "PEERING_READ", "EXPORTS", "INTENTIONS", "VERIFY", "ROLE"):
        assert "CLUSTER1_TOKEN_FILE_" + role in acl_lab


# --- peering_token: peering:write ---------------------------------------------------

def test_peering_token_needs_peering_write(clean, call, token_file):
    ok = call(1, token_file(1, PEERING_WRITE), "peering_token", {"peer_name": "acl-dialer"})
    assert ok.get("changed") and not ok.get("failed"), ok
    assert mgmt_call(clean, 1, "GET", "/v1/peering/acl-dialer")[1]["State"] == "PENDING"

    assert_denied(call(1, token_file(1, PEERING_READ), "peering_token", {"peer_name": "acl-other"}), "peering:write")
    assert_denied(call(1, token_file(1), "peering_token", dict(SLOW_DENIAL, peer_name="acl-other")), "peering:read")
    assert mgmt_call(clean, 1, "GET", "/v1/peering/acl-other")[0] == 404

    gone = call(1, token_file(1, PEERING_WRITE), "peering_token", {"peer_name": "acl-dialer", "state": "absent"})
    assert gone.get("changed") and not gone.get("failed"), gone


# --- peering_establish: peering:write -------------------------------------------------

def test_peering_establish_needs_peering_write(clean, call, token_file, tmp_path):
    secret_file = tmp_path / "peering-token"
    secret_file.write_text(peering_token_secret(clean, "acl-dialer"))
    secret_file.chmod(0o600)
    args = {"peer_name": "acl-acceptor", "peering_token": "{{ lookup('file', '%s') }}" % secret_file}

    assert_denied(call(2, token_file(2, PEERING_READ), "peering_establish", args), "peering:write")
    assert mgmt_call(clean, 2, "GET", "/v1/peering/acl-acceptor")[0] == 404

    ok = call(2, token_file(2, PEERING_WRITE), "peering_establish", args)
    assert ok.get("changed") and not ok.get("failed"), ok
    assert mgmt_call(clean, 2, "GET", "/v1/peering/acl-acceptor")[1]["State"] == "ACTIVE"


# --- peering_info: peering:read; with expect_services also service:read + node:read on all --

def test_peering_info_needs_peering_read(clean, call, token_file):
    ok = call(1, token_file(1, PEERING_READ), "peering_info", {"peer_name": "acl-nobody"})
    assert not ok.get("failed") and ok["exists"] is False, ok
    listed = call(1, token_file(1, PEERING_READ), "peering_info", {})
    assert not listed.get("failed") and listed["peerings"] == [], listed.get("msg")
    assert_denied(call(1, token_file(1), "peering_info", dict(SLOW_DENIAL, peer_name="acl-nobody")), "peering:read")


@pytest.fixture
def peered(clean, call, token_file):
    """cluster1 exports backend to cluster2 over the peering acl-dialer / acl-acceptor."""
    status, body = mgmt_call(clean, 1, "PUT", "/v1/agent/service/register", {"Name": "backend", "Port": 9090})
    assert status == 200, body
    secret = peering_token_secret(clean, "acl-dialer")
    status, body = mgmt_call(clean, 2, "POST", "/v1/peering/establish",
                             {"PeerName": "acl-acceptor", "PeeringToken": secret})
    assert status == 200, body
    status, body = mgmt_call(clean, 1, "PUT", "/v1/config", {
        "Kind": "exported-services", "Name": "default",
        "Services": [{"Name": "backend", "Consumers": [{"Peer": "acl-dialer"}]}]})
    assert status == 200, body
    assert wait_for(lambda: mgmt_call(clean, 2, "GET", "/v1/health/service/backend?peer=acl-acceptor")[1], timeout=60)
    yield clean
    mgmt_call(clean, 1, "PUT", "/v1/agent/service/deregister/backend")


VERIFY_ARGS = {"peer_name": "acl-acceptor", "expect_services": ["backend"], "wait_timeout": 3}


def test_verify_needs_service_and_node_read_on_all(peered, call, token_file):
    ok = call(2, token_file(2, PEERING_READ, SERVICES_READ, NODES_READ), "peering_info", VERIFY_ARGS)
    assert not ok.get("failed") and ok["visible_services"] == ["backend"], ok
    assert_denied(call(2, token_file(2, SERVICES_READ, NODES_READ), "peering_info", dict(VERIFY_ARGS, **SLOW_DENIAL)),
                  "peering:read")


@pytest.mark.parametrize("rules, permission", [
    ((PEERING_READ, SERVICES_READ), "node:read"),
    ((PEERING_READ, NODES_READ), "service:read"),
], ids=["without-node-read", "without-service-read"])
def test_verify_without_read_on_all_fails(peered, call, token_file, rules, permission):
    """Consul answers 200 with an empty list (X-Consul-Results-Filtered-By-ACLs: true), not 403."""
    result = call(2, token_file(2, *rules), "peering_info", VERIFY_ARGS)
    assert result.get("failed"), result
    # The module tells ACL filtering apart from "not exported yet" and names what is missing.
    assert "filtered the answer by ACLs" in result["msg"], result["msg"]
    assert permission in result["msg"], result["msg"]


# --- exported_services: mesh:write ----------------------------------------------------------

EXPORT_ARGS = {"services": [{"name": "backend", "consumers": [{"peer": "acl-dialer"}]}]}


def test_exported_services_needs_mesh_write(clean, call, token_file):
    assert_denied(call(1, token_file(1, 'mesh = "read"'), "exported_services", EXPORT_ARGS), "mesh:write")
    assert_denied(call(1, token_file(1), "exported_services", EXPORT_ARGS), "mesh:read")
    assert mgmt_call(clean, 1, "GET", "/v1/config/exported-services/default")[0] == 404

    ok = call(1, token_file(1, MESH_WRITE), "exported_services", EXPORT_ARGS)
    assert ok.get("changed") and not ok.get("failed"), ok
    entry = mgmt_call(clean, 1, "GET", "/v1/config/exported-services/default")[1]
    assert entry["Services"] == [{"Name": "backend", "Consumers": [{"Peer": "acl-dialer"}]}]


# --- service_intentions: intentions = "write" on the destination ------------------------------

INTENTION_ARGS = {"name": "backend", "sources": [{"name": "frontend", "peer": "acl-dialer", "action": "allow"}]}


def test_service_intentions_needs_intentions_write_on_the_destination(clean, call, token_file):
    weakened = 'service "backend" {\n  policy     = "deny"\n  intentions = "read"\n}'
    assert_denied(call(1, token_file(1, weakened), "service_intentions", INTENTION_ARGS), "intention:write")
    other = 'service "payments" {\n  policy     = "deny"\n  intentions = "write"\n}'
    assert_denied(call(1, token_file(1, other), "service_intentions", INTENTION_ARGS), "intention:read")
    assert mgmt_call(clean, 1, "GET", "/v1/config/service-intentions/backend")[0] == 404

    ok = call(1, token_file(1, INTENTIONS_WRITE), "service_intentions", INTENTION_ARGS)
    assert ok.get("changed") and not ok.get("failed"), ok
    entry = mgmt_call(clean, 1, "GET", "/v1/config/service-intentions/backend")[1]
    assert [(s["Name"], s["Peer"], s["Action"]) for s in entry["Sources"]] == [("frontend", "acl-dialer", "allow")]


# --- service_resolver: service:write on the service, service:read on services it redirects to -------

RESOLVER_WRITE = 'service "backend" { policy = "write" }'
RESOLVER_ARGS = {"name": "backend", "failover": [{"subset": "*", "targets": [{"peer": "acl-dialer"}]}]}
REDIRECT_ARGS = {"name": "backend", "redirect": {"service": "payments"}}


def reset_resolver(lab):
    mgmt_call(lab, 1, "DELETE", "/v1/config/service-resolver/backend")


@pytest.mark.parametrize("rules, permission", [
    (('service "backend" { policy = "read" }',), "service:write"),
    ((MESH_WRITE,), "service:read"),
    (('operator = "write"',), "service:read"),
])
def test_service_resolver_without_service_write_fails_naming_it(clean, call, token_file, rules, permission):
    reset_resolver(clean)
    assert_denied(call(1, token_file(1, *rules), "service_resolver", RESOLVER_ARGS), permission)
    assert mgmt_call(clean, 1, "GET", "/v1/config/service-resolver/backend")[0] == 404


def test_service_resolver_needs_service_write_and_read_on_redirect_targets(clean, call, token_file):
    reset_resolver(clean)
    try:
        ok = call(1, token_file(1, RESOLVER_WRITE), "service_resolver", RESOLVER_ARGS)
        assert ok.get("changed") and not ok.get("failed"), ok
        entry = mgmt_call(clean, 1, "GET", "/v1/config/service-resolver/backend")[1]
        assert entry["Failover"]["*"]["Targets"] == [{"Peer": "acl-dialer"}]
        # Redirecting to another service also needs read on that service.
        reset_resolver(clean)
        assert_denied(call(1, token_file(1, RESOLVER_WRITE), "service_resolver", REDIRECT_ARGS), "service:read")
        ok = call(1, token_file(1, RESOLVER_WRITE, 'service "payments" { policy = "read" }'), "service_resolver",
                  REDIRECT_ARGS)
        assert ok.get("changed") and not ok.get("failed"), ok
    finally:
        reset_resolver(clean)


# --- the role, one least-privilege token per cluster --------------------------------------------

# The lock the role takes on an accepting cluster before it changes peerings (docs/acl.md, "The lock").
LOCK_RULES = ('key_prefix "seed/consul_peering/" { policy = "write" }', 'session_prefix "" { policy = "write" }')
ACCEPTOR_RULES = (PEERING_WRITE, MESH_WRITE, INTENTIONS_WRITE) + LOCK_RULES
DIALER_RULES = (PEERING_WRITE, SERVICES_READ, NODES_READ)


def role_inventory(tmp_path, lab, acceptor_token, dialer_token, **dialer_vars):
    def host(i, token_path):
        # The inventory names the token file; the secret itself is read at run time.
        return {"cluster_peering_url": lab["CLUSTER%d_URL" % i],
                "cluster_peering_token": "{{ lookup('file', '%s') }}" % token_path}

    acc = host(1, acceptor_token)
    acc["cluster_peering_exports"] = [{"name": "backend"}]
    acc["cluster_peering_intentions"] = [{"name": "backend", "sources": [{"name": "frontend", "peer": "cluster-02"}]}]
    dial = dict(host(2, dialer_token), **dialer_vars)
    inv = {"all": {
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"},
        "children": {"consul_acceptors": {"hosts": {"cluster-01": acc}},
                     "consul_dialers": {"hosts": {"cluster-02": dial}}}}}
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(inv))
    return str(path)


def play(ansible, name, inv):
    run = ansible([os.path.join(PLAYBOOKS, name + ".yml"), "-i", inv], playbook=True, json_output=True)
    assert run.rc == 0, run.output[-6000:]
    return run


def changed(run):
    return {h: s["changed"] for h, s in run.json()["stats"].items()}


def test_role_with_least_privilege_token_per_cluster(clean, ansible, token_file, tmp_path):
    status, body = mgmt_call(clean, 1, "PUT", "/v1/agent/service/register", {"Name": "backend", "Port": 9090})
    assert status == 200, body
    acceptor_token, dialer_token = token_file(1, *ACCEPTOR_RULES), token_file(2, *DIALER_RULES)
    inv = role_inventory(tmp_path, clean, acceptor_token, dialer_token)
    try:
        first = play(ansible, "peer_clusters", inv)
        assert all(n > 0 for n in changed(first).values()), changed(first)
        for path in (acceptor_token, dialer_token):
            assert read_secret(path) not in first.output
        acc = mgmt_call(clean, 1, "GET", "/v1/peering/cluster-02")[1]
        dial = mgmt_call(clean, 2, "GET", "/v1/peering/cluster-01")[1]
        assert acc["State"] == dial["State"] == "ACTIVE" and acc["ID"] == dial["PeerID"]
        imported = mgmt_call(clean, 2, "GET", "/v1/health/service/backend?peer=cluster-01")[1]
        assert [e["Service"]["Service"] for e in imported] == ["backend"]

        second = play(ansible, "peer_clusters", inv)
        assert changed(second) == {"cluster-01": 0, "cluster-02": 0}

        down = play(ansible, "unpeer_clusters", inv)
        assert all(n > 0 for n in changed(down).values()), changed(down)
        assert mgmt_call(clean, 1, "GET", "/v1/peerings")[1] == []
        assert mgmt_call(clean, 2, "GET", "/v1/peerings")[1] == []
    finally:
        mgmt_call(clean, 1, "PUT", "/v1/agent/service/deregister/backend")


# docs/acl.md: with cluster_peering_failover, add per failover service `service "<name>" { policy = "write" }`.
FAILOVER_RULES = ('service "backend" { policy = "write" }',)
FAILOVER_TASK = "Fail local services over to the same service on peers"


def failed_tasks(run):
    return [(t["task"]["name"].split(" : ")[-1], h, " ".join(str(x.get("msg")) for x in r.get("results") or [r]))
            for p in run.json()["plays"] for t in p["tasks"] for h, r in t["hosts"].items() if r.get("failed")]


def test_role_with_least_privilege_and_failover(clean, ansible, token_file, tmp_path):
    """The dialer fails backend over to the acceptor: the dialer's rules plus docs/acl.md's failover rule suffice
    (peer, rerun, unpeer); without that rule the role stops at the failover task, naming service:write."""
    status, body = mgmt_call(clean, 1, "PUT", "/v1/agent/service/register", {"Name": "backend", "Port": 9090})
    assert status == 200, body
    failover = {"cluster_peering_failover": [{"name": "backend"}]}
    acceptor_token = token_file(1, *ACCEPTOR_RULES)
    try:
        dialer_token = token_file(2, *(DIALER_RULES + FAILOVER_RULES))
        inv = role_inventory(tmp_path, clean, acceptor_token, dialer_token, **failover)
        first = play(ansible, "peer_clusters", inv)
        assert all(n > 0 for n in changed(first).values()), changed(first)
        assert read_secret(dialer_token) not in first.output
        resolver = mgmt_call(clean, 2, "GET", "/v1/config/service-resolver/backend")[1]
        assert resolver["Failover"] == {"*": {"Targets": [{"Peer": "cluster-01"}]}}, resolver
        assert changed(play(ansible, "peer_clusters", inv)) == {"cluster-01": 0, "cluster-02": 0}
        down = play(ansible, "unpeer_clusters", inv)
        assert all(n > 0 for n in changed(down).values()), changed(down)
        assert mgmt_call(clean, 2, "GET", "/v1/config/service-resolver/backend")[0] == 404
        for i in (1, 2):
            assert mgmt_call(clean, i, "GET", "/v1/peerings")[1] == [], i

        # Without the failover rule: the run stops at the failover task, naming the permission. That task comes
        # after the peering is ACTIVE (Consul would accept a target peer that does not exist yet), so the peering
        # and the acceptor's exports are made by then; no resolver is written.
        weak_token = token_file(2, *DIALER_RULES)
        inv = role_inventory(tmp_path, clean, acceptor_token, weak_token, **failover)
        run = ansible([os.path.join(PLAYBOOKS, "peer_clusters.yml"), "-i", inv], playbook=True, json_output=True)
        assert run.rc != 0
        failures = failed_tasks(run)
        assert [(task, host) for task, host, msg in failures] == [(FAILOVER_TASK, "cluster-02")], failures
        assert "lacks permission 'service:write'" in failures[0][2], failures
        # The failing loop item is the failed-over service.
        assert [r["item"]["name"] for p in run.json()["plays"] for t in p["tasks"] for h, res in t["hosts"].items()
                for r in res.get("results") or [] if r.get("failed")] == ["backend"]
        assert read_secret(weak_token) not in run.output
        assert mgmt_call(clean, 2, "GET", "/v1/config/service-resolver/backend")[0] == 404
        assert mgmt_call(clean, 2, "GET", "/v1/peering/cluster-01")[1]["State"] == "ACTIVE"
        exported = mgmt_call(clean, 1, "GET", "/v1/config/exported-services/default")[1]
        assert exported["Services"] == [{"Name": "backend", "Consumers": [{"Peer": "cluster-02"}]}], exported
    finally:
        mgmt_call(clean, 2, "DELETE", "/v1/config/service-resolver/backend")
        mgmt_call(clean, 1, "PUT", "/v1/agent/service/deregister/backend")


def test_role_fails_naming_the_permission_a_cluster_token_lacks(clean, ansible, token_file, tmp_path):
    """The acceptor's token without its mesh rule: the role stops at the export, naming the permission."""
    acceptor_token = token_file(1, PEERING_WRITE, INTENTIONS_WRITE, *LOCK_RULES)
    inv = role_inventory(tmp_path, clean, acceptor_token, token_file(2, *DIALER_RULES))
    run = ansible([os.path.join(PLAYBOOKS, "peer_clusters.yml"), "-i", inv], playbook=True, json_output=True)
    assert run.rc != 0
    failures = [(t["task"]["name"], h, r.get("msg")) for p in run.json()["plays"] for t in p["tasks"]
                for h, r in t["hosts"].items() if r.get("failed")]
    assert [(task.split(" : ")[-1], host) for task, host, msg in failures] == [
        ("Export services to the peers", "cluster-01")], failures
    # The module reads the entry before writing it: the first permission missing is mesh:read.
    assert "lacks permission 'mesh:read'" in failures[0][2], failures
    assert read_secret(acceptor_token) not in run.output


def test_role_without_the_lock_rules_fails_before_any_write_naming_them(clean, ansible, token_file, tmp_path):
    """The acceptor's token lacks the lock's rules: the role stops at the lock, having changed nothing."""
    acceptor_token = token_file(1, PEERING_WRITE, MESH_WRITE, INTENTIONS_WRITE)
    inv = role_inventory(tmp_path, clean, acceptor_token, token_file(2, *DIALER_RULES))
    run = ansible([os.path.join(PLAYBOOKS, "peer_clusters.yml"), "-i", inv], playbook=True, json_output=True)
    assert run.rc != 0
    failures = [(t["task"]["name"].split(" : ")[-1], " ".join(str(x.get("msg")) for x in r.get("results") or [r]))
                for p in run.json()["plays"] for t in p["tasks"] for h, r in t["hosts"].items() if r.get("failed")]
    assert failures and failures[0][0].startswith("Take the peering lock"), failures
    assert "lacks permission 'key:read'" in failures[0][1], failures
    assert mgmt_call(clean, 1, "GET", "/v1/peerings")[1] == [] and mgmt_call(clean, 2, "GET", "/v1/peerings")[1] == []
    assert read_secret(acceptor_token) not in run.output
