"""Flows: the flows the projects' deployments run, created by name when missing (stage 2: a
deployment names its flow). Read after the deployments, in the same filter as the flows they run,
so that every live deployment is known by (flow name, name).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from compiler.reconcile.actions import CREATE, NOOP, Action, Change, Plan, PlanOptions, Request, ref
from compiler.reconcile.client import PrefectAPI
from compiler.reconcile.context import Context, Live
from compiler.reconcile.desired import Desired
from compiler.reconcile.kinds.base import ActionKind, Kind, Read


def read(api: PrefectAPI, desired: Desired, live: Live, env: Mapping[str, str]) -> None:
    """The projects' flows and the flows of the live deployments, one filter; each live deployment
    gets its `flow_name`."""
    flow_ids = sorted({d["flow_id"] for d in live.deployments})
    flows_flt: dict[str, Any] = {"name": {"any_": desired.flows}}
    if flow_ids:
        flows_flt = {"operator": "or_", "name": {"any_": desired.flows}, "id": {"any_": flow_ids}}
    flows = api.filter_all("/flows/filter", {"flows": flows_flt}) if (desired.flows or flow_ids) else []
    names_by_id = {f["id"]: f["name"] for f in flows}
    live.flows = {f["name"]: f["id"] for f in flows if f["name"] in desired.flows}
    for d in live.deployments:
        d["flow_name"] = names_by_id.get(d["flow_id"])


def rule(ctx: Context, p: Plan) -> list[Action]:
    """Each flow a project runs: created when the server has none of that name."""
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


def facts(desired: Desired, live: Live, options: PlanOptions) -> dict[str, Any]:
    return {f"flow {name}": flow_id for name, flow_id in live.flows.items()}


KIND = Kind(
    name="flow",
    reads=(Read(50, read),),  # after the deployments (40): the flows they run
    rule=rule,
    actions=(ActionKind("flow", "Flows", stage=2),),
    facts=facts,
)
