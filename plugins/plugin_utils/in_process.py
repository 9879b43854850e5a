# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Run a Consul module's code inside the controller's worker when the task's host is local.

Every module of the collection only speaks HTTP to Consul, so with ``ansible_connection: local`` starting
a module process buys nothing but its cost: the AnsiballZ payload, a new Python and its imports, about
0.3-0.45 s of CPU per host and task on the bench machine, which a stage over N hosts pays N times.
This action plugin runs the same main() in the worker that Ansible has already forked for the task
(plugins/module_utils/_module.py, in_process()): the same argument validation, logic, result and no_log
masking, without the new process.

Anything else runs the module as usual: another connection (the module then runs on that host, which
may be the only one that can reach Consul), become, async, a task or play ``environment`` (the module's
fallbacks read the environment the module process would have had), no ``requests`` in the controller's
Python, or ``seed_consul_peering_in_process: false``. docs/decisions.md, issue 20, has the measurements.
"""

from __future__ import annotations

import importlib
import json
import traceback

from ansible import constants as C
from ansible.module_utils.common.parameters import remove_values
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible.plugins.action.normal import ActionModule as NormalAction
from ansible.utils.display import Display

try:  # ansible-core >= 2.19: the encoder the module's arguments would travel with
    from ansible.module_utils.common.json import Direction, get_module_encoder

    def _to_module_args(args):
        return json.loads(json.dumps(args, cls=get_module_encoder("legacy", Direction.CONTROLLER_TO_MODULE)))
except ImportError:  # ansible-core 2.16 - 2.18
    from ansible.parsing.ajson import AnsibleJSONEncoder

    def _to_module_args(args):
        return json.loads(json.dumps(args, cls=AnsibleJSONEncoder, vault_to_text=True))

display = Display()

COLLECTION = "ansible_collections.seed.consul_peering.plugins"
SWITCH = "seed_consul_peering_in_process"


class InProcessAction(NormalAction):
    """The module of the same name, run in process for a local connection, as a module otherwise."""

    MODULE = None  # the module's short name, set by each action plugin

    def _why_module(self, task_vars):
        """Why this call must run as a module process, or None when it can run here."""
        transport = getattr(self._connection, "transport", None)
        if transport != "local":
            return "the connection is %s, not local" % transport
        if self._task.async_val:
            return "async"
        if self._play_context.become:
            return "become"
        environment = self._task.environment
        if isinstance(environment, dict):
            environment = [environment]
        if any(environment or []):
            return "the task has an environment"
        switch = task_vars.get(SWITCH, True)
        try:
            if not boolean(self._templar.template(switch), strict=True):
                return "%s is false" % SWITCH
        except TypeError:
            return "%s is not a boolean" % SWITCH
        api = importlib.import_module(COLLECTION + ".module_utils.consul_api")
        if api.requests is None:
            return "the controller's Python has no requests library"
        return None

    @staticmethod
    def _inject_invocation(task_vars):
        """Whether a module would return its invocation: INJECT_INVOCATION from 2.21 on, always before."""
        if "INJECT_INVOCATION" not in C.config.get_configuration_definitions():
            return True
        return bool(C.config.get_config_value("INJECT_INVOCATION", variables=task_vars))

    def run(self, tmp=None, task_vars=None):
        why = self._why_module(task_vars or {})
        name = "seed.consul_peering.%s" % self.MODULE
        if why:
            display.vvv("%s runs as a module: %s" % (name, why), host=self._play_context.remote_addr)
            return super(InProcessAction, self).run(tmp, task_vars)
        display.vvv("%s runs in the controller's worker (local connection)" % name, host=self._play_context.remote_addr)
        result = ActionBase.run(self, tmp, task_vars)
        del tmp
        glue = importlib.import_module(COLLECTION + ".module_utils._module")
        module = importlib.import_module(COLLECTION + ".modules." + self.MODULE)
        args = _to_module_args(dict(self._task.args))
        # The name a module process is given (_ansible_module_name): the action as the task wrote it.
        with glue.in_process(self._task.action, args, self._task.check_mode, self._task.diff,
                             inject_invocation=self._inject_invocation(task_vars or {})) as call:
            try:
                module.main()
                out = dict(failed=True, msg="%s returned no result" % name)
            except glue.ModuleExit as done:
                out = done.result
            except Exception as e:  # pylint: disable=broad-exception-caught
                # A defect, reported as a module process's crash would be, with every no_log value masked. Before
                # the arguments are validated those values are unknown: then only the kind of error is told.
                built = call["module"]
                if built is None:
                    out = dict(failed=True, msg="MODULE FAILURE: %s before the arguments were validated" % type(e).__name__)
                else:
                    out = remove_values(dict(failed=True, msg="MODULE FAILURE: %s: %s" % (type(e).__name__, e),
                                             exception=traceback.format_exc()), built.no_log_values)
        result.update(out)
        return result
