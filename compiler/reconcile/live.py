"""The live state: everything chapctl owns or depends on, read from the Prefect API in bulk.

A fixed number of requests, independent of the number of projects (one page holds the server's
limit, 200 by default): version probe, work pools, block documents of our types (each embeds its
schema and block type; only when none uses the schema chapctl registers is that schema read by
checksum) plus one read with secrets, only of managed blocks whose environment variable is set,
immediately reduced to digests; chapctl's own Prefect Variables (the owner's applied commit, block
claims, apply locks), this owner's deployments (tag `chapctl-owner:<owner>`) or ones named like a
desired project or like a deployment whose schedule a project replaces (one `or_` filter), and
the flows involved. Only when a plan may prune: the runs
of the deployments no project declares. Before an owner's first apply, one more read finds
deployments of an owner-less chapctl.

`Live` is plain JSON-able data so golden planner tests can write it by hand (`live.json`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from compiler.constants import DEFAULT_COLLISION_STRATEGY, INSTANCE_LIMIT, MANAGED_TAG, STATE_VARIABLE, VARIABLE_PREFIX
from compiler.reconcile.desired import Desired, secret_digest
from compiler.errors import NotFound
from compiler.reconcile.ownership import LEGACY, deployment_owner
from compiler.reconcile.client import PrefectAPI

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
    # chapctl's Prefect Variables by name: {id, value, updated} (state, block claims, locks)
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)
    # open runs (RUN_FIELDS) of the owner's deployments that no project declares: deployment id -> runs
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # names of owner-less (earlier chapctl) deployments no project declares; read before a first apply
    legacy: list[str] = field(default_factory=list)
    # this owner's automations (tag `chapctl-owner:<owner>`), AUTOMATION_FIELDS; and its global
    # concurrency limits (names `chapctl-<owner>--…`) {id, name, limit, active}. Read only when the
    # projects declare some or the owner's last apply recorded that it manages some (`manages`).
    automations: list[dict[str, Any]] = field(default_factory=list)
    concurrency_limits: list[dict[str, Any]] = field(default_factory=list)

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
    # One after the other: reading pages or objects at once was measured slower on SQLite and
    # PostgreSQL alike (the server serialises 1,000 deployments on one core either way).
    with api.reading():
        live = Live(server_version=api.server_version())  # first: it turns a wrong URL into one line
        _read_work_pools(api, desired, live)
        _read_block_documents(api, desired, live, env)
        _read_block_types(api, desired, live)
        _read_variables(api, live)
        _read_deployments(api, desired, live)
        if STATE_VARIABLE.format(owner=desired.owner) not in live.variables:
            _read_legacy(api, desired, live)
        _read_open_runs(api, desired, live)
        manages = managed_kinds(desired, live)
        if "automations" in manages:
            _read_automations(api, desired, live)
        if "concurrency_limits" in manages:
            _read_concurrency_limits(api, desired, live)
    return live


def managed_kinds(desired: Desired, live: Live) -> set[str]:
    """The optional kinds of object this owner has (or will have) on the server: what the projects
    declare, plus what the last apply recorded (so that dropping the last alert still prunes it)."""
    var = live.variables.get(STATE_VARIABLE.format(owner=desired.owner)) or {}
    recorded = (var.get("value") or {}).get("manages") if isinstance(var.get("value"), dict) else None
    kinds = {k for k in recorded or [] if isinstance(k, str)}
    if any(d.alerts for d in desired.deployments):
        kinds.add("automations")
    if desired.concurrency_limits:
        kinds.add("concurrency_limits")
    return kinds


AUTOMATION_FIELDS = ("id", "name", "description", "enabled", "tags", "trigger", "actions", "actions_on_trigger",
                     "actions_on_resolve", "created", "updated")


def _read_automations(api: PrefectAPI, desired: Desired, live: Live) -> None:
    rows = api.filter_all("/automations/filter", {"sort": "NAME_ASC"})
    live.automations = [{k: r.get(k) for k in AUTOMATION_FIELDS} for r in rows
                        if desired.owner_tag in (r.get("tags") or [])]


def _read_concurrency_limits(api: PrefectAPI, desired: Desired, live: Live) -> None:
    prefix = INSTANCE_LIMIT.format(owner=desired.owner, block="")
    rows = api.filter_all("/v2/concurrency_limits/filter", {})
    live.concurrency_limits = [{k: r.get(k) for k in ("id", "name", "limit", "active", "slot_decay_per_second")}
                               for r in rows if str(r.get("name", "")).startswith(prefix)]


def _read_variables(api: PrefectAPI, live: Live) -> None:
    rows = api.filter_all("/variables/filter", {"variables": {"name": {"like_": VARIABLE_PREFIX}}, "sort": "NAME_ASC"})
    live.variables = {
        r["name"]: {"id": r["id"], "value": r.get("value"), "created": r.get("created"), "updated": r.get("updated")}
        for r in rows if r["name"].startswith(VARIABLE_PREFIX)
    }


def _read_work_pools(api: PrefectAPI, desired: Desired, live: Live) -> None:
    if not desired.work_pools:
        return
    rows = api.filter_all("/work_pools/filter", {"work_pools": {"name": {"any_": desired.work_pools}}})
    live.work_pools = {r["name"]: {"id": r["id"], "type": r["type"]} for r in rows}


def _read_block_types(api: PrefectAPI, desired: Desired, live: Live) -> None:
    for spec in desired.block_types:
        checksum = spec.block_schema["checksum"]
        if checksum in live.block_schemas and spec.slug in live.block_types:
            continue  # a block document already showed both (no request)
        try:
            schema = api.get(f"/block_schemas/checksum/{checksum}", params={"version": spec.block_schema["version"]})
        except NotFound:
            schema = None
        if schema is not None and schema.get("block_type"):
            block_type = schema["block_type"]
            _know_schema(live, schema)
        else:
            block_type = api.get_or_none(f"/block_types/slug/{spec.slug}")
        if block_type is not None:
            live.block_types[spec.slug] = {k: block_type.get(k) for k in BLOCK_TYPE_FIELDS}


def _know_schema(live: Live, schema: dict[str, Any]) -> None:
    live.block_schemas[schema["checksum"]] = {
        "id": schema["id"],
        "version": schema.get("version"),
        "block_type_id": schema["block_type_id"],
    }


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
    wanted = {bt.block_schema["checksum"]: bt for bt in desired.block_types}
    for r in rows:
        # Each document embeds its schema and block type: when one uses the schema chapctl
        # registers, the read of that schema by checksum is not needed.
        schema, block_type = r.get("block_schema") or {}, r.get("block_type") or {}
        spec = wanted.get(schema.get("checksum"))
        if spec is not None and schema.get("version") == spec.block_schema.get("version") and block_type:
            _know_schema(live, schema)
            live.block_types[spec.slug] = {k: block_type.get(k) for k in BLOCK_TYPE_FIELDS}
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
    wanted_fields = {(b.slug, b.name): list(b.secret_env) for b in desired.blocks}
    body["block_documents"]["name"] = {"any_": checkable}
    for r in api.filter_all("/block_documents/filter", {**body, "include_secrets": True}):
        slug = (r.get("block_type") or {}).get("slug")
        doc = live.block_document(slug, r["name"])
        if doc is None:
            continue
        data = r.get("data") or {}
        digests = {}
        for f in wanted_fields.get((slug, r["name"]), []):  # a field path: `password`, `secrets.url`
            value: Any = data
            for key in f.split("."):
                value = value.get(key) if isinstance(value, dict) else None
            digests[f] = secret_digest(str(value)) if value is not None else None
        doc["secret_digests"] = digests


def _read_deployments(api: PrefectAPI, desired: Desired, live: Live) -> None:
    # Only this owner's deployments, any deployment a project's name would clash with, and the
    # hand-made deployments whose schedules projects replace (`replaces:`), in the same request.
    names = sorted({d.name for d in desired.deployments}
                   | {r.deployment_name for d in desired.deployments for r in d.replaced})
    flt: dict[str, Any] = {"tags": {"any_": [desired.owner_tag]}}
    if names:
        flt = {"operator": "or_", "tags": {"any_": [desired.owner_tag]}, "name": {"any_": names}}
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
        limit = r.get("global_concurrency_limit") or {}
        if limit.get("limit") is not None:  # the deployment's own concurrency limit (`limits:`)
            d["concurrency_limit"] = limit["limit"]
            d["collision_strategy"] = (r.get("concurrency_options") or {}).get("collision_strategy") or DEFAULT_COLLISION_STRATEGY
        live.deployments.append(d)


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
