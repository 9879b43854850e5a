# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The life of one module call, written once: argspec, input checks, client, logic, result.

A module declares its options, an optional validate(params) -> [problems] that runs before any
request, and logic(module, client) -> result. run_module() does the rest, and is the one place a
ConsulError becomes fail_json.
"""

from __future__ import annotations

import os

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
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
