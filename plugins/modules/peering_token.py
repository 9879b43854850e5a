#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: peering_token
version_added: 0.1.0
short_description: Generate a cluster peering token on the accepting Consul cluster
description:
  - Generates a peering token on the accepting side of a Consul cluster peering
    (C(POST /v1/peering/token)), for the dialing cluster to establish the peering with
    (M(seed.consul_peering.peering_establish)).
  - Idempotent the way an operator expects. A peering of that name that is V(ACTIVE) or
    V(ESTABLISHING) is left alone and no token is generated (regenerating never breaks an active
    peering, but it would invalidate a token handed out and not yet used), unless O(regenerate=true).
  - A V(PENDING) peering (a token was generated but never used) gets a new token and reports
    C(changed), because Consul cannot give back the earlier token and the caller asked for one.
    Generating invalidates the earlier, unused token.
  - A V(FAILING) peering gets a new token, so that the dialer can establish it again.
  - A V(TERMINATED) peering (the dialing side deleted it) cannot be dialed again. It is deleted,
    the module waits until it is gone, and a new peering is made.
  - A peering that is still V(DELETING) is waited for (at most O(wait_timeout) seconds) before a
    new one is made.
  - The returned RV(peering_token) is a secret. The module never prints it in a message, but it is
    part of the result. Set C(no_log) on the task, and hand the token over in memory.
  - O(state=absent) deletes the peering, whichever side it is, and waits until Consul has removed it.
  - Requires the ACL permission C(peering:write) (C(peering:read) when nothing changes).
  - With O(peers), one call does the same for several dialing clusters, one after the other, so that an
    accepting cluster with many peers pays one module start-up instead of one per peer. The tokens
    come back in RV(peering_tokens), keyed by peer name.
author:
  - seed.consul_peering contributors (!UNKNOWN)
extends_documentation_fragment:
  - seed.consul_peering.consul
  - seed.consul_peering.consul.attributes
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    details: Never generates a token; reports C(changed) when it would.
  diff_mode:
    support: full
    details: Shows the peering's name, side, state, peer ID and meta before and after.
options:
  peer_name:
    description:
      - The name this cluster gives the peering, that is, the name by which it knows the dialing
        cluster.
      - A DNS label (lowercase letters, digits and C(-), at most 63 characters, starting and ending
        with a letter or digit), checked before any request is sent.
      - Exactly one of O(peer_name) and O(peers) is required.
    type: str
  peers:
    description:
      - Several peerings of this cluster in one call, each as if it were given in O(peer_name), with
        the same O(state), O(regenerate) and O(wait_timeout).
      - Every name is checked before any request is sent. A failure stops at that peer and names it;
        the peers before it are done.
      - Exactly one of O(peer_name) and O(peers) is required.
    type: list
    elements: dict
    version_added: 0.1.0
    suboptions:
      peer_name:
        description: The name this cluster gives the peering, as O(peer_name).
        type: str
        required: true
      meta:
        description: As O(meta), for this peer; O(meta) when not set.
        type: dict
      server_external_addresses:
        description: As O(server_external_addresses), for this peer; O(server_external_addresses) when not set.
        type: list
        elements: str
  meta:
    description:
      - Key/value metadata (C(Meta)) stored with the peering.
      - Consul stores it when it creates the peering and ignores it on later token generations;
        the module warns when it differs from an existing peering's.
    type: dict
  server_external_addresses:
    description:
      - Addresses (V(host:port) of the servers' gRPC TLS port, or of a load balancer in front of
        them) that the dialing cluster should use instead of the servers' own addresses, for
        servers behind NAT (C(ServerExternalAddresses)).
    type: list
    elements: str
  state:
    description:
      - V(present) makes sure there is a peering for O(peer_name) waiting for, or having, a dialer.
      - V(absent) deletes the peering and waits until it is gone.
    type: str
    choices: [present, absent]
    default: present
  regenerate:
    description:
      - Generate a new token even when the peering is V(ACTIVE) or V(ESTABLISHING).
      - The peering keeps its ID and stays active; earlier unused tokens stop working.
    type: bool
    default: false
  wait_timeout:
    description:
      - Seconds to wait for a peering to be deleted (O(state=absent), or before a V(DELETING) or
        V(TERMINATED) peering can be made anew).
    type: int
    default: 60
notes:
  - The token carries the accepting cluster's server addresses, CA certificates and a single-use
    establishment secret. Treat it like a password until it has been used.
seealso:
  - module: seed.consul_peering.peering_establish
  - module: seed.consul_peering.peering_info
  - name: Consul cluster peering HTTP API
    description: The endpoints this module uses.
    link: https://developer.hashicorp.com/consul/api-docs/peering
"""

EXAMPLES = r"""
- name: Generate a token on the accepting cluster for the peer it will know as cluster-02
  seed.consul_peering.peering_token:
    url: https://consul-01.example.com:8501
    peer_name: cluster-02
    meta:
      env: production
  register: peering
  no_log: true

- name: Hand the token to the dialing cluster (in memory, never on disk)
  seed.consul_peering.peering_establish:
    url: https://consul-02.example.com:8501
    peer_name: cluster-01
    peering_token: "{{ peering.peering_token }}"
  when: peering.peering_token is defined

- name: Rotate the token of an active peering (the peering stays up)
  seed.consul_peering.peering_token:
    peer_name: cluster-02
    regenerate: true
  register: rotated
  no_log: true

- name: Delete the peering on the accepting side
  seed.consul_peering.peering_token:
    peer_name: cluster-02
    state: absent

