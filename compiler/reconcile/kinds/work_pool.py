"""Work pools: the pools the projects name. chapctl only creates them (a process pool with the
server's own base job template); it never changes or deletes one. Stage 0: deployments name them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from compiler.reconcile.actions import CREATE, NOOP, Action, Change, Plan, PlanOptions, Request
from compiler.reconcile.client import PrefectAPI
from compiler.reconcile.context import Context, Live
from compiler.reconcile.desired import Desired
from compiler.reconcile.kinds.base import ActionKind, Kind, Read


def read(api: PrefectAPI, desired: Desired, live: Live, env: Mapping[str, str]) -> None:
    """The named pools, one filter."""
    if not desired.work_pools:
        return
    rows = api.filter_all("/work_pools/filter", {"work_pools": {"name": {"any_": desired.work_pools}}})
    live.work_pools = {r["name"]: {"id": r["id"], "type": r["type"]} for r in rows}


def rule(ctx: Context, p: Plan) -> list[Action]:
    """Each work pool a project names: created when missing (a process pool), never changed or deleted."""
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



def find_created(api: PrefectAPI, path: str, body: Any) -> Any:
    return api.get(f"/work_pools/{body['name']}") if path == "/work_pools/" else None


def facts(desired: Desired, live: Live, options: PlanOptions) -> dict[str, Any]:
    return {f"work pool {name}": pool for name, pool in live.work_pools.items()}


KIND = Kind(
    name="work_pool",
    reads=(Read(10, read),),
    rule=rule,
    actions=(ActionKind("work_pool", "Work pools", stage=0),),
    find_created=find_created,
    facts=facts,
)
