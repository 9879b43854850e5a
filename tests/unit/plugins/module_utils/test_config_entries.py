# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Pure merge/remove/compare/validate logic of config entries, and the CAS loop with a stub client."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.seed.consul_peering.plugins.module_utils import _config_entries as ce
from ansible_collections.seed.consul_peering.plugins.module_utils.consul_api import ConsulError

from ..peering_stubs import FakeSession, Resp, ok
from ..peering_stubs import client as stub_client


def svc(name, *consumers, namespace=None):
    """Module-style service input; consumers given as ('peer', 'x') pairs."""
    return {"name": name, "namespace": namespace,
            "consumers": [dict({"peer": None, "partition": None, "sameness_group": None}, **{k: v})
                          for k, v in consumers] or None}


def es_entry(*services, **extra):
    entry = {"Kind": "exported-services", "Name": "default", "Services": list(services)}
    entry.update(extra)
    return entry


def src(name, **kw):
    """Module-style intention source input."""
    base = {"name": name, "peer": None, "partition": None, "namespace": None, "sameness_group": None,
            "action": None, "permissions": None, "description": None}
    base.update(kw)
    return base


def perm(action="allow", **http):
    full = {"path_exact": None, "path_prefix": None, "path_regex": None, "methods": None, "header": None}
    full.update(http)
    return {"action": action, "http": full}


def hdr(name, **kw):
    full = {"name": name, "present": None, "exact": None, "prefix": None, "suffix": None, "contains": None,
            "regex": None, "invert": None, "ignore_case": None}
    full.update(kw)
    return full


# --- prune ---------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    ({"a": None, "b": "", "c": [], "d": {}, "e": False, "f": 0, "g": "x"}, {"f": 0, "g": "x"}),
    ({"a": {"b": None}}, {}),
    ({"a": [{}, {"b": None}, {"c": 1}]}, {"a": [{}, {}, {"c": 1}]}),
    ({"Present": True, "Invert": False}, {"Present": True}),
])
def test_prune(value, expected):
    original = copy.deepcopy(value)
    assert ce.prune(value) == expected
    assert value == original


# --- exported-services: validation ---------------------------------------------

@pytest.mark.parametrize("services, state, exclusive, expected", [
    ([svc("web", ("peer", "cluster-02"))], "present", False, []),
    ([svc("*", ("peer", "cluster-02"), namespace="*")], "present", False, []),
    ([svc("web")], "absent", False, []),
    ([svc("web")], "present", False, ["services[0].consumers: at least one consumer"]),
    ([svc("web", ("peer", "a")), svc("api", ("peer", "*"))], "present", False,
     ["services[1].consumers[0].peer: exporting to all peers with a wildcard ('*') is not supported"]),
    ([svc("web", ("partition", "*"))], "present", False, ["services[0].consumers[0].partition: exporting to all"]),
    ([{"name": "web", "namespace": None, "consumers": [{"peer": "a", "partition": "b", "sameness_group": None}]}],
     "present", False, ["services[0].consumers[0]: set exactly one of peer, partition or sameness_group, "
                        "not peer and partition"]),
    ([{"name": "web", "namespace": None, "consumers": [{"peer": None, "partition": None, "sameness_group": None}]}],
     "present", False, ["services[0].consumers[0]: set exactly one of peer, partition or sameness_group (none is set)"]),
    ([svc("web", ("peer", "Cluster_2"))], "present", False, ["services[0].consumers[0].peer 'Cluster_2' is not a valid peer name"]),
    ([svc("web", ("peer", "a")), svc("web", ("peer", "b"))], "present", False,
     ["services[1]: service 'web' is listed twice (also services[0])"]),
    ([svc("we*", ("peer", "a"))], "present", False, ["services[0].name: 'we*' mixes a wildcard"]),
    ([svc("web", ("peer", "a"), namespace="*")], "present", False, ["services[0]: with namespace '*' the service name must be '*'"]),
    ([svc("web")], "absent", True, ["exclusive=true applies to state=present only"]),
    ([], "present", True, []),
])
def test_validate_exported_services(services, state, exclusive, expected):
    errors = ce.validate_exported_services(services, state, exclusive)
    assert len(errors) == len(expected), errors
    for err, want in zip(errors, expected):
        assert err.startswith(want), (err, want)


def test_validate_exported_services_reports_every_problem_at_once():
    errors = ce.validate_exported_services([svc("web"), svc("api", ("peer", "*"))])
    assert [e.split(":")[0] for e in errors] == ["services[0].consumers", "services[1].consumers[0].peer"]


