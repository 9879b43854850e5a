# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmarks of seed.consul_peering against a running lab (bench/run.sh starts it).

    python bench/bench.py --env <LAB_STATE_DIR>/env --out bench/results/results.json

Measures, each figure the median of BENCH_REPS repetitions with min and max:
the consul-CLI floor, the role (first run, rerun), each module ad hoc (first,
idempotent), HTTP requests and writes (a counting proxy in front of each
cluster), scale (exported services, intention sources), and fleets (stars, 3x3, a mesh) against
the consul CLI peering every pair in parallel, with module executions per host.
State is reset between repetitions so every first run is really first.
Secrets (peering tokens) stay in memory: never printed, never written.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# The one counting proxy, shared with the integration tests.
sys.path.insert(0, os.path.join(ROOT, "tests", "utils"))

from counting_proxy import CountingProxy  # noqa: E402  (tests/utils is not a package)
from module_runs import module_runs  # noqa: E402

VENV_BIN = os.path.dirname(sys.executable)
PLAYBOOK = os.path.join(ROOT, "playbooks", "peer_clusters.yml")
TOKEN_MARK = re.compile(r"eyJD[A-Za-z0-9+/=]{40,}")
SERVICE, SOURCE = "backend", "frontend"
# wait_until schedules compared: (first, factor, most) seconds.
SCHEDULES = {"before (0.2 x1.6 <=2.0)": (0.2, 1.6, 2.0), "now (0.1 x1.5 <=1.0)": (0.1, 1.5, 1.0)}
KINDS = ("exported-services", "service-intentions")
# The fleets of issue 20, as cluster indexes (0 = the lab's cluster 1): (acceptors, dialers, mesh).
TOPOLOGIES = {
    "1x1": ([0], [1], []),
    "1x4": ([0], [1, 2, 3, 4], []),
    "1x8": ([0], [1, 2, 3, 4, 5, 6, 7, 8], []),
    "3x3": ([0, 1, 2], [3, 4, 5], []),
    "mesh4": ([], [], [0, 1, 2, 3]),
}
TOKEN_POST = ("POST", "/v1/peering/token")


def say(msg):
    print("[bench] %s" % msg, flush=True)


