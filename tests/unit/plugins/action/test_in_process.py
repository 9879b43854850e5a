# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The in-process path (plugin_utils/in_process.py, _module.in_process) against the module process path.

The same main(), the same scripted Consul answers: the result a user sees must be the same whichever path
ran, failures and masking included. And the action plugin must run a module process whenever the call
cannot be made in the controller (not local, become, async, environment, the switch, no requests).
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from unittest import mock

import pytest

from ansible.module_utils.common.parameters import PASS_VARS
from ansible.plugins.action import ActionBase
from ansible.plugins.action.normal import ActionModule as NormalAction
from ansible_collections.seed.consul_peering.plugins.action import peering_info as peering_info_action
from ansible_collections.seed.consul_peering.plugins.module_utils import _module, consul_api
from ansible_collections.seed.consul_peering.plugins.modules import (
    exported_services,
    peering_info,
    peering_token,
)
from ansible_collections.seed.consul_peering.plugins.plugin_utils import in_process

from ..peering_stubs import ACL_TOKEN, TOKEN, FakeSession, Resp, acceptor, not_found, ok, run, stubbed

NAME = "cluster-02"
PATH = "/v1/peering/" + NAME


def fqcn(module):
    return "seed.consul_peering." + module.__name__.rsplit(".", 1)[1]


# What a module process does by default with this ansible-core: 2.21 returns the invocation only when asked
# (INJECT_INVOCATION, passed as _ansible_inject_invocation), earlier releases always.
INJECTS = "inject_invocation" not in PASS_VARS


def run_in_process(module, args, session, check_mode=False, diff=False, inject_invocation=INJECTS):
    args = dict(args)
    args.setdefault("url", "http://consul.test:8500")
    with stubbed(session), _module.in_process(fqcn(module), args, check_mode, diff, inject_invocation):
        with pytest.raises(_module.ModuleExit) as done:
            module.main()
    assert not session.unexpected, session.unexpected
    assert not session.script, "scripted requests not made: %r" % session.script
    return done.value.result


def entry(kind, name, **fields):
    body = {"Kind": kind, "Name": name, "CreateIndex": 5, "ModifyIndex": 7}
    body.update(fields)
    return body


