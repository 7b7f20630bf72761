"""The kinds of Prefect object chapctl makes a server match, registered once. Each module of this
package is one kind (compiler/reconcile/kinds/base.py `Kind`): its reads of the server, its planner
rule, the `Action` kinds it emits with the reporters' group title and apply's stage. Everything
else iterates the registry and names no kind:

- `read_live` (compiler/reconcile/live.py) runs every kind's reads in the order of their places
  (`Read.at`), an optional kind's only when the owner has some (`managed_kinds`);
- `plan` (compiler/reconcile/plan.py) runs the rules in the order of `REGISTRY`, which is the order
  of a plan's actions;
- apply (`stages`) writes stage by stage (`ActionKind.stage`), and looks for a create whose answer
  was lost with the kinds' `find_created`;
- the reporters group actions under `LABELS`; the owner's commit record lists the optional kinds
  it `manages`.

| kind (registry order) | reads at | emits (stage) |
|---|---|---|
| work_pool | 10 | work_pool (0) |
| block | 20: documents (secrets as digests), then the types and schemas none showed | block_type, block_schema (0), block_document (1) |
| flow | 50: the flows of the projects and of the live deployments | flow (2) |
| concurrency_limit (optional) | 80 | concurrency_limit (0) |
| deployment | 40: deployments; 60: owner-less ones, open runs of the pruned | schedule, deployment (3, per project; prunes last) |
| automation (optional) | 70 | automation (4) |
| variable | 30: chapctl's Prefect Variables (claims, commit records, locks) | — |

Stages run one after the other (compiler/reconcile/apply.py): an object is written after every
object it refers to — work pools, block types and schemas, global concurrency limits (0); block
documents, which name their block schema (1); flows (2); deployments with their schedules, which
name their flow, work pool, blocks and limits (3, one chain per project); automations, whose
triggers name deployments (4). Pruned deployments go after everything, in a stage of their own.

`tests/unit_plan/test_kinds.py` checks the registry against the planner's output on the golden
cases and apply's order of dependency, and that a kind registered from outside (a toy) is read,
planned, staged and reported with no other edit.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from compiler.reconcile.actions import DELETE, Action
from compiler.reconcile.kinds import automation, block, concurrency_limit, deployment, flow, variable, work_pool
from compiler.reconcile.kinds.base import ActionKind, Kind, Read

__all__ = ["ActionKind", "Kind", "Read", "REGISTRY", "LABELS", "register", "unregister", "action_kind",
           "action_kinds", "reads", "stage_numbers", "stage_number"]

# The kinds, in the order of a plan's actions.
REGISTRY: list[Kind] = [
    work_pool.KIND,
    block.KIND,
    flow.KIND,
    concurrency_limit.KIND,
    deployment.KIND,
    automation.KIND,
    variable.KIND,
]


def register(kind: Kind) -> Kind:
    """Add a kind (after the others: its actions come last in a plan). Its names must be new."""
    taken = {k.name for k in REGISTRY}
    names = {a.name for k in REGISTRY for a in k.actions}
    if kind.name in taken or names & {a.name for a in kind.actions}:
        raise ValueError(f"kind {kind.name}: a kind or action kind of that name is registered already")
    REGISTRY.append(kind)
    return kind


def unregister(kind: Kind) -> None:
    REGISTRY.remove(kind)


def action_kinds() -> dict[str, ActionKind]:
    """Every registered `Action.kind` by name."""
    return {a.name: a for k in REGISTRY for a in k.actions}


def action_kind(name: str) -> ActionKind:
    kinds = action_kinds()
    if name not in kinds:
        raise KeyError(f"action kind {name!r} is registered by no kind (compiler/reconcile/kinds/)")
    return kinds[name]


def reads() -> list[tuple[Kind, Read]]:
    """Every kind's reads, in the order `read_live` runs them (by place; registry order breaks a tie)."""
    return sorted(((k, r) for k in REGISTRY for r in k.reads), key=lambda kr: kr[1].at)


def stage_numbers() -> list[int]:
    """apply's stages in order: every kind's stage, then the last (the deletes that go last)."""
    return sorted({a.stage for k in REGISTRY for a in k.actions}) + [_last()]


def stage_number(action: Action) -> int:
    """The stage `action` is written in."""
    kind = action_kind(action.kind)
    return _last() if action.op == DELETE and kind.deletes_last else kind.stage


def _last() -> int:
    return max((a.stage for k in REGISTRY for a in k.actions), default=0) + 1


class _Labels(Mapping[str, str]):
    """`Action.kind` -> the title the reporters group its rows under: a view of the registry."""

    def __getitem__(self, name: str) -> str:
        return action_kinds()[name].label

    def __iter__(self) -> Iterator[str]:
        return iter(action_kinds())

    def __len__(self) -> int:
        return len(action_kinds())


LABELS: Mapping[str, str] = _Labels()
