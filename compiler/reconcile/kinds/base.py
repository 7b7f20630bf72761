"""What a kind of Prefect object is to chapctl: a `Kind` — its reads of the server, its planner rule,
the `Action` kinds it emits (each with the reporters' group title and apply's stage) and, for an
optional kind, how plan/apply know the owner has some. Each module of compiler/reconcile/kinds/
defines one `KIND`; the package registers them (compiler/reconcile/kinds/__init__.py).

Pure data: the functions a `Kind` names live in its module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from compiler.reconcile.actions import Action, Plan, PlanOptions
from compiler.reconcile.client import PrefectAPI
from compiler.reconcile.context import Context, Live
from compiler.reconcile.desired import Desired

# read(api, desired, live, env): fills its part of `live`, in bulk (one request, paged by the client;
# nothing per object on a no-op).
ReadFn = Callable[[PrefectAPI, Desired, Live, Mapping[str, str]], None]
# rule(ctx, plan): the kind's actions, in order; blockers, notes and missing environment go to `plan`.
RuleFn = Callable[[Context, Plan], list[Action]]
# find_created(api, path, body): the object a create (POST `path`) meant to make, when the server
# holds it as the create meant it; None when it is not there, or when `path` is not this kind's.
FindFn = Callable[[PrefectAPI, str, Any], Any]
# facts(desired, live, options): the live objects this kind read that the planner decides by, by a name
# people read ("deployment f/name"), as a saved plan compares them (compiler/reconcile/saved.py): not
# what concerns only other owners, not what changes on a quiet server (time stamps, runs the scheduler
# makes), never a secret's digest.
FactsFn = Callable[[Desired, Live, PlanOptions], dict[str, Any]]


def named(label: str, rows: Iterable[dict[str, Any]], name: Callable[[dict[str, Any]], str],
          drop: tuple[str, ...] = ("created", "updated")) -> dict[str, dict[str, Any]]:
    """`facts` of a list of live objects: "<label> <name>" -> the object without `drop` (with its id
    after the name when two share one)."""
    rows = sorted(rows, key=lambda r: (name(r), str(r.get("id"))))
    counts: dict[str, int] = {}
    for r in rows:
        counts[name(r)] = counts.get(name(r), 0) + 1
    return {f"{label} {name(r)}" + (f" ({r.get('id')})" if counts[name(r)] > 1 else ""):
            {k: v for k, v in r.items() if k not in drop} for r in rows}


@dataclass(frozen=True)
class ActionKind:
    """One `Action.kind` a kind emits."""

    name: str  # `Action.kind`
    label: str  # the reporters' group title
    stage: int  # apply's stage (lower first): after every stage whose objects it refers to
    per_project: bool = False  # apply chains its writes per project (a project's schedules, then its deployment)
    deletes_last: bool = False  # its deletes go after every other write, in a stage of their own, one chain each


@dataclass(frozen=True)
class Read:
    """One read of the server, at its place in `read_live`: reads run by `at`, lower first (a read
    may use what an earlier one found; the places of the kinds chapctl has leave room between)."""

    at: int
    read: ReadFn


@dataclass(frozen=True)
class Kind:
    """A kind of Prefect object: everything plan, apply and the reporters need of it."""

    name: str
    reads: tuple[Read, ...]
    rule: RuleFn | None  # None: it emits no actions of its own (its facts serve other kinds)
    actions: tuple[ActionKind, ...] = ()
    # An optional kind is read only when the owner has some: `manages` is its name in the commit
    # record (the owner's Prefect Variable); `declared` says the projects declare some, `present`
    # that the server holds some of this owner's (so that removing the last one still prunes it).
    manages: str | None = None
    declared: Callable[[Desired], bool] | None = None
    present: Callable[[Live], bool] | None = None
    find_created: FindFn | None = None
    # None: the kind's facts are `live.extra[name]`, compared whole.
    facts: FactsFn | None = None

    def live_facts(self, desired: Desired, live: Live, options: PlanOptions) -> dict[str, Any]:
        """The objects of `live` this kind read, by name, as a saved plan compares them."""
        if self.facts is not None:
            return self.facts(desired, live, options)
        return {self.name: live.extra[self.name]} if self.name in live.extra else {}

    def __post_init__(self) -> None:
        if (self.manages is None) != (self.declared is None) or (self.manages is None) != (self.present is None):
            raise ValueError(f"kind {self.name}: an optional kind gives `manages`, `declared` and `present` together")
        if self.actions and self.rule is None:
            raise ValueError(f"kind {self.name}: it names action kinds but has no rule that emits them")

