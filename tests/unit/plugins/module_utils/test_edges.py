# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""No silent false success: exact answers at the edges (absence, non-Consul answers, lost writes, names,
security fields kept, unreachable acceptors)."""

from __future__ import annotations

import copy
import math

import pytest
import requests

from ansible_collections.seed.consul_peering.plugins.module_utils import _config_entries as ce
from ansible_collections.seed.consul_peering.plugins.module_utils import _peering as pt
from ansible_collections.seed.consul_peering.plugins.module_utils import _service_resolver as sr
from ansible_collections.seed.consul_peering.plugins.module_utils import consul_api as api
from ansible_collections.seed.consul_peering.plugins.modules import (
    peering_establish,
    peering_info,
    peering_token,
    service_intentions,
)

from ..peering_stubs import (
    LEADER,
    NO_LEADER,
    TOKEN,
    FakeSession,
    Resp,
    acceptor,
    client,
    make_token,
    not_found,
    ok,
    run,
)


# --- 15.1 absence only from an answer that says so; a 2xx must be Consul's JSON -------------------

@pytest.mark.parametrize("resp", [
    Resp(404, text="Invalid URL path: not a recognized HTTP API endpoint"),
    Resp(404, text="<html><body>404 Not Found</body></html>"),
    Resp(404, text=""),
])
def test_a_404_that_is_not_consuls_no_such_peering_is_an_error(resp):
    session = FakeSession(("GET", "/v1/peering/x", resp))
    with pytest.raises(api.ConsulError) as e:
        client(session).get_peering("x")
    assert e.value.status == 404


def test_consuls_own_not_found_is_absence():
    assert client(FakeSession(("GET", "/v1/peering/x", not_found("x")))).get_peering("x") is None
    session = FakeSession(("GET", "/v1/config/service-intentions/api",
                           Resp(404, text='Config entry not found for "service-intentions" / "api"')))
    assert client(session).get_config_entry("service-intentions", "api") is None


def test_absence_is_recognised_only_by_the_text_an_endpoint_names():
    """request(not_found=...) without absent_text is a programming error: no loose "not found" fallback."""
    session = FakeSession()
    with pytest.raises(TypeError):
        client(session).request("GET", "/v1/anything", not_found={})
    assert session.calls == []


def test_a_session_renew_404_is_gone_only_in_consuls_words():
    gone = FakeSession(("PUT", "/v1/session/renew/s1", Resp(404, text="Session id 's1' not found")))
    assert client(gone).renew_session("s1") is None
    proxy = FakeSession(("PUT", "/v1/session/renew/s1", Resp(404, text="404 page not found")))
    with pytest.raises(api.ConsulError):
        client(proxy).renew_session("s1")


def test_the_client_has_no_generic_get_put_or_post():
    """Each endpoint is a named method that states its absence text and answer type (issue 14's transport)."""
    for name in ("get", "put", "post"):
        assert not hasattr(api.ConsulClient, name), name


def test_a_config_entry_404_from_a_proxy_is_an_error():
    session = FakeSession(("GET", "/v1/config/service-intentions/api", Resp(404, text="404 page not found")))
    with pytest.raises(api.ConsulError):
        client(session).get_config_entry("service-intentions", "api")


@pytest.mark.parametrize("path, call, resp", [
    ("/v1/peerings", lambda c: c.list_peerings(), Resp(200, text="<html>hello</html>", headers={"Content-Type": "text/html"})),
    ("/v1/peerings", lambda c: c.list_peerings(), Resp(200, text='{"not": "a list"}')),
    ("/v1/peering/x", lambda c: c.get_peering("x"), Resp(200, text="OK")),
    ("/v1/peering/x", lambda c: c.get_peering("x"), Resp(200, text="[]")),
    ("/v1/config/service-intentions/a", lambda c: c.get_config_entry("service-intentions", "a"), Resp(200, text='"x"')),
])
def test_a_2xx_that_is_not_the_json_expected_is_a_clear_error(path, call, resp):
    with pytest.raises(api.ConsulError) as e:
        call(client(FakeSession(("GET", path, resp))))
    assert "not with Consul's JSON" in e.value.msg and "scheme, host and port only" in e.value.msg


def test_unpeer_through_a_path_url_fails_instead_of_reporting_nothing_to_do(capsys):
    """The issue's case: url=.../v1 made every 404 'absent', so state=absent reported ok, changed=0."""
    rc, result, dummy = run(peering_token, {"peer_name": "cluster-02", "state": "absent",
                                            "url": "http://consul.test:8500/v1"}, FakeSession(), capsys)
    assert rc == 1 and "path, query or fragment" in result["msg"]


@pytest.mark.parametrize("url", ["http://consul.test:8500/v1", "http://consul.test:8500?dc=dc1",
                                 "http://consul.test:8500/#x", "consul.test:8500/consul", "http://consul.test:8500?"])
def test_a_url_with_path_query_or_fragment_is_refused(url):
    with pytest.raises(api.ConsulError) as e:
        api.resolve_connection({"url": url}, environ={})
    assert "path, query or fragment" in e.value.msg


@pytest.mark.parametrize("url", ["http://consul.test:8500/", "https://consul.test", "consul.test:8500"])
def test_plain_addresses_pass(url):
    assert api.resolve_connection({"url": url}, environ={})["url"].count("/") == 2


# --- 15.3 a write whose answer was lost is reported as the change it was ------------------------

class LosingClient:
    """Consul's config-entry store behind a link that loses the first PUT's answer after applying it."""

    def __init__(self, entry=None, apply_lost=True):
        self.entry = copy.deepcopy(entry)
        self.index = 10
        self.apply_lost = apply_lost
        self.lost = 0
        self.puts = 0

    def get_config_entry(self, kind, name, namespace=None):
        return copy.deepcopy(self.entry)

    def cas_put_config_entry(self, entry, modify_index):
        self.puts += 1
        if int(modify_index) != (self.entry or {}).get("ModifyIndex", 0):
            return False
        if self.lost == 0:
            self.lost += 1
            if self.apply_lost:
                self._apply(entry)
            raise api.ConsulError("cannot reach Consul: no answer within 10s", maybe_applied=True)
        self._apply(entry)
        return True

    def _apply(self, entry):
        self.index += 1
        self.entry = dict(copy.deepcopy(entry), ModifyIndex=self.index, CreateIndex=self.index)


def export_build(current):
    return ce.merge_exported_services(current, [{"name": "web", "consumers": [{"peer": "p1"}]}], "default")


@pytest.mark.parametrize("applied", [True, False])
def test_a_lost_answer_to_a_cas_write_still_reports_changed(applied):
    c = LosingClient(apply_lost=applied)
    result = ce.apply_config_entry(c, "exported-services", "default", export_build, ce.canonical_exported_services,
                                   sleep=lambda s: None, rand=lambda: 0.5)
    assert result["changed"] is True and result["operation"] == "create", result
    assert c.entry["Services"] == [{"Name": "web", "Consumers": [{"Peer": "p1"}]}]
    # Applied: the write is not sent twice; not applied: it is sent again and succeeds.
    assert c.puts == (1 if applied else 2)
    assert result["cas_conflicts"] == 0


def test_the_transport_marks_a_sent_write_without_answer_as_maybe_applied():
    session = FakeSession(("PUT", "/v1/config", requests.exceptions.ReadTimeout("read timed out")), LEADER)
    with pytest.raises(api.ConsulError) as e:
        client(session).cas_put_config_entry({"Kind": "exported-services", "Name": "default"}, 0)
    assert e.value.maybe_applied is True and session.methods() == ["PUT", "GET"], session.calls


def test_a_write_that_never_reached_the_server_is_not_maybe_applied():
    refused = requests.exceptions.ConnectionError("NewConnectionError: Connection refused")
    session = FakeSession(*[("PUT", "/v1/config", refused)] * 4)
    with pytest.raises(api.ConsulError) as e:
        client(session).cas_put_config_entry({"Kind": "exported-services", "Name": "default"}, 0)
    assert e.value.maybe_applied is False


# --- 15.4 names are whole-string checks ------------------------------------------------------------

@pytest.mark.parametrize("name", ["p\n", "p\r\n", "cluster-02\n"])
def test_a_trailing_newline_is_not_a_valid_peer_name(name):
    assert "not a valid peer name" in pt.peer_name_problem(name)


def test_a_trailing_newline_consumer_is_refused():
    errors = ce.validate_exported_services([{"name": "web", "consumers": [{"peer": "p\n"}]}])
    assert errors and "not a valid peer name" in errors[0]


def test_server_address_with_a_trailing_newline_is_refused():
    assert pt.server_addresses_problem(["10.0.0.1:8503\n"])


# --- 15.6 smaller defects ----------------------------------------------------------------------------

@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 0, -1])
def test_timeout_nan_inf_and_non_positive_are_refused(value):
    with pytest.raises(api.ConsulError, match="positive, finite"):
        api.resolve_connection({"timeout": value}, environ={})


