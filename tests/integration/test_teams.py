# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Two teams, two runs (docs/teams.md): each team holds only its own cluster's ACL token.

On an ACL lab of its own (LAB_ACL=1, ports from TEAMS_LAB_PORT_BASE, default 13000), the acceptor's
team runs playbooks/peer_clusters.yml with an inventory where the dialer is only named
(cluster_peering_remote), and hands the token over in a vault_file; the dialer's team runs later with
its own inventory. Reruns change nothing; a stale, a reused and a world-readable handover file are
refused; no plaintext peering token is left on disk (the test's directories, /tmp, ~/.ansible) or in
any output at -vvv. ansible-runner runs the three-job AWX workflow of docs/teams.md.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time

import pytest
import yaml
from ansible.parsing.vault import VaultLib, VaultSecret

from conftest import ROOT, acl_lab_up, consul, wait_for
from test_acl import ACCEPTOR_RULES, DIALER_RULES, LOCK_RULES
from test_runner import assert_no_secret, inject_credential, job_stats, run_job
from test_secrets import Scanner, all_forms

PORT_BASE = os.environ.get("TEAMS_LAB_PORT_BASE", "13000")
PLAYBOOK = os.path.join(ROOT, "playbooks", "peer_clusters.yml")
TEAMS_DOC = os.path.join(ROOT, "docs", "teams.md")
PASSPHRASE = "handover passphrase agreed by both teams 7c1e"
RUN_AGAIN = "the acceptor's team must run the role again"
# docs/teams.md: each team's rules on its own cluster; in a one-side run the dialer takes the lock too.
TEAM_RULES = {1: "\n".join(ACCEPTOR_RULES), 2: "\n".join(DIALER_RULES + LOCK_RULES)}


@pytest.fixture(scope="module")
def teams_lab(tmp_path_factory):
    state = tmp_path_factory.mktemp("teams-lab")
    with acl_lab_up(state, PORT_BASE) as lab:
        lab["STATE"] = str(state)
        lab["MGMT"] = {}
        for i in (1, 2):
            with open(lab["CLUSTER%d_TOKEN_FILE" % i]) as f:
                lab["MGMT"][i] = f.read().strip()
        yield lab


def mgmt(lab, i, method="GET", path="/", body=None):
    return consul(lab["CLUSTER%d_URL" % i], method, path, body, token=lab["MGMT"][i])


def reset(lab):
    for i in (1, 2):
        for p in mgmt(lab, i, path="/v1/peerings")[1] or []:
            mgmt(lab, i, "DELETE", "/v1/peering/" + p["Name"])
        mgmt(lab, i, "DELETE", "/v1/config/exported-services/default")
    for i in (1, 2):
        assert wait_for(lambda i=i: not mgmt(lab, i, path="/v1/peerings")[1], timeout=60)
    assert mgmt(lab, 1, "PUT", "/v1/agent/service/register", {"Name": "backend", "Port": 9090})[0] == 200


def team_token(lab, i, directory):
    """A file (0600) with a new ACL token on cluster i only, with the team's rules (docs/teams.md)."""
    name = "team-%d-%d" % (i, time.monotonic_ns())
    status, policy = mgmt(lab, i, "PUT", "/v1/acl/policy", {"Name": name, "Rules": TEAM_RULES[i]})
    assert status == 200, policy
    status, token = mgmt(lab, i, "PUT", "/v1/acl/token", {"Policies": [{"Name": name}]})
    assert status == 200, token
    path = directory / "acl.token"
    path.write_text(token["SecretID"])
    path.chmod(0o600)
    return str(path), token["SecretID"]


class Teams:
    """Two teams' directories, ACL tokens (one cluster each) and inventories, with a shared handover file."""

    def __init__(self, lab, tmp_path):
        self.lab = lab
        self.share = tmp_path / "share"
        self.share.mkdir(mode=0o700)
        self.handover = self.share / "dc1-dc2.vault"
        self.dirs, self.tokens, self.inventories, self.secret_files = {}, {}, {}, set()
        for i, team in ((1, "acceptor"), (2, "dialer")):
            d = tmp_path / team
            d.mkdir()
            self.dirs[team] = d
            path, self.tokens[team] = team_token(lab, i, d)
            pw = d / "handover.pass"
            pw.write_text(PASSPHRASE)
            pw.chmod(0o600)
            self.secret_files.update({path, str(pw)})
            self.inventories[team] = self.inventory(team, path, str(pw))

    def inventory(self, team, token_file, password_file):
        me = {"cluster_peering_url": self.lab["CLUSTER%d_URL" % (1 if team == "acceptor" else 2)],
              # Read at run time: the inventory names the files, never the secrets.
              "cluster_peering_token": "{{ lookup('ansible.builtin.file', '%s') }}" % token_file}
        if team == "acceptor":
            me["cluster_peering_exports"] = [{"name": "backend"}]
            acceptors, dialers = {"dc1": me}, {"dc2": {"cluster_peering_remote": True}}
        else:
            acceptors = {"dc1": {"cluster_peering_remote": True, "cluster_peering_exports": [{"name": "backend"}]}}
            dialers = {"dc2": me}
        inv = {"all": {
            "vars": {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}",
                     "cluster_peering_handover": "vault_file",
                     "cluster_peering_handover_file": str(self.handover),
                     "cluster_peering_handover_password": "{{ lookup('ansible.builtin.file', '%s') }}"
                                                          % password_file},
            "children": {"consul_acceptors": {"hosts": acceptors}, "consul_dialers": {"hosts": dialers}}}}
        path = self.dirs[team] / "inventory.yml"
        path.write_text(yaml.safe_dump(inv))
        return str(path)

    def secrets(self):
        return {PASSPHRASE, self.tokens["acceptor"], self.tokens["dialer"], self.lab["MGMT"][1], self.lab["MGMT"][2]}


