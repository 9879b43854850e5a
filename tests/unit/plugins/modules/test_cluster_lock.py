# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""cluster_lock through its real main() and its domain functions, with Consul's HTTP API stubbed."""

from __future__ import annotations

import base64
import json

import pytest

from ansible_collections.seed.consul_peering.plugins.module_utils import _lock
from ansible_collections.seed.consul_peering.plugins.module_utils.consul_api import ConsulError
from ansible_collections.seed.consul_peering.plugins.modules import cluster_lock

from ..peering_stubs import FakeSession, Resp, client, ok, run

KEY = "seed/consul_peering/lock"
KV = "/v1/kv/" + KEY
SID = "a6ad00ae-8fd5-3b04-0689-eb0c55e4a648"
OTHER = "12e2bef8-3c37-eaed-bb31-b3211265f785"


def held(session=OTHER, holder="AWX job 7"):
    value = base64.b64encode(json.dumps({"holder": holder, "session": session}).encode()).decode()
    return ok([{"Key": KEY, "Value": value, "Session": session, "LockIndex": 1, "ModifyIndex": 9}])


def free():
    return Resp(404, text="")


def info(session=OTHER):
    return ok([{"ID": session, "Name": "seed.consul_peering lock", "Node": "lab-c1-s1", "TTL": "600s"}])


def test_acquire_free_lock_creates_a_ttl_delete_session(capsys):
    session = FakeSession(("GET", KV, free()),
                          ("PUT", "/v1/session/create", ok({"ID": SID})),
                          ("PUT", KV, ok(True)))
    rc, result, dummy = run(cluster_lock, dict(holder="me", ttl=30), session, capsys)
    assert rc == 0 and result["changed"] is True and result["acquired"] is True
    assert result["session"] == SID
    create = session.calls[1].body
    assert create == {"Name": "seed.consul_peering lock", "TTL": "30s", "Behavior": "delete", "LockDelay": "0s",
                      "NodeChecks": []}
    assert session.calls[2].params["acquire"] == SID
    assert session.calls[2].body == {"holder": "me", "session": SID}


def test_acquire_waits_for_the_holder_then_takes_it(capsys):
    session = FakeSession(("GET", KV, free()),
                          ("PUT", "/v1/session/create", ok({"ID": SID})),
                          ("PUT", KV, ok(False)),
                          ("GET", KV, held()),
                          ("GET", KV, free()),       # the blocking query wakes on the release
                          ("PUT", KV, ok(True)))
    rc, result, dummy = run(cluster_lock, dict(holder="me"), session, capsys)
    assert rc == 0 and result["acquired"] is True and result["attempts"] == 2
    assert "index" in session.calls[4].params and "wait" in session.calls[4].params


def test_timeout_names_the_holder_and_destroys_its_own_session():
    session = FakeSession(("GET", KV, free()),
                          ("PUT", "/v1/session/create", ok({"ID": SID})),
                          ("PUT", KV, ok(False)),
                          ("GET", KV, held()),
                          ("GET", "/v1/session/info/" + OTHER, info()),
                          ("PUT", "/v1/session/destroy/" + SID, ok(True)))
    c = client(session)
    with pytest.raises(ConsulError) as exc:
        _lock.acquire(c, KEY, "me", 60, 0, clock=iter([0, 1, 1]).__next__, sleep=lambda s: None)
    msg = str(exc.value)
    assert "within 0s" in msg and OTHER in msg and "AWX job 7" in msg and "lab-c1-s1" in msg
    assert "force=true" in msg
    assert not session.script and not session.unexpected


def test_check_mode_creates_no_session(capsys):
    session = FakeSession(("GET", KV, held()), ("GET", "/v1/session/info/" + OTHER, info()))
    rc, result, dummy = run(cluster_lock, {}, session, capsys, check_mode=True)
    assert rc == 0 and result["changed"] is True and result["acquired"] is False
    assert OTHER in result["held_by"]
    assert "PUT" not in session.methods()


def test_release_destroys_the_session(capsys):
    session = FakeSession(("GET", KV, held(SID)),
                          ("GET", "/v1/session/info/" + SID, info(SID)),
                          ("PUT", "/v1/session/destroy/" + SID, ok(True)))
    rc, result, dummy = run(cluster_lock, dict(state="absent", session=SID), session, capsys)
    assert rc == 0 and result["changed"] is True and result["acquired"] is False


def test_release_of_a_gone_session_is_ok_unchanged(capsys):
    session = FakeSession(("GET", KV, free()), ("GET", "/v1/session/info/" + SID, ok([])))
    rc, result, dummy = run(cluster_lock, dict(state="absent", session=SID), session, capsys)
    assert rc == 0 and result["changed"] is False


