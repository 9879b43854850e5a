# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""peering_token, peering_establish and peering_info against the real two-cluster lab, run by Ansible.

Every module call goes through `ansible` or `ansible-playbook`; results are read from the JSON
callback of the `ansible` fixture (json_output=True). Each test starts and ends with none of its
peerings (names starting with "it-") on either cluster; peerings of other tests sharing the lab
are left alone.
"""

from __future__ import annotations

import json
import textwrap
import time

import pytest

from ansible_collections.seed.consul_peering.plugins.module_utils import _peering as pt

from conftest import consul, wait_for

PREFIX = "it-"
# The names each cluster knows the other by.
DIALER_NAME = "it-dialer"      # on the acceptor (cluster1)
ACCEPTOR_NAME = "it-acceptor"  # on the dialer (cluster2)


def own_peerings(url):
    return [p for p in consul(url, path="/v1/peerings")[1] or [] if p["Name"].startswith(PREFIX)]


def delete_own_peerings(url, timeout=60):
    """delete_all_peerings() limited to this file's peerings: other tests may be using the lab."""
    for p in own_peerings(url):
        consul(url, "DELETE", "/v1/peering/" + p["Name"])
    return wait_for(lambda: not own_peerings(url), timeout=timeout)


@pytest.fixture
def urls(lab):
    """(acceptor url, dialer url), with none of this file's peerings before and after the test."""
    acceptor, dialer = lab["ACCEPTOR_URL"], lab["DIALER_URL"]
    for url in (acceptor, dialer):
        assert delete_own_peerings(url), "peerings left on %s" % url
    yield acceptor, dialer
    for url in (acceptor, dialer):
        assert delete_own_peerings(url), "peerings left on %s" % url


@pytest.fixture
def call(ansible):
    """call(module, args, check=False, diff=False, env=None) -> (AnsibleRun, the task's result)."""

    def run(module, args, check=False, diff=False, env=None):
        cli = ["localhost", "-m", "seed.consul_peering." + module, "-a", json.dumps(args)]
        if run.in_process is False:
            cli += ["-e", "seed_consul_peering_in_process=false"]
        if check:
            cli.append("--check")
        if diff:
            cli.append("--diff")
        proc = ansible(cli, env=env, json_output=True)
        try:
            result = proc.json()["plays"][0]["tasks"][0]["hosts"]["localhost"]
        except (ValueError, KeyError, IndexError):
            pytest.fail("no JSON result from ansible (rc %s):\n%s" % (proc.rc, proc.output))
        return proc, result

    # False: every call of the test runs as a module process (the path over SSH) instead of in the worker.
    run.in_process = None
    return run


def peering(url, name):
    status, body = consul(url, path="/v1/peering/" + name)
    return body if status == 200 else None


def state(url, name):
    p = peering(url, name)
    return p["State"] if p else None


def peerings(url):
    return sorted((p["Name"], p["State"], p["ID"]) for p in own_peerings(url))


def generate(call, acceptor, name=DIALER_NAME, **extra):
    proc, result = call("peering_token", dict(url=acceptor, peer_name=name, **extra))
    assert proc.rc == 0, proc.output
    assert result["changed"] is True
    return result["peering_token"]


def establish(call, dialer, token, name=ACCEPTOR_NAME, **extra):
    proc, result = call("peering_establish", dict(url=dialer, peer_name=name, peering_token=token, **extra))
    assert proc.rc == 0, proc.output
    return result


def peer(call, acceptor, dialer):
    token = generate(call, acceptor)
    result = establish(call, dialer, token)
    assert result["changed"] is True
    assert result["peering"]["state"] == "ACTIVE"
    return token


def failure(proc, result):
    assert proc.rc != 0, proc.output
    assert result.get("failed") is True, result
    return result["msg"]


# --- the lifecycle ---------------------------------------------------------------------

