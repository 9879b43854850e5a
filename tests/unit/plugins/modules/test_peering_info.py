# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""peering_info through its real main(), with Consul's HTTP API stubbed."""

from __future__ import annotations

import pytest

from ansible_collections.seed.consul_peering.plugins.modules import peering_info

from ..peering_stubs import FakeSession, Resp, acceptor, dialer, not_found, ok, run

NAME = "cluster-02"
PATH = "/v1/peering/" + NAME


def test_list_all_is_one_get(capsys):
    session = FakeSession(("GET", "/v1/peerings", ok([acceptor(NAME), dialer("cluster-03")])))
    rc, result, dummy = run(peering_info, {}, session, capsys)
    assert rc == 0
    assert result["changed"] is False
    assert [p["name"] for p in result["peerings"]] == [NAME, "cluster-03"]
    assert [p["role"] for p in result["peerings"]] == ["acceptor", "dialer"]
    assert session.methods() == ["GET"]


def test_list_empty(capsys):
    session = FakeSession(("GET", "/v1/peerings", ok([])))
    rc, result, dummy = run(peering_info, {}, session, capsys)
    assert result["peerings"] == []


def test_one_by_name_is_one_get(capsys):
    session = FakeSession(("GET", PATH, ok(acceptor(NAME))))
    rc, result, dummy = run(peering_info, dict(peer_name=NAME), session, capsys)
    assert rc == 0
    assert result["exists"] is True
    assert result["peering"]["state"] == "ACTIVE"
    assert result["peering"]["exported_services"] == ["web"]
    assert session.methods() == ["GET"]


def test_not_found_is_not_a_failure(capsys):
    session = FakeSession(("GET", PATH, not_found(NAME)))
    rc, result, dummy = run(peering_info, dict(peer_name=NAME), session, capsys)
    assert rc == 0
    assert result["exists"] is False
    assert result["peering"] == {}


def test_wait_for_active_polls(capsys):
    session = FakeSession(
        ("GET", PATH, not_found(NAME)),
        ("GET", PATH, ok(acceptor(NAME, state="PENDING"))),
        ("GET", PATH, ok(acceptor(NAME, state="ACTIVE"))),
    )
    rc, result, dummy = run(peering_info, dict(peer_name=NAME, wait_for="active"), session, capsys)
    assert rc == 0
    assert result["exists"] is True
    assert result["peering"]["state"] == "ACTIVE"
    assert "waited" in result


def test_wait_for_active_already_active_is_one_get(capsys):
    session = FakeSession(("GET", PATH, ok(acceptor(NAME))))
    run(peering_info, dict(peer_name=NAME, wait_for="active"), session, capsys)
    assert session.methods() == ["GET"]


@pytest.mark.parametrize("answer, fragment", [
    (not_found(NAME), "no peering named 'cluster-02' exists"),
    (ok(acceptor(NAME, state="PENDING")), "is PENDING, not ACTIVE"),
    (ok(acceptor(NAME, state="TERMINATED")), "the other cluster deleted the peering"),
])
def test_wait_for_active_times_out_clearly(capsys, answer, fragment):
    session = FakeSession(("GET", PATH, answer))
    rc, result, dummy = run(peering_info, dict(peer_name=NAME, wait_for="active", wait_timeout=0), session, capsys)
    assert rc == 1
    assert fragment in result["msg"]


@pytest.mark.parametrize("args, fragment", [
    (dict(wait_for="active"), "peer_name"),  # waiting needs a name
    (dict(peer_name="Not_Valid"), "not a valid peer name"),
])
def test_bad_input_sends_nothing(capsys, args, fragment):
    session = FakeSession()
    rc, result, dummy = run(peering_info, args, session, capsys)
    assert rc == 1
    assert fragment in result["msg"]
    assert session.calls == []


