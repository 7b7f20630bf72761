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
from compiler.compile import environments
from compiler.compile.artifact import (AlertSpec, BlockDocument, BlockRef, ConcurrencyLimitSpec, DeploymentSpec,  # noqa: F401
                                       EnvironmentSpec, PrefectFile, Replaces, ScheduleSpec, read_block,
                                       read_prefect_yaml)
from compiler.constants import ENV_TEMPLATE, FINGERPRINT_PREFIX, MANAGED_TAG, owner_tag
from compiler.errors import ApplyRefused
from compiler.jsontree import map_leaves
from compiler.reconcile.client import ApiSettings
from compiler.reconcile.secrets import with_secrets

BLOCK_REF = re.compile(r"^\{\{\s*prefect\.blocks\.([a-z0-9-]+)\.([A-Za-z0-9_.-]+)\s*\}\}$")
WORK_POOL_TYPE = "process"


def secret_digest(value: str) -> str:
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()


@dataclass
class DesiredDeployment:
    name: str
    flow_name: str
    entrypoint: str
    description: str | None
    tags: list[str]
    work_pool: str
    parameters: dict[str, Any]  # block references as BlockRef
    schedules: tuple[ScheduleSpec, ...]
    pull_steps: list[dict[str, Any]] | None  # resolved; None when an environment variable is unset
    pull_template: list[dict[str, Any]]  # as written in prefect.yaml, `{{ $VAR }}` unresolved
    parameter_openapi_schema: dict[str, Any]
    fingerprint: str = ""
    replaces: Replaces | None = None  # project-level `replaces:` (taken over by its first schedule)
    concurrency: tuple[int, str] | None = None  # (limit, collision strategy)
    alerts: tuple[AlertSpec, ...] = ()

    @property
    def schedule_replaces(self) -> tuple[Replaces, ...]:
        """`replaces:` of `schedules:` entries, with their slugs."""
        return tuple(s.replaces for s in self.schedules if s.replaces is not None)

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
    owner: str  # `owner:` of _defaults.yaml (with the environment's suffix): whose objects plan/apply read, change and prune
    deployments: list[DesiredDeployment]
    blocks: list[DesiredBlock]  # managed block documents
    block_types: list[BlockTypeSpec]
    work_pools: list[str]
    flows: list[str]
    process_base_job_template: dict[str, Any]
    unset_pull_env: list[str] = field(default_factory=list)  # variables the pull steps read, unset here
    concurrency_limits: list[ConcurrencyLimitSpec] = field(default_factory=list)
    environment: EnvironmentSpec | None = None  # the environment laid over the artifacts (--env); None: as declared
    allow_unset: list[str] = field(default_factory=list)  # `ci.allow_unset`: plan warns, not fails, without them

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


def read_compiled(root: Path) -> PrefectFile:
    """prefect.yaml of `root`, as compiled (no environment laid over it)."""
    project_yaml = root / "prefect.yaml"
    if not project_yaml.is_file():
        raise ApplyRefused(f"{project_yaml} does not exist; run `chapctl compile` first")
    return read_prefect_yaml(_yaml_load(project_yaml, cache_dir(root)))


def select_environment(root: Path, requested: str | None) -> EnvironmentSpec | None:
    """The environment a server verb acts for (`--env`/CHAPCTL_ENV), among those prefect.yaml
    declares; a usage error (BadUsage) for a name it does not declare."""
    if not requested:
        return None
    compiled = read_compiled(root)
    name = environments.select([e.name for e in compiled.environments], requested,
                               "prefect.yaml (compiled from projects/_defaults.yaml)")
    return environments.find(compiled.environments, name)


def api_settings(root: Path, requested: str | None, env: Mapping[str, str] | None = None) -> ApiSettings:
    """Where a server verb connects: the selected environment's server (from the variables it
    names; `CHAPCTL_SECRETS` too), else Prefect's own settings (PREFECT_API_URL, the profile)."""
    env = os.environ if env is None else env
    spec = select_environment(root, requested)
    if spec is None:
        return ApiSettings.from_env(env)
    return ApiSettings.for_environment(spec, with_secrets(env))


def load_desired(root: Path, env: Mapping[str, str] | None = None, facts: Any = None,
                 environment: str | None = None) -> Desired:
    """Read the compiled artifacts of `root`, lay `environment` over them (--env; None: as declared),
    and resolve them against `env` and the flow facts.

    `facts` (a `flow_schemas.Facts`) is computed (or read from cache) when not given; golden tests
    pass a fixed one so that the planner stays a pure function of files.
    """
    env = os.environ if env is None else env
    compiled = read_compiled(root)
    spec = None
    if environment:
        spec = environments.find(compiled.environments, environments.select(
            [e.name for e in compiled.environments], environment, "prefect.yaml (compiled from projects/_defaults.yaml)"))
        compiled = environments.overlay(compiled, environment)
    owner = compiled.owner
    pull_template = [step.to_json() for step in compiled.pull]
    pull_steps, unset = resolve_env_templates(pull_template, env)

    documents = [read_block(_yaml_load(p, cache_dir(root))) for p in sorted((root / "blocks").glob("*.yaml"))]
    blocks = [_desired_block(doc, env) for doc in environments.overlay_blocks(documents, spec)]
    slugs = sorted({b.slug for b in blocks} | {r.slug for d in compiled.deployments for r in _block_refs(d)})
    entrypoints = sorted({d.entrypoint for d in compiled.deployments})
    if facts is None:
        from compiler.reconcile.facts import load_facts

        facts = load_facts(root, entrypoints, slugs) if (entrypoints or slugs) else None

    deployments = [_deployment(spec, facts.flows[spec.entrypoint], None if unset else pull_steps, pull_template)
                   for spec in compiled.deployments]
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
        concurrency_limits=list(compiled.concurrency_limits),
        environment=spec,
        allow_unset=list(compiled.allow_unset),
    )


def _deployment(spec: DeploymentSpec, flow: Any, pull_steps: list[dict[str, Any]] | None,
                pull_template: list[dict[str, Any]]) -> DesiredDeployment:
    """A compiled deployment joined with what the flow facts know (its flow's name and schema)."""
    return DesiredDeployment(
        name=spec.name,
        flow_name=flow.flow_name,
        entrypoint=spec.entrypoint,
        description=spec.description,
        tags=list(spec.tags),
        work_pool=spec.work_pool,
        parameters={k: _parse_param(v) for k, v in spec.parameters},
        schedules=spec.schedules,
        pull_steps=pull_steps,
        pull_template=pull_template,
        parameter_openapi_schema=flow.parameter_openapi_schema,
        replaces=spec.replaces,
        concurrency=spec.concurrency,
        alerts=spec.alerts,
    )


def _desired_block(doc: BlockDocument, env: Mapping[str, str]) -> DesiredBlock:
    return DesiredBlock(
        slug=doc.type_slug,
        name=doc.name,
        data=doc.data,
        secret_env=doc.secret_env,
        secret_digests={f: (secret_digest(env[v]) if env.get(v) else None) for f, v in doc.secret_env.items()},
        used_by=list(doc.used_by),
    )


def _parse_param(value: Any) -> Any:
    if isinstance(value, str) and (m := BLOCK_REF.match(value)):
        return BlockRef(m.group(1), m.group(2))
    return value


def _block_refs(spec: DeploymentSpec) -> list[BlockRef]:
    return [ref for _, v in spec.parameters if isinstance(ref := _parse_param(v), BlockRef)]


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
