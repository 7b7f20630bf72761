"""`plan(desired, live)`: the pure diff. An ordered list of actions, each with the exact request
apply will send, field-level before -> after, a reason, and whether it reverts drift.

Order (docs/design.md §6, refined): work pools, block types, block schemas, block documents, flows,
then per deployment its schedules (by slug) followed by the deployment itself — the deployment
PATCH carries the new fingerprint (`version`) and goes last so that a run killed in between
leaves an old fingerprint behind and the re-run still reports a change, not drift — then prunes.
A new deployment is created by one POST that includes its schedules: atomic, nothing to resume.

Objects created in the same run are referred to by `Placeholder` values that apply replaces with
the ids it learns; `SecretFromEnv` stands for a secret read from the environment at write time.
Both are Python objects, never strings: no text in a project file can turn into a placeholder,
so project values reach the server exactly as compiled. Secrets never appear here: only
"changed", "unchanged" or "not checked".

Ownership: only the owner's deployments are updated or pruned (`compiler.ownership`); a
deployment or block of another owner with a name this owner wants is a blocker naming that owner.
A plan that would delete every deployment of the owner is a blocker unless allowed.

Hand-made schedules a project replaces (`replaces:`, written by `chapctl import`): with --adopt,
the chain that creates the project's deployment also schedules its runs, pauses the old schedule
(whole body, `active: false`; never deleted) and ends with a HANDOVER step (`compiler.reconcile.
handover`) so that no run happens twice and none is lost; without --adopt, an active replaced
schedule is a blocker. A schedule replaced on the project's own deployment is taken over in place.

Scheduled runs: every project's chain of writes ends with a RUNS step (`_restore_runs`) that makes
again the runs Prefect deletes with any update of a deployment or of its schedules.
"""

from __future__ import annotations

import json
from typing import Any

from compiler.constants import BLOCK_TYPE_SLUG, DEFAULT_COLLISION_STRATEGY, MANAGED_TAG, STATE_VARIABLE
from compiler.reconcile.actions import (CREATE, DELETE, HANDOVER, NOOP, RUNS, SECRET_HIDDEN, UPDATE, Action,  # noqa: F401
                                        AsRead, Change, Placeholder, Plan, PlanOptions, Request, ResourceId,
                                        SecretFromEnv, encode, path_text, ref)
from compiler.compile.artifact import AlertSpec, BlockRef, Replaces
from compiler.reconcile.desired import Desired, DesiredBlock, DesiredDeployment
from compiler.jsontree import paths
from compiler.reconcile.ownership import LEGACY, claim_name, deployment_owner
from compiler.reconcile.live import Live, prune_candidates

CLAIM_PREFIX = "chapctl-block--"


# -- the planner ----------------------------------------------------------------------------------
def plan(desired: Desired, live: Live, options: PlanOptions | None = None, **flags: bool) -> Plan:
    """The pure diff. `options` (or the same flags as keywords: adopt=…, allow_delete_all=…)."""
    options = options or PlanOptions(**flags)
    p = Plan()
    ctx = _Context(desired, live, options)
    for var in desired.unset_pull_env:  # no secret: a pull request's check has it exactly when apply will
        p.blockers.append(
            f"{var} is not set: prefect.yaml's pull steps read it (`source.directory_env` in projects/_defaults.yaml), "
            "and apply refuses without it. Set it wherever plan and apply run (make sets it to this checkout); "
            "in CI, where workers cannot see the runner's directory, declare `source: {package: chapctl}` (workers "
            "run the installed chapctl's flow) or `source: {git: {repository: <a clone URL>, branch: main}}` in "
            "projects/_defaults.yaml instead")
    p.actions += _plan_work_pools(ctx)
    p.actions += _plan_block_types(ctx)
    p.actions += _plan_block_documents(ctx, p)
    p.actions += _plan_flows(ctx)
    p.actions += _plan_concurrency_limits(ctx)
    p.actions += _plan_deployments(ctx, p)
    p.notes += ctx.notes
    p.left_alone = sorted(ctx.left_alone)
    p.actions += _plan_automations(ctx)
    p.blockers += _parameter_blockers(ctx, p.actions)
    if live.legacy:
        p.notes.append(
            f"{len(live.legacy)} deployment(s) applied by an earlier chapctl without owners are declared by no "
            f"project here: {', '.join(live.legacy)}. They are not pruned (another repository may still declare "
            "them): declare one in projects/ to adopt it, or delete it in the Prefect UI."
        )
    return p