@pytest.mark.parametrize("module, args", [
    (peering_token, {"peer_name": "p1", "wait_timeout": -1}),
    (peering_establish, {"peer_name": "p1", "peering_token": TOKEN, "wait_timeout": -5}),
    (peering_info, {"peer_name": "p1", "wait_for": "active", "wait_timeout": -1}),
])
def test_a_negative_wait_timeout_is_refused_before_any_request(capsys, module, args):
    session = FakeSession()
    rc, result, dummy = run(module, args, session, capsys)
    assert rc == 1 and "wait_timeout must be 0 or more" in result["msg"] and session.calls == []


@pytest.mark.parametrize("module, args", [
    (peering_token, {"peer_name": "p1", "meta": {"team": {"name": "x"}}}),
    (peering_establish, {"peer_name": "p1", "peering_token": TOKEN, "meta": {"tags": ["a", "b"]}}),
])
def test_nested_meta_is_refused_before_any_request(capsys, module, args):
    session = FakeSession()
    rc, result, dummy = run(module, args, session, capsys)
    assert rc == 1 and "peering meta values are strings" in result["msg"] and session.calls == []


def test_a_line_wrapped_token_is_accepted_and_sent_unwrapped(capsys):
    wrapped = "\n".join(TOKEN[i:i + 64] for i in range(0, len(TOKEN), 64)) + "\n"
    session = FakeSession(("GET", "/v1/peering/cluster-01", not_found("cluster-01")),
                          ("POST", "/v1/peering/establish", ok({})),
                          ("GET", "/v1/peering/cluster-01", ok(dict(acceptor("cluster-01"), PeerID=pt.decode_token(TOKEN)["PeerID"],
                                                                    PeerServerAddresses=["127.0.0.1:18106"]))))
    rc, result, dummy = run(peering_establish, {"peer_name": "cluster-01", "peering_token": wrapped}, session, capsys)
    assert rc == 0, result
    assert session.calls[1].body["PeeringToken"] == TOKEN


