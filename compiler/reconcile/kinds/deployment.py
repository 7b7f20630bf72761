"""Deployments with their schedules: one deployment per project (stage 3), its schedules matched by
slug, its own concurrency limit (`limits:`); pruned when no project declares it any more (after
every other write, each on its own). The schedules, then the deployment (whose PATCH carries the
fingerprint, `version`, and goes last so that a run killed in between leaves the old fingerprint
behind and the re-run still reports a change, not drift), then a RUNS step, form one chain per
project. A new deployment is created by one POST that includes its schedules: atomic, nothing to
resume.

Ownership: only the owner's deployments are updated or pruned (`compiler.reconcile.ownership`); a
deployment of another owner with a name this owner wants is a blocker naming that owner. A plan
that would delete every deployment of the owner is a blocker unless allowed.

Hand-made schedules a project replaces (`replaces:`, written by `chapctl import`): with --adopt,
the chain that creates the project's deployment also schedules its runs, pauses the old schedule
(whole body, `active: false`; never deleted) and ends with a HANDOVER step (`compiler.reconcile.
handover`) so that no run happens twice and none is lost; without --adopt, an active replaced
schedule is a blocker. A schedule replaced on the project's own deployment is taken over in place.

Scheduled runs: every project's chain of writes ends with a RUNS step (`_restore_runs`) that makes
again the runs Prefect deletes with any update of a deployment or of its schedules.

Reads: this owner's deployments, any a project's name would clash with, and the hand-made ones
whose schedules projects replace (one `or_` filter); after the flows, the runs of the deployments
a plan prunes and, before an owner's first apply, the deployments of an owner-less chapctl.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from compiler.constants import DEFAULT_COLLISION_STRATEGY, MANAGED_TAG, STATE_VARIABLE
from compiler.compile.artifact import BlockRef, Replaces
from compiler.reconcile.actions import (CREATE, DELETE, HANDOVER, NOOP, RUNS, SECRET_HIDDEN, UPDATE, Action, AsRead,
                                        Change, Placeholder, Plan, PlanOptions, Request, ref)
from compiler.reconcile.client import PrefectAPI
from compiler.reconcile.context import Context, Live
from compiler.reconcile.desired import Desired, DesiredDeployment
from compiler.reconcile.kinds.base import ActionKind, Kind, Read, named
from compiler.reconcile.ownership import LEGACY, deployment_owner

DEPLOYMENT_FIELDS = (
    "id",
    "name",
    "flow_id",
    "version",
    "description",
    "tags",
    "work_pool_name",
    "parameters",
    "parameter_openapi_schema",
    "enforce_parameter_schema",
    "pull_steps",
    "entrypoint",
    "paused",
    "job_variables",
    "updated",
)
SCHEDULE_FIELDS = ("id", "slug", "schedule", "active", "parameters", "max_scheduled_runs", "updated")
RUN_FIELDS = ("id", "name", "state_type", "state_name", "run_count", "next_scheduled_start_time", "auto_scheduled")
# Runs that are not over: a pruned deployment's SCHEDULED ones (never started) go with it, the
# others keep running (or are cancelled with --cancel-in-flight).
OPEN_STATES = ("SCHEDULED", "PENDING", "RUNNING", "PAUSED", "CANCELLING")


def read(api: PrefectAPI, desired: Desired, live: Live, env: Mapping[str, str]) -> None:
    """The deployments plan may touch or must not clash with, one filter."""
    # Only this owner's deployments, any deployment a project's name would clash with, and the
    # hand-made deployments whose schedules projects replace (`replaces:`), in the same request.
    names = sorted({d.name for d in desired.deployments}
                   | {r.deployment_name for d in desired.deployments for r in d.replaced})
    flt: dict[str, Any] = {"tags": {"any_": [desired.owner_tag]}}
    if names:
        flt = {"operator": "or_", "tags": {"any_": [desired.owner_tag]}, "name": {"any_": names}}
    rows = api.filter_all("/deployments/filter", {"deployments": flt, "sort": "NAME_ASC"})
    for r in rows:
        d = {k: r.get(k) for k in DEPLOYMENT_FIELDS}
        d["flow_id"] = r["flow_id"]  # every deployment has one: a row without it is not Prefect's
        d["flow_name"] = None  # the flow's name: kinds/flow.py reads the flows next
        d["schedules"] = [{k: s.get(k) for k in SCHEDULE_FIELDS} for s in r.get("schedules") or []]
        limit = r.get("global_concurrency_limit") or {}
        if limit.get("limit") is not None:  # the deployment's own concurrency limit (`limits:`)
            d["concurrency_limit"] = limit["limit"]
            d["collision_strategy"] = (r.get("concurrency_options") or {}).get("collision_strategy") or DEFAULT_COLLISION_STRATEGY
        live.deployments.append(d)


def read_after_flows(api: PrefectAPI, desired: Desired, live: Live, env: Mapping[str, str]) -> None:
    """Once the flows are known (kinds/flow.py): before an owner's first apply (no commit record),
    the deployments of an owner-less chapctl; and the open runs of the deployments a plan prunes."""
    if STATE_VARIABLE.format(owner=desired.owner) not in live.variables:
        _read_legacy(api, desired, live)
    _read_open_runs(api, desired, live)


def _read_legacy(api: PrefectAPI, desired: Desired, live: Live) -> None:
    """Before an owner's first apply: deployments an owner-less chapctl made that no project
    declares. They are not pruned (another repository may still declare them); plan names them."""
    wanted = {d.name for d in desired.deployments}
    rows = api.filter_all("/deployments/filter", {"deployments": {"tags": {"all_": [MANAGED_TAG]}}, "sort": "NAME_ASC"})
    live.legacy = sorted({r["name"] for r in rows if r["name"] not in wanted and deployment_owner(r) == LEGACY})


def prune_candidates(desired: Desired, live: Live) -> list[dict[str, Any]]:
    """The owner's live deployments that no project declares (what a plan deletes)."""
    wanted = {(d.flow_name, d.name) for d in desired.deployments}
    return [d for d in live.deployments
            if deployment_owner(d) == desired.owner and (d["flow_name"], d["name"]) not in wanted]


