"""The desired state: the compiled artifacts (`prefect.yaml`, `blocks/*.yaml`) read back into value
objects, with everything that depends on the machine resolved at apply time — `{{ $VAR }}` in pull
steps, the secret environment variables, and the facts only an imported Prefect knows
(flow_schemas). Live ids (flow, block documents) are not known here; `plan` joins them.

Secrets never enter these objects: a managed block keeps the *name* of the environment variable
and, when it is set, a sha256 digest of its value for comparison. `apply` reads the value from the
environment at the moment it writes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compiler.cachedir import cache_dir, store
from compiler.constants import DEFAULT_OWNER, ENV_TEMPLATE, FINGERPRINT_PREFIX, MANAGED_TAG, owner_tag
from compiler.errors import ApplyRefused
from compiler.jsontree import map_leaves

BLOCK_REF = re.compile(r"^\{\{\s*prefect\.blocks\.([a-z0-9-]+)\.([A-Za-z0-9_.-]+)\s*\}\}$")
WORK_POOL_TYPE = "process"


def secret_digest(value: str) -> str:
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True)
class BlockRef:
    slug: str
    name: str


@dataclass
class DesiredSchedule:
    slug: str
    cron: str
    timezone: str | None
    active: bool
    day_or: bool = True
    parameters: dict[str, Any] = field(default_factory=dict)  # flow parameters this schedule overrides

    def api_body(self) -> dict[str, Any]:
        """The whole schedule, always: a partial update would reset `parameters` (docs/design.md §5)."""
        return {
            "schedule": {"cron": self.cron, "timezone": self.timezone, "day_or": self.day_or},
            "active": self.active,
            "slug": self.slug,
            "parameters": dict(self.parameters),
            "max_scheduled_runs": None,
        }


@dataclass(frozen=True)
class DesiredAlert:
    """A Prefect automation of one project (`chapctl.alerts` of its deployment in prefect.yaml)."""

    kind: str  # failed | missed
    notify: tuple[BlockRef, ...]
    grace_seconds: int | None = None


@dataclass(frozen=True)
class DesiredConcurrencyLimit:
    """A global concurrency limit this owner manages (`chapctl.concurrency_limits`)."""

    name: str
    limit: int
    block: str
    used_by: tuple[str, ...]


@dataclass(frozen=True)
class Replaces:
    """A hand-made schedule a project takes over (`replaces:` in its project file)."""

    flow_name: str
    deployment_name: str
    schedule_id: str
    slug: str | None = None  # the project's schedule taking it over (`schedules:` entry; None: the first)

    @property
    def deployment(self) -> str:
        return f"{self.flow_name}/{self.deployment_name}"


@dataclass
class DesiredDeployment:
    name: str
    flow_name: str
    entrypoint: str
    description: str | None
    tags: list[str]
    work_pool: str
    parameters: dict[str, Any]  # block references still as BlockRef
    schedules: list[DesiredSchedule]
    pull_steps: list[dict[str, Any]] | None  # resolved; None when an environment variable is unset
    pull_template: list[dict[str, Any]]  # as written in prefect.yaml, `{{ $VAR }}` unresolved
    parameter_openapi_schema: dict[str, Any]
    fingerprint: str = ""
    replaces: Replaces | None = None  # project-level `replaces:` (taken over by its first schedule)
    schedule_replaces: tuple[Replaces, ...] = ()  # `replaces:` of `schedules:` entries, with their slugs
    concurrency: tuple[int, str] | None = None  # (limit, collision strategy)
    alerts: tuple[DesiredAlert, ...] = ()

    @property
    def replaced(self) -> tuple[Replaces, ...]:
        """Every hand-made schedule this project takes over, each with the slug of its successor."""
        first = self.schedules[0].slug if self.schedules else None
        own = (Replaces(self.replaces.flow_name, self.replaces.deployment_name, self.replaces.schedule_id, first),) \
            if self.replaces is not None else ()
        return own + self.schedule_replaces

    def in_place(self, r: Replaces) -> bool:
        """True when `r` is on this project's own deployment (adopted in place)."""
        return (r.flow_name, r.deployment_name) == (self.flow_name, self.name)

    def block_refs(self) -> list[BlockRef]:
        return [v for v in self.parameters.values() if isinstance(v, BlockRef)]


