# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Secrets under every input: token hygiene, no redirects, no credentials in URLs, dot-segment names."""

from __future__ import annotations

import os

import pytest
import requests

from ansible_collections.seed.consul_peering.plugins.module_utils import consul_api as api
from ansible_collections.seed.consul_peering.plugins.modules import peering_info, service_intentions, service_resolver

from ..peering_stubs import ACL_TOKEN, TOKEN, FakeSession, Resp, client, ok, run

SECRET_TOKEN = "7d1c5a52-9e4e-4c59-8b7e-5a1d2c3b4e00"


def resolve(params=None, warn=None, **env):
    return api.resolve_connection(params or {}, environ=env, warn=warn)


# --- token normalisation ----------------------------------------------------------------------

@pytest.mark.parametrize("raw", [SECRET_TOKEN + "\n", " " + SECRET_TOKEN + "\r\n", "\t" + SECRET_TOKEN])
def test_token_option_is_stripped_like_consul_strips_token_files(raw):
    assert resolve({"token": raw})["token"] == SECRET_TOKEN


def test_token_from_the_environment_is_stripped():
    assert resolve(CONSUL_HTTP_TOKEN=SECRET_TOKEN + "\n")["token"] == SECRET_TOKEN


@pytest.mark.parametrize("raw", [SECRET_TOKEN[:8] + "\n" + SECRET_TOKEN[8:], SECRET_TOKEN + "\x00x",
                                 SECRET_TOKEN[:5] + " " + SECRET_TOKEN[5:], SECRET_TOKEN + "\u00e9"])
def test_a_token_that_cannot_be_a_header_is_refused_without_quoting_it(raw):
    with pytest.raises(api.ConsulError) as e:
        resolve({"token": raw})
    assert "X-Consul-Token" in e.value.msg and "token option" in e.value.msg
    for piece in (SECRET_TOKEN, SECRET_TOKEN[:8], SECRET_TOKEN[9:], repr(raw)):
        assert piece not in e.value.msg


def test_a_whitespace_only_token_option_is_an_error():
    with pytest.raises(api.ConsulError) as e:
        resolve({"token": " \n"})
    assert "only whitespace" in e.value.msg


def test_the_stripped_token_is_what_is_sent():
    session = FakeSession(("GET", "/v1/peerings", ok([])))
    conn = resolve({"url": "http://consul.test:8500", "token": SECRET_TOKEN + "\n"})
    api.ConsulClient(conn, session=session).list_peerings()
    assert session.headers["X-Consul-Token"] == SECRET_TOKEN


# --- token files ------------------------------------------------------------------------------

def token_file(tmp_path, text, mode=0o600):
    path = tmp_path / "acl.token"
    path.write_text(text)
    os.chmod(str(path), mode)
    return str(path)


def test_token_file_is_read_and_stripped_with_no_warning_when_private(tmp_path):
    warnings = []
    conn = resolve(warn=warnings.append, CONSUL_HTTP_TOKEN_FILE=token_file(tmp_path, SECRET_TOKEN + "\n"))
    assert conn["token"] == SECRET_TOKEN and warnings == []


def test_world_readable_token_file_gives_a_warning(tmp_path):
    warnings = []
    path = token_file(tmp_path, SECRET_TOKEN, mode=0o644)
    assert resolve(warn=warnings.append, CONSUL_HTTP_TOKEN_FILE=path)["token"] == SECRET_TOKEN
    assert len(warnings) == 1 and "readable by every user" in warnings[0] and "chmod 600" in warnings[0]
    assert SECRET_TOKEN not in warnings[0]


@pytest.mark.parametrize("text", ["", "\n", "   \n\n"])
def test_empty_token_file_is_an_error_that_says_anonymous(tmp_path, text):
    with pytest.raises(api.ConsulError) as e:
        resolve(CONSUL_HTTP_TOKEN_FILE=token_file(tmp_path, text))
    assert "is empty" in e.value.msg and "anonymously" in e.value.msg


