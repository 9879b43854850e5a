# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The collection's ecosystem tooling: antsibull-docs lint and site build, ansible-builder,
antsibull-changelog (the cut release, and the release step on a copy of the tree), the generated
role README and docs site pages, and documented names and numbers cross-checked against the code.

No lab needed; every tool runs offline.
"""

from __future__ import annotations

import ast
import glob
import json
import os
import re
import subprocess

import pytest
import yaml

from conftest import ROOT, VENV_BIN, tree_copy

UTILS = os.path.join(ROOT, "tests", "utils")

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
    # docs/*.md reach the site through docs/docsite (extra-docs.yml), one page per guide.
    with open(os.path.join(ROOT, "docs", "docsite", "extra-docs.yml")) as f:
        guides = [g for section in yaml.safe_load(f)["sections"] for g in section["toctree"]]
    assert "decisions" in guides and "acl" in guides, guides
    for guide in guides:
        page = html / "docsite" / ("%s.html" % guide)
        assert page.exists(), guide
    assert "least privilege" in (html / "docsite" / "acl.html").read_text()
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

def fragment_texts(fragments=FRAGMENTS):
    """{fragment file: [its entries]} for every fragment in a fragments directory (the trivial
    section, which antsibull-changelog never renders, left out)."""
    with open(os.path.join(ROOT, "changelogs", "config.yaml")) as f:
        trivial = yaml.safe_load(f).get("trivial_section_name", "trivial")
    out = {}
    for path in sorted(glob.glob(os.path.join(fragments, "*.yml")) + glob.glob(os.path.join(fragments, "*.yaml"))):
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


def galaxy_version():
    with open(os.path.join(ROOT, "galaxy.yml")) as f:
        return str(yaml.safe_load(f)["version"])


def release_of_galaxy_version():
    with open(os.path.join(ROOT, "changelogs", "changelog.yaml")) as f:
        releases = yaml.safe_load(f).get("releases") or {}
    assert galaxy_version() in releases, "galaxy.yml's version %s is not cut: make release" % galaxy_version()
    return releases[galaxy_version()]


def test_changelog_is_cut_for_the_galaxy_version():
    with open(os.path.join(ROOT, "CHANGELOG.md")) as f:
        changelog = plain(f.read())
    assert "## v%s" % galaxy_version() in changelog, changelog[:500]
    assert "### Release Summary" in changelog
    assert "No release yet" not in changelog
    release = release_of_galaxy_version()
    # antsibull-changelog lists a module under "New Modules" only when its docs say version_added.
    assert sorted(m["name"] for m in release.get("modules", [])) == modules()


def test_release_summary_names_every_module_and_the_role():
    summary = release_of_galaxy_version()["changes"]["release_summary"]
    for name in modules() + sorted(os.listdir(os.path.join(ROOT, "roles"))):
        assert "``%s``" % name in summary, "the release summary does not name %s" % name


@pytest.fixture(scope="module")
def released_copy(tmp_path_factory):
    """The release step (tests/utils/release.py changelog) on a copy with one more fragment planted:
    the real tree is untouched."""
    base = tmp_path_factory.mktemp("release")
    coll = collection_copy(base)
    with open(os.path.join(coll, "changelogs", "fragments", "zz-planted.yml"), "w") as f:
        f.write("---\nbugfixes:\n  - planted_fragment - a fix made after the last release step.\n")
    pending = fragment_texts(os.path.join(coll, "changelogs", "fragments"))
    before = sorted(os.listdir(FRAGMENTS))
    proc = run([os.path.join(VENV_BIN, "python"), os.path.join(coll, "tests", "utils", "release.py"), "changelog"],
               env=tool_env(str(base)), cwd=coll)
    assert sorted(os.listdir(FRAGMENTS)) == before, "the real tree's fragments changed"
    with open(os.path.join(coll, "CHANGELOG.md")) as f:
        changelog = f.read()
    with open(os.path.join(coll, "changelogs", "changelog.yaml")) as f:
        changes = yaml.safe_load(f)
    return {"coll": coll, "changelog": changelog, "changes": changes, "pending": pending, "out": proc.stdout}


def test_release_step_puts_every_pending_fragment_into_the_untagged_version(released_copy):
    changelog = plain(released_copy["changelog"])
    assert "## v%s" % galaxy_version() in changelog
    assert "zz-planted.yml" in released_copy["pending"]
    for name, entries in released_copy["pending"].items():
        for entry in entries:
            assert plain(entry) in changelog, "fragment %s is not in CHANGELOG.md: %s" % (name, entry[:80])
    fragments = released_copy["changes"]["releases"][galaxy_version()]["fragments"]
    assert set(released_copy["pending"]) <= set(fragments)
    # What was released before is still there, and the copy's fragments were consumed.
    assert set(release_of_galaxy_version().get("fragments", [])) <= set(fragments)
    assert glob.glob(os.path.join(released_copy["coll"], "changelogs", "fragments", "*.yml")) == []


def test_release_check_refuses_without_the_project_urls(tmp_path):
    coll = collection_copy(tmp_path)
    script = os.path.join(coll, "tests", "utils", "release.py")
    galaxy_path = os.path.join(coll, "galaxy.yml")
    with open(galaxy_path) as f:
        galaxy = yaml.safe_load(f)
    for key in ("repository", "documentation", "issues", "homepage"):
        galaxy.pop(key, None)
    with open(galaxy_path, "w") as f:
        yaml.safe_dump(galaxy, f)
    proc = run([os.path.join(VENV_BIN, "python"), script, "check"], env=tool_env(), cwd=coll, check=False)
    assert proc.returncode == 1 and "galaxy.yml has no repository, documentation, issues, homepage" in proc.stdout
    # The test run's placeholder is refused too; real-looking URLs are accepted.
    for url, refused in (("https://example.invalid/PLACEHOLDER-project-home-not-decided/x", True),
                         ("https://git.example.org/seed/consul_peering", False)):
        galaxy.update({k: url for k in ("repository", "documentation", "issues", "homepage")})
        with open(galaxy_path, "w") as f:
            yaml.safe_dump(galaxy, f)
        out = run([os.path.join(VENV_BIN, "python"), script, "check"], env=tool_env(), cwd=coll, check=False).stdout
        assert ("placeholder" in out) is refused, out
        assert "has no repository" not in out, out


# --- generated files stay in sync -------------------------------------------------------------------

@pytest.mark.parametrize("script", ["role_readme.py", "docsite.py"])
def test_generated_docs_are_in_sync(script):
    proc = run([os.path.join(VENV_BIN, "python"), os.path.join(UTILS, script), "--check"], check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("script, edit, stale", [
    ("role_readme.py", ("roles/cluster_peering/meta/argument_specs.yml", "Seconds to wait", "Minutes to wait"),
     "roles/cluster_peering/README.md"),
    ("docsite.py", ("docs/acl.md", "least privilege", "most privilege"), "docs/docsite/rst/acl.rst"),
])
def test_generated_docs_check_catches_a_stale_page(tmp_path, script, edit, stale):
    coll = tree_copy(str(tmp_path / "tree"))
    path = os.path.join(coll, edit[0])
    with open(path) as f:
        text = f.read()
    assert edit[1] in text
    with open(path, "w") as f:
        f.write(text.replace(edit[1], edit[2], 1))
    proc = run([os.path.join(VENV_BIN, "python"), os.path.join(coll, "tests", "utils", script), "--check"],
               cwd=coll, check=False)
    assert proc.returncode == 1 and stale in proc.stdout, proc.stdout + proc.stderr


def test_role_readme_lists_every_variable_with_its_default():
    with open(os.path.join(ROOT, "roles", "cluster_peering", "README.md")) as f:
        readme = f.read()
    for name, spec in role_spec()["options"].items():
        row = [line for line in readme.splitlines() if line.startswith("| `%s` |" % name)]
        assert len(row) == 1, name
        if "default" in spec:
            assert "`%s`" % yaml.safe_dump(spec["default"], default_flow_style=True).strip().removesuffix("\n...") \
                in row[0], row[0]


# --- documented names and numbers against the code --------------------------------------------------

def role_spec():
    with open(os.path.join(ROOT, "roles", "cluster_peering", "meta", "argument_specs.yml")) as f:
        return yaml.safe_load(f)["argument_specs"]["main"]


def readme():
    with open(os.path.join(ROOT, "README.md")) as f:
        return f.read()


def section(text, title):
    """The text of a '## title' section, up to the next '## '."""
    start = text.index("\n## %s" % title) + 1
    end = text.find("\n## ", start)
    return text[start:end if end != -1 else len(text)]


def table_rows(text):
    return [[c.strip() for c in line.strip().strip("|").split("|")] for line in text.splitlines()
            if line.startswith("|") and not re.match(r"^\|[-| ]+\|$", line)][1:]


@pytest.fixture(scope="module")
def module_docs(tmp_path_factory):
    """{module: its DOCUMENTATION} as ansible-doc renders it (doc fragments included)."""
    base = tmp_path_factory.mktemp("docs")
    collection_copy(base)
    names = ["seed.consul_peering." + m for m in modules()]
    out = run([os.path.join(VENV_BIN, "ansible-doc"), "--json"] + names, env=tool_env(str(base))).stdout
    return {k.rsplit(".", 1)[1]: v["doc"] for k, v in json.loads(out).items()}


def option_names(options):
    names = set()
    for name, spec in (options or {}).items():
        names.add(name)
        names |= option_names(spec.get("suboptions") or spec.get("options"))
    return names


def test_readme_role_variables_and_defaults_are_the_argument_specs():
    """The README's variable table: every name is a role option, every stated default is its default."""
    options = role_spec()["options"]
    with open(os.path.join(ROOT, "roles", "cluster_peering", "defaults", "main.yml")) as f:
        defaults = yaml.safe_load(f)
    checked = 0
    for row in table_rows(section(readme(), "The role: peer clusters in one run")):
        names = re.findall(r"`([a-z_]+)`", row[0])
        # "`cluster_peering_url`, `_token`" and "`cluster_peering_verify` / `_verify_timeout`": shorthands
        names = [n if not n.startswith("_") else "cluster_peering" + n for n in names]
        for name in names:
            assert name in options, "README names %s, which the role's argument specs do not have" % name
        stated = [d.strip().strip("`") for d in row[1].split(" / ")]
        if len(stated) == len(names) and row[1].count("`") == 2 * len(names):
            for name, value in zip(names, stated):
                assert yaml.safe_load(value) == options[name].get("default"), (name, value)
                assert yaml.safe_load(value) == defaults.get(name), (name, value)
                checked += 1
    assert checked >= 8, checked  # the table really was read


