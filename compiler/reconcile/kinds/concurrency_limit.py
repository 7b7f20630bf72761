"""Global concurrency limits: one per DHIS2 instance a project limits (`instance_limits:`), named
`chapctl-<owner>--<block>`; the runs of every project on that instance share it. Created, kept at
its limit, deleted when no project names the instance any more. Stage 0: deployments' runs take a
slot of it by name. Optional: read only when the projects declare some or the owner's commit
record says it manages some.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from compiler.constants import INSTANCE_LIMIT
from compiler.reconcile.actions import CREATE, DELETE, NOOP, UPDATE, Action, Change, Plan, PlanOptions, Request
from compiler.reconcile.client import PrefectAPI
from compiler.reconcile.context import Context, Live
from compiler.reconcile.desired import Desired
from compiler.reconcile.kinds.base import ActionKind, Kind, Read, named


def read(api: PrefectAPI, desired: Desired, live: Live, env: Mapping[str, str]) -> None:
    """This owner's limits (by name prefix), one filter."""
    prefix = INSTANCE_LIMIT.format(owner=desired.owner, block="")
    rows = api.filter_all("/v2/concurrency_limits/filter", {})
    live.concurrency_limits = [{k: r.get(k) for k in ("id", "name", "limit", "active", "slot_decay_per_second")}
                               for r in rows if str(r.get("name", "")).startswith(prefix)]


def rule(ctx: Context, p: Plan) -> list[Action]:
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


def facts(desired: Desired, live: Live, options: PlanOptions) -> dict[str, Any]:
    return named("concurrency limit", live.concurrency_limits, lambda c: str(c["name"]))


KIND = Kind(
    name="concurrency_limit",
    reads=(Read(80, read),),
    rule=rule,
    actions=(ActionKind("concurrency_limit", "Concurrency limits (per DHIS2 instance)", stage=0),),
    manages="concurrency_limits",
    declared=lambda desired: bool(desired.concurrency_limits),
    present=lambda live: bool(live.concurrency_limits),
    facts=facts,
)
