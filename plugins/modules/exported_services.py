#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: exported_services
short_description: Export Consul services to cluster peers, merged into the exported-services entry
version_added: 0.1.0
description:
  - Manages the services listed in Consul's C(exported-services) config entry, which decides what
    peered clusters (and, on Consul Enterprise, other admin partitions and sameness groups) can see.
  - By default the given services and consumers are B(merged) into the existing entry, so several
    playbooks (or teams) can each export their own services without removing each other's.
    O(exclusive=true) makes the given list the whole entry instead.
  - Every write is a compare-and-set on the entry's C(ModifyIndex). When another writer changed the entry
    in between, the module reads it again and re-applies its change, a bounded number of times, so
    concurrent runs never lose each other's services.
  - Nothing is written when the entry already says what is asked (services and consumers compare as
    sets; their order does not matter), so a second run reports C(ok) and sends one request.
  - An entry left without any service is deleted rather than written empty.
  - All input is checked before anything is written.
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
      - The diff shows the entry before and after, normalised (services and consumers sorted, server
        fields such as C(ModifyIndex) left out).
options:
  name:
    description:
      - Name of the C(exported-services) entry.
      - On Consul CE it must be V(default). On Consul Enterprise it is the admin partition whose services
        are exported.
      - If not set, the value of O(partition) when that is set, else V(default).
    type: str
  services:
    description:
      - Services to export (O(state=present)) or to stop exporting (O(state=absent)).
      - Required with O(state=present). With O(state=absent) and no O(services), the whole entry is
        deleted.
    type: list
    elements: dict
    suboptions:
      name:
        description:
          - Name of the service, as registered in this cluster. V(*) exports every service (of
            O(services[].namespace)).
        type: str
        required: true
      namespace:
        description:
          - Namespace of the service (Consul Enterprise). V(default) when not set.
        type: str
      consumers:
        description:
          - Who may import the service. Each consumer sets exactly one of O(services[].consumers[].peer),
            O(services[].consumers[].partition) or O(services[].consumers[].sameness_group).
          - With O(state=present) at least one consumer is required; they are added to the consumers the
            service already has (or, with O(exclusive=true), are all of them).
          - With O(state=absent) only these consumers are removed from the service; a service left
            without consumers is removed. Without consumers the service is removed altogether.
          - A wildcard (V(*)) consumer is rejected, because Consul does not support exporting to all peers.
        type: list
        elements: dict
        suboptions:
          peer:
            description:
              - Name of a cluster peering (as this cluster knows the peer). The peering does not need
                to exist yet.
            type: str
          partition:
            description:
              - Admin partition to export to (Consul Enterprise).
            type: str
          sameness_group:
            description:
              - Sameness group to export to (Consul Enterprise).
            type: str
  exclusive:
    description:
      - If V(true), O(services) becomes the whole entry, removing every service and consumer not
        listed. An empty O(services) list then deletes the entry.
      - If V(false), O(services) is merged into what is there.
      - Only for O(state=present).
    type: bool
    default: false
  state:
    description:
      - V(present) exports the services to the consumers.
      - V(absent) stops exporting the listed services, or only the listed consumers of them.
    type: str
    choices: [present, absent]
    default: present
notes:
  - Needs an ACL token with C(mesh:write) (C(operator:write) also grants it) to write, C(mesh:read) to read.
  - Consul CE silently ignores Enterprise-only fields here; this module refuses them with a clear error
    unless the server runs Consul Enterprise.
  - The module gives up after 10 compare-and-set conflicts in a row (with jittered exponential backoff
    between them) and fails without having written anything; run it again.
seealso:
  - name: Consul exported-services configuration entry
    description: Consul's reference for the entry this module manages.
    link: https://developer.hashicorp.com/consul/docs/reference/config-entry/exported-services
  - module: seed.consul_peering.service_intentions
"""

EXAMPLES = r"""
- name: Export web and api to the peer cluster-02 (merged with what other playbooks export)
  seed.consul_peering.exported_services:
    url: http://consul-1.example.com:8500
    services:
      - name: web
        consumers:
          - peer: cluster-02
      - name: api
        consumers:
          - peer: cluster-02
          - peer: cluster-03

- name: Make this list the whole exported-services entry
  seed.consul_peering.exported_services:
    services:
      - name: web
        consumers:
          - peer: cluster-02
    exclusive: true

- name: Stop exporting api to cluster-03 only (cluster-02 keeps it)
  seed.consul_peering.exported_services:
    services:
      - name: api
        consumers:
          - peer: cluster-03
    state: absent

- name: Stop exporting web altogether
  seed.consul_peering.exported_services:
    services:
      - name: web
    state: absent

- name: Remove the whole exported-services entry
  seed.consul_peering.exported_services:
    state: absent
"""

RETURN = r"""
entry:
  description:
    - The C(exported-services) entry as Consul holds it after the task (with C(ModifyIndex)).
    - In check mode, the entry that would be written. An empty dictionary when there is no entry.
  returned: always
  type: dict
  sample:
    Kind: exported-services
    Name: default
    Services:
      - Name: web
        Consumers:
          - Peer: cluster-02
    CreateIndex: 24
    ModifyIndex: 31
operation:
  description: What was done (or would be, in check mode) to the entry.
  returned: always
  type: str
  choices: [none, create, update, delete]
  sample: update
cas_conflicts:
  description:
    - How many compare-and-set writes lost to a concurrent writer and were retried on a fresh read.
  returned: always
  type: int
  sample: 0
"""

from ansible_collections.seed.consul_peering.plugins.module_utils._config_entries import (
    EXPORTED_SERVICES,
    apply_config_entry,
    canonical_exported_services,
    explain_write_error,
    exported_services_enterprise_fields,
    exported_services_version_needs,
    merge_exported_services,
    validate_exported_services,
)
from ansible_collections.seed.consul_peering.plugins.module_utils._module import run_module

CONSUMER_SPEC = dict(
    peer=dict(type="str"),
    partition=dict(type="str"),
    sameness_group=dict(type="str"),
)

SERVICE_SPEC = dict(
    name=dict(type="str", required=True),
    namespace=dict(type="str"),
    consumers=dict(type="list", elements="dict", options=CONSUMER_SPEC),
)

ARGUMENT_SPEC = dict(
    name=dict(type="str"),
    services=dict(type="list", elements="dict", options=SERVICE_SPEC),
    exclusive=dict(type="bool", default=False),
    state=dict(type="str", choices=["present", "absent"], default="present"),
)


def logic(module, client):
    p = module.params
    name = p["name"] or p["partition"] or "default"
    enterprise = exported_services_enterprise_fields(p["services"], name)
    if enterprise:
        client.require_enterprise_for(", ".join(enterprise))
    if p["state"] == "present":
        client.require_version(exported_services_version_needs(p["services"]))
    return apply_config_entry(
        client, EXPORTED_SERVICES, name,
        build=lambda current: merge_exported_services(current, p["services"], name, p["state"], p["exclusive"]),
        canonical=canonical_exported_services,
        check_mode=module.check_mode,
        explain_error=explain_write_error(EXPORTED_SERVICES, name),
    )


def validate(p):
    return validate_exported_services(p["services"], p["state"], p["exclusive"])


def main():
    run_module(ARGUMENT_SPEC, logic, validate, required_if=[("state", "present", ("services",))])


if __name__ == "__main__":
    main()
