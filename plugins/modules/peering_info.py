#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: peering_info
version_added: 0.1.0
short_description: Read Consul cluster peerings
description:
  - Reads one cluster peering by name, or lists all peerings of the cluster, with their state,
    the IDs on both sides, the peer's addresses and the stream status (imported and exported
    services, last heartbeat).
  - A peering that does not exist is not an error; RV(exists) is V(false).
  - With O(wait_for=active), waits until the peering is V(ACTIVE), and fails naming the likely
    cause when it is not within O(wait_timeout) seconds.
  - With O(expect_services), checks that the services the peer exports to this cluster are
    really visible here (C(GET /v1/health/service/<name>?peer=<peer_name>)), waiting up to
    O(wait_timeout) seconds, and fails listing the ones that are missing.
  - With O(peers), one call reads, waits for and checks several peerings (one deadline for all), so that
    a cluster with many peers pays one module start-up instead of one per peer.
  - Never changes anything. Requires the ACL permission C(peering:read), and C(service:read) and
    C(node:read) for O(expect_services).
author:
  - seed.consul_peering contributors (!UNKNOWN)
extends_documentation_fragment:
  - seed.consul_peering.consul
  - seed.consul_peering.consul.attributes
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    details: Read-only; runs the same in check mode.
  diff_mode:
    support: none
options:
  peer_name:
    description:
      - The name of the peering on this cluster. Without it, all peerings are listed.
      - A DNS label (lowercase letters, digits and C(-), at most 63 characters, starting and ending
        with a letter or digit), checked before any request is sent.
      - Mutually exclusive with O(peers).
    type: str
  peers:
    description:
      - Several peerings of this cluster, read in one request (C(GET /v1/peerings)) and, with
        O(wait_for), waited for together; each one's O(peers[].expect_services) is then checked as
        O(expect_services) is for O(peer_name).
      - Every name is checked before any request is sent.
      - Mutually exclusive with O(peer_name) and O(expect_services).
    type: list
    elements: dict
    version_added: 0.1.0
    suboptions:
      peer_name:
        description: The name of the peering on this cluster.
        type: str
        required: true
      expect_services:
        description: As O(expect_services), for this peer.
        type: list
        elements: str
  wait_for:
    description:
      - V(active) waits until the peering O(peer_name) (or every peering of O(peers)) is V(ACTIVE),
        also while it does not exist yet.
      - Requires O(peer_name) or O(peers).
    type: str
    choices: [active]
  expect_services:
    description:
      - Services the peer O(peer_name) exports to this cluster. Each must appear in this cluster's
        health API for that peer (C(/v1/health/service/<name>?peer=<peer_name>)) within
        O(wait_timeout) seconds; the module fails naming every one that does not.
      - Requires O(peer_name).
    type: list
    elements: str
  wait_timeout:
    description:
      - Seconds to wait with O(wait_for) and O(expect_services); with O(peers), for all of them together.
    type: int
    default: 60
  cluster_identity:
    description:
      - Also return RV(trust_domain), what this cluster says about itself (the trust domain of its
        Connect CA, C(GET /v1/connect/ca/roots)), so that two addresses of one cluster can be told
        apart from two clusters. One more read; no ACL permission is needed for it.
    type: bool
    default: false
    version_added: 0.1.0
seealso:
  - module: seed.consul_peering.peering_token
  - module: seed.consul_peering.peering_establish
"""

EXAMPLES = r"""
- name: Read one peering
  seed.consul_peering.peering_info:
    peer_name: cluster-02
  register: info

- name: Show its state and imported services
  ansible.builtin.debug:
    msg: "{{ info.peering.state }}: {{ info.peering.imported_services }}"
  when: info.exists

- name: Wait until both sides are active
  seed.consul_peering.peering_info:
    url: "{{ item.url }}"
    peer_name: "{{ item.peer }}"
    wait_for: active
    wait_timeout: 120
  loop:
    - {url: "http://consul-01.example.com:8500", peer: cluster-02}
    - {url: "http://consul-02.example.com:8500", peer: cluster-01}

- name: Check the dialing cluster sees what the acceptor exports to it
  seed.consul_peering.peering_info:
    url: http://consul-02.example.com:8500
    peer_name: cluster-01
    expect_services: [backend, payments]
    wait_timeout: 60

- name: Wait for three new peerings and check what each peer exports here, in one call
  seed.consul_peering.peering_info:
    wait_for: active
    peers:
      - peer_name: cluster-02
        expect_services: [backend]
      - peer_name: cluster-03
        expect_services: [backend, payments]
      - peer_name: cluster-04
    wait_timeout: 120

- name: List every peering of the cluster
  seed.consul_peering.peering_info:
  register: all_peerings

# Ad hoc, with the address from the environment:
#   CONSUL_HTTP_ADDR=consul-01.example.com:8500 ansible localhost -m seed.consul_peering.peering_info
"""

RETURN = r"""
exists:
  description: Whether the peering O(peer_name) exists.
  returned: when O(peer_name) is given
  type: bool
  sample: true
