#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: service_intentions
short_description: Allow or deny callers of a Consul service, merged into its service-intentions entry
version_added: 0.1.0
description:
  - Manages the sources of Consul's C(service-intentions) config entry for one destination service,
    that is which services, local or in peered clusters, may call it (L4 O(sources[].action)) or which
    HTTP requests they may make (L7 O(sources[].permissions)).
  - By default the given sources are B(merged) into the entry, keyed by source identity (peer, partition,
    namespace, sameness group and name). A listed source replaces the source with the same identity;
    other sources stay. O(exclusive=true) makes the given list the whole entry instead.
  - Comparison ignores what the server computes or re-orders (C(Precedence), C(Type), the C(Legacy*)
    fields, C(CreateIndex), C(ModifyIndex), C(Hash), the order of sources, of methods and of header
    matches), so a second run reports C(ok) and sends one request. The order of
    O(sources[].permissions) matters to Consul and is compared as given.
  - Every write is a compare-and-set on the entry's C(ModifyIndex); on a conflict with another writer
    the module reads again and re-applies its change, a bounded number of times.
  - Consul refuses an entry without sources, so an entry left without any is deleted.
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
      - The diff shows the entry before and after, normalised (sources sorted by identity, server
        fields left out).
options:
  name:
    description:
      - The destination service whose intentions are managed. V(*) means every service (then
        O(sources[].permissions) are not allowed).
      - The destination's admin partition is O(partition) (Consul Enterprise).
    type: str
    required: true
    aliases: [destination]
  namespace:
    description:
      - Namespace of the destination service (Consul Enterprise). Local sources without their own
        O(sources[].namespace) are in this namespace too.
      - If not set, the value of the E(CONSUL_NAMESPACE) environment variable is used, as Consul's CLI does.
    type: str
  sources:
    description:
      - The callers. Required with O(state=present).
      - With O(state=absent) only the identity of each source (O(sources[].name), O(sources[].peer),
        O(sources[].partition), O(sources[].namespace), O(sources[].sameness_group)) is used; without
        O(sources) the whole entry is deleted.
      - A listed source is written as given. Options left out (for example O(sources[].description)) are
        unset on that source.
    type: list
    elements: dict
    suboptions:
      name:
        description:
          - Name of the source service; V(*) for every service.
        type: str
        required: true
      peer:
        description:
          - Cluster peering the source service is imported from. Not with O(sources[].partition) or
            O(sources[].sameness_group). A wildcard is not allowed.
        type: str
      partition:
        description:
          - Admin partition of a local source (Consul Enterprise). Defaults to the destination's.
        type: str
      namespace:
        description:
          - Namespace of the source (Consul Enterprise). A local source defaults to the destination's
            namespace, a peer's source to V(default).
        type: str
      sameness_group:
        description:
          - Sameness group of the source (Consul Enterprise).
        type: str
      action:
        description:
          - Allow or deny every request from this source (L4). Exactly one of O(sources[].action) and
            O(sources[].permissions) is required with O(state=present).
        type: str
        choices: [allow, deny]
      permissions:
        description:
          - L7 rules, evaluated in order, for HTTP-family destinations. The destination's protocol must be
            C(http), C(http2) or C(grpc) (C(service-defaults) or C(proxy-defaults) entry); otherwise Consul
            refuses them and the module fails with Consul's reason.
        type: list
        elements: dict
        suboptions:
          action:
            description:
              - What to do with a request that matches O(sources[].permissions[].http).
            type: str
            choices: [allow, deny]
            required: true
          http:
            description:
              - The request match. At least one of a path, O(sources[].permissions[].http.methods) or
                O(sources[].permissions[].http.header) is required.
            type: dict
            required: true
            suboptions:
              path_exact:
                description:
                  - The request path equals this (starts with V(/)). At most one of the three path options.
                type: str
              path_prefix:
                description:
                  - The request path starts with this (starts with V(/)).
                type: str
              path_regex:
                description:
                  - The request path matches this regular expression (Envoy's RE2 syntax).
                type: str
              methods:
                description:
                  - HTTP methods the request must use (any of them). Compared without regard to case or order.
                type: list
                elements: str
              header:
                description:
                  - Header matches, all of which must hold. Each sets exactly one of
                    O(sources[].permissions[].http.header[].present),
                    O(sources[].permissions[].http.header[].exact),
                    O(sources[].permissions[].http.header[].prefix),
                    O(sources[].permissions[].http.header[].suffix),
                    O(sources[].permissions[].http.header[].contains) or
                    O(sources[].permissions[].http.header[].regex).
                type: list
                elements: dict
                suboptions:
                  name:
                    description:
                      - Name of the header.
                    type: str
                    required: true
                  present:
                    description:
                      - The header is present, whatever its value.
                    type: bool
                  exact:
                    description:
                      - The header's value equals this.
                    type: str
                  prefix:
                    description:
                      - The header's value starts with this.
                    type: str
                  suffix:
                    description:
                      - The header's value ends with this.
                    type: str
                  contains:
                    description:
                      - The header's value contains this (Consul 1.21 or later).
                    type: str
                  regex:
                    description:
                      - The header's value matches this regular expression.
                    type: str
                  invert:
                    description:
                      - Negate the match.
                    type: bool
                  ignore_case:
                    description:
                      - Match without regard to case; only with exact, prefix, suffix or contains
                        (Consul 1.21 or later).
                    type: bool
          jwt:
            description:
              - JSON Web Token requirements for requests that match this permission (Consul 1.16 or later);
                the request must carry a token valid for one of the providers (C(jwt-provider) config
                entries), with the claims listed.
              - Left out, a permission that matches one already there (same action and HTTP match) keeps
                the JWT requirement Consul has for it. V({}) (no provider) removes it.
              - Rewriting a source never drops a JWT requirement silently. If one that Consul holds would be
                lost because no permission given keeps it (its match or action changed, it is left out, or
                the source becomes O(sources[].action=allow)), the module fails before writing and names it.
                Set O(sources[].permissions[].jwt) on every permission of that source to say what each
                requires. A source that becomes O(sources[].action=deny) needs no token check and drops them.
            type: dict
            suboptions:
              providers:
                description:
                  - The JWT providers, any one of which may have issued the token.
                type: list
                elements: dict
                suboptions:
                  name:
                    description:
                      - Name of the C(jwt-provider) config entry.
                    type: str
                    required: true
                  verify_claims:
                    description:
                      - Claims the token must carry, all of them.
                    type: list
                    elements: dict
                    suboptions:
                      path:
                        description:
                          - Path to the claim in the token, as a list of keys (V([perms, role])).
                        type: list
                        elements: str
                        required: true
                      value:
                        description:
                          - The value the claim must have.
                        type: str
      description:
        description:
          - Free text describing the intention, shown in Consul's UI.
          - Fields of an existing source that this module does not manage are kept as Consul has them.
        type: str
  jwt:
    description:
      - JSON Web Token requirements for every request to the destination (the entry's C(JWT), Consul 1.16
        or later), with the same suboptions as O(sources[].permissions[].jwt).
      - Left out, the entry keeps the requirement Consul has. V({}) (no provider) removes it.
      - Only for O(state=present).
    type: dict
    suboptions:
      providers:
        description:
          - The JWT providers, any one of which may have issued the token.
        type: list
        elements: dict
        suboptions:
          name:
            description:
              - Name of the C(jwt-provider) config entry.
            type: str
            required: true
          verify_claims:
            description:
              - Claims the token must carry, all of them.
            type: list
            elements: dict
            suboptions:
              path:
                description:
                  - Path to the claim in the token, as a list of keys.
                type: list
                elements: str
                required: true
              value:
                description:
                  - The value the claim must have.
                type: str
  exclusive:
    description:
      - If V(true), O(sources) becomes the whole list of sources, removing every source not listed.
        An empty O(sources) list then deletes the entry.
      - If V(false), O(sources) is merged into what is there.
      - Only for O(state=present).
    type: bool
    default: false
  state:
    description:
      - V(present) writes the sources; V(absent) removes the listed sources, or the whole entry when
        O(sources) is not given.
    type: str
    choices: [present, absent]
    default: present
notes:
  - Needs an ACL token with C(intentions = "write") on the destination service (C(service "<name>" {
    intentions = "write" })) to write, C(intentions = "read") to read.
  - Enterprise-only options (O(namespace), O(sources[].partition), O(sources[].namespace),
    O(sources[].sameness_group) other than V(default)) fail with a clear error on Consul CE before anything
    is written.
  - The module gives up after 10 compare-and-set conflicts in a row (with jittered exponential backoff
    between them) and fails without having written anything; run it again.
  - Entry-level fields this module does not manage (C(Meta), C(JWT)) are kept as they are.
seealso:
  - name: Consul service-intentions configuration entry
    description: Consul's reference for the entry this module manages.
    link: https://developer.hashicorp.com/consul/docs/reference/config-entry/service-intentions
  - module: seed.consul_peering.exported_services
"""

EXAMPLES = r"""
- name: Let web in the peer cluster-02 call api; deny everything else (merged with other sources)
  seed.consul_peering.service_intentions:
    name: api
    sources:
      - name: web
        peer: cluster-02
        action: allow
        description: frontends in cluster-02
      - name: "*"
        action: deny

- name: L7 rules (the destination's protocol must be http)
  seed.consul_peering.service_intentions:
    destination: api
    sources:
      - name: web
        peer: cluster-02
        permissions:
          - action: deny
            http:
              path_prefix: /admin
          - action: allow
            http:
              path_regex: "^/v[0-9]+/orders(/.*)?$"
              methods: [GET, POST]
              header:
                - name: x-tenant
                  present: true
                - name: x-debug
                  exact: "1"
                  invert: true

- name: Exactly these sources, nothing else
  seed.consul_peering.service_intentions:
    name: api
    sources:
      - name: web
        action: allow
    exclusive: true

- name: Remove the intention from web in cluster-02
  seed.consul_peering.service_intentions:
    name: api
    sources:
      - name: web
        peer: cluster-02
    state: absent

- name: Remove every intention of api
  seed.consul_peering.service_intentions:
    name: api
    state: absent
"""

RETURN = r"""
entry:
  description:
    - The C(service-intentions) entry as Consul holds it after the task (sources in Consul's order, with
      the server's C(Precedence) and C(ModifyIndex)).
    - In check mode, the entry that would be written. An empty dictionary when there is no entry.
  returned: always
  type: dict
  sample:
    Kind: service-intentions
    Name: api
    Sources:
      - Name: web
        Peer: cluster-02
        Action: allow
        Precedence: 9
        Type: consul
    CreateIndex: 40
    ModifyIndex: 41
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
    SERVICE_INTENTIONS,
    apply_config_entry,
    canonical_intentions,
    explain_intentions_error,
    intentions_enterprise_fields,
    intentions_version_needs,
    merge_intentions,
    validate_intention_sources,
)
from ansible_collections.seed.consul_peering.plugins.module_utils._module import run_module

HEADER_SPEC = dict(
    name=dict(type="str", required=True),
    present=dict(type="bool"),
    exact=dict(type="str"),
    prefix=dict(type="str"),
    suffix=dict(type="str"),
    contains=dict(type="str"),
    regex=dict(type="str"),
    invert=dict(type="bool"),
    ignore_case=dict(type="bool"),
)

HTTP_SPEC = dict(
    path_exact=dict(type="str"),
    path_prefix=dict(type="str"),
    path_regex=dict(type="str"),
    methods=dict(type="list", elements="str"),
    header=dict(type="list", elements="dict", options=HEADER_SPEC),
)

JWT_SPEC = dict(
    providers=dict(type="list", elements="dict", options=dict(
        name=dict(type="str", required=True),
        verify_claims=dict(type="list", elements="dict", options=dict(
            path=dict(type="list", elements="str", required=True),
            value=dict(type="str"),
        )),
    )),
)

PERMISSION_SPEC = dict(
    action=dict(type="str", choices=["allow", "deny"], required=True),
    http=dict(type="dict", required=True, options=HTTP_SPEC),
    jwt=dict(type="dict", options=JWT_SPEC),
)

SOURCE_SPEC = dict(
    name=dict(type="str", required=True),
    peer=dict(type="str"),
    partition=dict(type="str"),
    namespace=dict(type="str"),
    sameness_group=dict(type="str"),
    action=dict(type="str", choices=["allow", "deny"]),
    permissions=dict(type="list", elements="dict", options=PERMISSION_SPEC),
    description=dict(type="str"),
)

ARGUMENT_SPEC = dict(
    name=dict(type="str", required=True, aliases=["destination"]),
    namespace=dict(type="str"),
    sources=dict(type="list", elements="dict", options=SOURCE_SPEC),
    jwt=dict(type="dict", options=JWT_SPEC),
    exclusive=dict(type="bool", default=False),
    state=dict(type="str", choices=["present", "absent"], default="present"),
)


def logic(module, client):
    p = module.params
    name, namespace, partition = p["name"], p["namespace"], p["partition"]
    enterprise = intentions_enterprise_fields(p["sources"], namespace)
    if enterprise:
        client.require_enterprise_for(", ".join(enterprise))
    if p["state"] == "present":
        client.require_version(intentions_version_needs(p["sources"], p["jwt"]))

    def build(current):
        return merge_intentions(current, p["sources"], name, p["state"], p["exclusive"], namespace, partition,
                                jwt=p["jwt"])

    return apply_config_entry(
        client, SERVICE_INTENTIONS, name,
        build=build,
        canonical=lambda entry: canonical_intentions(entry, namespace, partition),
        check_mode=module.check_mode,
        namespace=namespace,
        explain_error=explain_intentions_error(name, p["sources"]),
    )


def validate(p):
    return validate_intention_sources(p["sources"], p["state"], p["exclusive"], destination=p["name"], jwt=p["jwt"])


def main():
    run_module(ARGUMENT_SPEC, logic, validate, required_if=[("state", "present", ("sources",))])


if __name__ == "__main__":
    main()
