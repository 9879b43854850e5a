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
import contextlib
import http.server
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
import yaml

from conftest import ROOT, read_env_file

pytest_plugins = ["reliability_plugin"]

# 25500 with the default lab (clusters on 25600.. and 25700..); a checkout that runs its lab on its own
# LAB_PORT_BASE runs this one 7500 above it, so that two checkouts' runs do not meet on these ports.
PORT_BASE = str(int(os.environ.get("LAB_PORT_BASE") or 18000) + 7500)
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
    inv_path = pair_inventory(lab, tmp_path)
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


def pair_inventory(lab, tmp_path):
    """The role's two groups on the secrets lab: sec-acc (cluster 1, exports backend) and sec-dial (cluster 2)."""
    inv = {"all": {
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"},
        "children": {
            "consul_acceptors": {"hosts": {"sec-acc": host_vars(lab, 1, exports=True)}},
            "consul_dialers": {"hosts": {"sec-dial": host_vars(lab, 2)}}}}}
    inv_path = tmp_path / "inventory.yml"
    inv_path.write_text(yaml.safe_dump(inv))
    return inv_path


def test_secret_scan_can_fail(tmp_path):
    """The scanner finds a planted secret, a token pattern and the word, so zero hits means something."""
    scan = Scanner(tmp_path)
    planted = "0b8e3a9e-secret-acl"
    scan.texts.append(("planted", "x %s y eyJDQSI6WyItLS0 z EstablishmentSecret" % planted))
    assert len(scan.hits({planted})) == 3
    assert scan.hits({planted + "-other"}) == [("planted", "EstablishmentSecret"), ("planted", "base64 peering token pattern")]


# --- hostile inputs: a newline token from vault, a redirecting server, userinfo URLs, runner ---------

def secret_forms(secret):
    """Every form the scan looks for (independent of the product's own scrubbing code)."""
    forms = {secret, repr(secret)[1:-1], json.dumps(secret)[1:-1], urllib.parse.quote(secret, safe=""),
             base64.b64encode(secret.encode()).decode().rstrip("=")}
    if len(secret) > 200:  # a peering token: any 40-character piece of it is a hit too
        forms.update(secret[i:i + 40] for i in range(0, len(secret) - 40, 40))
    return set(f for f in forms if len(f) >= 8)


def all_forms(secrets):
    out = set()
    for s in secrets:
        out |= secret_forms(s)
        out |= secret_forms(s + "\n")
    return out


def self_signed(tmp_path):
    cert, key = tmp_path / "redir-cert.pem", tmp_path / "redir-key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return str(cert), str(key)


@contextlib.contextmanager
def redirecting_https_server(cert, key):
    """An HTTPS server that answers every request with 307 to a plain-HTTP sink, which records what reaches it."""
    reached = []

    class Sink(http.server.BaseHTTPRequestHandler):
        def do_any(self):
            reached.append((self.command, self.path, dict(self.headers)))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"[]")
        do_GET = do_POST = do_PUT = do_DELETE = do_any

        def log_message(self, *args):
            pass

    sink = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)

    class Redirect(http.server.BaseHTTPRequestHandler):
        def do_any(self):
            self.send_response(307)
            self.send_header("Location", "http://127.0.0.1:%d%s&stolen=1" % (sink.server_port, self.path))
            self.send_header("Content-Length", "0")
            self.end_headers()
        do_GET = do_POST = do_PUT = do_DELETE = do_any

        def log_message(self, *args):
            pass

    redir = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    redir.socket = ctx.wrap_socket(redir.socket, server_side=True)
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (sink, redir)]
    for t in threads:
        t.start()
    try:
        yield "https://127.0.0.1:%d" % redir.server_port, reached
    finally:
        for s in (sink, redir):
            s.shutdown()
            s.server_close()


def vault_encrypted(value, name, password_file, ansible_bin_dir):
    """`echo "$T" | ansible-vault encrypt_string --stdin-name NAME`, as an operator does (newline kept)."""
    proc = subprocess.run([os.path.join(ansible_bin_dir, "ansible-vault"), "encrypt_string", "--vault-password-file",
                           password_file, "--stdin-name", name], input=value, capture_output=True, text=True,
                          check=True, timeout=60)
    return proc.stdout


