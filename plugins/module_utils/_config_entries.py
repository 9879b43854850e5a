# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Config entries merged safely: exported-services and service-intentions.

Everything here is plain functions over plain data (validation, conversion
from module options to Consul's JSON, normalisation for comparison, merge and
removal) except apply_config_entry(), the read-compare-CAS-write loop, whose
only I/O is the ConsulClient it is given.

Shapes: module input is snake_case as Ansible hands it over (unset options are
None); entries are Consul's PascalCase JSON. "Canonical" forms are what two
entries are compared by: server-computed fields dropped, empty values dropped,
order-free lists sorted, so that Consul re-sorting sources or adding Precedence
never looks like a change.
"""

from __future__ import annotations

import copy
import json
import random
import time

from ansible_collections.seed.consul_peering.plugins.module_utils.consul_api import ConsulError, path_segment_problem
from ansible_collections.seed.consul_peering.plugins.module_utils._peering import peer_name_problem

EXPORTED_SERVICES = "exported-services"
SERVICE_INTENTIONS = "service-intentions"

DEFAULT = "default"
WILDCARD = "*"

# Filled in by the server on every write; never something a user manages.
ENTRY_COMPUTED = ("Hash", "CreateIndex", "ModifyIndex")
# Per-source fields Consul computes (Precedence, Type) or keeps only for
# pre-1.9 intentions; a non-legacy write must omit the Legacy* ones.
SOURCE_COMPUTED = ("Precedence", "Type", "LegacyID", "LegacyMeta", "LegacyCreateTime", "LegacyUpdateTime",
                   "CreateIndex", "ModifyIndex", "Hash")
# Entry-level tenancy comes from the request (?partition=, ?ns=), not from what we compare.
ENTRY_TENANCY = ("Partition", "Namespace")

CONSUMER_FIELDS = (("peer", "Peer"), ("partition", "Partition"), ("sameness_group", "SamenessGroup"))
PATH_FIELDS = (("path_exact", "PathExact"), ("path_prefix", "PathPrefix"), ("path_regex", "PathRegex"))
HEADER_MATCHES = (("present", "Present"), ("exact", "Exact"), ("prefix", "Prefix"), ("suffix", "Suffix"),
                  ("contains", "Contains"), ("regex", "Regex"))
HEADER_FLAGS = (("invert", "Invert"), ("ignore_case", "IgnoreCase"))
ACTIONS = ("allow", "deny")
# Go's net/http method names: what Consul accepts in Permissions[].HTTP.Methods.
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE")

CAS_TRIES = 10
CAS_BACKOFF = 0.05
CAS_BACKOFF_MAX = 2.0


# --- generic helpers -----------------------------------------------------------

def prune(value):
    """A deep copy without empty values (None, "", [], {}, False).

    Consul omits empty fields in its answers (json omitempty), so an input that
    spells them out must compare equal to an answer that leaves them out.
    Empty dicts inside lists are kept: they are list items, not unset fields.
    """
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            item = prune(item)
            if item is None or item is False or item == "" or item == [] or item == {}:
                continue
            out[key] = item
        return out
    if isinstance(value, list):
        return [prune(item) for item in value]
    return value


def is_set(value):
    return value is not None and value != "" and value is not False


def _sort_key(value):
    return json.dumps(value, sort_keys=True)


def without(entry, keys):
    return dict((k, v) for k, v in entry.items() if k not in keys)


def non_default(value):
    return is_set(value) and value != DEFAULT


def _wildcard_problem(value, what, whole_allowed):
    if not isinstance(value, str) or WILDCARD not in value:
        return None
    if value == WILDCARD and whole_allowed:
        return None
    if value == WILDCARD:
        return "%s: a wildcard ('*') is not supported here" % what
    return "%s: %r mixes a wildcard with other characters; use '*' alone or an exact name" % (what, value)


# --- exported-services ---------------------------------------------------------

def validate_exported_services(services, state="present", exclusive=False):
    """Problems with the module's `services` input, each naming its field; [] when fine."""
    errors = []
    if exclusive and state == "absent":
        errors.append("exclusive=true applies to state=present only; to remove the whole entry use "
                      "state=absent without services")
    seen = {}
    for i, svc in enumerate(services or []):
        where = "services[%d]" % i
        if not isinstance(svc, dict):
            errors.append("%s: must be a dictionary with name and consumers" % where)
            continue
        name = svc.get("name")
        if not is_set(name):
            errors.append("%s.name: a service name is required" % where)
        else:
            problem = _wildcard_problem(name, where + ".name", whole_allowed=True) or \
                path_segment_problem(name, where + ".name")
            if problem:
                errors.append(problem)
        namespace = svc.get("namespace")
        problem = _wildcard_problem(namespace, where + ".namespace", whole_allowed=True)
        if problem:
            errors.append(problem)
        elif namespace == WILDCARD and name != WILDCARD:
            errors.append("%s: with namespace '*' the service name must be '*' too (Consul exports "
                          "either one service or all of them)" % where)
        key = _service_key(namespace, name)
        if is_set(name):
            if key in seen:
                errors.append("%s: service %r%s is listed twice (also %s); list it once with all its consumers"
                              % (where, name, _ns_suffix(namespace), seen[key]))
            else:
                seen[key] = where
        consumers = svc.get("consumers")
        if state == "present" and not consumers:
            errors.append("%s.consumers: at least one consumer (peer, partition or sameness_group) is needed "
                          "to export a service" % where)
        for j, consumer in enumerate(consumers or []):
            errors.extend(_consumer_problems(consumer, "%s.consumers[%d]" % (where, j)))
    return errors