class _Context:
    """Indexes over desired and live that every step uses."""

    def __init__(self, desired: Desired, live: Live, options: PlanOptions):
        self.desired = desired
        self.live = live
        self.options = options
        self.owner = desired.owner
        self.claims = _claims(live)
        self.managed_blocks = {(b.slug, b.name): b for b in desired.blocks}
        self.live_blocks = {(b["slug"], b["name"]): b for b in live.block_documents}
        self.blocks_by_id = {b["id"]: b for b in live.block_documents}
        self.desired_names = {(d.flow_name, d.name) for d in desired.deployments}
        self.live_by_key: dict[tuple[str | None, str], dict[str, Any]] = {
            (d["flow_name"], d["name"]): d for d in live.deployments
        }
        self.schema_ids = {
            bt.slug: (live.block_schemas.get(bt.block_schema["checksum"]) or {}).get("id") for bt in desired.block_types
        }
        self.block_type_ids = {slug: bt["id"] for slug, bt in live.block_types.items()}
        # Hand-made schedules some project takes over: never deleted, wherever they are.
        self.replaced_ids = {r.schedule_id for d in desired.deployments for r in d.replaced}
        self.notes: list[str] = []  # notes of steps that return actions only
        record = (live.variables.get(STATE_VARIABLE.format(owner=self.owner)) or {}).get("value")
        # Hand-made schedules left alone when their deployment was adopted (recorded by apply).
        self.hand_made = set(record.get("hand_made_schedules") or []) if isinstance(record, dict) else set()
        self.left_alone: list[str] = []

    def deployment_in_sync(self, name: str) -> bool:
        """True when the live deployment of this project carries the fingerprint of today's YAML."""
        d = next((x for x in self.desired.deployments if x.name == name), None)
        if d is None:
            return False
        lv = self.live_by_key.get((d.flow_name, d.name))
        return lv is not None and lv.get("version") == d.fingerprint

    def block_id(self, slug: str, name: str) -> str:
        live = self.live_blocks.get((slug, name))
        return live["id"] if live else ref("block_document", f"{slug}/{name}")


def _claims(live: Live) -> dict[tuple[str, str], dict[str, Any]]:
    """(slug, name) -> {owner, id, variable}: which owner manages each block document."""
    out = {}
    for name, var in live.variables.items():
        value = var.get("value")
        if name.startswith(CLAIM_PREFIX) and isinstance(value, dict) and value.get("owner"):
            out[(str(value.get("slug")), str(value.get("name")))] = {"owner": str(value["owner"]), "id": var["id"],
                                                                       "variable": name}
    return out


def claim_request(ctx: _Context, block: DesiredBlock) -> Request:
    """Record on the server that this owner manages the block (a Prefect Variable)."""
    return Request("POST", "/variables/", {
        "name": claim_name(block.slug, block.name),
        "value": {"owner": ctx.owner, "slug": block.slug, "name": block.name},
        "tags": [MANAGED_TAG, ctx.desired.owner_tag],
    })