def test_no_secret_under_hostile_inputs(ansible, seclab, tmp_path, reliability):
    lab = seclab
    bindir = os.path.dirname(sys.executable)
    acl_token = lab["TOKEN1"]
    secrets = set(lab["secrets"]) | {acl_token, lab["TOKEN2"]}
    scan = Scanner(tmp_path)
    start = time.monotonic()

    # 1. The role with each cluster's ACL token from a vault-encrypted host variable that ends in a newline.
    password = tmp_path.parent / "hostile-vault-pass"
    password.write_text("correct horse battery staple\n")
    hv_dir = tmp_path / "host_vars"
    hv_dir.mkdir()
    for host, i in (("sec-acc", 1), ("sec-dial", 2)):
        text = vault_encrypted(lab["TOKEN%d" % i] + "\n", "cluster_peering_token", str(password), bindir)
        assert "$ANSIBLE_VAULT" in text and lab["TOKEN%d" % i] not in text
        (hv_dir / (host + ".yml")).write_text(text)
    inv = {"all": {
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"},
        "children": {
            "consul_acceptors": {"hosts": {"sec-acc": strip_token(host_vars(lab, 1, exports=True))}},
            "consul_dialers": {"hosts": {"sec-dial": strip_token(host_vars(lab, 2))}}}}}
    inv_path = tmp_path / "inventory.yml"
    inv_path.write_text(yaml.safe_dump(inv))
    tree_dir = tmp_path / "tree"
    callbacks = {"ANSIBLE_CALLBACKS_ENABLED": "ansible.builtin.tree,ansible.builtin.junit",
                 "ANSIBLE_CALLBACK_TREE_DIR": str(tree_dir), "JUNIT_OUTPUT_DIR": str(tmp_path / "junit")}
    vault = ["--vault-password-file", str(password)]
    for label, book in (("vault newline token: peer", "peer_clusters"), ("vault newline token: rerun", "peer_clusters")):
        run = scan.run(ansible, label, [os.path.join(ROOT, "playbooks", book + ".yml"), "-i", str(inv_path)] + vault,
                       None, lab, playbook=True, env=callbacks)
        assert run.rc == 0, run.output[-4000:]
    for stdout_cb in ("minimal", "oneline", "default"):
        run = scan.run(ansible, "vault newline token: status (%s)" % stdout_cb,
                       [os.path.join(ROOT, "playbooks", "peering_status.yml"), "-i", str(inv_path)] + vault, None, lab,
                       playbook=True, env=dict(callbacks, ANSIBLE_STDOUT_CALLBACK=stdout_cb))
        assert run.rc == 0, run.output[-3000:]

    # 2. A token with a newline *inside* (a line-wrapped copy): refused, without the token in the message.
    wrapped = acl_token[:8] + "\n" + acl_token[8:]
    bad_vars = tmp_path.parent / "hostile-wrapped.json"
    bad_vars.write_text(json.dumps({"wrapped": wrapped}))
    wrapped_args = ["localhost", "-m", "seed.consul_peering.peering_info", "-e", "@" + str(bad_vars),
                    "-a", '{"token": "{{ wrapped }}"}']
    run = scan.run(ansible, "wrapped token (refused)", wrapped_args, 1, lab)
    assert run.rc != 0 and "X-Consul-Token" in host_results(run)[0]["msg"], run.output[-2000:]

    # 3. A redirecting HTTPS server: the module refuses the redirect; the plain-HTTP target sees nothing.
    cert, key = self_signed(tmp_path.parent)
    with redirecting_https_server(cert, key) as (url, reached):
        for module, args in (("peering_info", {}), ("exported_services", {"services": [
                {"name": "backend", "consumers": [{"peer": "sec-c2"}]}]})):
            args = dict(args, url=url, ca_path=cert)
            run = scan.run(ansible, "redirect %s" % module, adhoc(module, args), 1, lab)
            res = host_results(run)[0]
            assert run.rc != 0 and "never follows redirects" in res["msg"] and "127.0.0.1:" in res["msg"], res
            assert "stolen" not in res["msg"]
        assert reached == [], reached

    # 4. User information in the URL: refused, never echoed, masked in the invocation.
    host = lab["CLUSTER1_URL"].split("://", 1)[1]
    for url in ("https://%s@%s" % (acl_token, host), "https://consul:%s@%s" % (acl_token, host)):
        run = scan.run(ansible, "userinfo url", adhoc("peering_info", {"url": url, "ca_path": lab["LAB_CACERT"]}),
                       None, lab)
        assert run.rc != 0 and "user information" in host_results(run)[0]["msg"], run.output[-2000:]

    # 5. The role under ansible-runner, as AWX runs it: everything in the private data dir is scanned.
    import ansible_runner  # pylint: disable=import-outside-toplevel
    pdd = tmp_path / "runner"
    (pdd / "project").mkdir(parents=True)
    (pdd / "inventory").mkdir()
    (pdd / "inventory" / "hosts.yml").write_text(inv_path.read_text())
    os.symlink(str(hv_dir), str(pdd / "inventory" / "host_vars"))
    (pdd / "env").mkdir()
    collections = tmp_path / "runner-collections" / "ansible_collections" / "seed"
    collections.mkdir(parents=True)
    os.symlink(ROOT, str(collections / "consul_peering"))
    (pdd / "env" / "envvars").write_text(yaml.safe_dump({
        "ANSIBLE_COLLECTIONS_PATH": str(tmp_path / "runner-collections"), "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
        "ANSIBLE_NOCOLOR": "1", "PATH": bindir + os.pathsep + os.environ.get("PATH", "")}))
    (pdd / "project" / "play.yml").write_text(
        "- ansible.builtin.import_playbook: seed.consul_peering.peer_clusters\n")
    r = ansible_runner.run(private_data_dir=str(pdd), playbook="play.yml", verbosity=3, quiet=True,
                           cmdline="--vault-password-file %s" % password, timeout=600)
    assert r.rc == 0, (r.status, r.stdout.read()[-3000:] if r.stdout else "")
    scan.runs += 1

    scan.scan_files(exclude=set())
    forms = all_forms(secrets)
    hits = scan.hits(forms)
    files = sum(1 for label, dummy in scan.texts if label.startswith("file "))
    volume = sum(len(t) for dummy, t in scan.texts)
    reliability.add("secret", "%d runs at -vvv with hostile inputs: a vault token ending in a newline (role, rerun, "
                    "minimal/oneline/default/tree/junit callbacks), a line-wrapped token, a redirecting HTTPS "
                    "server, userinfo URLs, the role under ansible-runner" % scan.runs, "%d hits" % len(hits),
                    "searched %d kB in %d files and %d streams for %d forms of %d secrets (raw, repr, JSON, "
                    "URL-encoded, base64, peering-token pieces)" % (
                        volume // 1024, files, len(scan.texts) - files, len(forms), len(secrets)),
                    time.monotonic() - start)
    assert hits == [], hits
    assert scan.runs >= 10 and files >= 10 and volume > 100000


def strip_token(hv):
    """Host vars without the token: it comes from the vault-encrypted host_vars file instead."""
    return dict((k, v) for k, v in hv.items() if k != "cluster_peering_token")


@pytest.mark.parametrize("form", ["raw", "repr", "json", "url", "base64", "piece"])
def test_secret_scan_sees_every_form(tmp_path, form):
    """A planted secret in each form is a hit, so zero hits in the hostile-input scan means something."""
    acl = "0b8e3a9e-5d1f-4c2a-9e7b-13579bdf2468"
    peering = "eyJDQSI6" + base64.b64encode(os.urandom(600)).decode()
    planted = {"raw": acl, "repr": repr(acl + "\n")[1:-1], "json": json.dumps(acl + "\n")[1:-1],
               "url": urllib.parse.quote(acl + "\n", safe=""),
               "base64": base64.b64encode((acl + "\n").encode()).decode(), "piece": peering[300:360]}[form]
    scan = Scanner(tmp_path)
    scan.texts.append(("planted", "before %s after" % planted.replace("eyJDQSI6", "")))
    assert [h for h in scan.hits(all_forms({acl, peering})) if "secret" in h[1]], form


# --- pipelining keeps module payloads, which carry the tokens, off disk --------------------------------

def test_the_pipelining_decision_says_what_the_playbooks_do():
    """docs/decisions.md's pipelining bullet matches the playbooks and the role, and names the off switches
    that test_pipelining_keeps_token_carrying_payloads_off_disk proves."""
    for book in ("peer_clusters", "unpeer_clusters", "peering_status"):
        with open(os.path.join(ROOT, "playbooks", book + ".yml")) as f:
            plays = yaml.safe_load(f)
        consul_plays = [p for p in plays if p.get("roles") or any(
            any(k.startswith("seed.consul_peering.") for k in t) for t in p.get("tasks") or [])]
        assert consul_plays, book
        assert all((p.get("vars") or {}).get("ansible_pipelining") is True for p in consul_plays), book
    with open(os.path.join(ROOT, "roles", "cluster_peering", "defaults", "main.yml")) as f:
        assert yaml.safe_load(f)["cluster_peering_pipelining"] is True
    with open(os.path.join(ROOT, "roles", "cluster_peering", "tasks", "main.yml")) as f:
        block = yaml.safe_load(f)[0]
    assert block["vars"]["ansible_pipelining"] == "{{ cluster_peering_pipelining }}" and "block" in block

    with open(os.path.join(ROOT, "docs", "decisions.md")) as f:
        decisions = f.read()
    assert "no pipelining" not in decisions.lower()
    start = decisions.index("\n- **Pipelining is on in the playbooks and the role")
    bullet = " ".join(decisions[start:decisions.index("\n- **", start + 1)].split())
    for words in ("`ansible_pipelining: true`", "`cluster_peering_pipelining`", "requiretty",
                  "`cluster_peering_pipelining: false`", "`-e ansible_pipelining=false`",
                  "`ANSIBLE_KEEP_REMOTE_FILES`",
                  "test_pipelining_keeps_token_carrying_payloads_off_disk"):
        assert words in bullet, words


def kept_payloads(remote_tmp, secrets):
    """(AnsiballZ files kept under remote_tmp, how many carry an ACL token, how many a peering token).

    Only counts: a kept payload holds the module's arguments in clear, so its text is never shown.
    """
    files = [os.path.join(root, n) for root, dummy, names in os.walk(str(remote_tmp)) for n in names
             if n.startswith("AnsiballZ_")]
    acl = peering = 0
    for path in files:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
        acl += any(s in text for s in secrets)
        peering += bool(TOKEN_PATTERN.search(text))
    return len(files), acl, peering


def test_pipelining_keeps_token_carrying_payloads_off_disk(ansible, seclab, tmp_path):
    """The playbooks' and the role's pipelining, on the module-process path (seed_consul_peering_in_process=false).

    Every module task of these runs carries an ACL token (cluster_peering_token), the role's establish stage
    also a peering token. ANSIBLE_KEEP_REMOTE_FILES=1 keeps the payloads, and shows they carry the token;
    Ansible turns pipelining off whenever it is set (its documented rule), so it cannot show pipelining at
    work. For that the remote tmp is made unusable (a path under a regular file, which not even root can
    create): a run that wrote a payload there would fail. With the playbooks' and the role's pipelining the
    runs succeed; with it switched off as docs/decisions.md says (-e ansible_pipelining=false for the plays,
    cluster_peering_pipelining=false for the role) the same runs fail for want of a temporary directory. In the
    controller's worker (the default for ansible_connection: local) nothing is written even with pipelining off.
    """
    lab = seclab
    acl_tokens = {lab["TOKEN1"], lab["TOKEN2"]}
    # The role verifies the import of backend, which Consul shows only with an instance.
    assert api(lab, 1, "PUT", "/v1/agent/service/register", {"Name": "backend", "Port": 9090})[0] == 200
    inv_path = pair_inventory(lab, tmp_path)
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    unusable = {"ANSIBLE_REMOTE_TEMP": str(blocker / "tmp")}
    module_process = ["-e", "seed_consul_peering_in_process=false"]
    pipelining_off = ["-e", "ansible_pipelining=false"]
    role_pipelining_off = ["-e", "cluster_peering_pipelining=false"]
    no_tmp = "Failed to create temporary directory"
    cases = [
        # (label, playbook, extra args, module process?, keep payloads?, run succeeds?)
        ("status, kept payloads", "peering_status", module_process, True, True, True),
        ("status, pipelining as the playbook sets it", "peering_status", module_process, True, False, True),
        ("status, -e ansible_pipelining=false", "peering_status", module_process + pipelining_off, True, False, False),
        ("unpeer, in process, pipelining off", "unpeer_clusters", role_pipelining_off + pipelining_off, False, False,
         True),
        ("peer, -e cluster_peering_pipelining=false", "peer_clusters", module_process + role_pipelining_off, True,
         False, False),
        # Every stage, the token and establish stages included.
        ("peer, pipelining as the role sets it", "peer_clusters", module_process, True, False, True),
    ]
    kept_dirs = []
    kept = {}
    try:
        for n, (label, book, extra, as_module, keep, succeeds) in enumerate(cases):
            if keep:
                kept_dirs.append(tmp_path / ("kept-%d" % n))
                env = {"ANSIBLE_KEEP_REMOTE_FILES": "1", "ANSIBLE_REMOTE_TEMP": str(kept_dirs[-1])}
            else:
                env = unusable
            run = ansible([os.path.join(ROOT, "playbooks", book + ".yml"), "-i", str(inv_path), "-vvv"] + extra,
                          playbook=True, env=env)
            path = "runs as a module: seed_consul_peering_in_process is false" if as_module \
                else "runs in the controller's worker"
            assert path in run.output, label
            if succeeds:
                assert run.rc == 0, (label, run.output[-4000:])
                assert no_tmp not in run.output, label
            else:
                assert run.rc != 0 and no_tmp in run.output, (label, run.output[-4000:])
            if keep:
                kept[label] = kept_payloads(kept_dirs[-1], acl_tokens)
        assert peerings_active(lab), "the last run should leave the pair peered"
    finally:
        for d in kept_dirs:
            shutil.rmtree(str(d), ignore_errors=True)
    assert not any(d.exists() for d in kept_dirs)
    assert not os.path.exists(unusable["ANSIBLE_REMOTE_TEMP"])
    # One payload per host, each with that cluster's ACL token.
    assert kept["status, kept payloads"] == (2, 2, 0), kept


def peerings_active(lab):
    states = [{p["Name"]: p["State"] for p in api(lab, i, path="/v1/peerings")[1] or []} for i in (1, 2)]
    return states[0].get("sec-dial") == states[1].get("sec-acc") == "ACTIVE"