def test_server_external_addresses_on_an_active_peering_warn(capsys):
    session = FakeSession(("GET", "/v1/peering/cluster-02", ok(acceptor("cluster-02"))))
    rc, result, dummy = run(peering_token, {"peer_name": "cluster-02", "server_external_addresses": ["10.0.0.9:8503"]},
                            session, capsys)
    assert rc == 0 and result["changed"] is False
    assert any("server_external_addresses go into a new token only" in w for w in result["warnings"])


@pytest.mark.parametrize("addr", ["http://consul.test:8500", "consul.test:8500"])
def test_consul_http_ssl_true_never_reverts_to_plain_http(addr):
    assert api.resolve_connection({}, environ={"CONSUL_HTTP_ADDR": addr, "CONSUL_HTTP_SSL": "true"})["url"] == \
        "https://consul.test:8500"
    assert api.resolve_connection({"url": addr}, environ={"CONSUL_HTTP_SSL": "true"})["url"] == \
        "https://consul.test:8500"


def test_a_unix_socket_address_is_refused_clearly():
    with pytest.raises(api.ConsulError, match="unix socket: the modules talk HTTP over TCP only"):
        api.resolve_connection({}, environ={"CONSUL_HTTP_ADDR": "unix:///var/run/consul.sock"})


# --- 15.5 an unreachable acceptor: one short message naming the token's addresses -------------------

