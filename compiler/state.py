"""The live state: everything chapctl owns or depends on, read from the Prefect API in bulk.

A fixed number of requests, independent of the number of projects (up to 200 per page):
version probe, work pools, block schema (by checksum, which embeds the block type), block
documents of our types (plus one read with secrets, only of managed blocks whose environment
variable is set, immediately reduced to digests), deployments tagged `managed-by:chapctl` or
named like a desired one (one `or_` filter, paged), and the flows involved.

`Live` is plain JSON-able data so golden planner tests can write it by hand (`live.json`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from compiler.desired import MANAGED_TAG, Desired, secret_digest
from compiler.prefect_api import NotFound, PrefectAPI

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
BLOCK_TYPE_FIELDS = ("id", "name", "slug", "logo_url", "documentation_url", "description", "code_example")


@dataclass
class Live:
    server_version: str = ""
    work_pools: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {id, type}
    block_types: dict[str, dict[str, Any]] = field(default_factory=dict)  # slug -> fields
    block_schemas: dict[str, dict[str, Any]] = field(default_factory=dict)  # checksum -> {id, version, block_type_id}
    block_documents: list[dict[str, Any]] = field(default_factory=list)  # {id, slug, name, data, block_schema_id, secret_digests?}
    flows: dict[str, str] = field(default_factory=dict)  # name -> id
    deployments: list[dict[str, Any]] = field(default_factory=list)  # DEPLOYMENT_FIELDS + flow_name + schedules

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

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


def read_live(api: PrefectAPI, desired: Desired, env: dict[str, str] | None = None) -> Live:
    import os

    env = dict(os.environ) if env is None else env
    live = Live(server_version=api.server_version())
    _read_work_pools(api, desired, live)
    _read_block_types(api, desired, live)
    _read_block_documents(api, desired, live, env)
    _read_deployments(api, desired, live)
    return live


def _read_work_pools(api: PrefectAPI, desired: Desired, live: Live) -> None:
    if not desired.work_pools:
        return
    rows = api.filter_all("/work_pools/filter", {"work_pools": {"name": {"any_": desired.work_pools}}})
    live.work_pools = {r["name"]: {"id": r["id"], "type": r["type"]} for r in rows}


def _read_block_types(api: PrefectAPI, desired: Desired, live: Live) -> None:
    for spec in desired.block_types:
        checksum = spec.block_schema["checksum"]
        try:
            schema = api.get(f"/block_schemas/checksum/{checksum}", params={"version": spec.block_schema["version"]})
        except NotFound:
            schema = None
        if schema is not None and schema.get("block_type"):
            block_type = schema["block_type"]
            live.block_schemas[checksum] = {
                "id": schema["id"],
                "version": schema.get("version"),
                "block_type_id": schema["block_type_id"],
            }
        else:
            block_type = api.get_or_none(f"/block_types/slug/{spec.slug}")
        if block_type is not None:
            live.block_types[spec.slug] = {k: block_type.get(k) for k in BLOCK_TYPE_FIELDS}


def _read_block_documents(api: PrefectAPI, desired: Desired, live: Live, env: dict[str, str]) -> None:
    # Every named document of our block types (not only the desired names): a block that a pruned
    # deployment used must be found to be reported as orphaned.
    slugs = sorted({bt.slug for bt in desired.block_types})
    if not slugs:
        return
    body: dict[str, Any] = {
        "block_types": {"slug": {"any_": slugs}},
        "block_documents": {"is_anonymous": {"eq_": False}},
    }
    rows = api.filter_all("/block_documents/filter", {**body, "include_secrets": False})
    for r in rows:
        live.block_documents.append(
            {
                "id": r["id"],
                "slug": (r.get("block_type") or {}).get("slug"),
                "name": r["name"],
                "data": r.get("data") or {},
                "block_schema_id": r.get("block_schema_id"),
                "updated": r.get("updated"),
                "secret_digests": {},
            }
        )
    # Secrets: only of managed blocks whose variable is set, reduced at once to digests.
    checkable = sorted(
        b.name for b in desired.blocks if any(v is not None for v in b.secret_digests.values())
    )
    existing = {b["name"] for b in live.block_documents}
    checkable = [n for n in checkable if n in existing]
    if not checkable:
        return
    secret_fields = {bt.slug: bt.secret_fields for bt in desired.block_types}
    body["block_documents"]["name"] = {"any_": checkable}
    for r in api.filter_all("/block_documents/filter", {**body, "include_secrets": True}):
        slug = (r.get("block_type") or {}).get("slug")
        doc = live.block_document(slug, r["name"])
        if doc is None:
            continue
        data = r.get("data") or {}
        doc["secret_digests"] = {
            f: (secret_digest(str(data[f])) if data.get(f) is not None else None) for f in secret_fields.get(slug, [])
        }


def _read_deployments(api: PrefectAPI, desired: Desired, live: Live) -> None:
    names = [d.name for d in desired.deployments]
    flt: dict[str, Any] = {"tags": {"all_": [MANAGED_TAG]}}
    if names:
        flt = {"operator": "or_", "tags": {"all_": [MANAGED_TAG]}, "name": {"any_": names}}
    rows = api.filter_all("/deployments/filter", {"deployments": flt, "sort": "NAME_ASC"})
    flow_ids = sorted({r["flow_id"] for r in rows})
    flows_flt: dict[str, Any] = {"name": {"any_": desired.flows}}
    if flow_ids:
        flows_flt = {"operator": "or_", "name": {"any_": desired.flows}, "id": {"any_": flow_ids}}
    flows = api.filter_all("/flows/filter", {"flows": flows_flt}) if (desired.flows or flow_ids) else []
    names_by_id = {f["id"]: f["name"] for f in flows}
    live.flows = {f["name"]: f["id"] for f in flows if f["name"] in desired.flows}
    for r in rows:
        d = {k: r.get(k) for k in DEPLOYMENT_FIELDS}
        d["flow_name"] = names_by_id.get(r["flow_id"])
        d["schedules"] = [{k: s.get(k) for k in SCHEDULE_FIELDS} for s in r.get("schedules") or []]
        live.deployments.append(d)
