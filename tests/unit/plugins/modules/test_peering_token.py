# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""peering_token through its real main(), with Consul's HTTP API stubbed."""

from __future__ import annotations

import pytest

from ansible_collections.seed.consul_peering.plugins.module_utils import _peering as pt
from ansible_collections.seed.consul_peering.plugins.modules import peering_token

from ..peering_stubs import (
    ACL_TOKEN,
    PEER_ID,
    SECRET,
    TOKEN,
    FakeSession,
    Resp,
    acceptor,
    dialer,
    not_found,
    ok,
    run,
)

NAME = "cluster-02"
PATH = "/v1/peering/" + NAME


def generated(*after):
    """The requests of a successful generation: POST, then the read-back."""
    return [("POST", "/v1/peering/token", ok({"PeeringToken": TOKEN})),
            ("GET", PATH, ok(after[0] if after else acceptor(NAME, state="PENDING")))]


def test_new_peering_generates_a_token(capsys):
    session = FakeSession(("GET", PATH, not_found(NAME)), *generated())
    rc, result, dummy = run(peering_token, dict(peer_name=NAME, meta={"env": "prod", "n": 1}), session, capsys)
    assert rc == 0
    assert result["changed"] is True
    assert result["operation"] == "generate"
    assert result["peering_token"] == TOKEN
    assert result["token_info"]["peer_id"] == PEER_ID
    assert result["peering"]["state"] == "PENDING"
    assert session.calls[1].body == {"PeerName": NAME, "Meta": {"env": "prod", "n": "1"}}
    assert SECRET not in str(result["token_info"])
    assert "diff" not in result


def test_server_external_addresses_are_sent(capsys):
    session = FakeSession(("GET", PATH, not_found(NAME)), *generated())
    run(peering_token, dict(peer_name=NAME, server_external_addresses=["203.0.113.5:8503"]), session, capsys)
    assert session.calls[1].body == {"PeerName": NAME, "ServerExternalAddresses": ["203.0.113.5:8503"]}


@pytest.mark.parametrize("state", ["ACTIVE", "ESTABLISHING"])
def test_live_peering_is_left_alone_with_one_get(capsys, state):
    session = FakeSession(("GET", PATH, ok(acceptor(NAME, state=state))))
    rc, result, dummy = run(peering_token, dict(peer_name=NAME), session, capsys)
    assert rc == 0
    assert result["changed"] is False
    assert result["operation"] == "none"
    assert "peering_token" not in result
    assert result["peering"]["state"] == state
    assert session.methods() == ["GET"]


def test_regenerate_on_active_peering(capsys):
    session = FakeSession(("GET", PATH, ok(acceptor(NAME))), *generated(acceptor(NAME)))
    rc, result, dummy = run(peering_token, dict(peer_name=NAME, regenerate=True), session, capsys)
    assert result["changed"] is True
    assert result["operation"] == "regenerate"
    assert result["peering_token"] == TOKEN


@pytest.mark.parametrize("state", ["PENDING", "FAILING"])
def test_pending_or_failing_peering_gets_a_new_token(capsys, state):
    session = FakeSession(("GET", PATH, ok(acceptor(NAME, state=state))), *generated())
    rc, result, dummy = run(peering_token, dict(peer_name=NAME), session, capsys)
    assert result["changed"] is True
    assert result["operation"] == "regenerate"
    assert result["peering_token"] == TOKEN


def test_terminated_peering_is_made_anew(capsys):
    session = FakeSession(
        ("GET", PATH, ok(acceptor(NAME, state="TERMINATED"))),
        ("DELETE", PATH, ok()),
        ("GET", PATH, not_found(NAME)),
        *generated())
    rc, result, dummy = run(peering_token, dict(peer_name=NAME), session, capsys)
    assert rc == 0
    assert result["operation"] == "recreate"
    assert result["peering_token"] == TOKEN