@pytest.mark.parametrize("in_process", [True, False], ids=["in-process", "module-process"])
def test_generate_establish_then_nothing_changes(call, urls, in_process):
    acceptor, dialer = urls
    call.in_process = in_process
    proc, first = call("peering_token", dict(url=acceptor, peer_name=DIALER_NAME, meta={"env": "lab"}))
    assert proc.rc == 0, proc.output
    assert first["changed"] is True
    assert first["operation"] == "generate"
    token = first["peering_token"]
    assert first["peering"]["state"] == "PENDING"
    assert first["token_info"]["peer_id"] == first["peering"]["id"]
    assert first["peering"]["meta"] == {"env": "lab"}

    est = establish(call, dialer, token)
    assert est["changed"] is True
    assert est["operation"] == "establish"
    assert est["peering"]["state"] == "ACTIVE"
    assert est["token_info"]["peer_id"] == first["peering"]["id"]

    # Both sides ACTIVE and describing the same peering.
    assert wait_for(lambda: state(acceptor, DIALER_NAME) == "ACTIVE", timeout=30)
    assert state(dialer, ACCEPTOR_NAME) == "ACTIVE"
    assert peering(acceptor, DIALER_NAME)["ID"] == peering(dialer, ACCEPTOR_NAME)["PeerID"]

    proc, again = call("peering_token", dict(url=acceptor, peer_name=DIALER_NAME))
    assert proc.rc == 0, proc.output
    assert again["changed"] is False
    assert "peering_token" not in again
    assert again["peering"]["state"] == "ACTIVE"

    est_again = establish(call, dialer, token)
    assert est_again["changed"] is False
    assert est_again["operation"] == "none"

    proc, info = call("peering_info", dict(url=dialer, peer_name=ACCEPTOR_NAME, wait_for="active"))
    assert proc.rc == 0, proc.output
    assert info["exists"] is True
    assert info["peering"]["role"] == "dialer"
    assert info["peering"]["peer_id"] == first["peering"]["id"]
    assert info["changed"] is False


def test_used_token_on_a_new_name_fails_clearly(call, urls):
    acceptor, dialer = urls
    token = peer(call, acceptor, dialer)
    proc, result = call("peering_establish", dict(url=dialer, peer_name="it-acceptor-2", peering_token=token))
    msg = failure(proc, result)
    assert msg.startswith(pt.MSG_SECRET_USED), msg
    assert "invalid peering establishment secret" in msg


def test_token_from_the_same_cluster_fails_clearly(call, urls):
    acceptor, dialer = urls
    token = generate(call, acceptor)
    proc, result = call("peering_establish", dict(url=acceptor, peer_name="it-self", peering_token=token))
    msg = failure(proc, result)
    assert msg.startswith(pt.MSG_SAME_CLUSTER), msg
    assert "within the same cluster" in msg


def test_names_keep_their_side(call, urls):
    acceptor, dialer = urls
    token = peer(call, acceptor, dialer)
    # The dialer's name cannot get a token, the acceptor's name cannot dial.
    proc, result = call("peering_token", dict(url=dialer, peer_name=ACCEPTOR_NAME))
    assert failure(proc, result) == pt.MSG_NAME_IS_DIALER.format(name=ACCEPTOR_NAME)
    proc, result = call("peering_establish", dict(url=acceptor, peer_name=DIALER_NAME, peering_token=token))
    assert failure(proc, result) == pt.MSG_NAME_IS_ACCEPTOR.format(name=DIALER_NAME)


def test_regenerate_on_a_pending_peering_replaces_the_token(call, urls):
    acceptor, dialer = urls
    old = generate(call, acceptor)
    proc, result = call("peering_token", dict(url=acceptor, peer_name=DIALER_NAME, regenerate=True))
    assert proc.rc == 0, proc.output
    assert result["changed"] is True
    assert result["operation"] == "regenerate"
    new = result["peering_token"]
    assert new != old
    assert result["token_info"]["peer_id"] == pt.decode_token(old)["PeerID"]

    proc, result = call("peering_establish", dict(url=dialer, peer_name=ACCEPTOR_NAME, peering_token=old))
    assert failure(proc, result).startswith(pt.MSG_SECRET_USED)

    est = establish(call, dialer, new)
    assert est["changed"] is True
    assert est["peering"]["state"] == "ACTIVE"


def test_check_mode_writes_nothing(call, urls):
    acceptor, dialer = urls
    proc, result = call("peering_token", dict(url=acceptor, peer_name=DIALER_NAME), check=True, diff=True)
    assert proc.rc == 0, proc.output
    assert result["changed"] is True
    assert "peering_token" not in result
    assert peerings(acceptor) == []

    token = generate(call, acceptor)
    before = (peerings(acceptor), peerings(dialer))
    proc, result = call("peering_establish", dict(url=dialer, peer_name=ACCEPTOR_NAME, peering_token=token),
                        check=True, diff=True)
    assert proc.rc == 0, proc.output
    assert result["changed"] is True
    assert result["diff"]["after"]["state"] == "ACTIVE"
    assert (peerings(acceptor), peerings(dialer)) == before

    proc, result = call("peering_token", dict(url=acceptor, peer_name=DIALER_NAME, state="absent"), check=True)
    assert proc.rc == 0, proc.output
    assert result["changed"] is True
    assert (peerings(acceptor), peerings(dialer)) == before
    # The check-mode runs consumed nothing: the token still establishes.
    assert establish(call, dialer, token)["peering"]["state"] == "ACTIVE"