@pytest.mark.parametrize("services, name, expected", [
    ([svc("web", ("peer", "a"))], "default", []),
    ([svc("web", ("peer", "a"), namespace="default")], None, []),
    ([svc("web", ("peer", "a"), namespace="ns1")], "default", ["services[0].namespace 'ns1'"]),
    ([svc("web", ("partition", "p2"))], "default", ["services[0].consumers[0].partition 'p2'"]),
    ([svc("web", ("partition", "default"))], "default", []),
    ([svc("web", ("sameness_group", "sg"))], "default", ["services[0].consumers[0].sameness_group 'sg'"]),
    ([], "p1", ["exported-services name 'p1' (an admin partition)"]),
])
def test_exported_services_enterprise_fields(services, name, expected):
    assert ce.exported_services_enterprise_fields(services, name) == expected


# --- exported-services: merge / remove -------------------------------------------

CURRENT = es_entry(
    {"Name": "web", "Consumers": [{"Peer": "p1"}, {"Peer": "p2"}]},
    {"Name": "api", "Consumers": [{"Peer": "p1"}]},
    Meta={"team": "a"}, CreateIndex=5, ModifyIndex=9, Hash=123,
)


def services_of(entry):
    return {(s.get("Namespace", "default"), s["Name"]): sorted(c.get("Peer") or c.get("Partition") or c.get("SamenessGroup")
                                                               for c in s["Consumers"])
            for s in entry["Services"]} if entry else None


@pytest.mark.parametrize("current, services, state, exclusive, expected", [
    # merge: a new service is added, the others stay
    (CURRENT, [svc("db", ("peer", "p3"))], "present", False,
     {("default", "web"): ["p1", "p2"], ("default", "api"): ["p1"], ("default", "db"): ["p3"]}),
    # merge: consumers are added to an existing service, never removed
    (CURRENT, [svc("api", ("peer", "p2"))], "present", False,
     {("default", "web"): ["p1", "p2"], ("default", "api"): ["p1", "p2"]}),
    # merge into nothing creates
    (None, [svc("web", ("peer", "p1"))], "present", False, {("default", "web"): ["p1"]}),
    # exclusive: the list is the whole entry
    (CURRENT, [svc("api", ("peer", "p2"))], "present", True, {("default", "api"): ["p2"]}),
    (CURRENT, [], "present", True, None),
    # absent: a whole service
    (CURRENT, [svc("web")], "absent", False, {("default", "api"): ["p1"]}),
    # absent: one consumer; the others stay
    (CURRENT, [svc("web", ("peer", "p2"))], "absent", False, {("default", "web"): ["p1"], ("default", "api"): ["p1"]}),
    # absent: the last consumer takes the service with it
    (CURRENT, [svc("api", ("peer", "p1"))], "absent", False, {("default", "web"): ["p1", "p2"]}),
    # absent: unknown service or consumer is a no-op
    (CURRENT, [svc("nope"), svc("api", ("peer", "p9"))], "absent", False,
     {("default", "web"): ["p1", "p2"], ("default", "api"): ["p1"]}),
    # absent: everything listed goes -> no entry
    (CURRENT, [svc("web"), svc("api")], "absent", False, None),
    # absent without services: the whole entry
    (CURRENT, None, "absent", False, None),
    (None, [svc("web")], "absent", False, None),
    # namespaces are part of a service's identity
    (es_entry({"Name": "web", "Namespace": "ns1", "Consumers": [{"Peer": "p1"}]}),
     [svc("web", ("peer", "p2"))], "present", False, {("ns1", "web"): ["p1"], ("default", "web"): ["p2"]}),
])
def test_merge_exported_services(current, services, state, exclusive, expected):
    before = copy.deepcopy(current)
    result = ce.merge_exported_services(current, services, "default", state, exclusive)
    assert services_of(result) == expected
    assert current == before, "merge must not modify its input"
    if result:
        assert result["Kind"] == "exported-services" and result["Name"] == "default"
        assert not set(result) & {"CreateIndex", "ModifyIndex", "Hash"}


def test_merge_exported_services_keeps_fields_it_does_not_manage():
    result = ce.merge_exported_services(CURRENT, [svc("db", ("peer", "p3"))], "default")
    assert result["Meta"] == {"team": "a"}