def play(scan, ansible, teams, team, label, extra=()):
    run = scan.run(ansible, label, [PLAYBOOK, "-i", teams.inventories[team]] + list(extra), None, None, playbook=True)
    return run


def results(run):
    text = run.stdout
    return json.loads(text[text.rfind('{\n  "plays"'):])


def changed(run):
    return {h: s["changed"] for h, s in results(run)["stats"].items()}


def failures(run):
    return [(t["task"]["name"].split(" : ")[-1], h, r.get("msg")) for p in results(run)["plays"]
            for t in p["tasks"] for h, r in t["hosts"].items() if r.get("failed") and not r.get("ignore_errors")]


def decrypt(path):
    """Test side: the handover file's plaintext, with the passphrase both teams share."""
    with open(path, "rb") as f:
        return json.loads(VaultLib([("filter_default", VaultSecret(PASSPHRASE.encode()))]).decrypt(f.read()))


def peering(lab, i, name):
    status, body = mgmt(lab, i, path="/v1/peering/" + name)
    return body if status == 200 else None


def scan_tree(roots, needles, skip=()):
    """([(path, needle index)], files read) for regular files under roots that contain a needle."""
    hits, read = [], 0
    for root in roots:
        for base, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if os.path.join(base, d) not in skip]
            for name in files:
                path = os.path.join(base, name)
                try:
                    if os.path.islink(path) or not os.path.isfile(path) or os.path.getsize(path) > 50 * 2 ** 20:
                        continue
                    with open(path, "rb") as f:
                        data = f.read()
                except OSError:
                    continue
                read += 1
                for n, needle in enumerate(needles):
                    if needle.encode() in data:
                        hits.append((path, n))
    return hits, read


@pytest.fixture
def teams(teams_lab, tmp_path):
    reset(teams_lab)
    yield Teams(teams_lab, tmp_path)
    reset(teams_lab)