def child_cpu():
    """CPU seconds (user + sys) used so far by finished child processes: less noisy than wall time on a busy machine."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def scrub(text):
    return TOKEN_MARK.sub("<peering token>", text or "")


# --- direct API access (bench bookkeeping, not measured) ------------------------

def api(url, path, method="GET", body=None, timeout=30):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            return resp.status, (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as e:
        return e.code, None


def reset(urls, peerings=True, timeout=90):
    """Delete every peering and every exported-services / service-intentions entry; wait until gone."""
    for url in urls:
        for kind in KINDS:
            for entry in api(url, "/v1/config/" + kind)[1] or []:
                api(url, "/v1/config/%s/%s" % (kind, entry["Name"]), "DELETE")
    if not peerings:
        return

    def delete_all():
        # Dialers first: the acceptor's record then follows through DELETING.
        for url in reversed(urls):
            for p in api(url, "/v1/peerings")[1] or []:
                if p.get("State") != "DELETING":
                    api(url, "/v1/peering/" + p["Name"], "DELETE")

    delete_all()
    deadline = time.monotonic() + timeout
    again = time.monotonic() + 5
    while True:
        left = sum(len(api(url, "/v1/peerings")[1] or []) for url in urls)
        if not left:
            return
        if time.monotonic() > deadline:
            raise RuntimeError("reset: %d peering(s) still there after %ds" % (left, timeout))
        if time.monotonic() > again:
            # A record read in a passing state (an acceptor's, while its dialer's deletion reached it) can be
            # left behind by the first pass: delete what is not on its way out, every 5 s.
            delete_all()
            again = time.monotonic() + 5
        time.sleep(0.1)


def register_service(url, name, port=9000):
    status = api(url, "/v1/agent/service/register", "PUT", {"Name": name, "Port": port})[0]
    if status != 200:
        raise RuntimeError("cannot register %s on %s (HTTP %s)" % (name, url, status))


# --- ansible ------------------------------------------------------------------

class Ansible:
    def __init__(self, workdir, extra_env=None):
        self.workdir = workdir
        self.env = dict(os.environ)
        self.env.update({
            "ANSIBLE_COLLECTIONS_PATH": os.path.join(ROOT, ".ansible", "collections"),
            "ANSIBLE_CALLBACK_PLUGINS": os.path.join(ROOT, "tests", "utils", "callback_plugins"),
            "ANSIBLE_STDOUT_CALLBACK": "seed_json",
            "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_LOCALHOST_WARNING": "0",
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
            "ANSIBLE_DEPRECATION_WARNINGS": "0",
            "ANSIBLE_RETRY_FILES_ENABLED": "0",
            "PATH": VENV_BIN + os.pathsep + os.environ.get("PATH", ""),
        })
        self.env.update(extra_env or {})

    def run(self, args, playbook=False, env=None):
        """Run ansible or ansible-playbook; returns (seconds, parsed json output); self.cpu: its CPU seconds."""
        cmd = [os.path.join(VENV_BIN, "ansible-playbook" if playbook else "ansible")] + list(args)
        full = dict(self.env)
        full.update(env or {})
        c0, t0 = child_cpu(), time.monotonic()
        proc = subprocess.run(cmd, env=full, cwd=self.workdir, capture_output=True, text=True, timeout=600, check=False)
        dt = time.monotonic() - t0
        self.cpu = child_cpu() - c0
        try:
            out = json.loads(proc.stdout[proc.stdout.index("{"):])
        except ValueError:
            out = None
        if proc.returncode != 0 or out is None:
            raise RuntimeError("%s failed (rc %s):\n%s\n%s" % (
                " ".join(cmd[:3]), proc.returncode, scrub(proc.stdout)[-4000:], scrub(proc.stderr)[-2000:]))
        return dt, out

    def adhoc(self, module, args, env=None):
        """One module call on localhost; returns (seconds, the module result)."""
        dt, out = self.run(["localhost", "-m", "seed.consul_peering." + module, "-a", json.dumps(args)], env=env)
        return dt, out["plays"][0]["tasks"][0]["hosts"]["localhost"]


def play_changed(out):
    return sum(s.get("changed", 0) for s in out["stats"].values())


def task_durations(out):
    """{task name: seconds}: each task's wall time (all hosts), summed over tasks of the same name."""
    res = {}
    for play in out["plays"]:
        for task in play["tasks"]:
            t = task["task"]
            if "seconds" in t:
                res[t["name"]] = res.get(t["name"], 0.0) + t["seconds"]
    return res


def write_inventory(path, acceptors, dialers, exports=True, mesh=None):
    """acceptors/dialers/mesh: {host: (url, peer name)}; 'backend' is exported from each acceptor to every dialer
    and from each mesh host to every other, and 'frontend' of each of those peers is allowed to call it."""
    mesh = mesh or {}

    def host(url, name):
        return {"cluster_peering_url": url, "cluster_peering_name": name}

    groups = {}
    for group, members in (("consul_acceptors", acceptors), ("consul_dialers", dialers), ("consul_mesh", mesh)):
        if members:
            groups[group] = {"hosts": dict((h, host(*v)) for h, v in members.items())}
    if exports:
        for group, consumers in (("consul_acceptors", dialers), ("consul_mesh", mesh)):
            for h, spec in (groups.get(group) or {}).get("hosts", {}).items():
                peers = [v[1] for k, v in sorted(consumers.items()) if k != h]
                spec["cluster_peering_exports"] = [{"name": SERVICE}]
                spec["cluster_peering_intentions"] = [
                    {"name": SERVICE, "sources": [{"name": SOURCE, "peer": p} for p in peers]}]
    inv = {"all": {
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
        "children": groups}}
    with open(path, "w") as f:
        json.dump(inv, f, indent=1)
    return path


def topology_pairs(acceptors, dialers, mesh):
    """[(acceptor index, dialer index)] as the role orients them (a mesh: the lower host name accepts)."""
    pairs = [(a, d) for a in acceptors for d in dialers]
    hosts = sorted(mesh, key=lambda i: "c%d" % (i + 1))
    pairs += [(a, d) for k, a in enumerate(hosts) for d in hosts[k + 1:]]
    return pairs


# --- statistics -----------------------------------------------------------------

