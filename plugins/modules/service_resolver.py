#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: service_resolver
short_description: Fail a Consul service over, or redirect it, to a peered cluster with a service-resolver entry
version_added: 0.1.0
description:
  - Manages Consul's C(service-resolver) config entry for one service. Its main use here is cluster
    peering (Consul 1.14 or later) - failing a service over to the same service in a peered cluster
    (O(failover[].targets[].peer)), or redirecting it there (O(redirect.peer)).
  - Splitters and routers cannot name a peer themselves; they go through a resolver that does.
  - With O(state=present) the options given are B(the whole entry) (one resolver is one document). Options left
    out are unset, except the entry's C(Meta), which is kept as it is. O(state=absent) with O(failover) removes
    single failover targets instead.
  - Comparison ignores what the server computes (C(Hash), C(CreateIndex), C(ModifyIndex)) and how Consul
    spells durations (V(90s) equals Consul's V(1m30s)), so a second run reports C(ok) and sends one request.
    The order of O(failover[].targets) and O(failover[].datacenters) is compared as given - Consul tries them in order.
  - Every write is a compare-and-set on the entry's C(ModifyIndex); on a conflict with another writer
    the module reads again and writes again, a bounded number of times.
  - All input is checked before anything is written, with Consul's own rules (for example redirect and failover
    together, a peer target narrowed to a subset, a duration without a unit) and one of ours - a failover target
    that names nothing.
author:
  - seed.consul_peering contributors (!UNKNOWN)
extends_documentation_fragment:
  - seed.consul_peering.consul
  - seed.consul_peering.consul.attributes
  - ansible.builtin.action_common_attributes
attributes:
  diff_mode:
    support: full
    details:
      - The diff shows the entry before and after, normalised (server fields left out, durations as Consul writes them).
