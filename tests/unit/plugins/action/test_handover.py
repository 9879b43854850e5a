# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""One-side runs: the planner's handover decisions (table by table) and the handover file (vault_file)."""

from __future__ import annotations

import base64
import json
import os
import stat

import pytest

from ansible.plugins.filter.encryption import do_vault

from ansible_collections.seed.consul_peering.plugins.action import cluster_peering_handover as ho
from ansible_collections.seed.consul_peering.plugins.action.cluster_peering_plan import plan_or_errors

from .test_cluster_peering_plan import acc, cl, dial, ok, writes

NOW = 1_800_000_000
DAY = 86400


def handover(entries=None, medium="vault_file", max_age=DAY):
    return dict(medium=medium, file="/h/dc1-dc2.vault", now=NOW, max_age=max_age, entries=entries or {})


def entry(peering_id="ID-A", age=60):
    return {"acceptor": "c1", "dialer": "c2", "peering_id": peering_id, "generated_at": NOW - age}


def acceptor_run(peerings=(), entries=None, **kw):
    """c1 accepts here; c2 is another team's (remote)."""
    clusters = {"c1": cl(peerings, exports=[{"name": "backend"}]), "c2": dict(cl(), remote=True, observed=None)}
    return plan_or_errors(clusters, acceptors=["c1"], dialers=["c2"], handover=handover(entries, **kw))


def dialer_run(peerings=(), entries=None, remote_exports=None, **kw):
    """c2 dials here; c1 is another team's (remote)."""
    clusters = {"c1": dict(cl(exports=remote_exports), remote=True, observed=None), "c2": cl(peerings)}
    return plan_or_errors(clusters, acceptors=["c1"], dialers=["c2"], handover=handover(entries, **kw))


# --- the acceptor's team -------------------------------------------------------------------------

def test_acceptor_run_from_nothing_publishes_one_token_and_contacts_nobody_else():
    out = ok(acceptor_run())
    p = out["c1"]
    assert [(t["peer_name"], t["key"], t["acceptor_name"]) for t in p["handover_tokens"]] == [("c2", "c1/c2", "c1")]
    assert p["handover_tokens"][0]["meta"]["managed-by"] == "seed.consul_peering"
    assert not p["tokens"] and not p["establish"] and not p["wait"] and not p["agree"] and p["changes"]
    assert p["exports"] == [{"name": "backend", "consumers": [{"peer": "c2"}]}]
    assert out["c2"]["skip"] and "cluster_peering_remote" in out["c2"]["summary"][0]
    assert not writes(out["c2"]) and not out["c2"]["handover_tokens"]


def test_acceptor_rerun_while_pending_with_a_valid_token_in_the_file_changes_nothing():
    out = ok(acceptor_run([acc("c2", "ID-A", "PENDING")], {"c1/c2": entry()}))
    p = out["c1"]
    assert not p["handover_tokens"] and not writes(p) and not p["changes"]
    assert "PENDING" in p["reports"][0] and "no new token" in p["reports"][0]


@pytest.mark.parametrize("entries, why", [
    ({}, "holds no token"),
    ({"c1/c2": entry(age=DAY + 1)}, "older than cluster_peering_handover_max_age"),
    ({"c1/c2": entry(peering_id="ID-OLD")}, "holds no token"),
], ids=["no-entry", "stale-entry", "entry-of-another-peering"])
def test_acceptor_rerun_while_pending_replaces_a_missing_or_stale_token(entries, why):
    p = ok(acceptor_run([acc("c2", "ID-A", "PENDING")], entries))["c1"]
    assert [t["peer_name"] for t in p["handover_tokens"]] == ["c2"]
    assert not p["delete_acceptor"]  # a new token for the same name replaces the unused secret
    assert why in p["summary"][0] if why != "holds no token" or entries == {} else True


@pytest.mark.parametrize("state", ["ACTIVE", "ESTABLISHING", "FAILING"])
def test_acceptor_rerun_once_live_changes_nothing_and_verifies_its_exports(state):
    p = ok(acceptor_run([acc("c2", "ID-A", state)]))["c1"]
    assert not p["handover_tokens"] and not writes(p) and not p["changes"]
    assert p["verify_exports"] == [{"peer_name": "c2", "services": ["backend"]}]
    assert not p["verify"]  # the dialer's imports cannot be seen from here


@pytest.mark.parametrize("state", ["TERMINATED", "DELETING"])
def test_acceptor_with_a_dead_peering_removes_it_and_hands_over_a_new_token(state):
    p = ok(acceptor_run([acc("c2", "ID-A", state)]))["c1"]
    assert p["delete_acceptor"] == ["c2"] and [t["peer_name"] for t in p["handover_tokens"]] == ["c2"]


