# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The life of one module call, written once: argspec, input checks, client, logic, result.

A module declares its options, an optional validate(params) -> [problems] that runs before any
request, and logic(module, client) -> result. run_module() does the rest, and is the one place a
ConsulError becomes fail_json.

The same call can run inside the controller's worker (the collection's action plugins do that for
ansible_connection=local, see plugins/plugin_utils/in_process.py): in_process() then stands for the
AnsibleModule the module would have built, with the same argument-spec validation and the same no_log
masking of the result, and exit_json/fail_json raise ModuleExit instead of printing and exiting.
"""

from __future__ import annotations

import contextlib
import os

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.parameters import remove_values
from ansible.module_utils.errors import UnsupportedError
from ansible_collections.seed.consul_peering.plugins.module_utils.consul_api import (
    CONNECTION_ARGSPEC,
    REQUESTS_IMPORT_ERROR,
    ConsulClient,
    ConsulError,
    requests,
    resolve_connection,
    secret_forms,
    url_userinfo,
)


# Set by in_process() for the length of one call inside the controller; None in a real module process.
_IN_PROCESS = None


class ModuleExit(BaseException):
    """exit_json/fail_json of a call made in process: carries the result it would have printed.

    A BaseException, as the SystemExit of a real module is: an ``except Exception`` in logic() does not
    swallow it.
    """

    def __init__(self, result):
        super(ModuleExit, self).__init__("module exit")
        self.result = result


class InProcessModule(object):
    """What logic(), validate() and run_module() use of AnsibleModule, for a call in the controller.

    It validates the arguments as AnsibleModule does (ArgumentSpecValidator: types, defaults, choices,
    fallbacks to the environment, no_log values, mutually_exclusive...), and formats the result as its
    exit_json/fail_json do: invocation, warnings, and every no_log value masked.
    """

    def __init__(self, name, args, check_mode, diff, argument_spec, supports_check_mode=True, inject_invocation=True,
                 **constraints):
        self._name = name
        self._inject_invocation = inject_invocation
        self.check_mode = bool(check_mode)
        self._diff = bool(diff)
        self._warnings = []
        self.no_log_values = set()
        self.params = dict(args)
        validator = ArgumentSpecValidator(argument_spec, **constraints)
        result = validator.validate(self.params)
        self.params.update(result.validated_parameters)
        self.no_log_values.update(result._no_log_values)
        for w in result._warnings:
            self.warn("Both option {option} and its alias {alias} are set.".format(**w))
        if result.error_messages:
            msg = result.errors.msg
            if isinstance(result.errors.errors[0], UnsupportedError):
                msg = "Unsupported parameters for (%s) module: %s" % (name, msg)
            self.fail_json(msg=msg)
        if self.check_mode and not supports_check_mode:
            self.exit_json(skipped=True, msg="remote module (%s) does not support check mode" % name)

    def warn(self, warning):
        self._warnings.append(warning)

    def _formatted(self, result):
        # ansible-core 2.21 returns the invocation only when INJECT_INVOCATION is on; earlier releases always.
        if self._inject_invocation:
            result.setdefault("invocation", {"module_args": self.params})
        else:
            result.pop("invocation", None)
        if self._warnings:
            result["warnings"] = list(self._warnings)
        return remove_values(result, self.no_log_values)

    def exit_json(self, **result):
        raise ModuleExit(self._formatted(result))

    def fail_json(self, msg, **result):
        result["failed"] = True
        result["msg"] = msg
        raise ModuleExit(self._formatted(result))


@contextlib.contextmanager
def in_process(name, args, check_mode, diff, inject_invocation=True):
    """Within this block, run_module() builds an InProcessModule from these instead of an AnsibleModule.

    Yields a dict whose "module" is the InProcessModule once built (None if the call failed before), so
    that the caller can mask a crash's message with the module's no_log values.
    """
    global _IN_PROCESS  # pylint: disable=global-statement
    call = dict(name=name, args=args, check_mode=check_mode, diff=diff, inject_invocation=inject_invocation,
                module=None)
    _IN_PROCESS = call
    try:
        yield call
    finally:
        _IN_PROCESS = None


def client_for(module):
    conn = resolve_connection(module.params, warn=module.warn)
    client = ConsulClient(conn, warn=module.warn)
    if conn.get("partition") and conn["partition"] != "default":
        client.require_enterprise_for("partition %r" % conn["partition"])
    return client


def run_module(argument_spec, logic, validate=None, **kwargs):
    """Build the module (connection options merged in), check its input, run logic(module, client), exit.

    validate(params) returns a list of problems (empty or None when fine); they fail the task
    before any request. kwargs go to AnsibleModule (required_if, mutually_exclusive...).
    """
    spec = dict(CONNECTION_ARGSPEC)
    spec.update(argument_spec)
    kwargs.setdefault("supports_check_mode", True)
    if _IN_PROCESS is not None:
        call = _IN_PROCESS
        module = InProcessModule(call["name"], call["args"], call["check_mode"], call["diff"], spec,
                                 inject_invocation=call["inject_invocation"], **kwargs)
        call["module"] = module
    else:
        module = AnsibleModule(argument_spec=spec, **kwargs)
    if requests is None:
        module.fail_json(msg=missing_required_lib("requests"), exception=REQUESTS_IMPORT_ERROR)
    # Credentials in the url are refused, and must not show in the invocation's module_args either.
    userinfo = url_userinfo(module.params.get("url"))
    if userinfo:
        module.no_log_values.update(secret_forms(userinfo) | set(userinfo.split(":")) - {""})
    if "namespace" in argument_spec and not module.params.get("namespace"):
        # As Consul's CLI: CONSUL_NAMESPACE is the namespace when the task names none (Enterprise).
        module.params["namespace"] = os.environ.get("CONSUL_NAMESPACE", "").strip() or None
    problems = [p for p in (validate(module.params) if validate else None) or [] if p]
    if problems:
        module.fail_json(msg="; ".join(problems))
    client = None
    try:
        client = client_for(module)
        result = logic(module, client)
    except ConsulError as e:
        scrub = client.scrub if client else (lambda s: s)
        fail = dict(msg=scrub(e.msg))
        if e.status is not None:
            fail["status"] = e.status
        module.fail_json(**fail)
    module.exit_json(**result)