def _read_open_runs(api: PrefectAPI, desired: Desired, live: Live) -> None:
    ids = [d["id"] for d in prune_candidates(desired, live)]
    if not ids:
        return
    rows = api.filter_all("/flow_runs/filter", {
        "flow_runs": {"deployment_id": {"any_": ids}, "state": {"type": {"any_": list(OPEN_STATES)}}},
        "sort": "EXPECTED_START_TIME_ASC",
    })
    for r in rows:
        run = {k: r.get(k) for k in RUN_FIELDS}
        run["state_type"] = r.get("state_type") or (r.get("state") or {}).get("type")
        run["state_name"] = r.get("state_name") or (r.get("state") or {}).get("name")
        live.runs.setdefault(r["deployment_id"], []).append(run)


def rule(ctx: Context, p: Plan) -> list[Action]:
    """Each project's deployment with its schedules (and the hand-made schedules it replaces), then
    the prunes; the notes of the schedules left alone, and the parameters that do not fit their flow."""
    actions = _plan_deployments(ctx, p)
    p.notes += ctx.notes
    p.left_alone = sorted(ctx.left_alone)
    p.blockers += _parameter_blockers(ctx, actions)
    if ctx.live.legacy:
        p.notes.append(
            f"{len(ctx.live.legacy)} deployment(s) applied by an earlier chapctl without owners are declared by no "
            f"project here: {', '.join(ctx.live.legacy)}. They are not pruned (another repository may still declare "
            "them): declare one in projects/ to adopt it, or delete it in the Prefect UI."
        )
    return actions


# -- deployments ----------------------------------------------------------------------------------
_COMPARED = (
    "description",
    "tags",
    "work_pool_name",
    "entrypoint",
    "pull_steps",
    "parameters",
    "parameter_openapi_schema",
    "enforce_parameter_schema",
    "job_variables",
    "paused",
)


def _desired_body(ctx: Context, d: DesiredDeployment) -> dict[str, Any]:
    params = {
        k: ({"$ref": {"block_document_id": ctx.block_id(v.slug, v.name)}} if isinstance(v, BlockRef) else v)
        for k, v in d.parameters.items()
    }
    return {
        "description": d.description,
        "tags": d.tags,
        "work_pool_name": d.work_pool,
        "entrypoint": d.entrypoint,
        "pull_steps": d.pull_steps,
        "parameters": params,
        "parameter_openapi_schema": d.parameter_openapi_schema,
        "enforce_parameter_schema": True,
        "job_variables": {},
        "paused": False,
        **({"concurrency_limit": d.concurrency[0], "concurrency_options": {"collision_strategy": d.concurrency[1]}}
           if d.concurrency else {}),
    }