def _ns_suffix(namespace):
    return " in namespace %r" % namespace if non_default(namespace) else ""


def _consumer_problems(consumer, where):
    if not isinstance(consumer, dict):
        return ["%s: must be a dictionary with one of peer, partition or sameness_group" % where]
    given = [opt for opt, _field in CONSUMER_FIELDS if is_set(consumer.get(opt))]
    if not given:
        return ["%s: set exactly one of peer, partition or sameness_group (none is set)" % where]
    if len(given) > 1:
        return ["%s: set exactly one of peer, partition or sameness_group, not %s" % (where, " and ".join(given))]
    opt = given[0]
    value = consumer[opt]
    if value == WILDCARD or WILDCARD in str(value):
        return ["%s.%s: exporting to all %ss with a wildcard ('*') is not supported by Consul; "
                "name each consumer" % (where, opt, opt.replace("_", " "))]
    if opt == "peer":
        problem = peer_name_problem(value, option="%s.peer" % where)
        if problem:
            return [problem]
    return []


def exported_services_enterprise_fields(services, name=None):
    """Input that only Consul Enterprise understands, as 'field value' strings."""
    found = []
    if non_default(name):
        found.append("exported-services name %r (an admin partition)" % name)
    for i, svc in enumerate(services or []):
        if non_default(svc.get("namespace")):
            found.append("services[%d].namespace %r" % (i, svc["namespace"]))
        for j, consumer in enumerate(svc.get("consumers") or []):
            for opt in ("partition", "sameness_group"):
                if non_default(consumer.get(opt)):
                    found.append("services[%d].consumers[%d].%s %r" % (i, j, opt, consumer[opt]))
    return found


def _service_key(namespace, name):
    return (namespace or DEFAULT, name)


def _consumer_from_input(consumer):
    return prune(dict((field, consumer.get(opt)) for opt, field in CONSUMER_FIELDS))


def _consumer_key(consumer):
    return tuple(consumer.get(field) or "" for _opt, field in CONSUMER_FIELDS) + (_sort_key(consumer),)


def _services_map(services):
    """{(namespace, name): [consumer, ...]} from Consul's Services list.

    Consul accepts the same service listed twice; folding duplicates together
    keeps every consumer and gives each service one identity.
    """
    out = {}
    for svc in services or []:
        key = _service_key(svc.get("Namespace"), svc.get("Name"))
        consumers = out.setdefault(key, [])
        for consumer in svc.get("Consumers") or []:
            consumer = prune(consumer)
            if consumer not in consumers:
                consumers.append(consumer)
    return out


def _services_list(services_map):
    out = []
    for (namespace, name) in sorted(services_map):
        svc = {"Name": name}
        if namespace != DEFAULT:
            svc["Namespace"] = namespace
        svc["Consumers"] = sorted(services_map[(namespace, name)], key=_consumer_key)
        out.append(svc)
    return out


