# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The service-resolver config entry: validation, conversion and comparison.

Plain functions over plain data, no I/O; the write goes through
config_entries.apply_config_entry(). Module input is snake_case (unset options
are None), entries are Consul's PascalCase JSON. The rules mirror
ServiceResolverConfigEntry.Validate() in Consul's agent/structs
(config_entry_discoverychain.go), so that a mistake is reported, naming its
option, before anything is written, plus a few of our own (a failover target
that names nothing, which Consul accepts and which then means "the same
service again").
"""

from __future__ import annotations

import copy
import re

from ansible_collections.seed.consul_peering.plugins.module_utils._config_entries import (
    DEFAULT,
    ENTRY_COMPUTED,
    ENTRY_TENANCY,
    SAMENESS_GROUPS,
    WILDCARD,
    is_set,
    non_default,
    without,
    prune,
)
from ansible_collections.seed.consul_peering.plugins.module_utils.consul_api import path_segment_problem
from ansible_collections.seed.consul_peering.plugins.module_utils._peering import peer_name_problem

SERVICE_RESOLVER = "service-resolver"

# What the module manages of a resolver; Consul's other fields are kept as they are on every write.
MANAGED_FIELDS = ("Kind", "Name", "ConnectTimeout", "RequestTimeout", "DefaultSubset", "Subsets", "Redirect",
                  "Failover", "LoadBalancer")
MANAGED_FAILOVER_FIELDS = ("Service", "ServiceSubset", "Namespace", "Datacenters", "Targets", "SamenessGroup")

# What a Go time.Duration unit is worth in nanoseconds (time.ParseDuration's table).
_UNITS = {"ns": 1, "us": 1000, "\u00b5s": 1000, "\u03bcs": 1000, "ms": 10 ** 6, "s": 10 ** 9,
          "m": 60 * 10 ** 9, "h": 3600 * 10 ** 9}
_DURATION_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)([a-z\u00b5\u03bc]+)")
# Consul's validServiceSubset: subset names end up in SNI host names.
_SUBSET_NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")

LB_POLICIES = ("random", "round_robin", "least_request", "ring_hash", "maglev")
HASH_BASED = ("ring_hash", "maglev")
HASH_FIELDS = ("header", "cookie", "query_parameter")

# (option, Consul field) in the order Consul's docs list them.
TARGET_FIELDS = (("service", "Service"), ("service_subset", "ServiceSubset"), ("namespace", "Namespace"),
                 ("partition", "Partition"), ("datacenter", "Datacenter"), ("peer", "Peer"))
REDIRECT_FIELDS = TARGET_FIELDS + (("sameness_group", "SamenessGroup"),)
FAILOVER_FIELDS = (("service", "Service"), ("service_subset", "ServiceSubset"), ("namespace", "Namespace"),
                   ("sameness_group", "SamenessGroup"))


# --- durations ----------------------------------------------------------------

def parse_duration(text):
    """Nanoseconds of a Go duration string ('5s', '1m30s', '250ms', '1.5h', '0').

    Raises ValueError with a plain-language reason, as time.ParseDuration would
    refuse it (Consul parses these fields with it).
    """
    if isinstance(text, bool) or not isinstance(text, str):
        raise ValueError("%r is not a duration string; give a number with a unit, such as 5s, 1m30s or 250ms"
                         % (text,))
    s = text.strip()
    sign = 1
    if s[:1] in ("+", "-"):
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise ValueError("%r is not a duration; give a number with a unit, such as 5s, 1m30s or 250ms" % text)
    total = 0
    pos = 0
    while pos < len(s):
        match = _DURATION_PART.match(s, pos)
        if not match or match.group(1) in ("", "."):
            if re.fullmatch(r"[0-9.]+", s[pos:]):
                raise ValueError("%r has no unit; Consul needs one, such as %ss or %sms" % (text, s[pos:], s[pos:]))
            raise ValueError("%r is not a duration; give a number with a unit, such as 5s, 1m30s or 250ms" % text)
        number, unit = match.groups()
        if unit not in _UNITS:
            raise ValueError("%r has the unknown unit %r; use ns, us, ms, s, m or h" % (text, unit))
        whole, _dot, frac = number.partition(".")
        value = int(whole or "0") * _UNITS[unit]
        if frac:
            value += int(frac) * _UNITS[unit] // (10 ** len(frac))
        total += value
        pos = match.end()
    return sign * total


def _fraction(value, precision):
    """Go's fmtFrac: value / 10**precision with the fraction's trailing zeros dropped."""
    whole, frac = divmod(value, 10 ** precision)
    digits = ("%0*d" % (precision, frac)).rstrip("0")
    return "%d.%s" % (whole, digits) if digits else "%d" % whole


def format_duration(ns):
    """Go's time.Duration.String() of ns nanoseconds: how Consul answers ('1m30s', '1.5s', '250ms')."""
    ns = int(ns)
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1000:
        return "%s%dns" % (sign, ns)
    if ns < 10 ** 6:
        return "%s%s\u00b5s" % (sign, _fraction(ns, 3))
    if ns < 10 ** 9:
        return "%s%sms" % (sign, _fraction(ns, 6))
    hours, rest = divmod(ns, 3600 * 10 ** 9)
    minutes, rest = divmod(rest, 60 * 10 ** 9)
    out = "%ss" % _fraction(rest, 9)
    if hours or minutes:
        out = "%dm%s" % (minutes, out)
    if hours:
        out = "%dh%s" % (hours, out)
    return sign + out


def _duration_problem(value, where):
    if value is None or value == "":
        return None
    try:
        ns = parse_duration(value)
    except ValueError as err:
        return "%s: %s" % (where, err)
    if ns < 0:
        return "%s: %r is negative; Consul needs a duration of 0 or more" % (where, value)
    return None


def _canonical_duration(value):
    """Durations compared by value: Consul answers '1m30s' for '90s' and omits zero."""
    if value is None or value == "":
        return None
    try:
        ns = value if isinstance(value, int) and not isinstance(value, bool) else parse_duration(value)
    except ValueError:
        return value
    return format_duration(ns) if ns else None


def _canonical_ttl(value):
    # CookieConfig.TTL has no string form in Consul's JSON: it is written as
    # '10s' (decoded leniently) but read back as integer nanoseconds.
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value or None
    try:
        return parse_duration(value) or None
    except ValueError:
        return value


# --- validation -----------------------------------------------------------------

def _given(item, fields):
    return [opt for opt, _field in fields if is_set((item or {}).get(opt))]


def _subset_names(subsets):
    return set(s.get("name") for s in subsets or [] if isinstance(s, dict) and is_set(s.get("name")))


def _target_problems(target, where, name, subsets, what="target"):
    """Consul's per-target rules (failover targets and redirect alike)."""
    given = _given(target, REDIRECT_FIELDS)
    errors = []
    if not given:
        return ["%s: the %s names nothing; set at least one of peer, service, service_subset, datacenter, "
                "namespace or partition" % (where, what)]
    pairs = (("peer", "service_subset", "a peer's service cannot be narrowed to a subset: subsets are "
                                        "defined on the peer's own resolver"),
             ("peer", "partition", "a peer's services are addressed by peer name, not partition"),
             ("peer", "datacenter", "a peer's services are addressed by peer name, not datacenter"),
             ("partition", "datacenter", "cross-datacenter and cross-partition at once is not supported"),
             ("sameness_group", "service_subset", "a sameness group cannot be combined with a subset"),
             ("sameness_group", "partition", "a sameness group cannot be combined with a partition"),
             ("sameness_group", "datacenter", "a sameness group cannot be combined with a datacenter"))
    for one, other, why in pairs:
        if one in given and other in given:
            errors.append("%s: set %s or %s, not both (%s)" % (where, one, other, why))
    peer = (target or {}).get("peer")
    if is_set(peer):
        problem = peer_name_problem(peer, option="%s.peer" % where)
        if problem:
            errors.append(problem)
    subset = (target or {}).get("service_subset")
    service = (target or {}).get("service")
    if is_set(service):
        problem = path_segment_problem(service, "%s.service" % where)
        if problem:
            errors.append(problem)
    if is_set(subset) and (not is_set(service) or service == name) and subset not in _subset_names(subsets):
        errors.append("%s.service_subset: %r is not a subset of %r; define it in subsets first"
                      % (where, subset, name))
    return errors


def _redirect_problems(redirect, name, subsets):
    where = "redirect"
    errors = _target_problems(redirect, where, name, subsets, what="redirect")
    if errors and not _given(redirect, REDIRECT_FIELDS):
        return ["redirect: the redirect is empty; set at least service, peer, datacenter, namespace, partition "
                "or sameness_group"]
    if not is_set(redirect.get("service")):
        for opt in ("service_subset", "namespace", "partition", "peer"):
            if is_set(redirect.get(opt)):
                errors.append("redirect.%s: needs redirect.service too (Consul: Redirect.%s defined without "
                              "Redirect.Service); to reach the same service on a peer, repeat its name %r"
                              % (opt, dict(REDIRECT_FIELDS)[opt], name))
    return errors


def _failover_problems(failover, i, name, subsets):
    where = "failover[%d]" % i
    errors = []
    subset = failover.get("subset") or WILDCARD
    if subset != WILDCARD and subset not in _subset_names(subsets):
        errors.append("%s.subset: %r is neither '*' nor a subset defined in subsets" % (where, subset))
    targets = failover.get("targets") or []
    datacenters = failover.get("datacenters") or []
    old_form = _given(failover, FAILOVER_FIELDS)
    if not targets and not datacenters and not old_form:
        errors.append("%s: set targets (or the older service, service_subset, namespace, datacenters or "
                      "sameness_group); a failover with none of them does nothing" % where)
    if targets:
        for opt in old_form + (["datacenters"] if datacenters else []):
            errors.append("%s: targets cannot be combined with %s; put it into each target instead" % (where, opt))
    if is_set(failover.get("sameness_group")):
        if "service_subset" in old_form:
            errors.append("%s: sameness_group cannot be combined with service_subset" % where)
        if datacenters:
            errors.append("%s: sameness_group cannot be combined with datacenters" % where)
    for j, dc in enumerate(datacenters):
        if not is_set(dc):
            errors.append("%s.datacenters[%d]: a datacenter name cannot be empty" % (where, j))
    fsub, fsvc = failover.get("service_subset"), failover.get("service")
    if is_set(fsub) and (not is_set(fsvc) or fsvc == name) and fsub not in _subset_names(subsets):
        errors.append("%s.service_subset: %r is not a subset of %r; define it in subsets first" % (where, fsub, name))
    seen = {}
    for j, target in enumerate(targets):
        twhere = "%s.targets[%d]" % (where, j)
        if not isinstance(target, dict):
            errors.append("%s: must be a dictionary" % twhere)
            continue
        errors.extend(_target_problems(target, twhere, name, subsets))
        key = tuple(target.get(opt) or "" for opt, _field in TARGET_FIELDS)
        if any(key):
            if key in seen:
                errors.append("%s: the same target as %s; Consul never tries a target twice" % (twhere, seen[key]))
            else:
                seen[key] = twhere
    return errors


def _load_balancer_problems(lb):
    errors = []
    policy = lb.get("policy") or ""
    if lb.get("ring_hash_config") and policy != "ring_hash":
        errors.append("load_balancer.ring_hash_config: only with policy ring_hash, not %r" % (policy or "unset"))
    if lb.get("least_request_config") and policy != "least_request":
        errors.append("load_balancer.least_request_config: only with policy least_request, not %r"
                      % (policy or "unset"))
    policies = lb.get("hash_policies") or []
    if policies and policy not in HASH_BASED:
        errors.append("load_balancer.hash_policies: only with a hash-based policy (ring_hash or maglev), not %r"
                      % (policy or "unset"))
    for i, hp in enumerate(policies):
        where = "load_balancer.hash_policies[%d]" % i
        field, value = hp.get("field"), hp.get("field_value")
        if hp.get("source_ip") and (is_set(field) or is_set(value)):
            errors.append("%s: source_ip cannot be combined with field or field_value" % where)
        elif is_set(field) and not is_set(value):
            errors.append("%s.field_value: required with field %r (the header, cookie or parameter name)"
                          % (where, field))
        elif is_set(value) and not is_set(field):
            errors.append("%s.field: required with field_value" % where)
        elif not hp.get("source_ip") and not is_set(field):
            errors.append("%s: set field and field_value, or source_ip" % where)
        cookie = hp.get("cookie_config")
        if cookie and prune(cookie):
            if field != "cookie":
                errors.append("%s.cookie_config: only with field cookie" % where)
            if cookie.get("session") and is_set(cookie.get("ttl")):
                errors.append("%s.cookie_config: a session cookie cannot have a ttl" % where)
            problem = _duration_problem(cookie.get("ttl"), where + ".cookie_config.ttl")
            if problem:
                errors.append(problem)
    return errors


def _removal_problems(failovers):
    """state=absent with failover: only targets to remove, each naming something."""
    errors = []
    for i, failover in enumerate(failovers):
        where = "failover[%d]" % i
        others = _given(failover, FAILOVER_FIELDS) + (["datacenters"] if failover.get("datacenters") else [])
        if others or not failover.get("targets"):
            errors.append("%s: with state=absent, failover lists the targets to remove (failover[].targets only%s)"
                          % (where, ", not " + " and ".join(others) if others else ""))
        for j, target in enumerate(failover.get("targets") or []):
            if not _given(target, TARGET_FIELDS):
                errors.append("%s.targets[%d]: the target names nothing; set at least one of peer, service, "
                              "service_subset, datacenter, namespace or partition" % (where, j))
    return errors


def resolver_version_needs(params):
    """[(minimum version, what)]: sameness groups in redirect or failover need Consul 1.16."""
    needs = []
    if is_set((params.get("redirect") or {}).get("sameness_group")):
        needs.append((SAMENESS_GROUPS, "redirect.sameness_group"))
    for i, failover in enumerate(params.get("failover") or []):
        if is_set(failover.get("sameness_group")):
            needs.append((SAMENESS_GROUPS, "failover[%d].sameness_group" % i))
    return needs


def validate_resolver(params):
    """Problems with the module's input (its params dict), each naming its option; [] when fine."""
    errors = []
    name = params.get("name")
    if not is_set(name) or WILDCARD in name:
        errors.append("name: the service name is required and cannot be a wildcard")
    else:
        problem = path_segment_problem(name, "name")
        if problem:
            errors.append(problem)
    if params.get("state") == "absent":
        return errors + _removal_problems(params.get("failover") or [])
    for opt in ("connect_timeout", "request_timeout"):
        problem = _duration_problem(params.get(opt), opt)
        if problem:
            errors.append(problem)
    subsets = params.get("subsets") or []
    seen = set()
    for i, subset in enumerate(subsets):
        sname = subset.get("name") or ""
        if len(sname) > 63 or not _SUBSET_NAME.fullmatch(sname):
            errors.append("subsets[%d].name: %r is not a valid subset name: at most 63 lowercase letters, digits "
                          "and '-', starting and ending with a letter or digit" % (i, sname))
        elif sname in seen:
            errors.append("subsets[%d].name: %r is listed twice" % (i, sname))
        seen.add(sname)
    default_subset = params.get("default_subset")
    if is_set(default_subset) and default_subset not in seen:
        errors.append("default_subset: %r is not one of the subsets" % default_subset)
    redirect = prune(params.get("redirect") or {})
    failovers = params.get("failover") or []
    if redirect and failovers:
        errors.append("redirect and failover cannot both be set (Consul refuses it: a redirected service "
                      "resolves as the redirect target, whose own resolver decides its failover)")
    if params.get("redirect") is not None:
        errors.extend(_redirect_problems(redirect, name, subsets))
    keys = {}
    for i, failover in enumerate(failovers):
        key = failover.get("subset") or WILDCARD
        if key in keys:
            errors.append("failover[%d].subset: %r already has a failover (failover[%d]); list its targets once"
                          % (i, key, keys[key]))
        keys.setdefault(key, i)
        errors.extend(_failover_problems(failover, i, name, subsets))
    if params.get("load_balancer"):
        errors.extend(_load_balancer_problems(params["load_balancer"]))
    return errors


def resolver_enterprise_fields(params):
    """Input that only Consul Enterprise understands, as 'option value' strings."""
    found = []
    if non_default(params.get("namespace")):
        found.append("namespace %r" % params["namespace"])
    redirect = params.get("redirect") or {}
    for opt in ("namespace", "partition", "sameness_group"):
        if non_default(redirect.get(opt)):
            found.append("redirect.%s %r" % (opt, redirect[opt]))
    for i, failover in enumerate(params.get("failover") or []):
        for opt in ("namespace", "sameness_group"):
            if non_default(failover.get(opt)):
                found.append("failover[%d].%s %r" % (i, opt, failover[opt]))
        for j, target in enumerate(failover.get("targets") or []):
            for opt in ("namespace", "partition"):
                if non_default(target.get(opt)):
                    found.append("failover[%d].targets[%d].%s %r" % (i, j, opt, target[opt]))
    return found


# --- conversion and comparison ---------------------------------------------------

def _fields(item, fields):
    return prune(dict((field, (item or {}).get(opt)) for opt, field in fields))


def _load_balancer(lb):
    hash_policies = []
    for hp in lb.get("hash_policies") or []:
        cookie = hp.get("cookie_config") or {}
        hash_policies.append(prune({
            "Field": hp.get("field"),
            "FieldValue": hp.get("field_value"),
            "CookieConfig": {"Session": cookie.get("session"), "TTL": cookie.get("ttl"), "Path": cookie.get("path")},
            "SourceIP": hp.get("source_ip"),
            "Terminal": hp.get("terminal"),
        }))
    ring = lb.get("ring_hash_config") or {}
    least = lb.get("least_request_config") or {}
    return prune({
        "Policy": lb.get("policy"),
        "RingHashConfig": {"MinimumRingSize": ring.get("minimum_ring_size"),
                           "MaximumRingSize": ring.get("maximum_ring_size")},
        "LeastRequestConfig": {"ChoiceCount": least.get("choice_count")},
        "HashPolicies": hash_policies,
    })


def _duration_field(value):
    if not is_set(value):
        return None
    return format_duration(parse_duration(value))


def resolver_from_input(params):
    """The module's (validated) input as Consul's service-resolver JSON, without Meta."""
    entry = {"Kind": SERVICE_RESOLVER, "Name": params["name"]}
    if non_default(params.get("namespace")):
        entry["Namespace"] = params["namespace"]
    entry["ConnectTimeout"] = _duration_field(params.get("connect_timeout"))
    entry["RequestTimeout"] = _duration_field(params.get("request_timeout"))
    entry["DefaultSubset"] = params.get("default_subset")
    entry["Subsets"] = dict((s["name"], prune({"Filter": s.get("filter"), "OnlyPassing": s.get("only_passing")}))
                            for s in params.get("subsets") or [])
    entry["Redirect"] = _fields(params.get("redirect"), REDIRECT_FIELDS)
    failover = {}
    for item in params.get("failover") or []:
        out = _fields(item, FAILOVER_FIELDS)
        if item.get("datacenters"):
            out["Datacenters"] = list(item["datacenters"])
        if item.get("targets"):
            out["Targets"] = [_fields(t, TARGET_FIELDS) for t in item["targets"]]
        failover[item.get("subset") or WILDCARD] = out
    entry["Failover"] = failover
    entry["LoadBalancer"] = _load_balancer(params.get("load_balancer") or {})
    # Subsets keep their {} (a subset without filter is valid), so prune only the top level.
    return dict((k, v) for k, v in entry.items() if v is not None and v != "" and v != {} and v != [])


# What makes a resolver do something (Consul's IsDefault() is false when any is set).
RESOLVER_SETTINGS = ("DefaultSubset", "Subsets", "Redirect", "Failover", "ConnectTimeout", "RequestTimeout",
                     "LoadBalancer", "PrioritizeByLocality")


def remove_failover_targets(current, failovers):
    """current without the given failover targets (module input); None when nothing is left.

    A subset whose failover loses its last target loses its failover; a
    resolver left with no setting at all (only Meta) is deleted, as Consul
    would treat it as no resolver anyway.
    """
    if not current:
        return None
    entry = copy.deepcopy(without(current, ENTRY_COMPUTED))
    failover_map = entry.get("Failover") or {}
    for item in failovers:
        key = item.get("subset") or WILDCARD
        existing = failover_map.get(key)
        if not existing or not existing.get("Targets"):
            continue
        drop = [_canonical_target(_fields(t, TARGET_FIELDS)) for t in item.get("targets") or []]
        kept = [t for t in existing["Targets"] if _canonical_target(t) not in drop]
        if kept:
            existing["Targets"] = kept
        elif prune(without(existing, ("Targets",))):
            del existing["Targets"]
        else:
            del failover_map[key]
    if failover_map:
        entry["Failover"] = failover_map
    else:
        entry.pop("Failover", None)
    if not any(prune({"v": entry.get(field)}) for field in RESOLVER_SETTINGS):
        return None
    return entry


def build_resolver(current, params):
    """The entry as it should be: the input, plus the fields this module does not manage (Meta) as read.

    With state absent: None (the resolver should not exist), or, when
    failover targets are given, current without them.
    """
    if params.get("state") == "absent":
        if params.get("failover"):
            return remove_failover_targets(current, params["failover"])
        return None
    entry = resolver_from_input(params)
    for field, value in (current or {}).items():
        # Fields this module does not manage (Meta, PrioritizeByLocality, ones newer than it) stay as read.
        if field not in MANAGED_FIELDS and field not in ENTRY_COMPUTED + ENTRY_TENANCY:
            entry[field] = copy.deepcopy(value)
    for key, failover in (entry.get("Failover") or {}).items():
        old = ((current or {}).get("Failover") or {}).get(key) or {}
        for field, value in old.items():
            if field not in MANAGED_FAILOVER_FIELDS:
                failover[field] = copy.deepcopy(value)
    return entry


def _canonical_target(target):
    out = prune(dict(target))
    if out.get("Namespace") == DEFAULT:
        del out["Namespace"]
    if out.get("Partition") == DEFAULT:
        del out["Partition"]
    return out


def canonical_resolver(entry):
    """The comparable form of a service-resolver entry (None stays None).

    Drops server fields and tenancy, writes durations as Consul answers them
    (so '90s' equals '1m30s' and '0s' equals unset) and keeps list order where
    it means something: failover targets and datacenters are tried in order.
    """
    if entry is None:
        return None
    out = copy.deepcopy(without(entry, ENTRY_COMPUTED + ENTRY_TENANCY))
    for field in ("ConnectTimeout", "RequestTimeout"):
        out[field] = _canonical_duration(out.get(field))
    subsets = out.get("Subsets") or {}
    out["Subsets"] = dict((k, prune(v or {})) for k, v in subsets.items())
    if out.get("Redirect"):
        out["Redirect"] = _canonical_target(out["Redirect"])
    failover = {}
    for key, item in (out.get("Failover") or {}).items():
        item = prune(item or {})
        if item.get("Targets"):
            item["Targets"] = [_canonical_target(t) for t in item["Targets"]]
        if item.get("Namespace") == DEFAULT:
            del item["Namespace"]
        failover[key] = item
    out["Failover"] = failover
    lb = out.get("LoadBalancer")
    if lb:
        for hp in lb.get("HashPolicies") or []:
            if isinstance(hp.get("CookieConfig"), dict):
                hp["CookieConfig"]["TTL"] = _canonical_ttl(hp["CookieConfig"].get("TTL"))
        out["LoadBalancer"] = prune(lb)
    subsets_kept = out.pop("Subsets")
    out = prune(out)
    if subsets_kept:
        out["Subsets"] = subsets_kept
    return out