def test_deleting_peering_is_waited_for(capsys):
    session = FakeSession(
        ("GET", PATH, ok(acceptor(NAME, state="DELETING"))),
        ("GET", PATH, ok(acceptor(NAME, state="DELETING"))),
        ("GET", PATH, not_found(NAME)),
        *generated())
    rc, result, dummy = run(peering_token, dict(peer_name=NAME), session, capsys)
    assert rc == 0
    assert result["operation"] == "generate"
    assert "DELETE" not in session.methods()


def test_deleting_peering_that_stays_fails_clearly(capsys):
    session = FakeSession(
        ("GET", PATH, ok(acceptor(NAME, state="DELETING"))),
        ("GET", PATH, ok(acceptor(NAME, state="DELETING"))))
    rc, result, dummy = run(peering_token, dict(peer_name=NAME, wait_timeout=0), session, capsys)
    assert rc == 1
    assert "still being deleted" in result["msg"]
    assert "POST" not in session.methods()


@pytest.mark.parametrize("existing", [None, acceptor(NAME, state="PENDING"), acceptor(NAME, state="TERMINATED")])
def test_check_mode_never_generates(capsys, existing):
    session = FakeSession(("GET", PATH, ok(existing) if existing else not_found(NAME)))
    rc, result, dummy = run(peering_token, dict(peer_name=NAME), session, capsys, check_mode=True, diff=True)
    assert rc == 0
    assert result["changed"] is True
    assert "peering_token" not in result
    assert session.methods() == ["GET"]
    assert result["diff"]["after"]["state"] == "PENDING"


def test_diff_of_a_new_peering(capsys):
    session = FakeSession(("GET", PATH, not_found(NAME)), *generated(acceptor(NAME, state="PENDING", meta={"a": "b"})))
    rc, result, dummy = run(peering_token, dict(peer_name=NAME, meta={"a": "b"}), session, capsys, diff=True)
    assert result["diff"] == dict(before={}, after=dict(name=NAME, role="acceptor", state="PENDING", meta={"a": "b"}))


def test_meta_difference_on_live_peering_warns(capsys):
    session = FakeSession(("GET", PATH, ok(acceptor(NAME, meta={"a": "old"}))))
    rc, result, dummy = run(peering_token, dict(peer_name=NAME, meta={"a": "new"}), session, capsys)
    assert result["changed"] is False
    assert any("Consul sets meta only when a peering is created" in w for w in result["warnings"])


def test_name_used_by_a_dialer_peering_fails_before_writing(capsys):
    session = FakeSession(("GET", PATH, ok(dialer(NAME))))
    rc, result, dummy = run(peering_token, dict(peer_name=NAME), session, capsys)
    assert rc == 1
    assert result["msg"] == pt.MSG_NAME_IS_DIALER.format(name=NAME)
    assert session.methods() == ["GET"]


def test_consul_refusing_a_dialer_name_is_explained(capsys):
    text = 'cannot create peering with name: "%s"; there is already an established peering' % NAME
    session = FakeSession(("GET", PATH, not_found(NAME)), ("POST", "/v1/peering/token", Resp(500, text=text)))
    rc, result, dummy = run(peering_token, dict(peer_name=NAME), session, capsys)
    assert rc == 1
    assert result["msg"].startswith(pt.MSG_NAME_IS_DIALER.format(name=NAME))


@pytest.mark.parametrize("name", ["Cluster", "a_b", "-a", "a-", "", "a" * 64])
def test_invalid_peer_name_sends_nothing(capsys, name):
    session = FakeSession()
    rc, result, dummy = run(peering_token, dict(peer_name=name), session, capsys)
    assert rc == 1
    assert "peer_name" in result["msg"]
    assert session.calls == []


