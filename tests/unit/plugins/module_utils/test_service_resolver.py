# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Pure service-resolver helpers: durations, validation, conversion and comparison."""

from __future__ import annotations

import pytest

from ansible_collections.seed.consul_peering.plugins.module_utils import _service_resolver as sr


def params(**kw):
    base = dict(name="frontend", namespace=None, connect_timeout=None, request_timeout=None, default_subset=None,
                subsets=None, redirect=None, failover=None, load_balancer=None, state="present")
    base.update(kw)
    return base


def target(**kw):
    base = dict(peer=None, service=None, service_subset=None, namespace=None, partition=None, datacenter=None)
    base.update(kw)
    return base


def failover(targets=None, subset="*", **kw):
    base = dict(subset=subset, targets=targets, service=None, service_subset=None, namespace=None,
                datacenters=None, sameness_group=None)
    base.update(kw)
    return base


# --- durations -------------------------------------------------------------------

@pytest.mark.parametrize("text, ns, go", [
    ("5s", 5 * 10 ** 9, "5s"),
    ("1m30s", 90 * 10 ** 9, "1m30s"),
    ("90s", 90 * 10 ** 9, "1m30s"),
    ("250ms", 250 * 10 ** 6, "250ms"),
    ("1500ms", 1500 * 10 ** 6, "1.5s"),
    ("1.5s", 1500 * 10 ** 6, "1.5s"),
    ("1h", 3600 * 10 ** 9, "1h0m0s"),
    ("2h45m", (2 * 3600 + 45 * 60) * 10 ** 9, "2h45m0s"),
    ("10us", 10 * 1000, "10\u00b5s"),
    ("10\u00b5s", 10 * 1000, "10\u00b5s"),
    ("999ns", 999, "999ns"),
    ("0", 0, "0s"),
    ("+3s", 3 * 10 ** 9, "3s"),
    ("-3s", -3 * 10 ** 9, "-3s"),
])
def test_durations_parse_and_print_like_go(text, ns, go):
    assert sr.parse_duration(text) == ns
    assert sr.format_duration(ns) == go


@pytest.mark.parametrize("text, reason", [
    ("5", "has no unit"),
    ("1.5", "has no unit"),
    ("5x", "unknown unit 'x'"),
    ("5 s", "is not a duration"),
    ("", "is not a duration"),
    ("s", "is not a duration"),
    ("1m30", "has no unit"),
    (5, "is not a duration string"),
])
def test_bad_durations_say_why(text, reason):
    with pytest.raises(ValueError) as err:
        sr.parse_duration(text)
    assert reason in str(err.value)


# --- validation ------------------------------------------------------------------

VALID = [
    params(failover=[failover([target(peer="cluster-02")])]),
    params(failover=[failover([target(peer="cluster-02", service="backend")]), ]),
    params(redirect=dict(service="frontend", peer="cluster-02")),
    params(connect_timeout="15s", request_timeout="1m30s"),
    params(subsets=[dict(name="v1", filter="Service.Meta.version == v1", only_passing=True)], default_subset="v1",
           failover=[failover([target(peer="cluster-02")], subset="v1"), failover(datacenters=["dc2"])]),
    params(failover=[failover([target(service_subset="v1")])],
           subsets=[dict(name="v1", filter=None, only_passing=False)]),
    params(failover=[failover([target(service="other", service_subset="any")])]),
    params(load_balancer=dict(policy="ring_hash", ring_hash_config=dict(minimum_ring_size=1024, maximum_ring_size=None),
                              least_request_config=None,
                              hash_policies=[dict(field="cookie", field_value="s", source_ip=None, terminal=None,
                                                  cookie_config=dict(session=None, ttl="10s", path="/"))])),
    params(state="absent", redirect=dict(), connect_timeout="5"),
    params(state="absent", failover=[failover([target(peer="cluster-02")])]),
]


@pytest.mark.parametrize("p", VALID)
def test_valid_input_has_no_problems(p):
    assert sr.validate_resolver(p) == []


