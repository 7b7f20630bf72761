"""Next runs of the schedules a plan creates or changes, for the reviewer of the plan.

`schedule_previews(plan)` computes, for every schedule the plan creates or changes (drift reverts
included), its next runs with the installed Prefect's own `CronSchedule`
(`compiler.review.preview.schedule_runs`). It reads the schedule bodies apply will send, so a
preview is of exactly what the server will get. Prefect is imported only when at least one active
schedule is created or changed: a no-op plan never imports it. `plan()` itself stays pure; the plan
reporters (compiler/output/plan.py) take the result as `next_runs`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from compiler.constants import DEFAULT_TIMEZONE
from compiler.reconcile.actions import CREATE, UPDATE, Action, Plan
from compiler.timefmt import run_json

PREVIEW_RUNS = 3
PAUSED = "paused: no runs"


@dataclass(frozen=True)
class NextRuns:
    """The next runs of one schedule that a plan creates or changes."""

    schedule: str  # "<project>/<slug>"
    cron: str
    timezone: str
    active: bool
    runs: tuple[dt.datetime, ...]  # aware, in the schedule's zone; empty when paused
    note: str | None = None  # PAUSED, or why there is no preview

    def to_json(self) -> list[dict[str, str]]:
        return [run_json(r) for r in self.runs]


@dataclass(frozen=True)
class Previews:
    """Next runs keyed by the action (kind, name) whose requests create or change the schedules."""

    start: dt.datetime
    count: int
    by_action: dict[tuple[str, str], list[NextRuns]]
    note: str | None = None  # the server's Prefect release differs from the one computing previews

    def get(self, action: Action) -> list[NextRuns]:
        return self.by_action.get((action.kind, action.name), [])


def previewed_schedules(plan: Plan) -> list[tuple[Action, str, dict[str, Any]]]:
    """(action, schedule name, schedule body as apply sends it) for every schedule the plan creates
    or updates: schedule creates/updates, and the schedules inside a new deployment's POST."""
    out: list[tuple[Action, str, dict[str, Any]]] = []
    for a in plan.actions:
        if a.op not in (CREATE, UPDATE):
            continue
        for r in a.requests:
            if a.kind == "schedule" and r.method in ("POST", "PATCH"):
                bodies = r.body if isinstance(r.body, list) else [r.body]
                out += [(a, a.name, b) for b in bodies
                        if isinstance(b, dict) and "cron" in (b.get("schedule") or {})]  # a paused hand-made one may not be
            elif a.kind == "deployment" and a.op == CREATE and r.method == "POST" and isinstance(r.body, dict):
                for b in r.body.get("schedules") or []:
                    out.append((a, f"{a.name}/{b.get('slug') or 'schedule'}", b))
    return out


def schedule_previews(plan: Plan, count: int = PREVIEW_RUNS, start: dt.datetime | None = None,
                      server_version: str | None = None) -> Previews | None:
    """Next runs of the schedules `plan` creates or changes; None when there are none (then
    nothing is imported). Paused schedules get no runs and no Prefect call."""
    targets = previewed_schedules(plan)
    if not targets:
        return None
    start = start or dt.datetime.now(dt.timezone.utc)
    by_action: dict[tuple[str, str], list[NextRuns]] = {}
    for action, name, body in targets:
        sched = body["schedule"]  # chapctl's schedules are always cron (ScheduleSpec.api_body)
        cron, zone, active = sched["cron"], sched.get("timezone") or DEFAULT_TIMEZONE, body.get("active", True) is not False
        runs: tuple[dt.datetime, ...] = ()
        note = None
        if not active:
            note = PAUSED
        elif sched.get("day_or", True) is not True:  # never compiled; schedule_runs assumes day_or
            note = "day_or false: no preview"
        else:
            from compiler.review.preview import schedule_runs

            runs = tuple(schedule_runs(cron, zone, count, start))
        by_action.setdefault((action.kind, action.name), []).append(NextRuns(name, cron, zone, active, runs, note))
    from compiler.review.preview import semantics_note

    return Previews(start, count, by_action, semantics_note(server_version))
