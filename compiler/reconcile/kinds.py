"""The kinds of Prefect object a plan covers, registered once: the name its `Action`s carry, the
title the reporters group it under, and the stage apply writes it in. apply (`stages`) and the
reporters (`report.GROUPS`) iterate this registry; `tests/unit_plan/test_kinds.py` checks it
against the planner's output and apply's order of dependency.

Stages run one after the other (compiler/reconcile/apply.py): an object is written after every
object it refers to — work pools, block types and schemas, global concurrency limits (0); block
documents, which name their block schema (1); flows (2); deployments with their schedules, which
name their flow, work pool, blocks and limits (3, one chain per project); automations, whose
triggers name deployments (4). Pruned deployments go after everything, in a stage of their own.

Pure data: nothing here imports the planner, live or apply.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Kind:
    name: str  # `Action.kind`
    label: str  # the reporters' group title
    stage: int  # apply's stage (lower first)
    per_project: bool = False  # apply chains its writes per project (schedules, then the deployment)


KINDS: tuple[Kind, ...] = (
    Kind("work_pool", "Work pools", 0),
    Kind("block_type", "Block type", 0),
    Kind("block_schema", "Block type", 0),
    Kind("concurrency_limit", "Concurrency limits (per DHIS2 instance)", 0),
    Kind("block_document", "Block documents", 1),
    Kind("flow", "Flows", 2),
    Kind("deployment", "Deployments", 3, per_project=True),
    Kind("schedule", "Deployments", 3, per_project=True),
    Kind("automation", "Alerts (Prefect automations)", 4),
)
BY_NAME = {k.name: k for k in KINDS}


def stage_kinds() -> list[tuple[str, ...]]:
    """The kinds of each stage, stages in apply's order."""
    return [tuple(k.name for k in KINDS if k.stage == stage) for stage in sorted({k.stage for k in KINDS})]
