"""The compiled artifact's schema: what `prefect.yaml` and `blocks/*.yaml` hold, as frozen data
classes. `compile.render` builds them from the validated projects and writes them through the
templates (`compiler/templates/prefect.yaml.j2`, `block.yaml.j2`, `notification.yaml.j2`);
`reconcile.desired` reads the files back into the same classes here (`read_prefect_yaml`,
`read_block`), the one place that looks into the raw YAML data.

Pure and light: no pydantic, no jinja2, nothing of Prefect (plan/apply import it on their fast path).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from compiler.constants import DEFAULT_COLLISION_STRATEGY, DEFAULT_OWNER, DEFAULT_TIMEZONE, \
    DEFAULT_WORK_POOL

SCHEDULE_SLUG = "chapctl-cron"  # the slug of a project's `schedule:` (an entry of `schedules:` names its own)


@dataclass(frozen=True)
class BlockRef:
    """A block document named by its type's slug and its name."""

    slug: str
    name: str


@dataclass(frozen=True)
class Replaces:
    """A hand-made schedule a project takes over (`replaces:` in its project file)."""

    flow_name: str
    deployment_name: str
    schedule_id: str
    slug: str | None = None  # the project's schedule taking it over (`schedules:` entry; None: the first)

    @classmethod
    def of(cls, deployment: str, schedule_id: str, slug: str | None = None) -> Replaces:
        flow, _, name = str(deployment).partition("/")
        return cls(flow, name, str(schedule_id), slug)

    @property
    def deployment(self) -> str:
        return f"{self.flow_name}/{self.deployment_name}"

    def items(self) -> tuple[tuple[str, str], ...]:
        """The fields prefect.yaml writes, in its order."""
        return ("deployment", self.deployment), ("schedule_id", self.schedule_id)


@dataclass(frozen=True)
class ScheduleSpec:
    cron: str
    timezone: str
    active: bool
    slug: str = SCHEDULE_SLUG
    parameters: tuple[tuple[str, Any], ...] = ()  # flow parameters this schedule's runs override
    replaces: Replaces | None = None  # the hand-made schedule this entry takes over (its slug set)

    def api_body(self) -> dict[str, Any]:
        """The whole schedule, always: a partial update would reset `parameters` (docs/design.md §5)."""
        return {
            "schedule": {"cron": self.cron, "timezone": self.timezone, "day_or": True},
            "active": self.active,
            "slug": self.slug,
            "parameters": dict(self.parameters),
            "max_scheduled_runs": None,
        }


@dataclass(frozen=True)
class AlertSpec:
    """One Prefect automation of a project: `failed` (a run ended Failed or Crashed) or `missed`
    (a run still not started `grace_seconds` after Prefect marked it Late)."""

    kind: str
    notify: tuple[BlockRef, ...]  # the notification blocks it sends to
    grace_seconds: int | None = None


@dataclass(frozen=True)
class ConcurrencyLimitSpec:
    """A Prefect global concurrency limit for one DHIS2 instance (`instance_limits:`), managed by
    this owner."""

    name: str
    limit: int
    block: str
    used_by: tuple[str, ...]


@dataclass(frozen=True)
class DeploymentSpec:
    name: str
    entrypoint: str
    description: str | None
    tags: tuple[str, ...]
    work_pool: str
    parameters: tuple[tuple[str, Any], ...]  # as written: a block is `{{ prefect.blocks.<slug>.<name> }}`
    schedules: tuple[ScheduleSpec, ...]
    replaces: Replaces | None = None  # project-level `replaces:` (taken over by its first schedule)
    concurrency: tuple[int, str] | None = None  # (limit, collision strategy)
    alerts: tuple[AlertSpec, ...] = ()


@dataclass(frozen=True)
class PullStep:
    name: str
    fields: tuple[tuple[str, Any], ...]

    def to_json(self) -> dict[str, Any]:
        """The step as prefect.yaml holds it (`{{ $VAR }}` unresolved)."""
        return {self.name: dict(self.fields)}


@dataclass(frozen=True)
class EnvironmentSpec:
    """One environment of `environments:` as compiled (prefect.yaml's `chapctl.environments`): its
    owner in full, the variables naming its server, and what it changes in every deployment
    (compiler/compile/environments.py lays it over the rest)."""

    name: str
    owner: str
    api_url_env: str
    auth_string_env: str | None = None
    api_key_env: str | None = None
    work_pool: str | None = None  # every deployment's pool; None: each its own
    schedules: str = "active"  # "paused": every schedule paused; "active": as declared
    notifications: tuple[BlockDocument, ...] = ()  # notification blocks replaced (type, name, data, secret_env)

    def to_json(self) -> dict[str, Any]:
        """What a saved plan and the reporters say of it (names of variables, never their values)."""
        return {"name": self.name, "owner": self.owner, "api_url_env": self.api_url_env,
                "auth_string_env": self.auth_string_env, "api_key_env": self.api_key_env,
                "work_pool": self.work_pool, "schedules": self.schedules,
                "notifications": [n.name for n in self.notifications]}