def canonical_exported_services(entry):
    """The comparable form of an exported-services entry (None stays None)."""
    if entry is None:
        return None
    out = prune(without(entry, ENTRY_COMPUTED + ENTRY_TENANCY + ("Services",)))
    out["Services"] = _services_list(_services_map(entry.get("Services")))
    return out


def merge_exported_services(current, services, name, state="present", exclusive=False):
    """The entry as it should be after applying the module input to current.

    Returns None when the entry should not exist (nothing left to export).
    current is Consul's entry or None; services is the module's validated input.
    """
    services_map = _services_map(current.get("Services")) if current else {}
    if state == "absent":
        if services is None:
            return None
        for svc in services:
            key = _service_key(svc.get("namespace"), svc["name"])
            if key not in services_map:
                continue
            drop = [_consumer_from_input(c) for c in svc.get("consumers") or []]
            if drop:
                kept = [c for c in services_map[key] if c not in drop]
                if kept:
                    services_map[key] = kept
                else:
                    del services_map[key]
            else:
                del services_map[key]
    else:
        if exclusive:
            services_map = {}
        for svc in services or []:
            key = _service_key(svc.get("namespace"), svc["name"])
            consumers = services_map.setdefault(key, [])
            for consumer in svc.get("consumers") or []:
                consumer = _consumer_from_input(consumer)
                if consumer not in consumers:
                    consumers.append(consumer)
    if not services_map:
        return None
    entry = copy.deepcopy(without(current, ENTRY_COMPUTED + ("Services",))) if current else {}
    entry["Kind"] = EXPORTED_SERVICES
    entry["Name"] = name
    entry["Services"] = _services_list(services_map)
    return entry


# --- service-intentions --------------------------------------------------------

def validate_intention_sources(sources, state="present", exclusive=False, destination=None, jwt=None):
    """Problems with the module's `sources` (and entry-level `jwt`) input, each naming its field; [] when fine."""
    errors = jwt_problems(jwt, "jwt")
    if jwt is not None and state == "absent":
        errors.append("jwt applies to state=present only")
    if exclusive and state == "absent":
        errors.append("exclusive=true applies to state=present only; to remove the whole entry use "
                      "state=absent without sources")
    if destination is not None:
        problem = _wildcard_problem(destination, "name", whole_allowed=True) or \
            path_segment_problem(destination, "name")
        if problem:
            errors.append(problem)
    seen = {}
    for i, src in enumerate(sources or []):
        where = "sources[%d]" % i
        if not isinstance(src, dict):
            errors.append("%s: must be a dictionary" % where)
            continue
        if not is_set(src.get("name")):
            errors.append("%s.name: the source service name is required ('*' for all services)" % where)
        else:
            problem = path_segment_problem(src["name"], where + ".name")
            if problem:
                errors.append(problem)
        for opt, whole in (("name", True), ("namespace", True), ("partition", False), ("peer", False),
                           ("sameness_group", False)):
            problem = _wildcard_problem(src.get(opt), "%s.%s" % (where, opt), whole_allowed=whole)
            if problem:
                errors.append(problem)
        given = [opt for opt in ("peer", "partition", "sameness_group") if is_set(src.get(opt))]
        if len(given) > 1:
            errors.append("%s: %s cannot be combined; a source is in a peer, a partition or a sameness group"
                          % (where, " and ".join(given)))
        if is_set(src.get("peer")) and WILDCARD not in src["peer"]:
            problem = peer_name_problem(src["peer"], option="%s.peer" % where)
            if problem:
                errors.append(problem)
        if is_set(src.get("namespace")) and src["namespace"] == WILDCARD and src.get("name") != WILDCARD:
            errors.append("%s: with namespace '*' the source name must be '*' too" % where)
        ident = source_identity_from_input(src)
        if is_set(src.get("name")):
            if ident in seen:
                errors.append("%s: the source %s is listed twice (also %s)"
                              % (where, describe_identity(ident), seen[ident]))
            else:
                seen[ident] = where
        if state == "present":
            errors.extend(_action_problems(src, where, destination))
    return errors


