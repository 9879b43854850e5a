# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""TLS and connection handling of the HTTP client: CA, client certificates, server name, failure messages.

The texts of the failures below are the ones requests/urllib3/OpenSSL produced against the
lab (tests/integration/test_tls.py runs the same cases for real).
"""

from __future__ import annotations

import pytest
import requests

from ansible_collections.seed.consul_peering.plugins.module_utils import consul_api as api


class RecordingSession:
    """Stands in for requests.Session: records each request's keyword arguments."""

    def __init__(self, responses=None, raises=None):
        self.headers = {}
        self.calls = []
        self.raises = raises
        self.mounted = {}

    def mount(self, prefix, adapter):
        self.mounted[prefix] = adapter

    def request(self, method, url, **kwargs):
        self.calls.append((method, url, kwargs))
        if self.raises is not None:
            raise self.raises
        return Resp(200, "[]" if url.endswith("/v1/peerings") else "{}")


class Resp:
    def __init__(self, status, text):
        self.status_code = status
        self.text = text
        self.headers = {}


@pytest.fixture
def pem(tmp_path):
    """Three readable files standing for a CA, a client certificate and its key."""
    files = {}
    for name in ("ca.pem", "client.pem", "client-key.pem"):
        path = tmp_path / name
        path.write_text("-----BEGIN CERTIFICATE-----\n")
        files[name] = str(path)
    return files


def conn(**params):
    return api.resolve_connection(params, environ={})


# --- which TLS options go with the requests --------------------------------------------------------

def test_https_without_options_verifies_with_the_default_bundle():
    assert api.tls_request_options(conn(url="https://consul.test:8501")) == {"verify": True}


def test_ca_path_and_client_cert_are_used(pem):
    opts = api.tls_request_options(conn(url="https://consul.test:8501", ca_path=pem["ca.pem"],
                                        client_cert=pem["client.pem"], client_key=pem["client-key.pem"]))
    assert opts == {"verify": pem["ca.pem"], "cert": (pem["client.pem"], pem["client-key.pem"])}


def test_validate_certs_false_turns_verification_off_with_a_warning(pem):
    warnings = []
    opts = api.tls_request_options(conn(url="https://consul.test:8501", ca_path=pem["ca.pem"], validate_certs=False),
                                   warn=warnings.append)
    assert opts == {"verify": False}
    assert warnings and "validate_certs=false" in warnings[0]


@pytest.mark.parametrize("option, env", [("ca_path", "CONSUL_CACERT"), ("client_cert", "CONSUL_CLIENT_CERT"),
                                         ("client_key", "CONSUL_CLIENT_KEY")])
def test_a_missing_tls_file_is_named_before_any_request(pem, tmp_path, option, env):
    params = dict(url="https://consul.test:8501", ca_path=pem["ca.pem"], client_cert=pem["client.pem"],
                  client_key=pem["client-key.pem"])
    params[option] = str(tmp_path / "missing.pem")
    session = RecordingSession()
    with pytest.raises(api.ConsulError) as e:
        api.ConsulClient(conn(**params), session=session)
    assert "%s (or %s" % (option, env) in str(e.value) and "missing.pem does not exist" in str(e.value)
    assert session.calls == []


def test_every_https_request_carries_verify_and_cert(pem):
    session = RecordingSession()
    c = api.ConsulClient(conn(url="https://consul.test:8501", ca_path=pem["ca.pem"], client_cert=pem["client.pem"],
                              client_key=pem["client-key.pem"]), session=session)
    c.list_peerings()
    c.get_peering("x")
    for method, url, kwargs in session.calls:
        assert kwargs["verify"] == pem["ca.pem"]
        assert kwargs["cert"] == (pem["client.pem"], pem["client-key.pem"])


def test_http_requests_carry_no_tls_options(pem):
    """TLS settings from the environment with a plain-HTTP address are ignored, with a warning."""
    warnings = []
    c = api.resolve_connection({"url": "http://consul.test:8500"}, environ=dict(
        CONSUL_CACERT=pem["ca.pem"], CONSUL_CLIENT_CERT=pem["client.pem"], CONSUL_CLIENT_KEY=pem["client-key.pem"]),
        warn=warnings.append)
    session = RecordingSession()
    api.ConsulClient(c, session=session).list_peerings()
    assert "verify" not in session.calls[0][2] and "cert" not in session.calls[0][2]
    assert len(warnings) == 1 and "ca_path, client_cert, client_key" in warnings[0] and "plain http" in warnings[0]


@pytest.mark.parametrize("option", ["ca_path", "client_cert", "tls_server_name"])
def test_tls_options_with_an_http_url_are_an_error(pem, option):
    """The user meant TLS: sending the ACL token in cleartext instead is refused before any request."""
    params = {"url": "http://consul.test:8500", "token": "a-secret-acl-token"}
    if option == "client_cert":
        params.update(client_cert=pem["client.pem"], client_key=pem["client-key.pem"])
    else:
        params[option] = pem["ca.pem"] if option == "ca_path" else "server.dc1.consul"
    with pytest.raises(api.ConsulError) as e:
        api.resolve_connection(params, environ={})
    assert option in e.value.msg and "https://" in e.value.msg and "unencrypted" in e.value.msg
    assert "a-secret-acl-token" not in e.value.msg


