# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Run galaxy-importer on a built collection tarball, as Galaxy does on upload; fail on any warning.

    galaxy_import.py --scratch DIR     copy the tree (the files git would commit) to DIR/src, fill in
                                       the project URLs galaxy.yml does not have yet with clearly
                                       marked placeholders (in that copy only), build, import
    galaxy_import.py TARBALL           import an already built tarball as it is (the release)

The project URLs (repository, documentation, issues, homepage) have one home: galaxy.yml. Until the
project's public home is decided galaxy.yml leaves them out rather than invent them; the release
(`make release`) refuses to build without them, and only the test run's scratch copy gets the
PLACEHOLDER_URL below (docs/decisions.md, "Ready to publish").

galaxy-importer runs with its default settings: an empty config file (so that no
/etc/galaxy-importer/galaxy-importer.cfg of the machine applies), no GALAXY_IMPORTER_* variables;
only its temporary directories are put under the output directory. Its ansible-lint and ansible-doc
are the ones of the importer's own venv (IMPORTER_BIN, first on PATH).
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
URL_KEYS = ("repository", "documentation", "issues", "homepage")
# example.invalid can never resolve (RFC 2606); the word PLACEHOLDER makes it plain in any output.
PLACEHOLDER_URL = "https://example.invalid/PLACEHOLDER-project-home-not-decided/seed.consul_peering"
SUCCESS = "Importer processing completed successfully"


def missing_urls(galaxy):
    """The project URL keys galaxy.yml (a dict) does not set."""
    return [k for k in URL_KEYS if not galaxy.get(k)]


def placeholder_urls(galaxy):
    """galaxy.yml's text (a str) with each missing project URL set to a placeholder, and the keys filled."""
    data = yaml.safe_load(galaxy)
    filled = missing_urls(data)
    lines = ["", "# PLACEHOLDER: added by tests/utils/galaxy_import.py to this scratch copy only;",
             "# the release sets the real URLs in galaxy.yml (docs/decisions.md)."]
    for key in filled:
        suffix = "/issues" if key == "issues" else ""
        lines.append("%s: %s%s" % (key, PLACEHOLDER_URL, suffix))
    text = galaxy.rstrip("\n") + "\n" + "\n".join(lines) + "\n" if filled else galaxy
    return text, filled


def problems(output, returncode):
    """What makes an importer run fail here: a non-zero exit, no success line, any warning or error."""
    found = []
    if returncode != 0:
        found.append("galaxy-importer exited with %d" % returncode)
    if SUCCESS not in output:
        found.append("no %r line" % SUCCESS)
    for line in output.splitlines():
        if re.match(r"\s*(WARNING|ERROR|CRITICAL)\b", line) or "Traceback (most recent call last)" in line:
            found.append(line.strip())
    return found


def tree_files():
    out = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=ROOT, check=True,
                         capture_output=True).stdout.decode().split("\0")
    return [f for f in out if f and os.path.isfile(os.path.join(ROOT, f)) and not os.path.islink(os.path.join(ROOT, f))]


def scratch_build(workdir, ansible_galaxy):
    src = os.path.join(workdir, "src")
    shutil.rmtree(workdir, ignore_errors=True)
    for f in tree_files():
        os.makedirs(os.path.join(src, os.path.dirname(f)), exist_ok=True)
        shutil.copy2(os.path.join(ROOT, f), os.path.join(src, f))
    path = os.path.join(src, "galaxy.yml")
    with open(path) as f:
        text, filled = placeholder_urls(f.read())
    with open(path, "w") as f:
        f.write(text)
    if filled:
        print("[galaxy-import] galaxy.yml has no %s yet: the scratch build uses the placeholder %s"
              % ("/".join(filled), PLACEHOLDER_URL))
    dist = os.path.join(workdir, "dist")
    subprocess.run([ansible_galaxy, "collection", "build", "--output-path", dist, src], check=True,
                   stdout=subprocess.DEVNULL)
    return glob.glob(os.path.join(dist, "*.tar.gz"))[0]


def run_importer(tarball, importer_bin, workdir):
    tmp = os.path.join(workdir, "importer-tmp")
    os.makedirs(tmp, exist_ok=True)
    config = os.path.join(workdir, "galaxy-importer.cfg")
    with open(config, "w") as f:
        f.write("[galaxy-importer]\n# default settings; only the temporary directories are ours\n"
                "tmp_root_dir = %s\nansible_local_tmp = %s\n" % (tmp, os.path.join(tmp, "ansible")))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GALAXY_IMPORTER_", "ANSIBLE_"))}
    env.update({"GALAXY_IMPORTER_CONFIG": config, "PATH": importer_bin + os.pathsep + env.get("PATH", ""),
                "NO_COLOR": "1", "PY_COLORS": "0"})
    proc = subprocess.run([os.path.join(importer_bin, "python"), "-m", "galaxy_importer.main", tarball],
                          env=env, cwd=workdir, capture_output=True, text=True, timeout=900, check=False)
    return proc.stdout + proc.stderr, proc.returncode


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tarball", nargs="?")
    parser.add_argument("--scratch", metavar="DIR", help="build from a scratch copy of the tree in DIR")
    parser.add_argument("--importer-bin", default=os.path.join(ROOT, ".venv-importer", "bin"))
    parser.add_argument("--ansible-galaxy", default=os.path.join(os.path.dirname(sys.executable), "ansible-galaxy"))
    args = parser.parse_args(argv)
    if bool(args.tarball) == bool(args.scratch):
        parser.error("give either a TARBALL or --scratch DIR")
    workdir = os.path.abspath(args.scratch or os.path.join(os.path.dirname(os.path.abspath(args.tarball)),
                                                           "galaxy-import"))
    tarball = scratch_build(workdir, args.ansible_galaxy) if args.scratch else os.path.abspath(args.tarball)
    os.makedirs(workdir, exist_ok=True)
    print("[galaxy-import] galaxy-importer on %s" % tarball)
    output, rc = run_importer(tarball, args.importer_bin, workdir)
    with open(os.path.join(workdir, "importer.log"), "w") as f:
        f.write(output)
    sys.stdout.write(output)
    found = problems(output, rc)
    if found:
        print("[galaxy-import] FAILED (%d problem(s)):" % len(found))
        for line in found:
            print("  " + line)
        return 1
    print("[galaxy-import] passed with no warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
