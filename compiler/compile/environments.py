"""Environments (`environments:` in `_defaults.yaml`): which one a verb acts for, and what it changes.

Compile writes one set of artifacts, the projects as declared (prefect.yaml lists the environments
under `chapctl.environments`, compiled to `EnvironmentSpec`s). A verb given `--env NAME` (or
`CHAPCTL_ENV`) selects one (`select`), and the environment is laid over the compiled deployments
where the verb reads them (`overlay`: plan, apply and status through `reconcile.desired`; `diff` and
`schedule` on the projects' compiled specs): its owner (the owner tag of every deployment, the names
of the owner's global concurrency limits), every project's work pool, every schedule paused, and the
notification targets it replaces (`overlay_blocks`). `describe` says it in words for SCHEDULES.md.

Pure and light: no pydantic, nothing of Prefect (plan and apply import it on their fast path).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from compiler.compile.artifact import BlockDocument, DeploymentSpec, EnvironmentSpec, PrefectFile
from compiler.constants import CHAP_LIMIT_PARAMETER, INSTANCE_LIMIT, owner_tag
from compiler.errors import BadUsage

SELECTED_BY = "--env or CHAPCTL_ENV"


def select(declared: Sequence[str], requested: str | None, where: str = "projects/_defaults.yaml") -> str | None:
    """The environment a verb acts for: `requested` (from --env or CHAPCTL_ENV; None or "": none,
    the projects as declared), which must be one of `declared` (in `where`). A usage error otherwise,
    naming the declared ones."""
    if not requested:
        return None
    if requested in declared:
        return requested
    if not declared:
        raise BadUsage(f"{SELECTED_BY} names environment {requested!r}, but {where} declares no environments: declare "
                       f"it under `environments:` in projects/_defaults.yaml (then `chapctl compile`), or unset "
                       "CHAPCTL_ENV")
    import difflib

    close = difflib.get_close_matches(requested, list(declared), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise BadUsage(f"unknown environment {requested!r} ({SELECTED_BY}): {where} declares "
                   + ", ".join(repr(n) for n in declared) + hint)


def find(specs: Iterable[EnvironmentSpec], name: str | None) -> EnvironmentSpec | None:
    return next((s for s in specs if s.name == name), None) if name else None


def limit_names(compiled_owner: str, spec: EnvironmentSpec, blocks: Iterable[str]) -> dict[str, str]:
    """The owner's global concurrency limits (one per DHIS2 instance) as declared -> in `spec`."""
    return {INSTANCE_LIMIT.format(owner=compiled_owner, block=b): INSTANCE_LIMIT.format(owner=spec.owner, block=b)
            for b in blocks}


def overlay_deployment(d: DeploymentSpec, spec: EnvironmentSpec, compiled_owner: str,
                       limits: dict[str, str]) -> DeploymentSpec:
    """One compiled deployment as `spec` applies it."""
    declared, own = owner_tag(compiled_owner), owner_tag(spec.owner)
    return replace(
        d,
        tags=tuple(own if t == declared else t for t in d.tags),
        work_pool=spec.work_pool or d.work_pool,
        parameters=tuple((k, limits.get(v, v) if k == CHAP_LIMIT_PARAMETER and isinstance(v, str) else v)
                         for k, v in d.parameters),
        schedules=tuple(replace(s, active=False) for s in d.schedules) if spec.schedules == "paused" else d.schedules,
    )


def overlay(compiled: PrefectFile, name: str | None) -> PrefectFile:
    """prefect.yaml as environment `name` applies it (`name` None: as declared). `name` must be
    declared (`select`)."""
    spec = find(compiled.environments, name)
    if spec is None:
        return compiled
    limits = limit_names(compiled.owner, spec, [c.block for c in compiled.concurrency_limits])
    return replace(
        compiled,
        owner=spec.owner,
        deployments=tuple(overlay_deployment(d, spec, compiled.owner, limits) for d in compiled.deployments),
        concurrency_limits=tuple(replace(c, name=limits[c.name]) if c.name in limits else c
                                 for c in compiled.concurrency_limits),
        environment=spec.name,
    )


def overlay_blocks(blocks: Iterable[BlockDocument], spec: EnvironmentSpec | None) -> list[BlockDocument]:
    """The managed block documents in `spec`: the notification targets it replaces take their data and
    secret variables from it (type, name and users stay)."""
    blocks = list(blocks)
    if spec is None or not spec.notifications:
        return blocks
    replaced = {(n.type_slug, n.name): n for n in spec.notifications}
    return [replace(b, data=replaced[(b.type_slug, b.name)].data, secret_env=replaced[(b.type_slug, b.name)].secret_env)
            if (b.type_slug, b.name) in replaced else b for b in blocks]


_SECRET_WORDS = {"secrets.url": "URL", "url": "URL", "api_key": "API key"}
_DATA_WORDS = {"to_emails": "to", "sender_email": "from"}


def describe(spec: EnvironmentSpec, compiled_owner: str) -> tuple[str, ...]:
    """What `spec` changes, in words, one item each (SCHEDULES.md, the reporters)."""
    server = f"Prefect server from ${spec.api_url_env}"
    if spec.auth_string_env:
        server += f" (basic auth from ${spec.auth_string_env})"
    if spec.api_key_env:
        server += f" (API key from ${spec.api_key_env})"
    out = [server, f"owner {spec.owner}" + ("" if spec.owner != compiled_owner else " (as declared)")]
    if spec.work_pool:
        out.append(f"every project on work pool {spec.work_pool}")
    out.append("every schedule paused" if spec.schedules == "paused" else "schedules as declared")
    for n in spec.notifications:
        secrets = ", ".join(f"{_SECRET_WORDS.get(f, f)} from ${v}" for f, v in n.secret_env.items())
        data = "; ".join(f"{_DATA_WORDS[k]} {', '.join(v) if isinstance(v, list) else v}"
                         for k, v in sorted(n.data.items(), key=lambda kv: kv[0], reverse=True) if k in _DATA_WORDS)
        out.append(f"notification {n.name}: " + "; ".join(x for x in (data, secrets) if x))
    return tuple(out)