@pytest.mark.parametrize("validate", [True, False])
def test_requests_ca_bundle_in_the_environment_does_not_override(monkeypatch, pem, validate):
    """requests merges REQUESTS_CA_BUNDLE over session.verify; a per-request verify is kept as given."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/some/other-bundle.pem")
    monkeypatch.setenv("CURL_CA_BUNDLE", "/etc/some/other-bundle.pem")
    opts = api.tls_request_options(conn(url="https://consul.test:8501", ca_path=pem["ca.pem"], validate_certs=validate))
    session = requests.Session()
    session.verify = opts["verify"]
    # What requests does with the session alone (the bug) ...
    assert session.merge_environment_settings("https://consul.test:8501", {}, None, None, None)["verify"] \
        == "/etc/some/other-bundle.pem"
    # ... and with verify passed per request, as ConsulClient.request does.
    merged = session.merge_environment_settings("https://consul.test:8501", {}, None, opts["verify"], None)
    assert merged["verify"] == (pem["ca.pem"] if validate else False)


# --- tls_server_name ----------------------------------------------------------------------------------

def test_tls_server_name_mounts_an_adapter_that_checks_that_name():
    c = api.ConsulClient(conn(url="https://10.0.0.5:8501", tls_server_name="server.dc1.consul"))
    adapter = c.session.get_adapter("https://10.0.0.5:8501/v1/peerings")
    assert isinstance(adapter, api._ServerNameAdapter)
    assert adapter.poolmanager.connection_pool_kw["server_hostname"] == "server.dc1.consul"
    assert adapter.poolmanager.connection_pool_kw["assert_hostname"] == "server.dc1.consul"


def test_tls_server_name_is_not_used_for_http():
    c = api.ConsulClient(api.resolve_connection({"url": "http://10.0.0.5:8500"},
                                                environ={"CONSUL_TLS_SERVER_NAME": "server.dc1.consul"}))
    assert not isinstance(c.session.get_adapter("https://10.0.0.5:8501/"), api._ServerNameAdapter)


def test_tls_options_from_the_environment(pem):
    c = api.resolve_connection({}, environ=dict(
        CONSUL_HTTP_ADDR="consul.test:8501", CONSUL_HTTP_SSL="true", CONSUL_CACERT=pem["ca.pem"],
        CONSUL_CLIENT_CERT=pem["client.pem"], CONSUL_CLIENT_KEY=pem["client-key.pem"],
        CONSUL_TLS_SERVER_NAME="server.dc1.consul", CONSUL_HTTP_SSL_VERIFY="false"))
    assert (c["url"], c["ca_path"], c["client_cert"], c["client_key"], c["tls_server_name"], c["validate_certs"]) == (
        "https://consul.test:8501", pem["ca.pem"], pem["client.pem"], pem["client-key.pem"], "server.dc1.consul", False)


# --- failures, in the operator's words ------------------------------------------------------------------

VERIFY_FAILED = ("HTTPSConnectionPool(host='127.0.0.1', port=24100): Max retries exceeded with url: /v1/peerings "
                 "(Caused by SSLError(SSLCertVerificationError(1, '[SSL: CERTIFICATE_VERIFY_FAILED] certificate "
                 "verify failed: unable to get local issuer certificate (_ssl.c:1006)')))")
HOSTNAME_MISMATCH = ("HTTPSConnectionPool(host='127.1', port=24100): Max retries exceeded with url: /v1/peerings "
                     "(Caused by SSLError(SSLCertVerificationError(1, \"[SSL: CERTIFICATE_VERIFY_FAILED] certificate "
                     "verify failed: Hostname mismatch, certificate is not valid for '127.1'. (_ssl.c:1006)\")))")
NAME_MISMATCH = ("HTTPSConnectionPool(host='127.0.0.1', port=24100): Max retries exceeded with url: /v1/peerings "
                 "(Caused by SSLError(CertificateError(\"hostname 'server.dc2.consul' doesn't match either of "
                 "'server.dc1.consul', 'localhost', '127.0.0.1'\")))")
CERT_REQUIRED = ("HTTPSConnectionPool(host='127.0.0.1', port=24900): Max retries exceeded with url: /v1/peerings "
                 "(Caused by SSLError(SSLError(1, '[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] tlsv13 alert certificate "
                 "required (_ssl.c:2580)')))")
UNKNOWN_CA = ("HTTPSConnectionPool(host='127.0.0.1', port=24900): Max retries exceeded with url: /v1/peerings "
              "(Caused by SSLError(SSLError(1, '[SSL: TLSV1_ALERT_UNKNOWN_CA] tlsv1 alert unknown ca (_ssl.c:2580)')))")
BAD_KEY = "[SSL: KEY_VALUES_MISMATCH] key values mismatch (_ssl.c:3926)"
PLAIN_PORT = ("HTTPSConnectionPool(host='127.0.0.1', port=18100): Max retries exceeded with url: /v1/peerings "
              "(Caused by SSLError(SSLError(1, '[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)')))")


@pytest.mark.parametrize("text, params, expected", [
    (VERIFY_FAILED, dict(ca_path="/etc/consul/ca.pem"),
     ["not signed by a trusted CA (ca_path /etc/consul/ca.pem)", "CONSUL_CACERT", "[SSL: CERTIFICATE_VERIFY_FAILED]"]),
    (VERIFY_FAILED, {}, ["the system CA bundle; ca_path is not set"]),
    (HOSTNAME_MISMATCH, dict(url="https://127.1:24100"),
     ["not valid for the name '127.1'", "tls_server_name", "certificate is not valid for '127.1')"]),
    (NAME_MISMATCH, dict(tls_server_name="server.dc2.consul"),
     ["not valid for the name 'server.dc2.consul'", "doesn't match either of"]),
    (CERT_REQUIRED, {}, ["requires a client certificate", "client_cert and client_key", "CONSUL_CLIENT_CERT"]),
    (UNKNOWN_CA, dict(client_cert="/c.pem", client_key="/k.pem"), ["rejected the client certificate /c.pem"]),
    (BAD_KEY, dict(client_cert="/c.pem", client_key="/k.pem"), ["cannot load the client certificate /c.pem or its key /k.pem"]),
    (PLAIN_PORT, {}, ["does not speak TLS on this port", "http://"]),
    ("[SSL: SOMETHING_NEW] odd (_ssl.c:1)", {}, ["TLS handshake failed ([SSL: SOMETHING_NEW] odd)"]),
], ids=["verify-ca", "verify-no-ca", "hostname", "server-name", "cert-required", "unknown-ca", "bad-key",
        "plain-port", "other"])
def test_tls_failure_reason(text, params, expected):
    reason = api.tls_failure_reason(text, dict(dict(url="https://127.0.0.1:24100"), **params))
    for part in expected:
        assert part in reason, reason


def test_a_tls_failure_is_not_retried_and_names_the_url(pem):
    session = RecordingSession(raises=requests.exceptions.SSLError(VERIFY_FAILED))
    c = api.ConsulClient(conn(url="https://127.0.0.1:24100", ca_path=pem["ca.pem"]), session=session,
                         sleep=lambda s: None)
    with pytest.raises(api.ConsulError) as e:
        c.list_peerings()
    assert len(session.calls) == 1
    assert str(e.value).startswith("cannot talk to Consul at https://127.0.0.1:24100 over TLS: ")
    assert "not signed by a trusted CA" in str(e.value)


def test_is_tls_failure():
    assert api.is_tls_failure(requests.exceptions.SSLError("x"))
    assert api.is_tls_failure(requests.exceptions.ConnectionError(NAME_MISMATCH))
    assert not api.is_tls_failure(requests.exceptions.ConnectionError("Connection refused"))


def test_plain_http_to_an_https_port_says_use_https():
    msg = api.describe_http_error(400, "Client sent an HTTP request to an HTTPS server.\n", "GET", "/v1/peerings")
    assert "use an https:// url" in msg and "CONSUL_HTTP_SSL=true" in msg


def test_the_token_never_appears_in_a_tls_failure(pem):
    token = "5f0c6c3e-1d1c-4a57-9d2c-0123456789ab"
    session = RecordingSession(raises=requests.exceptions.SSLError(VERIFY_FAILED + " " + token))
    c = api.ConsulClient(conn(url="https://127.0.0.1:24100", ca_path=pem["ca.pem"], token=token), session=session)
    with pytest.raises(api.ConsulError) as e:
        c.list_peerings()
    assert token not in str(e.value)


# --- CONSUL_CAPATH: a directory of PEM files, as Consul takes it -------------------------------------

def test_ca_directory_without_hash_links_becomes_one_bundle(tmp_path):
    (tmp_path / "a.pem").write_text("-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n")
    (tmp_path / "b.crt").write_text("-----BEGIN CERTIFICATE-----\nBBB\n-----END CERTIFICATE-----\n")
    (tmp_path / "README").write_text("not a certificate")
    bundle = api.tls_request_options(api.resolve_connection(
        {}, environ=dict(CONSUL_HTTP_ADDR="https://consul.test:8501", CONSUL_CAPATH=str(tmp_path))))["verify"]
    with open(bundle) as f:
        text = f.read()
    assert "AAA" in text and "BBB" in text and "not a certificate" not in text


def test_ca_directory_with_hash_links_is_used_as_is(tmp_path):
    (tmp_path / "a.pem").write_text("-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n")
    (tmp_path / "1a2b3c4d.0").symlink_to(tmp_path / "a.pem")
    assert api.tls_request_options(conn(url="https://consul.test:8501", ca_path=str(tmp_path)))["verify"] == str(tmp_path)


def test_ca_directory_without_certificates_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("nothing here")
    with pytest.raises(api.ConsulError, match="holds no PEM certificate"):
        api.tls_request_options(conn(url="https://consul.test:8501", ca_path=str(tmp_path)))