def test_merge_exported_services_folds_duplicates_and_empty_consumer_fields():
    current = es_entry({"Name": "web", "Consumers": [{"Peer": "p1"}]}, {"Name": "web", "Consumers": [{"Peer": "p2"}]})
    result = ce.merge_exported_services(current, [svc("web", ("peer", "p1"))], "default")
    assert result["Services"] == [{"Name": "web", "Consumers": [{"Peer": "p1"}, {"Peer": "p2"}]}]
    assert ce.canonical_exported_services(current) == ce.canonical_exported_services(result)


def test_merge_exported_services_writes_no_default_namespace():
    result = ce.merge_exported_services(None, [svc("web", ("peer", "p1"), namespace="default")], "default")
    assert result["Services"] == [{"Name": "web", "Consumers": [{"Peer": "p1"}]}]


# --- exported-services: compare --------------------------------------------------

@pytest.mark.parametrize("a, b, equal", [
    # order of services and consumers does not matter
    (es_entry({"Name": "a", "Consumers": [{"Peer": "x"}, {"Peer": "y"}]}, {"Name": "b", "Consumers": [{"Peer": "x"}]}),
     es_entry({"Name": "b", "Consumers": [{"Peer": "x"}]}, {"Name": "a", "Consumers": [{"Peer": "y"}, {"Peer": "x"}]}), True),
    # server fields do not matter
    (es_entry({"Name": "a", "Consumers": [{"Peer": "x"}]}, CreateIndex=1, ModifyIndex=2, Hash=3, Partition="default"),
     es_entry({"Name": "a", "Consumers": [{"Peer": "x"}]}), True),
    # namespace "default" is the same as none
    (es_entry({"Name": "a", "Namespace": "default", "Consumers": [{"Peer": "x"}]}),
     es_entry({"Name": "a", "Consumers": [{"Peer": "x", "Partition": ""}]}), True),
    (es_entry({"Name": "a", "Consumers": [{"Peer": "x"}]}), es_entry({"Name": "a", "Consumers": [{"Peer": "y"}]}), False),
    (es_entry({"Name": "a", "Consumers": [{"Peer": "x"}]}), es_entry({"Name": "a", "Consumers": [{"Partition": "x"}]}), False),
    (es_entry({"Name": "a", "Consumers": [{"Peer": "x"}]}), es_entry({"Name": "a", "Consumers": [{"Peer": "x"}]}, Meta={"k": "v"}), False),
    (es_entry(), es_entry(Services=None), True),
])
def test_canonical_exported_services(a, b, equal):
    assert (ce.canonical_exported_services(a) == ce.canonical_exported_services(b)) is equal


def test_canonical_exported_services_of_nothing():
    assert ce.canonical_exported_services(None) is None


# --- service-intentions: validation ----------------------------------------------