- name: Tokens for three dialing clusters in one call
  seed.consul_peering.peering_token:
    peers:
      - peer_name: cluster-02
      - peer_name: cluster-03
      - peer_name: cluster-04
        meta: {site: paris}
  register: tokens
  no_log: true

- name: Establish on cluster-03 with its token
  seed.consul_peering.peering_establish:
    url: https://consul-03.example.com:8501
    peer_name: cluster-01
    peering_token: "{{ tokens.peering_tokens['cluster-03'] }}"
  when: "'cluster-03' in tokens.peering_tokens"
"""

RETURN = r"""
peering_token:
  description:
    - The peering token, to pass to M(seed.consul_peering.peering_establish) on the dialing cluster.
    - A secret; register it with C(no_log) on the task.
  returned: when a token was generated (not in check mode, not when the peering was already active)
  type: str
peering_tokens:
  description:
    - With O(peers), the token generated for each peer, keyed by peer name; a peer for which no token
      was generated (already active, check mode, O(state=absent)) is not in it.
    - Secrets; register them with C(no_log) on the task.
  returned: when O(peers) is given
  type: dict
  version_added: 0.1.0
peers:
  description:
    - With O(peers), what was done for each peer, in the order given; no token in it.
  returned: when O(peers) is given
  type: list
  elements: dict
  version_added: 0.1.0
  contains:
    peer_name:
      description: The peer name.
      type: str
    changed:
      description: Whether this peer's peering changed (or would, in check mode).
      type: bool
    operation:
      description: As RV(operation), for this peer.
      type: str
    peering:
      description: As RV(peering), for this peer.
      type: dict
    token_info:
      description: As RV(token_info), for this peer; only when a token was generated.
      type: dict
token_info:
  description: The non-secret parts of the generated token.
  returned: when a token was generated
  type: dict
  contains:
    peer_id:
      description: The ID of the peering on this cluster; the dialer's record carries it as C(PeerID).
      type: str
    server_name:
      description: The TLS server name the dialer verifies.
      type: str
    server_addresses:
      description: The addresses the dialer connects to.
      type: list
      elements: str
    remote_datacenter:
      description: This cluster's datacenter.
      type: str
    remote_partition:
      description: This cluster's partition (empty on Consul CE).
      type: str
peering:
  description:
    - The peering as Consul reports it after the run (before it, in check mode); empty when
      there is none.
  returned: when O(peer_name) is given
  type: dict
  sample:
    name: cluster-02
    id: 7d649f7b-093e-d45b-5ff0-f1756d7b8258
    state: PENDING
    role: acceptor
    meta: {env: production}
    imported_services: []
    exported_services: []
  contains:
    name:
      description: The peer name.
      type: str
    id:
      description: The peering's ID on this cluster.
      type: str
    state:
      description: V(PENDING), V(ESTABLISHING), V(ACTIVE), V(FAILING), V(DELETING) or V(TERMINATED).
      type: str
    role:
      description: V(acceptor) (made by generating a token) or V(dialer) (made by establishing).
      type: str
    peer_id:
      description: The peering's ID on the other cluster (dialer side only).
      type: str
    meta:
      description: The peering's metadata.
      type: dict
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
operation:
  description:
    - What the run did, or would do in check mode.
    - V(none), V(generate) (new peering), V(regenerate) (new token for an existing peering),
      V(recreate) (a terminated peering deleted and made anew), V(delete), V(wait_deleted).
  returned: when O(peer_name) is given
  type: str
  sample: generate
"""

from ansible_collections.seed.consul_peering.plugins.module_utils._module import run_module
from ansible_collections.seed.consul_peering.plugins.module_utils._peering import (
    batch_problems,
    ensure_token,
    for_each_peer,
    meta_problem,
    peer_name_problem,
    remove_peering,
    server_addresses_problem,
    wait_timeout_problem,
)

ARGUMENT_SPEC = dict(
    peer_name=dict(type="str"),
    peers=dict(type="list", elements="dict", options=dict(
        peer_name=dict(type="str", required=True),
        meta=dict(type="dict"),
        server_external_addresses=dict(type="list", elements="str"),
    )),
    meta=dict(type="dict"),
    server_external_addresses=dict(type="list", elements="str"),
    state=dict(type="str", choices=["present", "absent"], default="present"),
    regenerate=dict(type="bool", default=False),
    wait_timeout=dict(type="int", default=60),
)


def validate(p):
    problems = [server_addresses_problem(p["server_external_addresses"]), meta_problem(p["meta"]),
                wait_timeout_problem(p["wait_timeout"])]
    if p["peers"] is None:
        return problems + [peer_name_problem(p["peer_name"])]
    problems += batch_problems(p["peers"])
    for i, peer in enumerate(p["peers"]):
        problems += [server_addresses_problem(peer["server_external_addresses"],
                                              "peers[%d].server_external_addresses" % i),
                     meta_problem(peer["meta"], "peers[%d].meta" % i)]
    return problems


def one(module, client, p):
    if p["state"] == "absent":
        return remove_peering(client, p["peer_name"], p["wait_timeout"], module.check_mode)
    return ensure_token(client, p, module.check_mode, module.warn)


def logic(module, client):
    p = module.params
    if p["peers"] is None:
        result = one(module, client, p)
    else:
        result = for_each_peer(p, lambda params: one(module, client, params), secret="peering_token",
                               inherit=("meta", "server_external_addresses"))
        result["peering_tokens"] = result.pop("secrets")
    if not module._diff:
        result.pop("diff", None)
    return result


def main():
    run_module(ARGUMENT_SPEC, logic, validate, mutually_exclusive=[("peer_name", "peers")],
               required_one_of=[("peer_name", "peers")])


if __name__ == "__main__":
    main()
