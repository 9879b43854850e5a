"""The local Consul lab (lab/lab.sh) against real Consul agents.

Each test uses its own LAB_STATE_DIR and a port base away from the default
(18000), so it neither sees nor disturbs a lab that other tests use.
"""

import base64
import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LAB = REPO / "lab" / "lab.sh"

# `up` may have to wait for lab/consul.sh to finish building the binary.
UP_TIMEOUT = 1800
CMD_TIMEOUT = 120


def lab_env(state_dir, port_base, clusters=2):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAB_")}
    env.update(
        LAB_STATE_DIR=str(state_dir),
        LAB_PORT_BASE=str(port_base),
        LAB_CLUSTERS=str(clusters),
    )
    return env


def lab(cmd, env):
    return subprocess.run(
        ["bash", str(LAB), cmd],
        check=False,
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=UP_TIMEOUT if cmd == "up" else CMD_TIMEOUT,
    )


def ok(result):
    assert result.returncode == 0, (
        f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    return result


def read_env_file(state_dir):
    values = {}
    for line in (Path(state_dir) / "env").read_text().splitlines():
        if line and not line.startswith("#"):
            key, dummy, value = line.partition("=")
            values[key] = value
    return values


def http(method, url, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
            return resp.status, (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")


def get(url):
    status, body = http("GET", url)
    assert status == 200, f"GET {url} -> {status}: {body}"
    return body


def running(pid):
    """Alive and not a zombie (a zombie's cmdline is empty)."""
    try:
        return bool(Path(f"/proc/{pid}/cmdline").read_bytes())
    except OSError:
        return False


def cmdline(pid):
    return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")


def pids(state_dir, clusters):
    return [
        int((Path(state_dir) / f"cluster{i}" / "consul.pid").read_text().strip())
        for i in range(1, clusters + 1)
    ]


def wait_for(what, check, timeout=60, interval=0.5):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def assert_clusters_ready(state_dir, clusters):
    env = read_env_file(state_dir)
    assert env["LAB_CLUSTERS"] == str(clusters)
    assert Path(env["CONSUL_BIN"]).is_file()
    leaders, dcs = set(), set()
    for i in range(1, clusters + 1):
        url = env[f"CLUSTER{i}_URL"]
        leader = get(f"{url}/v1/status/leader")
        assert leader, f"cluster{i} has no leader"
        leaders.add(leader)
        datacenter = get(f"{url}/v1/agent/self")["Config"]["Datacenter"]
        assert datacenter == env[f"CLUSTER{i}_DC"] == f"dc{i}"
        dcs.add(datacenter)
        assert get(f"{url}/v1/connect/ca/roots")["Roots"]
        assert get(f"{url}/v1/peerings") == []
    assert len(leaders) == clusters
    assert len(dcs) == clusters
    for i, pid in enumerate(pids(state_dir, clusters), start=1):
        assert running(pid)
        config = Path(state_dir).resolve() / f"cluster{i}" / "consul.hcl"
        assert f"-config-file={config}".encode() in cmdline(pid)
    return env


# --- two clusters: the default lab, its whole life --------------------------------

@pytest.fixture(scope="module")
def lab2(tmp_path_factory):
    state = tmp_path_factory.mktemp("lab2")
    env = lab_env(state, 19000, clusters=2)
    ok(lab("down", env))
    started = time.monotonic()
    first_up = ok(lab("up", env))
    info = {
        "state": state,
        "env": env,
        "first_up": first_up,
        "up_seconds": time.monotonic() - started,
    }
    yield info
    lab("down", env)


def test_up_from_nothing_starts_two_ready_clusters(lab2):
    print(f"up from nothing took {lab2['up_seconds']:.1f}s")
    assert "ready in" in lab2["first_up"].stdout
    env = assert_clusters_ready(lab2["state"], 2)
    assert env["CLUSTER1_URL"] == "http://127.0.0.1:19100"
    assert env["CLUSTER2_URL"] == "http://127.0.0.1:19200"
    assert env["ACCEPTOR_URL"] == env["CLUSTER1_URL"]
    assert env["DIALER_URL"] == env["CLUSTER2_URL"]
    assert env["CLUSTER1_GRPC_PORT"] == "19105"
    assert env["CLUSTER2_GRPC_PORT"] == "19205"
    assert env["CLUSTER2_GRPC_TLS_PORT"] == "19206"


def test_up_again_reuses_running_clusters(lab2):
    before = pids(lab2["state"], 2)
    result = ok(lab("up", lab2["env"]))
    for i in (1, 2):
        assert any(
            line.startswith(f"[lab] cluster{i} ") and "reusing" in line
            for line in result.stdout.splitlines()
        ), result.stdout
    assert "starting" not in result.stdout
    assert pids(lab2["state"], 2) == before


def test_status_reports_all_up(lab2):
    result = ok(lab("status", lab2["env"]))
    lines = result.stdout.splitlines()
    assert len(lines) == 2, result.stdout
    for i, line in enumerate(lines, start=1):
        assert line.startswith(f"cluster{i} dc{i} http://127.0.0.1:19{i}00 up leader=127.0.0.1:"), line


def test_clusters_can_peer(lab2):
    env = read_env_file(lab2["state"])
    acceptor, dialer = env["ACCEPTOR_URL"], env["DIALER_URL"]

    status, body = http("POST", f"{acceptor}/v1/peering/token", {"PeerName": "lab-dialer"})
    assert status == 200, body
    token = json.loads(base64.b64decode(body["PeeringToken"]))
    # The token advertises the acceptor server's gRPC TLS port.
    assert token["ServerAddresses"] == [f"127.0.0.1:{env['CLUSTER1_GRPC_TLS_PORT']}"]

    status, body = http(
        "POST",
        f"{dialer}/v1/peering/establish",
        {"PeerName": "lab-acceptor", "PeeringToken": body["PeeringToken"]},
    )
    assert status == 200, body

    def state(url, name):
        status, body = http("GET", f"{url}/v1/peering/{name}")
        return body["State"] if status == 200 else status

    wait_for("both sides ACTIVE",
             lambda: state(acceptor, "lab-dialer") == "ACTIVE" == state(dialer, "lab-acceptor"))
    assert get(f"{acceptor}/v1/peering/lab-dialer")["ID"] == get(f"{dialer}/v1/peering/lab-acceptor")["PeerID"]

    for url, name in ((dialer, "lab-acceptor"), (acceptor, "lab-dialer")):
        status, body = http("DELETE", f"{url}/v1/peering/{name}")
        assert status == 200, body
    for url, name in ((dialer, "lab-acceptor"), (acceptor, "lab-dialer")):
        wait_for(f"{name} deleted", lambda url=url, name=name: state(url, name) == 404)
    assert get(f"{acceptor}/v1/peerings") == [] == get(f"{dialer}/v1/peerings")


def test_down_stops_everything_and_status_says_down(lab2):
    state = lab2["state"]
    before = pids(state, 2)
    ok(lab("down", lab2["env"]))
    assert not [pid for pid in before if running(pid)]
    assert not list(Path(state).glob("cluster*"))
    assert not (Path(state) / "env").exists()

    result = lab("status", lab2["env"])
    assert result.returncode == 3, result.stdout + result.stderr
    assert all(" down " in line for line in result.stdout.splitlines()), result.stdout

    ok(lab("down", lab2["env"]))  # idempotent


# --- three clusters, starting over a stale pid file --------------------------------

def test_three_clusters_over_a_stale_pid_file(tmp_path):
    env = lab_env(tmp_path, 19400, clusters=3)
    ok(lab("down", env))
    stale = tmp_path / "cluster1"
    stale.mkdir()
    # Our own pid: alive, but certainly not one of the lab's consul agents.
    (stale / "consul.pid").write_text(f"{os.getpid()}\n")
    try:
        result = ok(lab("up", env))
        assert "stale pid file" in result.stdout
        values = assert_clusters_ready(tmp_path, 3)
        assert values["CLUSTER3_URL"] == "http://127.0.0.1:19700"
        assert values["CLUSTER3_DC"] == "dc3"
        status = ok(lab("status", env))
        assert len(status.stdout.splitlines()) == 3
        started = pids(tmp_path, 3)
    finally:
        ok(lab("down", env))
    assert not [pid for pid in started if running(pid)]
    assert not list(tmp_path.glob("cluster*"))


# --- a port held by someone else -----------------------------------------------------

def test_up_refuses_a_port_taken_by_another_process(tmp_path):
    env = lab_env(tmp_path, 19800, clusters=1)
    taken = 19904  # cluster1's server (RPC) port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", taken))
        sock.listen(1)
        try:
            result = lab("up", env)
        finally:
            lab("down", env)
    assert result.returncode != 0
    assert f"port {taken}" in result.stderr, result.stderr
    assert not (tmp_path / "cluster1" / "consul.pid").exists()


# --- variants: ACLs and HTTPS (LAB_ACL=1 LAB_TLS=1) ----------------------------------------

def https_json(env_values, path, token=None):
    import ssl

    ctx = ssl.create_default_context(cafile=env_values["CLUSTER1_CACERT"])
    req = urllib.request.Request(env_values["CLUSTER1_URL"] + path)
    if token:
        req.add_header("X-Consul-Token", token)
    try:
        with urllib.request.urlopen(req, timeout=10, context=ctx) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")


def test_acl_tls_variant_and_refusal_to_switch_variant(tmp_path):
    env = dict(lab_env(tmp_path, 24500, clusters=1), LAB_ACL="1", LAB_TLS="1")
    ok(lab("down", env))
    try:
        first = ok(lab("up", env))
        values = read_env_file(tmp_path)
        assert values["LAB_ACL"] == values["LAB_TLS"] == "1" and values["LAB_MTLS"] == "0"
        assert values["CLUSTER1_URL"] == values["ACCEPTOR_URL"] == "https://127.0.0.1:24600"
        assert values["CLUSTER1_TLS_SERVER_NAME"] == "server.dc1.consul"
        for key in ("CLUSTER1_CACERT", "CLUSTER1_CLIENT_CERT", "CLUSTER1_CLIENT_KEY", "LAB_CACERT"):
            assert Path(values[key]).is_file(), key

        secrets = {}
        for key in [k for k in values if k.startswith("CLUSTER1_TOKEN_FILE")]:
            path = Path(values[key])
            assert path.stat().st_mode & 0o777 == 0o600, key
            secrets[key] = path.read_text().strip()
        assert {"CLUSTER1_TOKEN_FILE", "CLUSTER1_TOKEN_FILE_PEERING", "CLUSTER1_TOKEN_FILE_PEERING_READ",
                "CLUSTER1_TOKEN_FILE_EXPORTS", "CLUSTER1_TOKEN_FILE_INTENTIONS", "CLUSTER1_TOKEN_FILE_VERIFY",
                "CLUSTER1_TOKEN_FILE_ROLE"} <= set(secrets)
        visible = first.stdout + first.stderr + (tmp_path / "env").read_text() \
            + (tmp_path / "cluster1" / "consul.hcl").read_text()
        for key, secret in secrets.items():
            assert len(secret) == 36 and secret not in visible, key

        # HTTPS with the lab's CA; ACLs deny without a token and allow with the management token.
        assert https_json(values, "/v1/status/leader")[0] == 200
        assert https_json(values, "/v1/config/exported-services/default")[0] == 403
        assert https_json(values, "/v1/peering/nobody", secrets["CLUSTER1_TOKEN_FILE"])[0] == 404
        assert https_json(values, "/v1/peering/nobody", secrets["CLUSTER1_TOKEN_FILE_PEERING_READ"])[0] == 404
        status, body = https_json(values, "/v1/config/exported-services/default",
                                  secrets["CLUSTER1_TOKEN_FILE_PEERING_READ"])
        assert status == 403 and "mesh:read" in body
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen("http://127.0.0.1:24600/v1/status/leader", timeout=5)

        before = pids(tmp_path, 1)
        again = ok(lab("up", env))
        assert "reusing" in again.stdout and pids(tmp_path, 1) == before

        # A different variant on the running lab: refused, nothing touched.
        for other in ({"LAB_TLS": "0"}, {"LAB_ACL": "0"}, {"LAB_MTLS": "1"}):
            refused = lab("up", dict(env, **other))
            assert refused.returncode != 0
            assert "run 'lab/lab.sh down' first" in refused.stderr, refused.stderr
            assert "LAB_ACL=1 LAB_TLS=1 LAB_MTLS=0" in refused.stderr, refused.stderr
        assert pids(tmp_path, 1) == before and running(before[0])
        assert read_env_file(tmp_path)["CLUSTER1_URL"] == "https://127.0.0.1:24600"

        # status and down find the variant in the env file.
        bare = {k: v for k, v in env.items() if k not in ("LAB_ACL", "LAB_TLS")}
        status = ok(lab("status", bare))
        assert status.stdout.startswith("cluster1 dc1 https://127.0.0.1:24600 up"), status.stdout
    finally:
        ok(lab("down", env))
    assert not (tmp_path / "tls").exists() and not list(tmp_path.glob("cluster*"))
    assert not (tmp_path / "env").exists()


def test_bad_variant_value_is_refused(tmp_path):
    result = lab("up", dict(lab_env(tmp_path, 24500, clusters=1), LAB_ACL="yes"))
    assert result.returncode != 0
    assert "LAB_ACL must be 0 or 1 (got 'yes')" in result.stderr
