# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""service_intentions through its real main(), with Consul's HTTP API stubbed."""

from __future__ import annotations

from ansible_collections.seed.consul_peering.plugins.modules import service_intentions

from ..peering_stubs import FakeSession, Resp, ok, run

PATH = "/v1/config/service-intentions/api"
MISSING = Resp(404, text='Config entry not found for "service-intentions" / "api"')

# As Consul answers: sorted by precedence, with computed fields.
STORED = {
    "Kind": "service-intentions", "Name": "api",
    "Sources": [
        {"Name": "web", "Peer": "cluster-02", "Precedence": 9, "Type": "consul", "Permissions": [
            {"Action": "allow", "HTTP": {"PathRegex": "/v[0-9]+/.*", "Methods": ["GET", "POST"],
                                         "Header": [{"Name": "x-a", "Exact": "1"},
                                                    {"Name": "x-b", "Present": True, "Invert": True}]}}]},
        {"Name": "*", "Action": "deny", "Precedence": 8, "Type": "consul"},
    ],
    "Hash": 5, "CreateIndex": 20, "ModifyIndex": 21,
}

SOURCES = [
    {"name": "*", "action": "deny"},
    {"name": "web", "peer": "cluster-02", "permissions": [
        {"action": "allow", "http": {"path_regex": "/v[0-9]+/.*", "methods": ["post", "get"],
                                     "header": [{"name": "x-b", "present": True, "invert": True},
                                                {"name": "x-a", "exact": "1"}]}}]},
]


def test_second_run_against_what_consul_stored_is_one_get(capsys):
    session = FakeSession(("GET", PATH, ok(STORED)))
    rc, result, _out = run(service_intentions, {"name": "api", "sources": SOURCES}, session, capsys, diff=True)
    assert rc == 0 and not result["changed"], result
    assert session.methods() == ["GET"]
    assert result["diff"]["before"] == result["diff"]["after"]


def test_create_converts_to_consul_fields(capsys):
    session = FakeSession(("GET", PATH, MISSING), ("PUT", "/v1/config", ok(True)), ("GET", PATH, ok(STORED)))
    rc, result, _out = run(service_intentions, {"destination": "api", "sources": SOURCES}, session, capsys)
    assert rc == 0 and result["operation"] == "create"
    put = session.calls[1]
    assert put.params["cas"] == "0"
    assert put.body == {"Kind": "service-intentions", "Name": "api", "Sources": [
        {"Name": "*", "Action": "deny"},
        {"Name": "web", "Peer": "cluster-02", "Permissions": [
            {"Action": "allow", "HTTP": {"PathRegex": "/v[0-9]+/.*", "Methods": ["POST", "GET"],
                                         "Header": [{"Name": "x-b", "Present": True, "Invert": True},
                                                    {"Name": "x-a", "Exact": "1"}]}}]},
    ]}


def test_merge_replaces_same_identity_and_drops_computed_fields(capsys):
    session = FakeSession(("GET", PATH, ok(STORED)), ("PUT", "/v1/config", ok(True)), ("GET", PATH, ok(STORED)))
    rc, result, _out = run(service_intentions, {"name": "api", "sources": [
        {"name": "web", "peer": "cluster-02", "action": "deny"}]}, session, capsys)
    assert rc == 0 and result["operation"] == "update"
    put = session.calls[1]
    assert put.params["cas"] == "21"
    assert put.body["Sources"] == [{"Name": "web", "Peer": "cluster-02", "Action": "deny"},
                                   {"Name": "*", "Action": "deny"}]
    assert "Hash" not in put.body and "ModifyIndex" not in put.body


def test_l7_on_tcp_destination_explains_the_fix(capsys):
    text = 'service "api" has protocol "tcp", which is incompatible with L7 intentions permissions'
    session = FakeSession(("GET", PATH, MISSING), ("PUT", "/v1/config", Resp(500, text=text)))
    rc, result, _out = run(service_intentions, {"name": "api", "sources": SOURCES}, session, capsys)
    assert rc == 1
    assert result["msg"].startswith("sources[1].permissions: Consul refused L7 permissions for destination 'api': " + text)
    assert "service-defaults" in result["msg"]


def test_absent_without_sources_deletes_the_entry(capsys):
    session = FakeSession(("GET", PATH, ok(STORED)), ("DELETE", PATH, ok(True)))
    rc, result, _out = run(service_intentions, {"name": "api", "state": "absent"}, session, capsys)
    assert rc == 0 and result["operation"] == "delete"
    assert session.calls[1].params["cas"] == "21"


def test_bad_permission_fails_before_any_request(capsys):
    session = FakeSession()
    rc, result, _out = run(service_intentions, {"name": "api", "sources": [
        {"name": "web", "permissions": [{"action": "allow", "http": {"path_exact": "/a", "path_regex": "/b"}}]}]},
        session, capsys)
    assert rc == 1
    assert result["msg"] == ("sources[0].permissions[0].http: set at most one of path_exact, path_prefix or "
                             "path_regex, not path_exact and path_regex")
    assert session.calls == []


def test_unknown_action_is_refused_by_the_argspec(capsys):
    args = {"name": "api", "sources": [{"name": "web", "action": "permit"}]}
    rc, result, _out = run(service_intentions, args, FakeSession(), capsys)
    assert rc == 1 and "allow, deny" in result["msg"] and "permit" in result["msg"]
