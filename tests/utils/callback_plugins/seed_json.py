# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Stdout callback of the tests and the benchmark: results as one JSON document, with each task's wall time.

ansible-core has no JSON stdout callback of its own (the short name "json" is redirected to
ansible.posix.json, which is not installed), so the tests and bench/bench.py bring this one. Shape: {"plays": [{"tasks": [{"task":
{"name", "action", "seconds"}, "hosts": {host: result}}]}], "stats": {host: summary}}.
A task's seconds run from its start to the start of the next task (all hosts).
"""

from __future__ import annotations

import json
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: seed_json
type: stdout
short_description: JSON results with task wall times, for the tests and bench/bench.py
description: [Prints every task result and its wall time as one JSON document at the end.]
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "seed_json"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.plays = []
        self._current = None
        self._t0 = time.monotonic()

    def _close_task(self):
        if self._current is not None:
            self._current["task"]["seconds"] = round(time.monotonic() - self._current.pop("_start"), 4)
            self._current = None

    def v2_playbook_on_play_start(self, play):
        self._close_task()
        self.plays.append({"play": {"name": play.get_name()}, "tasks": []})

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._close_task()
        self._current = {"task": {"name": task.get_name(), "action": task.action}, "hosts": {},
                         "_start": time.monotonic()}
        self.plays[-1]["tasks"].append(self._current)

    v2_playbook_on_handler_task_start = v2_playbook_on_task_start

    def _record(self, result, **extra):
        data = getattr(result, "result", None)
        if data is None:
            data = result._result
        host = result.host if hasattr(result, "host") else result._host
        self.plays[-1]["tasks"][-1]["hosts"][host.get_name()] = dict(data, **extra)

    def v2_runner_on_ok(self, result):
        self._record(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, failed=True)

    def v2_runner_on_unreachable(self, result):
        self._record(result, unreachable=True)

    def v2_runner_on_skipped(self, result):
        self._record(result, skipped=True)

    def v2_playbook_on_stats(self, stats):
        self._close_task()
        summary = dict((h, stats.summarize(h)) for h in sorted(stats.processed))
        self._display.display(json.dumps({"plays": self.plays, "stats": summary,
                                          "seconds": round(time.monotonic() - self._t0, 4)},
                                         indent=2, sort_keys=True, default=str))
