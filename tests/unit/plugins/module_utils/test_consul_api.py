# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The HTTP client with a stubbed session: connection options, retries, error mapping, secrets."""

from __future__ import annotations

import pytest
import requests

from ansible_collections.seed.consul_peering.plugins.module_utils import consul_api as api

from ..peering_stubs import (
    ACL_TOKEN,
    LEADER,
    NO_LEADER,
    SECRET,
    TOKEN,
    FakeSession,
    Resp,
    acceptor,
    client,
    not_found,
    ok,
)

REFUSED = requests.exceptions.ConnectionError(
    "HTTPConnectionPool(host='consul.test', port=8500): Max retries exceeded with url: /v1/peerings "
    "(Caused by NewConnectionError('<urllib3.connection.HTTPConnection object>: Failed to establish a new "
    "connection: [Errno 111] Connection refused'))")


def resolve(params=None, **env):
    return api.resolve_connection(params or {}, environ=env)


# --- connection options and their environment fallbacks ------------------------------

def test_defaults():
    conn = resolve()
    assert conn["url"] == "http://127.0.0.1:8500"
    assert conn["token"] is None
    assert conn["validate_certs"] is True
    assert conn["ca_path"] is None
    assert conn["timeout"] == 10


@pytest.mark.parametrize("env, url", [
    (dict(CONSUL_HTTP_ADDR="consul.example.com:8500"), "http://consul.example.com:8500"),
    (dict(CONSUL_HTTP_ADDR="https://consul.example.com:8501/"), "https://consul.example.com:8501"),
    (dict(CONSUL_HTTP_ADDR="http://10.0.0.1:8500"), "http://10.0.0.1:8500"),
    (dict(CONSUL_HTTP_ADDR="consul.example.com:8501", CONSUL_HTTP_SSL="true"), "https://consul.example.com:8501"),
    (dict(CONSUL_HTTP_ADDR="consul.example.com:8501", CONSUL_HTTP_SSL="1"), "https://consul.example.com:8501"),
    (dict(CONSUL_HTTP_ADDR="consul.example.com:8500", CONSUL_HTTP_SSL="false"), "http://consul.example.com:8500"),
    # As Consul's CLI: CONSUL_HTTP_SSL=true never reverts to plain HTTP, even for an http:// address.
    (dict(CONSUL_HTTP_ADDR="http://consul.example.com:8500", CONSUL_HTTP_SSL="true"), "https://consul.example.com:8500"),
    (dict(CONSUL_HTTP_ADDR="https://consul.example.com:8501", CONSUL_HTTP_SSL="false"), "https://consul.example.com:8501"),
])
def test_url_from_consul_http_addr(env, url):
    assert resolve(**env)["url"] == url


def test_token_from_env():
    assert resolve(CONSUL_HTTP_TOKEN=" %s\n" % ACL_TOKEN)["token"] == ACL_TOKEN


def test_token_from_file(tmp_path):
    path = tmp_path / "token"
    path.write_text(ACL_TOKEN + "\n")
    assert resolve(CONSUL_HTTP_TOKEN_FILE=str(path))["token"] == ACL_TOKEN


def test_token_env_beats_token_file(tmp_path):
    path = tmp_path / "token"
    path.write_text("from-file")
    assert resolve(CONSUL_HTTP_TOKEN=ACL_TOKEN, CONSUL_HTTP_TOKEN_FILE=str(path))["token"] == ACL_TOKEN


