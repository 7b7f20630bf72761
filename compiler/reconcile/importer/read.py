"""Import's reading: the server (a few bulk requests; every secret dropped as it is read) and the
repository (the names, replaced schedules and defaults a new import must respect)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from compiler.constants import BLOCK_TYPE_SLUG
from compiler.reconcile.client import PrefectAPI
from compiler.reconcile.importer.values import FLOW_NAME, FLOW_PARAMETERS, ORIGIN_LINE, RepoState, ServerState

# A credentials parameter naming a block by template: `{{ prefect.blocks.<type slug>.<name> }}`.
BLOCK_TEMPLATE = re.compile(r"^\{\{\s*prefect\.blocks\.([a-z0-9-]+)\.([A-Za-z0-9_.-]+)\s*\}\}$")
# What a parameter whose value is not kept becomes (its value may be a secret).
UNKNOWN = {"$unknown": True}


def read_server(api: PrefectAPI) -> ServerState:
    with api.reading():
        return _read_server(api)


def _read_server(api: PrefectAPI) -> ServerState:
    version = api.server_version()
    rows = api.filter_all("/deployments/filter", {"flows": {"name": {"any_": [FLOW_NAME]}}, "sort": "NAME_ASC"})
    deployments = [safe_deployment(r) for r in rows]
    ids = sorted({bid for d in deployments for p in [d["parameters"]] + [s["parameters"] for s in d["schedules"]]
                  for bid in [ref_id(p.get("credentials"))] if bid})
    blocks: dict[str, dict[str, Any]] = {}
    if ids:
        for b in api.filter_all("/block_documents/filter", {"block_documents": {"id": {"any_": ids}},
                                                             "include_secrets": False}):
            blocks[b["id"]] = {"name": b.get("name"), "slug": (b.get("block_type") or {}).get("slug"),
                               "anonymous": bool(b.get("is_anonymous"))}
    named = api.filter_all("/block_documents/filter", {
        "block_types": {"slug": {"any_": [BLOCK_TYPE_SLUG]}}, "block_documents": {"is_anonymous": {"eq_": False}},
        "include_secrets": False})
    return ServerState(api.settings.url, version, deployments, blocks, {b["name"] for b in named})


def safe_deployment(r: dict[str, Any]) -> dict[str, Any]:
    """A deployment row with every secret dropped at once: an inline credentials object keeps only
    its base_url and username; an unknown parameter keeps only its name."""
    return {
        "id": r["id"], "name": r["name"], "work_pool_name": r.get("work_pool_name"), "paused": bool(r.get("paused")),
        "tags": [t for t in r.get("tags") or [] if isinstance(t, str)], "version": r.get("version"),
        "description": r.get("description") if isinstance(r.get("description"), str) else None,
        "parameters": safe_parameters(r.get("parameters") or {}),
        "pull_steps": safe_pull_steps(r.get("pull_steps") or []),
        "schedules": sorted(({"id": s["id"], "schedule": s.get("schedule") or {}, "active": s.get("active", True),
                              "slug": s.get("slug"), "parameters": safe_parameters(s.get("parameters") or {}),
                              "max_scheduled_runs": s.get("max_scheduled_runs"), "created": s.get("created") or ""}
                             for s in r.get("schedules") or []), key=lambda s: (s["created"], s["id"])),
    }


def safe_parameters(params: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in params.items():
        if key == "credentials":
            out[key] = _safe_credentials(value)
        elif key in FLOW_PARAMETERS and (value is None or isinstance(value, (str, int, float, bool))):
            out[key] = value
        else:
            out[key] = UNKNOWN  # its value is never kept (it may be a secret)
    return out


def _safe_credentials(value: Any) -> Any:
    if isinstance(value, dict) and "$ref" in value:
        return {"$ref": {"block_document_id": ref_id(value)}}
    if isinstance(value, dict):
        return {"inline": True, "base_url": value.get("base_url") if isinstance(value.get("base_url"), str) else None,
                "username": value.get("username") if isinstance(value.get("username"), str) else None,
                "has_password": bool(value.get("password"))}
    if isinstance(value, str) and BLOCK_TEMPLATE.match(value):
        return value
    return UNKNOWN if value is not None else None


def safe_pull_steps(steps: list[Any]) -> list[dict[str, Any]]:
    out = []
    for step in steps if isinstance(steps, list) else []:
        if isinstance(step, dict) and len(step) == 1:
            (name, args), = step.items()
            if name.endswith("git_clone") and isinstance(args, dict) and isinstance(args.get("repository"), str):
                out.append({"git_clone": {"repository": args["repository"], "branch": args.get("branch")}})
    return out


def ref_id(value: Any) -> str | None:
    """The block document id a `{"$ref": …}` parameter names, if it is one."""
    if isinstance(value, dict) and "$ref" in value:
        inner = value["$ref"]
        if isinstance(inner, dict):
            return str(inner.get("block_document_id") or "") or None
        if isinstance(inner, str):
            return inner
    return None


def read_repo(root: Path) -> RepoState:
    from compiler.compile.load import load_repo
    from compiler.compile.models import DEFAULT_TIMEZONE, DEFAULT_WORK_POOL

    loaded = load_repo(root)
    names, replaced, blocks, imported = set(), {}, set(), {}
    for path in (root / "projects").glob("*.yaml"):
        names.add(path.stem)
    for source in loaded.projects:
        for origin in ORIGIN_LINE.findall(source.text or ""):
            imported.setdefault(origin, source.path)
        data = source.data if isinstance(source.data, dict) else {}
        entries = data.get("schedules") if isinstance(data.get("schedules"), list) else []
        for rep in [data.get("replaces")] + [e.get("replaces") for e in entries if isinstance(e, dict)]:
            if isinstance(rep, dict) and isinstance(rep.get("schedule_id"), str):
                replaced[rep["schedule_id"]] = source.path
        creds = data.get("credentials")
        if isinstance(creds, dict) and isinstance(creds.get("block"), str):
            blocks.add(creds["block"])
    defaults = loaded.defaults.data if loaded.defaults is not None and isinstance(loaded.defaults.data, dict) else {}
    return RepoState(names, replaced, blocks, (root / "projects" / "_defaults.yaml").exists(),
                     str(defaults.get("work_pool") or DEFAULT_WORK_POOL), str(defaults.get("timezone") or DEFAULT_TIMEZONE),
                     imported)