@dataclass
class DesiredBlock:
    slug: str
    name: str
    data: dict[str, Any]  # non-secret fields
    secret_env: dict[str, str]  # field -> environment variable name
    secret_digests: dict[str, str | None]  # field -> digest of the env value, None when unset
    used_by: list[str]


@dataclass
class BlockTypeSpec:
    slug: str
    block_type: dict[str, Any]
    block_schema: dict[str, Any]
    secret_fields: list[str]


@dataclass
class Desired:
    owner: str  # `owner:` of _defaults.yaml: whose objects plan/apply read, change and prune
    deployments: list[DesiredDeployment]
    blocks: list[DesiredBlock]  # managed block documents
    block_types: list[BlockTypeSpec]
    work_pools: list[str]
    flows: list[str]
    process_base_job_template: dict[str, Any]
    unset_pull_env: list[str] = field(default_factory=list)  # variables the pull steps read, unset here
    concurrency_limits: list[DesiredConcurrencyLimit] = field(default_factory=list)

    @property
    def owner_tag(self) -> str:
        return owner_tag(self.owner)


# -- reading the artifacts ------------------------------------------------------------------------
def _yaml_load(path: Path, cache: Path | None = None) -> Any:
    """A compiled artifact's data. prefect.yaml of 1,000 projects takes ~0.15 s to parse, so its
    data is kept as JSON under `.chapctl/cache/`, keyed by the sha256 of its bytes (JSON reads
    ten times faster; a changed file is a new key)."""
    raw = path.read_bytes()
    cached = cache / f"artifact-{path.stem}-{hashlib.sha256(raw).hexdigest()[:32]}.json" if cache is not None else None
    if cached is not None:
        try:
            return json.loads(cached.read_text())
        except (OSError, ValueError):
            pass
    from compiler.compile.load import parse_artifact

    data = parse_artifact(raw.decode("utf-8"), path.name)
    if cached is not None:
        store(cached, json.dumps(data))
    return data