@pytest.mark.parametrize("sources, state, destination, expected", [
    ([src("web", action="allow")], "present", "api", []),
    ([src("*", action="deny")], "present", "api", []),
    ([src("web", peer="cluster-02", action="allow")], "present", "api", []),
    ([src("web")], "absent", "api", []),
    ([src("web")], "present", "api", ["sources[0]: set either action (allow or deny) or permissions"]),
    ([src("web", action="allow", permissions=[perm(path_prefix="/a")])], "present", "api",
     ["sources[0]: set either action or permissions, not both"]),
    ([src("web", action="permit")], "present", "api", ["sources[0].action: 'permit' is not an action"]),
    ([src("web", permissions=[perm("permit", path_prefix="/a")])], "present", "api",
     ["sources[0].permissions[0].action: 'permit' is not an action"]),
    ([src("web", permissions=[perm(path_prefix="/a", path_regex="/b.*")])], "present", "api",
     ["sources[0].permissions[0].http: set at most one of path_exact, path_prefix or path_regex, not path_prefix and path_regex"]),
    ([src("web", permissions=[perm(path_exact="a")])], "present", "api",
     ["sources[0].permissions[0].http.path_exact: 'a' must start with '/'"]),
    ([src("web", permissions=[perm()])], "present", "api",
     ["sources[0].permissions[0].http: an HTTP match is required"]),
    ([src("web", permissions=[{"action": "allow", "http": None}])], "present", "api",
     ["sources[0].permissions[0].http: an HTTP match is required"]),
    ([src("web", permissions=[perm(header=[hdr("x", exact="a", prefix="b")])])], "present", "api",
     ["sources[0].permissions[0].http.header[0]: set exactly one of present, exact, prefix, suffix, contains or regex, not exact and prefix"]),
    ([src("web", permissions=[perm(header=[hdr("x")])])], "present", "api",
     ["sources[0].permissions[0].http.header[0]: set exactly one of present, exact, prefix, suffix, contains or regex, none is set"]),
    ([src("web", permissions=[perm(header=[hdr("x", present=False)])])], "present", "api",
     ["sources[0].permissions[0].http.header[0]: set exactly one"]),
    ([src("web", permissions=[perm(header=[hdr("x", regex="a.*", ignore_case=True)])])], "present", "api",
     ["sources[0].permissions[0].http.header[0].ignore_case: only applies to exact, prefix, suffix or contains, not regex"]),
    ([src("web", permissions=[perm(header=[hdr(None, present=True)])])], "present", "api",
     ["sources[0].permissions[0].http.header[0].name: the header name is required"]),
    ([src("web", permissions=[perm(methods=["GET", "get"])])], "present", "api",
     ["sources[0].permissions[0].http.methods: 'get' is listed more than once"]),
    ([src("web", permissions=[perm(methods=["FETCH"])])], "present", "api",
     ["sources[0].permissions[0].http.methods: 'FETCH' is not an HTTP method"]),
    ([src("web", permissions=[perm(path_prefix="/a")])], "present", "*",
     ["sources[0].permissions: L7 permissions cannot be set on the wildcard destination"]),
    ([src("web", peer="*", action="allow")], "present", "api", ["sources[0].peer: a wildcard ('*') is not supported"]),
    ([src("web", peer="p", partition="x", action="allow")], "present", "api",
     ["sources[0]: peer and partition cannot be combined"]),
    ([src("web", peer="p", sameness_group="x", action="allow")], "present", "api",
     ["sources[0]: peer and sameness_group cannot be combined"]),
    ([src("web", action="allow"), src("web", action="deny")], "present", "api",
     ["sources[1]: the source 'web' is listed twice (also sources[0])"]),
    ([src("web", action="allow"), src("web", peer="p", action="deny")], "present", "api", []),
    ([src("we*", action="allow")], "present", "api", ["sources[0].name: 'we*' mixes a wildcard"]),
    ([src(None, action="allow")], "present", "api", ["sources[0].name: the source service name is required"]),
    ([src("web")], "absent", "a*", ["name: 'a*' mixes a wildcard"]),
    ([src("web")], "absent", None, []),
    (None, "absent", "api", []),
])
def test_validate_intention_sources(sources, state, destination, expected):
    errors = ce.validate_intention_sources(sources, state, False, destination)
    assert len(errors) == len(expected), errors
    for err, want in zip(errors, expected):
        assert err.startswith(want), (err, want)


def test_validate_intention_sources_exclusive_absent():
    assert ce.validate_intention_sources(None, "absent", True, "api")[0].startswith("exclusive=true applies")


def test_validate_intention_sources_checks_permissions_even_when_action_is_set_too():
    errors = ce.validate_intention_sources(
        [src("web", action="allow", permissions=[perm(path_prefix="x")])], "present", False, "api")
    assert len(errors) == 2 and "path_prefix: 'x' must start with '/'" in errors[1]


@pytest.mark.parametrize("sources, namespace, expected", [
    ([src("web", peer="p")], None, []),
    ([src("web", namespace="default", partition="default")], "default", []),
    ([src("web")], "ns1", ["namespace 'ns1'"]),
    ([src("web", namespace="n", partition="p", sameness_group="g")], None,
     ["sources[0].namespace 'n'", "sources[0].partition 'p'", "sources[0].sameness_group 'g'"]),
])
def test_intentions_enterprise_fields(sources, namespace, expected):
    assert ce.intentions_enterprise_fields(sources, namespace) == expected


# --- service-intentions: conversion ------------------------------------------------

def test_source_from_input_converts_snake_case_to_consul_fields():
    source = src("web", peer="cluster-02", description="frontends", permissions=[
        perm("deny", path_prefix="/admin"),
        perm("allow", path_regex="/v[0-9]+/.*", methods=["get", "POST"],
             header=[hdr("x-a", exact="1"), hdr("x-b", present=True, invert=True),
                     hdr("x-c", suffix="z", ignore_case=True), hdr("x-d", contains="q")]),
    ])
    assert ce.source_from_input(source) == {
        "Name": "web",
        "Peer": "cluster-02",
        "Description": "frontends",
        "Permissions": [
            {"Action": "deny", "HTTP": {"PathPrefix": "/admin"}},
            {"Action": "allow", "HTTP": {
                "PathRegex": "/v[0-9]+/.*",
                "Methods": ["GET", "POST"],
                "Header": [{"Name": "x-a", "Exact": "1"}, {"Name": "x-b", "Present": True, "Invert": True},
                           {"Name": "x-c", "Suffix": "z", "IgnoreCase": True}, {"Name": "x-d", "Contains": "q"}],
            }},
        ],
    }