REFUSED_ONCE = ('failed to exchange peering secret through address "10.9.9.9:8503": rpc error: code = Unavailable '
                'desc = connection error: desc = "transport: Error while dialing: dial tcp 10.9.9.9:8503: connect: '
                'connection refused"')


def test_an_unreachable_acceptor_gives_one_short_message():
    # Consul's multi-error shape, as seen on the lab.
    text = "18 errors occurred:\n" + "".join("\t* %s\n" % REFUSED_ONCE for dummy in range(18))
    token = make_token(ServerAddresses=["10.9.9.9:8503"])
    session = FakeSession(("POST", "/v1/peering/establish", Resp(500, text=text)))
    with pytest.raises(api.ConsulError) as e:
        pt.establish(client(session), "cluster-01", token, pt.decode_token(token), None)
    msg = e.value.msg
    assert "10.9.9.9:8503" in msg and "connection refused" in msg and len(msg) < 1000
    assert msg.count("rpc error") == 1 and "errors occurred" not in msg


def test_a_silent_acceptor_names_the_addresses_not_acls():
    token = make_token(ServerAddresses=["10.9.9.9:8503"])
    session = FakeSession(("POST", "/v1/peering/establish", requests.exceptions.ReadTimeout("read timed out")), LEADER)
    with pytest.raises(api.ConsulError) as e:
        pt.establish(client(session), "cluster-01", token, pt.decode_token(token), None)
    assert "10.9.9.9:8503" in e.value.msg and "ACL" not in e.value.msg
    assert not session.unexpected, session.unexpected


def test_establish_on_a_dialer_without_a_leader_blames_the_missing_leader_not_the_acceptor():
    token = make_token(ServerAddresses=["10.9.9.9:8503"])
    session = FakeSession(("POST", "/v1/peering/establish", requests.exceptions.ReadTimeout("read timed out")),
                          NO_LEADER)
    with pytest.raises(api.ConsulError) as e:
        pt.establish(client(session), "cluster-01", token, pt.decode_token(token), None)
    assert "reports no cluster leader" in e.value.msg and "10.9.9.9" not in e.value.msg, e.value.msg


class TimeoutRecording(FakeSession):
    """FakeSession that also records each request's read timeout."""

    def __init__(self, *script):
        super().__init__(*script)
        self.timeouts = []

    def request(self, method, url, **kw):
        self.timeouts.append(kw.get("timeout"))
        return super().request(method, url, **{k: v for k, v in kw.items() if k != "timeout"})


def test_establish_waits_longer_than_the_default_request_timeout():
    session = TimeoutRecording(("POST", "/v1/peering/establish", ok({})))
    client(session).establish_peering("cluster-01", TOKEN)
    assert session.timeouts[0] >= api.ESTABLISH_TIMEOUT


# --- 15.2 never drop a security field ----------------------------------------------------------------

JWT = {"Providers": [{"Name": "okta", "VerifyClaims": [{"Path": ["perms", "role"], "Value": "admin"}]}]}


def intentions_entry():
    return {"Kind": "service-intentions", "Name": "api", "JWT": JWT, "Meta": {"owner": "team-a"},
            "Sources": [{"Name": "web", "Peer": "p1", "Description": "old", "Precedence": 9, "Type": "consul",
                         "Permissions": [{"Action": "allow", "HTTP": {"PathPrefix": "/admin"}, "JWT": JWT},
                                         {"Action": "deny", "HTTP": {"PathPrefix": "/"}}]}]}


def test_rewriting_a_source_keeps_its_permission_jwt():
    src = {"name": "web", "peer": "p1", "description": "new",
           "permissions": [{"action": "allow", "http": {"path_prefix": "/admin"}},
                           {"action": "deny", "http": {"path_prefix": "/"}}]}
    out = ce.merge_intentions(intentions_entry(), [src], "api")
    assert out["Sources"][0]["Permissions"][0]["JWT"] == JWT
    assert "JWT" not in out["Sources"][0]["Permissions"][1]
    assert out["Sources"][0]["Description"] == "new"
    assert out["JWT"] == JWT and out["Meta"] == {"owner": "team-a"}


