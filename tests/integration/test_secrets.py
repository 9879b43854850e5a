# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""No secret in any output: the role and ad-hoc calls at -vvv on the ACL + TLS lab.

Every run here is made at -vvv with ANSIBLE_LOG_PATH set and the JSON callback; its
stdout, stderr, the log file, the callback results and every file left under the
test's directory are searched for the ACL tokens, the peering tokens, their
establishment secrets, any base64 peering-token pattern and the word
EstablishmentSecret. The test itself knows the secrets (it captures them in
separate, unscanned calls); the product's output must not contain them.
"""

from __future__ import annotations

import base64
import json
import os
import re
import ssl
import subprocess
import time
import urllib.error
import urllib.request

import pytest
import yaml

from conftest import ROOT, read_env_file

pytest_plugins = ["reliability_plugin"]

PORT_BASE = "25500"  # clusters on 25600.. and 25700..; inside this developer's range
TOKEN_PATTERN = re.compile(r"eyJDQSI6[A-Za-z0-9+/=]*")
ACL_LAB = "LAB_ACL" in open(os.path.join(ROOT, "lab", "lab.sh")).read()
FAKE_ACL_TOKEN = "3f1c7a52-0d4e-4c59-9b7e-5a1d2c3b4e5f"  # used where ACLs are off, and as an unknown token


@pytest.fixture(scope="module")
def seclab(tmp_path_factory):
    """An ACL + TLS lab of two clusters when lab.sh has the variants, else the plain lab with a fake token."""
    state = tmp_path_factory.mktemp("secrets-lab")
    env = dict(os.environ, LAB_CLUSTERS="2", LAB_PORT_BASE=PORT_BASE, LAB_STATE_DIR=str(state))
    if ACL_LAB:
        env.update(LAB_ACL="1", LAB_TLS="1")
    subprocess.run(["bash", os.path.join(ROOT, "lab", "lab.sh"), "up"], env=env, check=True, timeout=300)
    try:
        lab = read_env_file(str(state / "env"))
        lab["acl"] = ACL_LAB
        lab["secrets"] = set()
        for i in (1, 2):
            for key, path in lab.items():
                if key.startswith("CLUSTER%d_TOKEN_FILE" % i):
                    with open(path) as f:
                        lab["secrets"].add(f.read().strip())
            lab["TOKEN%d" % i] = read_token(lab, i, "ROLE") if ACL_LAB else FAKE_ACL_TOKEN
            lab["MGMT%d" % i] = read_token(lab, i, None) if ACL_LAB else None
        lab["secrets"].add(FAKE_ACL_TOKEN)
        yield lab
    finally:
        subprocess.run(["bash", os.path.join(ROOT, "lab", "lab.sh"), "down"], env=env, check=False, timeout=120)


def read_token(lab, i, role):
    key = "CLUSTER%d_TOKEN_FILE" % i + ("_" + role if role else "")
    with open(lab[key]) as f:
        return f.read().strip()


def api(lab, i, method="GET", path="/", body=None):
    """Test-side call with the management token (TLS verified against the lab CA)."""
    url = lab["CLUSTER%d_URL" % i]
    req = urllib.request.Request(url + path, data=None if body is None else json.dumps(body).encode(), method=method)
    if lab.get("MGMT%d" % i):
        req.add_header("X-Consul-Token", lab["MGMT%d" % i])
    ctx = ssl.create_default_context(cafile=lab.get("LAB_CACERT")) if url.startswith("https") else None
    try:
        with urllib.request.urlopen(req, timeout=10, context=ctx) as resp:
            text = resp.read().decode()
            return resp.status, json.loads(text) if text else None
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def conn_env(lab, i, token=None):
    """Connection through the modules' environment fallbacks (CONSUL_HTTP_TOKEN carries the ACL token)."""
    env = {"CONSUL_HTTP_ADDR": lab["CLUSTER%d_URL" % i], "CONSUL_HTTP_TOKEN": token or lab["TOKEN%d" % i]}
    if lab.get("LAB_CACERT"):
        env["CONSUL_CACERT"] = lab["LAB_CACERT"]
    return env


