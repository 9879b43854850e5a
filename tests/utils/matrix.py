# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The Consul x ansible-core compatibility matrix (make test-matrix); writes docs/compatibility.md.

  python tests/utils/matrix.py [--consul 1.14.11,1.18.2,1.22.7] [--core 2.16,2.21] [--quick] [--only-doc]

Cells: every Consul release with the newest ansible-core, and every ansible-core with the newest
Consul (not the full cross product). For each ansible-core: the unit suite; `ansible-test sanity`
for the oldest and the newest. For each cell: tests/integration/test_smoke.py. Then
tests/integration/test_versions.py (mixed-version pairs, in-place upgrade from the oldest to the
newest Consul) with the newest ansible-core.

--quick (make test's CI coverage): no sanity, no mixed/upgrade, and docs/compatibility.md is not
rewritten; its results go to tests/output/matrix/results.json. Other runs accumulate their results
in docs/compatibility.json (committed, each result with its date), so a partial run
(--consul/--core, or a run on another machine) updates its cells and keeps the others;
docs/compatibility.md is generated from that file. Environment: MATRIX_CONSUL, MATRIX_CORE (comma lists), SMOKE_PORT_BASE
(default 13000), MATRIX_NICE (default 10).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "tests", "output", "matrix")
# The record the generated doc is made from: committed, so that results from several runs and machines add up.
RESULTS = os.path.join(ROOT, "docs", "compatibility.json")
DOC = os.path.join(ROOT, "docs", "compatibility.md")
NICE = ["nice", "-n", os.environ.get("MATRIX_NICE", "10")]


def sh(cmd, env=None, timeout=3600, log=None, cwd=ROOT):
    """Run cmd; returns (rc, output, seconds). The output goes to log (a file) too."""
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
        rc, out = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as e:
        rc, out = 124, "%s\nTIMEOUT after %ss" % ((e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes)
                                                  else (e.stdout or ""), timeout)
    if log:
        os.makedirs(os.path.dirname(log), exist_ok=True)
        with open(log, "w") as f:
            f.write("$ %s\n%s" % (" ".join(cmd), out))
    return rc, out, round(time.monotonic() - t0)


def listing(cmd):
    return subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout.split()


def summary(out):
    """pytest's closing line, e.g. '12 passed in 80.1s', or the last line."""
    lines = [ln.strip("= ") for ln in out.splitlines() if re.search(r"\d+ (passed|failed|error)", ln)]
    return lines[-1] if lines else (out.strip().splitlines() or ["no output"])[-1][:200]


def load():
    try:
        with open(RESULTS) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


TOUCHED = set()  # (section, key) this run measured: save() merges only those into the file


def put(results, section, key, value):
    results.setdefault(section, {})[key] = value
    TOUCHED.add((section, key))


def save(results):
    """Merge what this run measured into the results file (another run may have added other cells)."""
    os.makedirs(OUT, exist_ok=True)
    import fcntl
    with open(os.path.join(OUT, "results.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        merged = load()
        for section, key in TOUCHED:
            if key is None:
                merged[section] = results[section]
            else:
                merged.setdefault(section, {})[key] = results[section][key]
        with open(RESULTS + ".tmp", "w") as f:
            json.dump(merged, f, indent=2, sort_keys=True)
        os.replace(RESULTS + ".tmp", RESULTS)
    results.update(merged)


def today():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def consul_bin(version):
    env = {k: v for k, v in os.environ.items() if k != "CONSUL_BIN"}
    env["CONSUL_VERSION"] = version
    rc, out, secs = sh(NICE + ["bash", "lab/consul.sh"], env=env, timeout=3600,
                       log=os.path.join(OUT, "consul-%s.log" % version))
    if rc != 0:
        return None, out
    path = out.strip().splitlines()[-1]
    return path, out


def build_seconds(path):
    try:
        with open(os.path.join(os.path.dirname(path), "build-seconds")) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def core_bin(minor):
    rc, out, secs = sh(NICE + ["bash", "tests/utils/core_venv.sh", minor], timeout=1800,
                       log=os.path.join(OUT, "venv-%s.log" % minor))
    # core_venv.sh prints the venv's bin directory on stdout; its progress and pip's go to stderr, which
    # sh() appends after stdout, so the directory is the last line that names one, not the last line.
    dirs = [line.strip() for line in out.splitlines() if line.strip().endswith("/bin") and os.path.isdir(line.strip())]
    return (dirs[-1] if rc == 0 and dirs else None), out


def pytest_env(extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "LAB_", "CLUSTER", "CONSUL_"))}
    env.pop("ANSIBLE_COLLECTIONS_PATH", None)
    env.update(extra)
    return env