ADMIN_ONLY = {"Kind": "service-intentions", "Name": "api",
              "Sources": [{"Name": "web", "Peer": "p1", "Precedence": 9, "Type": "consul",
                           "Permissions": [{"Action": "allow", "HTTP": {"PathPrefix": "/admin"}, "JWT": JWT}]}]}


@pytest.mark.parametrize("src, says", [
    # The match changed: which permission should inherit the requirement is not for the module to guess.
    ({"name": "web", "peer": "p1", "permissions": [{"action": "allow", "http": {"path_prefix": "/admin/v2"}}]},
     "no permission given has the same action and HTTP match"),
    # The action changed.
    ({"name": "web", "peer": "p1", "permissions": [{"action": "deny", "http": {"path_prefix": "/admin"}}]},
     "no permission given has the same action and HTTP match"),
    # An L4 allow cannot carry a JWT requirement.
    ({"name": "web", "peer": "p1", "action": "allow"}, "action: allow would drop: an L4 action carries no JWT"),
])
def test_a_permission_jwt_no_given_permission_keeps_is_refused_naming_it(src, says):
    with pytest.raises(api.ConsulError) as e:
        ce.merge_intentions(copy.deepcopy(ADMIN_ONLY), [src], "api")
    msg = e.value.msg
    assert msg.startswith("sources[0] ('web' (peer 'p1')): Consul holds a JWT requirement") and says in msg, msg
    assert "Permissions[0].JWT" in msg and "'okta'" in msg and "nothing was written" in msg, msg
    assert "perms" not in msg, msg  # provider names only, not the claims
    if src.get("action"):
        assert "jwt: {}" in msg and "entry-level jwt" in msg, msg
    else:
        assert "jwt on each of this source's permissions" in msg and "jwt: {}" in msg, msg


@pytest.mark.parametrize("src, kept", [
    # Said on every permission: the input is the whole truth about this source's JWT requirements.
    ({"name": "web", "peer": "p1", "permissions": [{"action": "allow", "http": {"path_prefix": "/admin/v2"},
                                                    "jwt": {}}]}, None),
    ({"name": "web", "peer": "p1", "permissions": [{"action": "allow", "http": {"path_prefix": "/admin/v2"},
                                                    "jwt": {"providers": [{"name": "okta"}]}}]},
     {"Providers": [{"Name": "okta"}]}),
    # Denying every request from the source needs no token check.
    ({"name": "web", "peer": "p1", "action": "deny"}, None),
    # The same action and match keeps it.
    ({"name": "web", "peer": "p1", "permissions": [{"action": "allow", "http": {"path_prefix": "/admin"}}]}, JWT),
])
def test_a_permission_jwt_is_dropped_only_when_the_input_says_so(src, kept):
    out = ce.merge_intentions(copy.deepcopy(ADMIN_ONLY), [src], "api")
    perms = out["Sources"][0].get("Permissions") or [{}]
    assert perms[0].get("JWT") == kept


def test_each_existing_jwt_is_inherited_once_and_a_second_loss_is_still_named():
    current = copy.deepcopy(ADMIN_ONLY)
    current["Sources"][0]["Permissions"].append(
        {"Action": "allow", "HTTP": {"PathPrefix": "/ops"}, "JWT": {"Providers": [{"Name": "auth0"}]}})
    src = {"name": "web", "peer": "p1", "permissions": [
        {"action": "allow", "http": {"path_prefix": "/admin"}}, {"action": "allow", "http": {"path_prefix": "/ops/v2"}}]}
    with pytest.raises(api.ConsulError) as e:
        ce.merge_intentions(current, [src], "api")
    assert "Permissions[1].JWT" in e.value.msg and "'auth0'" in e.value.msg and "Permissions[0]" not in e.value.msg


def test_a_lost_permission_jwt_fails_the_module_before_any_write(capsys):
    session = FakeSession(("GET", "/v1/config/service-intentions/api", ok(copy.deepcopy(ADMIN_ONLY))))
    rc, result, dummy = run(service_intentions, {"name": "api", "sources": [
        {"name": "web", "peer": "p1", "action": "allow"}]}, session, capsys)
    assert rc == 1 and "Permissions[0].JWT" in result["msg"], result
    assert session.methods() == ["GET"]