def load_desired(root: Path, env: Mapping[str, str] | None = None, facts: Any = None) -> Desired:
    """Read the compiled artifacts of `root` and resolve them against `env` and the flow facts.

    `facts` (a `flow_schemas.Facts`) is computed (or read from cache) when not given; golden tests
    pass a fixed one so that the planner stays a pure function of files.
    """
    env = os.environ if env is None else env
    project_yaml = root / "prefect.yaml"
    if not project_yaml.is_file():
        raise ApplyRefused(f"{project_yaml} does not exist; run `chapctl compile` first")
    doc = _yaml_load(project_yaml, cache_dir(root)) or {}
    owner = str((doc.get("chapctl") or {}).get("owner") or DEFAULT_OWNER)
    raw_deployments = doc.get("deployments") or []
    pull_template = doc.get("pull") or []
    pull_steps, unset = resolve_env_templates(pull_template, env)

    blocks = [_load_block(p, env, cache_dir(root)) for p in sorted((root / "blocks").glob("*.yaml"))]
    slugs = sorted({b.slug for b in blocks} | _referenced_slugs(raw_deployments))
    entrypoints = sorted({d["entrypoint"] for d in raw_deployments})
    if facts is None:
        from compiler.reconcile.facts import load_facts

        facts = load_facts(root, entrypoints, slugs) if (entrypoints or slugs) else None

    deployments = []
    for raw in raw_deployments:
        flow = facts.flows[raw["entrypoint"]]
        deployments.append(
            DesiredDeployment(
                name=raw["name"],
                flow_name=flow.flow_name,
                entrypoint=raw["entrypoint"],
                description=raw.get("description"),
                tags=list(raw.get("tags") or []),
                work_pool=(raw.get("work_pool") or {}).get("name") or "default",
                parameters={k: _parse_param(v) for k, v in (raw.get("parameters") or {}).items()},
                schedules=[
                    DesiredSchedule(
                        slug=s["slug"],
                        cron=s["cron"],
                        timezone=s.get("timezone") or "UTC",
                        active=bool(s.get("active", True)),
                        day_or=bool(s.get("day_or", True)),
                        parameters=dict(s.get("parameters") or {}),
                    )
                    for s in raw.get("schedules") or []
                ],
                pull_steps=None if unset else pull_steps,
                pull_template=pull_template,
                parameter_openapi_schema=flow.parameter_openapi_schema,
                replaces=_replaces(raw),
                schedule_replaces=_schedule_replaces(raw),
                concurrency=_concurrency(raw),
                alerts=_alerts(raw),
            )
        )
    for d in deployments:
        for tag in (MANAGED_TAG, owner_tag(owner)):  # compile always writes them; never rely on that
            if tag not in d.tags:
                d.tags.append(tag)

    by_name = {b.name: b for b in blocks}
    for d in deployments:
        d.fingerprint = fingerprint(d, by_name, owner)

    block_types = []
    if facts is not None:
        for slug in slugs:
            bt = facts.block_types[slug]
            block_types.append(BlockTypeSpec(slug, bt.block_type, bt.block_schema, list(bt.secret_fields)))
    return Desired(
        owner=owner,
        deployments=sorted(deployments, key=lambda d: d.name),
        blocks=blocks,
        block_types=block_types,
        work_pools=sorted({d.work_pool for d in deployments}),
        flows=sorted({d.flow_name for d in deployments}),
        process_base_job_template=facts.process_base_job_template if facts is not None else {},
        unset_pull_env=sorted(unset),
        concurrency_limits=[
            DesiredConcurrencyLimit(str(c["name"]), int(c["limit"]), str(c["block"]), tuple(c.get("used_by") or ()))
            for c in (doc.get("chapctl") or {}).get("concurrency_limits") or []
        ],
    )


def _load_block(path: Path, env: Mapping[str, str], cache: Path | None) -> DesiredBlock:
    raw = _yaml_load(path, cache) or {}
    secret_env = dict(raw.get("secret_env") or {})
    return DesiredBlock(
        slug=raw["block_type_slug"],
        name=raw["name"],
        data=dict(raw.get("data") or {}),
        secret_env=secret_env,
        secret_digests={f: (secret_digest(env[v]) if env.get(v) else None) for f, v in secret_env.items()},
        used_by=list(raw.get("used_by") or []),
    )


def _concurrency(raw: dict[str, Any]) -> tuple[int, str] | None:
    spec = raw.get("concurrency_limit")
    if spec is None:
        return None
    if isinstance(spec, int):  # prefect.yaml's short form
        return spec, "ENQUEUE"
    return int(spec["limit"]), str(spec.get("collision_strategy") or "ENQUEUE")


def _alerts(raw: dict[str, Any]) -> tuple[DesiredAlert, ...]:
    return tuple(
        DesiredAlert(str(a["kind"]), tuple(BlockRef(str(n["block_type_slug"]), str(n["name"])) for n in a["notify"]),
                     a.get("grace_seconds"))
        for a in (raw.get("chapctl") or {}).get("alerts") or []
    )


def _replaces(raw: dict[str, Any]) -> Replaces | None:
    spec = ((raw.get("chapctl") or {}).get("replaces")) or None
    if not spec:
        return None
    flow, _, name = str(spec["deployment"]).partition("/")
    return Replaces(flow, name, str(spec["schedule_id"]))


def _schedule_replaces(raw: dict[str, Any]) -> tuple[Replaces, ...]:
    out = []
    for spec in ((raw.get("chapctl") or {}).get("schedule_replaces")) or []:
        flow, _, name = str(spec["deployment"]).partition("/")
        out.append(Replaces(flow, name, str(spec["schedule_id"]), str(spec["slug"])))
    return tuple(out)