@pytest.mark.parametrize("source, dest_ns, dest_part, expected", [
    # CE: no tenancy written at all
    (src("web", action="allow", namespace="default", partition="default"), None, None, {"Name": "web", "Action": "allow"}),
    # a local source inherits the destination's namespace: writing it again is noise
    (src("web", action="allow", namespace="ns1"), "ns1", None, {"Name": "web", "Action": "allow"}),
    # ...but 'default' under a destination in ns1 must be spelled out
    (src("web", action="allow", namespace="default"), "ns1", None, {"Name": "web", "Action": "allow", "Namespace": "default"}),
    (src("web", action="allow", partition="p2"), None, None, {"Name": "web", "Action": "allow", "Partition": "p2"}),
    # a peer source is in namespace default, whatever the destination's
    (src("web", action="allow", peer="p"), "ns1", None, {"Name": "web", "Action": "allow", "Peer": "p"}),
])
def test_source_from_input_tenancy(source, dest_ns, dest_part, expected):
    assert ce.source_from_input(source, dest_ns, dest_part) == expected


@pytest.mark.parametrize("consul_src, dest_ns, expected", [
    ({"Name": "web"}, None, ("", "default", "default", "", "web")),
    ({"Name": "web", "Namespace": "default", "Partition": "default"}, None, ("", "default", "default", "", "web")),
    ({"Name": "web"}, "ns1", ("", "default", "ns1", "", "web")),
    ({"Name": "web", "Peer": "p"}, "ns1", ("p", "", "default", "", "web")),
    ({"Name": "web", "SamenessGroup": "g", "Namespace": "n"}, None, ("", "", "n", "g", "web")),
])
def test_source_identity(consul_src, dest_ns, expected):
    assert ce.source_identity(consul_src, dest_ns) == expected


# --- service-intentions: compare ------------------------------------------------

AS_WRITTEN = {
    "Kind": "service-intentions", "Name": "api",
    "Sources": [
        {"Name": "*", "Action": "deny"},
        {"Name": "web", "Permissions": [
            {"Action": "deny", "HTTP": {"PathPrefix": "/admin"}},
            {"Action": "allow", "HTTP": {"PathRegex": "/v1/.*", "Methods": ["post", "GET"],
                                         "Header": [{"Name": "b", "Present": True, "Invert": False},
                                                    {"Name": "a", "Exact": "1"}]}}]},
        {"Name": "db", "Peer": "p1", "Action": "allow", "Description": "x"},
    ],
}

# What Consul answers for AS_WRITTEN: re-sorted by precedence, computed fields
# added, methods upper-cased, empty fields left out.
AS_READ = {
    "Kind": "service-intentions", "Name": "api",
    "Sources": [
        {"Name": "web", "Precedence": 9, "Type": "consul", "Permissions": [
            {"Action": "deny", "HTTP": {"PathPrefix": "/admin"}},
            {"Action": "allow", "HTTP": {"PathRegex": "/v1/.*", "Methods": ["POST", "GET"],
                                         "Header": [{"Name": "b", "Present": True}, {"Name": "a", "Exact": "1"}]}}]},
        {"Name": "db", "Peer": "p1", "Action": "allow", "Description": "x", "Precedence": 9, "Type": "consul"},
        {"Name": "*", "Action": "deny", "Precedence": 8, "Type": "consul", "LegacyID": "",
         "LegacyCreateTime": None, "LegacyUpdateTime": None},
    ],
    "Hash": 14857899418378414589, "CreateIndex": 36, "ModifyIndex": 57,
}


def _with_source(entry, index, **changes):
    entry = copy.deepcopy(entry)
    entry["Sources"][index].update(changes)
    return entry


