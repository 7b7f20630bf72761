"""Issue 25 #6: no green pull request before a red apply. A variable apply will need is a blocker of
plan (exit 1) unless apply's environment is known to have it (CHAPCTL_SECRET_NAMES: names, never
values) or the repository allows it (`ci.allow_unset`: a warning)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from compiler.errors import UserError
from compiler.reconcile.requirements import needed_variable, require
from compiler.reconcile.secrets import declared_names
from tests.plan_golden.test_plan_golden import CASES, HERE, _load

CASE = HERE / "cases" / "secret_unset_block_missing"  # RWANDA_DHIS2_PASSWORD unset, its block to create


def _plan_and_desired():
    from compiler.reconcile.desired import load_desired
    from compiler.reconcile.facts import Facts

    facts = Facts.from_json(json.loads((HERE / "facts.json").read_text()))
    env = json.loads((CASE / "env.json").read_text())
    desired = load_desired(CASE / "desired", env, facts=facts)
    _, plan = _load(CASE)
    return plan, desired


def test_a_variable_apply_needs_is_a_blocker_when_nobody_says_it_will_be_there():
    plan, desired = _plan_and_desired()
    assert plan.missing_env and not plan.blockers  # the planner's own verdict: a warning
    require(plan, desired, {})
    assert plan.missing_env == []
    assert len(plan.blockers) == 1
    blocker = plan.blockers[0]
    assert blocker.startswith("apply will need RWANDA_DHIS2_PASSWORD: block 'rwanda-dhis2' is created")
    assert "not set here nor named in CHAPCTL_SECRET_NAMES, so apply would refuse" in blocker
    assert "`ci.allow_unset`" in blocker


@pytest.mark.parametrize("names", ["RWANDA_DHIS2_PASSWORD", "GITHUB_TOKEN, RWANDA_DHIS2_PASSWORD\nOTHER",
                                   '["RWANDA_DHIS2_PASSWORD"]', '{"RWANDA_DHIS2_PASSWORD": "never-read"}'])
def test_a_secret_named_in_the_names_variable_is_no_blocker_and_no_warning(names):
    plan, desired = _plan_and_desired()
    require(plan, desired, {"CHAPCTL_SECRET_NAMES": names})
    assert plan.blockers == [] and plan.missing_env == []


def test_the_repository_can_allow_a_variable_unset_and_plan_keeps_the_warning():
    plan, desired = _plan_and_desired()
    require(plan, replace(desired, allow_unset=["RWANDA_DHIS2_PASSWORD"]), {})
    assert plan.blockers == []
    assert len(plan.missing_env) == 1 and plan.missing_env[0].endswith(
        "allowed unset by `ci.allow_unset` in projects/_defaults.yaml")


def test_every_missing_variable_the_planner_words_names_its_variable():
    """The requirement reads the variable out of the planner's wording: they must agree."""
    seen = 0
    for case in CASES:
        _, plan = _load(case)
        for entry in plan.missing_env:
            assert needed_variable(entry) is not None, entry
            seen += 1
    assert seen >= 1


def test_the_names_variable_takes_names_never_values():
    assert declared_names({}) == set()
    assert declared_names({"CHAPCTL_SECRET_NAMES": " A_1,B  C\n"}) == {"A_1", "B", "C"}
    with pytest.raises(UserError) as err:
        declared_names({"CHAPCTL_SECRET_NAMES": "A=hunter2-canary"})
    assert "hunter2-canary" not in str(err.value) and "never their values" in str(err.value)
    with pytest.raises(UserError):
        declared_names({"CHAPCTL_SECRET_NAMES": '["A"'})