def _parse_param(value: Any) -> Any:
    if isinstance(value, str) and (m := BLOCK_REF.match(value)):
        return BlockRef(m.group(1), m.group(2))
    return value


def _referenced_slugs(raw_deployments: list[dict[str, Any]]) -> set[str]:
    return {
        m.group(1)
        for d in raw_deployments
        for v in (d.get("parameters") or {}).values()
        if isinstance(v, str) and (m := BLOCK_REF.match(v))
    }


def resolve_env_templates(value: Any, env: Mapping[str, str]) -> tuple[Any, set[str]]:
    """Replace `{{ $VAR }}` in every string of `value`; return the result and the unset names (an
    empty value is unset: a CI variable that is not defined reads as "")."""
    unset: set[str] = set()

    def sub(text: str) -> str:
        def one(m: re.Match[str]) -> str:
            if not env.get(m.group(1)):
                unset.add(m.group(1))
                return m.group(0)
            return env[m.group(1)]

        return ENV_TEMPLATE.sub(one, text)

    return map_leaves(value, lambda v: sub(v) if isinstance(v, str) else v), unset


_SCHEMA_DIGESTS: dict[int, tuple[dict[str, Any], str]] = {}


def _schema_digest(key: int, schema: dict[str, Any]) -> str:
    """Every deployment of a flow shares one schema object: hash it once, not once per project.
    The entry keeps the object alive, so its id is never reused for another schema."""
    entry = _SCHEMA_DIGESTS.get(key)
    if entry is None or entry[0] is not schema:
        entry = (schema, hashlib.sha256(json.dumps(schema, sort_keys=True).encode()).hexdigest())
        _SCHEMA_DIGESTS[key] = entry
    return entry[1]


def fingerprint(d: DesiredDeployment, blocks: Mapping[str, DesiredBlock], owner: str) -> str:
    """`chapctl:<owner>:<16 hex>`: a short hash of everything chapctl writes for this deployment,
    its schedules and the non-secret data of the blocks it uses. Stored as the deployment's
    `version` at apply time; a live object that differs from the YAML while the stored
    fingerprint still matches was changed on the server (drift). The owner in clear lets a
    deployment whose tags were edited away in the UI still be recognised as this owner's."""
    spec = {
        "name": d.name,
        "flow": d.flow_name,
        "entrypoint": d.entrypoint,
        "description": d.description,
        "tags": d.tags,
        "work_pool": d.work_pool,
        "parameters": {k: (f"block:{v.slug}/{v.name}" if isinstance(v, BlockRef) else v) for k, v in d.parameters.items()},
        "schedules": [s.api_body() for s in d.schedules],
        # The template, not its resolution: the fingerprint says what the repository asked for,
        # independent of the machine apply runs on (a different $CHAPCTL_FLOWS_DIR is a change
        # of environment, reported as such, not drift).
        "pull_steps": d.pull_template,
        "schema": _schema_digest(id(d.parameter_openapi_schema), d.parameter_openapi_schema),
        "blocks": {
            ref.name: {"data": blocks[ref.name].data, "secret_env": blocks[ref.name].secret_env}
            for ref in d.block_refs()
            if ref.name in blocks
        },
    }
    if d.replaces is not None:  # only when set: fingerprints of projects without it stay as they were
        spec["replaces"] = {"deployment": d.replaces.deployment, "schedule_id": d.replaces.schedule_id}
    if d.schedule_replaces:
        spec["schedule_replaces"] = [[r.slug, r.deployment, r.schedule_id] for r in d.schedule_replaces]
    if d.concurrency is not None:
        spec["concurrency"] = list(d.concurrency)
    if d.alerts:
        spec["alerts"] = [[a.kind, [f"{r.slug}/{r.name}" for r in a.notify], a.grace_seconds] for a in d.alerts]
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()
    return f"{FINGERPRINT_PREFIX}{owner}:{digest[:16]}"