def test_role_defaults_file_matches_the_argument_specs():
    with open(os.path.join(ROOT, "roles", "cluster_peering", "defaults", "main.yml")) as f:
        defaults = yaml.safe_load(f)
    options = role_spec()["options"]
    assert {k: v.get("default") for k, v in options.items() if "default" in v} == defaults


def test_readme_module_options_exist(module_docs):
    """Option and module names the README's module sections use are real ones."""
    with open(os.path.join(ROOT, "meta", "runtime.yml")) as f:
        action_groups = set(yaml.safe_load(f).get("action_groups") or {})
    # module names, the action groups, the role's variables, Ansible keywords and connection variables, and the
    # switch the action plugins read (plugin_utils/in_process.py)
    with open(os.path.join(ROOT, "plugins", "plugin_utils", "in_process.py")) as f:
        switch = re.search(r'^SWITCH = "([a-z_]+)"$', f.read(), re.M).group(1)
    known = set(module_docs) | action_groups | set(role_spec()["options"]) | {switch} | {
        "module_defaults", "ansible_connection", "async", "become", "environment", "no_log"}
    for doc in module_docs.values():
        known |= option_names(doc.get("options"))
    text = readme()
    cells = [row[1] for row in table_rows(section(text, "Compared with")) if len(row) > 1]
    tokens = [t.replace("seed.consul_peering.", "")
              for t in re.findall(r"`([^`]+)`", section(text, "Modules") + "\n".join(cells))]
    names = [m.group(1) for m in (re.match(r"^([a-z_]+)(?::\s.*)?$", t) for t in tokens) if m]
    assert len(names) >= 10, names
    unknown = sorted(set(names) - known)
    assert unknown == [], "README uses options or modules that do not exist: %s" % unknown
    assert set(modules()) <= set(names), "a module is missing from the README: %s" % (set(modules()) - set(names))


