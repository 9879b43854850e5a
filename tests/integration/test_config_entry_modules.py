# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""exported_services and service_intentions against the real lab, driven through ansible.

The lab is shared with other tests: everything created here is named ce-*,
and the one entry every test must share (exported-services/default, the only
name Consul CE allows) is cleaned by removing our own services from it with a
compare-and-set, never by deleting it.
"""

from __future__ import annotations

import base64
import json
import time

import pytest

from conftest import consul, wait_for

PREFIX = "ce-"
ES_PATH = "/v1/config/exported-services/default"


# --- helpers ---------------------------------------------------------------------

def result_of(run, host="localhost"):
    assert run.stdout.strip(), run.output
    data = run.json()
    return data["plays"][0]["tasks"][0]["hosts"][host]


def module(ansible, name, args, check=False, diff=False):
    """One ad-hoc module call; returns its result dict."""
    cmd = ["localhost", "-m", "seed.consul_peering." + name, "-a", json.dumps(args)]
    if check:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    return result_of(ansible(cmd, json_output=True))


def export_entry(url):
    status, body = consul(url, path=ES_PATH)
    return body if status == 200 else None


def exported(url):
    """{service name: sorted consumer peers} of the exported-services entry, only ours."""
    entry = export_entry(url) or {}
    return dict((s["Name"], sorted(c.get("Peer") or c.get("Partition") or c.get("SamenessGroup") for c in s["Consumers"]))
                for s in entry.get("Services") or [] if s["Name"].startswith(PREFIX))


def cas_rewrite_exports(url, keep, tries=50):
    """Rewrite exported-services/default through CAS, keeping the services keep(svc) accepts."""
    for _attempt in range(tries):
        entry = export_entry(url)
        if entry is None:
            return
        services = [s for s in entry.get("Services") or [] if keep(s)]
        if services == (entry.get("Services") or []):
            return
        index = entry["ModifyIndex"]
        if services:
            body = dict((k, v) for k, v in entry.items() if k not in ("Hash", "CreateIndex", "ModifyIndex"))
            body["Services"] = services
            status, ok = consul(url, "PUT", "/v1/config?cas=%d" % index, body)
        else:
            status, ok = consul(url, "DELETE", ES_PATH + "?cas=%d" % index)
        assert status == 200, ok
        if ok is True:
            return
        time.sleep(0.05)
    raise AssertionError("could not clean exported-services/default")


def remove_our_exports(url):
    cas_rewrite_exports(url, lambda s: not s["Name"].startswith(PREFIX))


def restore_exports(url, services):
    """Merge services (other tests' exports) back into the entry."""
    for _attempt in range(50):
        entry = export_entry(url)
        have = dict((s["Name"], s) for s in (entry or {}).get("Services") or [])
        missing = [s for s in services if s["Name"] not in have]
        if not missing:
            return
        body = {"Kind": "exported-services", "Name": "default",
                "Services": list(have.values()) + missing}
        status, ok = consul(url, "PUT", "/v1/config?cas=%d" % ((entry or {}).get("ModifyIndex") or 0), body)
        if status == 200 and ok is True:
            return
        time.sleep(0.05)


def delete_entry(url, kind, name):
    consul(url, "DELETE", "/v1/config/%s/%s" % (kind, name))


def intentions(url, name):
    status, body = consul(url, path="/v1/config/service-intentions/" + name)
    return body if status == 200 else None


def sources_of(url, name):
    entry = intentions(url, name) or {}
    return dict(((s.get("Peer", ""), s["Name"]), s.get("Action") or s.get("Permissions"))
                for s in entry.get("Sources") or [])


def svc(name, *peers):
    return {"name": name, "consumers": [{"peer": p} for p in peers]}


@pytest.fixture
def acceptor(lab):
    url = lab["ACCEPTOR_URL"]
    remove_our_exports(url)
    yield url
    remove_our_exports(url)


@pytest.fixture
def intention_names(lab):
    """Destination names a test uses; their entries (and service-defaults) are removed before and after."""
    url = lab["ACCEPTOR_URL"]
    names = []

    def clean():
        for name in names:
            delete_entry(url, "service-intentions", name)
            delete_entry(url, "service-defaults", name)

    def use(*wanted):
        names.extend(PREFIX + w for w in wanted)
        clean()
        return [PREFIX + w for w in wanted]

    yield use
    clean()


# --- exported_services -----------------------------------------------------------

def test_two_calls_exporting_different_services_leave_both(ansible, acceptor):
    first = module(ansible, "exported_services", {"url": acceptor, "services": [svc("ce-web", "ce-peer-a")]})
    assert first["changed"] and first.get("failed") is not True, first
    second = module(ansible, "exported_services", {"url": acceptor, "services": [svc("ce-api", "ce-peer-b")]})
    assert second["changed"], second
    assert exported(acceptor) == {"ce-web": ["ce-peer-a"], "ce-api": ["ce-peer-b"]}
    names = [s["Name"] for s in second["entry"]["Services"]]
    assert "ce-web" in names and "ce-api" in names
    assert second["entry"]["ModifyIndex"] == export_entry(acceptor)["ModifyIndex"]


def test_same_service_from_two_calls_merges_consumers(ansible, acceptor):
    module(ansible, "exported_services", {"url": acceptor, "services": [svc("ce-web", "ce-peer-a")]})
    module(ansible, "exported_services", {"url": acceptor, "services": [svc("ce-web", "ce-peer-b")]})
    assert exported(acceptor) == {"ce-web": ["ce-peer-a", "ce-peer-b"]}


def test_exclusive_replaces_the_whole_entry(ansible, acceptor):
    others = [s for s in (export_entry(acceptor) or {}).get("Services") or [] if not s["Name"].startswith(PREFIX)]
    try:
        services = [svc("ce-web", "ce-peer-a"), svc("ce-api", "ce-peer-a")]
        module(ansible, "exported_services", {"url": acceptor, "services": services})
        res = module(ansible, "exported_services", {"url": acceptor, "exclusive": True,
                                                    "services": [svc("ce-db", "ce-peer-c")]})
        assert res["changed"] and res["operation"] == "update", res
        entry = export_entry(acceptor)
        assert entry["Services"] == [{"Name": "ce-db", "Consumers": [{"Peer": "ce-peer-c"}]}]
        again = module(ansible, "exported_services", {"url": acceptor, "exclusive": True,
                                                      "services": [svc("ce-db", "ce-peer-c")]})
        assert not again["changed"], again
    finally:
        # Other tests on the shared lab may have had exports here: give them back.
        restore_exports(acceptor, others)


def test_removing_one_consumer_keeps_the_others(ansible, acceptor):
    services = [svc("ce-web", "ce-peer-a", "ce-peer-b", "ce-peer-c"), svc("ce-api", "ce-peer-b")]
    module(ansible, "exported_services", {"url": acceptor, "services": services})
    res = module(ansible, "exported_services", {"url": acceptor, "state": "absent",
                                                "services": [svc("ce-web", "ce-peer-b"), svc("ce-api", "ce-peer-b")]})
    assert res["changed"], res
    # ce-api lost its only consumer, so it is no longer exported at all
    assert exported(acceptor) == {"ce-web": ["ce-peer-a", "ce-peer-c"]}
    res = module(ansible, "exported_services", {"url": acceptor, "state": "absent", "services": [{"name": "ce-web"}]})
    assert res["changed"] and exported(acceptor) == {}


def test_second_identical_call_writes_nothing(ansible, acceptor, counting_proxy):
    proxy = counting_proxy(acceptor)
    args = {"url": proxy.url, "services": [svc("ce-web", "ce-peer-b", "ce-peer-a")]}
    assert module(ansible, "exported_services", args)["changed"]
    before = export_entry(acceptor)["ModifyIndex"]
    proxy.reset()
    # the same services, consumers in another order
    args["services"] = [svc("ce-web", "ce-peer-a", "ce-peer-b")]
    res = module(ansible, "exported_services", args)
    assert not res["changed"] and res["operation"] == "none", res
    print("requests for an idempotent exported_services call: %s" % dict(proxy.counts))
    assert dict(proxy.counts) == {("GET", ES_PATH): 1}
    assert export_entry(acceptor)["ModifyIndex"] == before


def test_check_mode_writes_nothing(ansible, acceptor, counting_proxy):
    proxy = counting_proxy(acceptor)
    res = module(ansible, "exported_services", {"url": proxy.url, "services": [svc("ce-web", "ce-peer-a")]}, check=True)
    assert res["changed"] and res["operation"] in ("create", "update"), res
    assert any(s["Name"] == "ce-web" for s in res["entry"]["Services"])
    assert proxy.writes() == 0
    assert exported(acceptor) == {}


def test_diff_shows_before_and_after(ansible, acceptor):
    module(ansible, "exported_services", {"url": acceptor, "services": [svc("ce-web", "ce-peer-a")]})
    res = module(ansible, "exported_services", {"url": acceptor, "services": [svc("ce-web", "ce-peer-b")]}, diff=True)
    before = [s for s in res["diff"]["before"]["Services"] if s["Name"] == "ce-web"]
    after = [s for s in res["diff"]["after"]["Services"] if s["Name"] == "ce-web"]
    assert before == [{"Name": "ce-web", "Consumers": [{"Peer": "ce-peer-a"}]}]
    assert after == [{"Name": "ce-web", "Consumers": [{"Peer": "ce-peer-a"}, {"Peer": "ce-peer-b"}]}]
    assert "ModifyIndex" not in res["diff"]["before"]
    # and as a human sees it
    text = ansible(["localhost", "-m", "seed.consul_peering.exported_services", "--diff", "-a",
                    json.dumps({"url": acceptor, "services": [svc("ce-web", "ce-peer-c")]})])
    assert text.rc == 0, text.output
    assert "--- before: exported-services/default" in text.stdout
    assert '+                    "Peer": "ce-peer-c"' in text.stdout


@pytest.mark.parametrize("services, message", [
    ([{"name": "ce-web", "consumers": [{"peer": "ce-peer-a"}, {"peer": "a", "partition": "b"}]}],
     "services[0].consumers[1]: set exactly one of peer, partition or sameness_group, not peer and partition"),
    ([{"name": "ce-web", "consumers": [{"peer": "ce-peer-a"}]}, {"name": "ce-api", "consumers": [{}]}],
     "services[1].consumers[0]: set exactly one of peer, partition or sameness_group (none is set)"),
    ([{"name": "ce-web", "consumers": [{"peer": "*"}]}],
     "services[0].consumers[0].peer: exporting to all peers with a wildcard ('*') is not supported by Consul"),
    ([{"name": "ce-web"}], "services[0].consumers: at least one consumer"),
    ([{"name": "ce-web", "consumers": [{"peer": "Peer_A"}]}], "services[0].consumers[0].peer 'Peer_A' is not a valid peer name"),
])
def test_exported_services_bad_input_is_rejected_before_any_request(ansible, acceptor, counting_proxy, services, message):
    proxy = counting_proxy(acceptor)
    res = module(ansible, "exported_services", {"url": proxy.url, "services": services})
    assert res.get("failed") and message in res["msg"], res
    assert proxy.total() == 0
    assert exported(acceptor) == {}


@pytest.mark.parametrize("args, message", [
    ({"services": [{"name": "ce-web", "namespace": "team-a", "consumers": [{"peer": "ce-peer-a"}]}]},
     "services[0].namespace 'team-a' needs Consul Enterprise"),
    ({"services": [{"name": "ce-web", "consumers": [{"partition": "part-2"}]}]},
     "services[0].consumers[0].partition 'part-2' needs Consul Enterprise"),
    ({"services": [{"name": "ce-web", "consumers": [{"sameness_group": "sg"}]}]},
     "services[0].consumers[0].sameness_group 'sg' needs Consul Enterprise"),
    ({"name": "part-2", "services": [{"name": "ce-web", "consumers": [{"peer": "ce-peer-a"}]}]},
     "exported-services name 'part-2' (an admin partition) needs Consul Enterprise"),
])
def test_enterprise_input_on_ce_fails_without_writing(ansible, acceptor, counting_proxy, args, message):
    proxy = counting_proxy(acceptor)
    res = module(ansible, "exported_services", dict(args, url=proxy.url))
    assert res.get("failed") and message in res["msg"], res
    assert proxy.writes() == 0
    assert exported(acceptor) == {}


def write_playbook(tmp_path, hosts, task):
    inventory = tmp_path / "inventory.ini"
    inventory.write_text("[writers]\n" + "".join("%s ansible_connection=local\n" % h for h in hosts))
    playbook = tmp_path / "playbook.yml"
    playbook.write_text(json.dumps([{"hosts": "writers", "gather_facts": False, "tasks": [task]}], indent=2))
    return str(playbook), str(inventory)


def run_concurrently(ansible, tmp_path, hosts, task, url):
    playbook, inventory = write_playbook(tmp_path, hosts, task)
    started = time.monotonic()
    run = ansible([playbook, "-i", inventory, "-f", str(len(hosts)), "-e", json.dumps({"consul_url": url})],
                  playbook=True, json_output=True)
    took = time.monotonic() - started
    data = run.json()
    results = data["plays"][0]["tasks"][0]["hosts"]
    assert len(results) == len(hosts), run.output
    failed = dict((h, r.get("msg")) for h, r in results.items() if r.get("failed"))
    assert not failed, failed
    return results, took


HOSTS = ["w%02d" % i for i in range(1, 21)]


def test_20_concurrent_writers_each_add_a_service(ansible, acceptor, tmp_path):
    task = {"seed.consul_peering.exported_services": {
        "url": "{{ consul_url }}",
        "services": [{"name": "ce-conc-{{ inventory_hostname }}", "consumers": [{"peer": "ce-peer-a"}]}]}}
    results, took = run_concurrently(ansible, tmp_path, HOSTS, task, acceptor)
    conflicts = sum(r["cas_conflicts"] for r in results.values())
    present = exported(acceptor)
    print("exported_services: %d/%d services present, %d CAS conflicts retried, max per writer %d, %.1fs"
          % (len(present), len(HOSTS), conflicts, max(r["cas_conflicts"] for r in results.values()), took))
    assert present == dict(("ce-conc-" + h, ["ce-peer-a"]) for h in HOSTS)
    assert all(r["changed"] for r in results.values())


def test_20_concurrent_writers_each_add_an_intention_source(ansible, lab, intention_names, tmp_path):
    url = lab["ACCEPTOR_URL"]
    (dest,) = intention_names("conc-api")
    task = {"seed.consul_peering.service_intentions": {
        "url": "{{ consul_url }}", "name": dest,
        "sources": [{"name": "ce-caller-{{ inventory_hostname }}", "action": "allow"}]}}
    results, took = run_concurrently(ansible, tmp_path, HOSTS, task, url)
    conflicts = sum(r["cas_conflicts"] for r in results.values())
    present = sources_of(url, dest)
    print("service_intentions: %d/%d sources present, %d CAS conflicts retried, max per writer %d, %.1fs"
          % (len(present), len(HOSTS), conflicts, max(r["cas_conflicts"] for r in results.values()), took))
    assert present == dict((("", "ce-caller-" + h), "allow") for h in HOSTS)


# --- service_intentions -----------------------------------------------------------

def test_intentions_merge_exclusive_and_absent(ansible, lab, intention_names):
    url = lab["ACCEPTOR_URL"]
    (dest,) = intention_names("api")
    res = module(ansible, "service_intentions", {"url": url, "name": dest, "sources": [
        {"name": "ce-web", "peer": "ce-peer-a", "action": "allow", "description": "frontends"},
        {"name": "*", "action": "deny"}]})
    assert res["changed"] and res["operation"] == "create", res
    res = module(ansible, "service_intentions", {"url": url, "destination": dest, "sources": [
        {"name": "ce-web", "action": "allow"}]})
    assert res["changed"] and res["operation"] == "update"
    assert sources_of(url, dest) == {("ce-peer-a", "ce-web"): "allow", ("", "*"): "deny", ("", "ce-web"): "allow"}
    # the same identity is replaced, not duplicated
    module(ansible, "service_intentions", {"url": url, "name": dest, "sources": [
        {"name": "ce-web", "peer": "ce-peer-a", "action": "deny"}]})
    assert sources_of(url, dest)[("ce-peer-a", "ce-web")] == "deny"
    res = module(ansible, "service_intentions", {"url": url, "name": dest, "state": "absent", "sources": [
        {"name": "ce-web", "peer": "ce-peer-a"}]})
    assert res["changed"] and sources_of(url, dest) == {("", "*"): "deny", ("", "ce-web"): "allow"}
    res = module(ansible, "service_intentions", {"url": url, "name": dest, "exclusive": True, "sources": [
        {"name": "ce-db", "action": "allow"}]})
    assert res["changed"] and sources_of(url, dest) == {("", "ce-db"): "allow"}
    # removing the last source deletes the entry (Consul refuses an entry without sources)
    res = module(ansible, "service_intentions", {"url": url, "name": dest, "state": "absent", "sources": [{"name": "ce-db"}]})
    assert res["changed"] and res["operation"] == "delete" and res["entry"] == {}
    assert intentions(url, dest) is None
    res = module(ansible, "service_intentions", {"url": url, "name": dest, "state": "absent"})
    assert not res["changed"]


def test_intentions_second_run_is_ok_despite_consul_reordering(ansible, lab, intention_names, counting_proxy):
    url = lab["ACCEPTOR_URL"]
    (dest,) = intention_names("order-api")
    proxy = counting_proxy(url)
    # Consul stores these re-sorted by precedence (the wildcard last) and adds Precedence and Type.
    args = {"url": proxy.url, "name": dest, "sources": [
        {"name": "*", "action": "deny"},
        {"name": "ce-web", "action": "allow", "description": "web"},
        {"name": "ce-db", "peer": "ce-peer-a", "action": "allow"}]}
    assert module(ansible, "service_intentions", args)["changed"]
    stored = intentions(url, dest)
    assert [s["Name"] for s in stored["Sources"]][-1] == "*" and "Precedence" in stored["Sources"][0]
    proxy.reset()
    res = module(ansible, "service_intentions", args)
    assert not res["changed"], res
    print("requests for an idempotent service_intentions call: %s" % dict(proxy.counts))
    assert dict(proxy.counts) == {("GET", "/v1/config/service-intentions/" + dest): 1}
    assert intentions(url, dest)["ModifyIndex"] == stored["ModifyIndex"]


L7_SOURCES = [{
    "name": "ce-web", "peer": "ce-peer-a", "description": "L7 from the peer",
    "permissions": [
        {"action": "deny", "http": {"path_prefix": "/admin"}},
        {"action": "allow", "http": {
            "path_regex": "^/v[0-9]+/orders(/.*)?$",
            "methods": ["post", "GET"],
            "header": [
                {"name": "x-tenant", "present": True},
                {"name": "x-debug", "exact": "1", "invert": True},
                {"name": "x-env", "regex": "^(prod|stage)$"},
                {"name": "x-region", "prefix": "eu-", "ignore_case": True},
            ]}},
    ]},
    {"name": "ce-batch", "action": "deny"},
]


def test_l7_permissions_round_trip_without_diff(ansible, lab, intention_names):
    url = lab["ACCEPTOR_URL"]
    (dest,) = intention_names("l7-api")
    status, body = consul(url, "PUT", "/v1/config", {"Kind": "service-defaults", "Name": dest, "Protocol": "http"})
    assert status == 200 and body is True, body
    first = module(ansible, "service_intentions", {"url": url, "name": dest, "sources": L7_SOURCES}, diff=True)
    assert first["changed"] and first["operation"] == "create", first
    stored = intentions(url, dest)
    web = [s for s in stored["Sources"] if s["Name"] == "ce-web"][0]
    allow = web["Permissions"][1]["HTTP"]
    assert allow["PathRegex"] == "^/v[0-9]+/orders(/.*)?$"
    assert allow["Methods"] == ["POST", "GET"]  # Consul upper-cases
    assert {"Name": "x-debug", "Exact": "1", "Invert": True} in allow["Header"]
    assert {"Name": "x-region", "Prefix": "eu-", "IgnoreCase": True} in allow["Header"]
    assert web["Permissions"][0] == {"Action": "deny", "HTTP": {"PathPrefix": "/admin"}}
    second = module(ansible, "service_intentions", {"url": url, "name": dest, "sources": L7_SOURCES}, diff=True)
    assert not second["changed"], second
    assert second["diff"]["before"] == second["diff"]["after"]
    assert intentions(url, dest)["ModifyIndex"] == stored["ModifyIndex"]


def test_l7_permissions_on_a_tcp_destination_fail_clearly(ansible, lab, intention_names):
    url = lab["ACCEPTOR_URL"]
    (dest,) = intention_names("tcp-api")
    res = module(ansible, "service_intentions", {"url": url, "name": dest, "sources": [
        {"name": "ce-batch", "action": "allow"}, L7_SOURCES[0]]})
    assert res.get("failed"), res
    print("L7 on tcp: %s" % res["msg"])
    assert res["msg"].startswith("sources[1].permissions: Consul refused L7 permissions for destination '%s'" % dest)
    assert 'has protocol "tcp", which is incompatible with L7 intentions permissions' in res["msg"]
    assert "service-defaults" in res["msg"]
    assert intentions(url, dest) is None


def test_intentions_check_mode_writes_nothing(ansible, lab, intention_names, counting_proxy):
    url = lab["ACCEPTOR_URL"]
    (dest,) = intention_names("check-api")
    proxy = counting_proxy(url)
    res = module(ansible, "service_intentions", {"url": proxy.url, "name": dest, "sources": [
        {"name": "ce-web", "action": "allow"}]}, check=True, diff=True)
    assert res["changed"] and res["operation"] == "create", res
    assert res["entry"]["Sources"] == [{"Name": "ce-web", "Action": "allow"}]
    assert res["diff"]["before"] == {} and res["diff"]["after"]["Sources"] == [{"Name": "ce-web", "Action": "allow"}]
    assert proxy.writes() == 0
    assert intentions(url, dest) is None


@pytest.mark.parametrize("sources, message", [
    ([{"name": "ce-web"}], "sources[0]: set either action (allow or deny) or permissions"),
    ([{"name": "ce-web", "action": "allow", "permissions": [{"action": "allow", "http": {"path_prefix": "/a"}}]}],
     "sources[0]: set either action or permissions, not both"),
    ([{"name": "ce-web", "action": "permit"}], "value of action must be one of: allow, deny, got: permit"),
    ([{"name": "ce-a", "action": "allow"},
      {"name": "ce-web", "permissions": [{"action": "allow", "http": {"path_exact": "/a", "path_prefix": "/b"}}]}],
     "sources[1].permissions[0].http: set at most one of path_exact, path_prefix or path_regex"),
    ([{"name": "ce-web", "permissions": [{"action": "allow", "http": {"header": [{"name": "x", "exact": "a", "suffix": "b"}]}}]}],
     "sources[0].permissions[0].http.header[0]: set exactly one of present, exact, prefix, suffix, contains or regex, not exact and suffix"),
    ([{"name": "ce-web", "peer": "*", "action": "allow"}], "sources[0].peer: a wildcard ('*') is not supported"),
    ([{"name": "ce-web", "action": "allow"}, {"name": "ce-web", "action": "deny"}],
     "sources[1]: the source 'ce-web' is listed twice (also sources[0])"),
])
def test_intentions_bad_input_is_rejected_before_any_request(ansible, lab, intention_names, counting_proxy, sources, message):
    url = lab["ACCEPTOR_URL"]
    (dest,) = intention_names("bad-api")
    proxy = counting_proxy(url)
    res = module(ansible, "service_intentions", {"url": proxy.url, "name": dest, "sources": sources})
    assert res.get("failed") and message in res["msg"], res
    assert proxy.total() == 0
    assert intentions(url, dest) is None


@pytest.mark.parametrize("args, message", [
    ({"namespace": "team-a", "sources": [{"name": "ce-web", "action": "allow"}]}, "namespace 'team-a' needs Consul Enterprise"),
    ({"sources": [{"name": "ce-web", "partition": "p2", "action": "allow"}]}, "sources[0].partition 'p2' needs Consul Enterprise"),
    ({"sources": [{"name": "ce-web", "sameness_group": "sg", "action": "allow"}]},
     "sources[0].sameness_group 'sg' needs Consul Enterprise"),
])
def test_intentions_enterprise_input_on_ce_fails_without_writing(ansible, lab, intention_names, counting_proxy, args, message):
    url = lab["ACCEPTOR_URL"]
    (dest,) = intention_names("ent-api")
    proxy = counting_proxy(url)
    res = module(ansible, "service_intentions", dict(args, url=proxy.url, name=dest))
    assert res.get("failed") and message in res["msg"], res
    assert proxy.writes() == 0
    assert intentions(url, dest) is None


# --- end to end: an export is seen by the peer --------------------------------------

ACCEPTOR_PEER = "ce-cluster-02"   # how cluster1 (acceptor) knows cluster2
DIALER_PEER = "ce-cluster-01"     # how cluster2 (dialer) knows cluster1
SERVICE = "ce-billing"


def peering_state(url, name):
    status, body = consul(url, path="/v1/peering/" + name)
    return body["State"] if status == 200 else status


def drop_peering(url, name):
    consul(url, "DELETE", "/v1/peering/" + name)
    wait_for(lambda: peering_state(url, name) == 404, timeout=60)


@pytest.fixture
def active_peering(lab):
    """A peering between the clusters made directly over HTTP (not with the collection's modules)."""
    acceptor, dialer = lab["ACCEPTOR_URL"], lab["DIALER_URL"]

    def clean():
        drop_peering(dialer, DIALER_PEER)
        drop_peering(acceptor, ACCEPTOR_PEER)
        consul(acceptor, "PUT", "/v1/agent/service/deregister/" + SERVICE)

    def both_active():
        return peering_state(acceptor, ACCEPTOR_PEER) == "ACTIVE" == peering_state(dialer, DIALER_PEER)

    # Other tests on the shared lab may delete every peering while this one is
    # being made; start over a few times rather than fail on their cleanup.
    for _attempt in range(3):
        clean()
        status, body = consul(acceptor, "POST", "/v1/peering/token", {"PeerName": ACCEPTOR_PEER})
        assert status == 200, body
        token = body["PeeringToken"]
        assert json.loads(base64.b64decode(token))["ServerAddresses"]
        status, body = consul(dialer, "POST", "/v1/peering/establish", {"PeerName": DIALER_PEER, "PeeringToken": token})
        if status == 200 and wait_for(both_active, timeout=20):
            break
    assert both_active(), (peering_state(acceptor, ACCEPTOR_PEER), peering_state(dialer, DIALER_PEER))
    yield acceptor, dialer
    clean()


def test_exported_service_is_seen_by_the_peer(ansible, acceptor, active_peering):
    acceptor_url, dialer = active_peering
    status, body = consul(acceptor_url, "PUT", "/v1/agent/service/register", {"Name": SERVICE, "Port": 9090})
    assert status == 200, body

    def imported():
        status, body = consul(dialer, path="/v1/health/service/%s?peer=%s" % (SERVICE, DIALER_PEER))
        return body if status == 200 and body else None

    assert imported() is None, "not exported yet, so the peer must not see it"
    res = module(ansible, "exported_services", {"url": acceptor_url, "services": [svc(SERVICE, ACCEPTOR_PEER)]})
    assert res["changed"], res
    seen = wait_for(imported, timeout=60)
    assert seen, "cluster2 never saw %s exported by cluster1" % SERVICE
    assert seen[0]["Service"]["Service"] == SERVICE and seen[0]["Service"]["Port"] == 9090
    assert seen[0]["Service"]["PeerName"] == DIALER_PEER

    res = module(ansible, "exported_services", {"url": acceptor_url, "state": "absent", "services": [{"name": SERVICE}]})
    assert res["changed"]
    assert wait_for(lambda: imported() is None, timeout=60), "the peer still sees the service after unexporting"
