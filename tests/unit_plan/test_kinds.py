"""The registry of Prefect object kinds (compiler/reconcile/kinds.py): every kind the planner
emits is registered with a label and a stage, none is registered that no plan emits, the
reporters group by it, and apply's stages write every object after the objects it refers to."""

from __future__ import annotations

import pytest

from compiler.jsontree import leaves
from compiler.output import plan as report
from compiler.reconcile.actions import Placeholder, ResourceId
from compiler.reconcile.apply import stages
from compiler.reconcile.kinds import BY_NAME, KINDS, stage_kinds
from tests.plan_golden.test_plan_golden import CASES, _load

PLANS = {case.name: _load(case)[1] for case in CASES}


def test_every_kind_has_a_label_and_a_stage_and_is_registered_once():
    assert len(BY_NAME) == len(KINDS)
    assert all(k.label and isinstance(k.stage, int) and k.stage >= 0 for k in KINDS)
    assert sorted(n for kinds in stage_kinds() for n in kinds) == sorted(BY_NAME)


def test_the_planner_emits_exactly_the_registered_kinds():
    emitted = {a.kind for p in PLANS.values() for a in p.actions}
    assert emitted == set(BY_NAME)


def test_the_reporters_group_every_kind_by_its_label():
    assert dict(report.GROUPS) == {k.name: k.label for k in KINDS}


def _refers_to(action) -> set[Placeholder]:
    out = set()
    for r in action.requests:
        parts = [*(r.path if isinstance(r.path, tuple) else ()), *leaves(r.body)]
        out |= {p for p in parts if isinstance(p, Placeholder)} | {p.placeholder for p in parts
                                                                   if isinstance(p, ResourceId)}
    return out


@pytest.mark.parametrize("name", sorted(PLANS))
def test_apply_writes_every_object_after_what_it_refers_to(name):
    where = {}  # action -> (stage, chain, position)
    for s, stage in enumerate(stages(PLANS[name])):
        for c, chain in enumerate(stage):
            for i, a in enumerate(chain):
                where[id(a)] = (s, c, i)
    providers = {a.provides: a for a in PLANS[name].actions if a.provides is not None and id(a) in where}
    for a in PLANS[name].actions:
        for ph in _refers_to(a):
            if ph in providers and providers[ph] is not a:  # an action's later requests may use its own id
                (ps, pc, pi), (s, c, i) = where[id(providers[ph])], where[id(a)]
                assert ps < s or (ps == s and pc == c and pi < i), (a.kind, a.name, ph)


def test_some_case_refers_across_stages():  # the check above is not vacuous
    assert any(ph in {a.provides for a in p.actions} for p in PLANS.values() for a in p.actions
               for ph in _refers_to(a))
