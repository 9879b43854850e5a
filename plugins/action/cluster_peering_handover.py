# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The cluster_peering role's handover file: peering tokens between two teams' runs (vault_file).

The file lives on the controller. It is an ansible-vault document (the format of the
ansible.builtin.vault filter, readable with the ansible.builtin.unvault filter or ansible-vault view) whose
plaintext is JSON: {"format": FORMAT, "handovers": {"<acceptor name>/<dialer name>": entry}}, an entry being
{acceptor, dialer, peering_id, generated_at, peering_token}. The plaintext never touches the disk: it is
encrypted in memory and written to a new file created with mode 0600 in the same directory, then renamed
over the old one. A file whose mode lets anyone but its owner read or write it is refused, unread.

Operations (op):
- inspect: what the planner may know, no token: {exists, entries: {key: {acceptor, dialer, peering_id,
  generated_at}}}.
- publish: add the tokens this acceptor registered (var_name: its peering_token results) to the file.
- receive: this dialer's tokens (keys), each checked against its entry; registered with no_log.
- remove: drop the keys this dialer used (var_name: its establish results) and the keys given; the file is
  deleted when no entry is left.
publish and remove hold an exclusive lock on the file's directory while they read, change and replace
the file, so that the hosts of one play (forks) and overlapping runs do not lose each other's entries.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import json
import os
import stat
import time

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_bytes, to_text
from ansible.parsing.vault import AnsibleVaultError, VaultLib, VaultSecret
from ansible.plugins.action import ActionBase

FORMAT = "seed.consul_peering/handover/1"
# The vault id the ansible.builtin.vault filter writes by default: the file is exactly what the filter makes.
VAULT_ID = "filter_default"
RUN_AGAIN = "the acceptor's team must run the role again to hand over a new token"


class HandoverError(Exception):
    pass


def key_of(acceptor, dialer):
    """The entry of the peering that `acceptor` accepts from `dialer` (both cluster_peering_name values)."""
    return "%s/%s" % (acceptor, dialer)


def mode_problem(st, path):
    """Why a handover file with this stat must not be used, or None."""
    if not stat.S_ISREG(st.st_mode):
        return "the handover file %s is not a regular file" % path
    loose = stat.S_IMODE(st.st_mode) & 0o077
    if loose:
        return ("the handover file %s has mode %04o: a handover file must be 0600 (readable and writable by its "
                "owner only), so it is refused unread. Whoever else could read it may have copied it: delete it, "
                "and %s" % (path, stat.S_IMODE(st.st_mode), RUN_AGAIN))
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        return ("the handover file %s belongs to another user (uid %d): a handover file must be owned by the user "
                "who runs the role" % (path, st.st_uid))
    return None


def token_peering_id(token):
    """The acceptor's peering ID carried by a peering token (base64 JSON), without exposing the token."""
    raw = "".join(str(token or "").split())
    try:
        decoded = json.loads(base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True).decode("utf-8"))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise HandoverError("a handover token is not a Consul peering token (not base64 JSON)")
    if not isinstance(decoded, dict) or not decoded.get("PeerID") or not decoded.get("EstablishmentSecret"):
        raise HandoverError("a handover token is not a complete Consul peering token")
    return decoded["PeerID"]


def _vault(password):
    if not password:
        raise HandoverError("cluster_peering_handover_password is empty: the handover file is encrypted with it")
    return VaultLib([(VAULT_ID, VaultSecret(to_bytes(password)))])


def encrypt(doc, password):
    return to_text(_vault(password).encrypt(to_bytes(json.dumps(doc, sort_keys=True)), vault_id=VAULT_ID))


def decrypt(text, password, path):
    try:
        plain = _vault(password).decrypt(to_bytes(text))
    except AnsibleVaultError:
        raise HandoverError("the handover file %s cannot be decrypted with cluster_peering_handover_password (a "
                            "wrong passphrase, or not an ansible-vault file)" % path)
    except Exception:  # pylint: disable=broad-except
        raise HandoverError("the handover file %s is not an ansible-vault file" % path)
    try:
        doc = json.loads(to_text(plain))
    except ValueError:
        raise HandoverError("the handover file %s decrypts, but not to a handover document" % path)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("handovers"), dict):
        raise HandoverError("the handover file %s decrypts, but not to a handover document of %s" % (path, FORMAT))
    return doc


def empty_doc():
    return dict(format=FORMAT, handovers={})


