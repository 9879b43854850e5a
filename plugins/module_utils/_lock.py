# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A run-wide lock the cluster itself holds: a Consul session holding a KV key.

The session has a TTL and behavior=delete, no node checks: a run that crashes leaves a lock that
Consul deletes once the TTL (Consul waits up to twice the TTL) passes without a renewal, and
losing the server that created the session (an HA failover) does not drop the lock.
"""

from __future__ import annotations

import base64
import json
import random
import time

from ansible_collections.seed.consul_peering.plugins.module_utils.consul_api import ConsulError

DEFAULT_KEY = "seed/consul_peering/lock"
TTL_MIN, TTL_MAX = 10, 86400
SESSION_NAME = "seed.consul_peering lock"


def key_problem(key):
    if not isinstance(key, str) or not key or key.startswith("/") or key.endswith("/"):
        return "key must be a non-empty KV path without a leading or trailing '/', got %r" % (key,)
    if any(part in ("", ".", "..") for part in key.split("/")):
        return "key %r has an empty, '.' or '..' part between '/'" % key
    return None


def ttl_problem(ttl):
    if ttl is None or not TTL_MIN <= ttl <= TTL_MAX:
        return "ttl must be %d..%d seconds (Consul's session TTL bounds), got %s" % (TTL_MIN, TTL_MAX, ttl)
    return None


def holder_of(entry):
    """The holder description written in the lock key's value, or ''."""
    if not entry or not entry.get("Value"):
        return ""
    try:
        value = json.loads(base64.b64decode(entry["Value"]).decode("utf-8"))
    except (ValueError, TypeError, UnicodeDecodeError):
        return ""
    return str(value.get("holder", "")) if isinstance(value, dict) else ""


def describe_holder(client, entry):
    """'session <id> (<name>, node <node>, TTL <ttl>), holder "<description>"' of a held lock entry."""
    sid = entry.get("Session")
    info = client.session_info(sid) if sid else None
    parts = ["session %s" % sid]
    if info:
        parts.append("(%s, node %s, TTL %s)" % (info.get("Name") or "no name", info.get("Node"), info.get("TTL") or "none"))
    holder = holder_of(entry)
    if holder:
        parts.append("holder %r" % holder)
    return " ".join(parts)


def acquire(client, key, holder, ttl, wait_timeout, check_mode=False, clock=time.monotonic, sleep=time.sleep):
    """Take the lock key for a new session, waiting up to wait_timeout seconds for its holder to let go."""
    resp = client.kv_get(key)
    entry = resp.value
    if check_mode:
        held = bool(entry and entry.get("Session"))
        result = dict(changed=True, acquired=False, session=None, key=key, holder=holder, waited=0)
        if held:
            result["held_by"] = describe_holder(client, entry)
        return result
    session = client.create_session(SESSION_NAME, ttl, behavior="delete", lock_delay="0s", node_checks=[])
    value = {"holder": holder, "session": session}
    start = clock()
    attempts = 0
    try:
        while True:
            attempts += 1
            if client.kv_acquire(key, value, session):
                return dict(changed=True, acquired=True, session=session, key=key, holder=holder,
                            waited=round(clock() - start, 1), attempts=attempts)
            resp = client.kv_get(key)
            entry = resp.value
            left = wait_timeout - (clock() - start)
            if left <= 0:
                who = describe_holder(client, entry) if entry and entry.get("Session") else "no session any more"
                raise ConsulError(
                    "could not acquire the lock %s on %s within %ss: it is held by %s. Another run against this "
                    "cluster is in progress; it releases the lock when it ends, and a crashed run's lock expires "
                    "at most 2 x its TTL after its last renewal. To break it: cluster_lock state=absent force=true"
                    % (key, client.base, wait_timeout, who))
            if entry and entry.get("Session"):
                # A blocking query wakes when the holder releases (the key is deleted) or changes.
                client.kv_get(key, index=resp.index or 0, wait=min(left, 5))
            # Several waiters wake together: a little jitter spreads their acquire requests.
            sleep(random.uniform(0.01, 0.2))
    except BaseException:
        # Never leave our own waiting session behind (its TTL would remove it, but later).
        try:
            client.destroy_session(session)
        except ConsulError:
            pass
        raise


def renew(client, key, session, check_mode=False):
    """Keep a held lock alive: renew its session, and check it still holds key."""
    entry = client.kv_get(key).value
    if not entry or entry.get("Session") != session:
        raise ConsulError(
            "the lock %s on %s is no longer held by session %s (%s): its TTL passed without a renewal, or it "
            "was broken; stop, the run is no longer protected" % (
                key, client.base, session, "now held by %s" % describe_holder(client, entry)
                if entry and entry.get("Session") else "the key is free"))
    if not check_mode and client.renew_session(session) is None:
        raise ConsulError("the session %s of the lock %s expired before it could be renewed" % (session, key))
    return dict(changed=False, acquired=True, session=session, key=key, holder=holder_of(entry), waited=0)


def release(client, key, session=None, force=False, check_mode=False):
    """Give the lock up: destroy the session (behavior=delete removes the key it holds)."""
    entry = client.kv_get(key).value
    holder_session = entry.get("Session") if entry else None
    result = dict(changed=False, acquired=False, session=session, key=key, waited=0)
    if force:
        targets = [holder_session] if holder_session else []
        if targets:
            result["released"] = describe_holder(client, entry)
    else:
        # Our session also goes when it no longer holds the key (it was waiting, or lost the lock).
        targets = [session] if session and client.session_info(session) else []
    if not targets:
        return result
    result["changed"] = True
    if check_mode:
        return result
    for sid in targets:
        client.destroy_session(sid)
    return result