def test_unreadable_token_file_is_a_clear_error(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(api.ConsulError) as exc:
        resolve(CONSUL_HTTP_TOKEN_FILE=str(missing))
    assert "CONSUL_HTTP_TOKEN_FILE" in exc.value.msg
    assert str(missing) in exc.value.msg


def test_ca_from_env():
    assert resolve(CONSUL_CACERT="/etc/consul/ca.pem")["ca_path"] == "/etc/consul/ca.pem"
    assert resolve(CONSUL_CAPATH="/etc/consul/cas")["ca_path"] == "/etc/consul/cas"
    assert resolve(CONSUL_CACERT="/a.pem", CONSUL_CAPATH="/dir")["ca_path"] == "/a.pem"


@pytest.mark.parametrize("raw, expected", [("false", False), ("0", False), ("true", True), ("", True)])
def test_validate_certs_from_env(raw, expected):
    assert resolve(CONSUL_HTTP_SSL_VERIFY=raw)["validate_certs"] is expected


def test_options_beat_env(tmp_path):
    path = tmp_path / "token"
    path.write_text("from-file")
    conn = resolve(
        dict(url="https://option.example.com:8501", token="from-option", ca_path="/option/ca.pem",
             validate_certs=True, partition="team-a", tls_server_name="consul.option"),
        CONSUL_HTTP_ADDR="env.example.com:8500", CONSUL_HTTP_TOKEN="from-env", CONSUL_HTTP_TOKEN_FILE=str(path),
        CONSUL_CACERT="/env/ca.pem", CONSUL_HTTP_SSL_VERIFY="false", CONSUL_PARTITION="env-partition",
        CONSUL_TLS_SERVER_NAME="consul.env",
    )
    assert conn["url"] == "https://option.example.com:8501"
    assert conn["token"] == "from-option"
    assert conn["ca_path"] == "/option/ca.pem"
    assert conn["validate_certs"] is True
    assert conn["partition"] == "team-a"
    assert conn["tls_server_name"] == "consul.option"


def test_option_url_host_port_follows_consul_http_ssl():
    assert resolve(dict(url="consul:8501"), CONSUL_HTTP_SSL="true")["url"] == "https://consul:8501"


@pytest.mark.parametrize("url, fragment", [
    ("ftp://consul:21", "only http:// and https://"),
    ("http://", "has no host name"),
    ("http://consul:port", "invalid port"),
])
def test_bad_urls(url, fragment):
    with pytest.raises(api.ConsulError, match=fragment):
        resolve(dict(url=url))


def test_client_cert_needs_key():
    with pytest.raises(api.ConsulError, match="together"):
        resolve(dict(client_cert="/c.pem"))


def test_timeout_must_be_positive():
    with pytest.raises(api.ConsulError, match="positive"):
        resolve(dict(timeout=0))


def test_acl_token_is_sent_as_header():
    session = FakeSession(("GET", "/v1/peerings", ok([])))
    client(session, token=ACL_TOKEN).list_peerings()
    assert session.headers["X-Consul-Token"] == ACL_TOKEN


# --- retries ---------------------------------------------------------------------------

def test_connection_refused_on_post_is_retried_because_never_sent():
    session = FakeSession(
        ("POST", "/v1/peering/token", REFUSED),
        ("POST", "/v1/peering/token", REFUSED),
        ("POST", "/v1/peering/token", ok({"PeeringToken": TOKEN})),
    )
    c = client(session)
    assert c.generate_peering_token("cluster-02") == TOKEN
    assert len(session.calls) == 3
    assert len(c.sleeps) == 2
    assert c.sleeps[1] > c.sleeps[0]


def test_connection_refused_fails_naming_the_url_after_bounded_attempts():
    session = FakeSession(*[("GET", "/v1/peerings", REFUSED)] * 4)
    c = client(session, retries=3)
    with pytest.raises(api.ConsulError) as exc:
        c.list_peerings()
    assert len(session.calls) == 4
    assert "http://consul.test:8500" in exc.value.msg
    assert "connection refused (after 4 attempts)" in exc.value.msg
    assert exc.value.status is None


def test_503_on_get_is_retried_then_fails():
    session = FakeSession(*[("GET", "/v1/peering/x", Resp(503, text="rpc error: No cluster leader"))] * 4)
    c = client(session, retries=3)
    with pytest.raises(api.ConsulError) as exc:
        c.get_peering("x")
    assert len(session.calls) == 4
    assert exc.value.status == 503
    assert "HTTP 503" in exc.value.msg


def test_503_on_get_then_success():
    session = FakeSession(
        ("GET", "/v1/peering/x", Resp(503, text="unavailable")),
        ("GET", "/v1/peering/x", ok(acceptor("x"))),
    )
    assert client(session).get_peering("x")["Name"] == "x"


def test_500_no_leader_on_get_is_retried():
    session = FakeSession(
        ("GET", "/v1/peerings", Resp(500, text="No cluster leader")),
        ("GET", "/v1/peerings", ok([])),
    )
    assert client(session).list_peerings() == []


def test_500_on_post_is_not_retried():
    session = FakeSession(("POST", "/v1/peering/establish", Resp(500, text="something broke")))
    with pytest.raises(api.ConsulError) as exc:
        client(session).establish_peering("cluster-01", TOKEN)
    assert len(session.calls) == 1
    assert exc.value.status == 500
    assert "something broke" in exc.value.msg


def test_503_on_post_is_not_retried():
    session = FakeSession(("POST", "/v1/peering/token", Resp(503, text="unavailable")))
    with pytest.raises(api.ConsulError):
        client(session).generate_peering_token("x")
    assert len(session.calls) == 1


def test_read_timeout_on_post_is_not_retried():
    session = FakeSession(("POST", "/v1/peering/token", requests.exceptions.ReadTimeout("read timed out")), LEADER)
    with pytest.raises(api.ConsulError) as exc:
        client(session).generate_peering_token("x")
    assert session.methods() == ["POST", "GET"] and not session.unexpected, session.unexpected
    assert exc.value.maybe_applied
    assert "no answer within 10" in exc.value.msg and "(after 1 attempt)" in exc.value.msg
    assert "http://consul.test:8500" in exc.value.msg


def test_read_timeout_on_get_is_retried():
    session = FakeSession(
        ("GET", "/v1/peerings", requests.exceptions.ReadTimeout("read timed out")),
        ("GET", "/v1/peerings", ok([])),
    )
    assert client(session).list_peerings() == []


def test_tls_failure_says_what_to_check():
    err = requests.exceptions.SSLError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: "
                                       "unable to get local issuer certificate (_ssl.c:1006)")
    session = FakeSession(*[("GET", "/v1/peerings", err)] * 4)
    with pytest.raises(api.ConsulError) as exc:
        client(session).list_peerings()
    assert "ca_path" in exc.value.msg
    assert "CERTIFICATE_VERIFY_FAILED" in exc.value.msg