SCENARIOS = {
    "info: list": (peering_info, {}, lambda: [("GET", "/v1/peerings", ok([acceptor(NAME)]))], False, False),
    "info: absent": (peering_info, dict(peer_name=NAME), lambda: [("GET", PATH, not_found(NAME))], False, False),
    "info: token masked in invocation": (peering_info, dict(peer_name=NAME, token=ACL_TOKEN),
                                         lambda: [("GET", PATH, ok(acceptor(NAME)))], False, False),
    "info: unknown option": (peering_info, dict(peer_nmae=NAME), lambda: [], False, False),
    "info: mutually exclusive": (peering_info, dict(peer_name=NAME, peers=[dict(name="x")]), lambda: [], False, False),
    "info: wrong type": (peering_info, dict(wait_timeout="soon"), lambda: [], False, False),
    "info: Consul refuses, token in the answer masked": (
        peering_info, dict(peer_name=NAME, token=ACL_TOKEN),
        lambda: [("GET", PATH, Resp(403, text="Permission denied: token %s lacks peering:read" % ACL_TOKEN))],
        False, False),
    "token: generated, with meta": (
        peering_token, dict(peer_name=NAME, meta={"env": "prod"}),
        lambda: [("GET", PATH, not_found(NAME)), ("POST", "/v1/peering/token", ok({"PeeringToken": TOKEN})),
                 ("GET", PATH, ok(acceptor(NAME, state="PENDING")))], False, True),
    "token: check mode writes nothing": (peering_token, dict(peer_name=NAME),
                                         lambda: [("GET", PATH, not_found(NAME))], True, True),
    "token: live peering, meta differs, warned": (
        peering_token, dict(peer_name=NAME, meta={"env": "prod"}),
        lambda: [("GET", PATH, ok(acceptor(NAME, meta={"env": "dev"})))], False, False),
    "exports: created": (
        exported_services, dict(services=[dict(name="web", consumers=[dict(peer="cluster-02")])]),
        lambda: [("GET", "/v1/config/exported-services/default", Resp(404, text="Config entry not found for \"exported-services\" / \"default\"")),
                 ("PUT", "/v1/config", ok(True)),
                 ("GET", "/v1/config/exported-services/default", ok(entry(
                     "exported-services", "default",
                     Services=[{"Name": "web", "Consumers": [{"Peer": "cluster-02"}]}], Hash=1)))],
        False, True),
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_in_process_result_is_the_module_result(name, capsys):
    module, args, script, check_mode, diff = SCENARIOS[name]
    # The controller tells a module process the task's action as its name; the action plugin passes the same.
    rc, as_module, dummy = run(module, dict(args, _ansible_module_name=fqcn(module)), FakeSession(*script()), capsys,
                               check_mode=check_mode, diff=diff)
    here = run_in_process(module, args, FakeSession(*script()), check_mode=check_mode, diff=diff)
    # The module path's helper collects warn() apart (see peering_stubs.run); the in-process result carries them.
    warnings = as_module.pop("warnings")
    assert here.pop("warnings", []) == warnings
    assert here == as_module
    assert bool(here.get("failed")) == (rc != 0)
    assert ACL_TOKEN not in json.dumps(here)


def test_the_scenarios_cover_failures_warnings_and_masking(capsys):
    """The table above is only a proof if it holds each kind of outcome."""
    kinds = set()
    for module, args, script, check_mode, diff in SCENARIOS.values():
        result = run_in_process(module, args, FakeSession(*script()), check_mode=check_mode, diff=diff)
        kinds.add("failed" if result.get("failed") else "ok")
        kinds.add("changed" if result.get("changed") else "unchanged")
        if result.get("warnings"):
            kinds.add("warning")
        if "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in json.dumps(result) or "********" in json.dumps(result):
            kinds.add("masked")
        if "diff" in result:
            kinds.add("diff")
    assert kinds == {"failed", "ok", "changed", "unchanged", "warning", "masked", "diff"}


@pytest.mark.parametrize("inject", [True, False])
def test_the_invocation_is_returned_as_the_controller_asks(inject):
    result = run_in_process(peering_info, dict(token=ACL_TOKEN), FakeSession(("GET", "/v1/peerings", ok([]))),
                            inject_invocation=inject)
    assert ("invocation" in result) is inject
    if inject:
        assert result["invocation"]["module_args"]["token"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"


def test_module_exit_is_not_an_exception():
    """logic() may catch Exception; it must not swallow the in-process exit, as it cannot swallow SystemExit."""
    assert not issubclass(_module.ModuleExit, Exception)


def test_outside_the_block_run_module_builds_an_ansible_module():
    with _module.in_process("peering_info", {}, False, False):
        assert _module._IN_PROCESS is not None
    assert _module._IN_PROCESS is None


# The action plugin's choice of path.

def action(transport="local", async_val=0, become=False, environment=None):
    plugin = peering_info_action.ActionModule.__new__(peering_info_action.ActionModule)
    plugin._connection = SimpleNamespace(transport=transport)
    plugin._task = SimpleNamespace(async_val=async_val, environment=environment, args={}, check_mode=False, diff=False,
                                   action="seed.consul_peering.peering_info")
    plugin._play_context = SimpleNamespace(become=become, remote_addr="127.0.0.1")
    plugin._templar = SimpleNamespace(template=lambda value: value)
    return plugin


@pytest.mark.parametrize("kw, task_vars, reason", [
    (dict(), {}, None),
    (dict(environment=[{}]), {}, None),
    (dict(), {in_process.SWITCH: True}, None),
    (dict(transport="ssh"), {}, "the connection is ssh, not local"),
    (dict(transport="paramiko_ssh"), {}, "the connection is paramiko_ssh, not local"),
    (dict(async_val=30), {}, "async"),
    (dict(become=True), {}, "become"),
    (dict(environment=[{"CONSUL_HTTP_TOKEN": "x"}]), {}, "the task has an environment"),
    (dict(environment={"CONSUL_HTTP_ADDR": "x"}), {}, "the task has an environment"),
    (dict(), {in_process.SWITCH: False}, "seed_consul_peering_in_process is false"),
    (dict(), {in_process.SWITCH: "no"}, "seed_consul_peering_in_process is false"),
    (dict(), {in_process.SWITCH: "maybe"}, "seed_consul_peering_in_process is not a boolean"),
])
def test_the_path_is_chosen_from_the_connection_and_the_task(kw, task_vars, reason):
    assert action(**kw)._why_module(task_vars) == reason


def test_no_requests_in_the_controller_runs_the_module():
    with mock.patch.object(consul_api, "requests", None):
        assert action()._why_module({}) == "the controller's Python has no requests library"


def test_a_module_path_reason_runs_the_module_process():
    plugin = action(transport="ssh")
    with mock.patch.object(NormalAction, "run", return_value={"ran": "module"}) as normal:
        assert plugin.run(task_vars={}) == {"ran": "module"}
    assert normal.called


def in_process_run(plugin, session, args):
    plugin._task.args = args
    with stubbed(session), mock.patch.object(ActionBase, "run", return_value={}):
        return plugin.run(task_vars={})


def test_the_action_runs_main_in_process():
    plugin = action()
    session = FakeSession(("GET", PATH, ok(acceptor(NAME))))
    with mock.patch.object(NormalAction, "run", side_effect=AssertionError("a module process was started")):
        result = in_process_run(plugin, session, dict(url="http://consul.test:8500", peer_name=NAME, token=ACL_TOKEN))
    assert result["exists"] is True and result["changed"] is False
    assert ACL_TOKEN not in json.dumps(result)


def test_a_crash_in_process_is_a_failure_with_secrets_masked():
    plugin = action()
    crash = mock.patch.object(peering_info, "logic", side_effect=RuntimeError("a defect that quotes %s" % ACL_TOKEN))
    with crash:
        result = in_process_run(plugin, FakeSession(), dict(url="http://consul.test:8500", peer_name=NAME, token=ACL_TOKEN))
    assert result["failed"] is True
    assert result["msg"].startswith("MODULE FAILURE: ")
    assert ACL_TOKEN not in json.dumps(result)
    assert "RuntimeError" in result["exception"]
