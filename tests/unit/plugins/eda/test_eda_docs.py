# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""docs/eda.md's numbers against the code: the peering_events source's defaults (DEFAULTS and its
DOCUMENTATION) and the values the repair_peerings rulebook sets, so that the three cannot drift.

A value is quoted in docs/eda.md as `option: value` or `option` (value[ s]), in the defaults
table, or in a YAML example of the source. In the rulebook's section a value is the rulebook's
own (it sets stuck_repeat: 900, the source's default is 0); everywhere else it is the source's
default.
"""

from __future__ import annotations

import os
import re
import runpy

import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
SOURCE = os.path.join(ROOT, "extensions", "eda", "plugins", "event_source", "peering_events.py")
RULEBOOK = os.path.join(ROOT, "extensions", "eda", "rulebooks", "repair_peerings.yml")
EDA_MD = os.path.join(ROOT, "docs", "eda.md")
RULEBOOK_SECTION = "The rulebook"
# Rule and action settings of the rulebook that docs/eda.md quotes.
RULEBOOK_KEYS = ("once_within", "lock", "retries", "delay")

src = runpy.run_path(SOURCE)


def doc_text():
    with open(EDA_MD) as f:
        return f.read()


def sections(text):
    """[(the '## ' title a line is under, line)] for every line of the page."""
    title, out = "", []
    for line in text.splitlines():
        if line.startswith("## "):
            title = line[3:].strip()
        out.append((title, line))
    return out


def documented_defaults():
    options = yaml.safe_load(src["DOCUMENTATION"])["options"]
    return dict((k, v["default"]) for k, v in options.items() if "default" in v)


def rulebook_values():
    """{key: value} of the source's arguments, the repair rule's throttle and its action."""
    with open(RULEBOOK) as f:
        book = yaml.safe_load(f)[0]
    values = dict(book["sources"][0]["seed.consul_peering.peering_events"])
    rule = next(r for r in book["rules"] if "run_playbook" in r["action"])
    values.update(rule["throttle"])
    values.update(rule["action"]["run_playbook"])
    return values


def same(quoted, value):
    if isinstance(value, bool):
        return str(quoted).strip().lower() == str(value).lower()
    if isinstance(value, (int, float)):
        try:
            return float(str(quoted).strip().rstrip("s").strip()) == float(value)
        except ValueError:
            return False
    return str(quoted).strip() == str(value)


def quoted_values(text):
    """(section, option, value, line) for every `option: value` and `option` (value) in text."""
    found = []
    for title, line in sections(text):
        for span in re.findall(r"`([^`]+)`", line):
            for part in span.split(", "):
                key, sep, value = part.rpartition(": ")
                if sep and key.split():
                    found.append((title, key.split()[-1].split(":")[-1], value, line))
        for key, value in re.findall(r"`(\w+)` \((\d+(?:\.\d+)?)(?: s)?\)", line):
            found.append((title, key, value, line))
    return found


def test_plugin_documentation_states_the_code_defaults():
    documented = documented_defaults()
    for key, default in src["DEFAULTS"].items():
        assert float(documented[key]) == default, key
    assert documented["emit_initial"] is True


def test_defaults_table_lists_every_default_as_the_plugin_has_it():
    documented = documented_defaults()
    rows = dict(re.findall(r"^\| `(\w+)` \| ([^|]+?) \|", doc_text(), re.M))
    table = dict((k, v) for k, v in rows.items() if k in documented)
    assert set(table) == set(documented), (sorted(table), sorted(documented))
    for key, value in table.items():
        assert same(value, documented[key]), "docs/eda.md's table: %s is %s, the plugin's default %s" % (
            key, value, documented[key])


def test_every_value_quoted_in_the_page_is_the_code_s():
    defaults = documented_defaults()
    book = rulebook_values()
    checked = []
    for title, key, value, line in quoted_values(doc_text()):
        if title == RULEBOOK_SECTION and key in book:
            truth, where = book[key], "repair_peerings.yml"
        elif key in defaults:
            truth, where = defaults[key], "the source's default"
        elif key in RULEBOOK_KEYS:
            truth, where = book[key], "repair_peerings.yml"
        else:
            continue
        assert same(value, truth), "docs/eda.md (%s): %s is %s, %s is %s\n%s" % (title, key, value, where, truth, line)
        checked.append(key)
    # The page quotes them (a change of format would silently check nothing).
    assert {"backoff_max", "settle", "wait", "failing_grace", "stuck_repeat", "retries", "delay",
            "once_within"} <= set(checked), checked


def test_yaml_examples_of_the_source_use_the_defaults():
    blocks = re.findall(r"```yaml\n(.*?)```", doc_text(), re.S)
    examples = [b for b in blocks if "seed.consul_peering.peering_events:" in b]
    assert examples
    defaults = documented_defaults()
    for block in examples:
        args = yaml.safe_load(block)["sources"][0]["seed.consul_peering.peering_events"]
        for key in set(args) & set(defaults):
            assert same(args[key], defaults[key]), (key, args[key], defaults[key])


def test_backoff_start_and_answer_spacing_are_the_code_s():
    text = " ".join(doc_text().split())
    first = re.search(r"exponential backoff from ([\d.]+) s", text)
    spacing = re.search(r"spaced by at least (\d+) ms", text)
    assert first and float(first.group(1)) == src["BACKOFF_FIRST"]
    assert spacing and int(spacing.group(1)) / 1000.0 == src["MIN_SPACING"]


@pytest.mark.parametrize("line, expected", [
    ("up to `backoff_max` (30 s), with jitter", ("backoff_max", "30")),
    ("(`wait: 10`, `settle: 15`)", ("settle", "15")),
    ("`throttle: once_within: 5 minutes` grouped", ("once_within", "5 minutes")),
    ("`retries: 1, delay: 30`: a repair", ("delay", "30")),
])
def test_the_scan_finds_each_way_a_value_is_quoted(line, expected):
    """The audit's drift (`backoff_max` (30 s) against a default of 10) is one the scan sees."""
    assert expected in [(key, value) for dummy, key, value, dummy in quoted_values(line)]
    if expected[0] == "backoff_max":
        assert not same(expected[1], documented_defaults()["backoff_max"])