def test_missing_permission_is_named_and_acl_token_hidden(capsys):
    text = "Permission denied: token with AccessorID 'abc' lacks permission 'peering:write' (token %s)" % ACL_TOKEN
    session = FakeSession(("GET", PATH, not_found(NAME)), ("POST", "/v1/peering/token", Resp(403, text=text)))
    rc, result, out = run(peering_token, dict(peer_name=NAME, token=ACL_TOKEN), session, capsys)
    assert rc == 1
    assert "lacks permission 'peering:write'" in result["msg"]
    assert result["status"] == 403
    assert ACL_TOKEN not in out


def test_absent_when_there_is_none_reads_once(capsys):
    session = FakeSession(("GET", PATH, not_found(NAME)))
    rc, result, dummy = run(peering_token, dict(peer_name=NAME, state="absent"), session, capsys)
    assert result["changed"] is False
    assert session.methods() == ["GET"]


def test_absent_deletes_and_waits(capsys):
    session = FakeSession(
        ("GET", PATH, ok(acceptor(NAME))),
        ("DELETE", PATH, ok()),
        ("GET", PATH, ok(acceptor(NAME, state="DELETING"))),
        ("GET", PATH, not_found(NAME)))
    rc, result, dummy = run(peering_token, dict(peer_name=NAME, state="absent"), session, capsys, diff=True)
    assert rc == 0
    assert result["changed"] is True
    assert result["diff"]["before"]["state"] == "ACTIVE"
    assert result["diff"]["after"] == {}


def test_absent_in_check_mode_writes_nothing(capsys):
    session = FakeSession(("GET", PATH, ok(acceptor(NAME))))
    rc, result, dummy = run(peering_token, dict(peer_name=NAME, state="absent"), session, capsys, check_mode=True)
    assert result["changed"] is True
    assert session.methods() == ["GET"]


def test_deleting_dialer_peering_of_that_name_is_waited_for(capsys):
    session = FakeSession(
        ("GET", PATH, ok(dialer(NAME, state="DELETING"))),
        ("GET", PATH, not_found(NAME)),
        *generated())
    rc, result, dummy = run(peering_token, dict(peer_name=NAME), session, capsys)
    assert rc == 0
    assert result["operation"] == "generate"


@pytest.mark.parametrize("address", ["not an address", "203.0.113.5", "203.0.113.5:0", "203.0.113.5:70000",
                                     ":8503", "host name:8503", "[2001:db8::1]"])
def test_bad_server_external_address_fails_before_any_request(capsys, address):
    session = FakeSession()
    rc, result, dummy = run(peering_token, dict(peer_name=NAME, server_external_addresses=["10.0.0.1:8503", address]),
                            session, capsys)
    assert rc == 1
    assert result["msg"].startswith("server_external_addresses[1] ")
    assert "host:port" in result["msg"]
    assert session.calls == []


# --- several peers in one call (peers) ---------------------------------------------------------

def p(name):
    return "/v1/peering/" + name


def test_peers_one_call_generates_for_new_peers_and_leaves_live_ones(capsys):
    session = FakeSession(
        ("GET", p("cluster-02"), not_found("cluster-02")),
        ("POST", "/v1/peering/token", ok({"PeeringToken": TOKEN})),
        ("GET", p("cluster-02"), ok(acceptor("cluster-02", state="PENDING"))),
        ("GET", p("cluster-03"), ok(acceptor("cluster-03", state="ACTIVE"))),
    )
    rc, result, out = run(peering_token, dict(peers=[{"peer_name": "cluster-02", "meta": {"k": "v"}},
                                                     {"peer_name": "cluster-03"}], meta={"all": "x"}),
                          session, capsys, diff=True)
    assert rc == 0 and result["changed"] is True
    assert result["peering_tokens"] == {"cluster-02": TOKEN}
    assert [(r["peer_name"], r["operation"], r["changed"]) for r in result["peers"]] == [
        ("cluster-02", "generate", True), ("cluster-03", "none", False)]
    assert all("peering_token" not in r for r in result["peers"])
    # An item's own meta wins over the module's.
    assert session.calls[1].body == {"PeerName": "cluster-02", "Meta": {"k": "v"}}
    assert set(result["diff"]["before"]) == {"cluster-02", "cluster-03"}
    assert "operation" not in result