options:
  name:
    description:
      - The service this resolver is for.
    type: str
    required: true
    aliases: [service]
  namespace:
    description:
      - Namespace of the service (Consul Enterprise).
      - If not set, the value of the E(CONSUL_NAMESPACE) environment variable is used, as Consul's CLI does.
    type: str
  connect_timeout:
    description:
      - Timeout for new network connections to this service, as a Go duration (V(5s), V(1m30s), V(250ms)).
    type: str
  request_timeout:
    description:
      - Timeout for an HTTP request to this service to complete, as a Go duration. Consul's default is V(15s).
    type: str
  default_subset:
    description:
      - The subset used when none is asked for; must be one of O(subsets).
    type: str
  subsets:
    description:
      - Named subsets of the service's instances (Consul's C(Subsets) map, as a list).
    type: list
    elements: dict
    suboptions:
      name:
        description:
          - Name of the subset (a DNS label; it becomes part of SNI names).
        type: str
        required: true
      filter:
        description:
          - Filter expression selecting the subset's instances, for example C(Service.Meta.version == v1).
        type: str
      only_passing:
        description:
          - Only instances whose checks all pass; otherwise instances with warning checks are included too.
        type: bool
        default: false
  redirect:
    description:
      - Resolve another service (or the same service elsewhere, for example on a peer) instead of this one.
      - Not together with O(failover).
      - O(redirect.peer) needs O(redirect.service) too - repeat the service's own name to reach it on the peer.
    type: dict
    suboptions:
      service:
        description: The service to resolve instead.
        type: str
      service_subset:
        description: A subset of O(redirect.service). Not with O(redirect.peer) or O(redirect.sameness_group).
        type: str
      namespace:
        description: Namespace to resolve the service from (Consul Enterprise).
        type: str
      partition:
        description: Admin partition to resolve the service from (Consul Enterprise). Not with O(redirect.peer).
        type: str
      datacenter:
        description: Datacenter (WAN federation) to resolve the service from. Not with O(redirect.peer).
        type: str
      peer:
        description: Cluster peer to resolve the service from (the local name of the peering).
        type: str
      sameness_group:
        description: Sameness group to resolve the service from (Consul Enterprise).
        type: str
  failover:
    description:
      - Where to send traffic when no healthy instance is left, per subset (Consul's C(Failover) map, as a list).
      - Not together with O(redirect).
      - With O(state=absent), the targets to remove (only O(failover[].subset) and O(failover[].targets) count).
    type: list
    elements: dict
    suboptions:
      subset:
        description:
          - The subset this failover applies to; V(*) for every subset not listed otherwise.
        type: str
        default: "*"
      targets:
        description:
          - Targets tried in order. Each names at least one field. Not together with the older
            O(failover[].service), O(failover[].service_subset), O(failover[].namespace),
            O(failover[].datacenters) or O(failover[].sameness_group).
        type: list
        elements: dict
        suboptions:
          peer:
            description:
              - Cluster peer to fail over to (the local name of the peering). The peer must export the service to
                this cluster. Not with O(failover[].targets[].service_subset), O(failover[].targets[].partition) or
                O(failover[].targets[].datacenter).
            type: str
          service:
            description: Service to fail over to; defaults to this service.
            type: str
          service_subset:
            description: Subset of the target service.
            type: str
          namespace:
            description: Namespace of the target (Consul Enterprise).
            type: str
          partition:
            description: Admin partition of the target (Consul Enterprise).
            type: str
          datacenter:
            description: Datacenter (WAN federation) of the target.
            type: str
      service:
        description: The older form - the service to fail over to.
        type: str
      service_subset:
        description: The older form - the subset to fail over to.
        type: str
      namespace:
        description: The older form - the namespace to fail over to (Consul Enterprise).
        type: str
      datacenters:
        description: The older form - datacenters (WAN federation) to try, in order.
        type: list
        elements: str
      sameness_group:
        description: Fail over to the service in this sameness group (Consul Enterprise).
        type: str
  load_balancer:
    description:
      - Load-balancing policy for callers of this service (applies to Envoy sidecars).
    type: dict
    suboptions:
      policy:
        description: The policy.
        type: str
        choices: [random, round_robin, least_request, ring_hash, maglev]
      ring_hash_config:
        description: Only with O(load_balancer.policy=ring_hash).
        type: dict
        suboptions:
          minimum_ring_size:
            description: Minimum number of entries in the hash ring.
            type: int
          maximum_ring_size:
            description: Maximum number of entries in the hash ring.
            type: int
      least_request_config:
        description: Only with O(load_balancer.policy=least_request).
        type: dict
        suboptions:
          choice_count:
            description: Number of random healthy hosts from which the one with the fewest requests is chosen.
            type: int
      hash_policies:
        description: What hash-based policies (V(ring_hash), V(maglev)) hash on, in order.
        type: list
        elements: dict
        suboptions:
          field:
            description: What to hash. Needs O(load_balancer.hash_policies[].field_value).
            type: str
            choices: [header, cookie, query_parameter]
          field_value:
            description: Name of the header, cookie or query parameter.
            type: str
          cookie_config:
            description: Only with O(load_balancer.hash_policies[].field=cookie) - Envoy generates the cookie.
            type: dict
            suboptions:
              session:
                description: A session cookie (no ttl).
                type: bool
              ttl:
                description: Lifetime of the generated cookie, a Go duration.
                type: str
              path:
                description: Path of the cookie.
                type: str
          source_ip:
            description: Hash the caller's IP address instead of a field.
            type: bool
          terminal:
            description: Stop at this policy when it produced a hash.
            type: bool
  state:
    description:
      - V(present) writes the resolver as given.
      - V(absent) without O(failover) deletes the resolver. V(absent) with O(failover) removes only the listed
        O(failover[].targets) from the failover of O(failover[].subset), leaving the rest of the entry as it is;
        a subset left without targets loses its failover, and a resolver left without any setting is deleted.
        Other options are ignored with V(absent).
    type: str
    choices: [present, absent]
    default: present
notes:
  - Needs an ACL token with C(service "<name>" { policy = "write" }), and C(service "<other>" { policy = "read" })
    for every other service a redirect or failover target names. C(mesh = "write") and C(operator = "write") are
    not enough (Consul checks the service rules; proven in docs/acl.md).
  - Enterprise-only options (O(namespace), namespaces, partitions and sameness groups other than V(default) in
    O(redirect) and O(failover)) fail with a clear error on Consul CE before anything is written.
  - Failover to a peer happens in the data plane (Envoy sidecars and mesh gateways); the service must be exported
    to this cluster by the peer (M(seed.consul_peering.exported_services)).
  - Not managed - C(Meta), C(PrioritizeByLocality) and failover C(Policy) (Enterprise), and any field newer than
    this module; a write keeps them as Consul has them.
seealso:
  - name: Consul service-resolver configuration entry
    description: Consul's reference for the entry this module manages.
    link: https://developer.hashicorp.com/consul/docs/reference/config-entry/service-resolver
  - name: Manage traffic for peered clusters
    description: The Consul peering guide's failover and redirect examples.
    link: https://developer.hashicorp.com/consul/docs/manage-traffic/vm
  - module: seed.consul_peering.exported_services
"""

EXAMPLES = r"""
- name: Fail frontend over to the same service in the peer cluster-02 (the peering guide's example)
  seed.consul_peering.service_resolver:
    name: frontend
    connect_timeout: 15s
    failover:
      - subset: "*"
        targets:
          - peer: cluster-02

- name: Try cluster-02 first, then cluster-03
  seed.consul_peering.service_resolver:
    name: backend
    failover:
      - targets:
          - peer: cluster-02
          - peer: cluster-03

- name: Send every request for billing to billing in the peer cluster-02
  seed.consul_peering.service_resolver:
    name: billing
    redirect:
      service: billing
      peer: cluster-02

- name: Subsets, with the v2 subset failing over to cluster-02
  seed.consul_peering.service_resolver:
    name: api
    default_subset: v1
    subsets:
      - name: v1
        filter: Service.Meta.version == v1
      - name: v2
        filter: Service.Meta.version == v2
        only_passing: true
    failover:
      - subset: v2
        targets:
          - peer: cluster-02

- name: Stop failing backend over to cluster-03, keep the rest of its resolver
  seed.consul_peering.service_resolver:
    name: backend
    state: absent
    failover:
      - targets:
          - peer: cluster-03

- name: Remove the resolver
  seed.consul_peering.service_resolver:
    name: frontend
    state: absent
"""

RETURN = r"""
entry:
  description:
    - The C(service-resolver) entry as Consul holds it after the task (with C(Hash) and C(ModifyIndex)).
    - In check mode, the entry that would be written. An empty dictionary when there is none.
  returned: always
  type: dict
  sample:
    Kind: service-resolver
    Name: frontend
    ConnectTimeout: 15s
    Failover:
      "*":
        Targets:
          - Peer: cluster-02
    CreateIndex: 40
    ModifyIndex: 40
operation:
  description: What was done (or would be, in check mode) to the entry.
  returned: always
  type: str
  choices: [none, create, update, delete]
  sample: create
cas_conflicts:
  description:
    - How many compare-and-set writes lost to a concurrent writer and were retried on a fresh read.
  returned: always
  type: int
  sample: 0
"""

from ansible_collections.seed.consul_peering.plugins.module_utils._config_entries import (
    apply_config_entry,
    explain_write_error,
)
from ansible_collections.seed.consul_peering.plugins.module_utils._module import run_module
from ansible_collections.seed.consul_peering.plugins.module_utils._service_resolver import (
    LB_POLICIES,
    HASH_FIELDS,
    SERVICE_RESOLVER,
    build_resolver,
    canonical_resolver,
    resolver_enterprise_fields,
    resolver_version_needs,
    validate_resolver,
)

TARGET_SPEC = dict(
    peer=dict(type="str"),
    service=dict(type="str"),
    service_subset=dict(type="str"),
    namespace=dict(type="str"),
    partition=dict(type="str"),
    datacenter=dict(type="str"),
)

REDIRECT_SPEC = dict(TARGET_SPEC, sameness_group=dict(type="str"))

FAILOVER_SPEC = dict(
    subset=dict(type="str", default="*"),
    targets=dict(type="list", elements="dict", options=TARGET_SPEC),
    service=dict(type="str"),
    service_subset=dict(type="str"),
    namespace=dict(type="str"),
    datacenters=dict(type="list", elements="str"),
    sameness_group=dict(type="str"),
)

SUBSET_SPEC = dict(
    name=dict(type="str", required=True),
    filter=dict(type="str"),
    only_passing=dict(type="bool", default=False),
)

LOAD_BALANCER_SPEC = dict(
    policy=dict(type="str", choices=list(LB_POLICIES)),
    ring_hash_config=dict(type="dict", options=dict(minimum_ring_size=dict(type="int"),
                                                    maximum_ring_size=dict(type="int"))),
    least_request_config=dict(type="dict", options=dict(choice_count=dict(type="int"))),
    hash_policies=dict(type="list", elements="dict", options=dict(
        field=dict(type="str", choices=list(HASH_FIELDS)),
        field_value=dict(type="str"),
        cookie_config=dict(type="dict", options=dict(session=dict(type="bool"), ttl=dict(type="str"),
                                                     path=dict(type="str"))),
        source_ip=dict(type="bool"),
        terminal=dict(type="bool"),
    )),
)

ARGUMENT_SPEC = dict(
    name=dict(type="str", required=True, aliases=["service"]),
    namespace=dict(type="str"),
    connect_timeout=dict(type="str"),
    request_timeout=dict(type="str"),
    default_subset=dict(type="str"),
    subsets=dict(type="list", elements="dict", options=SUBSET_SPEC),
    redirect=dict(type="dict", options=REDIRECT_SPEC),
    failover=dict(type="list", elements="dict", options=FAILOVER_SPEC),
    load_balancer=dict(type="dict", options=LOAD_BALANCER_SPEC),
    state=dict(type="str", choices=["present", "absent"], default="present"),
)


def logic(module, client):
    p = module.params
    if p["state"] == "present":
        enterprise = resolver_enterprise_fields(p)
        if enterprise:
            client.require_enterprise_for(", ".join(enterprise))
        client.require_version(resolver_version_needs(p))
    return apply_config_entry(
        client, SERVICE_RESOLVER, p["name"],
        build=lambda current: build_resolver(current, p),
        canonical=canonical_resolver,
        check_mode=module.check_mode,
        namespace=p["namespace"],
        explain_error=explain_write_error(SERVICE_RESOLVER, p["name"]),
    )


def main():
    run_module(ARGUMENT_SPEC, logic, validate_resolver)


if __name__ == "__main__":
    main()