def load(path, password):
    """The document in path ({} of handovers when there is no file). Refuses a loose mode before reading."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return empty_doc(), False
    except OSError as e:
        raise HandoverError("the handover file %s cannot be opened: %s" % (path, e.strerror))
    with os.fdopen(fd, "rb") as f:
        problem = mode_problem(os.fstat(f.fileno()), path)
        if problem:
            raise HandoverError(problem)
        text = f.read()
    return decrypt(text, password, path), True


def save(path, password, doc):
    """Write doc encrypted, atomically; the new file is 0600 from its creation. No entry left: delete the file."""
    if not doc["handovers"]:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        return
    directory = os.path.dirname(os.path.abspath(path))
    data = to_bytes(encrypt(doc, password))
    tmp = os.path.join(directory, ".%s.%d.%s.tmp" % (os.path.basename(path), os.getpid(), os.urandom(4).hex()))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o600)  # whatever the umask
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


@contextlib.contextmanager
def locked(path):
    """An exclusive lock on the directory of path (no lock file left behind)."""
    fd = os.open(os.path.dirname(os.path.abspath(path)) or ".", os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def public(entry):
    """An entry without its token: what the planner and the output may see."""
    return {k: entry.get(k) for k in ("acceptor", "dialer", "peering_id", "generated_at")}


def add_tokens(doc, tokens, now):
    """tokens: [{acceptor, dialer, peering_token}] -> keys added (the newest token of a pair wins)."""
    added = []
    for t in tokens:
        key = key_of(t["acceptor"], t["dialer"])
        doc["handovers"][key] = dict(acceptor=t["acceptor"], dialer=t["dialer"], generated_at=int(now),
                                     peering_id=token_peering_id(t["peering_token"]),
                                     peering_token=t["peering_token"])
        added.append(key)
    return added


def pick(doc, keys, path):
    """{key: token} for keys, each entry checked to hold the token of the peering its metadata names."""
    out = {}
    for key in keys:
        entry = doc["handovers"].get(key)
        if not entry:
            raise HandoverError("the handover file %s holds no token for %s: %s" % (path, key, RUN_AGAIN))
        if token_peering_id(entry.get("peering_token")) != entry.get("peering_id"):
            raise HandoverError("the handover entry %s of %s does not match its token (edited by hand?): %s"
                                % (key, path, RUN_AGAIN))
        out[key] = entry["peering_token"]
    return out


def published(results):
    """[{acceptor, dialer, peering_token}] from registered peering_token loop results over handover_tokens items."""
    out = []
    for r in results or []:
        if isinstance(r, dict) and r.get("peering_token") and isinstance(r.get("item"), dict):
            out.append(dict(acceptor=r["item"]["acceptor_name"], dialer=r["item"]["peer_name"],
                            peering_token=r["peering_token"]))
    return out


def used_keys(results):
    """Keys whose establish succeeded, from registered loop results over items carrying a `key`."""
    keys = []
    for r in results or []:
        if isinstance(r, dict) and not r.get("failed") and not r.get("skipped") and isinstance(r.get("item"), dict) \
                and r["item"].get("key"):
            keys.append(r["item"]["key"])
    return keys


class ActionModule(ActionBase):
    """Reads and writes the handover file on the controller; sends nothing to any host."""

    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(("op", "path", "password", "keys", "var_name"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        args = self._task.args
        op = args.get("op")
        path = args.get("path")
        if op not in ("inspect", "publish", "receive", "remove"):
            raise AnsibleActionFail("op must be one of inspect, publish, receive, remove")
        if not path:
            raise AnsibleActionFail("cluster_peering_handover_file is not set: the vault_file handover needs the "
                                    "path of the handover file on the controller")
        path = os.path.abspath(os.path.expanduser(str(path)))
        password = args.get("password")
        registered = task_vars.get(args.get("var_name") or "") or {}
        results = registered.get("results") if isinstance(registered, dict) else None
        try:
            if op == "inspect":
                doc, exists = load(path, password)
                result.update(changed=False, exists=exists, path=path,
                              entries={k: public(e) for k, e in doc["handovers"].items()})
            elif op == "receive":
                doc, exists = load(path, password)
                result.update(changed=False, path=path, tokens=pick(doc, list(args.get("keys") or []), path))
            elif op == "publish":
                tokens = published(results)
                with locked(path):
                    doc, exists = load(path, password)
                    added = add_tokens(doc, tokens, time.time())
                    if added and not self._task.check_mode:
                        save(path, password, doc)
                result.update(changed=bool(added), path=path, changed_keys=sorted(added))
            else:
                wanted = used_keys(results) + list(args.get("keys") or [])
                with locked(path):
                    doc, exists = load(path, password)
                    keys = sorted({k for k in wanted if k in doc["handovers"]})
                    for k in keys:
                        del doc["handovers"][k]
                    if keys and not self._task.check_mode:
                        save(path, password, doc)
                result.update(changed=bool(keys), path=path, changed_keys=keys, removed=bool(keys) and not doc["handovers"])
        except HandoverError as e:
            raise AnsibleActionFail(str(e))
        return result
