# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""How many module executions each host paid in a run, from the seed_json callback's output.

A module execution (a worker starting the module's Python, ~0.45 s of CPU on the bench machine) is
what makes a run grow with the number of peers; control tasks (set_fact, assert, the planner, an
action plugin) run in the controller. A loop counts once per item that ran; a skipped task or item
counts nothing. Shared by bench/bench.py and the integration tests.
"""

from __future__ import annotations

COLLECTION = "seed.consul_peering."
# Action plugins of the collection that never start a module.
CONTROLLER_ONLY = frozenset(("cluster_peering_plan", "cluster_peering_handover"))
# Stages the role runs once per run (run_once), not per host: the locks of the accepting clusters that change.
# Which host reports them depends on the order hosts joined the play's group (group_by), so per-host counts
# leave them out unless asked.
PER_RUN = frozenset(("cluster_lock",))


def is_module(action):
    action = action or ""
    if not action.startswith(COLLECTION):
        return False
    return action[len(COLLECTION):] not in CONTROLLER_ONLY


def module_runs_by_action(out, by_task=False, per_run=True):
    """{host: {module: executions}} over every play of a seed_json document.

    by_task: {host: {"<k> <task name>": executions}}, k counting the tasks of the run, so that a task that runs
    twice (the role reads again under its locks) shows as two entries.
    per_run: count the run_once lock stages too (under whichever host ran them).
    """
    runs = {}
    k = 0
    for play in out.get("plays", []):
        for task in play.get("tasks", []):
            k += 1
            action = task["task"].get("action")
            if not is_module(action) or (not per_run and action[len(COLLECTION):] in PER_RUN):
                continue
            for host, res in task.get("hosts", {}).items():
                per = runs.setdefault(host, {})
                if res.get("skipped"):
                    continue
                n = sum(1 for r in res["results"] if not r.get("skipped")) if "results" in res else 1
                key = "%d %s" % (k, task["task"]["name"]) if by_task else action[len(COLLECTION):]
                per[key] = per.get(key, 0) + n
    for host in out.get("stats", {}):
        runs.setdefault(host, {})
    return runs


def module_runs(out, per_run=False):
    """{host: module executions} over every play of a seed_json document (without the run_once lock stages,
    unless per_run)."""
    return dict((host, sum(per.values())) for host, per in module_runs_by_action(out, per_run=per_run).items())