def test_jwt_empty_removes_it_and_jwt_given_sets_it():
    src = {"name": "web", "peer": "p1", "permissions": [
        {"action": "allow", "http": {"path_prefix": "/admin"}, "jwt": {}},
        {"action": "deny", "http": {"path_prefix": "/"}, "jwt": {"providers": [{"name": "auth0"}]}}]}
    out = ce.merge_intentions(intentions_entry(), [src], "api", jwt={"providers": []})
    perms = out["Sources"][0]["Permissions"]
    assert "JWT" not in perms[0] and perms[1]["JWT"] == {"Providers": [{"Name": "auth0"}]}
    assert "JWT" not in out


def test_entry_jwt_option_is_written():
    out = ce.merge_intentions(None, [{"name": "web", "action": "allow"}], "api", jwt={"providers": [
        {"name": "okta", "verify_claims": [{"path": ["perms", "role"], "value": "admin"}]}]})
    assert out["JWT"] == JWT


def test_a_source_field_the_module_does_not_manage_is_kept():
    entry = intentions_entry()
    entry["Sources"][0]["FutureField"] = {"x": 1}
    # (action deny: an allow would drop the permission's JWT, which is refused.)
    out = ce.merge_intentions(entry, [{"name": "web", "peer": "p1", "action": "deny"}], "api")
    assert out["Sources"][0]["FutureField"] == {"x": 1} and out["Sources"][0]["Action"] == "deny"
    assert "Precedence" not in out["Sources"][0]


def test_jwt_input_is_checked(capsys):
    rc, result, dummy = run(service_intentions, {"name": "api", "sources": [{"name": "web", "action": "allow"}],
                                                 "jwt": {"providers": [{"name": "okta"}, {"name": "okta"}]}},
                            FakeSession(), capsys)
    assert rc == 1 and "provider 'okta' is listed twice" in result["msg"]


def test_resolver_keeps_the_fields_it_does_not_manage():
    current = {"Kind": "service-resolver", "Name": "api", "Meta": {"a": "b"}, "PrioritizeByLocality": {"Mode": "failover"},
               "Failover": {"*": {"Targets": [{"Peer": "p1"}], "Policy": {"Mode": "order-by-locality"}}},
               "ModifyIndex": 5}
    params = {"state": "present", "name": "api", "failover": [{"subset": "*", "targets": [{"peer": "p2"}]}]}
    out = sr.build_resolver(current, params)
    assert out["Meta"] == {"a": "b"} and out["PrioritizeByLocality"] == {"Mode": "failover"}
    assert out["Failover"]["*"]["Policy"] == {"Mode": "order-by-locality"}
    assert out["Failover"]["*"]["Targets"] == [{"Peer": "p2"}] and "ModifyIndex" not in out


def test_exported_services_keeps_unknown_consumer_and_entry_fields():
    current = {"Kind": "exported-services", "Name": "default", "Meta": {"a": "b"},
               "Services": [{"Name": "web", "Consumers": [{"Peer": "p1", "Future": "x"}]}]}
    out = ce.merge_exported_services(current, [{"name": "web", "consumers": [{"peer": "p2"}]}], "default")
    assert out["Meta"] == {"a": "b"}
    assert {"Peer": "p1", "Future": "x"} in out["Services"][0]["Consumers"]


def test_consul_namespace_is_the_fallback_for_namespace(capsys, monkeypatch):
    """On CE a namespace other than default is Enterprise-only: the env fallback is really read."""
    monkeypatch.setenv("CONSUL_NAMESPACE", "team-a")
    session = FakeSession(("GET", "/v1/agent/self", ok({"Config": {"Version": "1.22.7", "VersionMetadata": ""}})))
    rc, result, dummy = run(service_intentions, {"name": "api", "sources": [{"name": "web", "action": "allow"}]},
                            session, capsys)
    assert rc == 1 and "namespace 'team-a'" in result["msg"] and "Enterprise" in result["msg"], result