def test_release_in_check_mode_writes_nothing(capsys):
    session = FakeSession(("GET", KV, held(SID)), ("GET", "/v1/session/info/" + SID, info(SID)))
    rc, result, dummy = run(cluster_lock, dict(state="absent", session=SID), session, capsys, check_mode=True)
    assert result["changed"] is True and session.methods() == ["GET", "GET"]


def test_force_breaks_whatever_holds_it(capsys):
    session = FakeSession(("GET", KV, held()),
                          ("GET", "/v1/session/info/" + OTHER, info()),
                          ("PUT", "/v1/session/destroy/" + OTHER, ok(True)))
    rc, result, dummy = run(cluster_lock, dict(state="absent", force=True), session, capsys)
    assert result["changed"] is True and "AWX job 7" in result["released"]


def test_renew_checks_the_lock_is_still_ours(capsys):
    session = FakeSession(("GET", KV, held(SID)), ("PUT", "/v1/session/renew/" + SID, info(SID)))
    rc, result, dummy = run(cluster_lock, dict(session=SID), session, capsys)
    assert rc == 0 and result["changed"] is False and result["acquired"] is True


def test_renew_of_a_lost_lock_fails_clearly(capsys):
    session = FakeSession(("GET", KV, held()), ("GET", "/v1/session/info/" + OTHER, info()))
    rc, result, dummy = run(cluster_lock, dict(session=SID), session, capsys)
    assert rc == 1 and "no longer held by session %s" % SID in result["msg"] and OTHER in result["msg"]


def test_renew_of_an_expired_session_fails(capsys):
    session = FakeSession(("GET", KV, held(SID)),
                          ("PUT", "/v1/session/renew/" + SID, Resp(404, text="Session id '%s' not found" % SID)))
    rc, result, dummy = run(cluster_lock, dict(session=SID), session, capsys)
    assert rc == 1 and "expired" in result["msg"]


@pytest.mark.parametrize("args, words", [
    (dict(state="absent"), "needs session"),
    (dict(ttl=5), "ttl must be 10..86400"),
    (dict(key="/x"), "leading or trailing"),
    (dict(key="a/../b"), "'.' or '..'"),
    (dict(force=True), "only for state=absent"),
    (dict(wait_timeout=-1), "wait_timeout"),
    (dict(state="absent", session=".."), "session"),
])
def test_bad_input_fails_before_any_request(capsys, args, words):
    session = FakeSession()
    rc, result, dummy = run(cluster_lock, args, session, capsys)
    assert rc == 1 and words in result["msg"] and session.calls == []


def test_kv_paths_keep_slashes_as_segments():
    session = FakeSession(("GET", "/v1/kv/a/b%20c/d", free()))
    assert client(session).kv_get("a/b c/d").value is None


def test_acquire_is_retried_after_a_leader_loss_500():
    session = FakeSession(("PUT", KV, Resp(500, text="No cluster leader")), ("PUT", KV, ok(True)))
    assert client(session).kv_acquire(KEY, {"holder": "x"}, SID) is True


def test_session_create_is_retried_after_a_leader_loss():
    # A session from a lost answer holds nothing and expires with its TTL: repeating is harmless.
    session = FakeSession(("PUT", "/v1/session/create", Resp(500, text="No cluster leader")),
                          ("PUT", "/v1/session/create", ok({"ID": SID})))
    assert client(session).create_session("x", 30) == SID


@pytest.mark.parametrize("text", ["No cluster leader", "rpc error making call: EOF"])
def test_a_cas_write_lost_in_a_leader_change_may_have_been_applied(text):
    # Not repeated by the transport (not safe), but flagged so that a CAS loop re-reads and retries.
    session = FakeSession(("PUT", "/v1/config", Resp(500, text=text)))
    with pytest.raises(ConsulError) as exc:
        client(session).cas_put_config_entry({"Kind": "exported-services", "Name": "default"}, 7)
    assert exc.value.maybe_applied is True and len(session.calls) == 1


def test_exported_services_survives_a_leader_change_during_its_cas_write(capsys):
    from ansible_collections.seed.consul_peering.plugins.modules import exported_services
    entry = {"Kind": "exported-services", "Name": "default", "ModifyIndex": 7,
             "Services": [{"Name": "backend", "Consumers": [{"Peer": "cluster-2"}]}]}
    after = dict(entry, ModifyIndex=9, Services=entry["Services"] + [
        {"Name": "other", "Consumers": [{"Peer": "cluster-2"}]}])
    path = "/v1/config/exported-services/default"
    session = FakeSession(("GET", path, ok(entry)),
                          ("PUT", "/v1/config", Resp(500, text="rpc error making call: EOF")),
                          ("GET", path, ok(entry)),
                          ("PUT", "/v1/config", ok(True)),
                          ("GET", path, ok(after)))
    rc, result, dummy = run(exported_services, dict(services=[{"name": "other", "consumers": [{"peer": "cluster-2"}]}]),
                            session, capsys)
    assert rc == 0 and result["changed"] is True
