# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The collection's ecosystem tooling: antsibull-docs lint and site build, ansible-builder,
antsibull-changelog release (on a copy of the tree: the real one keeps its fragments).

No lab needed; every tool runs offline.
"""

from __future__ import annotations

import glob
import os
import re
import subprocess

import pytest
import yaml

from conftest import ROOT, VENV_BIN, tree_copy

FRAGMENTS = os.path.join(ROOT, "changelogs", "fragments")


def run(cmd, env=None, cwd=None, timeout=600, check=True):
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    if check:
        assert proc.returncode == 0, "%s failed (rc %d):\n%s\n%s" % (
            cmd, proc.returncode, proc.stdout[-5000:], proc.stderr[-5000:])
    return proc


def tool_env(collections_path=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env["PATH"] = VENV_BIN + os.pathsep + env.get("PATH", "")
    env["ANSIBLE_COLLECTIONS_SCAN_SYS_PATH"] = "False"
    if collections_path:
        env["ANSIBLE_COLLECTIONS_PATH"] = collections_path
    return env


def collection_copy(base):
    """The files git would commit, copied to <base>/ansible_collections/seed/consul_peering."""
    return tree_copy(os.path.join(str(base), "ansible_collections", "seed", "consul_peering"))


def modules():
    return sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(ROOT, "plugins", "modules", "*.py")))


# --- antsibull-docs -------------------------------------------------------------------------------

def test_lint_collection_docs_passes(tmp_path):
    coll = collection_copy(tmp_path)
    proc = run(["antsibull-docs", "lint-collection-docs", "--plugin-docs", "."], env=tool_env(str(tmp_path)),
               cwd=coll, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_lint_collection_docs_catches_a_broken_reference(tmp_path):
    """The lint really reads the role's argument spec: an option reference to nothing fails it."""
    coll = collection_copy(tmp_path)
    spec_path = os.path.join(coll, "roles", "cluster_peering", "meta", "argument_specs.yml")
    with open(spec_path) as f:
        spec = yaml.safe_load(f)
    spec["argument_specs"]["main"]["description"].append("See O(cluster_peering_no_such_option).")
    with open(spec_path, "w") as f:
        yaml.safe_dump(spec, f)
    proc = run(["antsibull-docs", "lint-collection-docs", "--plugin-docs", "."], env=tool_env(str(tmp_path)),
               cwd=coll, check=False)
    assert proc.returncode != 0
    assert "cluster_peering_no_such_option" in proc.stdout + proc.stderr


def test_docs_site_builds(tmp_path):
    out = tmp_path / "site"
    run(["bash", os.path.join(ROOT, "docs", "build.sh"), str(out)], env=tool_env())
    html = out / "html"
    pages = sorted(os.path.basename(p) for p in glob.glob(str(html / "*.html")))
    expected = ["index.html", "cluster_peering_role.html", "environment_variables.html"]
    expected += ["%s_module.html" % m for m in modules()]
    missing = [p for p in expected if p not in pages]
    assert missing == [], pages
    role_page = (html / "cluster_peering_role.html").read_text()
    assert "cluster_peering_acceptors_group" in role_page
    # Each module page carries the shared connection options with their environment fallbacks.
    for m in modules():
        assert "CONSUL_HTTP_TOKEN" in (html / ("%s_module.html" % m)).read_text(), m


# --- ansible-builder ------------------------------------------------------------------------------

def test_builder_renders_the_sample_execution_environment(tmp_path):
    ctx = tmp_path / "context"
    run([os.path.join(VENV_BIN, "ansible-builder"), "create", "-f",
         os.path.join(ROOT, "docs", "execution-environment.yml"), "--context", str(ctx), "-v", "3"],
        env=tool_env(), cwd=str(tmp_path))
    containerfiles = [p for p in ("Containerfile", "Dockerfile") if (ctx / p).exists()]
    assert containerfiles, os.listdir(str(ctx))
    text = (ctx / containerfiles[0]).read_text()
    assert "quay.io/centos/centos:stream9" in text
    assert "ansible-core==" in text and "ansible-runner==" in text
    reqs = yaml.safe_load((ctx / "_build" / "requirements.yml").read_text())
    assert [c["name"] for c in reqs["collections"]] == ["seed.consul_peering"]


