# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""No silent false success, on the real lab (issue 15).

- unpeer_clusters through a URL with a path fails, and removes nothing;
- every field Consul 1.22 holds in an intentions, exported-services and resolver entry (JWT included)
  survives a module run that changes something else;
- a CAS write whose answer a proxy drops after forwarding it is reported changed;
- establishing against an acceptor that refuses, or never answers, gives one short message naming the
  token's addresses.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import time

import pytest
import yaml

from conftest import ROOT, consul, delete_all_peerings, wait_for

JWKS = base64.b64encode(json.dumps({"keys": [{"kty": "oct", "kid": "k1", "k": "c2VjcmV0LWtleS1mb3ItdGVzdHM"}]})
                        .encode()).decode()


def result_of(run):
    return run.json()["plays"][0]["tasks"][0]["hosts"]["localhost"]


def adhoc(module, args):
    return ["localhost", "-m", "seed.consul_peering." + module, "-a", json.dumps(args)]


def put_entry(url, entry):
    status, body = consul(url, "PUT", "/v1/config", entry)
    assert status == 200 and body is True, (status, body)


def get_entry(url, kind, name):
    status, body = consul(url, path="/v1/config/%s/%s" % (kind, name))
    assert status == 200, body
    return body


def drop_server_fields(entry):
    out = dict(entry)
    for key in ("CreateIndex", "ModifyIndex", "Hash"):
        out.pop(key, None)
    return out


# --- unpeer through a path URL ---------------------------------------------------------------------