class Results:
    def __init__(self):
        self.times = {}      # key -> [seconds]
        self.cpu = {}        # key -> [client CPU seconds]
        self.counts = {}     # key -> [{cluster: [requests, writes]}]
        self.notes = {}      # key -> free text
        self.profile = {}    # key -> {task: [seconds]}
        self.modules = {}    # key -> [{host: module executions}]
        self.tokens = {}     # key -> [peering tokens generated (POST /v1/peering/token), all clusters]
        self.schedules = {}  # wait_until schedules compared: label -> [first, factor, most]

    def add(self, key, seconds, counts=None, cpu=None):
        self.times.setdefault(key, []).append(round(seconds, 3))
        if cpu is not None:
            self.cpu.setdefault(key, []).append(round(cpu, 3))
        if counts is not None:
            self.counts.setdefault(key, []).append(counts)

    def add_profile(self, key, durations):
        prof = self.profile.setdefault(key, {})
        for name, secs in durations.items():
            prof.setdefault(name, []).append(round(secs, 3))

    def median(self, key):
        return statistics.median(self.times[key])

    def dump(self):
        return dict(times=self.times, cpu=self.cpu, counts=self.counts, notes=self.notes, profile=self.profile,
                    schedules=self.schedules, modules=self.modules, tokens=self.tokens)