peering:
  description: The peering O(peer_name); empty when it does not exist.
  returned: when O(peer_name) is given
  type: dict
  sample:
    name: cluster-02
    id: 7d649f7b-093e-d45b-5ff0-f1756d7b8258
    state: ACTIVE
    role: acceptor
    peer_id: null
    meta: {}
    remote_datacenter: dc2
    imported_services: []
    exported_services: [web]
    last_heartbeat: "2026-11-23T12:16:24.014895295Z"
  contains:
    name:
      description: The peer name.
      type: str
    id:
      description: The peering's ID on this cluster.
      type: str
    peer_id:
      description: The peering's ID on the accepting cluster (dialer side only).
      type: str
    state:
      description: V(PENDING), V(ESTABLISHING), V(ACTIVE), V(FAILING), V(DELETING) or V(TERMINATED).
      type: str
    role:
      description: V(acceptor) (made by generating a token) or V(dialer) (made by establishing).
      type: str
    meta:
      description: The peering's metadata.
      type: dict
    peer_server_name:
      description: The accepting cluster's TLS server name (dialer side only).
      type: str
    peer_server_addresses:
      description: The accepting cluster's server addresses (dialer side only).
      type: list
      elements: str
    partition:
      description: The local admin partition (Consul Enterprise).
      type: str
    remote_datacenter:
      description: The peer's datacenter.
      type: str
    remote_partition:
      description: The peer's partition.
      type: str
    imported_services:
      description: Services this cluster imports from the peer.
      type: list
      elements: str
    exported_services:
      description: Services this cluster exports to the peer.
      type: list
      elements: str
    last_heartbeat:
      description: When the peer's last heartbeat arrived.
      type: str
    last_receive:
      description: When the last message arrived from the peer.
      type: str
    last_send:
      description: When the last message was sent to the peer.
      type: str
    create_index:
      description: Raft index of the peering's creation.
      type: int
    modify_index:
      description: Raft index of its last change.
      type: int
peerings:
  description:
    - Every peering of the cluster (in the partition), each as in RV(peering).
    - With O(peers), the listed peerings in the order given; V({}) for one that does not exist.
  returned: when O(peer_name) is not given
  type: list
  elements: dict
waited:
  description: Seconds spent waiting with O(wait_for) and O(expect_services) (with O(peers), in all).
  returned: when O(wait_for) or O(expect_services) is given, and always with O(peers)
  type: float
trust_domain:
  description:
    - The trust domain of this cluster's Connect CA (unique per cluster), or V(null) when Connect is
      disabled or Consul refuses the read.
  returned: when O(cluster_identity=true)
  type: str
  sample: 5f4c1a2e-3b6d-4e0a-9c1b-2f1e0d9c8b7a.consul
visible_services:
  description:
    - The services of O(expect_services) that are visible from the peer, sorted (a list).
    - With O(peers), a dict of those lists keyed by peer name, for the peers with O(peers[].expect_services).
  returned: when O(expect_services) is given, and always with O(peers)
  type: raw
  sample: [backend, payments]
"""

from ansible_collections.seed.consul_peering.plugins.module_utils._module import run_module
from ansible_collections.seed.consul_peering.plugins.module_utils.consul_api import ConsulError, path_segment_problem
from ansible_collections.seed.consul_peering.plugins.module_utils._peering import (
    batch_problems,
    check_peers,
    not_active_message,
    peer_name_problem,
    peering_summary,
    wait_for_imports,
    wait_for_peering,
    wait_timeout_problem,
)

ARGUMENT_SPEC = dict(
    peer_name=dict(type="str"),
    peers=dict(type="list", elements="dict", options=dict(
        peer_name=dict(type="str", required=True),
        expect_services=dict(type="list", elements="str"),
    )),
    wait_for=dict(type="str", choices=["active"]),
    expect_services=dict(type="list", elements="str"),
    wait_timeout=dict(type="int", default=60),
    cluster_identity=dict(type="bool", default=False),
)


def validate(p):
    problems = [wait_timeout_problem(p["wait_timeout"])]
    if p["peer_name"] is not None:
        problems.append(peer_name_problem(p["peer_name"]))
    for i, svc in enumerate(p["expect_services"] or []):
        problems.append(path_segment_problem(svc, "expect_services[%d]" % i))
    problems += batch_problems(p["peers"])
    for i, peer in enumerate(p["peers"] or []):
        for j, svc in enumerate(peer["expect_services"] or []):
            problems.append(path_segment_problem(svc, "peers[%d].expect_services[%d]" % (i, j)))
    return problems


def logic(module, client):
    p = module.params
    name = p["peer_name"]
    result = dict(changed=False)
    if p["cluster_identity"]:
        result["trust_domain"] = client.trust_domain()
    if p["peers"] is not None:
        result.update(check_peers(client, p["peers"], p["wait_for"], p["wait_timeout"]))
        return result
    if not name:
        result["peerings"] = [peering_summary(x) for x in client.list_peerings()]
        return result
    if p["wait_for"] == "active":
        peering, reached, waited = wait_for_peering(
            client, name, lambda x: bool(x) and x.get("State") == "ACTIVE", p["wait_timeout"])
        if not reached:
            raise ConsulError(not_active_message(name, peering, waited))
        result["waited"] = round(waited, 1)
    else:
        peering = client.get_peering(name)
    result.update(exists=bool(peering), peering=peering_summary(peering))
    if p["expect_services"]:
        visible, waited = wait_for_imports(client, name, p["expect_services"], p["wait_timeout"])
        result.update(visible_services=visible, waited=round(result.get("waited", 0) + waited, 1))
    return result


def main():
    run_module(ARGUMENT_SPEC, logic, validate,
               required_by=dict(expect_services=["peer_name"]),
               mutually_exclusive=[("peer_name", "peers"), ("expect_services", "peers")],
               required_if=[("wait_for", "active", ("peer_name", "peers"), True)])


if __name__ == "__main__":
    main()