INVALID = [
    (params(failover=[failover([target()])]),
     "failover[0].targets[0]: the target names nothing; set at least one of peer"),
    (params(redirect=dict(service="frontend", peer="cluster-02"), failover=[failover([target(peer="cluster-02")])]),
     "redirect and failover cannot both be set"),
    (params(connect_timeout="5"), "connect_timeout: '5' has no unit; Consul needs one, such as 5s or 5ms"),
    (params(request_timeout="soon"), "request_timeout: 'soon' is not a duration"),
    (params(connect_timeout="-1s"), "connect_timeout: '-1s' is negative"),
    (params(redirect=dict(peer="cluster-02")),
     "redirect.peer: needs redirect.service too"),
    (params(redirect=dict(service=None, peer=None)), "redirect: the redirect is empty"),
    (params(redirect=dict(service="x", peer="cluster-02", datacenter="dc2")),
     "redirect: set peer or datacenter, not both"),
    (params(redirect=dict(service="x", peer="Cluster_02")), "redirect.peer"),
    (params(failover=[failover([target(peer="cluster-02", service_subset="v1")])]),
     "failover[0].targets[0]: set peer or service_subset, not both"),
    (params(failover=[failover([target(peer="cluster-02", partition="p")])]),
     "failover[0].targets[0]: set peer or partition, not both"),
    (params(failover=[failover([target(partition="p", datacenter="dc2")])]),
     "failover[0].targets[0]: set partition or datacenter, not both"),
    (params(failover=[failover([target(service_subset="v9")])]),
     "failover[0].targets[0].service_subset: 'v9' is not a subset of 'frontend'"),
    (params(failover=[failover([target(peer="cluster-02"), target(peer="cluster-02")])]),
     "failover[0].targets[1]: the same target as failover[0].targets[0]"),
    (params(failover=[failover([target(peer="cluster-02")], service="other")]),
     "failover[0]: targets cannot be combined with service"),
    (params(failover=[failover([target(peer="cluster-02")], datacenters=["dc2"])]),
     "failover[0]: targets cannot be combined with datacenters"),
    (params(failover=[failover()]), "failover[0]: set targets"),
    (params(failover=[failover([target(peer="cluster-02")], subset="v1")]),
     "failover[0].subset: 'v1' is neither '*' nor a subset"),
    (params(failover=[failover([target(peer="a")]), failover([target(peer="b")])]),
     "failover[1].subset: '*' already has a failover (failover[0])"),
    (params(failover=[failover(datacenters=["dc2", ""])]), "failover[0].datacenters[1]: a datacenter name cannot be empty"),
    (params(subsets=[dict(name="V1")]), "subsets[0].name: 'V1' is not a valid subset name"),
    (params(subsets=[dict(name="v1"), dict(name="v1")]), "subsets[1].name: 'v1' is listed twice"),
    (params(default_subset="v1"), "default_subset: 'v1' is not one of the subsets"),
    (params(name="*"), "name: the service name is required and cannot be a wildcard"),
    (params(load_balancer=dict(policy="random", ring_hash_config=dict(minimum_ring_size=1))),
     "load_balancer.ring_hash_config: only with policy ring_hash, not 'random'"),
    (params(load_balancer=dict(policy="least_request", hash_policies=[dict(source_ip=True)])),
     "load_balancer.hash_policies: only with a hash-based policy"),
    (params(load_balancer=dict(policy="maglev", hash_policies=[dict(field="header")])),
     "load_balancer.hash_policies[0].field_value: required with field 'header'"),
    (params(load_balancer=dict(policy="maglev", hash_policies=[dict(source_ip=True, field="header", field_value="x")])),
     "load_balancer.hash_policies[0]: source_ip cannot be combined"),
    (params(load_balancer=dict(policy="maglev", hash_policies=[
        dict(field="cookie", field_value="c", cookie_config=dict(session=True, ttl="5s"))])),
     "a session cookie cannot have a ttl"),
    (params(load_balancer=dict(policy="maglev", hash_policies=[
        dict(field="cookie", field_value="c", cookie_config=dict(ttl="5"))])),
     "load_balancer.hash_policies[0].cookie_config.ttl: '5' has no unit"),
    (params(state="absent", failover=[failover([target()])]), "failover[0].targets[0]: the target names nothing"),
    (params(state="absent", failover=[failover(datacenters=["dc2"])]),
     "failover[0]: with state=absent, failover lists the targets to remove (failover[].targets only, not datacenters)"),
]