def test_acceptor_reports_a_used_token_left_in_the_file():
    p = ok(acceptor_run([acc("c2", "ID-A")], {"c1/c2": entry()}))["c1"]
    assert not p["changes"] and "used token" in p["reports"][0]


def test_unmanaged_live_dialing_peering_under_the_name_is_refused_on_the_acceptor():
    out = acceptor_run([dial("c2", "ID-X", managed=False)])
    assert out["errors"] and "not managed by this collection" in out["errors"][0]


def test_live_accepting_peering_from_before_the_mark_is_kept():
    # The dialer's PeerID cannot be seen from here: a live acceptor record under the name is the pair.
    p = ok(acceptor_run([acc("c2", "ID-A", managed=False)]))["c1"]
    assert not p["changes"] and not p["handover_tokens"]


def test_acceptor_unpeer_removes_only_its_side():
    clusters = {"c1": cl([acc("c2", "ID-A")], state="absent"), "c2": dict(cl(), remote=True, observed=None)}
    p = ok(plan_or_errors(clusters, acceptors=["c1"], dialers=["c2"], handover=handover()))["c1"]
    assert p["delete_acceptor"] == ["c2"] and not p["handover_tokens"]


# --- the dialer's team ---------------------------------------------------------------------------

def test_dialer_run_establishes_from_the_file_and_waits_for_active():
    out = ok(dialer_run([], {"c1/c2": entry()}, remote_exports=[{"name": "backend"}]))
    p = out["c2"]
    assert [(e["peer_name"], e["key"], e["peering_id"]) for e in p["handover_establish"]] == [("c1", "c1/c2", "ID-A")]
    assert p["wait"] == [{"peer_name": "c1"}] and not p["establish"] and p["changes"]
    assert p["verify"] == [{"peer_name": "c1", "expect_services": ["backend"]}]
    assert out["c1"]["skip"] and not out["c1"]["handover_tokens"]


def test_dialer_verifies_only_the_remote_exports_meant_for_it():
    exports = [{"name": "a"}, {"name": "b", "peers": ["other"]}, {"name": "c", "peers": ["c2"]}]
    p = ok(dialer_run([], {"c1/c2": entry()}, remote_exports=exports))["c2"]
    assert p["verify"] == [{"peer_name": "c1", "expect_services": ["a", "c"]}]


def test_dialer_without_a_token_in_the_file_is_refused_naming_the_acceptors_team():
    out = dialer_run([], {})
    assert out["errors"] and "holds no token" in out["errors"][0]
    assert "the acceptor's team must run the role again" in out["errors"][0]


def test_stale_token_is_refused():
    out = dialer_run([], {"c1/c2": entry(age=DAY + 5)})
    assert out["errors"] and "cluster_peering_handover_max_age" in out["errors"][0]
    assert "the acceptor's team must run the role again" in out["errors"][0]
    assert ok(dialer_run([], {"c1/c2": entry(age=DAY + 5)}, max_age=2 * DAY))["c2"]["handover_establish"]


@pytest.mark.parametrize("state", ["TERMINATED", "DELETING", "ACTIVE"])
def test_token_already_dialed_by_this_cluster_is_refused(state):
    # A peering here carries the token's peering ID: the secret was spent (under this name, dead, or another name).
    name = "c1" if state != "ACTIVE" else "c1-old"
    out = dialer_run([dial(name, "ID-A", state)], {"c1/c2": entry()})
    assert out["errors"] and "already used" in out["errors"][0], out
    assert "the acceptor's team must run the role again" in out["errors"][0]


def test_terminated_peering_of_another_id_is_dialed_again():
    p = ok(dialer_run([dial("c1", "ID-OLD", "TERMINATED")], {"c1/c2": entry()}))["c2"]
    assert p["handover_establish"] and not p["delete_dialer"]


@pytest.mark.parametrize("state", ["ACTIVE", "ESTABLISHING", "FAILING"])
def test_dialer_rerun_once_live_changes_nothing(state):
    p = ok(dialer_run([dial("c1", "ID-A", state)], {}))["c2"]
    assert not p["changes"] and not p["handover_establish"] and not p["handover_drop"] and not writes(p)


def test_dialer_removes_a_used_token_left_in_the_file():
    p = ok(dialer_run([dial("c1", "ID-A")], {"c1/c2": entry()}))["c2"]
    assert p["handover_drop"] == ["c1/c2"] and p["changes"] and not p["handover_establish"]


def test_dialer_keeps_a_live_peering_and_ignores_a_token_of_another_peering():
    p = ok(dialer_run([dial("c1", "ID-A")], {"c1/c2": entry(peering_id="ID-NEW")}))["c2"]
    assert not p["changes"] and "not used" in p["reports"][0]


# --- where one-side runs are refused -------------------------------------------------------------

