# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Pure peering helpers: peer names, token decoding, error wording, summaries."""

from __future__ import annotations

import base64
import json

import pytest

from ansible_collections.seed.consul_peering.plugins.module_utils import _peering as pt

from ansible_collections.seed.consul_peering.plugins.module_utils.consul_api import ConsulError

from ..peering_stubs import (
    PEER_ID,
    SECRET,
    SERVER_NAME,
    TOKEN,
    FakeSession,
    Resp,
    acceptor,
    client,
    dialer,
    make_token,
    not_found,
    ok,
    token_fields,
)


def b64(data):
    return base64.b64encode(data if isinstance(data, bytes) else data.encode()).decode()


# --- peer names ------------------------------------------------------------------

@pytest.mark.parametrize("name, fragment", [
    ("Cluster-02", "uppercase letters"),
    ("cluster_02", "characters other than letters, digits and '-'"),
    ("a" * 64, "64 characters long"),
    ("-cluster", "leading or trailing '-'"),
    ("cluster-", "leading or trailing '-'"),
    ("", "must not be empty"),
    (None, "must not be empty"),
    ("clus ter", "characters other than"),
    ("dc1.example", "characters other than"),
    (3, "must be a string"),
])
def test_peer_name_problems(name, fragment):
    problem = pt.peer_name_problem(name)
    assert problem is not None
    assert fragment in problem
    assert problem.startswith("peer_name")


@pytest.mark.parametrize("name", ["a", "7", "a" * 63, "cluster-02", "dc1", "a-b-c", "0-0"])
def test_peer_name_valid(name):
    assert pt.peer_name_problem(name) is None


def test_peer_name_problem_names_the_option():
    assert pt.peer_name_problem("Bad", option="cluster_peering_name").startswith("cluster_peering_name 'Bad'")


# --- token decoding --------------------------------------------------------------

def test_decode_valid_token():
    decoded = pt.decode_token(make_token())
    assert decoded["PeerID"] == PEER_ID
    assert decoded["EstablishmentSecret"] == SECRET


def test_decode_tolerates_missing_padding_and_whitespace():
    token = make_token().rstrip("=")
    assert pt.decode_token("  %s\n" % token)["PeerID"] == PEER_ID


def _without(field):
    fields = token_fields()
    del fields[field]
    return b64(json.dumps(fields))


def _empty(field):
    return b64(json.dumps(token_fields(**{field: "" if field != "ServerAddresses" else []})))


@pytest.mark.parametrize("token, fragment", [
    ("", "is empty"),
    ("   ", "is empty"),
    (None, "is empty"),
    ("not base64 at all!", "not base64"),
    ("ünïcode", "not base64"),
    (b64("this is not json"), "not JSON"),
    (b64(b"\xff\xfe\xfa"), "not JSON"),
    (b64("[1, 2, 3]"), "does not decode to a JSON object"),
    (b64('"a string"'), "does not decode to a JSON object"),
    (b64("null"), "does not decode to a JSON object"),
    (_without("ServerAddresses"), "missing ServerAddresses"),
    (_without("ServerName"), "missing ServerName"),
    (_without("PeerID"), "missing PeerID"),
    (_without("EstablishmentSecret"), "missing EstablishmentSecret"),
    (_empty("ServerAddresses"), "missing ServerAddresses"),
    (_empty("PeerID"), "missing PeerID"),
    (b64(json.dumps(token_fields(ServerAddresses=[1, 2]))), "malformed ServerAddresses"),
    (b64(json.dumps(token_fields(ServerAddresses="127.0.0.1:8503"))), "malformed ServerAddresses"),
    (b64("{}"), "missing ServerAddresses, ServerName, PeerID, EstablishmentSecret"),
])
def test_decode_rejects(token, fragment):
    with pytest.raises(pt.TokenError) as exc:
        pt.decode_token(token)
    msg = str(exc.value)
    assert fragment in msg
    if token and token.strip():
        assert token.strip() not in msg
    assert SECRET not in msg


def test_decode_refuses_huge_input():
    with pytest.raises(pt.TokenError, match="bytes long"):
        pt.decode_token("A" * (1024 * 1024 + 4))


