# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""playbooks/peer_clusters.yml through ansible-runner, laid out the way AWX lays out a job.

AWX hands ansible-runner a private data directory: project/ (the job template's project with
the playbook), inventory/hosts, env/extravars (extra variables and survey answers),
env/envvars (what the credential types' env injectors produce, here the "Consul" credential
type of docs/awx.md: PEERING_ACL_TOKENS_FILE and CONSUL_CACERT pointing at files that its
file injectors wrote into the private data directory, one least-privilege ACL token per cluster
read by an inventory variable), env/settings, and
requirements_collections/ (the collections AWX installed from the project's
collections/requirements.yml, put on ANSIBLE_COLLECTIONS_PATH). The job's outcome is then read
from runner's artifacts, as AWX reads them: status, rc, job_events/*.json and stdout.

The lab is the ACL lab (LAB_ACL=1: ACLs on, default deny) when lab/lab.sh supports it;
otherwise the plain lab, with tokens injected anyway (Consul ignores tokens
without ACLs). With LAB_TLS support the API is HTTPS and the credential's CA is the lab's CA,
so CONSUL_CACERT is really used. The test starts its own two clusters under tmp_path, on its own ports.
"""

from __future__ import annotations

import glob
import json
import os
import re
import ssl
import subprocess
import urllib.error
import urllib.request
import uuid

import jinja2.sandbox
import pytest
import yaml

from conftest import ROOT, VENV_BIN, read_env_file, wait_for

LAB_SH = os.path.join(ROOT, "lab", "lab.sh")
# Inside this developer range (22000..22999); the lab uses base+100 .. base+279.
PORT_BASE = int(os.environ.get("RUNNER_LAB_PORT_BASE", "22300"))
# A peering token is base64 of a JSON object that starts with {"CA": ...
PEERING_TOKEN_MARK = re.compile(r"eyJD[A-Za-z0-9+/=]{40,}")


def consul(url, method="GET", path="/", body=None, token=None, timeout=30, cafile=None):
    """A direct call to Consul for setup and assertions, over HTTPS too (cafile: the API's CA)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, method=method)
    if token:
        req.add_header("X-Consul-Token", token)
    context = ssl.create_default_context(cafile=cafile) if url.startswith("https://") else None
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:
            text = resp.read().decode()
            return resp.status, (json.loads(text) if text else None)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def lab_supports(variable):
    """True when lab/lab.sh handles the variant variable (LAB_ACL, LAB_TLS)."""
    with open(LAB_SH) as f:
        return variable in f.read()


def acl_tokens(env, state_dir):
    """{cluster index: token} from the ACL lab's env file: CLUSTER<i>_TOKEN, else one shared token.

    The ACL lab's key names are not part of the contract yet, so any of
    CLUSTER<i>_TOKEN / CLUSTER<i>_TOKEN_FILE, or a single *TOKEN / *TOKEN_FILE key, is accepted.
    """
    def value(key):
        if key.endswith("_FILE"):
            path = env[key] if os.path.isabs(env[key]) else os.path.join(state_dir, env[key])
            with open(path) as f:
                return f.read().strip()
        return env[key]

    out = {}
    for i in (1, 2):
        for key in ("CLUSTER%d_TOKEN" % i, "CLUSTER%d_ACL_TOKEN" % i, "CLUSTER%d_TOKEN_FILE" % i):
            if env.get(key):
                out[i] = value(key)
                break
    if len(out) == 2:
        return out
    shared = sorted(k for k in env if re.search(r"TOKEN(_FILE)?$", k) and not k.startswith("CLUSTER"))
    # Prefer a value over a file when both are given.
    shared.sort(key=lambda k: k.endswith("_FILE"))
    if shared:
        token = value(shared[0])
        return {1: token, 2: token}
    return {}


@pytest.fixture
def runner_lab(tmp_path):
    """Two clusters of our own: the ACL lab if lab.sh has it, else the plain lab."""
    state = tmp_path / "lab"
    acl, tls = lab_supports("LAB_ACL"), lab_supports("LAB_TLS")
    env = {k: v for k, v in os.environ.items() if k not in ("LAB_ACL", "LAB_TLS", "LAB_MTLS")}
    env.update(LAB_CLUSTERS="2", LAB_PORT_BASE=str(PORT_BASE), LAB_STATE_DIR=str(state))
    if acl:
        env["LAB_ACL"] = "1"
    if tls:
        # HTTPS API: the credential's CA certificate (CONSUL_CACERT) is then really used.
        env["LAB_TLS"] = "1"
    up = subprocess.run(["bash", LAB_SH, "up"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300,
                        check=False)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        info = read_env_file(str(state / "env"))
        if acl:
            admin = acl_tokens(info, str(state))
            assert admin, "lab.sh handles LAB_ACL but its env file names no token: %s" % sorted(info)
            # One least-privilege token per cluster (docs/acl.md's rules for the role: the acceptor
            # exports backend and allows frontend, the dialer verifies), as docs/awx.md recommends.
            tokens = {}
            for i, url in ((1, info["CLUSTER1_URL"]), (2, info["CLUSTER2_URL"])):
                cafile_i = info.get("CLUSTER%d_CACERT" % i)
                name = "awx-job-%s" % ("acceptor" if i == 1 else "dialer")
                status, body = consul(url, "PUT", "/v1/acl/policy", {"Name": name, "Rules": JOB_RULES[i]},
                                      token=admin[i], cafile=cafile_i)
                assert status == 200, body
                status, body = consul(url, "PUT", "/v1/acl/token", {
                    "Description": "AWX job template (tests/integration/test_runner.py)",
                    "Policies": [{"Name": name}]}, token=admin[i], cafile=cafile_i)
                assert status == 200, body
                tokens[i] = body["SecretID"]
            policy = "per-cluster least privilege"
        else:
            # No ACLs: any token is accepted and ignored, but it is still injected and must stay secret.
            tokens = {1: str(uuid.uuid4()), 2: str(uuid.uuid4())}
            admin = dict(tokens)
            policy = None
        ca = cafile = None
        if tls:
            cafile = info["CLUSTER1_CACERT"]
            with open(cafile) as f:
                ca = f.read()
            assert info["CLUSTER1_URL"].startswith("https://") and info.get("CLUSTER2_CACERT") == info["CLUSTER1_CACERT"]
        yield {"acl": acl, "tls": tls, "ca": ca, "cafile": cafile, "acceptor": info["CLUSTER1_URL"], "dialer": info["CLUSTER2_URL"],
               "tokens": tokens, "admin": admin, "policy": policy, "state": str(state)}
    finally:
        subprocess.run(["bash", LAB_SH, "down"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120,
                       check=False)


# The rules of docs/acl.md ("The role"), one policy per cluster.
JOB_RULES = {
    1: 'peering = "write"\nmesh = "write"\nservice "backend" {\n  policy     = "deny"\n  intentions = "write"\n}\n'
       # the role's lock on the accepting cluster (docs/acl.md, "The lock")
       'key_prefix "seed/consul_peering/" {\n  policy = "write"\n}\nsession_prefix "" {\n  policy = "write"\n}\n',
    2: 'peering = "write"\nservice_prefix "" { policy = "read" }\nnode_prefix "" { policy = "read" }\n',
}


def credential_ca(lab):
    """The PEM for the credential's CA input: the HTTPS API's CA on the TLS lab; otherwise a real
    certificate all the same (the Connect CA root), which plain HTTP never looks at."""
    if lab["ca"]:
        return lab["ca"]
    status, roots = consul(lab["acceptor"], path="/v1/connect/ca/roots", token=lab["admin"][1])
    assert status == 200, roots
    return roots["Roots"][0]["RootCert"]


AWX_DOC = os.path.join(ROOT, "docs", "awx.md")


def credential_type():
    """The "Consul" credential type as docs/awx.md defines it: (inputs, injectors)."""
    with open(AWX_DOC) as f:
        text = f.read()
    blocks = dict((kind, yaml.safe_load(body))
                  for kind, body in re.findall(r"```yaml\n# credential type: (\w+)\n(.*?)```", text, re.S))
    return blocks["inputs"], blocks["injectors"]


def inject_credential(inputs, injectors, directory):
    """What AWX does with a credential at launch: write the file injectors, render the env injectors."""
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined)
    files = {}
    for key, template in (injectors.get("file") or {}).items():
        name = key.split(".", 1)[1]
        path = os.path.join(str(directory), "tmp_credential_%s" % name)
        with open(path, "w") as f:
            f.write(env.from_string(template).render(**inputs))
        os.chmod(path, 0o600)
        files[name] = path
    context = dict(inputs, tower={"filename": files})
    return {k: env.from_string(v).render(**context) for k, v in injectors["env"].items()}


def test_credential_type_is_well_formed():
    inputs, injectors = credential_type()
    fields = {f["id"]: f for f in inputs["fields"]}
    assert sorted(fields) == ["consul_cacert", "consul_tokens"]
    assert fields["consul_tokens"].get("secret") is True and fields["consul_tokens"].get("multiline") is True
    assert fields["consul_cacert"].get("multiline") is True
    assert inputs["required"] == ["consul_tokens"]
    assert sorted(injectors["env"]) == ["CONSUL_CACERT", "PEERING_ACL_TOKENS_FILE"]
    assert sorted(injectors["file"]) == ["template.consul_cacert", "template.consul_tokens"]


def test_credential_without_ca_leaves_consul_cacert_empty(tmp_path):
    """An empty optional CA input gives an empty CONSUL_CACERT, which the modules treat as unset."""
    inputs, injectors = credential_type()
    env = inject_credential({"consul_tokens": "dc1: a\ndc2: b\n", "consul_cacert": ""}, injectors, tmp_path)
    assert env["CONSUL_CACERT"] == "" and os.stat(env["PEERING_ACL_TOKENS_FILE"]).st_mode & 0o077 == 0
    with open(env["PEERING_ACL_TOKENS_FILE"]) as f:
        assert yaml.safe_load(f) == {"dc1": "a", "dc2": "b"}


def inventory_token_expression():
    """The group variable docs/awx.md puts in the inventory: each host's token from the credential's file."""
    with open(AWX_DOC) as f:
        m = re.search(r"^\s*cluster_peering_token: (\".*PEERING_ACL_TOKENS_FILE.*\")$", f.read(), re.M)
    assert m, "docs/awx.md shows no cluster_peering_token line reading PEERING_ACL_TOKENS_FILE"
    return yaml.safe_load(m.group(1))


TOKEN_FROM_CREDENTIAL = inventory_token_expression()


def private_data_dir(tmp_path, lab):
    """A private data directory as AWX writes it for a job template run of peer_clusters.yml."""
    pdd = tmp_path / "awx_job"
    for d in ("project", "inventory", "env", "requirements_collections/ansible_collections/seed"):
        (pdd / d).mkdir(parents=True)
    # The project (an SCM checkout in AWX): the playbook as shipped.
    with open(os.path.join(ROOT, "playbooks", "peer_clusters.yml")) as f:
        (pdd / "project" / "peer_clusters.yml").write_text(f.read())
    # AWX installs the project's collections/requirements.yml here; this checkout stands in for it.
    os.symlink(ROOT, str(pdd / "requirements_collections" / "ansible_collections" / "seed" / "consul_peering"))

    # Inventory: one host per cluster, its API address as a host var; the token comes from the credential.
    hosts = {
        "consul_acceptors": {"hosts": {"cluster-01": {"cluster_peering_url": lab["acceptor"]}}},
        "consul_dialers": {"hosts": {"cluster-02": {"cluster_peering_url": lab["dialer"]}}},
    }
    hosts["consul_acceptors"]["hosts"]["cluster-01"].update({
        "cluster_peering_exports": [{"name": "backend"}],
        "cluster_peering_intentions": [{"name": "backend", "sources": [{"name": "frontend", "peer": "cluster-02"}]}],
    })
    inv = {"all": {"vars": {"ansible_connection": "local",
                            "ansible_python_interpreter": "{{ ansible_playbook_python }}",
                            "cluster_peering_token": TOKEN_FROM_CREDENTIAL},
                   "children": hosts}}
    (pdd / "inventory" / "hosts").write_text(yaml.safe_dump(inv))

    # Extra variables of the job template (and its survey).
    (pdd / "env" / "extravars").write_text(yaml.safe_dump({
        "cluster_peering_acceptors_group": "consul_acceptors",
        "cluster_peering_dialers_group": "consul_dialers",
        "cluster_peering_wait_timeout": 120,
    }))
    # The Consul credential of docs/awx.md: the file injector writes the CA certificate into the
    # private data dir, the env injectors point at it and carry address and token.
    dummy, injectors = credential_type()
    envvars = inject_credential({"consul_tokens": "cluster-01: %s\ncluster-02: %s\n" % (lab["tokens"][1], lab["tokens"][2]),
                                 "consul_cacert": credential_ca(lab)}, injectors, pdd)
    assert os.path.isfile(envvars["PEERING_ACL_TOKENS_FILE"]) and os.path.isfile(envvars["CONSUL_CACERT"])
    envvars.update({
        # What AWX itself sets for a job.
        "ANSIBLE_COLLECTIONS_PATH": str(pdd / "requirements_collections"),
        "ANSIBLE_FORCE_COLOR": "False",
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True",
        "ANSIBLE_PARAMIKO_RECORD_HOST_KEYS": "False",
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
        "ANSIBLE_LOCALHOST_WARNING": "False",
        "AWX_HOST": "https://awx.example.invalid",
        "JOB_ID": "42",
    })
    (pdd / "env" / "envvars").write_text(yaml.safe_dump(envvars))
    (pdd / "env" / "settings").write_text(yaml.safe_dump({"job_timeout": 600, "pexpect_timeout": 5,
                                                          "suppress_ansible_output": True}))
    return pdd


def run_job(pdd, ident):
    """ansible-runner run <pdd> -p peer_clusters.yml, as AWX's worker does; returns the artifacts."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONSUL_", "ANSIBLE_", "LAB_"))}
    env["PATH"] = VENV_BIN + os.pathsep + env.get("PATH", "")
    proc = subprocess.run([os.path.join(VENV_BIN, "ansible-runner"), "run", str(pdd), "-p", "peer_clusters.yml",
                           "--ident", ident, "-q"],
                          env=env, capture_output=True, text=True, timeout=900, check=False)
    art = pdd / "artifacts" / ident
    events = []
    for path in sorted(glob.glob(str(art / "job_events" / "*.json"))):
        with open(path) as f:
            events.append(json.load(f))
    events.sort(key=lambda e: e.get("counter", 0))

    def read(name):
        p = art / name
        return p.read_text() if p.exists() else ""

    files = {}
    for path in glob.glob(str(art / "**"), recursive=True):
        if os.path.isfile(path):
            with open(path, errors="replace") as f:
                files[os.path.relpath(path, str(art))] = f.read()
    return {"proc": proc, "status": read("status").strip(), "rc": read("rc").strip(), "stdout": read("stdout"),
            "events": events, "files": files}


def job_stats(job):
    """The playbook_on_stats event: what AWX turns into the job's host summaries."""
    stats = [e for e in job["events"] if e["event"] == "playbook_on_stats"]
    assert len(stats) == 1, [e["event"] for e in job["events"]][-10:]
    return stats[0]["event_data"]


def task_results(job, host):
    """{task name: "changed" | "ok" | "censored"} from the runner_on_ok events of one host.

    A no_log task's event carries only {"censored": ...}, not even "changed": AWX cannot tell from
    the event whether it changed anything, only the host summary (playbook_on_stats) counts it.
    """
    out = {}
    for e in job["events"]:
        data = e["event_data"]
        if e["event"] == "runner_on_ok" and data["host"] == host:
            res = data.get("res", {})
            out[data["task"]] = "censored" if "censored" in res else ("changed" if res.get("changed") else "ok")
    return out


def assert_successful(job):
    assert job["status"] == "successful" and job["rc"] == "0", (
        job["status"], job["rc"], job["stdout"][-6000:], job["proc"].stderr[-3000:])


def assert_no_secret(job, secrets):
    """No ACL token and no peering token in the job events or stdout (what AWX stores and shows).

    runner's own artifacts/<ident>/command holds the environment, the injected token included, as
    env/envvars does: AWX deletes the private data directory after the job and stores a redacted
    environment instead, so that file is not checked here.
    """
    texts = {name: text for name, text in job["files"].items()
             if name.startswith("job_events" + os.sep) or name in ("stdout", "stderr")}
    assert any(name.startswith("job_events") for name in texts) and "stdout" in texts, sorted(job["files"])
    for name, text in texts.items():
        for label, secret in secrets.items():
            assert secret not in text, "%s found in artifact %s" % (label, name)
        assert not PEERING_TOKEN_MARK.search(text), "a peering token is in artifact %s" % name
        assert "EstablishmentSecret" not in text, name


def register(url, name, port, token, cafile):
    status, body = consul(url, "PUT", "/v1/agent/service/register", {"Name": name, "Port": port}, token=token,
                          cafile=cafile)
    assert status == 200, body


def test_peer_clusters_as_an_awx_job(runner_lab, tmp_path):
    lab = runner_lab
    # Which lab ran goes to the test's output (pytest -rA / -s shows it).
    print("runner test lab: %s%s" % ("ACL lab (LAB_ACL=1)" if lab["acl"] else "plain lab, token injected but ignored",
                                     ", HTTPS API (LAB_TLS=1), CA from the credential" if lab["tls"] else ", HTTP API"))
    tok, admin = lab["tokens"], lab["admin"]
    if lab["acl"]:
        # Default deny really is on: without a token, Consul refuses to make a peering token.
        # (A refused GET /v1/peerings takes Consul about 12 s to answer; this POST is immediate.)
        assert consul(lab["acceptor"], "POST", "/v1/peering/token", {"PeerName": "anonymous"}, cafile=lab["cafile"])[0] == 403
        print("job token policy: %s" % lab["policy"])
    register(lab["acceptor"], "backend", 9090, admin[1], lab["cafile"])
    register(lab["dialer"], "frontend", 9091, admin[2], lab["cafile"])
    secrets = {"job ACL token (cluster1)": tok[1], "job ACL token (cluster2)": tok[2],
               "management token (cluster1)": admin[1], "management token (cluster2)": admin[2]}

    pdd = private_data_dir(tmp_path, lab)
    first = run_job(pdd, "1")
    assert_successful(first)
    stats = job_stats(first)
    assert sorted(stats["processed"]) == ["cluster-01", "cluster-02"]
    assert not stats["failures"] and not stats["dark"], stats
    # Changed counts. The acceptor: token generated, services exported, intention written (3);
    # the dialer: peering established (1). Reads, waits and checks never count as changed.
    assert stats["changed"] == {"cluster-01": 3, "cluster-02": 1}, stats["changed"]
    acceptor, dialer = task_results(first, "cluster-01"), task_results(first, "cluster-02")
    assert sorted(t for t, r in acceptor.items() if r == "changed") == [
        "Allow peers' services to call local services", "Export services to the peers"], acceptor
    assert [t for t, r in dialer.items() if r == "changed"] == [], dialer
    # The token hand-over, and the connection settings (ACL token) published for the lock, are no_log: their
    # events carry nothing but "censored".
    assert sorted(t for t, r in acceptor.items() if r == "censored") == [
        "Forget the peering tokens now that they are handed over",
        "Generate a peering token for each dialer that is not peered yet",
        "Publish this cluster's connection settings for the lock"], acceptor
    assert sorted(t for t, r in dialer.items() if r == "censored") == [
        "Establish each new peering with the token its acceptor generated for this cluster",
        "Publish this cluster's connection settings for the lock"], dialer
    assert_no_secret(first, secrets)

    # The peering is really there, on both sides, with the same ID.
    acc = {p["Name"]: p for p in consul(lab["acceptor"], path="/v1/peerings", token=admin[1], cafile=lab["cafile"])[1]}
    dial = {p["Name"]: p for p in consul(lab["dialer"], path="/v1/peerings", token=admin[2], cafile=lab["cafile"])[1]}
    assert acc["cluster-02"]["State"] == "ACTIVE" and dial["cluster-01"]["State"] == "ACTIVE"
    assert acc["cluster-02"]["ID"] == dial["cluster-01"]["PeerID"]
    assert wait_for(lambda: consul(lab["dialer"], path="/v1/health/service/backend?peer=cluster-01",
                                   token=admin[2], cafile=lab["cafile"])[1], timeout=60)

    # Relaunching the job template changes nothing.
    second = run_job(pdd, "2")
    assert_successful(second)
    stats = job_stats(second)
    assert stats["changed"] == {}, stats["changed"]
    assert stats["ok"].get("cluster-01", 0) > 0 and stats["ok"].get("cluster-02", 0) > 0, stats["ok"]
    assert "changed" not in task_results(second, "cluster-01").values()
    assert "changed" not in task_results(second, "cluster-02").values()
    assert_no_secret(second, secrets)
    assert consul(lab["acceptor"], path="/v1/peerings", token=admin[1], cafile=lab["cafile"])[1][0]["ID"] == acc["cluster-02"]["ID"]


def test_acl_token_file_lookup(tmp_path):
    """acl_tokens() understands per-cluster keys, a shared key and a token file."""
    (tmp_path / "mgmt.token").write_text("t-file\n")
    assert acl_tokens({"CLUSTER1_TOKEN": "a", "CLUSTER2_TOKEN": "b"}, str(tmp_path)) == {1: "a", 2: "b"}
    assert acl_tokens({"CONSUL_HTTP_TOKEN": "s", "CLUSTER1_URL": "u"}, str(tmp_path)) == {1: "s", 2: "s"}
    assert acl_tokens({"MANAGEMENT_TOKEN_FILE": "mgmt.token"}, str(tmp_path)) == {1: "t-file", 2: "t-file"}
    assert acl_tokens({"CLUSTER1_URL": "u"}, str(tmp_path)) == {}
