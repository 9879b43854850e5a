# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The modules and the role against Consul's HTTPS API (LAB_TLS=1) and with client certificates (LAB_MTLS=1).

This file starts its own labs (module-scoped): two clusters serving HTTPS only on ports
24700-24879, and one cluster that requires client certificates on 24900-24979. Their CA and
certificates are made by `consul tls` at lab start; the server certificates carry
server.dc<i>.consul, localhost and 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import threading
import urllib.error
import urllib.request

import pytest
import yaml

from conftest import ROOT, read_env_file, wait_for

PLAYBOOKS = os.path.join(ROOT, "playbooks")
LAB_SH = os.path.join(ROOT, "lab", "lab.sh")
# A name that resolves to 127.0.0.1 (inet_aton's short form) but is not in the lab's certificates.
OTHER_HOST = "127.1"


def start_lab(tmp_path_factory, name, clusters, port_base, **variant):
    state = tmp_path_factory.mktemp(name)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAB_")}
    env.update(LAB_CLUSTERS=str(clusters), LAB_PORT_BASE=str(port_base), LAB_STATE_DIR=str(state), **variant)
    subprocess.run(["bash", LAB_SH, "up"], env=env, check=True, timeout=600)
    return env, read_env_file(str(state / "env"))


@pytest.fixture(scope="module")
def tls_lab(tmp_path_factory):
    env, values = start_lab(tmp_path_factory, "tls-lab", 2, 24600, LAB_TLS="1")
    try:
        yield values
    finally:
        subprocess.run(["bash", LAB_SH, "down"], env=env, check=False, timeout=120)


@pytest.fixture(scope="module")
def mtls_lab(tmp_path_factory):
    env, values = start_lab(tmp_path_factory, "mtls-lab", 1, 24800, LAB_MTLS="1")
    try:
        yield values
    finally:
        subprocess.run(["bash", LAB_SH, "down"], env=env, check=False, timeout=120)


def https(lab, i, method="GET", path="/", body=None):
    """A direct call for setup and assertions, trusting the lab's CA (and with its client certificate)."""
    ctx = ssl.create_default_context(cafile=lab["LAB_CACERT"])
    ctx.load_cert_chain(lab["LAB_CLIENT_CERT"], lab["LAB_CLIENT_KEY"])
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(lab["CLUSTER%d_URL" % i] + path, data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10, context=ctx) as resp:
            text = resp.read().decode()
            return resp.status, (json.loads(text) if text else None)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def reset(lab):
    for i in range(1, int(lab["LAB_CLUSTERS"]) + 1):
        for p in https(lab, i, path="/v1/peerings")[1] or []:
            https(lab, i, "DELETE", "/v1/peering/" + p["Name"])
        https(lab, i, "DELETE", "/v1/config/exported-services/default")
        https(lab, i, "DELETE", "/v1/config/service-intentions/backend")
    for i in range(1, int(lab["LAB_CLUSTERS"]) + 1):
        assert wait_for(lambda i=i: not https(lab, i, path="/v1/peerings")[1], timeout=60)


@pytest.fixture
def call(ansible):
    """call(module, args, env=None) -> the task's result (from the JSON callback)."""

    def run(module, args, env=None):
        cli = ["localhost", "-m", "seed.consul_peering." + module] + (["-a", json.dumps(args)] if args else [])
        proc = ansible(cli, env=env, json_output=True)
        try:
            result = proc.json()["plays"][0]["tasks"][0]["hosts"]["localhost"]
        except (ValueError, KeyError, IndexError):
            pytest.fail("no JSON result from ansible (rc %s):\n%s" % (proc.rc, proc.output))
        assert "Traceback" not in proc.output, proc.output[-3000:]
        return result

    return run


def succeeded(result):
    assert not result.get("failed"), result.get("msg")
    return result


def failed_with(result, *texts):
    assert result.get("failed"), result
    for text in texts:
        assert text in result["msg"], result["msg"]
    return result["msg"]


@pytest.fixture
def other_ca(tmp_path, tls_lab):
    """A second CA and a client certificate signed by it, made by consul like the lab's."""
    for args in (["tls", "ca", "create"], ["tls", "cert", "create", "-client"]):
        subprocess.run([tls_lab["CONSUL_BIN"]] + args, cwd=str(tmp_path), check=True, capture_output=True, timeout=60)
    return {"ca": str(tmp_path / "consul-agent-ca.pem"), "cert": str(tmp_path / "dc1-client-consul-0.pem"),
            "key": str(tmp_path / "dc1-client-consul-0-key.pem")}


