# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""peering_establish through its real main(), with Consul's HTTP API stubbed."""

from __future__ import annotations

import base64
import json

import pytest

from ansible_collections.seed.consul_peering.plugins.module_utils import _peering as pt
from ansible_collections.seed.consul_peering.plugins.modules import peering_establish

from ..peering_stubs import (
    ACL_TOKEN,
    OTHER_PEER_ID,
    PEER_ID,
    SECRET,
    SERVER_NAME,
    TOKEN,
    FakeSession,
    Resp,
    acceptor,
    dialer,
    make_token,
    not_found,
    ok,
    run,
    token_fields,
)

NAME = "cluster-01"
PATH = "/v1/peering/" + NAME
ESTABLISH = ("POST", "/v1/peering/establish", ok({}))


def args(**kw):
    base = dict(peer_name=NAME, peering_token=TOKEN)
    base.update(kw)
    return base


def assert_no_secret(out):
    assert TOKEN not in out
    assert SECRET not in out


def test_new_peering_is_established_and_waited_for(capsys):
    session = FakeSession(
        ("GET", PATH, not_found(NAME)),
        ESTABLISH,
        ("GET", PATH, ok(dialer(NAME, state="ESTABLISHING"))),
        ("GET", PATH, ok(dialer(NAME, state="ACTIVE"))),
    )
    rc, result, out = run(peering_establish, args(meta={"owner": "platform"}), session, capsys)
    assert rc == 0
    assert result["changed"] is True
    assert result["operation"] == "establish"
    assert result["peering"]["state"] == "ACTIVE"
    assert result["peering"]["peer_id"] == PEER_ID
    assert result["token_info"] == dict(peer_id=PEER_ID, server_name=SERVER_NAME, server_addresses=["127.0.0.1:18106"],
                                        remote_datacenter="dc1", remote_partition="")
    assert session.calls[1].body == {"PeerName": NAME, "PeeringToken": TOKEN, "Meta": {"owner": "platform"}}
    assert "waited" in result
    assert_no_secret(out)


def test_without_wait_reads_once_after_writing(capsys):
    session = FakeSession(("GET", PATH, not_found(NAME)), ESTABLISH,
                          ("GET", PATH, ok(dialer(NAME, state="ESTABLISHING"))))
    rc, result, dummy = run(peering_establish, args(wait=False), session, capsys)
    assert result["changed"] is True
    assert result["peering"]["state"] == "ESTABLISHING"


def test_active_peering_with_the_same_peer_is_one_get(capsys):
    session = FakeSession(("GET", PATH, ok(dialer(NAME))))
    rc, result, out = run(peering_establish, args(), session, capsys)
    assert rc == 0
    assert result["changed"] is False
    assert result["operation"] == "none"
    assert session.methods() == ["GET"]
    assert_no_secret(out)


def test_establishing_peering_with_the_same_peer_without_wait_is_one_get(capsys):
    session = FakeSession(("GET", PATH, ok(dialer(NAME, state="ESTABLISHING"))))
    rc, result, dummy = run(peering_establish, args(wait=False), session, capsys)
    assert result["changed"] is False
    assert session.methods() == ["GET"]


def test_establishing_peering_with_the_same_peer_is_waited_for_without_writing(capsys):
    session = FakeSession(
        ("GET", PATH, ok(dialer(NAME, state="ESTABLISHING"))),
        ("GET", PATH, ok(dialer(NAME, state="ACTIVE"))),
    )
    rc, result, dummy = run(peering_establish, args(), session, capsys)
    assert result["changed"] is False
    assert result["peering"]["state"] == "ACTIVE"
    assert session.methods() == ["GET", "GET"]


def test_terminated_peering_is_deleted_then_established_anew(capsys):
    """Establishing over a TERMINATED record can leave both sides stuck (issue 16's matrix found it):
    the record is deleted and waited for first."""
    session = FakeSession(
        ("GET", PATH, ok(dialer(NAME, state="TERMINATED"))),
        ("DELETE", PATH, ok(None)),
        ("GET", PATH, not_found(NAME)),
        ESTABLISH,
        ("GET", PATH, ok(dialer(NAME))),
    )
    rc, result, dummy = run(peering_establish, args(), session, capsys, diff=True)
    assert rc == 0 and result["changed"] is True and result["operation"] == "reestablish"
    assert session.methods() == ["GET", "DELETE", "GET", "POST", "GET"]


@pytest.mark.parametrize("existing", [
    dialer(NAME, state="ACTIVE", peer_id=OTHER_PEER_ID),
    dialer(NAME, state="FAILING"),
    dialer(NAME, state="PENDING"),
])
def test_reestablish(capsys, existing):
    session = FakeSession(("GET", PATH, ok(existing)), ESTABLISH, ("GET", PATH, ok(dialer(NAME))))
    rc, result, dummy = run(peering_establish, args(), session, capsys, diff=True)
    assert rc == 0
    assert result["changed"] is True
    assert result["operation"] == "reestablish"
    assert result["diff"]["before"]["state"] == existing["State"]
    assert result["diff"]["after"]["state"] == "ACTIVE"
    assert result["diff"]["after"]["peer_id"] == PEER_ID


