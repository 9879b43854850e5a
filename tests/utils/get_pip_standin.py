# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Local stand-in for the get-pip.py bootstrap script ansible-test downloads.

ansible-test fetches get-pip from a host this machine cannot reach. `make sanity`
copies this file into ~/.ansible/test/cache/get_pip_<version>.py instead: it
bootstraps pip with ensurepip, then installs what ansible-test asked for
(e.g. pip==24.2) from the package index, exactly as the real script would.
"""

from __future__ import annotations

import subprocess
import sys


def main():
    subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"])
    args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
    subprocess.check_call([sys.executable, "-m", "pip", "install"] + args)


if __name__ == "__main__":
    main()
