"""The read half shared by `plan` and `apply`: freshness, desired state, live state, the pure diff,
and the applied-commit guard. `prepare()` is its one entry point and returns a `Prepared`.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compiler.constants import STATE_VARIABLE
from compiler.errors import UserError
from compiler.reconcile import gitinfo
from compiler.reconcile.client import PrefectAPI
from compiler.reconcile.desired import Desired, load_desired
from compiler.reconcile.freshness import ensure_fresh
from compiler.reconcile.live import Live, read_live
from compiler.reconcile.actions import Plan, PlanOptions
from compiler.reconcile.plan import plan
from compiler.reconcile.requirements import require
from compiler.reconcile.secrets import with_secrets


@dataclass(frozen=True)
class CommitGuard:
    """Whether this checkout may apply: it must contain the commit this owner last applied."""

    head: str | None  # this checkout's HEAD; None outside git
    recorded: str | None  # the commit the server says this owner last applied
    refusal: str | None = None  # why apply refuses (None: it may go ahead)
    note: str | None = None  # e.g. the guard is off outside git

    @property
    def needs_record(self) -> bool:
        return self.head is not None and self.head != self.recorded


@dataclass
class Prepared:
    root: Path
    desired: Desired
    live: Live
    plan: Plan
    guard: CommitGuard


def prepare(root: Path, api: PrefectAPI, *, env: Mapping[str, str] | None = None,
            options: PlanOptions | None = None, adopt: bool = False, fresh_check: bool = True,
            desired: Desired | None = None, checkout: gitinfo.Checkout | None = None,
            require_env: bool = False, environment: str | None = None) -> Prepared:
    """Desired state (with `environment` laid over it: --env), live state, freshness check, pure
    diff, applied-commit guard. `require_env` (plan): a variable apply will need and nobody said it
    has is a blocker (`reconcile.requirements`).

    The server is read while this process checks the artifacts' freshness and asks git for the
    checkout: the reads are the only part bound by someone else's CPU, so they start first. Reads
    have no effect on the server; stale artifacts still stop everything before any write (and a
    broken artifact is reported by the freshness check, which says how to fix it)."""
    env = with_secrets(env)
    options = options or PlanOptions(adopt=adopt)
    if desired is None:
        try:
            desired = load_desired(root, env, environment=environment)
        except UserError:
            if fresh_check:
                ensure_fresh(root)  # the clearer error: which artifact is stale and why
            raise
    reading = _in_background(read_live, api, desired, dict(env))
    try:
        if fresh_check:
            ensure_fresh(root)
        checkout = checkout if checkout is not None else gitinfo.checkout(root)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: now, not after the reads (nothing they do needs undoing)
        raise
    except BaseException:
        _ = reading.exception()  # let the reads finish; this error is the one to report
        raise
    live = reading.result()  # an interruption while waiting here leaves at once too
    planned = plan(desired, live, options)
    if require_env:
        require(planned, desired, env)
    environment = desired.environment.name if desired.environment is not None else None
    return Prepared(root, desired, live, planned, commit_guard(root, desired.owner, live, checkout, environment))


def _in_background(function, *args) -> Future:
    """`function(*args)` in a daemon thread: its Future. A daemon, so that an interrupted verb
    (Ctrl-C, SIGTERM) exits without waiting for reads stuck on a hung server."""
    future: Future = Future()

    def run() -> None:
        if future.set_running_or_notify_cancel():
            try:
                future.set_result(function(*args))
            except BaseException as exc:  # noqa: BLE001 (handed to the waiting thread)
                future.set_exception(exc)

    threading.Thread(target=run, name="chapctl-read", daemon=True).start()
    return future


def recorded_state(live: Live, owner: str) -> dict[str, Any]:
    var = live.variables.get(STATE_VARIABLE.format(owner=owner))
    value = var.get("value") if var else None
    return value if isinstance(value, dict) else {}


def environment_refusal(state: dict[str, Any], owner: str, environment: str | None) -> str | None:
    """Why this apply may not write as `owner` here: the owner's last apply on this server was for
    another environment (two environments without their own owner_suffix, pointed at one server by
    their variables). Records made before environments existed say nothing."""
    if "environment" not in state or state.get("environment") == environment:
        return None

    def name(e: Any) -> str:
        return f"environment {e!r}" if e else "no environment (the projects as declared)"

    return (f"owner {owner!r} was last applied to this server for {name(state.get('environment'))}; this apply is for "
            f"{name(environment)}: it would take over that environment's objects. Check the server the environment's "
            "variables name, give each environment its own `owner_suffix`, or, to move this server on purpose, re-run "
            "with --ignore-applied-commit")


def commit_guard(root: Path, owner: str, live: Live, checkout: gitinfo.Checkout,
                 environment: str | None = None) -> CommitGuard:
    state = recorded_state(live, owner)
    recorded = state.get("commit") if isinstance(state.get("commit"), str) else None
    head = checkout.commit
    other = environment_refusal(state, owner, environment)
    if other is not None:
        return CommitGuard(head, recorded, refusal=other)
    if head is None:
        last = f"; the server last applied commit {recorded[:12]} for owner {owner!r}" if recorded else ""
        return CommitGuard(None, recorded, note=f"{root} is {checkout.reason}: the applied-commit guard is off{last}")
    if recorded is None or recorded == head:
        return CommitGuard(head, recorded)
    contained = gitinfo.contains(root, recorded)
    if contained:
        return CommitGuard(head, recorded)
    when = f" ({state.get('applied_at')}, by {state.get('by')})" if state.get("applied_at") else ""
    if contained is False:
        refusal = (f"this checkout (HEAD {head[:12]}) does not contain commit {recorded[:12]}, which owner {owner!r} "
                   f"last applied{when}: applying it would undo that. Update the checkout (git pull) and re-run; "
                   "to roll back on purpose, re-run with --ignore-applied-commit")
    elif checkout.shallow:
        refusal = (f"commit {recorded[:12]}, which owner {owner!r} last applied{when}, is not in this shallow "
                   f"checkout (HEAD {head[:12]}); fetch the history (`git fetch --unshallow`, or `fetch-depth: 0` "
                   "for actions/checkout) and re-run")
    else:
        refusal = (f"commit {recorded[:12]}, which owner {owner!r} last applied{when}, is unknown to this checkout "
                   f"(HEAD {head[:12]}): history was rewritten (a force-push?), it was applied from a branch not "
                   "fetched here, or this is another repository. Fetch it, or if this checkout is what the server "
                   "should run, re-run with --ignore-applied-commit")
    return CommitGuard(head, recorded, refusal=refusal)