def _plan_deployments(ctx: Context, p: Plan) -> list[Action]:
    actions: list[Action] = []
    for d in ctx.desired.deployments:
        live = ctx.live_by_key.get((d.flow_name, d.name))
        if live is None:
            actions += _restore_runs(d, [_create_deployment(ctx, d)], None)
            actions += _plan_replaced(ctx, p, d, None)
            continue
        owner = deployment_owner(live)
        if owner == ctx.owner:
            actions += _restore_runs(d, _update_deployment(ctx, d, live, adopting=None), live)
            actions += _plan_replaced(ctx, p, d, live)
        elif owner == LEGACY:  # an owner-less chapctl applied it: this owner takes it over, ids kept
            actions += _restore_runs(d, _update_deployment(ctx, d, live, adopting="applied by an earlier chapctl "
                                                                               "without owners"), live)
            actions += _plan_replaced(ctx, p, d, live)
        elif owner is None and ctx.options.adopt:
            actions += _restore_runs(d, _update_deployment(ctx, d, live, adopting="adopting an unmanaged deployment "
                                                                               "(--adopt)"), live)
            actions += _plan_replaced(ctx, p, d, live)
        elif owner is None:
            p.blockers.append(
                f"deployment {d.flow_name}/{d.name} exists on the server but is not managed by chapctl "
                f"(no {MANAGED_TAG} tag); rename the project, delete that deployment, or pass --adopt"
            )
        else:
            p.blockers.append(
                f"deployment {d.flow_name}/{d.name} belongs to chapctl owner {owner!r} (another repository applying "
                f"to this server); rename the project, or remove it from the repository of owner {owner!r} first "
                "(its next apply prunes it)"
            )
    doomed = prune_candidates(ctx.desired, ctx.live)
    owned = [lv for lv in ctx.live.deployments if deployment_owner(lv) == ctx.owner]
    if doomed and len(doomed) == len(owned) and not ctx.options.allow_delete_all:
        empty = "projects/ declares no project" if not ctx.desired.deployments else "no project declares any of them"
        names = ", ".join(lv["name"] for lv in doomed[:5]) + (f" and {len(doomed) - 5} more" if len(doomed) > 5 else "")
        p.blockers.append(
            f"this plan deletes every deployment of owner {ctx.owner!r} ({len(doomed)}: {names}); {empty}. "
            "If that is intended, re-run with --allow-delete-all"
        )
    for live in doomed:
        actions.append(_delete_deployment(ctx, live))
        for block_id in _referenced_block_ids(live):
            block = ctx.blocks_by_id.get(block_id)
            if block is None or _block_still_used(ctx, block) or (block["slug"], block["name"]) in ctx.claims:
                continue  # a claimed block is released by its own action
            note = (f"block {block['name']!r} is no longer used by any project: orphaned, not deleted "
                    "(chapctl never deletes credentials; remove it in the UI if it is not needed)")
            if note not in p.notes:  # once per block
                p.notes.append(note)
    return actions


def _restore_runs(d: DesiredDeployment, own: list[Action], live: dict[str, Any] | None) -> list[Action]:
    """End the writes of `d`'s chain with a RUNS step: Prefect deletes the deployment's future
    auto-scheduled runs with every update of it or of a schedule (all of them with a schedule
    deleted), and its scheduler makes them again only from its next pass on; a new deployment has
    none until then. The step schedules the deployment's active schedules from the moment of the
    chain's first write (compiler/reconcile/handover.py `restore_runs`). A chain that writes nothing
    (a no-op) gets no step; neither does a deployment without an active schedule."""
    writing = [a for a in own if a.writes]
    if not writing or not any(s.active for s in d.schedules):
        return own
    if live is None:
        path: str | tuple[Any, ...] = ("/deployments/", ref("deployment", d.name))
        stamps: dict[str, Any] = {}
    else:
        path = f"/deployments/{live['id']}"
        stamps = {live["id"]: live.get("updated")} | {s["id"]: s.get("updated") for s in live.get("schedules") or []}
    writing[-1].requests.append(Request(RUNS, path, {"as_read": stamps}))
    return own


# -- hand-made schedules that projects replace (`replaces:`, written by `chapctl import`) ----------
def _plan_replaced(ctx: Context, p: Plan, d: DesiredDeployment, successor: dict[str, Any] | None) -> list[Action]:
    """The hand-made schedules `d` takes over, on another deployment: each paused (never deleted)
    with --adopt, in the same chain that creates `d`, after `d`'s runs are scheduled; refused
    without --adopt while it is active (both would run). A schedule taken over in place (a
    deployment adopted under its own name) is handled by `_plan_schedules` instead."""
    return [a for r in d.replaced if not d.in_place(r) for a in _plan_one_replaced(ctx, p, d, r, successor)]


