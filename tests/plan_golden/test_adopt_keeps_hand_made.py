"""Issue 21 #9: `apply --adopt` never deletes a schedule made by hand. Adopting a hand-made
deployment in place leaves its schedules that no project declares alone (a note says so), and a
schedule some project replaces is left to that project (which pauses it) — on the golden case of
an adopted deployment, with hand-made schedules added to its live state."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from compiler.reconcile.desired import load_desired
from compiler.reconcile.facts import Facts
from compiler.reconcile.live import Live
from compiler.reconcile.actions import DELETE
from compiler.reconcile.plan import plan

HERE = Path(__file__).parent
CASE = HERE / "cases" / "unmanaged_name_clash_adopted"
HAND = "00000000-0000-4000-8000-0000000000aa"


def _schedule(sid: str, cron: str) -> dict:
    return {"id": sid, "slug": None, "active": True, "schedule": {"cron": cron, "timezone": "UTC", "day_or": True},
            "parameters": {"end_mode": "calculated"}, "max_scheduled_runs": None}


def test_adopting_a_deployment_leaves_its_undeclared_hand_made_schedules_alone():
    facts = Facts.from_json(json.loads((HERE / "facts.json").read_text()))
    desired = load_desired(CASE / "desired", {}, facts=facts)
    raw = json.loads((CASE / "live.json").read_text())
    hand = next(d for d in raw["deployments"] if d["name"] == "laos-malaria")
    hand["schedules"] = [_schedule(HAND, "0 9 * * 2")]
    live = Live.from_json(copy.deepcopy(raw))
    p = plan(desired, live, adopt=True)
    deletes = [a for a in p.actions if a.kind == "schedule" and a.op == DELETE]
    assert deletes == [], [a.name for a in deletes]
    assert any(HAND in n and "left alone, not deleted" in n for n in p.notes), p.notes
    assert p.left_alone == [HAND]  # apply records it: later plans leave it alone too
