# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The collection as users get it: built tarball, installed with ansible-galaxy, used by FQCN.

The tarball is built from a copy of the working tree (the files git would commit) in which every
local output that galaxy.yml's build_ignore must keep out has been planted, so the member-list
checks bite even on a clean checkout. Everything after the build uses only the installed copy:
a collections path that holds nothing but what `ansible-galaxy collection install` put there.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import tarfile

import pytest
import yaml

from conftest import ROOT, VENV_BIN, tree_copy

sys.path.insert(0, os.path.join(ROOT, "tests", "utils"))
import galaxy_import  # noqa: E402  pylint: disable=wrong-import-position

# Local outputs and tool caches that must never be in the tarball (path in the tree -> planted file).
PLANTED = [
    ".venv/bin/python",
    ".venv-2.16/bin/python",
    ".ansible/collections/x.txt",
    ".cache/x.txt",
    ".pytest_cache/v/cache/nodeids",
    "lab/.state/env",
    "lab/.state/cluster1/consul.log",
    "tests/output/sanity/x.txt",
    "docs/build/html/index.html",
    "bench/results/run.json",
    "collections/ansible_collections/seed/x.txt",
    "ansible_collections/seed/x.txt",
    "context/Containerfile",
    "seed-consul_peering-0.0.1.tar.gz",
    "plugins/modules/__pycache__/peering_info.cpython-311.pyc",
    "plugins/module_utils/stale.pyc",
]
FORBIDDEN_PARTS = {".venv", ".ansible", ".cache", ".pytest_cache", ".git", "__pycache__", "collections",
                   "ansible_collections", "context"}


def run(cmd, env=None, cwd=None, timeout=300):
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, "%s failed (rc %d):\n%s\n%s" % (
        cmd, proc.returncode, proc.stdout[-4000:], proc.stderr[-4000:])
    return proc