@dataclass(frozen=True)
class PrefectFile:
    """prefect.yaml."""

    owner: str
    pull: tuple[PullStep, ...]
    deployments: tuple[DeploymentSpec, ...]
    concurrency_limits: tuple[ConcurrencyLimitSpec, ...] = ()
    environments: tuple[EnvironmentSpec, ...] = ()
    environment: str | None = None  # the environment laid over it (compiler/compile/environments.py); None: as declared
    allow_unset: tuple[str, ...] = ()  # `ci.allow_unset`: variables plan may find unset (a warning, not a failure)


@dataclass(frozen=True)
class BlockDocument:
    """One managed block document (`blocks/<name>.yaml`): DHIS2 credentials or a notification
    target. Secrets are the names of environment variables, never values."""

    type_slug: str
    name: str
    data: dict[str, Any] = field(default_factory=dict)  # non-secret fields (scalars, lists, flat mappings)
    secret_env: dict[str, str] = field(default_factory=dict)  # field path -> environment variable
    used_by: tuple[str, ...] = ()


# -- reading the artifacts back ----------------------------------------------------------------------
def read_prefect_yaml(doc: Any) -> PrefectFile:
    """prefect.yaml's parsed data as `PrefectFile`."""
    doc = doc or {}
    chapctl = doc.get("chapctl") or {}
    return PrefectFile(
        owner=str(chapctl.get("owner") or DEFAULT_OWNER),
        pull=tuple(PullStep(name, tuple((fields or {}).items())) for step in doc.get("pull") or []
                   for name, fields in step.items()),
        deployments=tuple(_deployment(raw) for raw in doc.get("deployments") or []),
        concurrency_limits=tuple(
            ConcurrencyLimitSpec(str(c["name"]), int(c["limit"]), str(c["block"]), tuple(c.get("used_by") or ()))
            for c in chapctl.get("concurrency_limits") or []),
        environments=tuple(_environment(e) for e in chapctl.get("environments") or []),
        allow_unset=tuple(str(name) for name in chapctl.get("allow_unset") or ()),
    )


def _environment(raw: dict[str, Any]) -> EnvironmentSpec:
    return EnvironmentSpec(
        name=str(raw["name"]), owner=str(raw["owner"]), api_url_env=str(raw["api_url_env"]),
        auth_string_env=raw.get("auth_string_env"), api_key_env=raw.get("api_key_env"),
        work_pool=raw.get("work_pool"), schedules=str(raw.get("schedules") or "active"),
        notifications=tuple(read_block(n) for n in raw.get("notifications") or []),
    )


def read_block(doc: Any) -> BlockDocument:
    """A block file's parsed data as `BlockDocument`."""
    doc = doc or {}
    return BlockDocument(type_slug=doc["block_type_slug"], name=doc["name"], data=dict(doc.get("data") or {}),
                         secret_env=dict(doc.get("secret_env") or {}), used_by=tuple(doc.get("used_by") or ()))


def _deployment(raw: dict[str, Any]) -> DeploymentSpec:
    chapctl = raw.get("chapctl") or {}
    successors = {str(s["slug"]): Replaces.of(s["deployment"], s["schedule_id"], str(s["slug"]))
                  for s in chapctl.get("schedule_replaces") or []}
    own = chapctl.get("replaces") or None
    return DeploymentSpec(
        name=raw["name"],
        entrypoint=raw["entrypoint"],
        description=raw.get("description"),
        tags=tuple(raw.get("tags") or ()),
        work_pool=(raw.get("work_pool") or {}).get("name") or DEFAULT_WORK_POOL,
        parameters=tuple((raw.get("parameters") or {}).items()),
        schedules=tuple(
            ScheduleSpec(cron=s["cron"], timezone=s.get("timezone") or DEFAULT_TIMEZONE,
                         active=bool(s.get("active", True)), slug=s["slug"],
                         parameters=tuple((s.get("parameters") or {}).items()), replaces=successors.get(s["slug"]))
            for s in raw.get("schedules") or []),
        replaces=Replaces.of(own["deployment"], own["schedule_id"]) if own else None,
        concurrency=_concurrency(raw.get("concurrency_limit")),
        alerts=tuple(
            AlertSpec(str(a["kind"]), tuple(BlockRef(str(n["block_type_slug"]), str(n["name"])) for n in a["notify"]),
                      a.get("grace_seconds"))
            for a in chapctl.get("alerts") or []),
    )


def _concurrency(spec: Any) -> tuple[int, str] | None:
    if spec is None:
        return None
    if isinstance(spec, int):  # prefect.yaml's short form
        return spec, DEFAULT_COLLISION_STRATEGY
    return int(spec["limit"]), str(spec.get("collision_strategy") or DEFAULT_COLLISION_STRATEGY)