def test_missing_read_permission_is_named(capsys):
    text = "Permission denied: anonymous token lacks permission 'peering:read'. The anonymous token is used " \
           "implicitly when a request does not specify a token."
    session = FakeSession(("GET", PATH, Resp(403, text=text)))
    rc, result, dummy = run(peering_info, dict(peer_name=NAME), session, capsys)
    assert rc == 1
    assert "lacks permission 'peering:read'" in result["msg"]
    assert result["status"] == 403


def test_check_mode_reads_the_same(capsys):
    session = FakeSession(("GET", PATH, ok(acceptor(NAME))))
    rc, result, dummy = run(peering_info, dict(peer_name=NAME), session, capsys, check_mode=True)
    assert rc == 0
    assert result["exists"] is True


def _health(service, peer="cluster-02"):
    return ok([{"Node": {"Node": "n1"}, "Service": {"Service": service, "PeerName": peer}, "Checks": []}])


def test_expect_services_polls_until_every_service_is_visible(capsys):
    session = FakeSession(
        ("GET", PATH, ok(dialer(NAME))),
        ("GET", "/v1/health/service/api", _health("api")),
        ("GET", "/v1/health/service/web", ok([])),
        ("GET", "/v1/health/service/web", _health("web")),
    )
    rc, result, dummy = run(peering_info, dict(peer_name=NAME, expect_services=["web", "api"]), session, capsys)
    assert rc == 0, result
    assert result["visible_services"] == ["api", "web"]
    assert result["changed"] is False
    # each service is asked for the named peer, and a visible one is not asked again
    assert [c.params.get("peer") for c in session.calls[1:]] == [NAME, NAME, NAME]
    assert session.unexpected == []


def test_expect_services_names_what_is_missing(capsys):
    session = FakeSession(
        ("GET", PATH, ok(dialer(NAME))),
        ("GET", "/v1/health/service/api", _health("api")),
        ("GET", "/v1/health/service/web", ok([])),
        # After the wait: whether the peering lists the missing service as imported.
        ("GET", PATH, ok(dialer(NAME))),
    )
    rc, result, dummy = run(peering_info, dict(peer_name=NAME, expect_services=["web", "api"], wait_timeout=0),
                            session, capsys)
    assert rc == 1
    assert "web exported by peer 'cluster-02' is not visible" in result["msg"]
    assert "api" not in result["msg"].split("is not visible")[0]
    assert "at least one registered instance" in result["msg"] and "lists" not in result["msg"]


def test_expect_services_says_an_imported_service_has_no_instance(capsys):
    """Imported (the stream lists it) but no instance to show: the message says so."""
    imported = dialer(NAME)
    imported["StreamStatus"]["ImportedServices"] = ["web"]
    session = FakeSession(
        ("GET", PATH, ok(imported)),
        ("GET", "/v1/health/service/web", ok([])),
        ("GET", PATH, ok(imported)),
    )
    rc, result, dummy = run(peering_info, dict(peer_name=NAME, expect_services=["web"], wait_timeout=0),
                            session, capsys)
    assert rc == 1 and "the peering lists web as imported" in result["msg"], result["msg"]


def test_expect_services_needs_a_name(capsys):
    session = FakeSession()
    rc, result, dummy = run(peering_info, dict(expect_services=["web"]), session, capsys)
    assert rc == 1
    assert "peer_name" in result["msg"]
    assert session.calls == []


def test_expect_services_names_acl_filtering(capsys):
    filtered = Resp(200, body=[], headers={"X-Consul-Results-Filtered-By-ACLs": "true"})
    session = FakeSession(
        ("GET", PATH, ok(dialer(NAME))),
        ("GET", "/v1/health/service/web", filtered),
    )
    rc, result, dummy = run(peering_info, dict(peer_name=NAME, expect_services=["web"], wait_timeout=0),
                            session, capsys)
    assert rc == 1
    assert "filtered the answer by ACLs" in result["msg"]
    assert "node:read" in result["msg"] and "service:read" in result["msg"]