# --- HTTP errors in the operator's words -------------------------------------------------

@pytest.mark.parametrize("text, fragment", [
    ("Permission denied: token with AccessorID '4673475e-5151-3a1b-50ba-a0d10d1f5c95' lacks permission "
     "'peering:write'", "lacks permission 'peering:write' (needed for POST /v1/peering/token)"),
    ("Permission denied: anonymous token lacks permission 'peering:write'. The anonymous token is used "
     "implicitly when a request does not specify a token.", "lacks permission 'peering:write'"),
    ("ACL not found", "Consul does not know the ACL token"),
])
def test_403_names_the_permission(text, fragment):
    session = FakeSession(("POST", "/v1/peering/token", Resp(403, text=text)))
    with pytest.raises(api.ConsulError) as exc:
        client(session).generate_peering_token("x")
    assert fragment in exc.value.msg
    assert exc.value.status == 403


def test_404_on_a_peering_is_none():
    session = FakeSession(("GET", "/v1/peering/x", not_found("x")))
    assert client(session).get_peering("x") is None


def test_peering_names_are_quoted_in_paths():
    session = FakeSession(("GET", "/v1/peering/a%2Fb", not_found("a/b")))
    assert client(session).get_peering("a/b") is None


# --- secrets never appear in a failure --------------------------------------------------

def test_acl_token_and_peering_token_are_masked_in_failures():
    echo = "bad request: token %s and peering token %s and secret %s" % (ACL_TOKEN, TOKEN, SECRET)
    session = FakeSession(("POST", "/v1/peering/establish", Resp(500, text=echo)))
    c = client(session, token=ACL_TOKEN)
    c.add_secret(TOKEN)
    c.add_secret(SECRET)
    with pytest.raises(api.ConsulError) as exc:
        c.establish_peering("cluster-01", TOKEN)
    for text in (exc.value.msg, exc.value.body):
        assert ACL_TOKEN not in text
        assert TOKEN not in text
        assert SECRET not in text
        assert api.MASK in text