def _plan_work_pools(ctx: _Context) -> list[Action]:
    actions = []
    for name in ctx.desired.work_pools:
        users = sorted(d.name for d in ctx.desired.deployments if d.work_pool == name)
        live = ctx.live.work_pools.get(name)
        if live:
            actions.append(Action("work_pool", name, NOOP, f"exists (type {live['type']}); chapctl only creates work pools"))
            continue
        drift = any(ctx.deployment_in_sync(u) for u in users)
        actions.append(
            Action(
                "work_pool",
                name,
                CREATE,
                "deleted on the server since the last apply" if drift else f"used by {', '.join(users)}",
                drift=drift,
                changes=[Change("type", None, "process")],
                requests=[
                    Request(
                        "POST",
                        "/work_pools/",
                        {"name": name, "type": "process", "base_job_template": ctx.desired.process_base_job_template,
                         "description": f"Created by chapctl for owner {ctx.owner!r}; chapctl never changes or "
                                        "deletes a work pool."},
                    )
                ],
            )
        )
    return actions


def _plan_block_types(ctx: _Context) -> list[Action]:
    actions = []
    for spec in ctx.desired.block_types:
        bt = spec.block_type
        live = ctx.live.block_types.get(spec.slug)
        type_id = live["id"] if live else ref("block_type", spec.slug)
        if live is None:
            actions.append(
                Action(
                    "block_type",
                    spec.slug,
                    CREATE,
                    "registered from flows/",
                    changes=[Change("name", None, bt["name"])],
                    requests=[Request("POST", "/block_types/", {k: bt.get(k) for k in _BLOCK_TYPE_CREATE})],
                    provides=ref("block_type", spec.slug),
                )
            )
        else:
            changes = [Change(k, live.get(k), bt.get(k)) for k in _BLOCK_TYPE_UPDATE if live.get(k) != bt.get(k)]
            if changes:
                actions.append(
                    Action(
                        "block_type",
                        spec.slug,
                        UPDATE,
                        "flows/ changed the block type's description",
                        changes=changes,
                        requests=[Request("PATCH", f"/block_types/{live['id']}", {k: bt.get(k) for k in _BLOCK_TYPE_UPDATE})],
                    )
                )
            else:
                actions.append(Action("block_type", spec.slug, NOOP, "registered, up to date"))
        checksum = spec.block_schema["checksum"]
        if ctx.schema_ids.get(spec.slug):
            actions.append(Action("block_schema", spec.slug, NOOP, f"{checksum[:19]}… registered"))
        else:
            actions.append(
                Action(
                    "block_schema",
                    spec.slug,
                    CREATE,
                    "flows/ defines a block schema the server does not have",
                    changes=[Change("checksum", None, checksum)],
                    requests=[
                        Request(
                            "POST",
                            "/block_schemas/",
                            {
                                "fields": spec.block_schema["fields"],
                                "block_type_id": type_id,
                                "capabilities": spec.block_schema.get("capabilities", []),
                                "version": spec.block_schema["version"],
                            },
                        )
                    ],
                    provides=ref("block_schema", spec.slug),
                )
            )
    return actions


_BLOCK_TYPE_CREATE = ("name", "slug", "logo_url", "documentation_url", "description", "code_example")
_BLOCK_TYPE_UPDATE = ("logo_url", "documentation_url", "description", "code_example")


def _plan_block_documents(ctx: _Context, p: Plan) -> list[Action]:
    actions = []
    for block in ctx.desired.blocks:
        actions.append(_plan_managed_block(ctx, p, block))
    # Blocks this owner managed that no project manages any more: release the claim, keep the block.
    for (slug, name), claim in sorted(ctx.claims.items()):
        if claim["owner"] != ctx.owner or (slug, name) in ctx.managed_blocks:
            continue
        read = slug in {bt.slug for bt in ctx.desired.block_types}  # else its documents were not read
        exists = (slug, name) in ctx.live_blocks or not read
        actions.append(Action(
            "block_document", name, UPDATE,
            "no project of this owner manages it any more: " + (
                "orphaned, not deleted (chapctl never deletes credentials); released so that another "
                "repository may manage it" if exists else "already deleted on the server; its claim is removed"),
            changes=[Change("owner", ctx.owner, None)],
            requests=[Request("DELETE", f"/variables/{claim['id']}")],
        ))
    # Blocks referenced by a deployment but without a blocks/ file are managed elsewhere.
    users: dict[tuple[str, str], list[str]] = {}
    for d in ctx.desired.deployments:
        for r in d.block_refs():
            users.setdefault((r.slug, r.name), []).append(d.name)
    for (slug, name), projects in sorted(users.items()):
        if (slug, name) in ctx.managed_blocks:
            continue
        if (slug, name) in ctx.live_blocks:
            other = ctx.claims.get((slug, name))
            whose = f"managed by chapctl owner {other['owner']!r}" if other else "not managed by chapctl"
            actions.append(Action("block_document", name, NOOP, f"external block ({whose}): exists"))
        else:
            p.blockers.append(
                f"block {name!r} ({slug}) used by {', '.join(projects)} does not exist on the server and chapctl "
                "does not manage it (the project gives no base_url/username/password_env): create it first"
            )
    return actions