@pytest.mark.parametrize("a, b, equal", [
    (AS_WRITTEN, AS_READ, True),
    # reordered header matches and methods are the same rule
    (AS_READ, _with_source(AS_READ, 0, Permissions=[
        {"Action": "deny", "HTTP": {"PathPrefix": "/admin"}},
        {"Action": "allow", "HTTP": {"PathRegex": "/v1/.*", "Methods": ["GET", "POST"],
                                     "Header": [{"Name": "a", "Exact": "1"}, {"Name": "b", "Present": True}]}}]), True),
    # the order of permissions matters
    (AS_READ, _with_source(AS_READ, 0, Permissions=list(reversed(AS_READ["Sources"][0]["Permissions"]))), False),
    (AS_READ, _with_source(AS_READ, 1, Action="deny"), False),
    (AS_READ, _with_source(AS_READ, 1, Description="y"), False),
    (AS_READ, _with_source(AS_READ, 1, Peer="p2"), False),
    (AS_READ, _with_source(AS_READ, 2, Namespace="default", Partition="default"), True),
    (AS_READ, dict(AS_READ, Meta={"k": "v"}), False),
    (AS_READ, dict(AS_READ, Partition="default", Namespace="default"), True),
])
def test_canonical_intentions(a, b, equal):
    assert (ce.canonical_intentions(a) == ce.canonical_intentions(b)) is equal


def test_canonical_intentions_drops_computed_fields():
    canon = ce.canonical_intentions(AS_READ)
    for source in canon["Sources"]:
        assert not set(source) & set(ce.SOURCE_COMPUTED)
    assert not set(canon) & set(ce.ENTRY_COMPUTED)


# --- service-intentions: merge / remove --------------------------------------------

def identities(entry):
    return sorted((s.get("Peer", ""), s["Name"], s.get("Action"), s.get("Description")) for s in entry["Sources"]) if entry else None


@pytest.mark.parametrize("sources, state, exclusive, expected", [
    # a new source is appended, the others stay
    ([src("cache", action="allow")], "present", False,
     [("", "*", "deny", None), ("", "cache", "allow", None), ("", "web", None, None), ("p1", "db", "allow", "x")]),
    # the same identity replaces (description left out is unset)
    ([src("db", peer="p1", action="deny")], "present", False,
     [("", "*", "deny", None), ("", "web", None, None), ("p1", "db", "deny", None)]),
    # peer is part of the identity: 'db' local is another source than 'db' in p1
    ([src("db", action="deny")], "present", False,
     [("", "*", "deny", None), ("", "db", "deny", None), ("", "web", None, None), ("p1", "db", "allow", "x")]),
    ([src("cache", action="allow")], "present", True, [("", "cache", "allow", None)]),
    ([], "present", True, None),
    ([src("db", peer="p1")], "absent", False, [("", "*", "deny", None), ("", "web", None, None)]),
    ([src("db")], "absent", False, [("", "*", "deny", None), ("", "web", None, None), ("p1", "db", "allow", "x")]),
    ([src("db", peer="p1"), src("web"), src("*")], "absent", False, None),
    (None, "absent", False, None),
])
def test_merge_intentions(sources, state, exclusive, expected):
    before = copy.deepcopy(AS_READ)
    result = ce.merge_intentions(AS_READ, sources, "api", state, exclusive)
    assert identities(result) == expected
    assert AS_READ == before
    if result:
        for source in result["Sources"]:
            assert not set(source) & set(ce.SOURCE_COMPUTED), source
        assert not set(result) & set(ce.ENTRY_COMPUTED)


def test_merge_intentions_is_idempotent_against_what_consul_answers():
    sources = [src("*", action="deny"), src("db", peer="p1", action="allow", description="x"),
               src("web", permissions=[perm("deny", path_prefix="/admin"),
                                       perm("allow", path_regex="/v1/.*", methods=["GET", "post"],
                                            header=[hdr("a", exact="1"), hdr("b", present=True, invert=False)])])]
    for exclusive in (False, True):
        result = ce.merge_intentions(AS_READ, sources, "api", "present", exclusive)
        assert ce.canonical_intentions(result) == ce.canonical_intentions(AS_READ)


def test_merge_intentions_creates_and_keeps_entry_fields():
    created = ce.merge_intentions(None, [src("web", action="allow")], "api", dest_namespace="ns1")
    assert created == {"Kind": "service-intentions", "Name": "api", "Namespace": "ns1",
                       "Sources": [{"Name": "web", "Action": "allow"}]}
    current = dict(AS_READ, Meta={"owner": "x"}, JWT={"Providers": [{"Name": "okta"}]})
    merged = ce.merge_intentions(current, [src("cache", action="allow")], "api")
    assert merged["Meta"] == {"owner": "x"} and merged["JWT"] == {"Providers": [{"Name": "okta"}]}