@pytest.mark.parametrize("p, problem", INVALID)
def test_invalid_input_names_the_option(p, problem):
    errors = sr.validate_resolver(p)
    assert any(e.startswith(problem) or problem in e for e in errors), errors


def test_enterprise_fields_are_listed():
    p = params(namespace="ns1", redirect=dict(service="x", partition="p1", sameness_group="default"),
               failover=[failover([target(peer="a", namespace="team")], sameness_group="g")])
    assert sr.resolver_enterprise_fields(p) == [
        "namespace 'ns1'", "redirect.partition 'p1'", "failover[0].sameness_group 'g'",
        "failover[0].targets[0].namespace 'team'"]
    assert sr.resolver_enterprise_fields(params(failover=[failover([target(peer="a")])])) == []


# --- conversion and comparison -----------------------------------------------------

def test_input_becomes_consul_json():
    p = params(connect_timeout="90s", subsets=[dict(name="v1", filter=None, only_passing=False)], default_subset="v1",
               failover=[failover([target(peer="cluster-02"), target(datacenter="dc3", service="fe")]),
                         failover(subset="v1", datacenters=["dc2"])])
    assert sr.resolver_from_input(p) == {
        "Kind": "service-resolver", "Name": "frontend", "ConnectTimeout": "1m30s", "DefaultSubset": "v1",
        "Subsets": {"v1": {}},
        "Failover": {"*": {"Targets": [{"Peer": "cluster-02"}, {"Service": "fe", "Datacenter": "dc3"}]},
                     "v1": {"Datacenters": ["dc2"]}},
    }


def test_redirect_becomes_consul_json():
    assert sr.resolver_from_input(params(redirect=dict(service="frontend", peer="cluster-02", namespace=None))) == {
        "Kind": "service-resolver", "Name": "frontend", "Redirect": {"Service": "frontend", "Peer": "cluster-02"}}


STORED = {"Kind": "service-resolver", "Name": "frontend", "ConnectTimeout": "1m30s", "RequestTimeout": "1.5s",
          "Failover": {"*": {"Targets": [{"Peer": "cluster-02"}]}},
          "LoadBalancer": {"Policy": "ring_hash", "HashPolicies": [
              {"Field": "cookie", "FieldValue": "x", "CookieConfig": {"TTL": 10000000000, "Path": "/"}}]},
          "Hash": 45592340901637742, "CreateIndex": 19, "ModifyIndex": 19}


@pytest.mark.parametrize("wanted", [
    # Durations as the user wrote them, the cookie TTL as a string, defaults spelt out.
    {"Kind": "service-resolver", "Name": "frontend", "ConnectTimeout": "90s", "RequestTimeout": "1500ms",
     "Failover": {"*": {"Targets": [{"Peer": "cluster-02", "Namespace": "default"}]}}, "Subsets": {},
     "LoadBalancer": {"Policy": "ring_hash", "HashPolicies": [
         {"Field": "cookie", "FieldValue": "x", "CookieConfig": {"TTL": "10s", "Path": "/", "Session": False}}]}},
    dict(STORED, ModifyIndex=99, Hash=1, Namespace="default", Partition="default"),
])
def test_equal_entries_compare_equal(wanted):
    assert sr.canonical_resolver(wanted) == sr.canonical_resolver(STORED)