def _plan_one_replaced(ctx: Context, p: Plan, d: DesiredDeployment, r: Replaces,
                       successor: dict[str, Any] | None) -> list[Action]:
    old = ctx.live_by_key.get((r.flow_name, r.deployment_name))
    where = f"projects/{d.name}.yaml"
    if old is None:
        p.notes.append(f"{where} replaces schedule {r.schedule_id} of deployment {r.deployment}, which is not on "
                       f"the server: nothing to pause (`replaces:` may go from {where})")
        return []
    owner = deployment_owner(old)
    if owner is not None:
        whose = f"chapctl owner {owner!r}" if owner else "an earlier chapctl"
        p.blockers.append(f"{where} replaces schedule {r.schedule_id} of deployment {r.deployment}, which is managed "
                          f"by {whose}; `replaces` takes over hand-made schedules only: remove it from {where}")
        return []
    sched = next((s for s in old.get("schedules") or [] if s.get("id") == r.schedule_id), None)
    if sched is None:
        p.notes.append(f"schedule {r.schedule_id} of deployment {r.deployment}, which {where} replaces, is no longer "
                       f"on the server: nothing to pause (`replaces:` may go from {where})")
        return []
    name = f"{r.deployment}/{sched.get('slug') or r.schedule_id}"
    if sched.get("active") is False:
        return [Action("schedule", name, NOOP, f"paused; replaced by project {d.name}", project=d.name,
                       handover=True)]
    if not ctx.options.adopt:
        both = "every forecast would run twice" if successor is None else \
            f"project {d.name} is on the server too: every forecast runs twice"
        p.blockers.append(
            f"{where} replaces schedule {r.schedule_id} of the hand-made deployment {r.deployment}, which is still "
            f"active: {both}. Re-run with --adopt: apply then pauses it (never deletes it)"
            + (f" in the same apply that creates {d.name}" if successor is None else "")
        )
        return []
    successor_id: str | Placeholder = successor["id"] if successor else ref("deployment", d.name)
    replaced = ctx.replaced_ids
    # Active schedules of the old deployment that no project replaces: their runs go with the pause too.
    others = [s for s in old.get("schedules") or [] if s.get("id") not in replaced and s.get("active") is not False]
    pause: dict[str, Any] = {"schedule": sched.get("schedule"), "active": False,
                             "parameters": AsRead(sched.get("parameters") or {})}
    for key in ("slug", "max_scheduled_runs"):  # unchanged; a PATCH without them keeps them
        if sched.get(key) is not None:
            pause[key] = sched[key]
    requests = []
    if any(s.active for s in d.schedules):  # the successor's runs exist before the old ones go
        requests.append(Request("POST", ("/deployments/", successor_id, "/schedule"), {}))
    requests += [
        Request("PATCH", f"/deployments/{old['id']}/schedules/{r.schedule_id}", pause),
        Request(HANDOVER, f"/deployments/{old['id']}/schedules/{r.schedule_id}",
                {"successor_id": successor_id, "successor_slug": r.slug, "reschedule": bool(others)}),
    ]
    changes = [
        Change("active", True, False),
        Change("future runs", "deleted by Prefect with the pause",
               f"project {d.name}'s runs take over from the same moment (a run time on both keeps one run)"),
        Change("kept", None, "its id, cron, time zone and parameters: paused, not deleted (resume it in the UI "
                             "to roll back)"),
    ]
    if others:
        changes.append(Change("its deployment's other active schedules", f"{len(others)}, replaced by no project",
                              "their runs are re-created at once (Prefect deletes them with any schedule change)"))
    if not old.get("work_pool_name"):
        note = (f"deployment {r.deployment} has no work pool (made by flow.serve()): its runs go to the process "
                "serving it. Stop that process once all its schedules are handed over")
        if others:
            note += (f"; its {len(others)} active schedule(s) that no project replaces run only while that process "
                     "runs")
        if note not in p.notes:
            p.notes.append(note)
    return [Action("schedule", name, UPDATE,
                   f"replaced by project {d.name}: paused (not deleted) in this apply, after {d.name}'s runs "
                   "are scheduled (--adopt)", changes=changes, requests=requests, project=d.name, handover=True)]


# In-flight runs and the state a cancellation moves them to (what the Prefect UI's cancel does:
# runs with a process get Cancelling, which their worker acts on; a run waiting for a slot has none).
_CANCEL_STATE = {"AwaitingConcurrencySlot": ("CANCELLED", "Cancelled")}