def test_watch_peerings_is_a_blocking_query_with_its_index_as_a_value():
    session = TimeoutRecording(("GET", "/v1/peerings", Resp(200, text="[]", headers={"X-Consul-Index": "42"})))
    resp = client(session).watch_peerings(index=41, wait=10)
    assert resp.value == [] and resp.index == "42"
    assert session.calls[0].params == {"index": "41", "wait": "10s"} and session.timeouts[0] >= 10 + 10


def test_a_lost_answer_to_a_cas_delete_still_reports_changed():
    """The CAS delete is not repeated by the client once sent; the loop's re-read finds the entry gone."""
    entry = {"Kind": "exported-services", "Name": "default", "ModifyIndex": 7,
             "Services": [{"Name": "web", "Consumers": [{"Peer": "p1"}]}]}
    session = FakeSession(("GET", "/v1/config/exported-services/default", ok(entry)),
                          ("DELETE", "/v1/config/exported-services/default",
                           requests.exceptions.ConnectionError("RemoteDisconnected('Remote end closed connection')")),
                          ("GET", "/v1/config/exported-services/default",
                           Resp(404, text='Config entry not found for "exported-services" / "default"')))
    result = ce.apply_config_entry(
        client(session), "exported-services", "default",
        lambda current: ce.merge_exported_services(current, None, "default", "absent"),
        ce.canonical_exported_services, sleep=lambda s: None, rand=lambda: 0.5)
    assert result["changed"] is True and result["operation"] == "delete", result
    assert [c.method for c in session.calls] == ["GET", "DELETE", "GET"]


# --- fields newer than the server: refused naming the release (issue 16's table) ---------------------

def agent_self(version):
    return ("GET", "/v1/agent/self", ok({"Config": {"Version": version, "VersionMetadata": ""}}))


@pytest.mark.parametrize("opt", ["contains", "ignore_case"])
def test_header_contains_on_consul_1_19_is_refused_naming_1_20_1(capsys, opt):
    header = {"name": "x-id", "exact": "a"} if opt == "ignore_case" else {"name": "x-id"}
    header[opt] = True if opt == "ignore_case" else "ab"
    args = {"name": "api", "sources": [{"name": "web", "permissions": [
        {"action": "allow", "http": {"path_prefix": "/", "header": [header]}}]}]}
    session = FakeSession(agent_self("1.19.2"))
    rc, result, dummy = run(service_intentions, args, session, capsys)
    assert rc == 1 and "header[0].%s needs Consul 1.20.1 or later" % opt in result["msg"]
    assert "runs Consul 1.19.2" in result["msg"] and session.methods() == ["GET"]


def test_jwt_on_consul_1_15_is_refused_and_1_22_goes_ahead(capsys):
    args = {"name": "api", "sources": [{"name": "web", "action": "allow"}], "jwt": {"providers": [{"name": "okta"}]}}
    rc, result, dummy = run(service_intentions, args, FakeSession(agent_self("1.15.4")), capsys)
    assert rc == 1 and "jwt needs Consul 1.16.0 or later" in result["msg"]
    session = FakeSession(agent_self("1.22.7"), ("GET", "/v1/config/service-intentions/api",
                                                 Resp(404, text='Config entry not found for "service-intentions" / "api"')))
    rc, result, dummy = run(service_intentions, args, session, capsys, check_mode=True)
    assert rc == 0 and result["changed"] is True


def test_input_every_supported_consul_takes_costs_no_version_read(capsys):
    session = FakeSession(("GET", "/v1/config/service-intentions/api",
                           Resp(404, text='Config entry not found for "service-intentions" / "api"')))
    rc, result, dummy = run(service_intentions, {"name": "api", "sources": [{"name": "web", "action": "allow"}]},
                            session, capsys, check_mode=True)
    assert rc == 0 and session.methods() == ["GET"]


def test_version_tuple_reads_consul_versions():
    assert api.version_tuple("1.22.7") == (1, 22, 7) and api.version_tuple("1.21.5+ent") == (1, 21, 5)
    assert api.version_tuple("v1.14") == (1, 14, 0) and api.version_tuple("dev") is None