@pytest.mark.parametrize("change", [
    {"ConnectTimeout": "1m31s"},
    {"Failover": {"*": {"Targets": [{"Peer": "cluster-03"}]}}},
    {"Failover": {"*": {"Targets": [{"Peer": "cluster-02"}, {"Peer": "cluster-03"}]}}},
    {"Failover": {"v1": {"Targets": [{"Peer": "cluster-02"}]}}},
    {"Redirect": {"Service": "frontend", "Peer": "cluster-02"}},
    {"Subsets": {"v1": {}}},
    {"LoadBalancer": {"Policy": "maglev"}},
])
def test_real_changes_are_changes(change):
    assert sr.canonical_resolver(dict(STORED, **change)) != sr.canonical_resolver(STORED)


def test_target_order_is_a_change():
    one = {"Kind": "service-resolver", "Name": "x", "Failover": {"*": {"Targets": [{"Peer": "a"}, {"Peer": "b"}]}}}
    two = {"Kind": "service-resolver", "Name": "x", "Failover": {"*": {"Targets": [{"Peer": "b"}, {"Peer": "a"}]}}}
    assert sr.canonical_resolver(one) != sr.canonical_resolver(two)


def test_zero_timeout_equals_unset():
    assert sr.canonical_resolver({"Kind": "service-resolver", "Name": "x", "ConnectTimeout": "0s"}) == \
        sr.canonical_resolver({"Kind": "service-resolver", "Name": "x"})


def test_build_keeps_meta_and_absent_is_none():
    current = dict(STORED, Meta={"owner": "team-a"})
    built = sr.build_resolver(current, params(failover=[failover([target(peer="cluster-02")])]))
    assert built["Meta"] == {"owner": "team-a"}
    assert "ModifyIndex" not in built and "Hash" not in built
    assert sr.build_resolver(current, params(state="absent")) is None
    assert sr.canonical_resolver(None) is None


# --- removing failover targets (state=absent with failover) ----------------------------

TWO = {"Kind": "service-resolver", "Name": "frontend", "Meta": {"o": "a"},
       "Failover": {"*": {"Targets": [{"Peer": "c3"}, {"Peer": "c2"}]}, "v1": {"Targets": [{"Peer": "c3"}]}},
       "Subsets": {"v1": {"Filter": "Service.Meta.v == 1"}}, "Hash": 1, "ModifyIndex": 7}


@pytest.mark.parametrize("current, remove, expected", [
    # one of two targets: the other stays, the rest of the entry too
    (TWO, [failover([target(peer="c3")])],
     dict(TWO, Failover={"*": {"Targets": [{"Peer": "c2"}]}, "v1": {"Targets": [{"Peer": "c3"}]}})),
    # the last target of a subset: its failover goes
    (TWO, [failover([target(peer="c3")], subset="v1")], dict(TWO, Failover={"*": TWO["Failover"]["*"]})),
    # a target that is not there: nothing changes
    (TWO, [failover([target(peer="c9")])], TWO),
    # every failover target gone, subsets remain: kept without Failover
    (TWO, [failover([target(peer="c3"), target(peer="c2")]), failover([target(peer="c3")], subset="v1")],
     dict((k, v) for k, v in TWO.items() if k != "Failover")),
    # only failover and Meta: nothing left, deleted
    ({"Kind": "service-resolver", "Name": "f", "Meta": {"o": "a"}, "Failover": {"*": {"Targets": [{"Peer": "c2"}]}}},
     [failover([target(peer="c2")])], None),
    # targets match by value, tenancy defaults included
    ({"Kind": "service-resolver", "Name": "f", "Failover": {"*": {"Targets": [{"Peer": "c2", "Namespace": "default"}]}}},
     [failover([target(peer="c2")])], None),
    # no resolver: stays none
    (None, [failover([target(peer="c2")])], None),
])
def test_remove_failover_targets(current, remove, expected):
    got = sr.build_resolver(current, params(state="absent", failover=remove))
    assert sr.canonical_resolver(got) == sr.canonical_resolver(expected)
    if got is not None:
        assert got.get("Meta") == current.get("Meta")
        assert "ModifyIndex" not in got
