# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""cluster_lock's least-privilege ACL rule (docs/acl.md), proven on its own ACL lab.

Ports: LOCK_ACL_PORT_BASE (default 17000; one single-server cluster at 17100-17179).
"""

from __future__ import annotations

import os

import pytest

from conftest import acl_lab_up, consul

PORT_BASE = os.environ.get("LOCK_ACL_PORT_BASE", "17000")
LOCK_RULES = 'key_prefix "seed/consul_peering/" { policy = "write" }\nsession_prefix "" { policy = "write" }\n'
NO_SESSION = 'key_prefix "seed/consul_peering/" { policy = "write" }\n'
NO_KEY = 'session_prefix "" { policy = "write" }\nkey_prefix "seed/consul_peering/" { policy = "read" }\n'


@pytest.fixture(scope="module")
def acl_lab(tmp_path_factory):
    with acl_lab_up(tmp_path_factory.mktemp("lock-acl-lab"), PORT_BASE, clusters=1) as values:
        yield values


def token_with(lab, name, rules):
    with open(lab["CLUSTER1_TOKEN_FILE"]) as f:
        mgmt = f.read().strip()
    url = lab["CLUSTER1_URL"]
    st, body = consul(url, "PUT", "/v1/acl/policy", {"Name": name, "Rules": rules}, token=mgmt)
    assert st == 200, body
    st, body = consul(url, "PUT", "/v1/acl/token", {"Policies": [{"Name": name}]}, token=mgmt)
    assert st == 200, body
    return body["SecretID"]


def lock(ansible, lab, token, args):
    run = ansible(["localhost", "-m", "seed.consul_peering.cluster_lock", "-a",
                   "url=%s wait_timeout=5 %s" % (lab["CLUSTER1_URL"], args)],
                  env={"CONSUL_HTTP_TOKEN": token}, json_output=True)
    return run, run.json()["plays"][0]["tasks"][0]["hosts"]["localhost"]


def test_lock_rule_is_enough(acl_lab, ansible):
    token = token_with(acl_lab, "lock", LOCK_RULES)
    run, res = lock(ansible, acl_lab, token, "holder=acl-test")
    assert run.rc == 0 and res["acquired"] is True, run.output[-2000:]
    run, res = lock(ansible, acl_lab, token, "session=%s" % res["session"])
    assert run.rc == 0 and res["acquired"] is True, run.output[-2000:]
    run, res = lock(ansible, acl_lab, token, "state=absent session=%s" % res["session"])
    assert run.rc == 0 and res["changed"] is True, run.output[-2000:]
    assert token not in run.output


@pytest.mark.parametrize("rules, missing", [(NO_SESSION, "session:write"), (NO_KEY, "key:write")])
def test_lock_without_a_rule_names_it(acl_lab, ansible, rules, missing):
    token = token_with(acl_lab, "lock-" + missing.split(":")[0], rules)
    run, res = lock(ansible, acl_lab, token, "holder=acl-test")
    assert run.rc != 0
    assert missing in res["msg"], res["msg"]
    assert "Traceback" not in run.output and token not in run.output