@pytest.mark.parametrize("deleting", [dialer(NAME, state="DELETING"), acceptor(NAME, state="DELETING")],
                         ids=["dialing-side", "accepting-side"])
def test_deleting_peering_of_that_name_is_waited_for_then_established(capsys, deleting):
    """A DELETING peering of that name, whichever side it was, is waited for; then a fresh establish."""
    session = FakeSession(
        ("GET", PATH, ok(deleting)),
        ("GET", PATH, not_found(NAME)),
        ESTABLISH,
        ("GET", PATH, ok(dialer(NAME))),
    )
    rc, result, dummy = run(peering_establish, args(), session, capsys)
    assert rc == 0
    assert result["operation"] == "establish"


@pytest.mark.parametrize("existing", [None, dialer(NAME, state="TERMINATED")])
def test_check_mode_never_establishes(capsys, existing):
    session = FakeSession(("GET", PATH, ok(existing) if existing else not_found(NAME)))
    rc, result, out = run(peering_establish, args(), session, capsys, check_mode=True, diff=True)
    assert rc == 0
    assert result["changed"] is True
    assert session.methods() == ["GET"]
    assert result["diff"]["after"]["state"] == "ACTIVE"
    assert_no_secret(out)


def _b64(text):
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize("token, fragment", [
    ("definitely not a token!", "not base64"),
    (_b64("plain text"), "not JSON"),
    (_b64("[]"), "JSON object"),
    (_b64(json.dumps({k: v for k, v in token_fields().items() if k != "PeerID"})), "missing PeerID"),
    (_b64(json.dumps({k: v for k, v in token_fields().items() if k != "EstablishmentSecret"})),
     "missing EstablishmentSecret"),
    (TOKEN[: len(TOKEN) // 2], "peering_token"),
])
def test_malformed_token_sends_no_request(capsys, token, fragment):
    session = FakeSession()
    rc, result, out = run(peering_establish, args(peering_token=token), session, capsys)
    assert rc == 1
    assert fragment in result["msg"]
    assert session.calls == []
    assert token not in result["msg"]


def test_state_present_needs_a_token(capsys):
    session = FakeSession()
    rc, result, dummy = run(peering_establish, dict(peer_name=NAME), session, capsys)
    assert rc == 1
    assert "peering_token" in result["msg"]
    assert session.calls == []


@pytest.mark.parametrize("name", ["Cluster01", "cluster_01", "a" * 64, "-x"])
def test_invalid_peer_name_sends_no_request(capsys, name):
    session = FakeSession()
    rc, result, dummy = run(peering_establish, args(peer_name=name), session, capsys)
    assert rc == 1
    assert result["msg"].startswith("peer_name")
    assert session.calls == []


def test_name_of_an_acceptor_peering_fails_before_writing(capsys):
    session = FakeSession(("GET", PATH, ok(acceptor(NAME, state="PENDING"))))
    rc, result, dummy = run(peering_establish, args(), session, capsys)
    assert rc == 1
    assert result["msg"] == pt.MSG_NAME_IS_ACCEPTOR.format(name=NAME)
    assert session.methods() == ["GET"]


@pytest.mark.parametrize("status, text, message", [
    (403, "a new peering token must be generated: invalid peering establishment secret", pt.MSG_SECRET_USED),
    (500, 'cannot create a peering within the same cluster "%s". Refer to the `exported-services` documentation '
          "if you want to export between partitions without peering" % SERVER_NAME, pt.MSG_SAME_CLUSTER),
    (500, 'cannot create peering with name: "%s"; there is an existing peering expecting to be dialed' % NAME,
     pt.MSG_NAME_IS_ACCEPTOR),
    (500, "failed to write peering: cannot write to peering that is marked for deletion", pt.MSG_DELETING),
])
def test_consul_refusals_are_explained(capsys, status, text, message):
    session = FakeSession(("GET", PATH, not_found(NAME)), ("POST", "/v1/peering/establish", Resp(status, text=text)),
                          ("GET", PATH, not_found(NAME)))
    rc, result, out = run(peering_establish, args(), session, capsys)
    assert rc == 1
    assert result["msg"].startswith(message.format(name=NAME))
    assert result["status"] == status
    assert_no_secret(out)


def test_secrets_echoed_by_consul_are_masked(capsys):
    text = "odd failure: token=%s secret=%s acl=%s" % (TOKEN, SECRET, ACL_TOKEN)
    session = FakeSession(("GET", PATH, not_found(NAME)), ("POST", "/v1/peering/establish", Resp(500, text=text)),
                          ("GET", PATH, not_found(NAME)))
    rc, result, out = run(peering_establish, args(token=ACL_TOKEN), session, capsys)
    assert rc == 1
    assert_no_secret(out)
    assert ACL_TOKEN not in out
    assert "odd failure" in result["msg"]


USED = "a new peering token must be generated: invalid peering establishment secret"


def test_failed_establishment_leaves_no_new_peering_behind(capsys):
    session = FakeSession(
        ("GET", PATH, not_found(NAME)),
        ("POST", "/v1/peering/establish", Resp(403, text=USED)),
        ("GET", PATH, ok(dialer(NAME, state="PENDING"))),
        ("DELETE", PATH, ok()),
        ("GET", PATH, not_found(NAME)),
    )
    rc, result, dummy = run(peering_establish, args(), session, capsys)
    assert rc == 1
    assert result["msg"].startswith(pt.MSG_SECRET_USED)


def test_failed_reestablishment_keeps_the_existing_peering(capsys):
    session = FakeSession(
        ("GET", PATH, ok(dialer(NAME, state="FAILING"))),
        ("POST", "/v1/peering/establish", Resp(403, text=USED)),
    )
    rc, result, dummy = run(peering_establish, args(), session, capsys)
    assert rc == 1
    assert "DELETE" not in session.methods()


def test_cleanup_trouble_does_not_hide_the_error(capsys):
    session = FakeSession(
        ("GET", PATH, not_found(NAME)),
        ("POST", "/v1/peering/establish", Resp(403, text=USED)),
        ("GET", PATH, Resp(403, text="Permission denied: token lacks permission 'peering:read'")),
    )
    rc, result, dummy = run(peering_establish, args(), session, capsys)
    assert rc == 1
    assert result["msg"].startswith(pt.MSG_SECRET_USED)


def test_missing_permission_is_named(capsys):
    text = "Permission denied: anonymous token lacks permission 'peering:write'. The anonymous token is used " \
           "implicitly when a request does not specify a token."
    session = FakeSession(("GET", PATH, not_found(NAME)), ("POST", "/v1/peering/establish", Resp(403, text=text)),
                          ("GET", PATH, not_found(NAME)))
    rc, result, dummy = run(peering_establish, args(), session, capsys)
    assert rc == 1
    assert "lacks permission 'peering:write'" in result["msg"]


def test_not_active_in_time_names_the_likely_cause(capsys):
    session = FakeSession(
        ("GET", PATH, not_found(NAME)),
        ESTABLISH,
        ("GET", PATH, ok(dialer(NAME, state="ESTABLISHING"))),
    )
    rc, result, dummy = run(peering_establish, args(wait_timeout=0), session, capsys)
    assert rc == 1
    assert "is ESTABLISHING, not ACTIVE" in result["msg"]
    assert "gRPC TLS port" in result["msg"]


def test_meta_difference_on_active_peering_warns(capsys):
    session = FakeSession(("GET", PATH, ok(dialer(NAME, meta={"a": "old"}))))
    rc, result, dummy = run(peering_establish, args(meta={"a": "new"}), session, capsys)
    assert result["changed"] is False
    assert any("meta" in w for w in result["warnings"])


def test_absent_needs_no_token(capsys):
    session = FakeSession(
        ("GET", PATH, ok(dialer(NAME))),
        ("DELETE", PATH, ok()),
        ("GET", PATH, not_found(NAME)),
    )
    rc, result, dummy = run(peering_establish, dict(peer_name=NAME, state="absent"), session, capsys)
    assert rc == 0
    assert result["changed"] is True
    assert result["operation"] == "delete"


def test_absent_when_there_is_none_is_one_get(capsys):
    session = FakeSession(("GET", PATH, not_found(NAME)))
    rc, result, dummy = run(peering_establish, dict(peer_name=NAME, state="absent"), session, capsys)
    assert result["changed"] is False
    assert session.methods() == ["GET"]


def test_token_with_padding_stripped_still_works(capsys):
    token = make_token().rstrip("=")
    session = FakeSession(("GET", PATH, ok(dialer(NAME))))
    rc, result, dummy = run(peering_establish, args(peering_token=token), session, capsys)
    assert rc == 0
    assert result["changed"] is False


def test_repointed_peering_must_reach_the_new_peer(capsys):
    session = FakeSession(
        ("GET", PATH, ok(dialer(NAME, peer_id=OTHER_PEER_ID))),
        ESTABLISH,
        ("GET", PATH, ok(dialer(NAME, peer_id=OTHER_PEER_ID))),
    )
    rc, result, dummy = run(peering_establish, args(wait_timeout=0), session, capsys)
    assert rc == 1
    assert "still ACTIVE with its previous peer" in result["msg"]
