# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""service_resolver through its real main(), with Consul's HTTP API stubbed."""

from __future__ import annotations

from ansible_collections.seed.consul_peering.plugins.modules import service_resolver

from ..peering_stubs import FakeSession, Resp, ok, run

PATH = "/v1/config/service-resolver/frontend"
MISSING = Resp(404, text='Config entry not found for "service-resolver" / "frontend"')

# As Consul 1.22 answers (durations in Go's spelling, server fields).
STORED = {"Kind": "service-resolver", "Name": "frontend", "ConnectTimeout": "1m30s",
          "Failover": {"*": {"Targets": [{"Peer": "cluster-02"}]}},
          "Meta": {"owner": "team-a"}, "Hash": 77, "CreateIndex": 30, "ModifyIndex": 31}

ARGS = {"name": "frontend", "connect_timeout": "90s", "failover": [{"targets": [{"peer": "cluster-02"}]}]}


def test_second_run_is_one_get(capsys):
    session = FakeSession(("GET", PATH, ok(STORED)))
    rc, result, _out = run(service_resolver, ARGS, session, capsys, diff=True)
    assert rc == 0 and not result["changed"] and result["operation"] == "none", result
    assert session.methods() == ["GET"]
    assert result["diff"]["before"] == result["diff"]["after"]


def test_create_writes_consul_fields_with_cas_zero(capsys):
    session = FakeSession(("GET", PATH, MISSING), ("PUT", "/v1/config", ok(True)), ("GET", PATH, ok(STORED)))
    rc, result, _out = run(service_resolver, ARGS, session, capsys)
    assert rc == 0 and result["changed"] and result["operation"] == "create"
    put = session.calls[1]
    assert put.params["cas"] == "0"
    assert put.body == {"Kind": "service-resolver", "Name": "frontend", "ConnectTimeout": "1m30s",
                        "Failover": {"*": {"Targets": [{"Peer": "cluster-02"}]}}}
    assert result["entry"] == STORED


def test_update_keeps_meta_and_uses_modify_index(capsys):
    session = FakeSession(("GET", PATH, ok(STORED)), ("PUT", "/v1/config", ok(True)), ("GET", PATH, ok(STORED)))
    args = {"name": "frontend", "redirect": {"service": "frontend", "peer": "cluster-02"}}
    rc, result, _out = run(service_resolver, args, session, capsys)
    assert rc == 0 and result["operation"] == "update"
    put = session.calls[1]
    assert put.params["cas"] == "31"
    assert put.body == {"Kind": "service-resolver", "Name": "frontend", "Meta": {"owner": "team-a"},
                        "Redirect": {"Service": "frontend", "Peer": "cluster-02"}}


def test_cas_conflict_reads_again(capsys):
    newer = dict(STORED, ModifyIndex=40, ConnectTimeout="5s")
    session = FakeSession(("GET", PATH, ok(STORED)), ("PUT", "/v1/config", ok(False)),
                          ("GET", PATH, ok(newer)), ("PUT", "/v1/config", ok(True)), ("GET", PATH, ok(STORED)))
    args = dict(ARGS, connect_timeout="10s")
    rc, result, _out = run(service_resolver, args, session, capsys)
    assert rc == 0 and result["cas_conflicts"] == 1
    assert session.calls[3].params["cas"] == "40"


def test_check_mode_writes_nothing(capsys):
    session = FakeSession(("GET", PATH, MISSING))
    rc, result, _out = run(service_resolver, ARGS, session, capsys, check_mode=True, diff=True)
    assert rc == 0 and result["changed"] and result["operation"] == "create"
    assert session.methods() == ["GET"]
    assert result["diff"]["after"]["Failover"] == {"*": {"Targets": [{"Peer": "cluster-02"}]}}


def test_absent_deletes_with_cas(capsys):
    session = FakeSession(("GET", PATH, ok(STORED)), ("DELETE", PATH, ok(True)))
    rc, result, _out = run(service_resolver, {"name": "frontend", "state": "absent"}, session, capsys)
    assert rc == 0 and result["operation"] == "delete"
    assert session.calls[1].params["cas"] == "31"