class Scanner:
    """Collects every byte the product wrote for a run, then counts secret hits."""

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.texts = []  # (label, text)
        self.runs = 0

    def run(self, ansible, label, args, i, lab, playbook=False, env=None, token=None):
        log = self.tmp_path / ("ansible-%02d.log" % self.runs)
        full_env = conn_env(lab, i, token) if i else {}
        full_env.update(env or {})
        full_env["ANSIBLE_LOG_PATH"] = str(log)
        run = ansible(list(args) + ["-vvv"], playbook=playbook, json_output=True, env=full_env)
        self.runs += 1
        self.texts.append((label + " stdout", run.stdout))
        self.texts.append((label + " stderr", run.stderr))
        self.texts.append((label + " log", log.read_text() if log.exists() else ""))
        return run

    def scan_files(self, exclude):
        for root, dirs, files in os.walk(str(self.tmp_path)):
            for name in files:
                path = os.path.join(root, name)
                if path in exclude or os.path.islink(path):
                    continue
                try:
                    with open(path, "rb") as f:
                        self.texts.append(("file " + os.path.relpath(path, str(self.tmp_path)),
                                           f.read().decode("utf-8", "replace")))
                except OSError:
                    pass

    def hits(self, secrets):
        found = []
        for label, text in self.texts:
            for s in secrets:
                if s and s in text:
                    found.append((label, "secret #%d" % sorted(secrets).index(s)))
            if "EstablishmentSecret" in text:
                found.append((label, "EstablishmentSecret"))
            if TOKEN_PATTERN.search(text):
                found.append((label, "base64 peering token pattern"))
        return found


def callback_results(run):
    """The JSON callback's document; at -vvv it follows the verbose lines."""
    text = run.stdout
    start = text.rfind('{\n  "plays"')
    assert start >= 0, text[-3000:]
    return json.loads(text[start:])


def host_results(run, task_fragment=None):
    doc = callback_results(run)
    out = []
    for play in doc["plays"]:
        for task in play["tasks"]:
            if task_fragment is None or task_fragment in task["task"]["name"]:
                out.extend(task["hosts"].values())
    return out


def capture_token(ansible, lab, tmp_path, name, i=1):
    """Test-side capture (not scanned): generate a peering token and keep it in a file of the test's own."""
    env = conn_env(lab, i)
    run = ansible(["localhost", "-m", "seed.consul_peering.peering_token", "-a", json.dumps({"peer_name": name})],
                  json_output=True, env=env)
    assert run.rc == 0, run.output[-2000:]
    token = run.json()["plays"][0]["tasks"][0]["hosts"]["localhost"]["peering_token"]
    path = tmp_path.parent / ("captured-%s.token" % name)
    path.write_text(token)
    secret = json.loads(base64.b64decode(token + "=" * (-len(token) % 4)))["EstablishmentSecret"]
    return token, secret


def adhoc(module, args):
    # "-a '{}'" would be taken for raw parameters.
    return ["localhost", "-m", "seed.consul_peering." + module] + (["-a", json.dumps(args)] if args else [])


