"""The values a plan is made of, shared by the planner, apply and the reporters: `Action`s with their
`Change`s (for the reviewer) and exact `Request`s (for apply), the `Plan` that orders them, the op
constants, and the stand-ins for what is only known at write time — `Placeholder` (the id of an
object an earlier action creates), `ResourceId` (an event resource naming one), `SecretFromEnv` (a
secret read from the environment when apply writes) and `AsRead` (a value written back as read).
Pure data: no I/O, nothing of Prefect."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from compiler.jsontree import map_leaves

CREATE, UPDATE, DELETE, NOOP = "create", "update", "delete", "noop"
SECRET_HIDDEN = "(hidden)"


@dataclass(frozen=True)
class Placeholder:
    """The id of an object an earlier action of the same apply creates."""

    kind: str
    key: str

    def to_json(self) -> dict[str, str]:
        return {"$id_of": f"{self.kind}:{self.key}"}


@dataclass(frozen=True)
class SecretFromEnv:
    """A secret apply reads from the environment variable `var` at the moment it writes."""

    var: str

    def to_json(self) -> dict[str, str]:
        return {"$secret_from_env": self.var}


@dataclass(frozen=True, eq=False)
class AsRead:
    """A value read from the server and written back unchanged: the parameters of a hand-made
    schedule that apply pauses (a partial PATCH would reset them). Shown with every value that is
    neither a block reference nor a plain scalar hidden: a hand-made schedule may pin inline
    credentials."""

    value: Any

    def to_json(self) -> Any:
        def shown(v: Any) -> Any:
            if isinstance(v, dict) and set(v) == {"$ref"}:
                return v
            return SECRET_HIDDEN if isinstance(v, (dict, list)) else v

        return {k: shown(v) for k, v in self.value.items()} if isinstance(self.value, dict) else SECRET_HIDDEN


@dataclass(frozen=True)
class ResourceId:
    """An event resource id naming an object created earlier in the same apply:
    `prefect.deployment.<id>` of a deployment that does not exist yet."""

    prefix: str
    placeholder: Placeholder

    def to_json(self) -> dict[str, str]:
        return {"$id_of": f"{self.placeholder.kind}:{self.placeholder.key}", "prefix": self.prefix}


def ref(kind: str, key: str) -> Placeholder:
    return Placeholder(kind, key)


def encode(value: Any) -> Any:
    """A request body as JSON for display: placeholders as {"$id_of": …}, {"$secret_from_env": …}."""
    return map_leaves(value, lambda v: v.to_json() if isinstance(v, (Placeholder, SecretFromEnv, AsRead, ResourceId))
                      else v)


# A step apply performs itself, with reads and deletes, after a hand-made schedule is paused
# (compiler/reconcile/handover.py). Its "path" names the schedule.
HANDOVER = "HANDOVER"
# A step apply performs itself at the end of the writes to one deployment (its schedules, then
# itself): re-create the scheduled runs Prefect deleted with them (compiler/reconcile/handover.py
# `restore_runs`). Its path names the deployment; its body the `updated` stamps the plan read.
RUNS = "RUNS"


def path_text(path: str | tuple[Any, ...]) -> str:
    """A request path for display; a path that holds the id of an object created earlier in the
    same apply names it as `{id of deployment:<name>}`."""
    if isinstance(path, str):
        return path
    return "".join(part if isinstance(part, str) else f"{{id of {part.kind}:{part.key}}}" for part in path)


@dataclass(frozen=True)
class PlanOptions:
    adopt: bool = False  # take over unmanaged deployments whose name a project uses
    allow_delete_all: bool = False  # a plan may delete every deployment of the owner
    cancel_in_flight: bool = False  # cancel the running/pending/paused runs of pruned deployments


@dataclass
class Change:
    field: str
    before: Any
    after: Any
    secret: bool = False

    def to_json(self) -> dict[str, Any]:
        d = {"field": self.field, "before": self.before, "after": self.after}
        if self.secret:
            d["secret"] = True
        return d


@dataclass
class Request:
    method: str  # an HTTP method, or HANDOVER or RUNS (a step apply performs itself)
    path: str | tuple[Any, ...]  # a tuple when it holds a Placeholder (the id of an object created earlier)
    body: Any = None

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "path": path_text(self.path), "body": encode(self.body)}


@dataclass
class Action:
    kind: str  # work_pool | block_type | block_schema | block_document | flow | schedule | deployment
    name: str
    op: str  # create | update | delete | noop
    reason: str = ""
    drift: bool = False
    changes: list[Change] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    provides: Placeholder | None = None  # placeholder this action's (last) response id fills
    project: str | None = None  # the project (deployment name) this object belongs to
    quiet: bool = False  # a bookkeeping write (the fingerprint alone): counted apart, not shown as a row
    handover: bool = False  # a hand-made schedule a project replaces (shown after that project's deployment)

    @property
    def writes(self) -> bool:
        return self.op != NOOP

    def to_json(self, include_requests: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind, "name": self.name, "op": self.op, "reason": self.reason}
        if self.drift:
            d["drift"] = True
        if self.project:
            d["project"] = self.project
        if self.quiet:
            d["quiet"] = True
        if self.handover:
            d["handover"] = True
        if self.changes:
            d["changes"] = [c.to_json() for c in self.changes]
        if include_requests and self.requests:
            d["requests"] = [r.to_json() for r in self.requests]
        return d


@dataclass
class Plan:
    actions: list[Action] = field(default_factory=list)
    blockers: list[str] = field(default_factory=list)  # apply refuses; plan fails too
    notes: list[str] = field(default_factory=list)
    # Environment apply needs but this plan's environment lacks (e.g. a CI job that only plans):
    # plan warns and still succeeds, apply refuses before any write.
    missing_env: list[str] = field(default_factory=list)
    # Hand-made schedules on deployments chapctl adopted that no project declares: left alone, and
    # recorded by apply (the owner's commit record) so that later plans leave them alone too.
    left_alone: list[str] = field(default_factory=list)

    @property
    def has_changes(self) -> bool:
        return any(a.writes for a in self.actions)

    def counts(self) -> dict[str, int]:
        """Actions per op; `fingerprint` counts the quiet fingerprint-only updates, kept out of `update`."""
        c = {CREATE: 0, UPDATE: 0, DELETE: 0, NOOP: 0, "drift": 0, "fingerprint": 0}
        for a in self.actions:
            c["fingerprint" if a.quiet else a.op] += 1
            c["drift"] += a.drift
        return c

    def to_json(self, include_requests: bool = False) -> dict[str, Any]:
        return {
            "changes": self.has_changes,
            "counts": self.counts(),
            "blockers": list(self.blockers),
            "missing_env": list(self.missing_env),
            "notes": list(self.notes),
            "actions": [a.to_json(include_requests) for a in self.actions],
        }