def code_env_names():
    names = set()
    for path in glob.glob(os.path.join(ROOT, "plugins", "**", "*.py"), recursive=True):
        with open(path) as f:
            names |= set(re.findall(r"[\"'](CONSUL_[A-Z_]+)[\"']", f.read()))
    return names


def test_documented_environment_fallbacks_are_read_by_the_code(module_docs):
    """Every CONSUL_* variable the docs promise is one the modules document (E(...)) and read."""
    documented = set()
    for doc in module_docs.values():
        documented |= set(re.findall(r"E\((CONSUL_[A-Z_]+)\)", json.dumps(doc)))
    read = code_env_names()
    assert documented - read == set(), "documented but never read: %s" % sorted(documented - read)
    promised = {}
    sources = ["README.md", "docs/awx.md", "docs/acl.md", "docs/failover.md",
               "roles/cluster_peering/meta/argument_specs.yml"]
    for rel in sources:
        with open(os.path.join(ROOT, rel)) as f:
            for name in re.findall(r"\b(CONSUL_[A-Z_]+)\b", f.read()):
                promised.setdefault(name, rel)
    assert {"CONSUL_HTTP_ADDR", "CONSUL_HTTP_TOKEN", "CONSUL_CACERT"} <= set(promised)
    # The lab's own variables (README: how make finds Consul) are read by the lab, not the modules.
    lab = {}
    for name in ("CONSUL_BIN", "CONSUL_VERSION"):
        with open(os.path.join(ROOT, "lab", "consul.sh")) as f:
            assert name in f.read(), name
        lab[name] = True
    missing = {n: rel for n, rel in promised.items() if n not in documented and n not in lab}
    assert missing == {}, "named in the docs but not a documented fallback of the modules: %s" % missing