def test_builder_introspection_finds_the_collection_python_requirements(tmp_path):
    """What ansible-builder runs inside the build on each collection: our meta/ says requests."""
    ctx = tmp_path / "context"
    run([os.path.join(VENV_BIN, "ansible-builder"), "create", "-f",
         os.path.join(ROOT, "docs", "execution-environment.yml"), "--context", str(ctx)],
        env=tool_env(), cwd=str(tmp_path))
    collection_copy(tmp_path / "collections")
    proc = run([os.path.join(VENV_BIN, "python"), str(ctx / "_build" / "scripts" / "introspect.py"),
                "introspect", str(tmp_path / "collections")], env=tool_env())
    found = yaml.safe_load(proc.stdout[proc.stdout.index("python:"):] if "python:" in proc.stdout else "{}")
    python = [line.split("#")[0].strip() for line in found.get("python") or []]
    with open(os.path.join(ROOT, "meta", "ee-requirements.txt")) as f:
        declared = [line.strip() for line in f if line.strip() and not line.startswith("#")]
    assert python == declared and any(r.startswith("requests") for r in python), proc.stdout
    assert all("seed.consul_peering" in line for line in found["python"]), found


# --- antsibull-changelog --------------------------------------------------------------------------

def fragment_texts():
    """{fragment file: [its entries]} for every fragment in the real tree (the trivial section,
    which antsibull-changelog never renders, left out)."""
    with open(os.path.join(ROOT, "changelogs", "config.yaml")) as f:
        trivial = yaml.safe_load(f).get("trivial_section_name", "trivial")
    out = {}
    for path in sorted(glob.glob(os.path.join(FRAGMENTS, "*.yml")) + glob.glob(os.path.join(FRAGMENTS, "*.yaml"))):
        with open(path) as f:
            data = yaml.safe_load(f) or {}
        entries = []
        for section, value in data.items():
            if section != trivial:
                entries.extend(value if isinstance(value, list) else [value])
        out[os.path.basename(path)] = entries
    return out


def plain(text):
    """Markdown as antsibull-changelog escapes it, reduced to words (for finding a fragment in it)."""
    text = re.sub(r"</?code>", "", text)
    text = re.sub(r"\\(.)", r"\1", text)
    return re.sub(r"[\s`]+", " ", text.replace("``", "")).strip()


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """antsibull-changelog release --version 0.1.0 on a copy of the tree; the real tree is untouched."""
    base = tmp_path_factory.mktemp("release")
    coll = collection_copy(base)
    before = sorted(os.listdir(FRAGMENTS))
    run(["antsibull-changelog", "release", "--version", "0.1.0", "--date", "2026-11-23"],
        env=tool_env(str(base)), cwd=coll)
    assert sorted(os.listdir(FRAGMENTS)) == before, "the real tree's fragments changed"
    with open(os.path.join(coll, "CHANGELOG.md")) as f:
        changelog = f.read()
    with open(os.path.join(coll, "changelogs", "changelog.yaml")) as f:
        changes = yaml.safe_load(f)
    return {"coll": coll, "changelog": changelog, "changes": changes}


def test_release_0_1_0_has_every_fragment(released):
    changelog = plain(released["changelog"])
    assert "## v0.1.0" in changelog
    assert "### Release Summary" in changelog
    fragments = fragment_texts()
    assert "release-summary-0.1.0.yml" in fragments
    for name, entries in fragments.items():
        for entry in entries:
            assert plain(entry) in changelog, "fragment %s is not in CHANGELOG.md: %s" % (name, entry[:80])
    assert sorted(released["changes"]["releases"]["0.1.0"]["fragments"]) == sorted(fragments)
    # The release consumed the copy's fragments (keep_fragments: false).
    assert glob.glob(os.path.join(released["coll"], "changelogs", "fragments", "*.yml")) == []


def test_release_0_1_0_lists_every_module_as_new(released):
    """antsibull-changelog lists a module under "New Modules" only when its docs say version_added: 0.1.0."""
    listed = sorted(m["name"] for m in released["changes"]["releases"]["0.1.0"].get("modules", []))
    assert listed == modules()