def _action_problems(src, where, destination):
    action, permissions = src.get("action"), src.get("permissions")
    errors = []
    if is_set(action) and permissions:
        errors.append("%s: set either action or permissions, not both (with permissions, each permission "
                      "has its own action)" % where)
    elif not is_set(action) and not permissions:
        errors.append("%s: set either action (allow or deny) or permissions" % where)
    if is_set(action) and action not in ACTIONS:
        errors.append("%s.action: %r is not an action; use allow or deny" % (where, action))
    if not permissions:
        return errors
    if destination == WILDCARD:
        errors.append("%s.permissions: L7 permissions cannot be set on the wildcard destination '*'" % where)
    for j, perm in enumerate(permissions):
        errors.extend(_permission_problems(perm, "%s.permissions[%d]" % (where, j)))
    return errors


def _permission_problems(perm, where):
    if not isinstance(perm, dict):
        return ["%s: must be a dictionary with action and http" % where]
    errors = []
    if perm.get("action") not in ACTIONS:
        errors.append("%s.action: %r is not an action; use allow or deny" % (where, perm.get("action")))
    errors.extend(jwt_problems(perm.get("jwt"), where + ".jwt"))
    http = perm.get("http")
    if not http or not any(is_set(v) and v != [] for v in http.values()):
        errors.append("%s.http: an HTTP match is required (a path, methods or headers)" % where)
        return errors
    paths = [opt for opt, _field in PATH_FIELDS if is_set(http.get(opt))]
    if len(paths) > 1:
        errors.append("%s.http: set at most one of path_exact, path_prefix or path_regex, not %s"
                      % (where, " and ".join(paths)))
    for opt in ("path_exact", "path_prefix"):
        value = http.get(opt)
        if is_set(value) and not str(value).startswith("/"):
            errors.append("%s.http.%s: %r must start with '/'" % (where, opt, value))
    seen = set()
    for method in http.get("methods") or []:
        upper = str(method).upper()
        if upper not in HTTP_METHODS:
            errors.append("%s.http.methods: %r is not an HTTP method (use %s)" % (where, method, ", ".join(HTTP_METHODS)))
        elif upper in seen:
            errors.append("%s.http.methods: %r is listed more than once" % (where, method))
        seen.add(upper)
    for k, header in enumerate(http.get("header") or []):
        errors.extend(_header_problems(header, "%s.http.header[%d]" % (where, k)))
    return errors


def _header_problems(header, where):
    if not isinstance(header, dict):
        return ["%s: must be a dictionary with name and one match" % where]
    errors = []
    if not is_set(header.get("name")):
        errors.append("%s.name: the header name is required" % where)
    matches = [opt for opt, _field in HEADER_MATCHES if is_set(header.get(opt))]
    if len(matches) != 1:
        errors.append("%s: set exactly one of present, exact, prefix, suffix, contains or regex, %s"
                      % (where, "not " + " and ".join(matches) if matches else "none is set"))
    elif header.get("ignore_case") and matches[0] in ("present", "regex"):
        errors.append("%s.ignore_case: only applies to exact, prefix, suffix or contains, not %s"
                      % (where, matches[0]))
    return errors


# Consul releases that introduced input fields (measured on 1.14.11, 1.19.2 and 1.22.7, docs/compatibility.md):
# an older server answers 400 "invalid config key"; the modules refuse first, naming the release.
SAMENESS_GROUPS = (1, 16, 0)
JWT_REQUIREMENTS = (1, 16, 0)
HEADER_CONTAINS_IGNORE_CASE = (1, 20, 1)


def intentions_version_needs(sources, jwt=None):
    """[(minimum version, what)] for the intentions input given; [] when any supported Consul takes it."""
    needs = []
    if jwt:
        needs.append((JWT_REQUIREMENTS, "jwt"))
    for i, src in enumerate(sources or []):
        if is_set(src.get("sameness_group")):
            needs.append((SAMENESS_GROUPS, "sources[%d].sameness_group" % i))
        for j, perm in enumerate(src.get("permissions") or []):
            if perm.get("jwt"):
                needs.append((JWT_REQUIREMENTS, "sources[%d].permissions[%d].jwt" % (i, j)))
            for k, header in enumerate(((perm.get("http") or {}).get("header")) or []):
                for opt in ("contains", "ignore_case"):
                    if is_set(header.get(opt)):
                        what = "sources[%d].permissions[%d].http.header[%d].%s" % (i, j, k, opt)
                        needs.append((HEADER_CONTAINS_IGNORE_CASE, what))
    return needs