def test_readme_consul_build_time_is_the_measured_one():
    """README's build time for a first run = download + cold build, as docs/consul-build.md measured."""
    with open(os.path.join(ROOT, "docs", "consul-build.md")) as f:
        measured = f.read()
    cold = re.search(r"\| cold \(.*?\| (\d+) min (\d+) s \|", measured)
    download = re.search(r"\| first download .*?\| about (\d+) min \|", measured)
    assert cold and download, "docs/consul-build.md's table changed shape"
    total = int(cold.group(1)) + int(cold.group(2)) / 60 + int(download.group(1))
    stated = re.search(r"builds Consul from the Go module proxy\s+\(about ([\d.]+) minutes", readme())
    assert stated, "README no longer states the build time"
    assert abs(float(stated.group(1)) - total) <= 0.5, (stated.group(1), total)


def code_constant(name):
    for path in glob.glob(os.path.join(ROOT, "plugins", "module_utils", "*.py")):
        with open(path) as f:
            m = re.search(r"^%s\s*=\s*([\d.]+)\s*$" % name, f.read(), re.M)
        if m:
            return float(m.group(1))
    raise AssertionError("%s is not a constant in plugins/module_utils any more" % name)


def test_decisions_numbers_are_the_code_constants():
    with open(os.path.join(ROOT, "docs", "decisions.md")) as f:
        text = " ".join(f.read().split())
    cas = re.search(r"CAS retry budget\.\*\* (\d+) attempts, backoff (\d+) ms doubling to a ([\d.]+) s cap", text)
    assert cas, "docs/decisions.md's CAS retry budget sentence changed shape"
    assert int(cas.group(1)) == code_constant("CAS_TRIES")
    assert float(cas.group(2)) / 1000 == code_constant("CAS_BACKOFF")
    assert float(cas.group(3)) == code_constant("CAS_BACKOFF_MAX")
    poll = re.search(r"Polling schedule: ([\d.]+) s, x([\d.]+), at most ([\d.]+) s", text)
    assert poll, "docs/decisions.md's polling schedule sentence changed shape"
    assert [float(g) for g in poll.groups()] == [code_constant(n) for n in ("POLL_FIRST", "POLL_FACTOR", "POLL_MOST")]


