#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# The code is the action plugin plugins/action/cluster_peering_plan.py; this file only documents it.

from __future__ import annotations

DOCUMENTATION = r"""
module: cluster_peering_plan
version_added: 0.1.0
short_description: Plan the peerings of every cluster of the play (internal to the cluster_peering role)
description:
  - Used by the C(seed.consul_peering.cluster_peering) role between its read and write stages. It runs on
    the controller and sends no request.
  - It reads, from C(hostvars), every cluster of the topology (name, group membership,
    C(cluster_peering_peers), exports, intentions, failover, state) and what the read stage observed on each
    (peerings and the Connect CA trust domain), and returns this host's actions for each stage.
  - It fails, before any write, when the batch lacks a cluster the plan needs (C(--limit), C(serial)), the
    strategy is not linear, two hosts are one cluster, a reference names no peer, or a rename is unsafe.
  - It takes no connection option and sends nothing to Consul. The role's read stage reaches each cluster
    with that host's C(cluster_peering_url), C(cluster_peering_token) and TLS variables, which fall back
    to E(CONSUL_HTTP_ADDR), E(CONSUL_HTTP_TOKEN) and the other environment variables of the
    C(seed.consul_peering.consul) connection options.
author:
  - seed.consul_peering contributors (!UNKNOWN)
options:
  read_var:
    description: Name of the host variable the read stage registered (C(peering_info) with C(cluster_identity)).
    type: str
    default: cluster_peering__read
extends_documentation_fragment:
  - seed.consul_peering.consul.controller
attributes:
  check_mode:
    description: Runs the same in check mode; it never writes anything.
    support: full
"""

EXAMPLES = r"""
- name: Plan this cluster's stages
  seed.consul_peering.cluster_peering_plan:
  register: cluster_peering__plan
"""

RETURN = r"""
plan:
  description: This host's actions per stage (see the role's tasks).
  returned: always
  type: dict
summary:
  description: One line per planned action, for people.
  returned: always
  type: list
  elements: str
"""