def test_peers_inherit_the_module_meta_and_addresses(capsys):
    session = FakeSession(("GET", p("cluster-02"), not_found("cluster-02")), *generated())
    run(peering_token, dict(peers=[{"peer_name": "cluster-02"}], meta={"all": "x"},
                            server_external_addresses=["203.0.113.5:8503"]), session, capsys)
    assert session.calls[1].body == {"PeerName": "cluster-02", "Meta": {"all": "x"},
                                     "ServerExternalAddresses": ["203.0.113.5:8503"]}


def test_peers_all_live_is_one_get_each_and_no_token(capsys):
    session = FakeSession(("GET", p("cluster-02"), ok(acceptor("cluster-02"))),
                          ("GET", p("cluster-03"), ok(acceptor("cluster-03"))))
    rc, result, out = run(peering_token, dict(peers=[{"peer_name": "cluster-02"}, {"peer_name": "cluster-03"}]),
                          session, capsys)
    assert rc == 0 and result["changed"] is False and result["peering_tokens"] == {}
    assert session.methods() == ["GET", "GET"]


def test_peers_check_mode_generates_nothing(capsys):
    session = FakeSession(("GET", p("cluster-02"), not_found("cluster-02")),
                          ("GET", p("cluster-03"), not_found("cluster-03")))
    rc, result, out = run(peering_token, dict(peers=[{"peer_name": "cluster-02"}, {"peer_name": "cluster-03"}]),
                          session, capsys, check_mode=True)
    assert result["changed"] is True and result["peering_tokens"] == {}
    assert session.methods() == ["GET", "GET"]


def test_peers_absent_deletes_each(capsys):
    session = FakeSession(("GET", p("cluster-02"), ok(acceptor("cluster-02"))),
                          ("DELETE", p("cluster-02"), ok()),
                          ("GET", p("cluster-02"), not_found("cluster-02")),
                          ("GET", p("cluster-03"), not_found("cluster-03")))
    rc, result, out = run(peering_token, dict(peers=[{"peer_name": "cluster-02"}, {"peer_name": "cluster-03"}],
                                              state="absent"), session, capsys)
    assert rc == 0 and result["changed"] is True
    assert [r["operation"] for r in result["peers"]] == ["delete", "none"]


def test_peers_failure_names_the_peer_and_what_was_done_without_the_token(capsys):
    session = FakeSession(("GET", p("cluster-02"), not_found("cluster-02")), *generated(),
                          ("GET", p("cluster-03"), ok(dialer("cluster-03"))))
    rc, result, out = run(peering_token, dict(peers=[{"peer_name": "cluster-02"}, {"peer_name": "cluster-03"}]),
                          session, capsys)
    assert rc == 1
    assert result["msg"].startswith("peer cluster-03: ")
    assert "done before it: cluster-02 (generate)" in result["msg"]
    assert TOKEN not in out and SECRET not in out


@pytest.mark.parametrize("args, text", [
    (dict(peers=[{"peer_name": "Bad_Name"}]), "peers[0].peer_name"),
    (dict(peers=[{"peer_name": "cluster-02"}, {"peer_name": "cluster-02"}]), "more than once"),
    (dict(peers=[{"peer_name": "cluster-02", "server_external_addresses": ["nope"]}]),
     "peers[0].server_external_addresses[0]"),
    (dict(peers=[{"peer_name": "cluster-02"}], peer_name="cluster-03"), "mutually exclusive"),
    (dict(), "one of the following is required"),
])
def test_peers_bad_input_fails_before_any_request(capsys, args, text):
    session = FakeSession()
    rc, result, out = run(peering_token, args, session, capsys)
    assert rc == 1 and text in result["msg"], result["msg"]
    assert session.calls == []
