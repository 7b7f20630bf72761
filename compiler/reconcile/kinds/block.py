"""Blocks: the block types and schemas flows/ defines (stage 0), and the block documents — DHIS2
credentials and notification blocks — that blocks/*.yaml declare or deployments name (stage 1: a
document names its schema). Documents are never deleted: one no project manages any more is
released (its claim, a Prefect Variable of kinds/variable.py, removed) and left on the server.
Secrets are read only as digests and written from the environment (`SecretFromEnv`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from compiler.constants import BLOCK_TYPE_SLUG
from compiler.errors import NotFound
from compiler.reconcile.actions import (CREATE, NOOP, UPDATE, Action, Change, Plan, PlanOptions, Request, SecretFromEnv,
                                        ref)
from compiler.reconcile.client import PrefectAPI
from compiler.reconcile.context import Context, Live, claims
from compiler.reconcile.desired import Desired, DesiredBlock, secret_digest
from compiler.reconcile.kinds.base import ActionKind, Kind, Read, named
from compiler.reconcile.kinds.variable import claim_request

BLOCK_TYPE_FIELDS = ("id", "name", "slug", "logo_url", "documentation_url", "description", "code_example")


def read(api: PrefectAPI, desired: Desired, live: Live, env: Mapping[str, str]) -> None:
    """Every named document of our block types (each embeds its schema and block type), the secrets
    of those whose variable is set (as digests), then what no document showed of types and schemas."""
    _read_block_documents(api, desired, live)
    _read_block_types(api, desired, live)


def _read_block_types(api: PrefectAPI, desired: Desired, live: Live) -> None:
    """The block types and schemas no document showed: by checksum, else the type by slug."""
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


def _read_block_documents(api: PrefectAPI, desired: Desired, live: Live) -> None:
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


def rule(ctx: Context, p: Plan) -> list[Action]:
    """Block types and their schemas, then block documents."""
    return _plan_block_types(ctx) + _plan_block_documents(ctx, p)


def _plan_block_types(ctx: Context) -> list[Action]:
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


def _plan_block_documents(ctx: Context, p: Plan) -> list[Action]:
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


def _plan_managed_block(ctx: Context, p: Plan, block: DesiredBlock) -> Action:
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
    claiming = [] if claim is not None else [claim_request(ctx.owner, ctx.desired.owner_tag, block.slug, block.name)]  # the claim goes first: kill-safe
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


# What a block's secret field holds, in the words of "apply will need VAR: … is created with …"
_SECRET_WORDS = {"password": "the password", "secrets.url": "the webhook URL", "url": "the webhook URL"}


def find_created(api: PrefectAPI, path: str, body: Any) -> Any:
    if path == "/block_types/":
        return api.get(f"/block_types/slug/{body['slug']}")
    if path == "/block_schemas/":
        rows = api.post("/block_schemas/filter", {"block_schemas": {"block_type_id": {"any_": [body["block_type_id"]]}}})
        fields = body.get("fields")
        return next((r for r in rows if r.get("fields") == fields and r.get("version") == body.get("version")), None)
    if path == "/block_documents/":
        rows = api.post("/block_documents/filter", {
            "block_documents": {"name": {"any_": [body["name"]]}, "is_anonymous": {"eq_": False},
                                "block_type_id": {"any_": [body["block_type_id"]]}},
            "include_secrets": True, "limit": 1})
        return rows[0] if rows and _same_data(rows[0].get("data") or {}, body.get("data") or {}) else None
    return None


def _same_data(have: dict[str, Any], wanted: dict[str, Any]) -> bool:
    return all(have.get(k) == v for k, v in wanted.items())


def facts(desired: Desired, live: Live, options: PlanOptions) -> dict[str, Any]:
    """Block types, schemas and the documents the planner decides by — those the projects manage or
    refer to, those this owner claims and those the live deployments refer to (not another team's
    credentials) — each without its `updated` stamp and its secrets' digests (a saved plan never
    holds them: a rotated secret changes the plan instead)."""
    wanted = {(b.slug, b.name) for b in desired.blocks} | {
        (r.slug, r.name) for d in desired.deployments for r in d.block_refs()}
    wanted |= {key for key, claim in claims(live).items() if claim["owner"] == desired.owner}
    referred = {v["$ref"].get("block_document_id") for d in live.deployments for v in (d.get("parameters") or {}).values()
                if isinstance(v, dict) and isinstance(v.get("$ref"), dict)}
    out: dict[str, Any] = {f"block type {slug}": bt for slug, bt in live.block_types.items()}
    out.update({f"block schema {checksum}": schema for checksum, schema in live.block_schemas.items()})
    out.update(named("block", [b for b in live.block_documents if (b["slug"], b["name"]) in wanted or b["id"] in referred],
                     lambda b: f"{b['slug']}/{b['name']}", drop=("updated", "secret_digests")))
    return out


KIND = Kind(
    name="block",
    reads=(Read(20, read),),
    rule=rule,
    actions=(
        ActionKind("block_type", "Block type", stage=0),
        ActionKind("block_schema", "Block type", stage=0),
        ActionKind("block_document", "Block documents", stage=1),
    ),
    find_created=find_created,
    facts=facts,
)
