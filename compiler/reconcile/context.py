"""What the kind modules (compiler/reconcile/kinds/) share, and nothing of any one kind: `Live`, the
server's state as the kinds read it (plain JSON-able data, so golden planner tests write it by
hand, `live.json`), and `Context`, the indexes over desired and live state the planner's rules use.

Below every kind module: it imports none of them (compiler/reconcile/kinds/__init__.py imports them
all, and they import this). Pure data; no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from compiler.constants import STATE_VARIABLE
from compiler.reconcile.actions import PlanOptions, ref
from compiler.reconcile.desired import Desired, secret_digest

CLAIM_PREFIX = "chapctl-block--"  # the Prefect Variables that say which owner manages a block document


@dataclass
class Live:
    """The server's state as read: one field per kind of fact, each filled by its kind's read."""

    server_version: str = ""
    work_pools: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {id, type}
    block_types: dict[str, dict[str, Any]] = field(default_factory=dict)  # slug -> fields
    block_schemas: dict[str, dict[str, Any]] = field(default_factory=dict)  # checksum -> {id, version, block_type_id}
    block_documents: list[dict[str, Any]] = field(default_factory=list)  # {id, slug, name, data, block_schema_id, secret_digests?}
    flows: dict[str, str] = field(default_factory=dict)  # name -> id
    deployments: list[dict[str, Any]] = field(default_factory=list)  # kinds/deployment.py DEPLOYMENT_FIELDS + flow_name + schedules
    # chapctl's Prefect Variables by name: {id, value, updated} (state, block claims, locks)
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)
    # open runs (kinds/deployment.py RUN_FIELDS) of the owner's deployments that no project declares: deployment id -> runs
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # names of owner-less (earlier chapctl) deployments no project declares; read before a first apply
    legacy: list[str] = field(default_factory=list)
    # this owner's automations (tag `chapctl-owner:<owner>`), kinds/automation.py AUTOMATION_FIELDS; and its global
    # concurrency limits (names `chapctl-<owner>--…`) {id, name, limit, active}. Read only when the
    # projects declare some or the owner's last apply recorded that it manages some (`manages`).
    automations: list[dict[str, Any]] = field(default_factory=list)
    concurrency_limits: list[dict[str, Any]] = field(default_factory=list)
    # the facts of a kind that has no field of its own above: kind name -> what its read keeps
    # (plain JSON-able data). A new kind keeps its facts here, so that it is one module.
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Live:
        live = cls(**{k: v for k, v in doc.items() if k in cls.__dataclass_fields__})
        for b in live.block_documents:  # golden files may give plain secrets; keep digests only
            b["secret_digests"] = {
                k: (v if v is None or str(v).startswith("sha256:") else secret_digest(str(v)))
                for k, v in (b.get("secret_digests") or {}).items()
            }
        for d in live.deployments:
            d.setdefault("schedules", [])
        return live

    def block_document(self, slug: str, name: str) -> dict[str, Any] | None:
        return next((b for b in self.block_documents if b["slug"] == slug and b["name"] == name), None)


class Context:
    """Indexes over desired and live that the planner's rules use (built once per plan)."""

    def __init__(self, desired: Desired, live: Live, options: PlanOptions):
        self.desired = desired
        self.live = live
        self.options = options
        self.owner = desired.owner
        self.claims = claims(live)
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


def claims(live: Live) -> dict[tuple[str, str], dict[str, Any]]:
    """(slug, name) -> {owner, id, variable}: which owner manages each block document."""
    out = {}
    for name, var in live.variables.items():
        value = var.get("value")
        if name.startswith(CLAIM_PREFIX) and isinstance(value, dict) and value.get("owner"):
            out[(str(value.get("slug")), str(value.get("name")))] = {"owner": str(value["owner"]), "id": var["id"],
                                                                       "variable": name}
    return out