def test_generated_token_is_registered_as_a_secret():
    session = FakeSession(("POST", "/v1/peering/token", ok({"PeeringToken": TOKEN})))
    c = client(session)
    c.generate_peering_token("x", meta={"a": "b"}, server_external_addresses=["1.2.3.4:8503"])
    assert c.scrub("x%sy" % TOKEN) == "x%sy" % api.MASK
    assert session.calls[0].body == {"PeerName": "x", "Meta": {"a": "b"}, "ServerExternalAddresses": ["1.2.3.4:8503"]}


def test_token_response_without_token_is_an_error():
    session = FakeSession(("POST", "/v1/peering/token", ok({})))
    with pytest.raises(api.ConsulError, match="without a PeeringToken"):
        client(session).generate_peering_token("x")


def test_secret_masked_in_connection_failures():
    err = requests.exceptions.ConnectionError("boom with %s inside" % ACL_TOKEN)
    session = FakeSession(*[("GET", "/v1/peerings", err)] * 4)
    with pytest.raises(api.ConsulError) as exc:
        client(session, token=ACL_TOKEN).list_peerings()
    assert ACL_TOKEN not in exc.value.msg


def test_read_timeout_failure_hints_at_slow_acl_denials():
    session = FakeSession(*[("GET", "/v1/peerings", requests.exceptions.ReadTimeout("read timed out"))] * 4 + [LEADER])
    with pytest.raises(api.ConsulError) as exc:
        client(session).list_peerings()
    assert "no answer within 10" in exc.value.msg and "(after 4 attempts)" in exc.value.msg
    assert "ACL denials" in exc.value.msg and "leader" not in exc.value.msg
    assert len(session.calls) == 5 and not session.unexpected, session.unexpected


def test_read_timeout_without_a_leader_says_so():
    """A cluster without quorum: the peering endpoints wait for a leader; the agent says it has none."""
    session = FakeSession(*[("GET", "/v1/peerings", requests.exceptions.ReadTimeout("read timed out"))] * 4 + [NO_LEADER])
    with pytest.raises(api.ConsulError) as exc:
        client(session, token=ACL_TOKEN).list_peerings()
    msg = exc.value.msg
    assert "no answer within 10s (after 4 attempts)" in msg and "reports no cluster leader" in msg, msg
    assert "ACL denials" not in msg and ACL_TOKEN not in msg
    assert not exc.value.maybe_applied and not session.unexpected, session.unexpected


def test_write_timeout_without_a_leader_says_so_and_may_have_applied():
    session = FakeSession(("POST", "/v1/peering/token", requests.exceptions.ReadTimeout("read timed out")), NO_LEADER)
    with pytest.raises(api.ConsulError) as exc:
        client(session).generate_peering_token("x")
    assert "reports no cluster leader" in exc.value.msg and "(after 1 attempt)" in exc.value.msg
    assert exc.value.maybe_applied


@pytest.mark.parametrize("answer", [
    requests.exceptions.ReadTimeout("read timed out"), Resp(500, text="rpc error"), Resp(200, text="not json")])
def test_leader_question_that_fails_keeps_the_timeout_message(answer):
    session = FakeSession(("GET", "/v1/peerings", requests.exceptions.ReadTimeout("read timed out")),
                          ("GET", "/v1/status/leader", answer))
    with pytest.raises(api.ConsulError) as exc:
        client(session, retries=0).list_peerings()
    assert "no answer within 10s (after 1 attempt)" in exc.value.msg and "ACL denials" in exc.value.msg
    assert "leader" not in exc.value.msg


def test_connect_timeout_does_not_ask_for_the_leader():
    session = FakeSession(*[("GET", "/v1/peerings", requests.exceptions.ConnectTimeout("connect timed out"))] * 4)
    with pytest.raises(api.ConsulError) as exc:
        client(session).list_peerings()
    assert "timed out after 10s (after 4 attempts)" in exc.value.msg
    assert session.methods() == ["GET"] * 4 and not session.unexpected
