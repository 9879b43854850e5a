# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures for integration tests against the real local Consul lab.

The lab (lab/lab.sh) is started once per session if it is not up; its
addresses come from lab/.state/env. Ansible runs as a subprocess against the
collection through a collections path that points at this checkout.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# lab.sh honours LAB_STATE_DIR / LAB_PORT_BASE, so parallel checkouts (or developers) each get their own lab.
STATE = os.environ.get("LAB_STATE_DIR") or os.path.join(ROOT, "lab", ".state")
VENV_BIN = os.path.dirname(sys.executable)
sys.path.insert(0, os.path.join(ROOT, "tests", "utils"))

from counting_proxy import CountingProxy  # noqa: E402  pylint: disable=wrong-import-position


@contextlib.contextmanager
def acl_lab_up(state, port_base, clusters=2):
    """A lab of its own with ACLs on (LAB_ACL=1) under state, started and always stopped: its env file's values.

    For the test files that need ACLs (test_acl, test_lock_acl, test_teams), each on its own port base.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAB_")}
    env.update(LAB_ACL="1", LAB_CLUSTERS=str(clusters), LAB_PORT_BASE=str(port_base), LAB_STATE_DIR=str(state))
    lab_sh = os.path.join(ROOT, "lab", "lab.sh")
    subprocess.run(["bash", lab_sh, "up"], env=env, check=True, timeout=600)
    try:
        yield read_env_file(os.path.join(str(state), "env"))
    finally:
        subprocess.run(["bash", lab_sh, "down"], env=env, check=False, timeout=120)


def read_env_file(path):
    env = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                k, v = line.split("=", 1)
                env[k] = v
    return env


def tree_copy(dest):
    """The files git would commit (tracked and untracked, not ignored), copied to dest."""
    files = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=ROOT, check=True,
                           capture_output=True).stdout.decode().split("\0")
    for f in files:
        src = os.path.join(ROOT, f)
        if f and os.path.isfile(src) and not os.path.islink(src):
            os.makedirs(os.path.join(dest, os.path.dirname(f)), exist_ok=True)
            with open(src, "rb") as a, open(os.path.join(dest, f), "wb") as b:
                b.write(a.read())
    return dest


@pytest.fixture(scope="session")
def lab():
    """The lab's env (ACCEPTOR_URL, DIALER_URL, CLUSTER<i>_URL, CONSUL_BIN...), started if needed."""
    subprocess.run(["bash", os.path.join(ROOT, "lab", "lab.sh"), "up"], check=True, cwd=ROOT)
    return read_env_file(os.path.join(STATE, "env"))


@pytest.fixture(scope="session")
def collections_path(tmp_path_factory):
    """A collections path in which seed.consul_peering is this checkout."""
    base = tmp_path_factory.mktemp("collections")
    ns = base / "ansible_collections" / "seed"
    ns.mkdir(parents=True)
    os.symlink(ROOT, str(ns / "consul_peering"))
    return str(base)


def consul(url, method="GET", path="/", body=None, token=None, timeout=10):
    """A direct call to Consul for assertions (test-side, independent of the collection)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, method=method)
    if token:
        req.add_header("X-Consul-Token", token)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            text = resp.read().decode()
            return resp.status, (json.loads(text) if text else None)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def wait_for(probe, timeout=60, interval=0.5):
    """Poll probe() until truthy; bounded. Returns the last value."""
    deadline = time.monotonic() + timeout
    value = probe()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = probe()
    return value


def delete_all_peerings(url, timeout=60):
    status, peerings = consul(url, path="/v1/peerings")
    for p in peerings or []:
        consul(url, "DELETE", "/v1/peering/" + p["Name"])
    return wait_for(lambda: not (consul(url, path="/v1/peerings")[1] or []), timeout=timeout)


# The JSON stdout callback shared with bench/ (tests/utils/callback_plugins/seed_json.py):
# {"plays": [{"tasks": [{"task": {...}, "hosts": {...}}]}], "stats": {...}}.
CALLBACK_DIR = os.path.join(ROOT, "tests", "utils", "callback_plugins")
JSON_CALLBACK_NAME = "seed_json"


class AnsibleRun:
    def __init__(self, proc):
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.output = proc.stdout + proc.stderr

    def json(self):
        """The JSON callback's output (json_output=True): {"plays": [...], "stats": {...}}."""
        text = self.stdout
        return json.loads(text[text.index("{"):])


@pytest.fixture
def ansible(collections_path, tmp_path):
    """Run ansible / ansible-playbook with this collection; returns AnsibleRun.

    ansible(["localhost", "-m", "seed.consul_peering.peering_info", "-a", "..."], env={...})
    ansible(["playbook.yml", "-i", "inv"], playbook=True, json=True)
    """

    def run(args, env=None, playbook=False, json_output=False, timeout=600):
        full_env = dict(os.environ)
        full_env.update({
            "ANSIBLE_COLLECTIONS_PATH": collections_path,
            "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
            "ANSIBLE_HOST_KEY_CHECKING": "False",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False",
            "ANSIBLE_LOCALHOST_WARNING": "False",
            "PATH": VENV_BIN + os.pathsep + full_env.get("PATH", ""),
        })
        for k in ("CONSUL_HTTP_ADDR", "CONSUL_HTTP_TOKEN", "CONSUL_HTTP_TOKEN_FILE", "CONSUL_HTTP_SSL",
                  "CONSUL_CACERT", "CONSUL_CAPATH", "CONSUL_PARTITION", "CONSUL_CLIENT_CERT", "CONSUL_CLIENT_KEY",
                  "CONSUL_TLS_SERVER_NAME", "CONSUL_HTTP_SSL_VERIFY"):
            full_env.pop(k, None)
        if json_output:
            full_env["ANSIBLE_CALLBACK_PLUGINS"] = CALLBACK_DIR
            full_env["ANSIBLE_STDOUT_CALLBACK"] = JSON_CALLBACK_NAME
            full_env["ANSIBLE_CALLBACK_RESULT_FORMAT"] = "json"
            if not playbook:
                full_env["ANSIBLE_LOAD_CALLBACK_PLUGINS"] = "1"
        full_env.update(env or {})
        cmd = [os.path.join(VENV_BIN, "ansible-playbook" if playbook else "ansible")] + list(args)
        proc = subprocess.run(cmd, check=False, env=full_env, capture_output=True, text=True, timeout=timeout, cwd=str(tmp_path))
        return AnsibleRun(proc)

    return run


@pytest.fixture
def counting_proxy():
    """counting_proxy(target_url) -> CountingProxy (started; stopped after the test)."""
    proxies = []

    def make(target, drop_answer=None):
        p = CountingProxy(target, drop_answer=drop_answer).start()
        proxies.append(p)
        return p

    yield make
    for p in proxies:
        with contextlib.suppress(Exception):
            p.stop()
