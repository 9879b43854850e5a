# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The steps of `make release` that are more than one command (checklist: docs/release.md).

    release.py check              galaxy.yml has the project URLs, the version is not tagged yet,
                                  a release summary exists for it
    release.py changelog          antsibull-changelog release for galaxy.yml's version
    release.py tag [--create]     print (or, with --create, make) the annotated tag v<version>

A version is published when its tag exists. Until then `changelog` may run again: fragments added
since the last run join the same (untagged) version, antsibull-changelog keeps what it already
recorded. Once tagged, galaxy.yml's version must be raised before the next release.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from galaxy_import import PLACEHOLDER_URL, URL_KEYS, missing_urls  # noqa: E402  pylint: disable=wrong-import-position


def load(path):
    with open(os.path.join(ROOT, path)) as f:
        return yaml.safe_load(f) or {}


def version():
    return str(load("galaxy.yml")["version"])


def tag_name(ver):
    return "v" + ver


def tagged(ver):
    return subprocess.run(["git", "rev-parse", "-q", "--verify", "refs/tags/" + tag_name(ver)], cwd=ROOT,
                          capture_output=True, check=False).returncode == 0


def pending_fragments():
    """{fragment file: data} of the fragments not released yet."""
    config = load(os.path.join("changelogs", "config.yaml"))
    notes = os.path.join(ROOT, "changelogs", config.get("notesdir", "fragments"))
    out = {}
    for name in sorted(os.listdir(notes)) if os.path.isdir(notes) else []:
        if name.endswith((".yml", ".yaml")):
            with open(os.path.join(notes, name)) as f:
                out[name] = yaml.safe_load(f) or {}
    return out


def released_versions():
    return (load(os.path.join("changelogs", "changelog.yaml")).get("releases") or {}).keys()


def check():
    ver, galaxy, problems = version(), load("galaxy.yml"), []
    missing = missing_urls(galaxy)
    if missing:
        problems.append("galaxy.yml has no %s: set the project's real URLs there (docs/release.md)"
                        % ", ".join(missing))
    for key in URL_KEYS:
        if PLACEHOLDER_URL.split("/")[2] in str(galaxy.get(key, "")):
            problems.append("galaxy.yml %s is the test placeholder" % key)
    if tagged(ver):
        problems.append("%s is already tagged: raise the version in galaxy.yml" % tag_name(ver))
    summary_key = load(os.path.join("changelogs", "config.yaml")).get("prelude_section_name", "release_summary")
    has_summary = any(summary_key in data for data in pending_fragments().values())
    if ver not in released_versions() and not has_summary:
        problems.append("no changelogs/fragments/*.yml has a %s for %s" % (summary_key, ver))
    for p in problems:
        print("[release] not ready: " + p)
    if not problems:
        print("[release] %s: ready" % ver)
    return 1 if problems else 0


def changelog():
    ver = version()
    if tagged(ver):
        print("[release] %s is already tagged: raise the version in galaxy.yml" % tag_name(ver))
        return 1
    if ver in released_versions() and not pending_fragments():
        print("[release] %s is in changelogs/changelog.yaml and no fragment is pending" % ver)
        cmd = ["antsibull-changelog", "generate"]
    else:
        cmd = ["antsibull-changelog", "release", "--version", ver]
    rc = subprocess.run(cmd, cwd=ROOT, check=False).returncode
    # antsibull-changelog's cache of the plugin list: not part of the release (never committed).
    cache = os.path.join(ROOT, "changelogs", ".plugin-cache.yaml")
    if os.path.exists(cache):
        os.remove(cache)
    return rc


def tag(create):
    ver = version()
    cmd = ["git", "tag", "-a", tag_name(ver), "-m", "seed.consul_peering %s" % ver]
    if tagged(ver):
        print("[release] %s already exists" % tag_name(ver))
        return 1
    if not create:
        print("[release] dry run, the tag would be: " + " ".join(cmd[:4]) + " -m '%s'" % cmd[-1])
        print("[release] make it with: make release RELEASE_TAG=1 (or run the command above)")
        return 0
    return subprocess.run(cmd, cwd=ROOT, check=False).returncode


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="step", required=True)
    sub.add_parser("check")
    sub.add_parser("changelog")
    sub.add_parser("tag").add_argument("--create", action="store_true")
    args = parser.parse_args(argv)
    if args.step == "check":
        return check()
    if args.step == "changelog":
        return changelog()
    return tag(args.create)


if __name__ == "__main__":
    sys.exit(main())