def _plan_managed_block(ctx: _Context, p: Plan, block: DesiredBlock) -> Action:
    schema_id = ctx.schema_ids.get(block.slug) or ref("block_schema", block.slug)
    live = ctx.live_blocks.get((block.slug, block.name))
    project = ", ".join(block.used_by) or None
    claim = ctx.claims.get((block.slug, block.name))
    if claim is not None and claim["owner"] != ctx.owner:
        if block.slug == BLOCK_TYPE_SLUG:
            fix = (f"use another block name in {', '.join(block.used_by)}, or give only "
                   f"`credentials.block: {block.name}` to use it without managing it")
        else:  # a notification's block, named after the notification
            fix = (f"rename the notification `{block.name}` in projects/_defaults.yaml (and in the `alerts.notify` "
                   f"of {', '.join(block.used_by)})")
        p.blockers.append(
            f"block {block.name!r} ({block.slug}) is managed by chapctl owner {claim['owner']!r} (another repository "
            f"applying to this server); {fix}"
        )
        return Action("block_document", block.name, NOOP, f"managed by owner {claim['owner']!r}", project=project)
    claiming = [] if claim is not None else [claim_request(ctx, block)]  # the claim goes first: kill-safe
    if live is None:
        unset = sorted((v, f) for f, v in block.secret_env.items() if block.secret_digests.get(f) is None)
        for var, field in unset:  # plan (a pull request's check) needs no secret; apply refuses without it
            p.missing_env.append(
                f"apply will need {var}: block {block.name!r} is created with {_SECRET_WORDS.get(field, field)} "
                "read from it (a repository secret of that name in CI; an exported variable elsewhere)"
            )
        data = dict(block.data)
        for f, v in block.secret_env.items():
            _set_path(data, f, SecretFromEnv(v))
        changes = [Change(k, None, v) for k, v in block.data.items()]
        changes += [Change(f, None, f"set from ${v}", secret=True) for f, v in block.secret_env.items()]
        changes.append(Change("owner", None, ctx.owner))
        return Action(
            "block_document",
            block.name,
            CREATE,
            f"used by {', '.join(block.used_by)}" if block.used_by else "declared in blocks/",
            changes=changes,
            requests=claiming + [
                Request(
                    "POST",
                    "/block_documents/",
                    {
                        "name": block.name,
                        "data": data,
                        "block_schema_id": schema_id,
                        "block_type_id": ctx.block_type_ids.get(block.slug) or ref("block_type", block.slug),
                        "is_anonymous": False,
                    },
                )
            ],
            provides=ref("block_document", f"{block.slug}/{block.name}"),
            project=project,
        )
    changes, patch = [], {}
    for key, value in block.data.items():
        if live["data"].get(key) != value:
            changes.append(Change(key, live["data"].get(key), value))
            patch[key] = value
    notes = []
    for f, var in block.secret_env.items():
        mine, theirs = block.secret_digests.get(f), (live.get("secret_digests") or {}).get(f)
        if mine is None:
            notes.append(f"{f} not checked (${var} unset)")
        elif mine != theirs:
            changes.append(Change(f, "changed", f"from ${var}", secret=True))
            _set_path(patch, f, SecretFromEnv(var))
        else:
            notes.append(f"{f} unchanged")
    body: dict[str, Any] = {"merge_existing_data": True}
    if live.get("block_schema_id") != schema_id:
        changes.append(Change("block_schema_id", live.get("block_schema_id"), schema_id))
        body["block_schema_id"] = schema_id
    if patch:
        body["data"] = patch
    writes_block = bool(changes)
    if not changes and not claiming:
        return Action("block_document", block.name, NOOP, "up to date; " + "; ".join(notes) if notes else "up to date", project=project)
    # Drift: the deployments using it carry today's fingerprint, which covers this block's data.
    plain = [c for c in changes if not c.secret and c.field != "block_schema_id"]
    drift = bool(plain) and bool(block.used_by) and all(ctx.deployment_in_sync(u) for u in block.used_by)
    if not changes:
        reason = (f"record that owner {ctx.owner!r} manages it (no owner recorded: made by hand, or applied by "
                  "an earlier chapctl)")
    else:
        reason = "changed on the server since the last apply" if drift else (
            "secret rotated in the environment" if all(c.secret for c in changes) else "blocks/ changed"
        )
    if claiming:
        changes.append(Change("owner", "(none)", ctx.owner))
    if notes:
        reason += "; " + "; ".join(notes)
    return Action(
        "block_document",
        block.name,
        UPDATE,
        reason,
        drift=drift,
        changes=changes,
        requests=claiming + ([Request("PATCH", f"/block_documents/{live['id']}", body)] if writes_block else []),
        project=project,
    )