def test_remote_peer_with_the_memory_medium_is_refused():
    out = acceptor_run(medium="memory")
    assert out["errors"] and "cluster_peering_handover: vault_file" in out["errors"][0]


def test_remote_hosts_need_not_be_in_the_batch():
    clusters = {"c1": cl(), "c2": dict(cl(), remote=True, observed=None)}
    out = ok(plan_or_errors(clusters, acceptors=["c1"], dialers=["c2"], batch=["c1"], handover=handover()))
    assert out["c1"]["handover_tokens"]


def test_local_pairs_of_a_mixed_run_still_hand_over_in_memory():
    clusters = {"c1": cl(), "c2": dict(cl(), remote=True, observed=None), "c3": cl()}
    out = ok(plan_or_errors(clusters, acceptors=["c1"], dialers=["c2", "c3"], handover=handover()))
    assert [t["peer_name"] for t in out["c1"]["tokens"]] == ["c3"]
    assert [t["peer_name"] for t in out["c1"]["handover_tokens"]] == ["c2"]
    assert out["c3"]["establish"] and not out["c3"]["handover_establish"]


def test_two_remote_hosts_are_not_planned():
    clusters = {"c1": dict(cl(), remote=True, observed=None), "c2": dict(cl(), remote=True, observed=None),
                "c3": cl()}
    entries = {"c1/c3": dict(entry(), dialer="c3")}
    out = ok(plan_or_errors(clusters, acceptors=["c1"], dialers=["c2", "c3"], handover=handover(entries)))
    assert all(not writes(p) and not p["handover_tokens"] for p in out.values())
    assert out["c1"]["skip"] and out["c2"]["skip"] and not out["c2"]["summary"][1:]
    assert [e["key"] for e in out["c3"]["handover_establish"]] == ["c1/c3"]


def test_unreadable_local_side_of_a_remote_pair_is_refused():
    clusters = {"c1": cl(failed=True), "c2": dict(cl(), remote=True, observed=None)}
    out = plan_or_errors(clusters, acceptors=["c1"], dialers=["c2"], handover=handover())
    assert out["errors"] and "c1 could not be read" in out["errors"][0]


# --- the handover file ---------------------------------------------------------------------------

def token(peer_id="ID-A", secret="s3cr3t-establishment"):
    body = {"CA": ["pem"], "ServerAddresses": ["127.0.0.1:8503"], "ServerName": "server.dc1.peering.x",
            "PeerID": peer_id, "EstablishmentSecret": secret}
    return base64.b64encode(json.dumps(body).encode()).decode()


def published(path, tokens, password="pw", now=NOW):
    doc, dummy = ho.load(str(path), password)
    keys = ho.add_tokens(doc, tokens, now)
    ho.save(str(path), password, doc)
    return keys


def test_file_round_trip_is_encrypted_0600_and_holds_what_the_dialer_checks(tmp_path):
    path = tmp_path / "h.vault"
    tok = token()
    assert published(path, [dict(acceptor="c1", dialer="c2", peering_token=tok)]) == ["c1/c2"]
    st = os.stat(path)
    assert stat.S_IMODE(st.st_mode) == 0o600
    raw = path.read_text()
    assert raw.startswith("$ANSIBLE_VAULT;1.2;AES256;filter_default") and tok not in raw and "ID-A" not in raw
    doc, exists = ho.load(str(path), "pw")
    assert exists
    assert ho.public(doc["handovers"]["c1/c2"]) == dict(acceptor="c1", dialer="c2", peering_id="ID-A", generated_at=NOW)
    assert ho.pick(doc, ["c1/c2"], str(path)) == {"c1/c2": tok}
    assert [p.name for p in tmp_path.iterdir()] == ["h.vault"]  # no temporary file left


def test_file_is_what_the_vault_filter_makes(tmp_path):
    """The ansible.builtin.vault filter's output is a handover file, and ours is one the unvault filter reads."""
    doc = dict(format=ho.FORMAT, handovers={"c1/c2": dict(acceptor="c1", dialer="c2", peering_id="ID-A",
                                                          generated_at=NOW, peering_token=token())})
    path = tmp_path / "filter.vault"
    path.write_text(str(do_vault(json.dumps(doc), "pw")))
    path.chmod(0o600)
    assert ho.load(str(path), "pw")[0] == doc
    from ansible.parsing.vault import VaultLib, VaultSecret
    mine = ho.encrypt(doc, "pw")
    assert json.loads(VaultLib([("filter_default", VaultSecret(b"pw"))]).decrypt(mine)) == doc


