# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Bad-input matrix: every module and the role's argument specs, through Ansible, on the real lab.

Every case must fail with a message that names the problem, without a Python
traceback, and leave Consul as it was: the peerings (ID, state, ModifyIndex)
and the config entries (ModifyIndex) are compared before and after.
"""

from __future__ import annotations

import base64
import json
import os
import re
import time

import pytest
import yaml

from conftest import ROOT, consul, wait_for

pytest_plugins = ["reliability_plugin"]

PREFIX = "bi-"
# The lock key the cluster_lock cases name (never taken: every case fails before any request).
LOCK_KEY = "bi-lock/run"
MB10 = 10 * 1024 * 1024


def b64(obj):
    text = obj if isinstance(obj, str) else json.dumps(obj)
    return base64.b64encode(text.encode()).decode()


FAKE_TOKEN = b64({"CA": ["-----BEGIN CERTIFICATE-----"], "ServerAddresses": ["127.0.0.1:1"], "ServerName": "server.x",
                  "PeerID": "00000000-0000-0000-0000-000000000001", "EstablishmentSecret": "not-a-secret"})


def truncated(token):
    cut = (len(token) // 2) // 4 * 4
    return token[:cut]


def many_services(n, last_bad):
    services = [{"name": "svc-%05d" % i, "consumers": [{"peer": "bi-c2"}]} for i in range(n)]
    services[-1] = {"name": "svc-last", "consumers": [{"peer": "bi-c2", "partition": "p1"}]} if last_bad else services[-1]
    return services


def many_sources(n):
    sources = [{"name": "caller-%05d" % i, "peer": "bi-c2", "action": "allow"} for i in range(n)]
    return sources + [dict(sources[0], action="deny")]


# (id, module, side, args (dict or callable(baseline) -> dict), expected message regex, (kind, name) touched)
MODULE_CASES = [
    # peering_token
    ("token-name-uppercase", "peering_token", "acc", {"peer_name": "Bad_Name"}, r"not a valid peer name", None),
    ("token-name-64-chars", "peering_token", "acc", {"peer_name": "a" * 64}, r"64 characters long.*at most 63", None),
    ("token-name-empty", "peering_token", "acc", {"peer_name": ""}, r"peer_name must not be empty", None),
    ("token-name-list", "peering_token", "acc", {"peer_name": ["a", "b"]}, r"not a valid peer name", None),
    ("token-unknown-key", "peering_token", "acc", {"peer_name": "bi-new", "peer": "x"},
     r"Unsupported parameters .*: peer\b", None),
    ("token-state-invalid", "peering_token", "acc", {"peer_name": "bi-new", "state": "gone"},
     r"value of state must be one of: present, absent", None),
    ("token-regenerate-not-bool", "peering_token", "acc", {"peer_name": "bi-new", "regenerate": "maybe"},
     r"regenerate.*(bool|boolean)", None),
    ("token-wait-timeout-not-int", "peering_token", "acc", {"peer_name": "bi-new", "wait_timeout": "soon"},
     r"wait_timeout.*int", None),
    ("token-meta-not-dict", "peering_token", "acc", {"peer_name": "bi-new", "meta": "env"}, r"meta.*dict", None),
    ("token-external-address-no-port", "peering_token", "acc",
     {"peer_name": "bi-new", "server_external_addresses": ["not an address"]},
     r"server_external_addresses\[0\].*host:port", None),
    ("token-regenerate-on-dialer-name", "peering_token", "dial", {"peer_name": "bi-c1", "regenerate": True},
     r"already exists on this cluster as the dialing side", None),
    ("token-url-ftp", "peering_token", "acc", {"peer_name": "bi-new", "url": "ftp://127.0.0.1:1"},
     r"only http:// and https://", None),
    ("token-url-port-out-of-range", "peering_token", "acc", {"peer_name": "bi-new", "url": "http://127.0.0.1:99999"},
     r"invalid port", None),
    ("token-timeout-negative", "peering_token", "acc", {"peer_name": "bi-new", "timeout": -1},
     r"timeout must be a positive, finite number", None),
    ("token-partition-on-ce", "peering_token", "acc", {"peer_name": "bi-new", "partition": "team-a"},
     r"needs Consul Enterprise", None),
    # peering_establish
    ("establish-token-not-base64", "peering_establish", "dial", {"peer_name": "bi-new", "peering_token": "not a token!"},
     r"peering_token is not base64", None),
    ("establish-token-truncated", "peering_establish", "dial",
     lambda b: {"peer_name": "bi-new", "peering_token": truncated(b["self_token"])}, r"truncated or corrupt", None),
    ("establish-token-json-list", "peering_establish", "dial", {"peer_name": "bi-new", "peering_token": b64([1, 2])},
     r"does not decode to a JSON object", None),
    ("establish-token-missing-fields", "peering_establish", "dial",
     {"peer_name": "bi-new", "peering_token": b64({"CA": None, "PeerID": "x"})},
     r"missing ServerAddresses, ServerName, EstablishmentSecret", None),
    ("establish-token-addresses-not-list", "peering_establish", "dial",
     {"peer_name": "bi-new", "peering_token": b64({"ServerAddresses": "127.0.0.1:1", "ServerName": "s", "PeerID": "p",
                                                   "EstablishmentSecret": "e"})},
     r"malformed ServerAddresses", None),
    ("establish-token-10MB", "peering_establish", "dial", {"peer_name": "bi-new", "peering_token": "A" * MB10},
     r"peering_token is %d bytes long" % MB10, None),
    ("establish-token-empty", "peering_establish", "dial", {"peer_name": "bi-new", "peering_token": ""},
     r"peering_token is empty", None),
    ("establish-present-without-token", "peering_establish", "dial", {"peer_name": "bi-new"},
     r"state is present but all of the following are missing: peering_token", None),
    ("establish-on-acceptor-name", "peering_establish", "acc", {"peer_name": "bi-c2", "peering_token": FAKE_TOKEN},
     r"already exists on this cluster as the accepting side", None),
    ("establish-token-from-same-cluster", "peering_establish", "dial",
     lambda b: {"peer_name": "bi-selfdial", "peering_token": b["self_token"]}, r"generated by this same cluster", None),
    ("establish-wait-not-bool", "peering_establish", "dial",
     {"peer_name": "bi-new", "peering_token": FAKE_TOKEN, "wait": "sometimes"}, r"wait.*(bool|boolean)", None),
    ("establish-meta-list", "peering_establish", "dial",
     {"peer_name": "bi-new", "peering_token": FAKE_TOKEN, "meta": ["a"]}, r"meta.*dict", None),
    # peering_info
    ("info-name-invalid", "peering_info", "acc", {"peer_name": "UPPER"}, r"not a valid peer name", None),
    ("info-wait-for-without-name", "peering_info", "acc", {"wait_for": "active"},
     r"wait_for is active but any of the following are missing: peer_name, peers", None),
    ("info-wait-for-invalid", "peering_info", "acc", {"peer_name": "bi-c2", "wait_for": "inactive"},
     r"value of wait_for must be one of: active", None),
    ("info-client-cert-without-key", "peering_info", "acc", {"client_cert": "/nonexistent/cert.pem"},
     r"client_cert and client_key must be given together", None),
    # exported_services
    ("exports-services-string", "exported_services", "acc", {"services": "backend"},
     # ansible-core 2.19's own element-conversion message does not name the option (see docs/decisions.md).
     r"dictionary requested, could not parse JSON", ("exported-services", "default")),
    ("exports-service-without-name", "exported_services", "acc", {"services": [{"consumers": [{"peer": "bi-c2"}]}]},
     r"missing required arguments: name", ("exported-services", "default")),
    ("exports-consumer-two-kinds", "exported_services", "acc",
     {"services": [{"name": "backend", "consumers": [{"peer": "bi-c2", "partition": "p1"}]}]},
     r"services\[0\]\.consumers\[0\]", ("exported-services", "default")),
    ("exports-consumer-empty", "exported_services", "acc", {"services": [{"name": "backend", "consumers": [{}]}]},
     r"services\[0\]\.consumers\[0\]", ("exported-services", "default")),
    ("exports-consumers-empty-list", "exported_services", "acc", {"services": [{"name": "backend", "consumers": []}]},
     r"services\[0\]\.consumers: at least one consumer", ("exported-services", "default")),
    ("exports-consumer-peer-invalid", "exported_services", "acc",
     {"services": [{"name": "backend", "consumers": [{"peer": "Bad_Peer"}]}]}, r"not a valid peer name",
     ("exported-services", "default")),
    ("exports-service-unknown-key", "exported_services", "acc",
     {"services": [{"name": "backend", "consumers": [{"peer": "bi-c2"}], "peers": ["bi-c2"]}]},
     r"Unsupported parameters.*peers", ("exported-services", "default")),
    ("exports-exclusive-with-absent", "exported_services", "acc",
     {"services": [{"name": "backend", "consumers": [{"peer": "bi-c2"}]}], "exclusive": True, "state": "absent"},
     r"exclusive", ("exported-services", "default")),
    ("exports-10000-services-last-invalid", "exported_services", "acc", {"services": many_services(10000, True)},
     r"services\[9999\]\.consumers\[0\]", ("exported-services", "default")),
    ("exports-name-partition-on-ce", "exported_services", "acc",
     {"name": "team", "services": [{"name": "backend", "consumers": [{"peer": "bi-c2"}]}]},
     r"needs Consul Enterprise", ("exported-services", "default")),
    # service_intentions
    ("intentions-no-name", "service_intentions", "acc", {"sources": [{"name": "f", "peer": "bi-c2", "action": "allow"}]},
     r"missing required arguments: name", ("service-intentions", "backend")),
    ("intentions-no-sources", "service_intentions", "acc", {"name": "backend"},
     r"missing: sources", ("service-intentions", "backend")),
    ("intentions-action-invalid", "service_intentions", "acc",
     {"name": "backend", "sources": [{"name": "f", "peer": "bi-c2", "action": "permit"}]},
     r"action.*one of: allow, deny", ("service-intentions", "backend")),
    ("intentions-action-and-permissions", "service_intentions", "acc",
     {"name": "backend", "sources": [{"name": "f", "peer": "bi-c2", "action": "allow",
                                      "permissions": [{"action": "allow", "http": {"path_prefix": "/"}}]}]},
     r"sources\[0\]", ("service-intentions", "backend")),
    ("intentions-neither-action-nor-permissions", "service_intentions", "acc",
     {"name": "backend", "sources": [{"name": "f", "peer": "bi-c2"}]}, r"sources\[0\]", ("service-intentions", "backend")),
    ("intentions-two-path-matches", "service_intentions", "acc",
     {"name": "backend", "sources": [{"name": "f", "peer": "bi-c2", "permissions": [
         {"action": "allow", "http": {"path_exact": "/a", "path_prefix": "/b"}}]}]},
     r"sources\[0\]\.permissions\[0\]", ("service-intentions", "backend")),
    ("intentions-header-two-matches", "service_intentions", "acc",
     {"name": "backend", "sources": [{"name": "f", "peer": "bi-c2", "permissions": [
         {"action": "allow", "http": {"path_prefix": "/", "header": [{"name": "x", "exact": "a", "prefix": "b"}]}}]}]},
     r"sources\[0\]\.permissions\[0\]", ("service-intentions", "backend")),
    ("intentions-peer-invalid", "service_intentions", "acc",
     {"name": "backend", "sources": [{"name": "f", "peer": "-bad-", "action": "allow"}]}, r"not a valid peer name",
     ("service-intentions", "backend")),
    ("intentions-exclusive-with-absent", "service_intentions", "acc",
     {"name": "backend", "exclusive": True, "state": "absent", "sources": [{"name": "frontend", "peer": "bi-c2"}]},
     r"exclusive", ("service-intentions", "backend")),
    ("intentions-namespace-on-ce", "service_intentions", "acc",
     {"name": "backend", "namespace": "ns1", "sources": [{"name": "f", "peer": "bi-c2", "action": "allow"}]},
     r"needs Consul Enterprise", ("service-intentions", "backend")),
    ("intentions-10001-sources-duplicate", "service_intentions", "acc", {"name": "backend", "sources": many_sources(10000)},
     r"sources\[10000\].*listed twice", ("service-intentions", "backend")),
]

# Secrets under every input (issue 22): refused before any request, never echoing the secret.
SECRET_CASES = [
    ("token-with-newline-inside", "peering_info", "acc", {"token": "3f1c7a52-0d4e\n4c59-9b7e-5a1d2c3b4e5f"},
     r"ACL token from the token option contains a character that cannot be sent", None),
    ("token-with-control-character", "peering_info", "acc", {"token": "3f1c7a52-0d4e\u00074c59-9b7e-5a1d2c3b4e5f"},
     r"cannot be sent in the X-Consul-Token header", None),
    ("token-only-whitespace", "peering_info", "acc", {"token": " \n"}, r"token option holds only whitespace", None),
    ("url-with-token-userinfo", "peering_info", "acc",
     lambda b: {"url": b["acc"].replace("://", "://3f1c7a52-0d4e-4c59-9b7e-5a1d2c3b4e5f@")},
     r"user information .* before the host", None),
    ("url-with-user-password", "exported_services", "acc",
     lambda b: {"url": b["acc"].replace("://", "://admin:hunter2hunter2@"),
                "services": [{"name": "backend", "consumers": [{"peer": "bi-c2"}]}]},
     r"user information", ("exported-services", "default")),
    ("http-url-with-ca-path", "peering_info", "acc", {"ca_path": "/etc/hostname"},
     r"ca_path is set, but the Consul address .* is plain http://", None),
    ("http-url-with-tls-server-name", "peering_info", "acc", {"tls_server_name": "server.dc1.consul"},
     r"tls_server_name is set, but .* plain http://", None),
    ("intentions-name-dotdot", "service_intentions", "acc",
     {"name": "..", "sources": [{"name": "frontend", "peer": "bi-c2", "action": "allow"}]},
     r"name '\.\.' cannot be used.*change the request path", ("service-intentions", "backend")),
    ("intentions-name-dot-absent", "service_intentions", "acc", {"name": ".", "state": "absent"},
     r"name '\.' cannot be used", ("service-intentions", "backend")),
    ("intentions-source-dotdot", "service_intentions", "acc",
     {"name": "backend", "sources": [{"name": "..", "action": "allow"}]},
     r"sources\[0\]\.name '\.\.' cannot be used", ("service-intentions", "backend")),
    ("exports-service-dot", "exported_services", "acc",
     {"services": [{"name": ".", "consumers": [{"peer": "bi-c2"}]}]},
     r"services\[0\]\.name '\.' cannot be used", ("exported-services", "default")),
    ("info-expect-services-dotdot", "peering_info", "dial", {"peer_name": "bi-c1", "expect_services": [".."]},
     r"expect_services\[0\] '\.\.' cannot be used", None),
]
MODULE_CASES += SECRET_CASES
# Exact answers at the edges (issue 15): a URL with a path or query, names with a trailing newline,
# numbers that are not numbers, nested meta.
EDGE_CASES = [
    ("url-with-v1-path-%s" % module, module, side, (lambda b, side=side, args=args: dict(args, url=b[side] + "/v1")),
     r"path, query or fragment", touched)
    for module, side, args, touched in (
        ("peering_token", "acc", {"peer_name": "bi-c2", "state": "absent"}, None),
        ("peering_establish", "dial", {"peer_name": "bi-c1", "state": "absent"}, None),
        ("peering_info", "acc", {"peer_name": "bi-c2"}, None),
        ("exported_services", "acc", {"state": "absent"}, ("exported-services", "default")),
        ("service_intentions", "acc", {"name": "backend", "state": "absent"}, ("service-intentions", "backend")),
        ("service_resolver", "acc", {"name": "backend", "state": "absent"}, None),
        ("cluster_lock", "acc", {"key": LOCK_KEY, "holder": "bad input", "wait_timeout": 0}, ("kv", LOCK_KEY)),
    )
] + [
    ("url-with-dc-query", "peering_info", "acc", lambda b: {"url": b["acc"] + "?dc=dc1"}, r"path, query or fragment",
     None),
    ("token-name-trailing-newline", "peering_token", "acc", {"peer_name": "bi-new\n"}, r"not a valid peer name", None),
    ("info-name-trailing-newline", "peering_info", "acc", {"peer_name": "bi-c2\n"}, r"not a valid peer name", None),
    ("exports-consumer-trailing-newline", "exported_services", "acc",
     {"services": [{"name": "backend", "consumers": [{"peer": "bi-c2\n"}]}]}, r"not a valid peer name",
     ("exported-services", "default")),
    ("timeout-nan", "peering_info", "acc", {"timeout": "nan"}, r"positive, finite", None),
    ("timeout-inf", "peering_info", "acc", {"timeout": "inf"}, r"positive, finite", None),
    ("wait-timeout-negative", "peering_token", "acc", {"peer_name": "bi-new", "wait_timeout": -1},
     r"wait_timeout must be 0 or more", None),
    ("meta-nested-dict", "peering_token", "acc", {"peer_name": "bi-new", "meta": {"team": {"name": "x"}}},
     r"meta\.team is a dict; peering meta values are strings", None),
    ("url-unix-socket", "peering_info", "acc", {"url": "unix:///var/run/consul.sock"}, r"unix socket", None),
    ("intentions-jwt-provider-twice", "service_intentions", "acc",
     {"name": "backend", "sources": [{"name": "frontend", "peer": "bi-c2", "action": "allow"}],
      "jwt": {"providers": [{"name": "okta"}, {"name": "okta"}]}}, r"provider 'okta' is listed twice",
     ("service-intentions", "backend")),
]
MODULE_CASES += EDGE_CASES
RESOLVER_CASES_22 = [
    ("resolver-name-dotdot", "service_resolver", "acc", {"name": ".."}, r"name '\.\.' cannot be used", None),
    ("resolver-name-dot-absent", "service_resolver", "acc", {"name": ".", "state": "absent"},
     r"name '\.' cannot be used", None),
]

# service_resolver is another developer's work in progress: its cases run only when the module is there.
RESOLVER_CASES = [
    ("resolver-failover-dict", "service_resolver", "acc",
     {"name": "backend", "failover": {"*": {"targets": [{"peer": "bi-c2"}]}}}, r"argument 'failover' is of type dict",
     ("service-resolver", "backend")),
    ("resolver-target-peer-invalid", "service_resolver", "acc",
     {"name": "backend", "failover": [{"targets": [{"peer": "Bad_Peer"}]}]},
     r"failover\[0\]\.targets\[0\]\.peer 'Bad_Peer' is not a valid peer name", ("service-resolver", "backend")),
    ("resolver-redirect-and-failover", "service_resolver", "acc",
     {"name": "backend", "redirect": {"peer": "bi-c2", "service": "backend"},
      "failover": [{"targets": [{"peer": "bi-c2"}]}]}, r"redirect and failover cannot both be set",
     ("service-resolver", "backend")),
    ("resolver-failover-empty-targets", "service_resolver", "acc", {"name": "backend", "failover": [{"targets": []}]},
     r"failover\[0\]: set targets", ("service-resolver", "backend")),
    ("resolver-target-peer-and-datacenter", "service_resolver", "acc",
     {"name": "backend", "failover": [{"targets": [{"peer": "bi-c2", "datacenter": "dc9"}]}]},
     r"set peer or datacenter, not both", ("service-resolver", "backend")),
    ("resolver-connect-timeout-not-duration", "service_resolver", "acc", {"name": "backend", "connect_timeout": "soon"},
     r"connect_timeout: 'soon' is not a duration", ("service-resolver", "backend")),
]
if os.path.exists(os.path.join(ROOT, "plugins", "modules", "service_resolver.py")):
    MODULE_CASES += RESOLVER_CASES + RESOLVER_CASES_22

LONG_NAME = "c" * 64
ROLE_CASES = [
    ("role-state-invalid", {"all": {"cluster_peering_state": "maybe"}}, r"cluster_peering_state.*present, absent"),
    ("role-exports-string", {"acc": {"cluster_peering_exports": "backend"}}, r"cluster_peering_exports"),
    ("role-export-without-name", {"acc": {"cluster_peering_exports": [{"peers": ["cluster-02"]}]}},
     r"missing required arguments: name"),
    ("role-export-unknown-key", {"acc": {"cluster_peering_exports": [{"name": "backend", "consumers": ["x"]}]}},
     r"cluster_peering_exports\.consumers\. Supported parameters include: name, namespace, peers"),
    ("role-wait-timeout-not-int", {"all": {"cluster_peering_wait_timeout": "soon"}}, r"cluster_peering_wait_timeout.*int"),
    ("role-verify-not-bool", {"all": {"cluster_peering_verify": "perhaps"}}, r"cluster_peering_verify.*(bool|boolean)"),
    ("role-intention-action-invalid",
     {"acc": {"cluster_peering_intentions": [{"name": "backend", "sources": [
         {"name": "frontend", "peer": "cluster-02", "action": "permit"}]}]}}, r"action.*allow, deny"),
    ("role-intention-source-without-peer",
     {"acc": {"cluster_peering_intentions": [{"name": "backend", "sources": [{"name": "frontend"}]}]}},
     r"missing required arguments: peer"),
    ("role-intentions-empty-sources", {"acc": {"cluster_peering_intentions": [{"name": "backend"}]}},
     r"missing required arguments: sources"),
    ("role-peer-name-64-chars", {"acc": {"cluster_peering_name": LONG_NAME}}, r"not a valid peer name"),
    ("role-duplicate-peer-names", {"acc": {"cluster_peering_name": "same"}, "dial": {"cluster_peering_name": "same"}},
     r"two clusters share a peer name"),
    # A host in both groups is allowed since the reconciler (it accepts some peerings and dials others);
    # a typo in an export's peer is refused instead.
    ("role-export-peer-typo", {"acc": {"cluster_peering_exports": [{"name": "backend", "peers": ["cluster-2"]}]}},
     r"names 'cluster-2', which is not a peer of this cluster"),
]


def snapshot(url, touched=None):
    """Peerings (ID, state, ModifyIndex) and config entries (ModifyIndex) of one cluster.

    touched: a config entry (kind, name), or ("kv", key) for a KV key (the lock's), also compared.
    """
    status, peerings = consul(url, path="/v1/peerings")
    snap = {"peerings": sorted((p["Name"], p["ID"], p["State"], p["ModifyIndex"]) for p in peerings or [])}
    for kind in ("exported-services", "service-intentions", "service-resolver"):
        status, entries = consul(url, path="/v1/config/" + kind)
        snap[kind] = sorted((e["Name"], e["ModifyIndex"]) for e in entries or [])
    if touched and touched[0] == "kv":
        status, entries = consul(url, path="/v1/kv/" + touched[1])
        snap["touched"] = (status, entries[0].get("ModifyIndex") if isinstance(entries, list) and entries else None)
    elif touched:
        status, entry = consul(url, path="/v1/config/%s/%s" % touched)
        snap["touched"] = (status, entry.get("ModifyIndex") if isinstance(entry, dict) else None)
    return snap


def cleanup(acc, dial):
    for url in (acc, dial):
        for p in consul(url, path="/v1/peerings")[1] or []:
            if p["Name"].startswith(PREFIX):
                consul(url, "DELETE", "/v1/peering/" + p["Name"])
        wait_for(lambda: not [p for p in consul(url, path="/v1/peerings")[1] or [] if p["Name"].startswith(PREFIX)],
                 timeout=60)
    consul(acc, "DELETE", "/v1/config/exported-services/default")
    consul(acc, "DELETE", "/v1/config/service-intentions/backend")


@pytest.fixture(scope="module")
def baseline(lab):
    """Known state to protect: an ACTIVE peering, a PENDING one on each side, an export and an intention."""
    acc, dial = lab["ACCEPTOR_URL"], lab["DIALER_URL"]
    cleanup(acc, dial)
    assert consul(acc, "PUT", "/v1/agent/service/register", {"Name": "backend", "Port": 9090})[0] == 200
    assert consul(acc, "PUT", "/v1/config", {"Kind": "exported-services", "Name": "default", "Services": [
        {"Name": "backend", "Consumers": [{"Peer": "bi-c2"}]}]})[0] == 200
    assert consul(acc, "PUT", "/v1/config", {"Kind": "service-intentions", "Name": "backend", "Sources": [
        {"Name": "frontend", "Peer": "bi-c2", "Action": "allow"}]})[0] == 200
    status, body = consul(acc, "POST", "/v1/peering/token", {"PeerName": "bi-c2"})
    assert status == 200, body
    status, body = consul(dial, "POST", "/v1/peering/establish", {"PeerName": "bi-c1", "PeeringToken": body["PeeringToken"]})
    assert status == 200, body
    assert wait_for(lambda: consul(dial, path="/v1/peering/bi-c1")[1].get("State") == "ACTIVE"
                    and consul(acc, path="/v1/peering/bi-c2")[1].get("State") == "ACTIVE", timeout=60)
    assert consul(acc, "POST", "/v1/peering/token", {"PeerName": "bi-pending"})[0] == 200
    status, body = consul(dial, "POST", "/v1/peering/token", {"PeerName": "bi-self"})
    assert status == 200, body
    # Records settle (the acceptor learns the dialer's details) before the first snapshot.
    time.sleep(2)
    yield {"acc": acc, "dial": dial, "self_token": body["PeeringToken"]}
    cleanup(acc, dial)
    consul(acc, "PUT", "/v1/agent/service/deregister/backend")


def failed_results(run):
    out = []
    for play in run.json()["plays"]:
        for task in play["tasks"]:
            for host, res in task["hosts"].items():
                if res.get("failed"):
                    out.append((task["task"]["name"], host, res))
    return out


def check_clean_failure(run, expect):
    """The run failed, a failed task's plain msg names the problem, and there is no traceback."""
    assert run.rc != 0, run.output[-3000:]
    assert "Traceback" not in run.output, run.output[-6000:]
    failures = failed_results(run)
    assert failures, run.output[-3000:]
    msgs = [res.get("msg") for dummy, dummy2, res in failures]
    for dummy, dummy2, res in failures:
        assert isinstance(res.get("msg"), str) and res["msg"], res
        # ansible-core 2.19 adds exception="(traceback unavailable)" to every failure; a real one has a traceback.
        assert "Traceback" not in str(res.get("exception", "")) and "module_stderr" not in res, res
    msg = " | ".join(msgs)
    assert re.search(expect, msg), (expect, msg)
    return msg


def write_playbook(tmp_path, task, hosts="localhost"):
    play = [{"name": "bad input", "hosts": hosts, "gather_facts": False, "tasks": [task]}]
    path = tmp_path / "case.yml"
    path.write_text(json.dumps(play))
    return str(path)


@pytest.mark.parametrize("case", MODULE_CASES, ids=[c[0] for c in MODULE_CASES])
def test_module_bad_input(case, baseline, ansible, tmp_path, reliability):
    case_id, module, side, args, expect, touched = case
    args = dict(args(baseline) if callable(args) else args)
    url = baseline[side]
    args.setdefault("url", url)
    task = {"name": case_id, "seed.consul_peering." + module: args}
    before = {u: snapshot(u, touched) for u in (baseline["acc"], baseline["dial"])}
    start = time.monotonic()
    run = ansible([write_playbook(tmp_path, task), "-i", "localhost,", "-c", "local"], playbook=True, json_output=True)
    seconds = time.monotonic() - start
    try:
        msg = check_clean_failure(run, expect)
        after = {u: snapshot(u, touched) for u in (baseline["acc"], baseline["dial"])}
        assert after == before, "Consul's state changed on bad input %s" % case_id
    except AssertionError as e:
        reliability.add("bad-input", "%s: `%s`" % (case_id, module), "**FAIL**", str(e), seconds)
        raise
    reliability.add("bad-input", "%s: `%s`" % (case_id, module), "failed cleanly, no write", msg, seconds)


def role_inventory(tmp_path, baseline, overrides):
    acc_host = {"cluster_peering_url": baseline["acc"]}
    dial_host = {"cluster_peering_url": baseline["dial"]}
    acc_host.update(overrides.get("acc", {}))
    dial_host.update(overrides.get("dial", {}))
    group_vars = {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"}
    group_vars.update(overrides.get("all", {}))
    dialers = {"cluster-02": dial_host}
    if overrides.get("both"):
        dialers["cluster-01"] = {}
    inv = {"all": {"vars": group_vars, "children": {
        "consul_acceptors": {"hosts": {"cluster-01": acc_host}},
        "consul_dialers": {"hosts": dialers}}}}
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(inv))
    return str(path)


@pytest.mark.parametrize("case", ROLE_CASES, ids=[c[0] for c in ROLE_CASES])
def test_role_bad_inventory_vars(case, baseline, ansible, tmp_path, reliability):
    case_id, overrides, expect = case
    inv = role_inventory(tmp_path, baseline, overrides)
    before = {u: snapshot(u) for u in (baseline["acc"], baseline["dial"])}
    start = time.monotonic()
    run = ansible([os.path.join(ROOT, "playbooks", "peer_clusters.yml"), "-i", inv], playbook=True, json_output=True)
    seconds = time.monotonic() - start
    try:
        msg = check_clean_failure(run, expect)
        assert {u: snapshot(u) for u in (baseline["acc"], baseline["dial"])} == before, \
            "Consul's state changed on bad inventory %s" % case_id
    except AssertionError as e:
        reliability.add("bad-input", "%s: role" % case_id, "**FAIL**", str(e), seconds)
        raise
    reliability.add("bad-input", "%s: role" % case_id, "failed cleanly, no write", msg, seconds)