def test_two_teams_peer_verify_rerun_and_leave_no_plaintext_token(teams, ansible, tmp_path):
    lab = teams.lab
    scan = Scanner(tmp_path)

    first = play(scan, ansible, teams, "acceptor", "acceptor's team")
    assert first.rc == 0, first.output[-5000:]
    assert changed(first) == {"dc1": 3, "dc2": 0}  # token, handover file, exports; dc2 never contacted
    st = os.stat(teams.handover)
    assert st.st_mode & 0o777 == 0o600
    doc = decrypt(teams.handover)
    entry = doc["handovers"]["dc1/dc2"]
    token = entry["peering_token"]  # known to the test only (memory), to scan for it
    acc = peering(lab, 1, "dc2")
    assert acc["State"] == "PENDING" and entry["peering_id"] == acc["ID"]
    assert peering(lab, 2, "dc1") is None
    assert os.listdir(teams.share) == ["dc1-dc2.vault"]

    again = play(scan, ansible, teams, "acceptor", "acceptor's team again (PENDING)")
    assert again.rc == 0 and changed(again) == {"dc1": 0, "dc2": 0}, again.output[-4000:]
    assert decrypt(teams.handover)["handovers"]["dc1/dc2"]["peering_token"] == token  # no new token
    assert "no new token is made until then" in again.stdout

    # The dialer's plan first: --check --diff neither reads the token nor writes anything.
    dry = play(scan, ansible, teams, "dialer", "dialer's team --check --diff", ["--check", "--diff"])
    assert dry.rc == 0 and "establish with the token dc1's team handed over" in dry.stdout, dry.output[-4000:]
    assert peering(lab, 2, "dc1") is None and teams.handover.exists()

    dial = play(scan, ansible, teams, "dialer", "dialer's team")
    assert dial.rc == 0, dial.output[-5000:]
    assert changed(dial) == {"dc1": 0, "dc2": 2}  # establish, handover file removed
    assert not teams.handover.exists() and os.listdir(teams.share) == []
    d, a = peering(lab, 2, "dc1"), peering(lab, 1, "dc2")
    assert d["State"] == a["State"] == "ACTIVE" and d["PeerID"] == a["ID"]
    assert d["Meta"]["managed-by"] == a["Meta"]["managed-by"] == "seed.consul_peering"
    imported = mgmt(lab, 2, path="/v1/health/service/backend?peer=dc1")[1]
    assert [e["Service"]["Service"] for e in imported] == ["backend"]
    verified = [t for p in results(dial)["plays"] for t in p["tasks"]
                if "exported services are visible here" in t["task"]["name"]]
    checked_imports = verified[0]["hosts"]["dc2"]
    assert not checked_imports.get("skipped") and not checked_imports.get("failed"), verified

    for team in ("dialer", "acceptor"):
        rerun = play(scan, ansible, teams, team, "%s's team again (ACTIVE)" % team)
        assert rerun.rc == 0 and changed(rerun) == {"dc1": 0, "dc2": 0}, rerun.output[-4000:]
    checked = [t for p in results(rerun)["plays"] for t in p["tasks"]
               if "another team's dialer is ACTIVE" in t["task"]["name"]]
    assert checked[0]["hosts"]["dc1"]["results"][0]["peering"]["exported_services"] == ["backend"]
    assert peering(lab, 1, "dc2")["ID"] == a["ID"] and peering(lab, 2, "dc1")["PeerID"] == a["ID"]

    # Nothing anywhere: every output and file of the runs, every form of every secret.
    secret = json.loads(__import__("base64").b64decode(token + "=" * (-len(token) % 4)))["EstablishmentSecret"]
    scan.scan_files(exclude=teams.secret_files)
    hits = scan.hits(all_forms(teams.secrets() | {token, secret}))
    assert hits == [], hits
    assert scan.runs == 6 and sum(len(t) for dummy, t in scan.texts) > 100000
    # No plaintext peering token on disk: /tmp (pytest's dirs included) and ~/.ansible, except Consul's own data.
    # Every peering token starts with the same base64 of '{"CA":["-----BEGIN CERTIFICATE-----\n': pieces
    # of that head would match other tests' tokens (test_secrets keeps one under /tmp), so they are left out.
    needles = sorted((n for n in all_forms({token, secret}) if n not in token[:160]), key=len)
    roots = ["/tmp", os.path.expanduser("~/.ansible")]
    # Other tests' pytest directories are left out: they hold those tests' own peering tokens on purpose
    # (test_secrets writes the tokens it captured, to prove they are scrubbed), and a token's certificate
    # part is much alike between labs. This test's own directories are scanned above (scan_files) and here.
    owners = [os.path.join("/tmp", d) for d in os.listdir("/tmp") if d.startswith("pytest-of-")]
    sessions = {os.path.join(o, d) for o in owners for d in os.listdir(o) if os.path.isdir(os.path.join(o, d))}
    found, read = scan_tree(roots, needles, skip={lab["STATE"]} | sessions)
    ours = [str(tmp_path)]  # the teams fixture works in this test's tmp_path too
    more, read_ours = scan_tree(ours, needles, skip={lab["STATE"]})
    found, read = found + more, read + read_ours
    print("[teams] %d runs at -vvv, %d kB of output and files searched for %d forms of %d secrets: %d hits; "
          "%d files under %s searched for %d forms of the peering token and its secret: %d hits"
          % (scan.runs, sum(len(t) for dummy, t in scan.texts) // 1024, len(all_forms(teams.secrets() | {token, secret})),
             len(teams.secrets()) + 2, len(hits), read, " and ".join(roots), len(needles), len(found)))
    assert found == [] and read > 100, (found, read)