def test_new_file_is_0600_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        published(tmp_path / "h.vault", [dict(acceptor="c1", dialer="c2", peering_token=token())])
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "h.vault").st_mode) == 0o600


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o666, 0o602])
def test_file_with_a_looser_mode_is_refused_unread(tmp_path, mode):
    path = tmp_path / "h.vault"
    published(path, [dict(acceptor="c1", dialer="c2", peering_token=token())])
    path.chmod(mode)
    with pytest.raises(ho.HandoverError) as e:
        ho.load(str(path), "wrong-password-never-tried")
    assert "has mode %04o" % mode in str(e.value) and "must be 0600" in str(e.value)
    assert "the acceptor's team must run the role again" in str(e.value)


def test_symlink_is_not_followed(tmp_path):
    target = tmp_path / "real.vault"
    published(target, [dict(acceptor="c1", dialer="c2", peering_token=token())])
    link = tmp_path / "link.vault"
    link.symlink_to(target)
    with pytest.raises(ho.HandoverError):
        ho.load(str(link), "pw")


def test_missing_file_is_an_empty_document(tmp_path):
    doc, exists = ho.load(str(tmp_path / "none.vault"), "pw")
    assert not exists and doc == ho.empty_doc()


@pytest.mark.parametrize("content, password, needle", [
    (None, "other", "cannot be decrypted"),
    ("not a vault", "pw", "not an ansible-vault file"),
    (str(do_vault('{"x": 1}', "pw")), "pw", "not to a handover document"),
])
def test_unreadable_files_are_refused_without_quoting_them(tmp_path, content, password, needle):
    path = tmp_path / "h.vault"
    if content is None:
        published(path, [dict(acceptor="c1", dialer="c2", peering_token=token())])
    else:
        path.write_text(content)
        path.chmod(0o600)
    with pytest.raises(ho.HandoverError) as e:
        ho.load(str(path), password)
    assert needle in str(e.value) and token() not in str(e.value)


def test_empty_password_is_refused(tmp_path):
    with pytest.raises(ho.HandoverError, match="password is empty"):
        ho.save(str(tmp_path / "h.vault"), "", dict(ho.empty_doc(), handovers={"k": {}}))


def test_removing_the_last_entry_deletes_the_file(tmp_path):
    path = tmp_path / "h.vault"
    published(path, [dict(acceptor="c1", dialer="c2", peering_token=token()),
                     dict(acceptor="c1", dialer="c3", peering_token=token("ID-B"))])
    doc, dummy = ho.load(str(path), "pw")
    del doc["handovers"]["c1/c2"]
    ho.save(str(path), "pw", doc)
    assert sorted(ho.load(str(path), "pw")[0]["handovers"]) == ["c1/c3"]
    doc["handovers"].clear()
    ho.save(str(path), "pw", doc)
    assert not path.exists()


def test_an_entry_whose_token_is_of_another_peering_is_refused(tmp_path):
    doc = dict(ho.empty_doc())
    ho.add_tokens(doc, [dict(acceptor="c1", dialer="c2", peering_token=token())], NOW)
    doc["handovers"]["c1/c2"]["peering_id"] = "ID-EDITED"
    with pytest.raises(ho.HandoverError, match="does not match its token"):
        ho.pick(doc, ["c1/c2"], "p")
    with pytest.raises(ho.HandoverError, match="holds no token for c1/c9"):
        ho.pick(doc, ["c1/c9"], "p")


@pytest.mark.parametrize("bad", ["", "not-base64!", base64.b64encode(b'{"PeerID": "x"}').decode()])
def test_a_token_that_is_not_a_peering_token_is_not_published(bad):
    with pytest.raises(ho.HandoverError):
        ho.add_tokens(ho.empty_doc(), [dict(acceptor="c1", dialer="c2", peering_token=bad)], NOW)


def test_results_helpers():
    results = [{"item": {"key": "c1/c2"}, "changed": True},
               {"item": {"key": "c1/c3"}, "failed": True, "msg": "x"},
               {"item": {"key": "c1/c4"}, "skipped": True}]
    assert ho.used_keys(results) == ["c1/c2"]
    tokens = [{"item": {"acceptor_name": "c1", "peer_name": "c2"}, "peering_token": "T"},
              {"item": {"acceptor_name": "c1", "peer_name": "c3"}, "changed": False}]
    assert ho.published(tokens) == [dict(acceptor="c1", dialer="c2", peering_token="T")]


def test_one_side_runs_lock_their_own_cluster_only_when_they_change_peerings():
    assert ok(acceptor_run())["c1"]["locks"] == ["c1"]
    assert ok(dialer_run([], {"c1/c2": entry()}))["c2"]["locks"] == ["c2"]
    # Nothing to do: no lock (a rerun writes nothing, not even a session).
    assert ok(acceptor_run([acc("c2", "ID-A", "PENDING")], {"c1/c2": entry()}))["c1"]["locks"] == []
    assert ok(dialer_run([dial("c1", "ID-A")], {}))["c2"]["locks"] == []