def test_no_secret_in_any_output_at_vvv(ansible, seclab, tmp_path, reliability):
    lab = seclab
    secrets = set(lab["secrets"])
    token, secret = capture_token(ansible, lab, tmp_path, "sec-c2")
    secrets.update([token, secret])
    scan = Scanner(tmp_path)
    start = time.monotonic()

    # Ad-hoc: establish with the token (handed in as a variable so the command line does not carry it).
    tokvars = tmp_path.parent / "sec-token-vars.json"
    tokvars.write_text(json.dumps({"captured_token": token}))
    est_args = ["localhost", "-m", "seed.consul_peering.peering_establish", "-e", "@" + str(tokvars),
                "-a", '{"peer_name": "sec-c1", "peering_token": "{{ captured_token }}"}']
    run = scan.run(ansible, "adhoc peering_establish", est_args, 2, lab)
    assert run.rc == 0, run.output[-3000:]
    assert host_results(run)[0]["peering"]["state"] == "ACTIVE"

    # The same token again under another name: Consul refuses the used secret; the error path.
    reuse_args = ["localhost", "-m", "seed.consul_peering.peering_establish", "-e", "@" + str(tokvars),
                  "-a", '{"peer_name": "sec-other", "peering_token": "{{ captured_token }}"}']
    run = scan.run(ansible, "adhoc peering_establish (reused token)", reuse_args, 2, lab)
    assert run.rc != 0 and "sec-other" not in json.dumps(api(lab, 2, path="/v1/peerings")[1])

    # Reads and config entries with the ACL token from CONSUL_HTTP_TOKEN, and through the token option.
    for i in (1, 2):
        run = scan.run(ansible, "adhoc peering_info c%d" % i, adhoc("peering_info", {}), i, lab)
        assert run.rc == 0, run.stdout[-2500:]
    assert api(lab, 1, "PUT", "/v1/agent/service/register", {"Name": "backend", "Port": 9090})[0] == 200
    run = scan.run(ansible, "adhoc exported_services", adhoc("exported_services", {
        "services": [{"name": "backend", "consumers": [{"peer": "sec-c2"}]}]}), 1, lab)
    assert run.rc == 0, run.output[-3000:]
    tokfile_vars = tmp_path.parent / "sec-acl-vars.json"
    tokfile_vars.write_text(json.dumps({"acl_token": lab["TOKEN1"]}))
    run = scan.run(ansible, "adhoc service_intentions (token option)", [
        "localhost", "-m", "seed.consul_peering.service_intentions", "-e", "@" + str(tokfile_vars), "-a",
        '{"name": "backend", "token": "{{ acl_token }}", "sources": [{"name": "frontend", "peer": "sec-c2", '
        '"action": "allow"}]}'], 1, lab, token=FAKE_ACL_TOKEN)
    assert run.rc == 0, run.output[-3000:]
    # An unknown ACL token (403 / ACL not found where ACLs are on): the error path.
    # timeout 30: Consul 1.22.7 takes about 12 s to refuse an unknown token on /v1/peerings (see docs/decisions.md).
    run = scan.run(ansible, "adhoc peering_info (unknown ACL token)", adhoc("peering_info", {"timeout": 30}), 1, lab,
                   token=FAKE_ACL_TOKEN)
    if lab["acl"]:
        assert run.rc != 0 and "ACL not found" in host_results(run)[0]["msg"]

    # The role, end to end (tokens generated and handed over in memory), twice, then unpeer.
    inv = {"all": {
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"},
        "children": {
            "consul_acceptors": {"hosts": {"sec-acc": host_vars(lab, 1, exports=True)}},
            "consul_dialers": {"hosts": {"sec-dial": host_vars(lab, 2)}}}}}
    inv_path = tmp_path / "inventory.yml"
    inv_path.write_text(yaml.safe_dump(inv))
    for label, book in (("role peer", "peer_clusters"), ("role peer again", "peer_clusters"),
                        ("role unpeer", "unpeer_clusters")):
        run = scan.run(ansible, label, [os.path.join(ROOT, "playbooks", book + ".yml"), "-i", str(inv_path)], None, lab,
                       playbook=True)
        assert run.rc == 0, run.output[-4000:]
        if label == "role peer":
            censored = host_results(run, "Generate a peering token")
            assert censored and all("censored" in r for r in censored), censored

    scan.scan_files(exclude=set())
    hits = scan.hits(secrets)
    seconds = time.monotonic() - start
    volume = sum(len(t) for dummy, t in scan.texts)
    variant = "ACL+TLS lab" if lab["acl"] else "plain lab, fake CONSUL_HTTP_TOKEN (lab.sh has no LAB_ACL)"
    reliability.add("secret", "%d runs at -vvv (ad-hoc and role) on the %s: stdout, stderr, ANSIBLE_LOG_PATH, JSON "
                    "callback, files under the test dir" % (scan.runs, variant),
                    "%d hits" % len(hits),
                    "searched %d kB for %d known secrets (ACL tokens, peering token, establishment secret), "
                    "'EstablishmentSecret' and eyJDQSI6..." % (volume // 1024, len(secrets)), seconds)
    assert hits == [], hits
    assert scan.runs >= 9 and volume > 100000


def host_vars(lab, i, exports=False):
    hv = {"cluster_peering_url": lab["CLUSTER%d_URL" % i],
          # Read at run time: the inventory file itself never holds the secret.
          "cluster_peering_token": "{{ lookup('ansible.builtin.file', '%s') }}" % lab["CLUSTER%d_TOKEN_FILE_ROLE" % i]
          if lab["acl"] else FAKE_ACL_TOKEN}
    if lab.get("LAB_CACERT"):
        hv["cluster_peering_ca_path"] = lab["LAB_CACERT"]
    if exports:
        hv["cluster_peering_exports"] = [{"name": "backend"}]
        hv["cluster_peering_intentions"] = [{"name": "backend", "sources": [{"name": "frontend", "peer": "sec-dial"}]}]
    return hv


def test_secret_scan_can_fail(tmp_path):
    """The scanner finds a planted secret, a token pattern and the word, so zero hits means something."""
    scan = Scanner(tmp_path)
    planted = "0b8e3a9e-secret-acl"
    scan.texts.append(("planted", "x %s y eyJDQSI6WyItLS0 z EstablishmentSecret" % planted))
    assert len(scan.hits({planted})) == 3
    assert scan.hits({planted + "-other"}) == [("planted", "EstablishmentSecret"), ("planted", "base64 peering token pattern")]