def _set_path(data: dict[str, Any], path: str, value: Any) -> None:
    """`secrets.url` sets data["secrets"]["url"]: a secret inside a block's SecretDict field."""
    *parents, leaf = path.split(".")
    for key in parents:
        data = data.setdefault(key, {})
    data[leaf] = value


def _plan_flows(ctx: _Context) -> list[Action]:
    actions = []
    for name in ctx.desired.flows:
        if name in ctx.live.flows:
            actions.append(Action("flow", name, NOOP, "exists"))
        else:
            actions.append(
                Action("flow", name, CREATE, "first deployment of this flow", changes=[Change("name", None, name)],
                       requests=[Request("POST", "/flows/", {"name": name})], provides=ref("flow", name))
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


def _desired_body(ctx: _Context, d: DesiredDeployment) -> dict[str, Any]:
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


def _plan_deployments(ctx: _Context, p: Plan) -> list[Action]:
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
def _plan_replaced(ctx: _Context, p: Plan, d: DesiredDeployment, successor: dict[str, Any] | None) -> list[Action]:
    """The hand-made schedules `d` takes over, on another deployment: each paused (never deleted)
    with --adopt, in the same chain that creates `d`, after `d`'s runs are scheduled; refused
    without --adopt while it is active (both would run). A schedule taken over in place (a
    deployment adopted under its own name) is handled by `_plan_schedules` instead."""
    return [a for r in d.replaced if not d.in_place(r) for a in _plan_one_replaced(ctx, p, d, r, successor)]


def _plan_one_replaced(ctx: _Context, p: Plan, d: DesiredDeployment, r: Replaces,
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


def _delete_deployment(ctx: _Context, live: dict[str, Any]) -> Action:
    """Delete a pruned deployment. The server deletes its not-yet-started scheduled runs with it
    (auto-scheduled and manual); runs in flight keep running and lose their deployment link,
    unless the plan cancels them first (--cancel-in-flight)."""
    runs = ctx.live.runs.get(live["id"], [])
    scheduled = [r for r in runs if r.get("state_type") == "SCHEDULED" and not r.get("run_count")
                 and r.get("state_name") != "AwaitingConcurrencySlot"]
    in_flight = [r for r in runs if r not in scheduled and r.get("state_type") != "CANCELLING"]
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


def _referenced_block_ids(live: dict[str, Any]) -> list[str]:
    out = []
    for v in (live.get("parameters") or {}).values():
        if isinstance(v, dict) and isinstance(v.get("$ref"), dict) and v["$ref"].get("block_document_id"):
            out.append(v["$ref"]["block_document_id"])
    return out


def _block_still_used(ctx: _Context, block: dict[str, Any]) -> bool:
    key = (block["slug"], block["name"])
    return key in ctx.managed_blocks or any((r.slug, r.name) == key for d in ctx.desired.deployments for r in d.block_refs())


def _plan_concurrency_limits(ctx: _Context) -> list[Action]:
    """The global concurrency limits of DHIS2 instances (`instance_limits:`): created, their limit
    kept, and deleted when no project names the instance any more. Only limits whose name carries
    this owner's prefix are touched."""
    live = {c["name"]: c for c in ctx.live.concurrency_limits}
    actions = []
    for want in ctx.desired.concurrency_limits:
        users = ", ".join(want.used_by)
        have = live.pop(want.name, None)
        body = {"name": want.name, "limit": want.limit, "active": True}
        if have is None:
            actions.append(Action("concurrency_limit", want.name, CREATE,
                                  f"DHIS2 instance {want.block}: runs of {users} share it",
                                  changes=[Change("limit", None, want.limit)],
                                  requests=[Request("POST", "/v2/concurrency_limits/", body)]))
            continue
        changes = [Change(k, have.get(k), v) for k, v in (("limit", want.limit), ("active", True)) if have.get(k) != v]
        if changes:
            drift = all(ctx.deployment_in_sync(u) for u in want.used_by)
            actions.append(Action("concurrency_limit", want.name, UPDATE,
                                  "changed on the server since the last apply" if drift else "instance_limits changed",
                                  drift=drift,
                                  changes=changes,
                                  requests=[Request("PATCH", f"/v2/concurrency_limits/{have['id']}",
                                                    {"limit": want.limit, "active": True})]))
        else:
            actions.append(Action("concurrency_limit", want.name, NOOP, f"up to date (used by {users})"))
    for name, have in sorted(live.items()):
        actions.append(Action("concurrency_limit", name, DELETE, "no project uses this DHIS2 instance limit any more",
                              changes=[Change("limit", have.get("limit"), None)],
                              requests=[Request("DELETE", f"/v2/concurrency_limits/{have['id']}")]))
    return actions


# What a block's secret field holds, in the words of "apply will need VAR: … is created with …"
_SECRET_WORDS = {"password": "the password", "secrets.url": "the webhook URL", "url": "the webhook URL"}
ALERT_TAG_PREFIX = "chapctl-alert:"
# The run's page, when the server knows its UI's address (PREFECT_UI_URL): else nothing, not "None".
_UI_LINK = "{% if flow_run|ui_url %}\n{{ flow_run|ui_url }}{% endif %}"


def automation_body(ctx: _Context, d: DesiredDeployment, alert: AlertSpec) -> dict[str, Any]:
    """The Prefect automation of one alert of one project: an event trigger on the flow runs of
    its deployment (matched by id: a deployment re-created by apply gets the automation updated),
    one send-notification action per target. Not owned by the deployment (`owner_resource`):
    `prefect deploy` and `flow.serve()` delete the automations a deployment owns."""
    live_id = (ctx.live_by_key.get((d.flow_name, d.name)) or {}).get("id")
    resource = f"prefect.deployment.{live_id}" if live_id else ResourceId("prefect.deployment.", ref("deployment", d.name))
    related = {"prefect.resource.id": resource, "prefect.resource.role": "deployment"}
    if alert.kind == "failed":
        trigger = {"type": "event", "posture": "Reactive", "expect": ["prefect.flow-run.Crashed", "prefect.flow-run.Failed"],
                   "after": [], "for_each": [], "match": {"prefect.resource.id": "prefect.flow-run.*"},
                   "match_related": related, "threshold": 1, "within": 0.0}
        subject = f"chap project {d.name}: run {{{{ flow_run.name }}}} {{{{ flow_run.state.name }}}}"
        body = (f"Project {d.name}: flow run {{{{ flow_run.name }}}} ({{{{ flow_run.id }}}}) ended "
                "{{ flow_run.state.name }}: {{ flow_run.state.message }}" + _UI_LINK)
    else:
        trigger = {"type": "event", "posture": "Proactive", "after": ["prefect.flow-run.Late"],
                   "expect": ["prefect.flow-run.Cancelled", "prefect.flow-run.Pending", "prefect.flow-run.Running"],
                   "for_each": ["prefect.resource.id"], "match": {"prefect.resource.id": "prefect.flow-run.*"},
                   "match_related": related, "threshold": 1, "within": float(alert.grace_seconds or 0)}
        subject = f"chap project {d.name}: a scheduled run did not start"
        body = (f"Project {d.name}: flow run {{{{ flow_run.name }}}} ({{{{ flow_run.id }}}}) has not started "
                f"{alert.grace_seconds} s after it was marked Late." + _UI_LINK)
    return {
        "name": f"chapctl {d.name}: {alert.kind} run",
        "description": f"Managed by chapctl (owner {ctx.owner}) from projects/{d.name}.yaml `alerts`; edits are reverted.",
        "enabled": True,
        "tags": [MANAGED_TAG, ctx.desired.owner_tag, f"{ALERT_TAG_PREFIX}{d.name}/{alert.kind}"],
        "trigger": trigger,
        "actions": [{"type": "send-notification", "block_document_id": ctx.block_id(r.slug, r.name),
                     "subject": subject, "body": body} for r in alert.notify],
        "actions_on_trigger": [],
        "actions_on_resolve": [],
    }


def automation_view(body: dict[str, Any]) -> dict[str, Any]:
    """What an automation says, comparable between the plan's body and the server's answer: the
    trigger's fields as chapctl writes them (the server adds its own), ids as text."""
    trigger = body.get("trigger") or {}
    keys = ("type", "posture", "expect", "after", "for_each", "match", "match_related", "threshold", "within")
    view_trigger = {k: trigger.get(k) for k in keys}
    for k in ("expect", "after", "for_each"):
        view_trigger[k] = sorted(view_trigger[k] or [])
    related = dict(view_trigger.get("match_related") or {})
    rid = related.get("prefect.resource.id")
    if isinstance(rid, ResourceId):
        related["prefect.resource.id"] = f"{rid.prefix}<{rid.placeholder.key}>"
    view_trigger["match_related"] = related
    if view_trigger["within"] is not None:
        view_trigger["within"] = float(view_trigger["within"])
    actions = [{k: a.get(k) for k in ("type", "block_document_id", "subject", "body")} for a in body.get("actions") or []]
    for a in actions:
        if isinstance(a["block_document_id"], Placeholder):
            a["block_document_id"] = f"<{a['block_document_id'].key}>"
    return {"name": body.get("name"), "description": body.get("description"), "enabled": body.get("enabled"),
            "tags": sorted(body.get("tags") or []), "trigger": view_trigger, "actions": actions,
            "actions_on_trigger": body.get("actions_on_trigger") or [],
            "actions_on_resolve": body.get("actions_on_resolve") or []}


def automation_age(automation: dict[str, Any]) -> tuple[str, str]:
    """Sort key: the oldest automation first (ids break a tie, and order golden files without dates)."""
    return str(automation.get("created") or ""), str(automation.get("id") or "")


def _plan_automations(ctx: _Context) -> list[Action]:
    """One automation per alert of every project; this owner's others are deleted (an alert or a
    project removed, or a second automation of one alert: the server never refuses a duplicate, so
    an older chapctl whose create's answer was lost, or a kill, may have left one; the one that
    says what the plan says is kept, else the oldest). Never touches an automation without this
    owner's tag."""
    by_tag: dict[str, list[dict[str, Any]]] = {}
    extra: list[dict[str, Any]] = []  # this owner's, but no alert's, or a second of one alert: deleted
    for a in sorted(ctx.live.automations, key=automation_age):
        tag = next((t for t in a.get("tags") or [] if t.startswith(ALERT_TAG_PREFIX)), None)
        if tag is None:
            extra.append(a)
        else:
            by_tag.setdefault(tag, []).append(a)
    actions = []
    for d in ctx.desired.deployments:
        for alert in d.alerts:
            body = automation_body(ctx, d, alert)
            tag = f"{ALERT_TAG_PREFIX}{d.name}/{alert.kind}"
            name = f"{d.name}/{alert.kind}"
            copies = by_tag.pop(tag, [])
            mine = automation_view(body)
            have = next((a for a in copies if automation_view(a) == mine), copies[0] if copies else None)
            extra += [a for a in copies if a is not have]
            targets = ", ".join(r.name for r in alert.notify)
            if have is None:
                actions.append(Action("automation", name, CREATE,
                                      f"alert on {alert.kind} runs, to {targets}",
                                      changes=[Change("notify", None, targets)] + (
                                          [Change("grace", None, f"{alert.grace_seconds} s after Late")]
                                          if alert.grace_seconds is not None else []),
                                      requests=[Request("POST", "/automations/", body)], project=d.name))
                continue
            # Leaf by leaf, in full: a reviewer sees `trigger.within: 60 → 1800`, `actions[0].subject: … → …`.
            ours, theirs = paths(mine), paths(automation_view(have))
            changes = [Change(k, theirs.get(k), ours.get(k)) for k in sorted(ours.keys() | theirs.keys())
                       if ours.get(k) != theirs.get(k)]
            if not changes:
                actions.append(Action("automation", name, NOOP, "up to date", project=d.name))
                continue
            drift = ctx.deployment_in_sync(d.name)
            actions.append(Action(
                "automation", name, UPDATE,
                "changed on the server since the last apply; apply reverts it" if drift else "alerts changed",
                drift=drift, changes=changes,
                requests=[Request("PUT", f"/automations/{have['id']}", body)], project=d.name))
    gone = [a for copies in by_tag.values() for a in copies]  # no project declares their alert
    duplicates = {id(a) for a in extra}
    for a in sorted(gone + extra, key=lambda a: (a.get("name") or "", *automation_age(a))):
        tag = next((t for t in a.get("tags") or [] if t.startswith(ALERT_TAG_PREFIX)), "")
        actions.append(Action("automation", tag.removeprefix(ALERT_TAG_PREFIX) or a.get("name") or a["id"], DELETE,
                              "a duplicate of this owner's alert" if id(a) in duplicates else
                              "its project or alert is gone",
                              changes=[Change("automation", a.get("name"), None)],
                              requests=[Request("DELETE", f"/automations/{a['id']}")]))
    return actions


def _create_deployment(ctx: _Context, d: DesiredDeployment) -> Action:
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


def _parameter_blockers(ctx: _Context, actions: list[Action]) -> list[str]:
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
            out += [f"projects/{d.name}.yaml: {problem}; its parameters (rendered from templates/) and the "
                    f"signature of {d.entrypoint} disagree: fix one of them, then run `chapctl compile`"
                    for problem in parameter_problems(d)]
    return out


def _update_deployment(ctx: _Context, d: DesiredDeployment, live: dict[str, Any], adopting: str | None) -> list[Action]:
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


def _plan_schedules(ctx: _Context, d: DesiredDeployment, live: dict[str, Any], drift: bool,
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


def _show_value(ctx: _Context, v: Any) -> Any:
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


def _show_param(ctx: _Context, d: DesiredDeployment, key: str, v: Any) -> Any:
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
