# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Make ansible_collections.seed.consul_peering importable wherever pytest is started.

pytest-ansible does it when pytest runs from the collection root (it finds galaxy.yml there);
from anywhere else, point a collection finder at a temporary ansible_collections tree that
links to this checkout. (This directory is a package, so this conftest is imported as
plugins.conftest and never shadows tests/integration's conftest module.)
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


def _importable():
    try:
        import ansible_collections.seed.consul_peering.plugins.module_utils.consul_api  # noqa: F401 pylint: disable=unused-import
        return True
    except ImportError:
        return False


if not _importable():
    base = tempfile.mkdtemp(prefix="seed-consul-peering-units-")
    # rmtree removes the link, never what it points to.
    atexit.register(shutil.rmtree, base, True)
    os.makedirs(os.path.join(base, "ansible_collections", "seed"))
    os.symlink(ROOT, os.path.join(base, "ansible_collections", "seed", "consul_peering"))
    from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder

    sys.path.insert(0, base)
    for name in [m for m in sys.modules if m == "ansible_collections" or m.startswith("ansible_collections.")]:
        del sys.modules[name]
    _AnsibleCollectionFinder(paths=[base])._install()  # pylint: disable=protected-access