def test_token_file_with_a_control_character_inside_is_refused_without_quoting_it(tmp_path):
    with pytest.raises(api.ConsulError) as e:
        resolve(CONSUL_HTTP_TOKEN_FILE=token_file(tmp_path, SECRET_TOKEN[:9] + "\x07" + SECRET_TOKEN[9:]))
    assert "token file" in e.value.msg and SECRET_TOKEN[:9] not in e.value.msg


# --- credentials in the URL -------------------------------------------------------------------

@pytest.mark.parametrize("url", ["https://%s@consul.test:8501" % SECRET_TOKEN,
                                 "https://user:%s@consul.test:8501" % SECRET_TOKEN,
                                 "%s@consul.test:8500" % SECRET_TOKEN,
                                 "http://:%s@consul.test" % SECRET_TOKEN])
def test_userinfo_in_the_url_is_refused_without_echoing_it(url):
    for params, env in (({"url": url}, {}), ({}, {"CONSUL_HTTP_ADDR": url})):
        with pytest.raises(api.ConsulError) as e:
            resolve(params, **env)
        assert "user information" in e.value.msg
        assert SECRET_TOKEN not in e.value.msg and "consul.test" not in e.value.msg


def test_userinfo_is_masked_in_the_module_invocation(capsys):
    url = "https://%s@consul.test:8501" % SECRET_TOKEN
    rc, result, raw = run(peering_info, {"url": url}, FakeSession(), capsys)
    assert rc == 1 and "user information" in result["msg"]
    assert SECRET_TOKEN not in raw


# --- redirects --------------------------------------------------------------------------------

def redirect(status, location):
    r = Resp(status, text="")
    r.headers = {"Location": location}
    return r


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_an_error_naming_the_host_only_and_is_not_retried(status):
    loc = "http://other-host.example:8080/v1/peerings?token=%s" % SECRET_TOKEN
    session = FakeSession(("GET", "/v1/peerings", redirect(status, loc)))
    with pytest.raises(api.ConsulError) as e:
        client(session, token=ACL_TOKEN).list_peerings()
    msg = e.value.msg
    assert "redirect to host other-host.example:8080" in msg and "over plain http" in msg
    assert "never follows redirects" in msg and SECRET_TOKEN not in msg and "/v1/peerings?" not in msg
    assert len(session.calls) == 1 and not session.unexpected


def test_every_request_is_sent_without_following_redirects():
    session = FakeSession(("GET", "/v1/peerings", ok([])), ("POST", "/v1/peering/establish", ok({})))
    c = client(session, token=ACL_TOKEN)
    c.list_peerings()
    c.establish_peering("cluster-01", TOKEN)
    # FakeSession records any request sent with allow_redirects left on.
    assert not session.unexpected and len(session.calls) == 2


# --- scrubbing every form of a secret ---------------------------------------------------------

def test_scrub_masks_raw_escaped_encoded_and_fragment_forms():
    secrets = api.secret_forms(SECRET_TOKEN + "\n") | api.secret_forms(TOKEN)
    texts = [
        "in header value: %r" % (SECRET_TOKEN + "\n"),
        "json %s" % '"%s\\n"' % SECRET_TOKEN,
        "url ?t=%s" % requests.utils.quote(SECRET_TOKEN + "\n", safe=""),
        "b64 %s" % __import__("base64").b64encode((SECRET_TOKEN + "\n").encode()).decode(),
        "cut token %s..." % TOKEN[10:70],
    ]
    for text in texts:
        out = api.scrub_text(text, secrets)
        assert api.MASK in out, (text, out)
        assert SECRET_TOKEN not in out and TOKEN[10:70] not in out and TOKEN[20:50] not in out, out


def test_scrub_leaves_ordinary_words_alone():
    secrets = api.secret_forms(SECRET_TOKEN)
    text = "cannot reach Consul at http://consul.test:8500: connection refused; peering cluster-0123456789abcdefghij"
    assert api.scrub_text(text, secrets) == text