def exported_services_version_needs(services):
    return [(SAMENESS_GROUPS, "services[%d].consumers[%d].sameness_group" % (i, j))
            for i, svc in enumerate(services or []) for j, c in enumerate(svc.get("consumers") or [])
            if is_set(c.get("sameness_group"))]


def intentions_enterprise_fields(sources, namespace=None):
    """Input that only Consul Enterprise understands, as 'field value' strings."""
    found = []
    if non_default(namespace):
        found.append("namespace %r" % namespace)
    for i, src in enumerate(sources or []):
        for opt in ("namespace", "partition", "sameness_group"):
            if non_default(src.get(opt)):
                found.append("sources[%d].%s %r" % (i, opt, src[opt]))
    return found


def source_identity(src, dest_namespace=None, dest_partition=None):
    """(peer, partition, namespace, sameness_group, name) of a source in Consul's shape.

    Resolved the way Consul does on write: a local source inherits the
    destination's namespace and partition; a peer or sameness-group source has
    no partition and defaults to namespace 'default'.
    """
    peer = src.get("Peer") or ""
    group = src.get("SamenessGroup") or ""
    if peer or group:
        partition = ""
        namespace = src.get("Namespace") or DEFAULT
    else:
        partition = src.get("Partition") or dest_partition or DEFAULT
        namespace = src.get("Namespace") or dest_namespace or DEFAULT
    return (peer, partition, namespace, group, src.get("Name") or "")


def source_identity_from_input(src, dest_namespace=None, dest_partition=None):
    return source_identity(_source_tenancy_from_input(src), dest_namespace, dest_partition)


def describe_identity(ident):
    peer, partition, namespace, group, name = ident
    where = []
    if peer:
        where.append("peer %r" % peer)
    if group:
        where.append("sameness group %r" % group)
    if partition and partition != DEFAULT:
        where.append("partition %r" % partition)
    if namespace and namespace != DEFAULT:
        where.append("namespace %r" % namespace)
    return "%r%s" % (name, " (" + ", ".join(where) + ")" if where else "")


def _source_tenancy_from_input(src):
    return prune({
        "Name": src.get("name"),
        "Peer": src.get("peer"),
        "Partition": src.get("partition"),
        "Namespace": src.get("namespace"),
        "SamenessGroup": src.get("sameness_group"),
    })


def _inferred_tenancy(src, dest_namespace, dest_partition):
    if src.get("Peer") or src.get("SamenessGroup"):
        return DEFAULT, ""
    return dest_namespace or DEFAULT, dest_partition or DEFAULT


def _drop_inferred_tenancy(src, dest_namespace, dest_partition):
    """Leave out Namespace/Partition where Consul would infer the same value.

    Consul CE rejects the keys outright, and spelling out an inherited value
    would make an unchanged source look different.
    """
    ident = source_identity(src, dest_namespace, dest_partition)
    namespace, partition = _inferred_tenancy(src, dest_namespace, dest_partition)
    src = dict(src)
    src.pop("Namespace", None)
    src.pop("Partition", None)
    if ident[2] != namespace:
        src["Namespace"] = ident[2]
    if ident[1] != partition and ident[1]:
        src["Partition"] = ident[1]
    return src


def jwt_from_input(jwt):
    """The module's jwt option as Consul's IntentionJWTRequirement ({} when it lists no provider)."""
    providers = []
    for provider in (jwt or {}).get("providers") or []:
        claims = [prune({"Path": list(c.get("path") or []), "Value": c.get("value")})
                  for c in provider.get("verify_claims") or []]
        providers.append(prune({"Name": provider.get("name"), "VerifyClaims": claims}))
    return {"Providers": providers} if providers else {}


def jwt_problems(jwt, where):
    errors = []
    names = []
    for i, provider in enumerate((jwt or {}).get("providers") or []):
        name = provider.get("name")
        if not is_set(name):
            errors.append("%s.providers[%d].name: the JWT provider's name is required" % (where, i))
        elif name in names:
            errors.append("%s.providers[%d].name: provider %r is listed twice" % (where, i, name))
        names.append(name)
        for j, claim in enumerate(provider.get("verify_claims") or []):
            if not claim.get("path"):
                errors.append("%s.providers[%d].verify_claims[%d].path: the claim's path is required (a list of "
                              "keys, e.g. [perms, role])" % (where, i, j))
    return errors


