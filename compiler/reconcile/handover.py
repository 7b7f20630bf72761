"""The steps of apply that keep scheduled runs: none lost, none twice, by any apply.

What Prefect 3.9.1 does (server `models/deployments.py`, `api/deployments.py`, `services/scheduler.py`):

- Every update of a deployment (`PATCH /deployments/{id}`, and `POST /deployments/` of an existing
  one) and every update of one of its schedules (`PATCH /deployments/{id}/schedules/{sid}`, a pause
  included) deletes the not-yet-started, auto-scheduled runs of **every** schedule of that
  deployment whose time is after that moment (`_delete_scheduled_runs(auto_scheduled_only=True,
  future_only=True)`); a run due at or before it is kept. Deleting a schedule deletes them whatever
  their time. Creating a schedule (`POST /deployments/{id}/schedules`) or a deployment deletes
  nothing, but makes no run either.
- The scheduler service makes runs only from *its* now onward, for active schedules of deployments
  not paused, with the idempotency key `scheduled <deployment id> <schedule id> <time>`: a run whose
  row still exists is never made twice, a time already past is never made again. Its main loop runs
  every 60 s, its loop for deployments updated since its last pass every 5 s; so without help a
  run due between an apply's write and that pass is lost for good.
- `POST /deployments/{id}/schedule` schedules a deployment's active schedules at once, from a
  given `start_time`, with the same keys and the same settings as the service (`min_runs`,
  `max_runs`, `min_scheduled_time`, `max_scheduled_time` of the server: no more runs than it
  makes). It does not look at `paused`.

So every chain of writes to a deployment of a project ends with a RUNS step (`restore_runs`): the
deployment, unless paused or without an active schedule, is scheduled from the moment of the
chain's first write, read back in the server's clock (the `updated` stamps that changed since the
plan read them). A run due in between is made (late, it starts at once), a run that survived has
the same key and is not made twice, and the scheduler's next pass adds none.

A project that replaces schedule S of hand-made deployment O (`finish`, the HANDOVER step) is
ordered: schedule the project's deployment P (its runs exist from that moment t), pause S (O keeps
the runs due up to the pause), then `finish`: one run time held by both O (kept at the pause) and
P (made since t) keeps one run, and O's other active schedules get their runs back from the moment
of the pause. A deployment adopted in place (its schedule S kept with its id) is one of the
project's chains: its RUNS step re-schedules it from the moment S was taken over.

Everything here is idempotent: a re-run after a kill finds nothing more to do. A kill between a
chain's last write and its RUNS step leaves the dead apply's lock on the server: the next apply
(changes or not) takes it over and `restore_since` schedules every active deployment of the owner
from the moment the dead apply took the lock. A schedule deleted also takes the runs already due
and not yet started, which neither the scheduler nor this step makes again (they are in the past).
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


def restore_runs(api: PrefectAPI, path: str, body: dict[str, Any]) -> str | None:
    """The RUNS step for the deployment of `path` (`/deployments/{id}`), after its chain's writes.

    `body["as_read"]`: the `updated` stamps (object id -> stamp) of the deployment and of its
    schedules as the plan read them; an object whose stamp differs now (or that is new) was written
    by this apply, and the earliest such stamp is the moment the deletions began (the server's
    stamp of a write is taken before the runs are deleted). Returns the start time scheduled from
    (None: nothing to schedule, or from the server's now when no written object is left to read)."""
    deployment_id = path.rstrip("/").rsplit("/", 1)[1]
    try:
        deployment = api.get(f"/deployments/{deployment_id}")
    except NotFound:
        return None  # deleted meanwhile: no runs to keep
    schedules = deployment.get("schedules") or []
    if deployment.get("paused") or not any(s.get("active") for s in schedules):
        return None  # the scheduler makes none either
    as_read = body.get("as_read") or {}
    written = [_time(o["updated"]) for o in (deployment, *schedules)
               if o.get("updated") and as_read.get(o.get("id")) != o["updated"]]
    start = min(written).isoformat() if written else None
    api.post(f"/deployments/{deployment_id}/schedule", {"start_time": start} if start else {})
    return start


def restore_since(api: PrefectAPI, deployments: list[dict[str, Any]], since: str) -> list[str]:
    """After an apply died (its lock, taken at `since` by the server's clock, was found expired):
    schedule every one of `deployments` (live, of this owner) that has an active schedule again
    from `since`. Whatever the dead apply wrote deleted runs it may not have put back (it was
    killed before its RUNS step); the idempotency keys keep every run that exists, and a time due
    meanwhile runs now instead of never. Returns the names of the deployments scheduled."""
    done = []
    for d in deployments:
        if d.get("paused") or not any(s.get("active") for s in d.get("schedules") or []):
            continue  # the scheduler makes none either
        try:
            api.post(f"/deployments/{d['id']}/schedule", {"start_time": since})
        except NotFound:
            continue  # pruned by this apply
        done.append(str(d.get("name")))
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