def test_stale_token_is_refused_and_the_acceptors_rerun_replaces_it(teams, ansible, tmp_path):
    scan = Scanner(tmp_path)
    assert play(scan, ansible, teams, "acceptor", "acceptor").rc == 0
    old = decrypt(teams.handover)["handovers"]["dc1/dc2"]
    time.sleep(3)
    stale = play(scan, ansible, teams, "dialer", "dialer, max age 2", ["-e", "cluster_peering_handover_max_age=2"])
    assert stale.rc != 0
    msg = failures(stale)[0][2]
    assert "longer ago than cluster_peering_handover_max_age (2 s)" in msg and RUN_AGAIN in msg, msg
    assert peering(teams.lab, 2, "dc1") is None and teams.handover.exists()

    # The acceptor's team, with the same limit, replaces the token of its PENDING peering (same peering ID).
    redo = play(scan, ansible, teams, "acceptor", "acceptor, max age 2", ["-e", "cluster_peering_handover_max_age=2"])
    assert redo.rc == 0 and changed(redo)["dc1"] == 2, redo.output[-4000:]
    new = decrypt(teams.handover)["handovers"]["dc1/dc2"]
    assert new["peering_token"] != old["peering_token"] and new["peering_id"] == old["peering_id"]
    ok = play(scan, ansible, teams, "dialer", "dialer")
    assert ok.rc == 0, ok.output[-4000:]
    assert peering(teams.lab, 2, "dc1")["State"] == "ACTIVE"


def test_reused_handover_file_is_refused(teams, ansible, tmp_path):
    lab = teams.lab
    scan = Scanner(tmp_path)
    assert play(scan, ansible, teams, "acceptor", "acceptor").rc == 0
    copy = tmp_path / "kept-copy.vault"  # someone kept the (encrypted) file
    shutil.copy2(teams.handover, copy)
    assert play(scan, ansible, teams, "dialer", "dialer").rc == 0
    assert not teams.handover.exists()

    # The acceptor's team removes its side: the dialer's peering is TERMINATED, and still carries the peering ID.
    mgmt(lab, 1, "DELETE", "/v1/peering/dc2")
    assert wait_for(lambda: (peering(lab, 2, "dc1") or {}).get("State") == "TERMINATED", timeout=60)
    shutil.copy2(copy, teams.handover)
    reused = play(scan, ansible, teams, "dialer", "dialer with a used file")
    assert reused.rc != 0
    msg = failures(reused)[0][2]
    assert "already used" in msg and RUN_AGAIN in msg, msg
    assert peering(lab, 2, "dc1")["State"] == "TERMINATED"

    # Without a trace of it here (the dialer's side deleted too), Consul itself refuses the spent secret.
    mgmt(lab, 2, "DELETE", "/v1/peering/dc1")
    assert wait_for(lambda: peering(lab, 2, "dc1") is None, timeout=60)
    reused = play(scan, ansible, teams, "dialer", "dialer with a used file, no trace")
    assert reused.rc != 0
    fails = failures(reused)
    assert fails[-1][0] == "Stop when a peering could not be established with the handed-over token", fails
    assert RUN_AGAIN in fails[-1][2], fails
    assert peering(lab, 2, "dc1") is None and teams.handover.exists()


@pytest.mark.parametrize("mode", [0o644, 0o640])
def test_handover_file_readable_by_others_is_refused(teams, ansible, tmp_path, mode):
    scan = Scanner(tmp_path)
    assert play(scan, ansible, teams, "acceptor", "acceptor").rc == 0
    teams.handover.chmod(mode)
    refused = play(scan, ansible, teams, "dialer", "dialer, loose file")
    assert refused.rc != 0
    task, host, msg = failures(refused)[0]
    assert task == "Read the handover file's entries" and "has mode %04o" % mode in msg and "must be 0600" in msg
    assert peering(teams.lab, 2, "dc1") is None
    # The acceptor's team is refused too (it would rewrite a file others may have read).
    assert play(scan, ansible, teams, "acceptor", "acceptor, loose file").rc != 0


# --- the AWX workflow of docs/teams.md: job 1 acceptor, job 2 dialer, job 3 verify -------------------

def handover_credential_type():
    with open(TEAMS_DOC) as f:
        text = f.read()
    blocks = dict((kind, yaml.safe_load(body)) for kind, body in
                  re.findall(r"```yaml\n# handover credential type: (\w+)\n(.*?)```", text, re.S))
    return blocks["inputs"], blocks["injectors"]


def teams_doc_inventory_vars():
    """The group variables docs/teams.md gives each team's AWX inventory (the handover settings)."""
    with open(TEAMS_DOC) as f:
        m = re.search(r"```yaml\n# AWX inventory variables, both teams\n(.*?)```", f.read(), re.S)
    assert m, "docs/teams.md shows no '# AWX inventory variables, both teams' block"
    return yaml.safe_load(m.group(1))