# --- error translation ------------------------------------------------------------

def test_explain_intentions_error_for_l7_on_tcp():
    text = 'service "api" has protocol "tcp", which is incompatible with L7 intentions permissions'
    err = ConsulError("Consul answered HTTP 500 to PUT /v1/config: " + text, status=500, body=text)
    out = ce.explain_intentions_error("api", [src("a", action="allow"), src("b", permissions=[perm(path_prefix="/")])])(err)
    assert out.msg.startswith("sources[1].permissions: Consul refused L7 permissions for destination 'api': " + text)
    assert "service-defaults" in out.msg and out.status == 500


def test_explain_write_error_passes_other_statuses():
    err = ConsulError("permission denied", status=403, body="Permission denied")
    assert ce.explain_intentions_error("api")(err) is err
    err = ConsulError("x", status=500, body="Sources[0] defines \"web\" more than once")
    assert ce.explain_write_error("service-intentions", "api")(err).msg == \
        "Consul rejected the service-intentions entry 'api': Sources[0] defines \"web\" more than once"


# --- the CAS loop -------------------------------------------------------------------

class StubClient:
    """Plays Consul's config-entry store: CAS semantics, optional interfering writers."""

    def __init__(self, entry=None, interfere=0, fail=None):
        self.entry = copy.deepcopy(entry)
        self.index = 10
        if self.entry:
            self.entry.update(CreateIndex=self.index, ModifyIndex=self.index)
        self.interfere = interfere  # how many writes lose to "someone else"
        self.fail = fail
        self.calls = []

    def _bump(self):
        self.index += 1
        self.entry["ModifyIndex"] = self.index

    def get_config_entry(self, kind, name, namespace=None):
        self.calls.append(("GET", kind, name))
        return copy.deepcopy(self.entry)

    def cas_put_config_entry(self, entry, modify_index):
        self.calls.append(("PUT", modify_index))
        if self.fail:
            raise self.fail
        if self.interfere:
            self.interfere -= 1
            # another writer adds its own service between our read and write
            other = {"Name": "other-%d" % self.index, "Consumers": [{"Peer": "px"}]}
            if self.entry is None:
                self.entry = {"Kind": entry["Kind"], "Name": entry["Name"], "Services": [other], "CreateIndex": self.index}
            else:
                self.entry["Services"] = self.entry.get("Services", []) + [other]
            self._bump()
            return False
        current = (self.entry or {}).get("ModifyIndex", 0)
        if int(modify_index) != current:
            return False
        created = (self.entry or {}).get("CreateIndex")
        self.entry = copy.deepcopy(entry)
        self.index += 1
        self.entry.update(CreateIndex=created or self.index, ModifyIndex=self.index)
        return True

    def cas_delete_config_entry(self, kind, name, modify_index, namespace=None):
        self.calls.append(("DELETE", modify_index))
        if self.entry and int(modify_index) != self.entry["ModifyIndex"]:
            return False
        self.entry = None
        return True

    def methods(self):
        return [c[0] for c in self.calls]


def export(services, state="present", exclusive=False):
    return lambda current: ce.merge_exported_services(current, services, "default", state, exclusive)


def run(client, build, **kw):
    sleeps = []
    result = ce.apply_config_entry(client, "exported-services", "default", build, ce.canonical_exported_services,
                                   sleep=sleeps.append, rand=lambda: 0.5, **kw)
    return result, sleeps


def test_cas_creates_with_index_zero():
    client = StubClient()
    result, sleeps = run(client, export([svc("web", ("peer", "p1"))]))
    assert client.calls[1] == ("PUT", 0)
    assert client.methods() == ["GET", "PUT", "GET"]
    assert result["changed"] and result["operation"] == "create" and result["cas_conflicts"] == 0
    assert result["entry"]["ModifyIndex"] == client.index
    assert result["diff"]["before"] == {} and result["diff"]["after"]["Services"][0]["Name"] == "web"
    assert sleeps == []


def test_cas_conflict_then_success_keeps_the_other_writers_service():
    client = StubClient(es_entry({"Name": "api", "Consumers": [{"Peer": "p1"}]}), interfere=1)
    result, sleeps = run(client, export([svc("web", ("peer", "p1"))]))
    assert client.methods() == ["GET", "PUT", "GET", "PUT", "GET"]
    assert client.calls[3] == ("PUT", 11), "the retry uses the index it read again"
    assert result["changed"] and result["cas_conflicts"] == 1
    names = sorted(s["Name"] for s in client.entry["Services"])
    assert names == ["api", "other-10", "web"]
    assert len(sleeps) == 1 and sleeps[0] == pytest.approx(ce.CAS_BACKOFF)