def test_readme_lab_ports_are_the_lab_defaults():
    with open(os.path.join(ROOT, "lab", "lab.sh")) as f:
        base = int(re.search(r"BASE=\$\{LAB_PORT_BASE:-(\d+)\}", f.read()).group(1))
    ports = re.search(r"ports from (\d+) and (\d+)\)", readme())
    assert ports, "README no longer states the lab ports"
    # cluster i's HTTP API: LAB_PORT_BASE + 100*i + 0 (lab/lab.sh)
    assert [int(p) for p in ports.groups()] == [base + 100, base + 200]


def test_ansible_lint_config_points_to_an_existing_explanation():
    with open(os.path.join(ROOT, ".ansible-lint")) as f:
        config = f.read()
    with open(os.path.join(ROOT, "docs", "decisions.md")) as f:
        decisions = f.read()
    cited = re.findall(r'docs/decisions\.md, "([^"]+)"', config)
    assert cited, "the skips in .ansible-lint cite no explanation"
    for title in cited:
        assert re.search(r"^## %s" % re.escape(title), decisions, re.M), title
    assert "galaxy[no-repository]" in decisions
    assert "extensions/" in yaml.safe_load(config)["exclude_paths"]


def test_no_untested_consul_version_is_claimed():
    """'Consul >= 1.14'-style claims: every Consul version the user docs call supported is a tested one."""
    with open(os.path.join(ROOT, "lab", "consul.env")) as f:
        tested = set(re.findall(r"^CONSUL_VERSIONS?=\"?([\d. ]+)", f.read(), re.M)[0].split())
    for rel in ["README.md", "docs/failover.md", "galaxy.yml", "roles/cluster_peering/meta/main.yml"]:
        with open(os.path.join(ROOT, rel)) as f:
            text = f.read()
        assert not re.search(r"Consul\s*(>=|\(\d|\d+\.\d+ or later)", text), rel
        for version in re.findall(r"(?:proven|tested)[^.\n]*?Consul (\d+\.\d+\.\d+)|Consul (\d+\.\d+\.\d+)", text):
            v = version[0] or version[1]
            assert v in tested, "%s names Consul %s, which the lab does not run" % (rel, v)


def architecture_rows():
    """docs/architecture.md's "What may import what" table: {file name: the row's text}."""
    with open(os.path.join(ROOT, "docs", "architecture.md")) as f:
        text = f.read().split("## What may import what", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in text.splitlines():
        cells = line.split("|")[1:-1]
        if len(cells) == 4:
            for name in re.findall(r"`([\w./]+\.py)`", cells[1]):
                rows[os.path.basename(name)] = line
    return rows


def test_architecture_table_names_every_module_util_and_its_imports_between_private_files():
    """Each plugins/module_utils file is in the layer table, and a function one file imports from a private
    one (a domain file using another's helper) is named in the importing file's row."""
    rows = architecture_rows()
    missing = []
    for path in sorted(glob.glob(os.path.join(ROOT, "plugins", "module_utils", "*.py"))):
        name = os.path.basename(path)
        if name == "__init__.py":
            continue
        if name not in rows:
            missing.append("%s: not in the table" % name)
            continue
        with open(path) as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if not (isinstance(node, ast.ImportFrom) and ".module_utils._" in (node.module or "")):
                continue
            other = node.module.rpartition(".")[2]
            for imported in (a.name for a in node.names if a.name[0].islower()):
                if "`%s`" % imported not in rows[name]:
                    missing.append("%s imports %s from %s.py: not named in its row" % (name, imported, other))
    assert not missing, missing
