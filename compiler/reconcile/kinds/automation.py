"""Automations: one Prefect automation per alert kind per project (`alerts:`), matched by the tag
`chapctl-alert:<project>/<kind>` among the automations that carry the owner's tag; this owner's
others are deleted. Their trigger names the deployment by id (a `ResourceId` placeholder when it is
created in the same apply), so they are written last (stage 4). Optional: read only when the
projects declare some or the owner's commit record says it manages some.

An automation is unique by nothing on the server: a create whose answer was lost is found by its
tags and content (`automations_like`) before it is sent again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from compiler.constants import MANAGED_TAG
from compiler.jsontree import paths
from compiler.compile.artifact import AlertSpec
from compiler.reconcile.actions import (CREATE, DELETE, NOOP, UPDATE, Action, Change, Placeholder, Plan, Request,
                                        ResourceId, ref)
from compiler.reconcile.client import PrefectAPI
from compiler.reconcile.context import Context, Live
from compiler.reconcile.desired import Desired, DesiredDeployment
from compiler.reconcile.kinds.base import ActionKind, Kind, Read, named

AUTOMATION_FIELDS = ("id", "name", "description", "enabled", "tags", "trigger", "actions", "actions_on_trigger",
                     "actions_on_resolve", "created", "updated")
ALERT_TAG_PREFIX = "chapctl-alert:"
# The run's page, when the server knows its UI's address (PREFECT_UI_URL): else nothing, not "None".
_UI_LINK = "{% if flow_run|ui_url %}\n{{ flow_run|ui_url }}{% endif %}"


def read(api: PrefectAPI, desired: Desired, live: Live, env: Mapping[str, str]) -> None:
    """This owner's automations (its tag), one filter."""
    rows = api.filter_all("/automations/filter", {"sort": "NAME_ASC"})
    live.automations = [{k: r.get(k) for k in AUTOMATION_FIELDS} for r in rows
                        if desired.owner_tag in (r.get("tags") or [])]


def automation_body(ctx: Context, d: DesiredDeployment, alert: AlertSpec) -> dict[str, Any]:
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


def rule(ctx: Context, p: Plan) -> list[Action]:
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


def automations_like(api: PrefectAPI, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The automations on the server that say what `body` says (the same tags: this owner's and this
    alert's), oldest first."""
    rows = api.filter_all("/automations/filter", {"automations": {"tags": {"all_": body["tags"]}}})
    want = automation_view(body)
    return sorted((r for r in rows if automation_view(r) == want), key=automation_age)


def find_created(api: PrefectAPI, path: str, body: Any) -> Any:
    return next(iter(automations_like(api, body)), None) if path == "/automations/" else None


KIND = Kind(
    name="automation",
    reads=(Read(70, read),),
    rule=rule,
    actions=(ActionKind("automation", "Alerts (Prefect automations)", stage=4),),
    manages="automations",
    declared=lambda desired: any(d.alerts for d in desired.deployments),
    present=lambda live: bool(live.automations),
    find_created=find_created,
    facts=lambda desired, live, options: named("automation", live.automations, lambda a: str(a["name"])),
)