class Bench:
    def __init__(self, env, results_dir, reps, scale_reps, clusters, topo_reps=3,  # pylint: disable=too-many-arguments
                 baseline=None):
        self.env = env
        # Another checkout of the collection whose role is measured alternately with this one (BENCH_BASELINE).
        self.baseline = None
        if baseline:
            coll = os.path.join(results_dir, "baseline-collections")
            link = os.path.join(coll, "ansible_collections", "seed", "consul_peering")
            os.makedirs(os.path.dirname(link), exist_ok=True)
            if os.path.lexists(link):
                os.unlink(link)
            os.symlink(os.path.abspath(baseline), link)
            self.baseline = (Ansible(results_dir, {"ANSIBLE_COLLECTIONS_PATH": coll}),
                             os.path.join(os.path.abspath(baseline), "playbooks", "peer_clusters.yml"))
        self.results_dir = results_dir
        self.reps = reps
        self.scale_reps = scale_reps
        self.topo_reps = topo_reps
        self.urls = [env["CLUSTER%d_URL" % i] for i in range(1, clusters + 1)]
        self.names = [env["CLUSTER%d_DC" % i] for i in range(1, clusters + 1)]
        self.proxies = [CountingProxy(u).start() for u in self.urls]
        self.purls = [p.url for p in self.proxies]
        self.ansible = Ansible(results_dir)
        self.r = Results()

    def close(self):
        for p in self.proxies:
            p.stop()

    def reset_counts(self):
        for p in self.proxies:
            p.reset()

    def counts(self, n=None):
        return [list(p.totals()) for p in self.proxies[:n or len(self.proxies)]]

    def tokens_generated(self):
        return sum(p.snapshot().get(TOKEN_POST, 0) for p in self.proxies)

    def reset(self, n=2, peerings=True):
        reset(self.urls[:n], peerings=peerings)

    # -- the floor ---------------------------------------------------------
    def floor(self):
        env = dict(os.environ, CONSUL_BIN=self.env["CONSUL_BIN"], ACCEPTOR_NAME=self.names[0],
                   DIALER_NAME=self.names[1], SERVICE=SERVICE, SOURCE=SOURCE)
        for i in range(self.reps):
            self.reset()
            self.reset_counts()
            c0, t0 = child_cpu(), time.monotonic()
            subprocess.run(["bash", os.path.join(HERE, "floor.sh"), self.purls[0], self.purls[1]],
                           env=env, check=True, timeout=300)
            self.r.add("floor", time.monotonic() - t0, self.counts(2), cpu=child_cpu() - c0)
            say("  floor %d/%d: %.2fs" % (i + 1, self.reps, self.r.times["floor"][-1]))

    # -- the role ----------------------------------------------------------
    def role_inventory(self, dialers, name):
        acc = {"c1": (self.purls[0], self.names[0])}
        dial = dict(("c%d" % (i + 1), (self.purls[i], self.names[i])) for i in range(1, dialers + 1))
        return write_inventory(os.path.join(self.results_dir, name), acc, dial)

    def role(self):
        inv = self.role_inventory(1, "inventory-pair.json")
        for i in range(self.reps):
            self.reset()
            self.reset_counts()
            dt, out = self.ansible.run([PLAYBOOK, "-i", inv], playbook=True)
            self.r.add("role_first", dt, self.counts(2), cpu=self.ansible.cpu)
            self.r.add_profile("role_first", task_durations(out))
            self.reset_counts()
            dt2, out2 = self.ansible.run([PLAYBOOK, "-i", inv], playbook=True)
            self.r.add("role_rerun", dt2, self.counts(2), cpu=self.ansible.cpu)
            self.r.add_profile("role_rerun", task_durations(out2))
            if play_changed(out2):
                self.r.notes["role_rerun"] = "the rerun reported %d changed task(s)" % play_changed(out2)
            say("  role %d/%d: first %.2fs, rerun %.2fs (rerun writes %s)" % (
                i + 1, self.reps, dt, dt2, [c[1] for c in self.r.counts["role_rerun"][-1]]))

    # -- fleets (issue 20) ---------------------------------------------------
    def topology(self, name):
        """The parallel CLI floor, the role's first run and its rerun on one fleet of TOPOLOGIES."""
        acceptors, dialers, mesh = TOPOLOGIES[name]
        used = sorted(set(acceptors) | set(dialers) | set(mesh))
        n = max(used) + 1
        pairs = topology_pairs(acceptors, dialers, mesh)
        peers = {}
        for a, d in pairs:
            peers.setdefault(a, []).append(d)
            peers.setdefault(d, []).append(a)
        exporters = list(acceptors) + list(mesh)
        spec = ["pair %s %s %s %s" % (self.purls[a], self.names[a], self.purls[d], self.names[d]) for a, d in pairs]
        for e in exporters:
            consumers = [p for p in sorted(peers[e]) if p in dialers or p in mesh]
            spec.append("export %s %s" % (self.purls[e], " ".join(self.names[p] for p in consumers)))
            spec += ["import %s %s" % (self.purls[p], self.names[e]) for p in consumers]

        def members(idx):
            return dict(("c%d" % (i + 1), (self.purls[i], self.names[i])) for i in idx)

        inv = write_inventory(os.path.join(self.results_dir, "inventory-%s.json" % name), members(acceptors),
                              members(dialers), mesh=members(mesh))
        env = dict(os.environ, CONSUL_BIN=self.env["CONSUL_BIN"], SERVICE=SERVICE, SOURCE=SOURCE)
        forks = str(len(used))
        for i in range(self.topo_reps):
            self.reset(n)
            self.reset_counts()
            c0, t0 = child_cpu(), time.monotonic()
            subprocess.run(["bash", os.path.join(HERE, "floor.sh"), "-"], input="\n".join(spec) + "\n", text=True,
                           env=env, check=True, timeout=300)
            self.r.add("topo %s floor" % name, time.monotonic() - t0, self.counts(n), cpu=child_cpu() - c0)
            roles = [("", self.ansible, PLAYBOOK)]
            if self.baseline:
                # Alternately first, so that a load change on the machine does not favour one of them.
                roles.insert(i % 2, ("@baseline", self.baseline[0], self.baseline[1]))
            for suffix, ansible, playbook in roles:
                self.reset(n)
                for run in ("first", "rerun"):
                    key = "topo %s %s%s" % (name, run, suffix)
                    self.reset_counts()
                    dt, out = ansible.run([playbook, "-i", inv, "--forks", forks], playbook=True)
                    self.r.add(key, dt, self.counts(n), cpu=ansible.cpu)
                    self.r.add_profile(key, task_durations(out))
                    self.r.modules.setdefault(key, []).append(module_runs(out))
                    self.r.tokens.setdefault(key, []).append(self.tokens_generated())
                    if run == "rerun" and play_changed(out):
                        self.r.notes[key] = "the rerun reported %d changed task(s)" % play_changed(out)
            say("  %s %d/%d: floor %.2fs, role first %.2fs, rerun %.2fs (rerun: %d writes, %d tokens)" % (
                name, i + 1, self.topo_reps, self.r.times["topo %s floor" % name][-1],
                self.r.times["topo %s first" % name][-1], self.r.times["topo %s rerun" % name][-1],
                sum(c[1] for c in self.r.counts["topo %s rerun" % name][-1]), self.r.tokens["topo %s rerun" % name][-1]))
        self.reset(n)

    # -- what one task costs per host -------------------------------------------
    def overhead(self, hosts=9):
        """One play on `hosts` clusters (forks = hosts): a control task (debug), the smallest module (ping), a
        read (peering_info, in the controller's worker) and the same read as a module process, each five times;
        the seconds of each task from the JSON callback."""
        hosts = min(hosts, len(self.purls))
        inv = {"all": {"vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
                       "hosts": dict(("c%d" % (i + 1), {"url": self.purls[i]}) for i in range(hosts))}}
        tasks = []
        for k in range(5):
            tasks += [{"name": "control %d" % k, "ansible.builtin.debug": {"msg": "{{ url }}"}},
                      {"name": "ping %d" % k, "ansible.builtin.ping": {}},
                      {"name": "read %d" % k, "seed.consul_peering.peering_info": {"url": "{{ url }}"}},
                      {"name": "module-read %d" % k, "seed.consul_peering.peering_info": {"url": "{{ url }}"},
                       "vars": {"seed_consul_peering_in_process": False}}]
        play = [{"hosts": "all", "gather_facts": False, "tasks": tasks}]
        inv_path = os.path.join(self.results_dir, "inventory-overhead.json")
        play_path = os.path.join(self.results_dir, "overhead.yml")
        with open(inv_path, "w") as f:
            json.dump(inv, f)
        with open(play_path, "w") as f:
            json.dump(play, f)
        empty_path = os.path.join(self.results_dir, "overhead-empty.yml")
        with open(empty_path, "w") as f:
            json.dump([{"hosts": "all", "gather_facts": False, "tasks": []}], f)
        for i in range(self.topo_reps):
            # ansible-playbook's own start-up on these hosts: a play with no task.
            dt, out = self.ansible.run([empty_path, "-i", inv_path, "--forks", str(hosts)], playbook=True)
            self.r.add("overhead startup x%d hosts" % hosts, dt)
            dt, out = self.ansible.run([play_path, "-i", inv_path, "--forks", str(hosts)], playbook=True)
            per = {}
            for name, secs in task_durations(out).items():
                per.setdefault(name.split()[0], []).append(secs)
            for kind, values in per.items():
                for v in values:
                    self.r.add("overhead %s x%d hosts" % (kind, hosts), v)
            say("  overhead %d/%d: %s" % (i + 1, self.topo_reps, ", ".join(
                "%s %.2fs" % (k, statistics.median(v)) for k, v in sorted(per.items()))))

    # -- modules ad hoc ------------------------------------------------------
    def call(self, key, module, args, expect_changed, env=None):
        self.reset_counts()
        dt, res = self.ansible.adhoc(module, args, env=env)
        if res.get("failed"):
            raise RuntimeError("%s failed: %s" % (module, scrub(res.get("msg", ""))))
        if bool(res.get("changed")) != expect_changed:
            self.r.notes[key] = "changed=%s, expected %s" % (res.get("changed"), expect_changed)
        self.r.add(key, dt, self.counts(), cpu=self.ansible.cpu)
        return res

    def modules(self):
        a, d = self.purls[0], self.purls[1]
        an, dn = self.names[0], self.names[1]
        for i in range(self.reps):
            self.reset()
            res = self.call("peering_token first", "peering_token", {"url": a, "peer_name": dn}, True)
            token = res["peering_token"]
            self.call("peering_establish first", "peering_establish",
                      {"url": d, "peer_name": an, "peering_token": "{{ lookup('env', 'BENCH_PEERING_TOKEN') }}"}, True,
                      env={"BENCH_PEERING_TOKEN": token})
            self.call("peering_establish idempotent", "peering_establish",
                      {"url": d, "peer_name": an, "peering_token": "{{ lookup('env', 'BENCH_PEERING_TOKEN') }}"}, False,
                      env={"BENCH_PEERING_TOKEN": token})
            del token
            self.call("peering_token idempotent", "peering_token", {"url": a, "peer_name": dn}, False)
            svc = [{"name": SERVICE, "consumers": [{"peer": dn}]}]
            self.call("exported_services first", "exported_services", {"url": a, "services": svc}, True)
            self.call("exported_services idempotent", "exported_services", {"url": a, "services": svc}, False)
            src = [{"name": SOURCE, "peer": dn, "action": "allow"}]
            self.call("service_intentions first", "service_intentions",
                      {"url": a, "name": SERVICE, "sources": src}, True)
            self.call("service_intentions idempotent", "service_intentions",
                      {"url": a, "name": SERVICE, "sources": src}, False)
            info = {"url": d, "peer_name": an, "wait_for": "active", "expect_services": [SERVICE]}
            self.call("peering_info first", "peering_info", info, False)
            self.call("peering_info idempotent", "peering_info", info, False)
            say("  modules %d/%d: token %.2fs, establish %.2fs, exports %.2fs, intentions %.2fs, info %.2fs" % (
                i + 1, self.reps, self.r.times["peering_token first"][-1], self.r.times["peering_establish first"][-1],
                self.r.times["exported_services first"][-1], self.r.times["service_intentions first"][-1],
                self.r.times["peering_info first"][-1]))
        # The cost of ansible itself: an ad hoc call of a module that does nothing.
        for i in range(self.reps):
            dt = self.ansible.run(["localhost", "-m", "ansible.builtin.ping"])[0]
            self.r.add("ansible.builtin.ping", dt, cpu=self.ansible.cpu)

    # -- polling ----------------------------------------------------------------
    def polling(self, schedules):
        """How long a peering takes to become ACTIVE and an export to become visible, measured by
        polling every 20 ms; then when each wait_until schedule would have noticed it."""
        a, d = self.urls[0], self.urls[1]
        an, dn = self.names[0], self.names[1]
        for i in range(self.reps):
            self.reset()
            status, body = api(a, "/v1/peering/token", "POST", {"PeerName": dn})
            if status != 200:
                raise RuntimeError("polling: token generation answered HTTP %s" % status)
            t0 = time.monotonic()
            status = api(d, "/v1/peering/establish", "POST", {"PeerName": an, "PeeringToken": body["PeeringToken"]})[0]
            del body
            if status != 200:
                raise RuntimeError("polling: establish answered HTTP %s" % status)
            t_active = poll_fine(lambda: all((api(u, "/v1/peering/" + n)[1] or {}).get("State") == "ACTIVE"
                                             for u, n in ((a, dn), (d, an))))
            api(a, "/v1/config", "PUT", {"Kind": "exported-services", "Name": "default",
                                         "Services": [{"Name": SERVICE, "Consumers": [{"Peer": dn}]}]})
            t_import = poll_fine(lambda: bool(api(d, "/v1/health/service/%s?peer=%s" % (SERVICE, an))[1]))
            self.r.add("latency: establish -> both ACTIVE", t_active)
            self.r.add("latency: export written -> visible on the dialer", t_import)
            for label, sched in schedules.items():
                for what, t in (("ACTIVE", t_active), ("import", t_import)):
                    noticed, probes = simulate(sched, t)
                    self.r.add("poll %s %s: noticed after" % (label, what), noticed)
                    self.r.add("poll %s %s: probes" % (label, what), probes)
            say("  polling %d/%d: ACTIVE after %.2fs, import visible after %.2fs (%.2fs after establish)" % (
                i + 1, self.reps, t_active, t_import, time.monotonic() - t0))
        self.r.schedules = dict((k, list(v)) for k, v in schedules.items())

    # -- scale ------------------------------------------------------------------
    def scale(self, export_sizes, intention_sizes):
        a, dn = self.purls[0], self.names[1]
        for n in export_sizes:
            svc = [{"name": "svc-%04d" % k, "consumers": [{"peer": dn}]} for k in range(n)]
            for i in range(self.scale_reps):
                self.reset(1, peerings=False)
                self.call("exported_services x%d first" % n, "exported_services", {"url": a, "services": svc}, True)
                self.call("exported_services x%d idempotent" % n, "exported_services", {"url": a, "services": svc}, False)
            say("  exported_services x%d: first %.2fs, idempotent %.2fs (medians)" % (
                n, self.r.median("exported_services x%d first" % n), self.r.median("exported_services x%d idempotent" % n)))
        for n in intention_sizes:
            src = [{"name": "src-%04d" % k, "peer": dn, "action": "allow"} for k in range(n)]
            for i in range(self.scale_reps):
                self.reset(1, peerings=False)
                self.call("service_intentions x%d first" % n, "service_intentions",
                          {"url": a, "name": SERVICE, "sources": src}, True)
                self.call("service_intentions x%d idempotent" % n, "service_intentions",
                          {"url": a, "name": SERVICE, "sources": src}, False)
            say("  service_intentions x%d: first %.2fs, idempotent %.2fs (medians)" % (
                n, self.r.median("service_intentions x%d first" % n), self.r.median("service_intentions x%d idempotent" % n)))
        self.reset(1, peerings=False)


