# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""cluster_lock runs in the controller's worker for a local connection, as a module otherwise (plugin_utils/in_process.py)."""

from __future__ import annotations

from ansible_collections.seed.consul_peering.plugins.plugin_utils.in_process import InProcessAction


class ActionModule(InProcessAction):
    MODULE = "cluster_lock"
