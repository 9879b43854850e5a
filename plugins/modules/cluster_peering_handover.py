#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# The code is the action plugin plugins/action/cluster_peering_handover.py; this file only documents it.

from __future__ import annotations

DOCUMENTATION = r"""
module: cluster_peering_handover
version_added: 0.1.0
short_description: The handover file of one-side runs (internal to the cluster_peering role)
description:
  - Used by the C(seed.consul_peering.cluster_peering) role when O(path) is its C(cluster_peering_handover_file)
    (C(cluster_peering_handover=vault_file)). The accepting team's run publishes peering tokens in the file, the
    dialing team's run reads them and removes them once used. See docs/teams.md.
  - The file is on the controller. It is in ansible-vault format (what the C(ansible.builtin.vault) filter makes;
    C(ansible.builtin.unvault) and C(ansible-vault view) read it), encrypted with O(password). The plaintext is
    never written; a new file is created with mode 0600 beside the old one, then renamed over it.
  - A file whose mode lets others read or write it (anything beyond 0600), or owned by another user, is
    refused unread.
  - It takes no connection option and sends nothing to Consul. The role's other stages reach the team's own
    cluster with its C(cluster_peering_url) and C(cluster_peering_token), which fall back to E(CONSUL_HTTP_ADDR),
    E(CONSUL_HTTP_TOKEN) and the other environment variables of the C(seed.consul_peering.consul) connection
    options; the other team's cluster (C(cluster_peering_remote)) is never contacted.
author:
  - seed.consul_peering contributors (!UNKNOWN)
options:
  op:
    description:
      - V(inspect) returns the entries without their tokens; V(publish) adds the tokens of the registered
        variable O(var_name) (C(peering_token) loop results); V(receive) returns the tokens of O(keys);
        V(remove) drops the entries of the successful C(peering_establish) loop results in O(var_name) and
        O(keys), and deletes the file when none is left.
    type: str
    required: true
    choices: [inspect, publish, receive, remove]
  path:
    description: The handover file on the controller.
    type: path
    required: true
  password:
    description: The passphrase of the file (C(cluster_peering_handover_password)).
    type: str
  keys:
    description: Entries (C(<acceptor name>/<dialer name>)) to receive or remove.
    type: list
    elements: str
  var_name:
    description: Name of this host's registered variable to publish from, or to find used entries in.
    type: str
extends_documentation_fragment:
  - seed.consul_peering.consul.controller
attributes:
  check_mode:
    description: V(publish) and V(remove) write nothing in check mode.
    support: full
"""

EXAMPLES = r"""
- name: Read the handover file's entries (no token)
  seed.consul_peering.cluster_peering_handover:
    op: inspect
    path: /srv/handover/dc1-dc2.vault
    password: "{{ handover_passphrase }}"
  register: handover
"""

RETURN = r"""
path:
  description: The handover file's absolute path.
  returned: always
  type: str
exists:
  description: Whether the file existed.
  returned: O(op=inspect)
  type: bool
entries:
  description: The entries, without tokens - C(acceptor), C(dialer), C(peering_id), C(generated_at) (epoch seconds).
  returned: O(op=inspect)
  type: dict
tokens:
  description: The tokens of O(keys). Register it with C(no_log).
  returned: O(op=receive)
  type: dict
changed_keys:
  description: The entries added or removed (C(keys) is not a usable name for a return value in Jinja).
  returned: O(op=publish) or O(op=remove)
  type: list
  elements: str
removed:
  description: Whether the file was deleted because no entry was left.
  returned: O(op=remove)
  type: bool
"""