def poll_fine(probe, timeout=60, step=0.02):
    """Seconds until probe() is true, polling every step seconds."""
    t0 = time.monotonic()
    while not probe():
        if time.monotonic() - t0 > timeout:
            raise RuntimeError("polling: not reached after %ds" % timeout)
        time.sleep(step)
    return time.monotonic() - t0


def simulate(schedule, ready_at):
    """When wait_until(first, factor, most) notices a state reached ready_at seconds after it starts,
    and after how many probes (probe at 0, then sleeps first, first*factor, ... capped at most)."""
    first, factor, most = schedule
    t, delay, probes = 0.0, first, 1
    while t < ready_at:
        t += delay
        probes += 1
        delay = min(most, delay * factor)
    return t, probes


def read_env(path):
    env = {}
    with open(path) as f:
        for line in f:
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                env[k] = v
    return env


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--env", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--scale-reps", type=int, default=5)
    ap.add_argument("--topo-reps", type=int, default=3)
    ap.add_argument("--baseline", default="", help="another checkout whose role is measured alternately on the fleets")
    ap.add_argument("--only", default="floor,polling,role,modules,scale,overhead,topologies")
    ap.add_argument("--exports", default="10,100,1000")
    ap.add_argument("--intentions", default="10,100,500")
    ap.add_argument("--topologies", default=",".join(TOPOLOGIES))
    args = ap.parse_args()
    env = read_env(args.env)
    clusters = int(env.get("LAB_CLUSTERS", "2"))
    topologies = [x for x in args.topologies.split(",") if x]
    for name in topologies:
        need = max(max(x) for x in TOPOLOGIES[name] if x) + 1
        if need > clusters:
            sys.exit("the fleet %s needs %d clusters, the lab has %d (LAB_CLUSTERS)" % (name, need, clusters))
    results_dir = os.path.dirname(os.path.abspath(args.out))
    b = Bench(env, results_dir, args.reps, args.scale_reps, clusters, topo_reps=args.topo_reps,
              baseline=args.baseline or None)
    t0 = time.monotonic()
    only = args.only.split(",")
    try:
        for url in b.urls:
            register_service(url, SERVICE)
        if "floor" in only:
            say("floor: consul CLI script, %d repetitions" % args.reps)
            b.floor()
        if "polling" in only:
            say("polling: time to ACTIVE and to import visibility, %d repetitions" % args.reps)
            b.polling(SCHEDULES)
        if "role" in only:
            say("role: playbooks/peer_clusters.yml first run and rerun, %d repetitions" % args.reps)
            b.role()
        if "modules" in only:
            say("modules ad hoc: first and idempotent call, %d repetitions" % args.reps)
            b.modules()
        if "scale" in only:
            say("scale: exported_services %s, service_intentions %s, %d repetitions each"
                % (args.exports, args.intentions, args.scale_reps))
            b.scale([int(x) for x in args.exports.split(",") if x], [int(x) for x in args.intentions.split(",") if x])
        if "overhead" in only:
            say("overhead: one task on 9 clusters (control, ping, peering_info in process and as a module), %d repetitions" % args.topo_reps)
            b.overhead()
        if "topologies" in only:
            say("fleets: %s, each the parallel CLI floor, the role's first run and rerun, %d repetitions"
                % (", ".join(topologies), args.topo_reps))
            for name in topologies:
                b.topology(name)
        b.reset(clusters)
    finally:
        b.close()
    data = b.r.dump()
    data["reps"] = dict(pair=args.reps, scale=args.scale_reps, topologies=args.topo_reps)
    if args.only != ap.get_default("only"):
        data["only"] = args.only
    if args.baseline:
        # The last commit that changed what runs (the role, the plugins), not the checkout's bench.
        data["baseline"] = subprocess.run(["git", "-C", args.baseline, "log", "-1", "--format=%h %s", "--",
                                           "roles", "plugins"],
                                          capture_output=True, text=True, check=False).stdout.strip()[:100]
    data["topologies"] = dict((k, dict(acceptors=len(TOPOLOGIES[k][0]), dialers=len(TOPOLOGIES[k][1]),
                                       mesh=len(TOPOLOGIES[k][2]), pairs=len(topology_pairs(*TOPOLOGIES[k]))))
                              for k in topologies)
    data["bench_seconds"] = round(time.monotonic() - t0, 1)
    with open(args.out, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    say("measurements done in %.0fs; raw results in %s" % (data["bench_seconds"], args.out))


if __name__ == "__main__":
    main()