def _delete_deployment(ctx: Context, live: dict[str, Any]) -> Action:
    """Delete a pruned deployment. The server deletes its not-yet-started scheduled runs with it
    (auto-scheduled and manual); runs in flight keep running and lose their deployment link,
    unless the plan cancels them first (--cancel-in-flight)."""
    runs = ctx.live.runs.get(live["id"], [])
    scheduled = [r for r in runs if _waiting(r)]
    in_flight = _in_flight(runs)
    changes: list[Change] = [Change(f"schedule {s.get('slug') or s.get('id')}", _show_schedule(s), "deleted with it")
                             for s in live.get("schedules") or []]
    if scheduled:
        first = scheduled[0].get("next_scheduled_start_time") or ""
        changes.append(Change("scheduled runs", f"{len(scheduled)}" + (f" (next {first})" if first else ""),
                              "deleted with the deployment"))
    elif not in_flight:
        changes.append(Change("runs", "none scheduled or in flight", "nothing else goes"))
    requests: list[Request] = []
    if in_flight:
        counts: dict[str, int] = {}
        for r in in_flight:
            state = r.get("state_name") or r.get("state_type") or "?"
            counts[state] = counts.get(state, 0) + 1
        shown = f"{len(in_flight)} (" + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) + ")"
        if ctx.options.cancel_in_flight:
            changes.append(Change("runs in flight", shown, "cancelled (--cancel-in-flight)"))
            for r in in_flight:
                kind, name = _CANCEL_STATE.get(r.get("state_name") or "", ("CANCELLING", "Cancelling"))
                requests.append(Request("POST", f"/flow_runs/{r['id']}/set_state", {
                    "state": {"type": kind, "name": name,
                              "message": f"chapctl pruned deployment {live['name']!r}: its project was removed"},
                    "force": True,
                }))
        else:
            changes.append(Change("runs in flight", shown,
                                  "left to finish, no longer linked to a deployment (--cancel-in-flight cancels them)"))
    requests.append(Request("DELETE", f"/deployments/{live['id']}"))
    return Action(
        "deployment",
        live["name"],
        DELETE,
        f"no project named {live['name']!r} any more (owner {ctx.owner!r})",
        changes=changes,
        requests=requests,
        project=live["name"],
    )


def _waiting(run: dict[str, Any]) -> bool:
    """A scheduled run that never started: it goes with its deployment (the scheduler makes these)."""
    return (run.get("state_type") == "SCHEDULED" and not run.get("run_count")
            and run.get("state_name") != "AwaitingConcurrencySlot")


