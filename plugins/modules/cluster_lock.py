#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: cluster_lock
version_added: 0.1.0
short_description: Hold a run-wide lock in a Consul cluster's KV store (a session lock)
description:
  - Serializes runs that change the same Consul cluster, such as two overlapping
    C(peer_clusters) jobs in AWX. The lock is a Consul session holding the KV key O(key)
    (C(PUT /v1/kv/<key>?acquire=<session>)), so the cluster itself holds it; no shared
    file system or controller is needed.
  - O(state=present) creates a session (TTL O(ttl), C(Behavior=delete), no node checks, no
    lock delay) and acquires O(key) with it, waiting up to O(wait_timeout) seconds while another
    session holds it. On timeout the task fails naming the holder's session, node and
    description. With O(session) (a lock already taken), it renews that session and checks that it
    still holds O(key).
  - O(state=absent) releases the lock of O(session) by destroying the session (Consul deletes the
    key it held). O(force=true) breaks the lock whatever session holds it.
  - A run that crashes without releasing leaves a lock that Consul removes once the session's TTL
    passes without a renewal (Consul waits up to twice the TTL). Renew (O(state=present) with
    O(session)) between long stages of a run longer than O(ttl).
  - Requires the ACL permissions C(key:write) on O(key) (for example C(key_prefix "seed/consul_peering/")
    with C(policy = "write")) and C(session:write) on the node of the agent behind O(url) (for example
    C(session_prefix "") with C(policy = "write")).
author:
  - seed.consul_peering contributors (!UNKNOWN)
extends_documentation_fragment:
  - seed.consul_peering.consul
  - seed.consul_peering.consul.attributes
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    details: Reads the key and reports whether the lock is free or who holds it; creates no session.
  diff_mode:
    support: none
options:
  state:
    description:
      - V(present) acquires (or, with O(session), renews) the lock; V(absent) releases it.
    type: str
    choices: [present, absent]
    default: present
  key:
    description:
      - The KV key that is the lock. Runs that must not overlap use the same key on the same cluster.
    type: str
    default: seed/consul_peering/lock
  session:
    description:
      - The session ID returned by an earlier O(state=present) (RV(session)).
      - With O(state=present), renew that session instead of taking a new lock.
      - With O(state=absent), the session whose lock is released; required unless O(force=true).
    type: str
  holder:
    description:
      - A description of this run written in the key's value and named in other runs' timeout
        messages, for example the AWX job ID.
      - Defaults to C(ansible on <controller host name>, pid <pid>).
    type: str
  ttl:
    description:
      - The session's TTL in seconds (10 to 86400). A crashed run's lock is gone at most twice this long
        after its last renewal.
    type: int
    default: 600
  wait_timeout:
    description:
      - Seconds to wait for another holder to release the lock before failing.
    type: int
    default: 600
  force:
    description:
      - With O(state=absent), break the lock whatever session holds it (an operator's escape hatch).
    type: bool
    default: false
seealso:
  - module: seed.consul_peering.peering_token
notes:
  - The session is created on the server that answers O(url) but is not bound to that node's health,
    so a leader failover in a cluster of several servers does not release the lock.
"""

EXAMPLES = r"""
- name: Take the cluster's peering lock (waits while another run holds it)
  seed.consul_peering.cluster_lock:
    url: http://consul-01.example.com:8500
    holder: "AWX job {{ awx_job_id | default('manual') }}"
    wait_timeout: 900
  register: peering_lock

- name: Change the cluster, then always release the lock
  block:
    - name: Peer the clusters
      ansible.builtin.include_role:
        name: seed.consul_peering.cluster_peering
  always:
    - name: Release the lock
      seed.consul_peering.cluster_lock:
        url: http://consul-01.example.com:8500
        state: absent
        session: "{{ peering_lock.session }}"
      when: peering_lock.session is defined and peering_lock.session

# Ad hoc, to break a lock left by a run that was killed:
#   ansible localhost -m seed.consul_peering.cluster_lock -a 'state=absent force=true'
"""

RETURN = r"""
acquired:
  description: Whether this task holds the lock at its end (false after release and in check mode).
  returned: always
  type: bool
session:
  description: The session holding the lock; give it to the release task.
  returned: always
  type: str
  sample: a6ad00ae-8fd5-3b04-0689-eb0c55e4a648
key:
  description: The lock's KV key.
  returned: always
  type: str
holder:
  description: The description written in the key.
  returned: with O(state=present)
  type: str
waited:
  description: Seconds spent waiting for another holder.
  returned: always
  type: float
held_by:
  description: Who holds the lock (check mode, when it is taken).
  returned: in check mode when the lock is held
  type: str
released:
  description: The holder whose lock O(force=true) broke.
  returned: with O(force=true) when the lock was held
  type: str
"""

import os
import socket

from ansible_collections.seed.consul_peering.plugins.module_utils._module import run_module
from ansible_collections.seed.consul_peering.plugins.module_utils._lock import (
    DEFAULT_KEY,
    acquire,
    key_problem,
    release,
    renew,
    ttl_problem,
)
from ansible_collections.seed.consul_peering.plugins.module_utils.consul_api import path_segment_problem

ARGUMENT_SPEC = dict(
    state=dict(type="str", choices=["present", "absent"], default="present"),
    key=dict(type="str", default=DEFAULT_KEY, no_log=False),
    session=dict(type="str"),
    holder=dict(type="str"),
    ttl=dict(type="int", default=600),
    wait_timeout=dict(type="int", default=600),
    force=dict(type="bool", default=False),
)


def validate(p):
    problems = [key_problem(p["key"]), ttl_problem(p["ttl"])]
    if p["wait_timeout"] is None or p["wait_timeout"] < 0:
        problems.append("wait_timeout must be 0 or more seconds, got %s" % p["wait_timeout"])
    if p["session"] is not None:
        problems.append(path_segment_problem(p["session"], "session"))
    if p["state"] == "absent" and not p["session"] and not p["force"]:
        problems.append("state=absent needs session (the session returned by state=present), or force=true to "
                        "break the lock whatever holds it")
    if p["force"] and p["state"] != "absent":
        problems.append("force is only for state=absent")
    return problems


def logic(module, client):
    p = module.params
    if p["state"] == "absent":
        return release(client, p["key"], p["session"], p["force"], module.check_mode)
    if p["session"]:
        return renew(client, p["key"], p["session"], module.check_mode)
    holder = p["holder"] or "ansible on %s, pid %d" % (socket.gethostname(), os.getpid())
    return acquire(client, p["key"], holder, p["ttl"], p["wait_timeout"], module.check_mode)


def main():
    run_module(ARGUMENT_SPEC, logic, validate)


if __name__ == "__main__":
    main()