def test_delete_both_sides_and_peer_again(call, urls):
    acceptor, dialer = urls
    peer(call, acceptor, dialer)

    proc, result = call("peering_establish", dict(url=dialer, peer_name=ACCEPTOR_NAME, state="absent"), diff=True)
    assert proc.rc == 0, proc.output
    assert result["changed"] is True
    assert result["diff"]["before"]["state"] == "ACTIVE"
    assert peering(dialer, ACCEPTOR_NAME) is None
    assert wait_for(lambda: state(acceptor, DIALER_NAME) == "TERMINATED", timeout=30)

    proc, result = call("peering_token", dict(url=acceptor, peer_name=DIALER_NAME, state="absent"))
    assert proc.rc == 0, proc.output
    assert result["changed"] is True
    assert peering(acceptor, DIALER_NAME) is None

    for module, url, name in (("peering_token", acceptor, DIALER_NAME), ("peering_establish", dialer, ACCEPTOR_NAME)):
        proc, result = call(module, dict(url=url, peer_name=name, state="absent"))
        assert proc.rc == 0, proc.output
        assert result["changed"] is False

    peer(call, acceptor, dialer)
    assert wait_for(lambda: state(acceptor, DIALER_NAME) == "ACTIVE", timeout=30)


def test_terminated_acceptor_peering_is_made_anew(call, urls):
    acceptor, dialer = urls
    first = peer(call, acceptor, dialer)
    old_id = pt.decode_token(first)["PeerID"]
    proc, dummy = call("peering_establish", dict(url=dialer, peer_name=ACCEPTOR_NAME, state="absent"))
    assert proc.rc == 0, proc.output
    assert wait_for(lambda: state(acceptor, DIALER_NAME) == "TERMINATED", timeout=30)

    proc, result = call("peering_token", dict(url=acceptor, peer_name=DIALER_NAME))
    assert proc.rc == 0, proc.output
    assert result["operation"] == "recreate"
    assert result["peering"]["state"] == "PENDING"
    assert result["peering"]["id"] != old_id
    est = establish(call, dialer, result["peering_token"])
    assert est["peering"]["state"] == "ACTIVE"


def test_terminated_dialer_peering_is_established_again(call, urls):
    acceptor, dialer = urls
    peer(call, acceptor, dialer)
    proc, dummy = call("peering_token", dict(url=acceptor, peer_name=DIALER_NAME, state="absent"))
    assert proc.rc == 0, proc.output
    assert wait_for(lambda: state(dialer, ACCEPTOR_NAME) == "TERMINATED", timeout=30)

    token = generate(call, acceptor)
    est = establish(call, dialer, token)
    assert est["changed"] is True
    assert est["operation"] == "reestablish"
    assert est["peering"]["state"] == "ACTIVE"


# --- connection -------------------------------------------------------------------------

def test_adhoc_info_with_the_address_from_the_environment_only(ansible, urls):
    acceptor = urls[0]
    host_port = acceptor.split("://", 1)[1]
    proc = ansible(["localhost", "-m", "seed.consul_peering.peering_info"], env={"CONSUL_HTTP_ADDR": host_port})
    assert proc.rc == 0, proc.output
    result = proc.json()
    assert result["changed"] is False
    assert isinstance(result["peerings"], list)
    assert [p for p in result["peerings"] if p["name"].startswith(PREFIX)] == []


def test_closed_port_fails_clearly_in_bounded_time(call, urls):
    started = time.monotonic()
    proc, result = call("peering_info", dict(url="http://127.0.0.1:1", peer_name=DIALER_NAME))
    elapsed = time.monotonic() - started
    msg = failure(proc, result)
    assert "cannot reach Consul at http://127.0.0.1:1" in msg
    assert "connection refused" in msg
    assert "Traceback" not in proc.output
    assert elapsed < 60


# --- secrets ----------------------------------------------------------------------------

LIFECYCLE = """
- name: Peering lifecycle
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/seed.consul_peering.consul:
      timeout: 5
  tasks:
    - name: Generate
      seed.consul_peering.peering_token:
        url: "{{ acceptor }}"
        peer_name: %(dialer_name)s
      register: generated
      no_log: true

    - name: Keep the token where the test can find it, to search the output for it
      ansible.builtin.copy:
        content: "{{ generated.peering_token }}"
        dest: "{{ token_file }}"
        mode: "0600"
      no_log: true

    - name: Establish
      seed.consul_peering.peering_establish:
        url: "{{ dialer }}"
        peer_name: %(acceptor_name)s
        peering_token: "{{ generated.peering_token }}"

    - name: Establish again
      seed.consul_peering.peering_establish:
        url: "{{ dialer }}"
        peer_name: %(acceptor_name)s
        peering_token: "{{ generated.peering_token }}"

    - name: A used token on a new name
      seed.consul_peering.peering_establish:
        url: "{{ dialer }}"
        peer_name: it-other
        peering_token: "{{ generated.peering_token }}"
      ignore_errors: true

    - name: Generate again
      seed.consul_peering.peering_token:
        url: "{{ acceptor }}"
        peer_name: %(dialer_name)s
      no_log: true

    - name: Both sides active
      seed.consul_peering.peering_info:
        url: "{{ item.url }}"
        peer_name: "{{ item.name }}"
        wait_for: active
      loop:
        - {url: "{{ acceptor }}", name: %(dialer_name)s}
        - {url: "{{ dialer }}", name: %(acceptor_name)s}

    - name: Delete on the dialer
      seed.consul_peering.peering_establish:
        url: "{{ dialer }}"
        peer_name: %(acceptor_name)s
        state: absent

    - name: Delete on the acceptor
      seed.consul_peering.peering_token:
        url: "{{ acceptor }}"
        peer_name: %(dialer_name)s
        state: absent
""" % dict(dialer_name=DIALER_NAME, acceptor_name=ACCEPTOR_NAME)