def awx_job_dir(tmp_path, name, lab, team_token_value, team, share, job_id):
    """A private data directory as AWX lays it out for one team's job template (see test_runner)."""
    pdd = tmp_path / name
    for d in ("project", "inventory", "env", "requirements_collections/ansible_collections/seed"):
        (pdd / d).mkdir(parents=True)
    shutil.copy(PLAYBOOK, str(pdd / "project" / "peer_clusters.yml"))
    os.symlink(ROOT, str(pdd / "requirements_collections" / "ansible_collections" / "seed" / "consul_peering"))
    inputs, injectors = handover_credential_type()
    envvars = inject_credential({"handover_passphrase": PASSPHRASE, "handover_directory": str(share)}, injectors, pdd)
    me = {"cluster_peering_url": lab["CLUSTER%d_URL" % (1 if team == "acceptor" else 2)],
          "cluster_peering_token": team_token_value}
    exports = [{"name": "backend"}]
    if team == "acceptor":
        hosts = {"consul_acceptors": {"hosts": {"dc1": dict(me, cluster_peering_exports=exports)}},
                 "consul_dialers": {"hosts": {"dc2": {"cluster_peering_remote": True}}}}
    else:
        hosts = {"consul_acceptors": {"hosts": {"dc1": {"cluster_peering_remote": True,
                                                        "cluster_peering_exports": exports}}},
                 "consul_dialers": {"hosts": {"dc2": me}}}
    group_vars = {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"}
    group_vars.update(teams_doc_inventory_vars())
    (pdd / "inventory" / "hosts").write_text(yaml.safe_dump({"all": {"vars": group_vars, "children": hosts}}))
    (pdd / "env" / "extravars").write_text(yaml.safe_dump({"cluster_peering_wait_timeout": 120}))
    envvars.update({"ANSIBLE_COLLECTIONS_PATH": str(pdd / "requirements_collections"),
                    "ANSIBLE_FORCE_COLOR": "False", "ANSIBLE_HOST_KEY_CHECKING": "False",
                    "ANSIBLE_LOCAL_TEMP": str(tmp_path / ("ansible-tmp-" + name)), "JOB_ID": str(job_id)})
    (pdd / "env" / "envvars").write_text(yaml.safe_dump(envvars))
    (pdd / "env" / "settings").write_text(yaml.safe_dump({"job_timeout": 600, "suppress_ansible_output": True}))
    return pdd


def test_awx_workflow_three_jobs(teams, tmp_path):
    lab = teams.lab
    share = tmp_path / "awx-share"
    share.mkdir(mode=0o700)
    jobs = {}
    for job_id, (ident, team) in enumerate((("job1-acceptor", "acceptor"), ("job2-dialer", "dialer"),
                                            ("job3-verify", "acceptor")), start=101):
        pdd = awx_job_dir(tmp_path, ident, lab, teams.tokens[team], team, share, job_id)
        jobs[ident] = run_job(pdd, ident)
        job = jobs[ident]
        assert job["status"] == "successful", (ident, job["stdout"][-5000:], job["proc"].stderr[-2000:])
        if ident == "job1-acceptor":
            files = os.listdir(share)
            assert len(files) == 1 and os.stat(share / files[0]).st_mode & 0o777 == 0o600
            token = decrypt(share / files[0])["handovers"]["dc1/dc2"]["peering_token"]
    assert os.listdir(share) == []
    stats = {ident: job_stats(job)["changed"] for ident, job in jobs.items()}
    assert stats == {"job1-acceptor": {"dc1": 3}, "job2-dialer": {"dc2": 2}, "job3-verify": {}}, stats
    assert peering(lab, 1, "dc2")["State"] == peering(lab, 2, "dc1")["State"] == "ACTIVE"
    secrets = {"peering token": token, "passphrase": PASSPHRASE, "acceptor ACL token": teams.tokens["acceptor"],
               "dialer ACL token": teams.tokens["dialer"]}
    for job in jobs.values():
        assert_no_secret(job, secrets)
        # No set_stats: nothing a later job of the workflow (or AWX's UI) would show.
        assert not [e for e in job["events"] if e["event_data"].get("task_action", "").endswith("set_stats")]
        assert all(not e["event_data"].get("artifact_data") for e in job["events"] if e["event"] == "playbook_on_stats")
        assert "custom" not in job["files"], sorted(job["files"])  # runner's file of set_stats data
