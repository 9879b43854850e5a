# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""HTTP stubs for the peering unit tests: a scripted session, tokens and peering records.

The session replaces requests.Session inside the real ConsulClient: every request must match
the next scripted (method, path) and gets the scripted response or exception. Nothing here
talks to a network.
"""

from __future__ import annotations

import base64
import json
from contextlib import contextmanager
from unittest import mock
from urllib.parse import urlsplit

import pytest

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args
from ansible_collections.seed.consul_peering.plugins.module_utils import _module, consul_api

ACL_TOKEN = "0b1c7f7e-aaaa-bbbb-cccc-acl0secret00"
SECRET = "6d0824ce-1fa8-8e3f-d102-b105a6bf98ab"
PEER_ID = "7d649f7b-093e-d45b-5ff0-f1756d7b8258"
OTHER_PEER_ID = "12e2bef8-3c37-eaed-bb31-b3211265f785"
DIALER_ID = "2110645e-1469-65e6-ed87-7f4ac5830f9e"
SERVER_NAME = "server.dc1.peering.3d75933a-696f-8dcf-fe38-517dd916f657.consul"


def token_fields(**overrides):
    fields = {
        "CA": ["-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"],
        "ManualServerAddresses": None,
        "ServerAddresses": ["127.0.0.1:18106"],
        "ServerName": SERVER_NAME,
        "PeerID": PEER_ID,
        "EstablishmentSecret": SECRET,
        "Remote": {"Partition": "", "Datacenter": "dc1", "Locality": None},
    }
    fields.update(overrides)
    return fields


def make_token(**overrides):
    return base64.b64encode(json.dumps(token_fields(**overrides)).encode()).decode()


TOKEN = make_token()


def acceptor(name="cluster-02", state="ACTIVE", id=PEER_ID, meta=None):
    return {"ID": id, "Name": name, "State": state, "Meta": meta,
            "StreamStatus": {"ImportedServices": None, "ExportedServices": ["web"], "LastHeartbeat": None},
            "CreateIndex": 26, "ModifyIndex": 30, "Remote": {"Partition": "", "Datacenter": "dc2"}}


def dialer(name="cluster-01", state="ACTIVE", peer_id=PEER_ID, id=DIALER_ID, meta=None):
    return {"ID": id, "Name": name, "State": state, "PeerID": peer_id, "Meta": meta,
            "PeerCAPems": ["-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"],
            "PeerServerName": SERVER_NAME, "PeerServerAddresses": ["127.0.0.1:18106"],
            "StreamStatus": {"ImportedServices": ["api"], "ExportedServices": None,
                             "LastHeartbeat": "2026-11-23T12:16:24Z"},
            "CreateIndex": 18, "ModifyIndex": 20, "Remote": {"Partition": "", "Datacenter": "dc1"}}


class Resp:
    def __init__(self, status=200, body=None, text=None, headers=None):
        self.status_code = status
        self.headers = headers or {}
        self.text = text if text is not None else ("" if body is None else json.dumps(body))


def ok(body=None):
    return Resp(200, body)


# The agent's answer to GET /v1/status/leader, which the client asks after a read timeout.
LEADER = ("GET", "/v1/status/leader", ok("10.0.0.1:8300"))
NO_LEADER = ("GET", "/v1/status/leader", ok(""))


def not_found(name):
    return Resp(404, text='Peering not found for "%s"' % name)


class Call:
    def __init__(self, method, url, params, data):
        self.method = method
        self.path = urlsplit(url).path
        self.params = params or {}
        self.body = json.loads(data) if data else None

    def __repr__(self):
        return "%s %s" % (self.method, self.path)


class FakeSession:
    """A requests.Session look-alike that follows a script of (method, path, response-or-exception)."""

    def __init__(self, *script):
        self.script = list(script)
        self.calls = []
        self.unexpected = []
        self.headers = {}
        self.verify = True
        self.cert = None

    def request(self, method, url, params=None, data=None, timeout=None, allow_redirects=True):
        call = Call(method, url, params, data)
        self.calls.append(call)
        if allow_redirects:
            self.unexpected.append("request sent with redirects allowed: %r" % call)
        if not self.script:
            self.unexpected.append("unscripted request %r" % call)
            raise RuntimeError("unscripted request %r" % call)
        want_method, want_path, outcome = self.script.pop(0)
        if (want_method, want_path) != (method, call.path):
            self.unexpected.append("expected %s %s, got %r" % (want_method, want_path, call))
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def methods(self):
        return [c.method for c in self.calls]


def client(session, token=None, retries=3, url="http://consul.test:8500"):
    conn = consul_api.resolve_connection({"url": url, "token": token}, environ={})
    sleeps = []
    c = consul_api.ConsulClient(conn, session=session, sleep=sleeps.append, retries=retries)
    c.sleeps = sleeps
    return c


@contextmanager
def stubbed(session):
    """ConsulClient built by client_for() talks to session and never really sleeps."""
    real = consul_api.ConsulClient

    def factory(conn, **kw):
        kw.update(session=session, sleep=lambda seconds: None)
        return real(conn, **kw)

    with mock.patch.object(_module, "ConsulClient", factory):
        yield


def run(module, args, session, capsys, check_mode=False, diff=False):
    """Run module.main() with args against session; return (exit code, result dict, raw stdout).

    The result's "warnings" are the messages given to module.warn(): in a process that has
    loaded the controller's collection loader, ansible-core displays them instead of returning them.
    """
    args = dict(args)
    args.setdefault("url", "http://consul.test:8500")
    if check_mode:
        args["_ansible_check_mode"] = True
    if diff:
        args["_ansible_diff"] = True
    warnings = []
    with patch_module_args(args), stubbed(session), \
            mock.patch.object(basic.AnsibleModule, "warn", lambda self, msg, **kw: warnings.append(msg)):
        with pytest.raises(SystemExit) as exc:
            module.main()
    out = capsys.readouterr().out
    assert not session.unexpected, session.unexpected
    assert not session.script, "scripted requests not made: %r" % session.script
    result = json.loads(out)
    result["warnings"] = warnings
    return exc.value.code, result, out + "\n".join(warnings)