def _in_flight(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The runs a prune leaves running (or cancels with --cancel-in-flight)."""
    return [r for r in runs if not _waiting(r) and r.get("state_type") != "CANCELLING"]


def _referenced_block_ids(live: dict[str, Any]) -> list[str]:
    out = []
    for v in (live.get("parameters") or {}).values():
        if isinstance(v, dict) and isinstance(v.get("$ref"), dict) and v["$ref"].get("block_document_id"):
            out.append(v["$ref"]["block_document_id"])
    return out


def _block_still_used(ctx: Context, block: dict[str, Any]) -> bool:
    key = (block["slug"], block["name"])
    return key in ctx.managed_blocks or any((r.slug, r.name) == key for d in ctx.desired.deployments for r in d.block_refs())



def _create_deployment(ctx: Context, d: DesiredDeployment) -> Action:
    body = _desired_body(ctx, d)
    post = {
        "name": d.name,
        "flow_id": ctx.live.flows.get(d.flow_name) or ref("flow", d.flow_name),
        **body,
        "version": d.fingerprint,
        "schedules": [s.api_body() for s in d.schedules],
    }
    # Left out on purpose: the server's default is the same `true`, and naming it makes the server
    # re-check the schema itself on every create (see compiler/reconcile/parameters.py).
    post.pop("enforce_parameter_schema")
    changes = []
    for k, v in body.items():
        if k == "parameters":
            changes += [Change(f"parameters.{pk}", None, _show_value(ctx, pv)) for pk, pv in v.items()]
        elif k not in ("parameter_openapi_schema", "job_variables", "paused", "enforce_parameter_schema"):
            changes.append(Change(k, None, v))
    changes += [Change(f"schedule {s.slug}", None, _show_schedule(s.api_body())) for s in d.schedules]
    return Action(
        "deployment",
        d.name,
        CREATE,
        f"new project {d.name}",
        changes=changes,
        requests=[Request("POST", "/deployments/", post)],
        provides=ref("deployment", d.name),
        project=d.name,
    )


def _parameter_blockers(ctx: Context, actions: list[Action]) -> list[str]:
    """Parameters that would be written but do not fit their flow's schema (only written ones:
    a no-op checks nothing)."""
    written = {a.project for a in actions if a.kind == "deployment" and a.op in (CREATE, UPDATE)
               and any("parameters" in (r.body or {}) or "parameter_openapi_schema" in (r.body or {})
                       for r in a.requests)}
    if not written:
        return []
    from compiler.reconcile.parameters import parameter_problems

    out = []
    for d in ctx.desired.deployments:
        if d.name in written:
            out += [f"projects/{d.name}.yaml: {problem}; its parameters (rendered from chapctl's templates) and the "
                    f"signature of {d.entrypoint} disagree: fix one of them, then run `chapctl compile`"
                    for problem in parameter_problems(d)]
    return out


def _update_deployment(ctx: Context, d: DesiredDeployment, live: dict[str, Any], adopting: str | None) -> list[Action]:
    in_sync = live.get("version") == d.fingerprint and not adopting
    actions = _plan_schedules(ctx, d, live, drift=in_sync, adopting=adopting is not None and deployment_owner(live) is None)
    body = _desired_body(ctx, d)
    changes: list[Change] = []
    patch: dict[str, Any] = {}
    for key in _COMPARED:
        before, after = _normalise(key, live.get(key)), body[key]
        if before == after or (key == "pull_steps" and after is None):  # None: unresolvable here
            continue
        patch[key] = after
        if key == "parameters":
            for pk in sorted(set(before or {}) | set(after)):
                b, a = (before or {}).get(pk), after.get(pk)
                if b != a:
                    changes.append(Change(f"parameters.{pk}", _show_param(ctx, d, pk, b), _show_param(ctx, d, pk, a)))
        elif key == "parameter_openapi_schema":
            changes.append(Change(key, "(previous schema)", "(schema of flows/ today)"))
        else:
            changes.append(Change(key, before, after))
    have = (live["concurrency_limit"], live.get("collision_strategy") or DEFAULT_COLLISION_STRATEGY) \
        if live.get("concurrency_limit") is not None else None
    if have != d.concurrency:
        patch["concurrency_limit"] = d.concurrency[0] if d.concurrency else None
        if d.concurrency:
            patch["concurrency_options"] = {"collision_strategy": d.concurrency[1]}
        show = lambda c: f"{c[0]} at a time ({c[1]})" if c else None  # noqa: E731
        changes.append(Change("concurrency_limit", show(have), show(d.concurrency)))
    if in_sync and changes and all(c.field == "pull_steps" for c in changes):
        in_sync = False  # same repository, different machine: not drift
        reason = "pull steps resolve differently in this environment"
    elif adopting:
        reason = adopting
    elif in_sync:
        reason = "changed on the server since the last apply; apply reverts it"
    elif not str(live.get("version") or "").startswith("chapctl:"):
        reason = "not applied by chapctl before"
    else:
        reason = f"projects/{d.name}.yaml (or flows/, or the environment) changed"
    if patch or live.get("version") != d.fingerprint:
        patch["version"] = d.fingerprint
        requests = [Request("PATCH", f"/deployments/{live['id']}", patch)]
        if adopting and taken_in_place(d, live):
            # The schedules keep their ids (their runs their idempotency keys): the RUNS step that
            # ends this chain re-creates the runs Prefect deletes with the update from the moment of
            # the takeover, and a run kept (due at that moment) is not made twice.
            changes.append(Change("scheduled runs", "deleted by Prefect with the update",
                                  "re-created at once from the moment of the takeover (none twice, none lost)"))
        if not changes:  # a write with nothing for a reviewer to see: reporters fold it into one line
            reason = "record the fingerprint of the applied spec (no visible change)"
        actions.append(
            Action(
                "deployment",
                d.name,
                UPDATE,
                reason,
                drift=in_sync and bool(changes),
                changes=changes,
                requests=requests,
                project=d.name,
                quiet=not changes,
            )
        )
    else:
        reason = "up to date" if not any(a.writes for a in actions) else "fields up to date; only schedules drifted"
        actions.append(Action("deployment", d.name, NOOP, reason, project=d.name))
    return actions


def taken_in_place(d: DesiredDeployment, live: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The live schedules `d` takes over in place (`replaces:` naming its own deployment, made by
    `prefect deploy`), each with the slug of the project's schedule it becomes, while that slug is
    not on the server yet (then they are matched by slug)."""
    by_id = {s.get("id"): s for s in live.get("schedules") or []}
    slugs = {s.get("slug") for s in by_id.values()}
    return [(r.slug, by_id[r.schedule_id]) for r in d.replaced
            if d.in_place(r) and r.slug and r.slug not in slugs and r.schedule_id in by_id]


