"""`plan(desired, live)`: the pure diff. An ordered list of actions, each with the exact request
apply will send, field-level before -> after, a reason, and whether it reverts drift.

The rules are the kinds' (compiler/reconcile/kinds/): `plan` runs each registered kind's rule in
the registry's order — work pools, block types and schemas, block documents, flows, global
concurrency limits, deployments with their schedules (then prunes), automations — over one shared
`Context` (compiler/reconcile/context.py), and adds what belongs to no kind (the pull steps'
environment). Each kind module says what its rule does.

Objects created in the same run are referred to by `Placeholder` values that apply replaces with
the ids it learns; `SecretFromEnv` stands for a secret read from the environment at write time.
Both are Python objects, never strings: no text in a project file can turn into a placeholder,
so project values reach the server exactly as compiled. Secrets never appear here: only
"changed", "unchanged" or "not checked".
"""

from __future__ import annotations

from compiler.reconcile.actions import Plan, PlanOptions
from compiler.reconcile.context import Context, Live
from compiler.reconcile.desired import Desired
from compiler.reconcile.kinds import REGISTRY


def plan(desired: Desired, live: Live, options: PlanOptions | None = None, **flags: bool) -> Plan:
    """The pure diff. `options` (or the same flags as keywords: adopt=…, allow_delete_all=…)."""
    options = options or PlanOptions(**flags)
    p = Plan()
    ctx = Context(desired, live, options)
    for var in desired.unset_pull_env:  # no secret: a pull request's check has it exactly when apply will
        p.blockers.append(
            f"{var} is not set: prefect.yaml's pull steps read it (`source.directory_env` in projects/_defaults.yaml), "
            "and apply refuses without it. Set it wherever plan and apply run (make sets it to this checkout); "
            "in CI, where workers cannot see the runner's directory, declare `source: {package: chapctl}` (workers "
            "run the installed chapctl's flow) or `source: {git: {repository: <a clone URL>, branch: main}}` in "
            "projects/_defaults.yaml instead")
    for kind in REGISTRY:
        if kind.rule is not None:
            p.actions += kind.rule(ctx, p)
    return p