def clean_env(collections_path, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "CONSUL_"))}
    env.update({
        "PATH": VENV_BIN + os.pathsep + env.get("PATH", ""),
        "ANSIBLE_COLLECTIONS_PATH": collections_path,
        # Only the install: not the collections that sit beside sys.path entries or in ~/.ansible.
        "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "False",
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
        "ANSIBLE_HOME": str(tmp_path / "ansible-home"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCALHOST_WARNING": "False",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False",
    })
    return env


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """{tarball, members, src} for a tarball built from a copy of the tree with local outputs planted."""
    base = tmp_path_factory.mktemp("packaging")
    src = tree_copy(str(base / "src"))
    for rel in PLANTED:
        path = os.path.join(src, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write("local output, must not be packaged\n")
    out = base / "dist"
    run([os.path.join(VENV_BIN, "ansible-galaxy"), "collection", "build", "--output-path", str(out), src],
        env=clean_env(str(base / "none"), base))
    tarballs = glob.glob(str(out / "*.tar.gz"))
    assert len(tarballs) == 1, tarballs
    with tarfile.open(tarballs[0]) as tar:
        members = sorted(m.name.rstrip("/") for m in tar.getmembers())
    return {"tarball": tarballs[0], "members": members, "src": src, "base": base}


@pytest.fixture(scope="module")
def installed(built):
    """A fresh collections path holding only the installed tarball."""
    path = str(built["base"] / "installed")
    run([os.path.join(VENV_BIN, "ansible-galaxy"), "collection", "install", "--offline", "-p", path,
         built["tarball"]], env=clean_env(path, built["base"]))
    return path


def test_tarball_has_the_collection_and_no_local_output(built):
    members = built["members"]
    with open(os.path.join(ROOT, "galaxy.yml")) as f:
        galaxy = yaml.safe_load(f)
    assert os.path.basename(built["tarball"]) == "seed-consul_peering-%s.tar.gz" % galaxy["version"]
    for rel in PLANTED:
        assert rel not in members, "%s was packaged" % rel
    outputs = ("lab/.state", "tests/output", "docs/build", "bench/results")
    bad = [m for m in members if FORBIDDEN_PARTS & set(m.split("/")) or m.endswith((".pyc", ".tar.gz"))
           or any(m == d or m.startswith(d + "/") for d in outputs) or m.split("/")[0].startswith(".venv")]
    assert bad == [], bad
    modules = sorted(os.path.basename(p) for p in glob.glob(os.path.join(built["src"], "plugins", "modules", "*.py")))
    expected = ["MANIFEST.json", "FILES.json", "README.md", "CHANGELOG.md", "meta/runtime.yml",
                "meta/execution-environment.yml", "meta/ee-requirements.txt",
                "plugins/doc_fragments/consul.py", "plugins/module_utils/consul_api.py",
                "roles/cluster_peering/meta/argument_specs.yml", "roles/cluster_peering/tasks/main.yml",
                "playbooks/peer_clusters.yml", "changelogs/changelog.yaml",
                "roles/cluster_peering/README.md", "COPYING", "REUSE.toml", "LICENSES/GPL-3.0-or-later.txt",
                "docs/docsite/extra-docs.yml", "docs/docsite/links.yml", ".ansible-lint"]
    expected += ["plugins/modules/" + m for m in modules]
    missing = [m for m in expected if m not in members]
    assert missing == [], missing
    # Small: every member is a file of the tree (or a directory of one) or galaxy's own manifests.
    files = [m for m in members if os.path.isfile(os.path.join(built["src"], m))]
    dirs = [m for m in members if os.path.isdir(os.path.join(built["src"], m))]
    assert sorted(files + dirs + ["FILES.json", "MANIFEST.json"]) == members


def test_installed_collection_runs_a_module_by_fqcn(installed, lab, tmp_path):
    env = clean_env(installed, tmp_path)
    doc = json.loads(run([os.path.join(VENV_BIN, "ansible-doc"), "--json", "seed.consul_peering.peering_info"],
                         env=env, cwd=str(tmp_path)).stdout)
    filename = doc["seed.consul_peering.peering_info"]["doc"]["filename"]
    assert filename.startswith(os.path.join(installed, "ansible_collections", "seed", "consul_peering")), filename

    proc = run([os.path.join(VENV_BIN, "ansible"), "localhost", "-m", "seed.consul_peering.peering_info",
                "-a", "url=%s" % lab["ACCEPTOR_URL"], "-e", "ansible_python_interpreter=%s" % os.path.join(VENV_BIN, "python"),
                "--one-line"], env=env, cwd=str(tmp_path))
    out = proc.stdout
    assert "localhost | SUCCESS" in out, out
    result = json.loads(out[out.index("{"):])
    assert result["changed"] is False and isinstance(result["peerings"], list), result


def test_ansible_doc_lists_every_module(installed, built, tmp_path):
    env = clean_env(installed, tmp_path)
    listed = json.loads(run([os.path.join(VENV_BIN, "ansible-doc"), "-l", "--json", "seed.consul_peering"],
                            env=env, cwd=str(tmp_path)).stdout)
    modules = sorted("seed.consul_peering." + os.path.basename(p)[:-3]
                     for p in glob.glob(os.path.join(built["src"], "plugins", "modules", "*.py")))
    assert sorted(listed) == modules
    assert all(listed[m] for m in modules), listed  # every one has a short description


def test_role_argument_spec_renders(installed, tmp_path):
    env = clean_env(installed, tmp_path)
    out = run([os.path.join(VENV_BIN, "ansible-doc"), "-t", "role", "seed.consul_peering.cluster_peering"],
              env=env, cwd=str(tmp_path)).stdout
    with open(os.path.join(ROOT, "roles", "cluster_peering", "meta", "argument_specs.yml")) as f:
        spec = yaml.safe_load(f)["argument_specs"]["main"]
    assert spec["short_description"] in out, out[:2000]
    for option in spec["options"]:
        assert option in out, option


# --- the oldest ansible-core that meta/runtime.yml claims ----------------------------------------

# The newest patch release of the oldest claimed minor (requires_ansible: ">=2.16.0").
OLDEST_CORE = "2.16.19"
OLD_VENV = os.path.join(ROOT, ".venv-2.16")  # git-ignored and build_ignored (.venv-*)
# ansible-core 2.19 added ansible.module_utils.testing.patch_module_args, which the unit tests use;
# on older releases this test harness shim (the same contract on the older _ANSIBLE_ARGS hook) is
# added to .venv-2.16 only. It touches the test harness, not what the modules run on.
with open(os.path.join(ROOT, "tests", "utils", "patch_module_args_shim.py")) as _shim:
    # One copy of the shim, shared with tests/utils/core_venv.sh.
    PATCH_MODULE_ARGS_SHIM = _shim.read()


def pinned(requirements, name):
    with open(os.path.join(ROOT, requirements)) as f:
        for line in f:
            if line.split("==")[0].strip().lower() == name:
                return line.strip()
    raise AssertionError("%s is not pinned in %s" % (name, requirements))


@pytest.fixture(scope="module")
def old_core():
    """.venv-2.16 with ansible-core OLDEST_CORE, requests and pytest as pinned for .venv (made once)."""
    python = os.path.join(OLD_VENV, "bin", "python")
    want = ["ansible-core==" + OLDEST_CORE, pinned("requirements.txt", "requests"),
            pinned("requirements-test.txt", "pytest")]
    marker = os.path.join(OLD_VENV, ".installed")
    have = open(marker).read().split() if os.path.exists(marker) else []
    if have != want:
        if not os.path.exists(python):
            run([sys.executable, "-m", "venv", OLD_VENV])
        run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"] + want, timeout=600)
        with open(marker, "w") as f:
            f.write("\n".join(want))
    site = run([python, "-c", "import ansible, os; print(os.path.dirname(ansible.__file__))"]).stdout.strip()
    shim = os.path.join(site, "module_utils", "testing.py")
    if not os.path.exists(shim):
        with open(shim, "w") as f:
            f.write(PATCH_MODULE_ARGS_SHIM)
    return os.path.join(OLD_VENV, "bin")


def test_oldest_claimed_ansible_core_is_the_tested_one(old_core):
    with open(os.path.join(ROOT, "meta", "runtime.yml")) as f:
        claim = yaml.safe_load(f)["requires_ansible"]
    assert claim == ">=%s.0" % OLDEST_CORE.rsplit(".", 1)[0], claim
    out = run([os.path.join(old_core, "ansible"), "--version"]).stdout
    assert out.splitlines()[0].startswith("ansible [core %s]" % OLDEST_CORE), out


def test_unit_tests_pass_on_oldest_ansible_core(old_core, tmp_path):
    proc = run([os.path.join(old_core, "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider",
                os.path.join(ROOT, "tests", "unit")], cwd=ROOT, timeout=600,
               env=dict({k: v for k, v in os.environ.items() if not k.startswith("PYTEST")},
                        ANSIBLE_LOCAL_TEMP=str(tmp_path / "t")))
    assert " passed" in proc.stdout.splitlines()[-1], proc.stdout[-2000:]


def test_installed_collection_works_on_oldest_ansible_core(old_core, built, lab, tmp_path):
    path = str(tmp_path / "installed")
    env = clean_env(path, tmp_path)
    env["PATH"] = old_core + os.pathsep + env["PATH"]
    run([os.path.join(old_core, "ansible-galaxy"), "collection", "install", "--offline", "-p", path,
         built["tarball"]], env=env)
    proc = run([os.path.join(old_core, "ansible"), "localhost", "-m", "seed.consul_peering.peering_info",
                "-a", "url=%s" % lab["ACCEPTOR_URL"], "-e", "ansible_python_interpreter=%s" % os.path.join(old_core, "python"),
                "--one-line"], env=env, cwd=str(tmp_path))
    out = proc.stdout
    assert "localhost | SUCCESS" in out, out
    assert json.loads(out[out.index("{"):])["changed"] is False
    doc = run([os.path.join(old_core, "ansible-doc"), "-t", "role", "seed.consul_peering.cluster_peering"],
              env=env, cwd=str(tmp_path)).stdout
    assert "cluster_peering_acceptors_group" in doc


# --- publishing metadata (docs/decisions.md, "Ready to publish") ----------------------------------

def load_yaml(rel):
    with open(os.path.join(ROOT, rel)) as f:
        return yaml.safe_load(f)


def test_galaxy_metadata_follows_community_conventions():
    galaxy = load_yaml("galaxy.yml")
    assert {"consul", "hashicorp"} <= set(galaxy["tags"])
    # Galaxy's importer: at most 64 characters per author; no invented address.
    assert all(isinstance(a, str) and len(a) <= 64 and "@" not in a for a in galaxy["authors"]), galaxy["authors"]
    for key in galaxy_import.URL_KEYS:
        assert "example.invalid" not in str(galaxy.get(key, "")), "the test placeholder leaked into galaxy.yml"


def test_lint_skip_of_no_repository_goes_with_the_missing_url():
    """`galaxy[no-repository]` is skipped exactly as long as galaxy.yml has no repository."""
    skipped = "galaxy[no-repository]" in (load_yaml(".ansible-lint").get("skip_list") or [])
    assert skipped == (not load_yaml("galaxy.yml").get("repository")), \
        "galaxy.yml has a repository now: remove the galaxy[no-repository] skip from .ansible-lint"


def test_role_min_ansible_version_is_requires_ansible():
    claim = load_yaml("meta/runtime.yml")["requires_ansible"]
    role = str(load_yaml("roles/cluster_peering/meta/main.yml")["galaxy_info"]["min_ansible_version"])
    assert claim == ">=%s.0" % role, (claim, role)


def test_unit_requirements_are_the_ee_requirements():
    def reqs(rel):
        with open(os.path.join(ROOT, rel)) as f:
            return sorted(line.strip() for line in f if line.strip() and not line.startswith("#"))
    assert reqs("tests/unit/requirements.txt") == reqs("meta/ee-requirements.txt")


def test_copying_is_the_licence_text():
    with open(os.path.join(ROOT, "COPYING"), "rb") as a, \
            open(os.path.join(ROOT, "LICENSES", "GPL-3.0-or-later.txt"), "rb") as b:
        assert a.read() == b.read()


def test_reuse_lint_passes(tmp_path):
    """Every file of the tree (as git would commit it) has copyright and licence information."""
    src = tree_copy(str(tmp_path / "src"))
    proc = subprocess.run([os.path.join(VENV_BIN, "reuse"), "--root", src, "lint"], capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    # ... and really checks: a file the annotation does not cover fails it.
    with open(os.path.join(src, "REUSE.toml")) as f:
        text = f.read()
    with open(os.path.join(src, "REUSE.toml"), "w") as f:
        f.write(text.replace('path = "**"', 'path = "plugins/**"'))
    proc = subprocess.run([os.path.join(VENV_BIN, "reuse"), "--root", src, "lint"], capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode != 0 and "README.md" in proc.stdout, proc.stdout[-3000:]


def test_importer_output_with_a_warning_fails():
    """What `make galaxy-import` counts as a failure (the import itself runs there, not here)."""
    ok = "Importing with galaxy-importer 0.4.44\nLinting collection...\n" + galaxy_import.SUCCESS + "\n"
    assert galaxy_import.problems(ok, 0) == []
    warned = ok.replace("Linting collection...", "WARNING: ERROR    Failed to find x.y.z playbook.")
    assert galaxy_import.problems(warned, 0) == ["WARNING: ERROR    Failed to find x.y.z playbook."]
    failed = "ERROR: The import failed for the following reason: 'repository' is required\n"
    assert len(galaxy_import.problems(failed, 1)) == 3


def test_importer_placeholder_fills_only_missing_urls():
    text = "namespace: seed\nname: consul_peering\nversion: 0.1.0\nrepository: https://git.example.org/r\n"
    out, filled = galaxy_import.placeholder_urls(text)
    data = yaml.safe_load(out)
    assert filled == ["documentation", "issues", "homepage"]
    assert data["repository"] == "https://git.example.org/r"
    assert all(data[k].startswith(galaxy_import.PLACEHOLDER_URL) for k in filled)
    assert "PLACEHOLDER" in out
    full = text + "documentation: d\nissues: i\nhomepage: h\n"
    assert galaxy_import.placeholder_urls(full) == (full, [])