def test_cluster_identity_returns_the_trust_domain(capsys):
    session = FakeSession(
        ("GET", "/v1/connect/ca/roots", ok({"TrustDomain": "abc.consul", "Roots": []})),
        ("GET", "/v1/peerings", ok([acceptor(NAME)])),
    )
    rc, result, dummy = run(peering_info, dict(cluster_identity=True), session, capsys)
    assert rc == 0
    assert result["trust_domain"] == "abc.consul"
    assert [p["name"] for p in result["peerings"]] == [NAME]
    assert result["changed"] is False


@pytest.mark.parametrize("roots", [
    Resp(500, text="Connect must be enabled in order to use this endpoint"),  # Connect is off
    Resp(403, text="Permission denied"),  # the token may not read it: null, not a failure
])
def test_cluster_identity_that_cannot_be_read_is_null(capsys, roots):
    session = FakeSession(("GET", "/v1/connect/ca/roots", roots), ("GET", "/v1/peerings", ok([])))
    rc, result, dummy = run(peering_info, dict(cluster_identity=True), session, capsys)
    assert rc == 0
    assert result["trust_domain"] is None


def test_no_identity_read_by_default(capsys):
    session = FakeSession(("GET", "/v1/peerings", ok([])))
    rc, result, dummy = run(peering_info, {}, session, capsys)
    assert "trust_domain" not in result
    assert session.methods() == ["GET"]


# --- several peers in one call (peers) ---------------------------------------------------------

def test_peers_wait_for_all_with_one_list_per_poll(capsys):
    session = FakeSession(
        ("GET", "/v1/peerings", ok([acceptor("cluster-02", state="PENDING"), acceptor("cluster-03")])),
        ("GET", "/v1/peerings", ok([acceptor("cluster-02"), acceptor("cluster-03"), dialer("cluster-09")])),
    )
    rc, result, dummy = run(peering_info, dict(peers=[{"peer_name": "cluster-03"}, {"peer_name": "cluster-02"}],
                                               wait_for="active"), session, capsys)
    assert rc == 0 and result["changed"] is False
    assert [p["name"] for p in result["peerings"]] == ["cluster-03", "cluster-02"]
    assert result["visible_services"] == {}
    assert session.methods() == ["GET", "GET"]


def test_peers_not_active_in_time_names_each_one(capsys):
    session = FakeSession(("GET", "/v1/peerings", ok([acceptor("cluster-02", state="PENDING"), acceptor("cluster-03")])))
    rc, result, dummy = run(peering_info, dict(peers=[{"peer_name": "cluster-02"}, {"peer_name": "cluster-04"}],
                                               wait_for="active", wait_timeout=0), session, capsys)
    assert rc == 1
    assert "'cluster-02' is PENDING" in result["msg"] and "no peering named 'cluster-04'" in result["msg"]


def test_peers_read_without_wait_and_check_imports(capsys):
    session = FakeSession(
        ("GET", "/v1/peerings", ok([dialer("cluster-01")])),
        ("GET", "/v1/health/service/backend", _health("backend", "cluster-01")),
    )
    rc, result, dummy = run(peering_info, dict(peers=[{"peer_name": "cluster-01", "expect_services": ["backend"]},
                                                      {"peer_name": "cluster-05"}]), session, capsys)
    assert rc == 0
    assert result["peerings"][1] == {}
    assert result["visible_services"] == {"cluster-01": ["backend"]}
    assert session.calls[1].params.get("peer") == "cluster-01"


@pytest.mark.parametrize("args, text", [
    (dict(peers=[{"peer_name": "cluster-02"}], peer_name=NAME), "mutually exclusive"),
    (dict(peers=[{"peer_name": "cluster-02"}], expect_services=["x"]), "mutually exclusive"),
    (dict(peers=[{"peer_name": "cluster-02"}, {"peer_name": "cluster-02"}]), "more than once"),
    (dict(peers=[{"peer_name": "cluster-02", "expect_services": ["a/.."]}]), "peers[0].expect_services[0]"),
])
def test_peers_bad_input_sends_nothing(capsys, args, text):
    session = FakeSession()
    rc, result, dummy = run(peering_info, args, session, capsys)
    assert rc == 1 and text in result["msg"], result["msg"]
    assert session.calls == []