def test_cas_gives_up_after_bounded_conflicts():
    client = StubClient(es_entry({"Name": "api", "Consumers": [{"Peer": "p1"}]}), interfere=100)
    with pytest.raises(ConsulError) as info:
        run(client, export([svc("web", ("peer", "p1"))]), tries=4)
    assert "gave up on the exported-services entry 'default' after 4 compare-and-set conflicts" in info.value.msg
    assert client.methods().count("PUT") == 4


def test_cas_backoff_grows_jittered_and_is_capped():
    assert [ce.cas_delay(a, rand=lambda: 0.5) for a in (1, 2, 3)] == pytest.approx([0.05, 0.1, 0.2])
    assert ce.cas_delay(1, rand=lambda: 0.0) == pytest.approx(0.025)
    assert ce.cas_delay(1, rand=lambda: 0.999) == pytest.approx(0.07495)
    assert ce.cas_delay(20, rand=lambda: 0.5) == pytest.approx(ce.CAS_BACKOFF_MAX)


def test_no_write_when_equal_only_one_read():
    client = StubClient(es_entry({"Name": "web", "Consumers": [{"Peer": "p2"}, {"Peer": "p1"}]}))
    result, _sleeps = run(client, export([svc("web", ("peer", "p1"))]))
    assert client.methods() == ["GET"]
    assert not result["changed"] and result["operation"] == "none"
    assert result["entry"]["ModifyIndex"] == 10
    assert result["diff"]["before"] == result["diff"]["after"]


def test_absent_entry_stays_absent_without_writing():
    client = StubClient()
    result, _sleeps = run(client, export(None, state="absent"))
    assert client.methods() == ["GET"] and not result["changed"] and result["entry"] == {}


def test_check_mode_reports_without_writing():
    client = StubClient(es_entry({"Name": "api", "Consumers": [{"Peer": "p1"}]}))
    result, _sleeps = run(client, export([svc("web", ("peer", "p1"))]), check_mode=True)
    assert client.methods() == ["GET"]
    assert result["changed"] and result["operation"] == "update"
    assert sorted(s["Name"] for s in result["entry"]["Services"]) == ["api", "web"]
    assert "ModifyIndex" not in result["entry"]


def test_emptied_entry_is_deleted_with_cas():
    client = StubClient(es_entry({"Name": "api", "Consumers": [{"Peer": "p1"}]}))
    result, _sleeps = run(client, export([svc("api", ("peer", "p1"))], state="absent"))
    assert client.calls[1] == ("DELETE", 10)
    assert client.entry is None
    assert result["operation"] == "delete" and result["entry"] == {} and result["diff"]["after"] == {}


def test_write_errors_go_through_explain():
    text = 'service "api" has protocol "tcp", which is incompatible with L7 intentions permissions'
    client = StubClient(fail=ConsulError("HTTP 500: " + text, status=500, body=text))
    with pytest.raises(ConsulError) as info:
        run(client, export([svc("web", ("peer", "p1"))]), explain_error=ce.explain_intentions_error("api"))
    assert "Consul refused L7 permissions for destination 'api'" in info.value.msg


def test_namespace_goes_as_query_parameter():
    """The loop hands the namespace to the client, which sends it as ?ns= (read and CAS delete alike)."""
    entry = {"Kind": "service-intentions", "Name": "api", "Namespace": "ns1", "ModifyIndex": 10,
             "Sources": [{"Name": "web", "Action": "allow"}]}
    session = FakeSession(("GET", "/v1/config/service-intentions/api", ok(entry)),
                          ("DELETE", "/v1/config/service-intentions/api", Resp(200, text="true")))
    result = ce.apply_config_entry(
        stub_client(session), "service-intentions", "api",
        lambda cur: ce.merge_intentions(cur, None, "api", "absent", dest_namespace="ns1"),
        lambda e: ce.canonical_intentions(e, "ns1"), namespace="ns1", sleep=lambda s: None)
    assert session.calls[0].params == {"ns": "ns1"}
    assert session.calls[1].params == {"cas": "10", "ns": "ns1"}
    assert not session.unexpected
    assert result["operation"] == "delete"