def permission_from_input(perm):
    """One module permission (snake_case) as Consul's IntentionPermission."""
    http = perm.get("http") or {}
    out_http = dict((field, http.get(opt)) for opt, field in PATH_FIELDS)
    if http.get("methods"):
        out_http["Methods"] = [str(m).upper() for m in http["methods"]]
    headers = []
    for header in http.get("header") or []:
        item = {"Name": header.get("name")}
        for opt, field in HEADER_MATCHES + HEADER_FLAGS:
            item[field] = header.get(opt)
        headers.append(prune(item))
    out_http["Header"] = headers
    out = prune({"Action": perm.get("action"), "HTTP": out_http})
    if perm.get("jwt") is not None:
        jwt = jwt_from_input(perm["jwt"])
        if jwt:
            out["JWT"] = jwt
    return out


def source_from_input(src, dest_namespace=None, dest_partition=None):
    """One module source (snake_case) as Consul's SourceIntention, ready to write."""
    out = _source_tenancy_from_input(src)
    if src.get("permissions"):
        out["Permissions"] = [permission_from_input(p) for p in src["permissions"]]
    else:
        out["Action"] = src.get("action")
    out["Description"] = src.get("description")
    return _drop_inferred_tenancy(prune(out), dest_namespace, dest_partition)


def _canonical_permission(perm):
    perm = prune(perm)
    http = perm.get("HTTP")
    if http:
        if http.get("Methods"):
            # Consul upper-cases methods on write; their order has no meaning.
            http["Methods"] = sorted(set(str(m).upper() for m in http["Methods"]))
        if http.get("Header"):
            # Header matches are ANDed: order-free.
            http["Header"] = sorted(http["Header"], key=_sort_key)
    return perm


def canonical_source(src, dest_namespace=None, dest_partition=None):
    out = prune(without(src, SOURCE_COMPUTED))
    if out.get("Permissions"):
        # Permission order is kept: Consul evaluates them in order (deny before later allows).
        out["Permissions"] = [_canonical_permission(p) for p in out["Permissions"]]
    return _drop_inferred_tenancy(out, dest_namespace, dest_partition)


def canonical_intentions(entry, dest_namespace=None, dest_partition=None):
    """The comparable form of a service-intentions entry (None stays None).

    Sources become a list sorted by identity: Consul re-sorts them by
    precedence and fills in Precedence and Type, neither of which is a change.
    """
    if entry is None:
        return None
    out = prune(without(entry, ENTRY_COMPUTED + ENTRY_TENANCY + ("Sources",)))
    sources = [canonical_source(s, dest_namespace, dest_partition) for s in entry.get("Sources") or []]
    out["Sources"] = sorted(
        sources, key=lambda s: (source_identity(s, dest_namespace, dest_partition), _sort_key(s)))
    return out


# What the module manages of a source; any other field Consul returns is kept as it is.
MANAGED_SOURCE_FIELDS = ("Name", "Peer", "Partition", "Namespace", "SamenessGroup", "Action", "Permissions",
                         "Description")


def _keep_unmanaged(existing, written, input_src, where):
    """written (a source from the input) with what the module does not manage taken from existing.

    Permission-level JWT requirements are carried over by _carry_permission_jwts: kept where that is
    unambiguous, refused where the input would drop one without saying so.
    """
    out = dict(written)
    for key, value in existing.items():
        if key not in MANAGED_SOURCE_FIELDS and key not in SOURCE_COMPUTED:
            out[key] = copy.deepcopy(value)
    perms = _carry_permission_jwts(existing, out, input_src, where)
    if perms:
        out["Permissions"] = perms
    return out