# --- HTTPS with server verification ---------------------------------------------------------------

def test_lab_serves_https_only(tls_lab, call):
    assert tls_lab["CLUSTER1_URL"].startswith("https://127.0.0.1:")
    plain = "http://" + tls_lab["CLUSTER1_URL"].split("://", 1)[1]
    msg = failed_with(call("peering_info", {"url": plain}), "serves HTTPS on this port", "https://")
    assert "CONSUL_HTTP_SSL" in msg


def test_modules_with_ca_path(tls_lab, call):
    reset(tls_lab)
    url1, ca = tls_lab["CLUSTER1_URL"], tls_lab["CLUSTER1_CACERT"]
    made = succeeded(call("peering_token", {"url": url1, "ca_path": ca, "peer_name": "tls-dialer"}))
    assert made["changed"] and made["peering"]["state"] == "PENDING"
    info = succeeded(call("peering_info", {"url": url1, "ca_path": ca, "peer_name": "tls-dialer"}))
    assert info["exists"] is True
    succeeded(call("peering_token", {"url": url1, "ca_path": ca, "peer_name": "tls-dialer", "state": "absent"}))
    assert https(tls_lab, 1, path="/v1/peering/tls-dialer")[0] == 404


def test_ca_path_wins_over_requests_ca_bundle(tls_lab, call):
    """requests lets REQUESTS_CA_BUNDLE override a session's CA; ca_path must still be used."""
    env = {"REQUESTS_CA_BUNDLE": other_bundle(), "CURL_CA_BUNDLE": other_bundle()}
    succeeded(call("peering_info", {"url": tls_lab["CLUSTER1_URL"], "ca_path": tls_lab["LAB_CACERT"]}, env=env))


def other_bundle():
    """Some CA bundle that does not hold the lab's CA (the system's, where there is one)."""
    for path in (ssl.get_default_verify_paths().cafile, "/etc/ssl/certs/ca-certificates.crt"):
        if path and os.path.isfile(path):
            return path
    pytest.skip("no system CA bundle on this machine")
    return None


def test_consul_cacert_env(tls_lab, call):
    env = {"CONSUL_HTTP_ADDR": tls_lab["CLUSTER2_URL"], "CONSUL_CACERT": tls_lab["LAB_CACERT"]}
    assert succeeded(call("peering_info", {}, env=env))["peerings"] == []
    # host:port with CONSUL_HTTP_SSL=true means https://
    env = {"CONSUL_HTTP_ADDR": tls_lab["CLUSTER2_URL"].split("://", 1)[1], "CONSUL_HTTP_SSL": "true",
           "CONSUL_CACERT": tls_lab["LAB_CACERT"]}
    assert succeeded(call("peering_info", {}, env=env))["peerings"] == []


def test_consul_capath_directory_of_pem_files(tls_lab, call, tmp_path):
    """CONSUL_CAPATH as Consul takes it: a directory of PEM files, no `openssl rehash` links."""
    cadir = tmp_path / "cas"
    cadir.mkdir()
    (cadir / "lab-ca.pem").write_text(open(tls_lab["LAB_CACERT"]).read())
    env = {"CONSUL_HTTP_ADDR": tls_lab["CLUSTER1_URL"], "CONSUL_CAPATH": str(cadir)}
    succeeded(call("peering_info", {}, env=env))


def test_wrong_ca_fails_clearly(tls_lab, call, other_ca):
    msg = failed_with(call("peering_info", {"url": tls_lab["CLUSTER1_URL"], "ca_path": other_ca["ca"]}),
                      "over TLS", "not signed by a trusted CA", other_ca["ca"], "CERTIFICATE_VERIFY_FAILED")
    assert "ca_path" in msg and "CONSUL_CACERT" in msg


def test_no_ca_fails_clearly(tls_lab, call):
    env = {"REQUESTS_CA_BUNDLE": other_bundle()}
    failed_with(call("peering_info", {"url": tls_lab["CLUSTER1_URL"]}, env=env),
                "not signed by a trusted CA", "ca_path is not set")


