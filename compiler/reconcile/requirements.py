"""What apply will need from its environment, judged where plan runs: no green pull request before
a red apply (issue 25 #6).

A plan made without the secrets (a pull request's check is given none) lists the variables apply
will read to create blocks (`Plan.missing_env`). `require(plan, desired, env)` turns each into a
blocker — plan exits 1, as apply would — unless apply's environment is known to have it
(CHAPCTL_SECRET_NAMES lists the names of the secrets, never their values) or the repository allows
it (`ci.allow_unset` in projects/_defaults.yaml: plan keeps a warning). The variables of the pull
steps (`source.directory_env`) are blockers already (`reconcile.plan`). Pure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from compiler.reconcile.actions import Plan
from compiler.reconcile.desired import Desired
from compiler.reconcile.secrets import NAMES_VARIABLE, declared_names

# How reconcile.plan words an entry of `missing_env` (tests/unit_plan/test_requirements.py holds them equal).
_NEEDS = re.compile(r"^apply will need ([A-Za-z_][A-Za-z0-9_]*):")


def needed_variable(entry: str) -> str | None:
    match = _NEEDS.match(entry)
    return match.group(1) if match else None


def require(plan: Plan, desired: Desired, env: Mapping[str, str]) -> None:
    """Move what apply would refuse for from `plan.missing_env` to `plan.blockers` (in place)."""
    declared = declared_names(env)
    allowed = set(desired.allow_unset)
    kept: list[str] = []
    for entry in plan.missing_env:
        name = needed_variable(entry)
        if name is not None and name in declared:
            continue  # apply's environment has it: nothing to warn about
        if name is not None and name in allowed:
            kept.append(f"{entry}; allowed unset by `ci.allow_unset` in projects/_defaults.yaml")
            continue
        plan.blockers.append(
            f"{entry}; it is not set here nor named in {NAMES_VARIABLE}, so apply would refuse. Create it "
            "(in CI: a repository secret of that name) before merging, or list it in `ci.allow_unset` of "
            "projects/_defaults.yaml")
    plan.missing_env = kept
