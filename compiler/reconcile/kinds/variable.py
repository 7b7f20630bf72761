"""chapctl's own Prefect Variables (names `chapctl-…`): the claims that say which owner manages a
block document (`chapctl-block--<slug>--<name>`), each owner's commit record (`chapctl-state--<owner>`:
the commit it last applied, the optional kinds it manages, the hand-made schedules it leaves alone)
and the apply locks (`chapctl-lock--<owner>`, compiler/reconcile/lock.py).

Read first of what the planner's other facts depend on: the claims (`context.claims`), the record
(which optional kinds `read_live` reads, the schedules a plan leaves alone). It emits no actions of
its own: a claim is written and released by the block documents' actions (kinds/block.py, with
`claim_request`), the record by apply before its first write, a lock by lock.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from compiler.constants import MANAGED_TAG, STATE_VARIABLE, VARIABLE_PREFIX
from compiler.reconcile.actions import PlanOptions, Request
from compiler.reconcile.client import PrefectAPI
from compiler.reconcile.context import CLAIM_PREFIX, Live
from compiler.reconcile.desired import Desired
from compiler.reconcile.kinds.base import Kind, Read, named
from compiler.reconcile.ownership import claim_name


def read(api: PrefectAPI, desired: Desired, live: Live, env: Mapping[str, str]) -> None:
    """Every chapctl variable, one filter: {id, value, created, updated} by name."""
    rows = api.filter_all("/variables/filter", {"variables": {"name": {"like_": VARIABLE_PREFIX}}, "sort": "NAME_ASC"})
    live.variables = {
        r["name"]: {"id": r["id"], "value": r.get("value"), "created": r.get("created"), "updated": r.get("updated")}
        for r in rows if r["name"].startswith(VARIABLE_PREFIX)
    }


def claim_request(owner: str, owner_tag: str, slug: str, name: str) -> Request:
    """Record on the server that `owner` manages the block document `slug`/`name` (a Prefect Variable)."""
    return Request("POST", "/variables/", {
        "name": claim_name(slug, name),
        "value": {"owner": owner, "slug": slug, "name": name},
        "tags": [MANAGED_TAG, owner_tag],
    })


def find_created(api: PrefectAPI, path: str, body: object) -> object:
    if path != "/variables/" or not isinstance(body, dict):
        return None
    current = api.get(f"/variables/name/{body['name']}")
    return current if current.get("value") == body.get("value") else None


def facts(desired: Desired, live: Live, options: PlanOptions) -> dict[str, Any]:
    """The variables the planner reads: this owner's commit record, and the claims of the blocks it
    manages, refers to or has claimed (whoever holds them) — not the apply locks (they come and go
    with every apply, a saved plan's own included), nor what concerns only other owners."""
    wanted = {(b.slug, b.name) for b in desired.blocks} | {
        (r.slug, r.name) for d in desired.deployments for r in d.block_refs()}

    def counts(name: str, value: Any) -> bool:
        if name == STATE_VARIABLE.format(owner=desired.owner):
            return True
        if name.startswith(CLAIM_PREFIX) and isinstance(value, dict):
            return (str(value.get("slug")), str(value.get("name"))) in wanted or value.get("owner") == desired.owner
        return False

    return named("variable", ({"name": n, **v} for n, v in live.variables.items() if counts(n, v.get("value"))),
                 lambda v: v["name"])


KIND = Kind(name="variable", reads=(Read(30, read),), rule=None, find_created=find_created, facts=facts)