def _plan_schedules(ctx: Context, d: DesiredDeployment, live: dict[str, Any], drift: bool,
                    adopting: bool = False) -> list[Action]:
    """`d`'s schedules on its deployment, matched by slug. A live schedule the project does not
    declare is deleted — but never one made by hand: one a project replaces is left to that
    project (which pauses it), and while a hand-made deployment is adopted (`adopting`) every
    other is left alone, with a note."""
    dep_id = live["id"]
    live_by_slug = {s["slug"]: s for s in live.get("schedules") or [] if s.get("slug")}
    taken = taken_in_place(d, live)
    for slug, s in taken:  # kept with its id (its runs keep their idempotency keys): PATCHed, slug included
        live_by_slug[slug] = s
    taken_ids = {s["id"] for _, s in taken}
    wanted = {s.slug for s in d.schedules}
    deletes, updates, creates = [], [], []
    for s in live.get("schedules") or []:
        if s["id"] in taken_ids:
            continue
        if s.get("slug") not in wanted and (adopting or s["id"] in ctx.replaced_ids or s["id"] in ctx.hand_made):
            if s["id"] not in ctx.replaced_ids:
                ctx.left_alone.append(s["id"])
            if adopting and s["id"] not in ctx.replaced_ids:
                ctx.notes.append(
                    f"schedule {s.get('slug') or s['id']} of deployment {d.flow_name}/{d.name} ({_show_schedule(s)}) "
                    f"was made by hand and no project declares or replaces it: left alone, not deleted (add it to "
                    f"projects/{d.name}.yaml `schedules:` to manage it, or delete it in the UI)")
            continue
        if s.get("slug") not in wanted:
            deletes.append(
                Action(
                    "schedule",
                    f"{d.name}/{s.get('slug') or s['id']}",
                    DELETE,
                    "added on the server" if drift else "no longer in the project",
                    drift=drift,
                    changes=[Change("schedule", _show_schedule(s), None)],
                    requests=[Request("DELETE", f"/deployments/{dep_id}/schedules/{s['id']}")],
                    project=d.name,
                )
            )
    for s in d.schedules:
        body = s.api_body()
        current = live_by_slug.get(s.slug)
        name = f"{d.name}/{s.slug}"
        if current is None:
            creates.append(
                Action(
                    "schedule",
                    name,
                    CREATE,
                    "deleted on the server" if drift else "new schedule",
                    drift=drift,
                    changes=[Change("schedule", None, _show_schedule(body))],
                    requests=[Request("POST", f"/deployments/{dep_id}/schedules", [body])],
                    project=d.name,
                )
            )
            continue
        changes = _schedule_changes(current, body)
        if changes:
            paused = any(c.field == "active" and c.before is False for c in changes)
            reason = ("paused on the server" if paused else "edited on the server") if drift else "schedule changed in the project"
            if current["id"] in taken_ids:
                reason = (f"taken over in place from the hand-made schedule {current['id']} (its id and runs are "
                          "kept; projects/" + d.name + ".yaml `replaces` it)")
            updates.append(
                Action(
                    "schedule",
                    name,
                    UPDATE,
                    reason,
                    drift=drift,
                    changes=changes,
                    requests=[Request("PATCH", f"/deployments/{dep_id}/schedules/{current['id']}", body)],
                    project=d.name,
                )
            )
        else:
            updates.append(Action("schedule", name, NOOP, "up to date", project=d.name))
    return deletes + updates + creates


def _schedule_changes(current: dict[str, Any], body: dict[str, Any]) -> list[Change]:
    changes = []
    if current.get("slug") != body["slug"]:  # only a schedule taken over in place: others match by slug
        changes.append(Change("slug", current.get("slug"), body["slug"]))
    cur_sched = current.get("schedule") or {}
    for key in ("cron", "timezone", "day_or"):
        if cur_sched.get(key) != body["schedule"][key]:
            changes.append(Change(key, cur_sched.get(key), body["schedule"][key]))
    if "cron" not in cur_sched:
        changes.append(Change("type", "not a cron schedule", "cron"))
    if any(c.field in ("cron", "timezone") for c in changes):  # what the reviewer needs: plain English
        changes.append(Change("when", _show_schedule(current) if "cron" in cur_sched else "not a cron schedule",
                              _show_schedule(body)))
    for key in ("active", "parameters", "max_scheduled_runs"):
        if current.get(key) != body[key]:
            changes.append(Change(key, current.get(key), body[key]))
    return changes