@pytest.mark.parametrize("in_process", [True, False], ids=["in-process", "module-process"])
def test_lifecycle_at_vvv_shows_neither_token_nor_secret(ansible, urls, tmp_path, in_process):
    acceptor, dialer = urls
    playbook = tmp_path / "lifecycle.yml"
    playbook.write_text(textwrap.dedent(LIFECYCLE))
    token_file = tmp_path / "token"
    extra = json.dumps(dict(acceptor=acceptor, dialer=dialer, token_file=str(token_file),
                            seed_consul_peering_in_process=in_process))
    proc = ansible([str(playbook), "-i", "localhost,", "-c", "local", "-vvv", "-e", extra], playbook=True)
    assert proc.rc == 0, proc.output
    path = "runs in the controller's worker" if in_process else "runs as a module: seed_consul_peering_in_process is false"
    assert path in proc.output
    assert "ok: [localhost]" in proc.output or "changed: [localhost]" in proc.output

    token = token_file.read_text().strip()
    secret = pt.decode_token(token)["EstablishmentSecret"]
    assert len(token) > 100 and len(secret) >= 32
    # The token's tail is the base64 of the part that holds the secret.
    for needle in (token, token[-120:], secret):
        assert needle not in proc.output, "a secret appears in the output"
    assert pt.MSG_SECRET_USED in proc.output
    assert peerings(acceptor) == [] and peerings(dialer) == []


@pytest.mark.parametrize("in_process", [True, False], ids=["in-process", "module-process"])
def test_each_path_runs_where_it_says(ansible, urls, in_process):
    """A local connection runs the module's code in the worker: no AnsiballZ payload is built or run."""
    acceptor, dummy = urls
    cli = ["localhost", "-m", "seed.consul_peering.peering_info", "-a", json.dumps(dict(url=acceptor)), "-vvv"]
    if not in_process:
        cli += ["-e", "seed_consul_peering_in_process=false"]
    proc = ansible(cli)
    assert proc.rc == 0, proc.output
    assert "localhost | SUCCESS" in proc.output
    if in_process:
        assert "seed.consul_peering.peering_info runs in the controller's worker (local connection)" in proc.output
        assert "AnsiballZ_peering_info.py" not in proc.output
    else:
        assert "seed.consul_peering.peering_info runs as a module: seed_consul_peering_in_process is false" in proc.output
        assert "AnsiballZ_peering_info.py" in proc.output


# --- one request when nothing changes ---------------------------------------------------

def test_idempotent_calls_make_exactly_one_request(call, urls, counting_proxy):
    acceptor, dialer = urls
    token = peer(call, acceptor, dialer)
    assert wait_for(lambda: state(acceptor, DIALER_NAME) == "ACTIVE", timeout=30)
    to_acceptor, to_dialer = counting_proxy(acceptor), counting_proxy(dialer)

    cases = (
        (to_acceptor, "peering_token", dict(peer_name=DIALER_NAME)),
        (to_acceptor, "peering_token", dict(peer_name=DIALER_NAME, meta=None)),
        (to_dialer, "peering_establish", dict(peer_name=ACCEPTOR_NAME, peering_token=token)),
        (to_dialer, "peering_establish", dict(peer_name=ACCEPTOR_NAME, peering_token=token, wait=False)),
        (to_acceptor, "peering_info", dict(peer_name=DIALER_NAME)),
        (to_acceptor, "peering_info", dict(peer_name=DIALER_NAME, wait_for="active")),
        (to_dialer, "peering_info", {}),
        (to_acceptor, "peering_token", dict(peer_name="it-nothing", state="absent")),
        (to_dialer, "peering_establish", dict(peer_name="it-nothing", state="absent")),
    )
    for proxy, module, args in cases:
        proxy.reset()
        proc, result = call(module, dict(args, url=proxy.url))
        assert proc.rc == 0, proc.output
        assert result["changed"] is False, (module, args)
        assert proxy.total() == 1, (module, args, dict(proxy.counts))
        assert proxy.writes() == 0