def test_absent_when_missing_is_ok(capsys):
    session = FakeSession(("GET", PATH, MISSING))
    rc, result, _out = run(service_resolver, {"name": "frontend", "state": "absent"}, session, capsys)
    assert rc == 0 and not result["changed"]


def test_bad_input_fails_before_any_request(capsys):
    args = {"name": "frontend", "connect_timeout": "15",
            "redirect": {"service": "frontend", "peer": "cluster-02"},
            "failover": [{"targets": [{}]}]}
    session = FakeSession()
    rc, result, _out = run(service_resolver, args, session, capsys)
    assert rc == 1
    assert result["msg"] == (
        "connect_timeout: '15' has no unit; Consul needs one, such as 15s or 15ms; "
        "redirect and failover cannot both be set (Consul refuses it: a redirected service resolves as the "
        "redirect target, whose own resolver decides its failover); "
        "failover[0].targets[0]: the target names nothing; set at least one of peer, service, service_subset, "
        "datacenter, namespace or partition")
    assert session.calls == []


def test_enterprise_field_on_ce_fails_before_writing(capsys):
    session = FakeSession(("GET", "/v1/agent/self", ok({"Config": {"Version": "1.22.7", "VersionMetadata": ""}})))
    args = {"name": "frontend", "failover": [{"targets": [{"peer": "cluster-02", "namespace": "team"}]}]}
    rc, result, _out = run(service_resolver, args, session, capsys)
    assert rc == 1
    assert result["msg"].startswith("failover[0].targets[0].namespace 'team' needs Consul Enterprise")


def test_consul_rejection_is_explained(capsys):
    text = "Bad Failover[\"*\"]: some rule we do not check"
    session = FakeSession(("GET", PATH, MISSING), ("PUT", "/v1/config", Resp(500, text=text)))
    rc, result, _out = run(service_resolver, ARGS, session, capsys)
    assert rc == 1
    assert result["msg"] == "Consul rejected the service-resolver entry 'frontend': " + text


def test_unknown_lb_policy_is_refused_by_the_argspec(capsys):
    args = {"name": "frontend", "load_balancer": {"policy": "fastest"}}
    rc, result, _out = run(service_resolver, args, FakeSession(), capsys)
    assert rc == 1 and "fastest" in result["msg"] and "ring_hash" in result["msg"]


def test_absent_with_targets_removes_only_those(capsys):
    stored = dict(STORED, Failover={"*": {"Targets": [{"Peer": "cluster-03"}, {"Peer": "cluster-02"}]}})
    session = FakeSession(("GET", PATH, ok(stored)), ("PUT", "/v1/config", ok(True)), ("GET", PATH, ok(STORED)))
    args = {"name": "frontend", "state": "absent", "failover": [{"targets": [{"peer": "cluster-03"}]}]}
    rc, result, _out = run(service_resolver, args, session, capsys)
    assert rc == 0 and result["operation"] == "update"
    put = session.calls[1]
    assert put.params["cas"] == "31"
    assert put.body == {"Kind": "service-resolver", "Name": "frontend", "ConnectTimeout": "1m30s",
                        "Meta": {"owner": "team-a"}, "Failover": {"*": {"Targets": [{"Peer": "cluster-02"}]}}}


def test_absent_with_the_last_target_deletes_a_resolver_left_empty(capsys):
    stored = {"Kind": "service-resolver", "Name": "frontend", "Failover": {"*": {"Targets": [{"Peer": "cluster-02"}]}},
              "CreateIndex": 30, "ModifyIndex": 31}
    session = FakeSession(("GET", PATH, ok(stored)), ("DELETE", PATH, ok(True)))
    args = {"name": "frontend", "state": "absent", "failover": [{"targets": [{"peer": "cluster-02"}]}]}
    rc, result, _out = run(service_resolver, args, session, capsys)
    assert rc == 0 and result["operation"] == "delete"
    assert session.calls[1].params["cas"] == "31"