def _normalise(key: str, value: Any) -> Any:
    if key in ("pull_steps", "tags") and value is None:
        return []
    if key in ("parameters", "job_variables", "parameter_openapi_schema") and value is None:
        return {}
    return value


def _show_value(ctx: Context, v: Any) -> Any:
    """A parameter value fit for printing: block references by name; an inline credentials
    object (as `prefect deploy` writes it, secrets included) is never printed."""
    if isinstance(v, dict) and isinstance(v.get("$ref"), dict):
        bid = v["$ref"].get("block_document_id", "")
        if isinstance(bid, Placeholder):
            return f"block {bid.key.rsplit('/', 1)[-1]} (new)"
        block = ctx.blocks_by_id.get(bid)
        if block:
            return f"block {block['name']}"
        return f"block id {bid}"
    if isinstance(v, dict):
        return SECRET_HIDDEN
    return v


def _show_param(ctx: Context, d: DesiredDeployment, key: str, v: Any) -> Any:
    if isinstance(d.parameters.get(key), BlockRef) or (isinstance(v, dict)):
        return _show_value(ctx, v) if v is not None else None
    return v


def _show_schedule(s: dict[str, Any]) -> str:
    sched = s.get("schedule") or {}
    if "cron" in sched:
        from compiler.compile.cron import describe  # plain English; cron-descriptor only, no prefect

        try:
            english = f" ({describe(sched['cron'])})"
        except Exception:  # a cron made in the UI that cron-descriptor cannot read: show it as it is
            english = ""
        text = f"cron {sched.get('cron')!r} {sched.get('timezone') or 'UTC'}{english}"
    else:
        text = json.dumps(sched, sort_keys=True)
    params = s.get("parameters") or {}
    if params:
        text += " with " + ", ".join(f"{k}={'null' if v is None else v}" for k, v in params.items())
    return text + ("" if s.get("active", True) else " (paused)")


def find_created(api: PrefectAPI, path: str, body: Any) -> Any:
    """Schedules added to a deployment (POST /deployments/<id>/schedules, a list): each there as sent."""
    if not (path.startswith("/deployments/") and path.endswith("/schedules") and isinstance(body, list)):
        return None
    current = api.get(path)
    by_slug = {s.get("slug"): s for s in current}
    for wanted in body:
        have = by_slug.get(wanted.get("slug"))
        if have is None or any(have.get(k) != wanted.get(k) for k in ("active", "parameters")) or \
                any((have.get("schedule") or {}).get(k) != v for k, v in wanted["schedule"].items()):
            return None
    return [by_slug[w.get("slug")] for w in body]


def facts(desired: Desired, live: Live, options: PlanOptions) -> dict[str, Any]:
    """The deployments with their schedules, without `updated` stamps (a worker's poll moves the
    deployment's); the runs in flight of those a plan prunes only when it cancels them (what the
    planner's requests depend on; scheduled runs come and go with the scheduler); the deployments of
    an owner-less chapctl."""
    rows = [{**d, "schedules": sorted(({k: v for k, v in s.items() if k != "updated"} for s in d.get("schedules") or []),
                                      key=lambda s: str(s.get("id")))} for d in live.deployments]
    out: dict[str, Any] = named("deployment", rows, lambda d: f"{d.get('flow_name')}/{d['name']}")
    if options.cancel_in_flight:
        names = {d["id"]: d["name"] for d in live.deployments}
        for dep_id, runs in sorted(live.runs.items()):
            flying = sorted(({k: r.get(k) for k in ("id", "state_type", "state_name")} for r in _in_flight(runs)),
                            key=lambda r: str(r["id"]))
            if flying:
                out[f"runs in flight of deployment {names.get(dep_id, dep_id)}"] = flying
    if live.legacy:
        out["deployments of an owner-less chapctl"] = list(live.legacy)
    return out


KIND = Kind(
    name="deployment",
    reads=(Read(40, read), Read(60, read_after_flows)),
    rule=rule,
    actions=(
        ActionKind("deployment", "Deployments", stage=3, per_project=True, deletes_last=True),
        ActionKind("schedule", "Deployments", stage=3, per_project=True),
    ),
    find_created=find_created,
    facts=facts,
)
