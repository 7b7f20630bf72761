"""The step of apply that hands a hand-made schedule's runs over: no run twice, none lost.

What Prefect 3.9.1 does (server `models/deployments.py`, `api/deployments.py`, `services/scheduler.py`):

- Pausing a schedule (`PATCH /deployments/{id}/schedules/{sid}`) deletes the not-yet-started,
  auto-scheduled runs of **every** schedule of that deployment whose time is after that moment
  (`_delete_scheduled_runs(auto_scheduled_only=True, future_only=True)`); a run due at or before
  it is kept. So is every update of a deployment. Deleting a schedule deletes them whatever their time.
- The scheduler service makes runs only from *its* now onward, for active schedules, with the
  idempotency key `scheduled <deployment id> <schedule id> <time>`: a run whose row still exists
  is never made twice, a time already past is never made again. Its main loop runs every 60 s,
  so without help the other schedules of the deployment lose the runs of the next minute.
- `POST /deployments/{id}/schedule` schedules a deployment's active schedules at once, from a
  given `start_time`, with the same keys.

The planner therefore orders, for a project that replaces schedule S of hand-made deployment O:
schedule the project's deployment P (its runs exist from that moment t), pause S (O keeps the runs
due up to the pause), then this step (`finish`): one run time held by both O (kept at the pause)
and P (made since t) keeps one run, and O's other active schedules get their runs back from the
moment of the pause. For a deployment adopted in place (its schedule S kept with its id), this step
re-schedules it from the moment S was taken over: runs kept at that moment have the same key, so
none is made twice, and none between that moment and the scheduler's next pass is lost.

Everything here is idempotent: a re-run after a kill finds nothing more to do.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from compiler.errors import NotFound
from compiler.reconcile.client import PrefectAPI

RUN_FIELDS = ("id", "expected_start_time", "state_type", "run_count", "created_by", "auto_scheduled")


def finish(api: PrefectAPI, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """Run the handover step for the schedule named by `path` (`/deployments/{id}/schedules/{sid}`).

    `body`: `successor_id` (the replacing deployment, or None when taken over in place), `successor_slug`
    (the slug of its schedule taking over: only that schedule's runs are compared; absent: all) and
    `reschedule` (schedule the deployment of `path` again from the moment the schedule changed).
    Returns what it did, for the apply report and the tests."""
    parts = path.strip("/").split("/")
    deployment_id, schedule_id = parts[1], parts[3]
    done: dict[str, Any] = {"deleted_successor_runs": [], "deleted_paused_runs": [], "rescheduled_from": None}
    try:
        schedules = api.get(f"/deployments/{deployment_id}/schedules")
    except NotFound:
        return done  # the hand-made deployment is gone: nothing of it can run
    schedule = next((s for s in schedules if s.get("id") == schedule_id), None)
    if schedule is None:
        return done
    changed_at = _time(schedule["updated"])  # the server's clock, at (or just before) the pause or takeover
    successor_id = body.get("successor_id")
    if successor_id:
        _one_run_per_time(api, deployment_id, schedule_id, successor_id, body.get("successor_slug"), changed_at, done)
    if body.get("reschedule"):
        api.post(f"/deployments/{deployment_id}/schedule", {"start_time": changed_at.isoformat()})
        done["rescheduled_from"] = changed_at.isoformat()
    return done


def _one_run_per_time(api: PrefectAPI, old_id: str, schedule_id: str, successor_id: str, successor_slug: str | None,
                      paused_at: dt.datetime, done: dict[str, Any]) -> None:
    """After the pause: no run of the paused schedule after the pause (Prefect deleted them; one a
    scheduler pass computed before the pause and inserted after it goes too), and a time the paused
    schedule kept (due at the pause) is not run by the successor as well."""
    successor_runs = _runs(api, successor_id, {"state": {"type": {"any_": ["SCHEDULED"]}}})
    if successor_slug:  # the successor has several schedules: only the one taking over counts
        ids = {s.get("id") for s in api.get(f"/deployments/{successor_id}/schedules") if s.get("slug") == successor_slug}
        successor_runs = [r for r in successor_runs if (r.get("created_by") or {}).get("id") in ids]
    if not successor_runs:
        since = paused_at
    else:
        since = min(paused_at, min(_time(r["expected_start_time"]) for r in successor_runs))
    old_runs = [r for r in _runs(api, old_id, {"expected_start_time": {"after_": (since - dt.timedelta(seconds=1))
                                                                            .isoformat()}})
                if (r.get("created_by") or {}).get("id") == schedule_id]
    kept: set[dt.datetime] = set()
    for run in old_runs:
        when = _time(run["expected_start_time"])
        if when > paused_at and run.get("state_type") == "SCHEDULED" and not run.get("run_count"):
            _delete_run(api, run["id"])
            done["deleted_paused_runs"].append(run["id"])
        else:
            kept.add(when)
    for run in successor_runs:
        if _time(run["expected_start_time"]) in kept and not run.get("run_count"):
            _delete_run(api, run["id"])
            done["deleted_successor_runs"].append(run["id"])


def _runs(api: PrefectAPI, deployment_id: str, flt: dict[str, Any]) -> list[dict[str, Any]]:
    rows = api.filter_all("/flow_runs/filter", {
        "flow_runs": {"deployment_id": {"any_": [deployment_id]}, **flt}, "sort": "EXPECTED_START_TIME_ASC"})
    return [{k: r.get(k) for k in RUN_FIELDS} | {"state_type": r.get("state_type") or (r.get("state") or {}).get("type")}
            for r in rows if r.get("expected_start_time")]


def _delete_run(api: PrefectAPI, run_id: str) -> None:
    try:
        api.delete(f"/flow_runs/{run_id}")
    except NotFound:
        pass  # gone already (a re-run, or it started and was cleaned up): nothing left to do


def _time(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
