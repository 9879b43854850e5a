# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""exported_services through its real main(), with Consul's HTTP API stubbed."""

from __future__ import annotations

from ansible_collections.seed.consul_peering.plugins.modules import exported_services

from ..peering_stubs import FakeSession, Resp, ok, run

PATH = "/v1/config/exported-services/default"
MISSING = Resp(404, text='Config entry not found for "exported-services" / "default"')


def entry(*services, index=7):
    return {"Kind": "exported-services", "Name": "default", "Services": list(services),
            "Hash": 1, "CreateIndex": 3, "ModifyIndex": index}


def service(name, *peers):
    return {"Name": name, "Consumers": [{"Peer": p} for p in peers]}


def args(*services, **extra):
    out = {"services": [{"name": n, "consumers": [{"peer": p} for p in peers]} for n, peers in services]}
    out.update(extra)
    return out


def test_merge_writes_with_cas_on_the_read_index(capsys):
    session = FakeSession(
        ("GET", PATH, ok(entry(service("api", "p1")))),
        ("PUT", "/v1/config", ok(True)),
        ("GET", PATH, ok(entry(service("api", "p1"), service("web", "p2"), index=8))),
    )
    rc, result, _out = run(exported_services, args(("web", ["p2"])), session, capsys)
    assert rc == 0 and result["changed"] and result["operation"] == "update"
    put = session.calls[1]
    assert put.params["cas"] == "7"
    assert put.body == {"Kind": "exported-services", "Name": "default",
                        "Services": [service("api", "p1"), service("web", "p2")]}
    assert result["entry"]["ModifyIndex"] == 8


def test_create_uses_cas_zero(capsys):
    session = FakeSession(("GET", PATH, MISSING), ("PUT", "/v1/config", ok(True)),
                          ("GET", PATH, ok(entry(service("web", "p2"), index=9))))
    rc, result, _out = run(exported_services, args(("web", ["p2"])), session, capsys)
    assert result["operation"] == "create" and session.calls[1].params["cas"] == "0"


def test_conflict_rereads_and_keeps_the_other_writer(capsys):
    session = FakeSession(
        ("GET", PATH, ok(entry(service("api", "p1")))),
        ("PUT", "/v1/config", ok(False)),
        ("GET", PATH, ok(entry(service("api", "p1"), service("db", "p3"), index=12))),
        ("PUT", "/v1/config", ok(True)),
        ("GET", PATH, ok(entry(service("api", "p1"), service("db", "p3"), service("web", "p2"), index=13))),
    )
    rc, result, _out = run(exported_services, args(("web", ["p2"])), session, capsys)
    assert rc == 0 and result["cas_conflicts"] == 1
    retry = session.calls[3]
    assert retry.params["cas"] == "12"
    assert [s["Name"] for s in retry.body["Services"]] == ["api", "db", "web"]


def test_idempotent_run_is_one_get(capsys):
    session = FakeSession(("GET", PATH, ok(entry(service("web", "p2", "p1")))))
    rc, result, _out = run(exported_services, args(("web", ["p1", "p2"])), session, capsys)
    assert rc == 0 and not result["changed"] and result["operation"] == "none"
    assert session.methods() == ["GET"]


def test_check_mode_and_diff_write_nothing(capsys):
    session = FakeSession(("GET", PATH, ok(entry(service("api", "p1")))))
    rc, result, _out = run(exported_services, args(("web", ["p2"])), session, capsys, check_mode=True, diff=True)
    assert rc == 0 and result["changed"]
    assert session.methods() == ["GET"]
    assert result["diff"]["before"]["Services"] == [service("api", "p1")]
    assert result["diff"]["after"]["Services"] == [service("api", "p1"), service("web", "p2")]
    assert result["diff"]["before_header"] == "exported-services/default"


def test_last_service_removed_deletes_the_entry_with_cas(capsys):
    session = FakeSession(("GET", PATH, ok(entry(service("web", "p1")))), ("DELETE", PATH, ok(True)))
    rc, result, _out = run(exported_services, {"services": [{"name": "web"}], "state": "absent"}, session, capsys)
    assert rc == 0 and result["operation"] == "delete" and result["entry"] == {}
    assert session.calls[1].params["cas"] == "7"


def test_bad_consumer_fails_before_any_request(capsys):
    session = FakeSession()
    services = {"services": [{"name": "web", "consumers": [{"peer": "p1"}]},
                             {"name": "api", "consumers": [{"peer": "p1", "sameness_group": "g"}]}]}
    rc, result, _out = run(exported_services, services, session, capsys)
    assert rc == 1 and result["failed"]
    assert result["msg"] == ("services[1].consumers[0]: set exactly one of peer, partition or sameness_group, "
                             "not peer and sameness_group")
    assert session.calls == []


def test_services_required_when_present(capsys):
    rc, result, _out = run(exported_services, {}, FakeSession(), capsys)
    assert rc == 1 and "services" in result["msg"]


def test_enterprise_field_on_ce_fails_before_writing(capsys):
    session = FakeSession(("GET", "/v1/agent/self", ok({"Config": {"Version": "1.22.7", "VersionMetadata": ""}})))
    services = [{"name": "web", "namespace": "team-a", "consumers": [{"peer": "p1"}]}]
    rc, result, _out = run(exported_services, {"services": services}, session, capsys)
    assert rc == 1
    assert result["msg"].startswith("services[0].namespace 'team-a' needs Consul Enterprise")


def test_consul_rejection_is_reported_with_its_text(capsys):
    text = "Services[0].Consumers[0]: exporting to all peers (wildcard) is not supported"
    session = FakeSession(("GET", PATH, MISSING), ("PUT", "/v1/config", Resp(500, text=text)))
    rc, result, _out = run(exported_services, args(("web", ["p2"])), session, capsys)
    assert rc == 1 and result["status"] == 500
    assert result["msg"] == "Consul rejected the exported-services entry 'default': " + text