def test_token_summary_has_no_secret():
    summary = pt.token_summary(pt.decode_token(make_token()))
    assert summary == dict(peer_id=PEER_ID, server_name=SERVER_NAME, server_addresses=["127.0.0.1:18106"],
                           remote_datacenter="dc1", remote_partition="")
    assert SECRET not in json.dumps(summary)


# --- Consul's error texts (as Consul 1.22 words them) -----------------------------

@pytest.mark.parametrize("text, message", [
    ("a new peering token must be generated: invalid peering establishment secret", pt.MSG_SECRET_USED),
    ("invalid establishment secret: peering was already established", pt.MSG_SECRET_USED),
    ('cannot create peering with name: "cluster-01"; there is an existing peering expecting to be dialed',
     pt.MSG_NAME_IS_ACCEPTOR),
    ('cannot create peering with name: "cluster-01"; there is already an established peering',
     pt.MSG_NAME_IS_DIALER),
    ('cannot create a peering within the same cluster "%s". Refer to the `exported-services` documentation '
     'if you want to export between partitions without peering' % SERVER_NAME, pt.MSG_SAME_CLUSTER),
    ("failed to write peering: cannot write to peering that is marked for deletion", pt.MSG_DELETING),
])
def test_explain_known_errors(text, message):
    assert pt.explain_peering_error(text, "cluster-01") == message.format(name="cluster-01")


@pytest.mark.parametrize("text", [
    "Permission denied: token with AccessorID '4673475e-5151-3a1b-50ba-a0d10d1f5c95' lacks permission "
    "'peering:write'",
    "ACL not found",
    'Peering not found for "x"',
    "peering token server addresses value is empty",
    "",
    None,
])
def test_explain_leaves_other_errors(text):
    assert pt.explain_peering_error(text, "x") is None


def test_messages_name_the_peer():
    assert "'cluster-01'" in pt.MSG_NAME_IS_ACCEPTOR.format(name="cluster-01")
    assert "'cluster-01'" in pt.MSG_NAME_IS_DIALER.format(name="cluster-01")


# --- summaries ---------------------------------------------------------------------

def test_summary_of_dialer():
    s = pt.peering_summary(dialer(meta={"env": "prod"}))
    assert s["role"] == "dialer"
    assert s["peer_id"] == PEER_ID
    assert s["meta"] == {"env": "prod"}
    assert s["imported_services"] == ["api"]
    assert s["exported_services"] == []
    assert s["remote_datacenter"] == "dc1"
    assert "PeerCAPems" not in json.dumps(s)


def test_summary_of_acceptor():
    s = pt.peering_summary(acceptor())
    assert s["role"] == "acceptor"
    assert s["peer_id"] is None
    assert s["exported_services"] == ["web"]
    assert s["meta"] == {}


def test_summary_of_nothing():
    assert pt.peering_summary(None) == {}
    assert pt.peering_summary({}) == {}


def test_role_follows_consul_should_dial():
    assert pt.peering_role({"ManualServerAddresses": ["10.0.0.1:8503"]}) == "dialer"
    assert pt.peering_role({"PeerServerAddresses": []}) == "acceptor"


def test_diff_view():
    view = pt.peering_diff_view(pt.peering_summary(dialer(meta={"a": "b"})))
    assert view == dict(name="cluster-01", role="dialer", state="ACTIVE", meta={"a": "b"}, peer_id=PEER_ID)
    assert pt.peering_diff_view({}) == {}


@pytest.mark.parametrize("meta, expected", [
    (None, None),
    ({}, {}),
    ({"a": 1, "b": True, "c": False, "d": None, "e": "x"}, {"a": "1", "b": "true", "c": "false", "d": "", "e": "x"}),
])
def test_normalize_meta(meta, expected):
    assert pt.normalize_meta(meta) == expected


@pytest.mark.parametrize("peering, fragment", [
    (None, "no peering named 'x' exists"),
    ({"State": "PENDING"}, "no cluster has established"),
    ({"State": "ESTABLISHING"}, "gRPC TLS port"),
    ({"State": "FAILING"}, "server logs"),
    ({"State": "TERMINATED"}, "the other cluster deleted the peering"),
    ({"State": "WEIRD"}, "is WEIRD, not ACTIVE"),
])
def test_not_active_message(peering, fragment):
    assert fragment in pt.not_active_message("x", peering, 12.3)
    assert "12s" in pt.not_active_message("x", peering, 12.3)