def _carry_permission_jwts(existing, written, input_src, where):
    """written's permissions, each given without jwt inheriting the JWT of the same existing permission.

    "The same" is the same action and HTTP match; each existing permission is inherited at most once.
    A JWT requirement no permission inherits would be dropped without the input saying so (the match
    or action changed, the permission is gone, the source became an L4 allow): that is refused, naming
    it, unless the input says jwt on every permission of the source (it then states them all) or the
    source becomes action deny (denying every request needs no token check).
    """
    new_perms = [dict(p) for p in written.get("Permissions") or []]
    given = input_src.get("permissions") or []
    inherited = set()
    lost = []
    for j, old in enumerate(existing.get("Permissions") or []):
        if not old.get("JWT"):
            continue
        bare = _canonical_permission(without(old, ("JWT",)))
        for i, perm in enumerate(new_perms):
            if i not in inherited and _canonical_permission(without(perm, ("JWT",))) == bare:
                inherited.add(i)
                if given[i].get("jwt") is None:
                    new_perms[i] = dict(perm, JWT=copy.deepcopy(old["JWT"]))
                break
        else:
            lost.append((j, old))
    stated = bool(given) and all(p.get("jwt") is not None for p in given)
    if lost and not stated and written.get("Action") != "deny":
        raise ConsulError(_lost_jwt_message(lost, written, where))
    return new_perms


def _lost_jwt_message(lost, written, where):
    held = "; ".join(
        "Permissions[%d].JWT (providers %s) on %s %s" % (
            j, ", ".join(repr(p.get("Name")) for p in old["JWT"].get("Providers") or []) or "none",
            old.get("Action"), json.dumps(old.get("HTTP") or {}, sort_keys=True, separators=(",", ":")))
        for j, old in lost)
    head = "%s (%s): Consul holds a JWT requirement on this source, %s, that " % (
        where, describe_identity(source_identity(written)), held)
    if written.get("Action") == "allow":
        return head + (
            "action: allow would drop: an L4 action carries no JWT. To keep a token check on every request "
            "to the destination, set the entry-level jwt; to drop the requirement, first write this source's "
            "permissions with jwt: {} on each, then action: allow; nothing was written")
    return head + (
        "this input would drop: no permission given has the same action and HTTP match to keep it. Say jwt on "
        "each of this source's permissions (its providers to keep a requirement, jwt: {} for none); "
        "nothing was written")


def merge_intentions(current, sources, name, state="present", exclusive=False, dest_namespace=None,
                     dest_partition=None, jwt=None):
    """The entry as it should be after applying the module input to current.

    Returns None when the entry should not exist: Consul refuses a
    service-intentions entry without sources, so it is deleted instead.
    jwt: the entry-level JWT requirement (module input); None keeps what Consul has.
    """
    existing = []
    for src in (current or {}).get("Sources") or []:
        src = without(src, SOURCE_COMPUTED)
        existing.append((source_identity(src, dest_namespace, dest_partition), src))
    if state == "absent":
        if sources is None:
            return None
        drop = set(source_identity_from_input(s, dest_namespace, dest_partition) for s in sources)
        result = [src for ident, src in existing if ident not in drop]
    else:
        old_by_ident = dict(existing)
        wanted = []
        for i, s_in in enumerate(sources or []):
            ident = source_identity_from_input(s_in, dest_namespace, dest_partition)
            src = source_from_input(s_in, dest_namespace, dest_partition)
            if ident in old_by_ident:
                src = _keep_unmanaged(old_by_ident[ident], src, s_in, "sources[%d]" % i)
            wanted.append((ident, src))
        if exclusive:
            result = [src for _ident, src in wanted]
        else:
            index = dict((ident, i) for i, (ident, _src) in enumerate(existing))
            merged = list(existing)
            for ident, src in wanted:
                if ident in index:
                    merged[index[ident]] = (ident, src)
                else:
                    index[ident] = len(merged)
                    merged.append((ident, src))
            result = [src for _ident, src in merged]
    if not result:
        return None
    entry = copy.deepcopy(without(current, ENTRY_COMPUTED + ("Sources",))) if current else {}
    entry["Kind"] = SERVICE_INTENTIONS
    entry["Name"] = name
    if non_default(dest_namespace) and "Namespace" not in entry:
        entry["Namespace"] = dest_namespace
    entry["Sources"] = copy.deepcopy(result)
    if jwt is not None and state == "present":
        entry.pop("JWT", None)
        if jwt_from_input(jwt):
            entry["JWT"] = jwt_from_input(jwt)
    return entry


L7_PROTOCOL_TEXT = "incompatible with L7 intentions permissions"


