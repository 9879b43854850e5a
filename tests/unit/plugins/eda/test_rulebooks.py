# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The rulebooks under extensions/eda/rulebooks/ as ansible-rulebook reads them.

Both validate against ansible-rulebook's own JSON schema (ruleset_schema.json, the one it checks a
rulebook with before it runs it). The repair rule's condition, parsed by ansible-rulebook's
condition parser, is evaluated here against a table of events: only a managed peering that broke
triggers a repair (tests/integration/test_eda.py runs the real engine on the lab).
"""

from __future__ import annotations

import glob
import json
import os

import pytest
import yaml

jsonschema = pytest.importorskip("jsonschema")
ansible_rulebook = pytest.importorskip("ansible_rulebook")
condition_parser = pytest.importorskip("ansible_rulebook.condition_parser")
types = pytest.importorskip("ansible_rulebook.condition_types")

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
RULEBOOKS = sorted(glob.glob(os.path.join(ROOT, "extensions", "eda", "rulebooks", "*.yml")))
SCHEMA = os.path.join(os.path.dirname(ansible_rulebook.__file__), "schema", "ruleset_schema.json")


def load(path):
    with open(path) as f:
        return yaml.safe_load(f)


def repair_rule(path):
    rules = [r for r in load(path)[0]["rules"] if set(r["action"]) & {"run_playbook", "run_job_template"}]
    assert len(rules) == 1, path
    return rules[0]


def test_both_rulebooks_are_there():
    assert [os.path.basename(p) for p in RULEBOOKS] == ["repair_peerings.yml", "repair_peerings_controller.yml"]


@pytest.mark.parametrize("path", RULEBOOKS, ids=os.path.basename)
def test_rulebook_validates_against_ansible_rulebook_schema(path):
    with open(SCHEMA) as f:
        schema = json.load(f)
    jsonschema.validators.validator_for(schema).check_schema(schema)
    jsonschema.validate(instance=load(path), schema=schema)


def test_the_schema_check_can_fail():
    with open(SCHEMA) as f:
        schema = json.load(f)
    book = load(RULEBOOKS[0])
    book[0]["rules"][0]["throttle"]["once_within_typo"] = "5 minutes"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(instance=book, schema=schema)


def evaluate(node, event):
    """A parsed ansible-rulebook condition on one event (the operators the rulebooks use; others fail)."""
    if isinstance(node, types.Condition):
        return evaluate(node.value, event)
    if isinstance(node, types.Identifier):
        scope, dummy, name = node.value.partition(".")
        assert scope == "event", node
        return event.get(name)
    if isinstance(node, types.Boolean):
        return node.value == "true"
    if isinstance(node, (types.String, types.Integer)):
        return node.value
    if isinstance(node, list):
        return [evaluate(n, event) for n in node]
    if isinstance(node, types.OperatorExpression):
        left = evaluate(node.left, event)
        right = evaluate(node.right, event)
        operators = {"and": lambda: bool(left and right), "or": lambda: bool(left or right),
                     "==": lambda: left == right, "!=": lambda: left != right, "in": lambda: left in right}
        assert node.operator in operators, "operator %r: teach evaluate() how ansible-rulebook does it" % node.operator
        return operators[node.operator]()
    raise AssertionError("condition node %r: teach evaluate() how ansible-rulebook does it" % (node,))


def peering_event(kind, old, new, managed):
    meta = {"managed-by": "seed.consul_peering"} if managed else {}
    return {"type": kind, "cluster": "dc1", "peer_name": "dc2", "pair": "dc1|dc2", "old_state": old, "new_state": new,
            "managed": managed, "managed_by": meta.get("managed-by"), "peering_meta": meta}


BREAKS = [("deleted", "ACTIVE", None), ("state_changed", "ACTIVE", "TERMINATED"), ("appeared", None, "TERMINATED"),
          ("stuck", "FAILING", "FAILING"), ("stuck", "PENDING", "PENDING"), ("stuck", "TERMINATED", "TERMINATED")]
NOT_BREAKS = [("appeared", None, "ACTIVE"), ("state_changed", "ACTIVE", "FAILING"), ("state_changed", "FAILING", "ACTIVE"),
              ("state_changed", "ACTIVE", "DELETING"), ("appeared", None, "PENDING")]


@pytest.mark.parametrize("path", RULEBOOKS, ids=os.path.basename)
def test_repair_rule_fires_only_for_a_managed_peering_that_broke(path):
    condition = condition_parser.parse_condition(repair_rule(path)["condition"])
    for kind, old, new in BREAKS:
        assert evaluate(condition, peering_event(kind, old, new, True)) is True, (kind, old, new)
        # The same break of a peering the role did not make (no managed-by meta): left alone.
        assert evaluate(condition, peering_event(kind, old, new, False)) is False, (kind, old, new)
    for kind, old, new in NOT_BREAKS:
        assert evaluate(condition, peering_event(kind, old, new, True)) is False, (kind, old, new)
    for kind in ("cluster_unreachable", "cluster_reachable"):
        assert evaluate(condition, {"type": kind, "cluster": "dc1", "status": None}) is False, kind


def test_the_evaluator_sees_a_condition_without_the_managed_guard():
    condition = condition_parser.parse_condition(repair_rule(RULEBOOKS[0])["condition"].split(" and ", 1)[1])
    assert evaluate(condition, peering_event("deleted", "ACTIVE", None, False)) is True


def test_both_rulebooks_share_the_source_condition_and_throttle():
    first, second = (load(p)[0] for p in RULEBOOKS)
    assert first["sources"] == second["sources"]
    rules = [repair_rule(p) for p in RULEBOOKS]
    assert rules[0]["condition"] == rules[1]["condition"]
    assert rules[0]["throttle"] == rules[1]["throttle"] == {"once_within": "5 minutes",
                                                            "group_by_attributes": ["event.pair"]}