@pytest.mark.parametrize("addresses", [None, [], ["10.0.0.1:8503"], ["consul.example.com:8503", "[2001:db8::1]:8503"],
                                       ["a:1", "b:65535"]])
def test_server_addresses_valid(addresses):
    assert pt.server_addresses_problem(addresses) is None


@pytest.mark.parametrize("address", ["not an address", "10.0.0.1", "10.0.0.1:", "10.0.0.1:0", "10.0.0.1:65536",
                                     ":8503", "-host:8503", "http://10.0.0.1:8503", ""])
def test_server_addresses_problem_names_the_item(address):
    msg = pt.server_addresses_problem(["10.0.0.1:8503", address])
    assert msg.startswith("server_external_addresses[1] %r" % address)


# --- the workflows' wording of Consul's failures (moved with the code from test_consul_api.py) ------

def test_used_secret_is_explained_despite_its_403():
    text = "a new peering token must be generated: invalid peering establishment secret"
    session = FakeSession(("POST", "/v1/peering/establish", Resp(403, text=text)))
    with pytest.raises(ConsulError) as exc:
        pt.establish(client(session), "cluster-01", TOKEN, pt.decode_token(TOKEN), None)
    assert exc.value.msg.startswith(pt.MSG_SECRET_USED)
    assert text in exc.value.msg
    assert exc.value.status == 403


def test_peering_failure_keeps_unknown_errors():
    err = ConsulError("permission denied: ...", status=403, body="lacks permission 'peering:write'")
    assert pt.peering_failure(err, "x") is err


# --- waiting for peerings ---------------------------------------------------------------

def test_wait_peering_gone_polls_until_404():
    session = FakeSession(
        ("GET", "/v1/peering/x", ok(acceptor("x", state="DELETING"))),
        ("GET", "/v1/peering/x", ok(acceptor("x", state="DELETING"))),
        ("GET", "/v1/peering/x", not_found("x")),
    )
    c = client(session)
    pt.wait_peering_gone(c, "x", 30)
    assert len(session.calls) == 3
    assert c.sleeps and all(s <= 2.0 for s in c.sleeps)


def test_wait_peering_gone_is_bounded():
    session = FakeSession(("GET", "/v1/peering/x", ok(acceptor("x", state="DELETING"))))
    with pytest.raises(ConsulError) as exc:
        pt.wait_peering_gone(client(session), "x", 0)
    assert "still being deleted (state DELETING)" in exc.value.msg


def test_remove_absent_peering_reads_once():
    session = FakeSession(("GET", "/v1/peering/x", not_found("x")))
    result = pt.remove_peering(client(session), "x", 10)
    assert result["changed"] is False
    assert session.methods() == ["GET"]


def test_remove_peering_deletes_and_waits():
    session = FakeSession(
        ("GET", "/v1/peering/x", ok(acceptor("x"))),
        ("DELETE", "/v1/peering/x", ok()),
        ("GET", "/v1/peering/x", ok(acceptor("x", state="DELETING"))),
        ("GET", "/v1/peering/x", not_found("x")),
    )
    result = pt.remove_peering(client(session), "x", 10)
    assert result["changed"] is True
    assert result["operation"] == "delete"
    assert result["diff"]["before"]["state"] == "ACTIVE"
    assert result["diff"]["after"] == {}


def test_remove_deleting_peering_only_waits():
    session = FakeSession(
        ("GET", "/v1/peering/x", ok(acceptor("x", state="DELETING"))),
        ("GET", "/v1/peering/x", not_found("x")),
    )
    result = pt.remove_peering(client(session), "x", 10)
    assert result["changed"] is False
    assert result["operation"] == "wait_deleted"
    assert "DELETE" not in session.methods()


def test_remove_peering_in_check_mode_writes_nothing():
    session = FakeSession(("GET", "/v1/peering/x", ok(acceptor("x"))))
    result = pt.remove_peering(client(session), "x", 10, check_mode=True)
    assert result["changed"] is True
    assert session.methods() == ["GET"]
