"""Issue 21 #3: the planner meets two automations of one alert (the server never refuses a second
one; an older chapctl whose create's answer was lost, or a kill, leaves it). It keeps the one that
says what the plan says, else the oldest, and deletes the others: the next apply converges."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from compiler.reconcile.desired import load_desired
from compiler.reconcile.facts import Facts
from compiler.reconcile.live import Live
from compiler.reconcile.plan import plan

GOLDEN = Path(__file__).resolve().parents[1] / "plan_golden"
# Its laos-malaria/missed automation was disabled and its grace changed in the UI; the others match.
CASE = GOLDEN / "cases" / "automation_edited_in_ui_is_reverted"


def plan_with(extra: list[dict], created: dict[str, str] | None = None, first: bool = False):
    """The golden case's plan, its live automations dated (`created` by id, else 2026-01-01) and
    `extra` added (`first`: ahead of them, as a server listing names in a tie may give them)."""
    facts = Facts.from_json(json.loads((GOLDEN / "facts.json").read_text()))
    env = json.loads((CASE / "env.json").read_text())
    live = Live.from_json(json.loads((CASE / "live.json").read_text()))
    for a in live.automations:
        a["created"] = (created or {}).get(a["id"], "2026-01-01T00:00:00Z")
    live.automations = extra + live.automations if first else live.automations + extra
    p = plan(load_desired(CASE / "desired", env, facts=facts), live)
    return {(a.name, a.op, a.requests[0].path if a.requests else None) for a in p.actions if a.kind == "automation"
            and a.writes}, p


def automation(tag: str) -> dict:
    live = Live.from_json(json.loads((CASE / "live.json").read_text()))
    return next(a for a in live.automations if f"chapctl-alert:{tag}" in a["tags"])


def copy_of(tag: str, new_id: str, created: str, **changes) -> dict:
    return {**copy.deepcopy(automation(tag)), "id": new_id, "created": created, **changes}


def test_an_identical_copy_is_deleted_and_the_older_one_kept():
    original = automation("laos-dengue/failed")
    newer = copy_of("laos-dengue/failed", "00000000-0000-4000-8000-0000000000f1", "2026-01-05T00:00:00Z")
    # Listed first (a tie of names comes in any order): the older one is still the one kept.
    writes, p = plan_with([newer], first=True)
    assert ("laos-dengue/failed", "delete", f"/automations/{newer['id']}") in writes
    assert not any(path and original["id"] in path for _, _, path in writes)
    assert next(a for a in p.actions if a.name == "laos-dengue/failed" and a.op == "delete").reason == \
        "a duplicate of this owner's alert"


def test_the_copy_that_matches_the_plan_is_kept_over_an_older_edited_one():
    edited = automation("laos-malaria/missed")  # disabled, grace 60 s: the plan would revert it
    matching = copy_of("laos-malaria/missed", "00000000-0000-4000-8000-0000000000f2", "2026-01-05T00:00:00Z",
                       enabled=True, trigger={**edited["trigger"], "within": 1800.0})
    writes, _ = plan_with([matching])
    mine = {w for w in writes if w[0] == "laos-malaria/missed"}
    assert mine == {("laos-malaria/missed", "delete", f"/automations/{edited['id']}")}  # no update: the copy is it


def test_when_no_copy_matches_the_oldest_is_updated_and_the_others_deleted():
    edited = automation("laos-malaria/missed")
    newer = copy_of("laos-malaria/missed", "00000000-0000-4000-8000-0000000000f3", "2026-01-05T00:00:00Z")
    writes, _ = plan_with([newer], first=True)
    mine = {w for w in writes if w[0] == "laos-malaria/missed"}
    assert mine == {("laos-malaria/missed", "update", f"/automations/{edited['id']}"),
                    ("laos-malaria/missed", "delete", f"/automations/{newer['id']}")}