@pytest.fixture
def listener():
    """A loopback TCP listener that counts connections: a task that fails "before any request" opens none."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.settimeout(0.2)
    state = {"connections": 0, "stop": False}

    def accept():
        while not state["stop"]:
            try:
                conn, dummy = sock.accept()
            except OSError:
                continue
            state["connections"] += 1
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield "https://127.0.0.1:%d" % sock.getsockname()[1], state
    state["stop"] = True
    thread.join(timeout=5)
    sock.close()


def test_missing_ca_file_fails_before_any_request(tls_lab, call, tmp_path, listener):
    missing = str(tmp_path / "nope.pem")
    failed_with(call("peering_info", {"url": tls_lab["CLUSTER1_URL"], "ca_path": missing}),
                "ca_path", missing, "does not exist")
    url, seen = listener
    failed_with(call("peering_info", {"url": url, "ca_path": missing}), "does not exist")
    assert seen["connections"] == 0


def test_validate_certs_false_works_with_a_warning(tls_lab, call):
    result = succeeded(call("peering_info", {"url": tls_lab["CLUSTER1_URL"], "validate_certs": False}))
    assert any("validate_certs=false" in w for w in result.get("warnings", [])), result.get("warnings")
    env = {"CONSUL_HTTP_ADDR": tls_lab["CLUSTER1_URL"], "CONSUL_HTTP_SSL_VERIFY": "false"}
    result = succeeded(call("peering_info", {}, env=env))
    assert any("validate_certs=false" in w for w in result.get("warnings", [])), result.get("warnings")


def test_tls_server_name(tls_lab, call):
    """The certificates name server.dc<i>.consul, localhost and 127.0.0.1 only."""
    url = tls_lab["CLUSTER1_URL"].replace("127.0.0.1", OTHER_HOST)
    ca = tls_lab["LAB_CACERT"]
    failed_with(call("peering_info", {"url": url, "ca_path": ca}),
                "not valid for the name '%s'" % OTHER_HOST, "tls_server_name")
    succeeded(call("peering_info", {"url": url, "ca_path": ca, "tls_server_name": tls_lab["CLUSTER1_TLS_SERVER_NAME"]}))
    succeeded(call("peering_info", {"url": url, "ca_path": ca},
                   env={"CONSUL_TLS_SERVER_NAME": tls_lab["CLUSTER1_TLS_SERVER_NAME"]}))
    # The name is really checked: cluster2's name does not fit cluster1's certificate.
    failed_with(call("peering_info", {"url": url, "ca_path": ca, "tls_server_name": "server.dc2.consul"}),
                "not valid for the name 'server.dc2.consul'")


# --- the role over HTTPS ----------------------------------------------------------------------------

def role_inventory(tmp_path, lab, ca_path=True, validate_certs=None):
    def host(i):
        h = {"cluster_peering_url": lab["CLUSTER%d_URL" % i]}
        if ca_path:
            h["cluster_peering_ca_path"] = lab["CLUSTER%d_CACERT" % i]
        if validate_certs is not None:
            h["cluster_peering_validate_certs"] = validate_certs
        return h

    acc = host(1)
    acc["cluster_peering_exports"] = [{"name": "backend"}]
    acc["cluster_peering_intentions"] = [{"name": "backend", "sources": [{"name": "frontend", "peer": "cluster-02"}]}]
    inv = {"all": {
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"},
        "children": {"consul_acceptors": {"hosts": {"cluster-01": acc}},
                     "consul_dialers": {"hosts": {"cluster-02": host(2)}}}}}
    path = tmp_path / ("inventory-%s-%s.yml" % ("ca" if ca_path else "env", validate_certs))
    path.write_text(yaml.safe_dump(inv))
    return str(path)


def play(ansible, name, inv, env=None):
    run = ansible([os.path.join(PLAYBOOKS, name + ".yml"), "-i", inv], playbook=True, json_output=True, env=env)
    assert run.rc == 0, run.output[-6000:]
    return {h: s["changed"] for h, s in run.json()["stats"].items()}


def test_role_over_https_with_ca_path_then_consul_cacert(tls_lab, ansible, tmp_path):
    reset(tls_lab)
    assert https(tls_lab, 1, "PUT", "/v1/agent/service/register", {"Name": "backend", "Port": 9090})[0] == 200
    try:
        first = play(ansible, "peer_clusters", role_inventory(tmp_path, tls_lab))
        assert all(n > 0 for n in first.values()), first
        acc = https(tls_lab, 1, path="/v1/peering/cluster-02")[1]
        dial = https(tls_lab, 2, path="/v1/peering/cluster-01")[1]
        assert acc["State"] == dial["State"] == "ACTIVE" and acc["ID"] == dial["PeerID"]
        imported = https(tls_lab, 2, path="/v1/health/service/backend?peer=cluster-01")[1]
        assert [e["Service"]["Service"] for e in imported] == ["backend"]

        # Same clusters, the CA from CONSUL_CACERT instead of cluster_peering_ca_path: nothing to change.
        again = play(ansible, "peer_clusters", role_inventory(tmp_path, tls_lab, ca_path=False),
                     env={"CONSUL_CACERT": tls_lab["LAB_CACERT"]})
        assert again == {"cluster-01": 0, "cluster-02": 0}
        down = play(ansible, "unpeer_clusters", role_inventory(tmp_path, tls_lab))
        assert all(n > 0 for n in down.values()), down
    finally:
        https(tls_lab, 1, "PUT", "/v1/agent/service/deregister/backend")
        reset(tls_lab)


def test_role_with_validate_certs_false_takes_its_lock_without_verifying(tls_lab, ansible, tmp_path):
    """cluster_peering_validate_certs: false (no CA anywhere) reaches the lock too, not only the other stages:
    the lock task gets each cluster's settings as set, false included."""
    reset(tls_lab)
    assert https(tls_lab, 1, "PUT", "/v1/agent/service/register", {"Name": "backend", "Port": 9090})[0] == 200
    try:
        inv = role_inventory(tmp_path, tls_lab, ca_path=False, validate_certs=False)
        first = play(ansible, "peer_clusters", inv)
        assert all(n > 0 for n in first.values()), first
        acc = https(tls_lab, 1, path="/v1/peering/cluster-02")[1]
        assert acc["State"] in ("ACTIVE", "ESTABLISHING")
        assert https(tls_lab, 1, path="/v1/kv/seed/consul_peering/lock")[0] == 404  # taken, then released
        down = play(ansible, "unpeer_clusters", inv)
        assert all(n > 0 for n in down.values()), down
    finally:
        https(tls_lab, 1, "PUT", "/v1/agent/service/deregister/backend")
        reset(tls_lab)