def test_a_library_error_that_quotes_a_header_value_is_not_echoed():
    err = requests.exceptions.InvalidHeader(
        "Invalid leading whitespace, reserved character(s), or return character(s) in header value: %r"
        % ("weird" + SECRET_TOKEN[::-1] + "\n"))
    session = FakeSession(*[("GET", "/v1/peerings", err)] * 4)
    with pytest.raises(api.ConsulError) as e:
        client(session).list_peerings()
    assert "InvalidHeader" in e.value.msg and SECRET_TOKEN[::-1] not in e.value.msg


# --- names that would change the request path -------------------------------------------------

@pytest.mark.parametrize("name", [".", "..", "a/../b", "a/./b", "a//b", "/a", "a/"])
def test_dot_segment_names_are_refused(name):
    assert "would change the request path" in api.path_segment_problem(name, "name")
    with pytest.raises(api.ConsulError):
        api.api_path("v1", "config", "service-intentions", name)


@pytest.mark.parametrize("name", ["web", "a.b", "...", ".hidden", "bad/name", "*"])
def test_ordinary_names_pass_and_are_quoted_as_one_segment(name):
    assert api.path_segment_problem(name, "name") is None
    assert api.api_path("v1", "config", "service-intentions", name).count("/") == 4


@pytest.mark.parametrize("module, args", [
    (service_intentions, {"name": "..", "sources": [{"name": "web", "action": "allow"}]}),
    (service_intentions, {"name": ".", "sources": [{"name": "web", "action": "allow"}]}),
    (service_intentions, {"name": ".", "state": "absent"}),
    (service_intentions, {"name": "api", "sources": [{"name": "..", "action": "allow"}]}),
    (service_resolver, {"name": ".."}),
    (service_resolver, {"name": ".", "state": "absent"}),
    (service_resolver, {"name": "api", "redirect": {"service": "a/../b"}}),
    (peering_info, {"peer_name": "cluster-02", "expect_services": ["web", ".."]}),
])
def test_modules_refuse_dot_segment_names_before_any_request(capsys, module, args):
    session = FakeSession()
    rc, result, dummy = run(module, args, session, capsys)
    assert rc == 1 and "would change the request path" in result["msg"], result
    assert session.calls == []


# --- one path and one parser for environment booleans -------------------------------------------

@pytest.mark.parametrize("raw, expected", [("false", False), ("FALSE", False), ("off", False), ("no", False),
                                           ("0", False), ("f", False), ("true", True), ("1", True), ("yes", True),
                                           ("On", True), (" true\n", True), ("", True)])
def test_validate_certs_from_the_environment(raw, expected):
    assert resolve(CONSUL_HTTP_SSL_VERIFY=raw)["validate_certs"] is expected


@pytest.mark.parametrize("var", ["CONSUL_HTTP_SSL_VERIFY", "CONSUL_HTTP_SSL"])
@pytest.mark.parametrize("raw", ["maybe", "2", "enabled"])
def test_a_non_boolean_environment_value_is_an_error_not_false(var, raw):
    with pytest.raises(api.ConsulError) as e:
        resolve(**{var: raw, "CONSUL_HTTP_ADDR": "consul.test:8501"})
    assert var in e.value.msg and "not a boolean" in e.value.msg


def test_the_argspec_reads_no_environment_variable():
    """Fallbacks live only in resolve_connection, so a module and a test resolve them alike."""
    assert not any("fallback" in spec for spec in api.CONNECTION_ARGSPEC.values())


def test_module_with_an_empty_ssl_verify_variable_runs(capsys, monkeypatch):
    """docs/awx.md: an empty variable counts as unset (AWX credential fields left blank)."""
    monkeypatch.setenv("CONSUL_HTTP_SSL_VERIFY", "")
    monkeypatch.setenv("CONSUL_CLIENT_CERT", "")
    rc, result, dummy = run(peering_info, {}, FakeSession(("GET", "/v1/peerings", ok([]))), capsys)
    assert rc == 0 and result["peerings"] == []