def explain_intentions_error(name, sources=None):
    """A translator of Consul's write errors for the service-intentions entry of name."""
    with_permissions = ["sources[%d].permissions" % i for i, s in enumerate(sources or []) if s.get("permissions")]

    def explain(err):
        text = (err.body or err.msg or "").strip()
        if L7_PROTOCOL_TEXT in text:
            return ConsulError(
                "%s: Consul refused L7 permissions for destination %r: %s. L7 permissions "
                "need the destination's protocol to be http, http2 or grpc: set Protocol in its service-defaults "
                "(or the global proxy-defaults) entry first, or use action instead of permissions."
                % (", ".join(with_permissions) or "permissions", name, text), status=err.status, body=err.body)
        return explain_write_error(SERVICE_INTENTIONS, name)(err)
    return explain


def explain_write_error(kind, name):
    def explain(err):
        if err.status in (400, 500) and err.body:
            return ConsulError("Consul rejected the %s entry %r: %s" % (kind, name, err.body.strip()),
                               status=err.status, body=err.body)
        return err
    return explain


# --- the read-compare-CAS-write loop -------------------------------------------

def read_config_entry(client, kind, name, namespace=None):
    """The entry, or None. A namespace other than default goes as ?ns= (Enterprise)."""
    return client.get_config_entry(kind, name, namespace)


def cas_delay(attempt, rand=random.random, base=CAS_BACKOFF, most=CAS_BACKOFF_MAX):
    """Seconds to wait before retry number attempt (1, 2, ...): exponential, jittered.

    The jitter (x0.5 .. x1.5) keeps writers that lost the same race from
    colliding again in lockstep.
    """
    return min(most, base * (2 ** (attempt - 1))) * (0.5 + rand())


def apply_config_entry(client, kind, name, build, canonical, check_mode=False, namespace=None,
                       tries=CAS_TRIES, sleep=time.sleep, rand=random.random, explain_error=None):
    """Read, merge, compare, and write with compare-and-set; retry when another writer wins.

    build(current) returns the entry as it should be (None: it should not
    exist); canonical(entry) returns what two entries are compared by. Nothing
    is written when the canonical forms agree. Writes use ?cas=<ModifyIndex>
    (0 to create), deletes a CAS delete; a false answer means someone else
    wrote in between, so the loop reads again and re-applies the change to
    their version. Gives up with a ConsulError after `tries` conflicts.

    Returns the module result: changed, operation (none|create|update|delete),
    entry (as Consul holds it after the write; the would-be entry in check
    mode; {} when there is none), diff (canonical before/after) and
    cas_conflicts (writes lost to other writers and retried).
    """
    header = "%s/%s" % (kind, name)
    conflicts = 0
    # A write sent whose answer was lost (Consul may have applied it): what it wrote, and from which index.
    lost = None
    for attempt in range(tries):
        if attempt:
            sleep(cas_delay(attempt, rand))
        current = read_config_entry(client, kind, name, namespace)
        desired = build(current)
        before, after = canonical(current), canonical(desired)
        result = dict(
            changed=False,
            operation="none",
            entry=current or {},
            diff=dict(before=before or {}, after=after or {}, before_header=header, after_header=header),
            cas_conflicts=conflicts,
        )
        if before == after:
            if lost and lost["after"] == before and (current or {}).get("ModifyIndex") != lost["index"]:
                # The lost write was applied: the entry moved on from where it was read, to what it wrote.
                result.update(changed=True, operation=lost["operation"],
                              diff=dict(result["diff"], before=lost["before"] or {}))
            return result
        if desired is None:
            operation = "delete"
        else:
            operation = "create" if current is None else "update"
        result.update(changed=True, operation=operation)
        if check_mode:
            result["entry"] = desired or {}
            return result
        index = (current or {}).get("ModifyIndex") or 0
        try:
            if desired is None:
                written = client.cas_delete_config_entry(kind, name, index, namespace)
            else:
                written = client.cas_put_config_entry(desired, index)
        except ConsulError as err:
            if err.maybe_applied:
                lost = dict(after=after, before=before, index=index or None, operation=operation)
                continue
            raise (explain_error(err) if explain_error else err)
        if written:
            result["entry"] = {} if desired is None else (read_config_entry(client, kind, name, namespace) or {})
            return result
        conflicts += 1
    raise ConsulError(
        "gave up on the %s entry %r after %d compare-and-set conflicts: other writers changed it between "
        "every read and write; nothing was written, run again" % (kind, name, conflicts))