# --- client certificates (verify_incoming) ----------------------------------------------------------

def test_mtls_with_client_cert_and_key(mtls_lab, call):
    args = {"url": mtls_lab["CLUSTER1_URL"], "ca_path": mtls_lab["LAB_CACERT"],
            "client_cert": mtls_lab["CLUSTER1_CLIENT_CERT"], "client_key": mtls_lab["CLUSTER1_CLIENT_KEY"]}
    made = succeeded(call("peering_token", dict(args, peer_name="mtls-dialer")))
    assert made["changed"]
    succeeded(call("peering_token", dict(args, peer_name="mtls-dialer", state="absent")))
    env = {"CONSUL_HTTP_ADDR": mtls_lab["CLUSTER1_URL"], "CONSUL_CACERT": mtls_lab["LAB_CACERT"],
           "CONSUL_CLIENT_CERT": mtls_lab["LAB_CLIENT_CERT"], "CONSUL_CLIENT_KEY": mtls_lab["LAB_CLIENT_KEY"]}
    assert succeeded(call("peering_info", {}, env=env))["peerings"] == []


def test_mtls_without_client_cert_fails_clearly(mtls_lab, call):
    failed_with(call("peering_info", {"url": mtls_lab["CLUSTER1_URL"], "ca_path": mtls_lab["LAB_CACERT"]}),
                "requires a client certificate", "client_cert", "CONSUL_CLIENT_CERT")


def test_mtls_with_a_client_cert_from_another_ca_fails_clearly(mtls_lab, call, other_ca):
    failed_with(call("peering_info", {"url": mtls_lab["CLUSTER1_URL"], "ca_path": mtls_lab["LAB_CACERT"],
                                      "client_cert": other_ca["cert"], "client_key": other_ca["key"]}),
                "rejected the client certificate", other_ca["cert"])


def test_client_cert_without_key_fails_before_any_request(mtls_lab, call, listener):
    failed_with(call("peering_info", {"url": mtls_lab["CLUSTER1_URL"], "ca_path": mtls_lab["LAB_CACERT"],
                                      "client_cert": mtls_lab["LAB_CLIENT_CERT"]}),
                "client_cert and client_key must be given together")
    url, seen = listener
    failed_with(call("peering_info", {"url": url, "ca_path": mtls_lab["LAB_CACERT"],
                                      "client_cert": mtls_lab["LAB_CLIENT_CERT"]}),
                "client_cert and client_key must be given together")
    assert seen["connections"] == 0


def test_mismatched_client_key_fails_clearly(mtls_lab, call, other_ca):
    failed_with(call("peering_info", {"url": mtls_lab["CLUSTER1_URL"], "ca_path": mtls_lab["LAB_CACERT"],
                                      "client_cert": mtls_lab["LAB_CLIENT_CERT"], "client_key": other_ca["key"]}),
                "cannot load the client certificate", "belong together")