def test_unpeer_through_a_path_url_fails_and_removes_nothing(ansible, lab, tmp_path):
    acc, dial = lab["CLUSTER1_URL"], lab["CLUSTER2_URL"]
    delete_all_peerings(acc)
    delete_all_peerings(dial)
    status, body = consul(acc, "POST", "/v1/peering/token", {"PeerName": "edge-dial"})
    assert status == 200, body
    assert consul(dial, "POST", "/v1/peering/establish", {"PeerName": "edge-acc", "PeeringToken": body["PeeringToken"]})[0] == 200
    assert wait_for(lambda: consul(dial, path="/v1/peering/edge-acc")[1].get("State") == "ACTIVE", timeout=60)
    inv = {"all": {"vars": {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"},
                   "children": {"consul_acceptors": {"hosts": {"edge-acc": {"cluster_peering_url": acc + "/v1"}}},
                                "consul_dialers": {"hosts": {"edge-dial": {"cluster_peering_url": dial + "/v1"}}}}}}
    path = tmp_path / "inv.yml"
    path.write_text(yaml.safe_dump(inv))
    try:
        run = ansible([os.path.join(ROOT, "playbooks", "unpeer_clusters.yml"), "-i", str(path)], playbook=True)
        assert run.rc != 0 and "path, query or fragment" in run.output, run.output[-3000:]
        assert consul(acc, path="/v1/peering/edge-dial")[1]["State"] == "ACTIVE"
        assert consul(dial, path="/v1/peering/edge-acc")[1]["State"] == "ACTIVE"
    finally:
        delete_all_peerings(dial)
        delete_all_peerings(acc)


# --- every field survives ----------------------------------------------------------------------------

@pytest.fixture
def entries(lab):
    url = lab["CLUSTER1_URL"]
    made = [("jwt-provider", "edge-okta"), ("service-defaults", "edge-api")]
    put_entry(url, {"Kind": "jwt-provider", "Name": "edge-okta", "Issuer": "https://okta.example",
                    "JSONWebKeySet": {"Local": {"JWKS": JWKS}}})
    put_entry(url, {"Kind": "service-defaults", "Name": "edge-api", "Protocol": "http"})
    yield url, made
    for kind in ("service-intentions", "service-resolver"):
        consul(url, "DELETE", "/v1/config/%s/edge-api" % kind)
    for kind, name in reversed(made):
        consul(url, "DELETE", "/v1/config/%s/%s" % (kind, name))


JWT = {"Providers": [{"Name": "edge-okta", "VerifyClaims": [{"Path": ["perms", "role"], "Value": "admin"}]}]}


def by_name(entry):
    """The entry with its sources keyed by name: Consul orders them by precedence, not by what was written."""
    out = dict(entry)
    out["Sources"] = dict((s["Name"], s) for s in entry["Sources"])
    return out


# Every HTTP match Consul CE 1.22 takes: the three path forms, methods, and each header match with the
# flags that combine with it (IgnoreCase not with Present or Regex).
WEB_PERMISSIONS = [
    {"Action": "allow", "JWT": JWT,
     "HTTP": {"PathPrefix": "/admin", "Methods": ["GET", "POST"],
              "Header": [{"Name": "x-team", "Exact": "a", "Invert": True},
                         {"Name": "x-env", "Prefix": "prod", "IgnoreCase": True},
                         {"Name": "x-id", "Contains": "ab"}]}},
    {"Action": "allow",
     "HTTP": {"PathExact": "/health",
              "Header": [{"Name": "x-present", "Present": True},
                         {"Name": "x-absent", "Present": True, "Invert": True},
                         {"Name": "x-host", "Suffix": ".internal", "IgnoreCase": True},
                         {"Name": "x-version", "Regex": "^v[0-9]+$", "Invert": True},
                         {"Name": "x-tier", "Prefix": "gold", "Invert": True}]}},
    {"Action": "deny", "HTTP": {"PathRegex": "/.*"}},
]
# The same permissions as module input, given without jwt.
WEB_PERMISSIONS_INPUT = [
    {"action": "allow", "http": {"path_prefix": "/admin", "methods": ["get", "post"], "header": [
        {"name": "x-team", "exact": "a", "invert": True}, {"name": "x-env", "prefix": "prod", "ignore_case": True},
        {"name": "x-id", "contains": "ab"}]}},
    {"action": "allow", "http": {"path_exact": "/health", "header": [
        {"name": "x-present", "present": True}, {"name": "x-absent", "present": True, "invert": True},
        {"name": "x-host", "suffix": ".internal", "ignore_case": True},
        {"name": "x-version", "regex": "^v[0-9]+$", "invert": True}, {"name": "x-tier", "prefix": "gold", "invert": True}]}},
    {"action": "deny", "http": {"path_regex": "/.*"}},
]


def test_intentions_keep_every_field_and_jwt(ansible, entries):
    url, dummy = entries
    full = {"Kind": "service-intentions", "Name": "edge-api", "Meta": {"owner": "team-a"}, "JWT": JWT,
            "Sources": [
                {"Name": "web", "Peer": "edge-p1", "Description": "old text", "Permissions": WEB_PERMISSIONS},
                {"Name": "*", "Action": "deny", "Description": "default deny"}]}
    put_entry(url, full)
    before = drop_server_fields(get_entry(url, "service-intentions", "edge-api"))
    assert before["Sources"][0]["Permissions"] == WEB_PERMISSIONS, before  # Consul took every field as given
    # The module rewrites source web (new description, same permissions given without jwt) and adds one.
    run = ansible(adhoc("service_intentions", {"url": url, "name": "edge-api", "sources": [
        {"name": "web", "peer": "edge-p1", "description": "new text", "permissions": WEB_PERMISSIONS_INPUT},
        {"name": "metrics", "peer": "edge-p1", "action": "allow"}]}), json_output=True)
    res = result_of(run)
    assert run.rc == 0 and res["changed"], res
    after = by_name(drop_server_fields(get_entry(url, "service-intentions", "edge-api")))
    # The whole entry is what was there, but for what the module was told to change.
    expected = by_name(before)
    expected["Sources"]["web"] = dict(expected["Sources"]["web"], Description="new text")
    expected["Sources"]["metrics"] = {"Name": "metrics", "Peer": "edge-p1", "Action": "allow",
                                      "Precedence": expected["Sources"]["web"]["Precedence"], "Type": "consul"}
    assert json.dumps(after, sort_keys=True) == json.dumps(expected, sort_keys=True), (after, expected)
    # The jwt options themselves: set on the entry, removed from the permission.
    run = ansible(adhoc("service_intentions", {"url": url, "name": "edge-api", "jwt": {}, "sources": [
        {"name": "*", "action": "deny", "description": "default deny"}]}), json_output=True)
    assert run.rc == 0 and result_of(run)["changed"], run.output[-2000:]
    assert "JWT" not in get_entry(url, "service-intentions", "edge-api")
    rerun = ansible(adhoc("service_intentions", {"url": url, "name": "edge-api", "jwt": {}, "sources": [
        {"name": "*", "action": "deny", "description": "default deny"}]}), json_output=True)
    assert result_of(rerun)["changed"] is False


@pytest.mark.parametrize("change", ["match", "allow"])
def test_intentions_refuse_to_drop_a_permission_jwt_no_given_permission_keeps(ansible, entries, change):
    url, dummy = entries
    put_entry(url, {"Kind": "service-intentions", "Name": "edge-api", "Sources": [
        {"Name": "web", "Peer": "edge-p1", "Permissions": [
            {"Action": "allow", "JWT": JWT, "HTTP": {"PathPrefix": "/admin"}}]}]})
    before = get_entry(url, "service-intentions", "edge-api")
    changed_match = [{"action": "allow", "http": {"path_prefix": "/admin/v2"}}]
    if change == "match":
        web = {"name": "web", "peer": "edge-p1", "permissions": changed_match}
    else:
        web = {"name": "web", "peer": "edge-p1", "action": "allow"}
    run = ansible(adhoc("service_intentions", {"url": url, "name": "edge-api", "sources": [web]}), json_output=True)
    msg = result_of(run).get("msg", "")
    assert run.rc != 0 and "Permissions[0].JWT (providers 'edge-okta')" in msg and "nothing was written" in msg, \
        run.output[-2000:]
    assert get_entry(url, "service-intentions", "edge-api") == before  # ModifyIndex too: no write
    # Said explicitly, the requirement goes: jwt: {} on the permission (for allow, first, as the message says).
    explicit = {"name": "web", "peer": "edge-p1", "permissions": [dict(changed_match[0], jwt={})]}
    steps = [explicit] if change == "match" else [explicit, web]
    for step in steps:
        run = ansible(adhoc("service_intentions", {"url": url, "name": "edge-api", "sources": [step]}),
                      json_output=True)
        assert run.rc == 0 and result_of(run)["changed"], run.output[-2000:]
    src = get_entry(url, "service-intentions", "edge-api")["Sources"][0]
    assert "JWT" not in json.dumps(src), src
    if change == "match":
        assert src["Permissions"][0]["HTTP"] == {"PathPrefix": "/admin/v2"}, src
    else:
        assert src["Action"] == "allow" and "Permissions" not in src, src


def test_exported_services_keep_every_field(ansible, lab):
    url = lab["CLUSTER1_URL"]
    consul(url, "DELETE", "/v1/config/exported-services/default")
    put_entry(url, {"Kind": "exported-services", "Name": "default", "Meta": {"owner": "team-a"},
                    "Services": [{"Name": "web", "Consumers": [{"Peer": "edge-p1"}, {"Peer": "edge-p2"}]},
                                 {"Name": "*", "Consumers": [{"Peer": "edge-p3"}]}]})
    try:
        before = drop_server_fields(get_entry(url, "exported-services", "default"))
        run = ansible(adhoc("exported_services", {"url": url, "services": [
            {"name": "api", "consumers": [{"peer": "edge-p1"}]}]}), json_output=True)
        assert run.rc == 0 and result_of(run)["changed"], run.output[-2000:]
        after = drop_server_fields(get_entry(url, "exported-services", "default"))
        assert after["Meta"] == before["Meta"]
        # The module writes services sorted by name; every one that was there is there unchanged.
        kept = sorted((s for s in after["Services"] if s["Name"] != "api"), key=lambda s: s["Name"])
        assert kept == sorted(before["Services"], key=lambda s: s["Name"])
    finally:
        consul(url, "DELETE", "/v1/config/exported-services/default")


def test_resolver_keeps_every_field_it_does_not_manage(ansible, entries):
    url, dummy = entries
    full = {"Kind": "service-resolver", "Name": "edge-api", "Meta": {"owner": "team-a"},
            "ConnectTimeout": "5s", "RequestTimeout": "20s", "DefaultSubset": "v1",
            "Subsets": {"v1": {"Filter": "Service.Meta.version == v1", "OnlyPassing": True}},
            "Failover": {"*": {"Targets": [{"Peer": "edge-p1"}]}},
            "LoadBalancer": {"Policy": "ring_hash", "RingHashConfig": {"MinimumRingSize": 1024},
                             "HashPolicies": [{"Field": "header", "FieldValue": "x-user", "Terminal": True}]}}
    # (PrioritizeByLocality and failover Policy are Enterprise: CE refuses them; unit tests cover keeping them.)
    put_entry(url, full)
    before = drop_server_fields(get_entry(url, "service-resolver", "edge-api"))
    args = {
        "url": url, "name": "edge-api", "connect_timeout": "7s", "request_timeout": "20s", "default_subset": "v1",
        "subsets": [{"name": "v1", "filter": "Service.Meta.version == v1", "only_passing": True}],
        "failover": [{"subset": "*", "targets": [{"peer": "edge-p1"}]}],
        "load_balancer": {"policy": "ring_hash", "ring_hash_config": {"minimum_ring_size": 1024},
                          "hash_policies": [{"field": "header", "field_value": "x-user", "terminal": True}]}}
    run = ansible(adhoc("service_resolver", args), json_output=True)
    res = result_of(run)
    assert run.rc == 0 and res["changed"], res
    after = drop_server_fields(get_entry(url, "service-resolver", "edge-api"))
    assert after.pop("ConnectTimeout") == "7s" and before.pop("ConnectTimeout") == "5s"
    assert after == before


# --- a lost answer to a CAS write --------------------------------------------------------------------

def test_a_cas_write_whose_answer_is_lost_is_reported_changed(ansible, lab, counting_proxy):
    url = lab["CLUSTER1_URL"]
    consul(url, "DELETE", "/v1/config/exported-services/default")
    # The first PUT /v1/config reaches Consul, which applies it; its answer never comes back.
    proxy = counting_proxy(url, drop_answer=lambda method, path: method == "PUT" and path == "/v1/config"
                           and proxy.dropped == 0)
    try:
        run = ansible(adhoc("exported_services", {"url": proxy.url, "services": [
            {"name": "lost", "consumers": [{"peer": "edge-p1"}]}]}), json_output=True)
        res = result_of(run)
        assert proxy.dropped == 1
        assert run.rc == 0 and res["changed"] is True and res["operation"] == "create", res
        # The write was not sent twice: the re-read found it applied.
        assert proxy.counts[("PUT", "/v1/config")] == 1, dict(proxy.counts)
        assert get_entry(url, "exported-services", "default")["Services"] == [
            {"Name": "lost", "Consumers": [{"Peer": "edge-p1"}]}]
    finally:
        consul(url, "DELETE", "/v1/config/exported-services/default")


# --- an acceptor that cannot be reached ----------------------------------------------------------------

def token_with_addresses(token, addresses):
    fields = json.loads(base64.b64decode(token + "=" * (-len(token) % 4)))
    fields["ServerAddresses"] = addresses
    return base64.b64encode(json.dumps(fields).encode()).decode()


# What the message says of each kind of unreachable address (the causes _peering.explain_unreachable names).
CAUSE_WORDS = {"refused": "connection refused", "silent": "timed out"}


@pytest.mark.parametrize("kind", ["refused", "silent"])
def test_establish_with_an_unreachable_acceptor_says_so_briefly(ansible, lab, tmp_path, kind):
    acc, dial = lab["CLUSTER1_URL"], lab["CLUSTER2_URL"]
    status, body = consul(acc, "POST", "/v1/peering/token", {"PeerName": "edge-unreach"})
    assert status == 200, body
    listener = None
    if kind == "refused":
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        address = "127.0.0.1:%d" % sock.getsockname()[1]
        sock.close()  # nothing listens there now
    else:
        # Accepts TCP (the kernel's backlog) but never answers the TLS handshake.
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        address = "127.0.0.1:%d" % listener.getsockname()[1]
    token = token_with_addresses(body["PeeringToken"], [address])
    vars_file = tmp_path / "tok.json"
    vars_file.write_text(json.dumps({"tok": token}))
    start = time.monotonic()
    try:
        run = ansible(["localhost", "-m", "seed.consul_peering.peering_establish", "-e", "@" + str(vars_file), "-a",
                       '{"url": "%s", "peer_name": "edge-acc", "peering_token": "{{ tok }}"}' % dial], json_output=True)
        seconds = time.monotonic() - start
        res = result_of(run)
        msg = res.get("msg", "")
        print("%s acceptor: %.1f s, %d characters: %s" % (kind, seconds, len(msg), msg))
        assert run.rc != 0 and address in msg, res
        # The cause itself, in the module's own words (Consul's quoted error may say it too): what an
        # operator checks first.
        assert CAUSE_WORDS[kind] in msg.split("(Consul said")[0], msg
        assert len(msg) < 1500 and msg.count("rpc error") <= 1 and "errors occurred" not in msg, msg
        assert "ACL" not in msg and "overloaded" not in msg, msg
        # The debris of the failed exchange is gone: no PENDING peering left on the dialer.
        assert consul(dial, path="/v1/peering/edge-acc")[0] == 404
    finally:
        if listener:
            listener.close()
        consul(acc, "DELETE", "/v1/peering/edge-unreach")
        delete_all_peerings(dial)