def run_units(bindir, minor, results):
    rc, out, secs = sh(NICE + [os.path.join(bindir, "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider",
                               "tests/unit"], env=pytest_env({}), timeout=1800,
                       log=os.path.join(OUT, "units-%s.log" % minor))
    put(results, "units", minor, {"ok": rc == 0, "summary": summary(out), "seconds": secs, "date": today()})
    return rc == 0


def run_sanity(bindir, minor, results):
    """ansible-test sanity of this release, on a copy of the tree (like make sanity)."""
    tree = os.path.join(ROOT, "tests", "output", "sanity-%s" % minor, "ansible_collections", "seed", "consul_peering")
    shutil.rmtree(os.path.dirname(os.path.dirname(os.path.dirname(tree))), ignore_errors=True)
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           check=True, capture_output=True).stdout.decode().split("\0")
    for f in files:
        src = os.path.join(ROOT, f)
        if f and os.path.isfile(src):
            os.makedirs(os.path.join(tree, os.path.dirname(f)), exist_ok=True)
            shutil.copy2(src, os.path.join(tree, f))
    subprocess.run(["git", "init", "-q"], cwd=tree, check=True)
    subprocess.run(["git", "add", "-A"], cwd=tree, check=True)
    python = listing([os.path.join(bindir, "python"), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"])[0]
    # ansible-test fetches a pip bootstrap script this machine may not reach: the stand-in, for
    # whichever pip version this ansible-test asks for.
    internal = os.path.join(listing([os.path.join(bindir, "python"), "-c",
                                     "import ansible_test, os; print(os.path.dirname(ansible_test.__file__))"])[0],
                            "_internal", "python_requirements.py")
    cache = os.path.expanduser("~/.ansible/test/cache")
    os.makedirs(cache, exist_ok=True)
    with open(internal) as f:
        pip_versions = set(re.findall(r"\bpip=['\"]([\d.]+)['\"]", f.read()))
    for v in pip_versions or {"24.2"}:
        target = os.path.join(cache, "get_pip_%s.py" % v.replace(".", "_"))
        if not os.path.exists(target):
            shutil.copy2(os.path.join(ROOT, "tests", "utils", "get_pip_standin.py"), target)
    env = pytest_env({"PATH": bindir + os.pathsep + os.environ["PATH"]})
    rc, out, secs = sh(NICE + [os.path.join(bindir, "ansible-test"), "sanity", "--python", python, "--color", "no",
                               "--requirements"], env=env, timeout=3600, log=os.path.join(OUT, "sanity-%s.log" % minor),
                       cwd=tree)
    tail = [ln for ln in out.splitlines() if ln.startswith(("ERROR", "FATAL"))][:5]
    put(results, "sanity", minor, {
        "ok": rc == 0, "summary": ("passed" if rc == 0 else "; ".join(tail) or summary(out)),
        "seconds": secs, "date": today(), "python": python})
    return rc == 0


def core_python(bindir):
    return listing([os.path.join(bindir, "python"), "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"])[0]


def core_version(bindir):
    return listing([os.path.join(bindir, "python"), "-c", "import ansible.release as r; print(r.__version__)"])[0]


def run_smoke(consul_path, version, bindir, minor, results, port_base):
    report = os.path.join(OUT, "probe-%s.json" % version)
    env = pytest_env({"CONSUL_BIN": consul_path, "CONSUL_VERSION": version, "SMOKE_PORT_BASE": str(port_base),
                      "SMOKE_REPORT": report})
    rc, out, secs = sh(NICE + [os.path.join(bindir, "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider",
                               "tests/integration/test_smoke.py"], env=env, timeout=1800,
                       log=os.path.join(OUT, "smoke-%s-%s.log" % (version, minor)))
    failed_tests = sorted(set(re.findall(r"^FAILED tests/integration/test_smoke.py::(\w+)", out, re.M)))
    put(results, "smoke", "%s|%s" % (version, minor), {
        "ok": rc == 0, "summary": summary(out) + ("; failed: " + ", ".join(failed_tests) if failed_tests else ""),
        "seconds": secs, "date": today()})
    if os.path.exists(report):
        with open(report) as f:
            put(results, "probes", version, json.load(f))
    return rc == 0


def run_versions(old_path, new_path, old, new, bindir, minor, results, port_base):
    env = pytest_env({"SMOKE_OLD_CONSUL_BIN": old_path, "SMOKE_NEW_CONSUL_BIN": new_path,
                      "SMOKE_PORT_BASE": str(port_base)})
    rc, out, secs = sh(NICE + [os.path.join(bindir, "python"), "-m", "pytest", "-v", "-p", "no:cacheprovider",
                               "tests/integration/test_versions.py"], env=env, timeout=1800,
                       log=os.path.join(OUT, "versions-%s-%s.log" % (old, new)))
    tests = {}
    for m in re.finditer(r"::(test_\w+(?:\[[^\]]*\])?) (PASSED|FAILED|ERROR)", out):
        tests[m.group(1)] = m.group(2)
    results["versions"] = {"old": old, "new": new, "core": minor, "ok": rc == 0, "summary": summary(out),
                           "tests": tests, "seconds": secs, "date": today()}
    TOUCHED.add(("versions", None))
    return rc == 0


# --- docs/compatibility.md ------------------------------------------------------------------------

# Releases known not to build with the listed recipe (measured by hand; docs/consul-build.md).
BUILD_NOTES = {
    "1.15.4": "**does not build as released** (agent/structs uses api types its go.mod's api release lacks;"
              " docs/consul-build.md)",
    "1.16.6": "**does not build here** (the checksum database has no entry for its envoyextensions v0.4.1;"
              " docs/consul-build.md)",
    "1.17.3": "**does not build as released** (command/troubleshoot/ports needs a troubleshoot package its"
              " go.mod's release lacks; docs/consul-build.md)",
    "1.18.2": "**does not build as released** (its go.mod's proto-public v0.5.1 and troubleshoot v0.4.1 lack"
              " packages its tree uses; docs/consul-build.md)",
    "1.21.5": "**does not build here** (the module proxy refuses its envoyextensions v0.8.4, 403;"
              " docs/consul-build.md)",
}
# The lines of a failed build that say why (the last line only says to supply a binary).
BUILD_WHY = re.compile(r"403|404|not available|undefined:|verifying go\.mod|cannot find|no required module")


def build_failure(out):
    lines = out.strip().splitlines() or ["no output"]
    why = [ln.strip() for ln in lines if BUILD_WHY.search(ln)]
    return (why[0] if why else lines[-1])[:200]


HANDLING = {
    "supported": "kept",
    "dropped": "**dropped silently** (HTTP 200)",
    "enterprise-only": "refused: Enterprise only",
    "rejected": "refused (HTTP 400)",
}


def mark(entry):
    if not entry:
        return "not run"
    return ("pass" if entry["ok"] else "**FAIL**") + " (%s)" % entry["summary"]


def write_doc(results, consul_versions, core_minors):
    for key, e in results.get("smoke", {}).items():
        log = os.path.join(OUT, "smoke-%s-%s.log" % tuple(key.split("|")))
        if not e["ok"] and "failed:" not in e["summary"] and os.path.exists(log):
            with open(log) as f:
                names = sorted(set(re.findall(r"^FAILED tests/integration/test_smoke.py::(\w+)", f.read(), re.M)))
            if names:
                e["summary"] += "; failed: " + ", ".join(names)
    newest_consul, newest_core = consul_versions[-1], core_minors[-1]
    smoke = results.get("smoke", {})
    proven_consul = [v for v in consul_versions if any(k.startswith(v + "|") and e["ok"] for k, e in smoke.items())]
    proven_core = [m for m in core_minors if results.get("units", {}).get(m, {}).get("ok")
                   and any(k.endswith("|" + m) and e["ok"] for k, e in smoke.items())]
    ver = results.get("versions") or {}
    lines = [
        "# Compatibility: Consul and ansible-core versions",
        "",
        "<!-- Generated by `make test-matrix` (tests/utils/matrix.py) from docs/compatibility.json."
        " Do not edit by hand: rerun the matrix. -->",
        "",
        "**Generated file** (`make test-matrix`, last written %s). Each result carries the date it was"
        " measured. How the matrix is built and run: docs/lab.md and docs/consul-build.md." % today(),
        "",
        "## Support statement",
        "",
        "- **Consul**: %s or later (Community Edition; cluster peering is GA since 1.14). Proven here, built"
        " from the Go module proxy and passing the whole smoke: %s. Releases between them are supported on the"
        " strength of those (not run here: %s)." % (
            consul_versions[0], ", ".join(proven_consul) or "none yet",
            ", ".join(v for v in consul_versions if v not in proven_consul) or "none"),
        "- **Mixed versions and upgrades**: %s" % (
            "pairs of %s and %s in both roles, and an in-place upgrade of a peered pair from %s to %s, %s"
            " (a dialer on 1.21+ needs GRPC_ENFORCE_ALPN_ENABLED=false to reach an acceptor on 1.20 or"
            " earlier: see below)." % (ver["old"], ver["new"], ver["old"], ver["new"],
                                       "pass" if ver.get("ok") else "**FAILED**") if ver else "not run"),
        "- **ansible-core**: %s to %s (`requires_ansible: \">=%s.0\"`), each on the Python listed; proven: %s."
        % (core_minors[0], newest_core, core_minors[0], ", ".join(proven_core) or "none yet"),
        "- Fields a Consul release does not know are listed under *What each Consul release lacks*.",
        "",
        "## Consul releases",
        "",
        "| Consul | build recipe | build time here | smoke with ansible-core %s |" % newest_core,
        "|---|---|---|---|",
    ]
    for v in consul_versions:
        b = results.get("builds", {}).get(v)
        if not b:
            lines.append("| %s | %s | - | not run |" % (v, BUILD_NOTES.get(v, "not built here yet (docs/consul-build.md)")))
            continue
        secs = b.get("seconds")
        failed = BUILD_NOTES.get(v, "**build failed**") + (
            "" if "Supply a consul binary" in b.get("summary", "") else ": " + b.get("summary", ""))
        lines.append("| %s | %s | %s | %s |" % (
            v, b.get("recipe") if b.get("ok") else failed,
            ("%dm%02ds" % divmod(secs, 60) if secs else "(cached before timing)") if b.get("ok") else "- (%s)"
            % b.get("date", "?"),
            mark(results.get("smoke", {}).get("%s|%s" % (v, newest_core)))))
    lines += ["", "## ansible-core releases", "",
              "| ansible-core | Python | unit suite | ansible-test sanity | smoke with Consul %s |" % newest_consul,
              "|---|---|---|---|---|"]
    for m in core_minors:
        c = results.get("cores", {}).get(m, {})
        sanity = results.get("sanity", {}).get(m)
        lines.append("| %s | %s | %s | %s | %s |" % (
            c.get("version", m), c.get("python", "?"), mark(results.get("units", {}).get(m)),
            mark(sanity) if sanity else "not in the matrix (oldest and newest only)",
            mark(results.get("smoke", {}).get("%s|%s" % (newest_consul, m)))))
    cells = sorted(results.get("smoke", {}).items())
    lines += ["", "## Every smoke cell run", "",
              "The smoke (tests/integration/test_smoke.py, its own two-cluster lab): the peering lifecycle with"
              " the modules (peering_token, peering_establish, peering_info), the config-entry modules"
              " (exported_services, service_intentions, service_resolver; a second run changes nothing), the role"
              " through playbooks/peer_clusters.yml with exports, intentions and failover, its rerun through"
              " counting proxies (changed=0, no write), the repair of a peering the acceptor deleted,"
              " playbooks/unpeer_clusters.yml (and its rerun), and the field probe below.", "",
              "| Consul | ansible-core | result | time | date |", "|---|---|---|---|---|"]
    for key, e in cells:
        v, m = key.split("|")
        lines.append("| %s | %s | %s | %ss | %s |" % (v, m, mark(e), e["seconds"], e["date"]))
    lines += ["", "## Mixed versions and in-place upgrade", ""]
    if ver:
        lines += [ALPN_TEXT, "", "tests/integration/test_versions.py, Consul %s and %s, ansible-core %s, %s: %s." % (
            ver["old"], ver["new"], ver["core"], ver["date"], mark(ver)), "",
            "| test | result |", "|---|---|"]
        o, n = ver["old"], ver["new"]
        names = {
            "test_mixed_versions_peer_and_verify[old-new]":
                "acceptor on %s, dialer on %s (with GRPC_ENFORCE_ALPN_ENABLED=false across the grpc-go 1.67 line):"
                " peer, verify, rerun 0 writes, unpeer" % (o, n),
            "test_mixed_versions_peer_and_verify[new-old]":
                "acceptor on %s, dialer on %s: peer, verify, rerun 0 writes, unpeer" % (n, o),
            "test_newer_dialer_to_older_acceptor_without_the_alpn_switch":
                "dialer on %s, acceptor on %s, no workaround: establishing fails with Consul's \"missing selected"
                " ALPN property\" (expected across the grpc-go 1.67 line, Consul <= 1.20 vs >= 1.21)" % (n, o),
            "test_upgrade_in_place_keeps_the_peering":
                "peered on %s, both servers restarted on %s with the same data dirs: still ACTIVE (same peering ID),"
                " imports visible, role rerun changed=0 with 0 writes" % (o, n),
        }
        for t, r in sorted(ver["tests"].items()):
            lines.append("| %s | %s |" % (names.get(t, t), r))
    else:
        lines.append("not run")
    probes = results.get("probes", {})
    if probes:
        versions = [v for v in consul_versions if v in probes]
        lines += ["", "## What each Consul release lacks", "",
                  "A raw HTTP probe (no collection code) writes each field to the server and reads it back:"
                  " *kept*, *dropped silently* (accepted but gone on the read), or refused. The *introduced*"
                  " column is the first Consul CE release whose source has the field (Consul's source and"
                  " CHANGELOG); the probe fails the smoke when a server disagrees with it.", "",
                  "| field | introduced | " + " | ".join(versions) + " |",
                  "|---|---|" + "---|" * len(versions)]
        names = [p["probe"] for p in probes[versions[-1]]["probes"]]
        for n in names:
            row = []
            intro = ""
            for v in versions:
                p = next((p for p in probes[v]["probes"] if p["probe"] == n), None)
                intro = p["introduced"] if p else intro
                row.append(HANDLING.get(p["outcome"], p["outcome"]) if p else "-")
            lines.append("| %s | %s | %s |" % (n, intro, " | ".join(row)))
        lines += ["", "Refusal texts seen (first release of each):", ""]
        seen = set()
        for v in versions:
            for p in probes[v]["probes"]:
                if p["outcome"] in ("rejected", "enterprise-only", "dropped") and (p["probe"], p["outcome"]) not in seen:
                    seen.add((p["probe"], p["outcome"]))
                    lines.append("- %s, Consul %s: %s" % (p["probe"], v, " ".join(p["detail"].split()).replace("|", "\\|")))
    lines += ["", "## Known problems the matrix found", "", REPAIR_TEXT, ""]
    lines += ["", "## How the collection handles a field the server lacks", "", HANDLING_TEXT, ""]
    with open(DOC, "w") as f:
        f.write("\n".join(lines))


ALPN_TEXT = """\
**Mixed versions across grpc-go 1.67.** Consul 1.21 and later are built with grpc-go >= 1.67, which
enforces ALPN on TLS connections; Consul 1.20 and earlier (grpc-go < 1.67) select no ALPN protocol on
the gRPC TLS port that peering uses. So a dialer on 1.21+ cannot establish a peering with an acceptor
on <= 1.20: Consul answers `failed to exchange peering secret ... missing selected ALPN property`. Let
the newer cluster accept (dial from the older one), or start the newer servers with
`GRPC_ENFORCE_ALPN_ENABLED=false` (grpc-go's switch) until the older cluster is upgraded. Once both
sides run 1.21+, nothing is needed (the in-place upgrade test)."""


REPAIR_TEXT = """\
**Repair when config entries name the peer** (the smoke's `test_role_pair_rerun_repair_unpeer`, in the
cells marked FAIL above; seen on 1.14.11 and 1.22.7, in most runs but not all, so timing plays a part).
After the acceptor deletes its side and the dialer's peering turns TERMINATED,
establishing again *over* the TERMINATED dialer record leaves the acceptor's new peering TERMINATED and
the dialer's ESTABLISHING, when exported-services / service-resolver entries on the two clusters name the
peer (the smoke exports both ways and fails over to the peer). Reproduced with raw HTTP on 1.22.7.
Deleting the TERMINATED dialer peering first (and waiting until it is gone), then establishing
with the new token, peers them ACTIVE. Until `peering_establish` does that, delete the dialer's peering by
hand (`peering_establish state=absent`) before rerunning the role."""


HANDLING_TEXT = """\
Consul decodes config entries strictly: a field an older release does not know is refused with
HTTP 400, which the modules report with Consul's text. Two cases are not refused by the server: a
field the release knows but Consul CE keeps only in Enterprise (sameness groups, refused with an
"enterprise" message on 1.16 and later), and request bodies of the peering endpoints, which are
decoded leniently (an unknown field there would be dropped silently). The collection reads the
server's version (`/v1/agent/self`) and refuses, before any write, an option the server's release
does not have, naming the release that introduced it (the table above). Where that check is not
(yet) implemented for a field, the server's own refusal is what the user sees."""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--consul", default=os.environ.get("MATRIX_CONSUL", ""))
    ap.add_argument("--core", default=os.environ.get("MATRIX_CORE", ""))
    ap.add_argument("--quick", action="store_true", help="units + smoke only; no sanity, no mixed/upgrade, no doc")
    ap.add_argument("--only-doc", action="store_true", help="regenerate docs/compatibility.md from docs/compatibility.json")
    ap.add_argument("--no-versions", action="store_true", help="skip the mixed-version and upgrade tests")
    ap.add_argument("--no-sanity", action="store_true")
    ap.add_argument("--no-smoke", action="store_true")
    ap.add_argument("--no-units", action="store_true")
    ap.add_argument("--cells", default="", help="explicit smoke cells, e.g. 1.14.11:2.21,1.22.7:2.16")
    args = ap.parse_args()
    if args.quick:
        global RESULTS  # pylint: disable=global-statement
        RESULTS = os.path.join(OUT, "results.json")  # make test's quick check leaves the committed record alone

    all_consul = listing(["bash", "lab/consul.sh", "--list"])
    all_core = listing(["bash", "tests/utils/core_venv.sh", "--list"])
    consul_versions = [v for v in (args.consul.split(",") if args.consul else all_consul) if v]
    core_minors = [m for m in (args.core.split(",") if args.core else all_core) if m]
    newest_consul, newest_core = all_consul[-1], all_core[-1]
    oldest_core = all_core[0]
    port_base = int(os.environ.get("SMOKE_PORT_BASE", "13000"))
    results = load()
    failed = []

    if not args.only_doc:
        recipes = {}
        for line in open(os.path.join(ROOT, "lab", "consul.env")):
            m = re.match(r"\s*([\d.|]+)\)\s*(.*?)\s*;;", line)
            if m and "CONSUL_GO_REQUIRE=" in m.group(2):
                for v in m.group(1).split("|"):
                    recipes[v] = "`" + m.group(2).strip() + "`"
        bins = {}
        cell_consul = {c.split(":")[0] for c in args.cells.split(",") if c}
        for v in sorted(set(consul_versions) | {newest_consul} | cell_consul, key=lambda s: [int(x) for x in s.split(".")]):
            print("[matrix] Consul %s: finding or building the binary" % v, flush=True)
            path, out = consul_bin(v)
            if not path:
                failed.append("build %s" % v)
                put(results, "builds", v, {"ok": False, "summary": build_failure(out),
                                           "date": today()})
                continue
            bins[v] = path
            put(results, "builds", v, {"ok": True, "seconds": build_seconds(path),
                                       "recipe": recipes.get(v, "as released"), "date": today()})
        cores = {}
        for m in sorted(set(core_minors) | {newest_core} | {c.split(":")[1] for c in args.cells.split(",") if c}, key=lambda s: [int(x) for x in s.split(".")]):
            print("[matrix] ansible-core %s: venv" % m, flush=True)
            bindir, out = core_bin(m)
            if not bindir:
                failed.append("venv %s" % m)
                continue
            cores[m] = bindir
            put(results, "cores", m, {"version": core_version(bindir), "python": core_python(bindir)})
        save(results)
        for m in ([] if args.no_units else core_minors):
            if m in cores:
                print("[matrix] units on ansible-core %s" % m, flush=True)
                ok = run_units(cores[m], m, results)
                # pytest's own summary line, alone on its line: .ci/run adds these up
                print(results["units"][m]["summary"], flush=True)
                if not ok:
                    failed.append("units %s" % m)
                save(results)
        cells = [(v, newest_core) for v in consul_versions] + [(newest_consul, m) for m in core_minors]
        if args.cells:
            cells = [tuple(c.split(":", 1)) for c in args.cells.split(",") if c]
        for v, m in ([] if args.no_smoke else dict.fromkeys(cells)):
            if v in bins and m in cores:
                print("[matrix] smoke: Consul %s x ansible-core %s" % (v, m), flush=True)
                ok = run_smoke(bins[v], v, cores[m], m, results, port_base)
                print(results["smoke"]["%s|%s" % (v, m)]["summary"], flush=True)
                if not ok:
                    failed.append("smoke %s x %s" % (v, m))
                save(results)
        oldest_consul = all_consul[0]
        if not args.quick and not args.no_versions and oldest_consul in bins and newest_consul in bins \
                and newest_core in cores:
            print("[matrix] mixed versions and in-place upgrade: %s <-> %s" % (oldest_consul, newest_consul), flush=True)
            if not run_versions(bins[oldest_consul], bins[newest_consul], oldest_consul, newest_consul,
                                cores[newest_core], newest_core, results, port_base):
                failed.append("mixed/upgrade")
            print("[matrix]   %s" % results["versions"]["summary"], flush=True)
            save(results)
        if not args.quick and not args.no_sanity:
            for m in sorted({oldest_core, newest_core} & set(core_minors)):
                if m in cores:
                    print("[matrix] ansible-test sanity on ansible-core %s" % m, flush=True)
                    if not run_sanity(cores[m], m, results):
                        failed.append("sanity %s" % m)
                    save(results)
    if not args.quick:
        write_doc(results, all_consul, all_core)
        print("[matrix] wrote %s" % os.path.relpath(DOC, ROOT))
    print("[matrix] %s" % ("all passed" if not failed else "FAILED: " + ", ".join(failed)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
