"""Make the server match: `apply()` (the whole protocol) and `execute()` (a plan's writes, in order).

The read half (freshness, desired, live, plan, commit guard) is `compiler.reconcile.prepare`.
The protocol of `apply()`:

1. refuse stale artifacts; read the server in bulk; plan (pure); check the applied-commit guard;
2. nothing to write and nothing to record → done, without taking the lock (a no-op writes nothing);
3. take the owner's apply lock on the server (`compiler.reconcile.lock`), read and plan again under it (what
   another apply changed meanwhile is seen), check the guard again, record the commit being
   applied, execute, release.

Writes are sequential (SQLite serialises them anyway and answers 503 when locked; the client
retries). Each action is one request, or a few requests that are each idempotent, so a run killed
at any point leaves the server in a state from which the next `plan` computes exactly the
remaining work. A create whose answer was lost is looked for on the server before it is sent again
(`PrefectAPI.request`'s `find_created`: an automation sent twice would be two), a create whose retry
answers "already exists", or a delete that answers 404, is checked against the server and counts as
done when the server is in the state it meant to reach.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from compiler.constants import DEFAULT_WORKERS, LOCK_VARIABLE, MANAGED_TAG, STATE_VARIABLE, owner_tag
from compiler.errors import ApplyFailed, ApplyRefused, Conflict, NotFound, UserError
from compiler.jsontree import leaves, map_leaves
from compiler.reconcile import gitinfo, handover
from compiler.reconcile.client import PrefectAPI
from compiler.reconcile.kinds import REGISTRY, action_kind, stage_number, stage_numbers
from compiler.reconcile.kinds.automation import automations_like
from compiler.reconcile.live import manages as managed_after
from compiler.reconcile.ownership import deployment_owner
from compiler.reconcile.actions import (CREATE, DELETE, HANDOVER, NOOP, RUNS, UPDATE, Action, AsRead, Placeholder, Plan,
                                        PlanOptions, ResourceId, SecretFromEnv)
from compiler.reconcile.prepare import Prepared, prepare, recorded_state
from compiler.reconcile.secrets import with_secrets


# -- results --------------------------------------------------------------------------------------
@dataclass
class ApplyResult:
    plan: Plan
    applied: list[Action] = field(default_factory=list)
    failed: Action | None = None  # the action whose write failed (ApplyFailed carries this result)
    error: str | None = None
    notes: list[str] = field(default_factory=list)  # what apply itself says (lock waits, guard off)
    recovered: list[str] = field(default_factory=list)  # retries that met our own earlier write
    bookkeeping: int = 0  # requests of the apply lock and the applied-commit record

    def counts(self) -> dict[str, int]:
        names = {CREATE: "created", UPDATE: "updated", DELETE: "deleted"}
        c = {"created": 0, "updated": 0, "deleted": 0, "fingerprints": 0}
        for a in self.applied:
            c["fingerprints" if a.quiet else names[a.op]] += 1
        c["unchanged"] = sum(1 for a in self.plan.actions if a.op == NOOP)
        return c

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "ok": self.failed is None and self.error is None,
            "counts": self.counts(),
            "applied": [a.to_json() for a in self.applied],
            "notes": list(self.plan.notes) + list(self.notes),
        }
        if self.recovered:
            doc["recovered"] = list(self.recovered)
        doc["lock_and_record_requests"] = self.bookkeeping
        if self.failed is not None or self.error is not None:
            doc["failed"] = {**(self.failed.to_json() if self.failed else {}), "error": self.error}
            doc["not_applied"] = [a.to_json() for a in self.plan.actions
                                  if a.writes and a is not self.failed and a not in self.applied]
        return doc


@dataclass(frozen=True)
class ApplyOptions:
    plan: PlanOptions = PlanOptions()
    lock_timeout: float = 300.0
    ignore_applied_commit: bool = False
    workers: int = DEFAULT_WORKERS  # writes at once, at most (independent chains only; 1 = one at a time)


def apply(root: Path, api: PrefectAPI, *, env: Mapping[str, str] | None = None,
          options: ApplyOptions | None = None, progress: Callable[[Action], None] | None = None,
          on_wait: Callable[[str], None] | None = None, fresh_check: bool = True,
          on_plan: Callable[[Plan], None] | None = None, environment: str | None = None,
          saved: tuple[Any, str] | None = None) -> tuple[Prepared, ApplyResult]:
    """The whole apply protocol (module docstring), for `environment` (--env; None: the projects as
    declared). Raises ApplyRefused before any write, or ApplyFailed (carrying the partial
    ApplyResult) when a write fails. `saved`: a saved plan (`reconcile.saved.SavedPlan`) and its
    path: apply refuses unless the server, the files and the plan made now still match it, checked
    after each read of the server (before the lock and under it); its options are the plan's.

    The lock and the commit record go through their own clients (`api.sibling()`), so `api.stats`
    counts the reads and the writes of the plan alone; `result.bookkeeping` counts the others."""
    from compiler.reconcile.lock import ApplyLock

    env = with_secrets(env)
    options = options or ApplyOptions()
    if saved is not None:
        options = replace(options, plan=saved[0].options)
    checkout = gitinfo.checkout(root)
    prepared = prepare(root, api, env=env, options=options.plan, fresh_check=fresh_check, checkout=checkout,
                       environment=environment)
    _refuse(prepared, options)
    _check_saved(saved, prepared, api)
    _check_env(prepared.plan, env, api)
    owner = prepared.desired.owner
    if not prepared.plan.has_changes and not _needs_record(prepared) \
            and LOCK_VARIABLE.format(owner=owner) not in prepared.live.variables:  # else: one running, or dead
        return prepared, _result(prepared, saved)
    books = api.sibling()
    lock = ApplyLock(books, prepared.desired.owner, commit=checkout.commit, timeout=options.lock_timeout,
                     on_wait=on_wait, renew_api=api.sibling)
    result: ApplyResult | None = None
    try:
        lock.acquire()
        prepared = prepare(root, api, env=env, options=options.plan, fresh_check=False,
                           desired=prepared.desired, checkout=checkout)
        _refuse(prepared, options)
        _check_saved(saved, prepared, api)  # again, under the lock: what another apply did meanwhile is seen
        _check_env(prepared.plan, env, api)
        result = _result(prepared, saved)
        if lock.waited >= 1:
            result.notes.append(f"waited {lock.waited:.0f}s for another apply of owner "
                                f"{prepared.desired.owner!r}; planned again after it")
        if lock.broke:
            result.notes.append(f"took over an expired apply lock ({lock.broke})")
        if _needs_record(prepared):
            lock.check()
            _record_commit(books, prepared)
        if on_plan is not None:
            on_plan(prepared.plan)  # the plan it will carry out (e.g. to size a progress bar)
        try:
            execute(prepared.plan, api, env=env, progress=progress, result=result, before_write=lock.check,
                    workers=options.workers)
        except ApplyFailed as exc:
            exc.prepared = prepared
            raise
        if lock.broke_since:
            lock.check()
            mine = [d for d in prepared.live.deployments if deployment_owner(d) == owner]
            restored = handover.restore_since(api, mine, lock.broke_since)
            if restored:
                result.notes.append(f"the apply that held the lock died before it finished: the scheduled runs "
                                    f"since {lock.broke_since} were put back ({', '.join(restored)})")
        return prepared, result
    finally:
        unreleased = lock.release()
        if unreleased and result is not None:
            result.notes.append(unreleased)
        books.close()
        if result is not None:
            result.bookkeeping = books.stats.requests


def _result(prepared: Prepared, saved: tuple[Any, str] | None = None) -> ApplyResult:
    result = ApplyResult(prepared.plan)
    if prepared.guard.note:
        result.notes.append(prepared.guard.note)
    if saved is not None:
        from compiler.reconcile import saved as saved_plans

        head = prepared.guard.head
        note = saved_plans.moved_commit(saved[0], head, gitinfo.tree(prepared.root) if head else None)
        if note:
            result.notes.append(note)
    return result


def _check_saved(saved: tuple[Any, str] | None, prepared: Prepared, api: PrefectAPI) -> None:
    """A saved plan is applied only while it still holds (compiler/reconcile/saved.py)."""
    if saved is None:
        return
    from compiler.reconcile import saved as saved_plans

    refused = saved_plans.check(saved[0], saved[1], prepared, api.settings.url)
    if refused is not None:
        raise ApplyRefused(refused)


def _needs_record(prepared: Prepared) -> bool:
    state = recorded_state(prepared.live, prepared.desired.owner)
    unrecorded = set(prepared.plan.left_alone) - set(state.get("hand_made_schedules") or [])
    environment = prepared.desired.environment.name if prepared.desired.environment is not None else None
    moved = bool(state) and state.get("environment", environment) != environment  # taken over on purpose
    return prepared.guard.needs_record or (not state and prepared.plan.has_changes) or bool(unrecorded) or moved


def _refuse(prepared: Prepared, options: ApplyOptions) -> None:
    refusals = prepared.plan.blockers + prepared.plan.missing_env
    if prepared.guard.refusal and not options.ignore_applied_commit:
        refusals = [prepared.guard.refusal] + refusals
    if refusals:
        more = f" (and {len(refusals) - 1} more; see `chapctl plan`)" if len(refusals) > 1 else ""
        raise ApplyRefused(refusals[0] + more + "; nothing was written")


def _record_commit(api: PrefectAPI, prepared: Prepared) -> None:
    """Record, before the first write, the commit this apply makes the server run (the guard of
    the next apply compares with it). Outside git the recorded commit is kept as it was."""
    from compiler.reconcile.lock import holder_description

    owner = prepared.desired.owner
    name = STATE_VARIABLE.format(owner=owner)
    previous = recorded_state(prepared.live, owner)
    value = {"owner": owner, "commit": prepared.guard.head or previous.get("commit"),
             "applied_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
             "by": holder_description(),
             # the environment applied (None: as declared): an apply for another one as this owner is refused
             "environment": prepared.desired.environment.name if prepared.desired.environment is not None else None}
    # The optional kinds this owner has after this apply (or still has, until one converges): the
    # next plan reads them even when the projects no longer declare any, to prune them.
    manages = managed_after(prepared.desired, prepared.live)
    if manages:
        value["manages"] = manages
    if prepared.plan.left_alone:  # hand-made schedules of adopted deployments: later plans leave them alone
        value["hand_made_schedules"] = list(prepared.plan.left_alone)
    existing = prepared.live.variables.get(name)
    if existing is not None:
        try:
            api.patch(f"/variables/{existing['id']}", {"value": value})
            return
        except NotFound:
            pass  # deleted meanwhile: create it again
    try:
        api.post("/variables/", {"name": name, "value": value, "tags": [MANAGED_TAG, owner_tag(owner)]})
    except Conflict:
        current = api.get(f"/variables/name/{name}")
        api.patch(f"/variables/{current['id']}", {"value": value})


# -- execution ------------------------------------------------------------------------------------
# Stages run one after the other, in the plan's order of dependency (an object is created before
# anything that refers to it). Inside a stage the chains are independent — one per project (its
# schedules, then its deployment: in that order, so a kill in between leaves the old fingerprint
# and the next run finishes the work), one per pruned deployment — and run at once, up to
# `workers`. Block documents stay one chain: Prefect 3.9.1 on PostgreSQL answers 409 "data
# integrity conflict" to block documents created at the same moment. On a server that answers
# 503 "database is locked" (SQLite: one writer at a time) the rest goes one write at a time.
# The stages and the kinds in each come from the registry (compiler/reconcile/kinds/).
# Requests that are steps of apply's own (compiler/reconcile/handover.py), by their method.
_OWN_STEPS = {HANDOVER: handover.finish, RUNS: handover.restore_runs}


def stages(p: Plan) -> list[list[list[Action]]]:
    """The plan's writes as stages of independent chains of actions (see above)."""
    writes = [(stage_number(a), action_kind(a.kind), a) for a in p.actions if a.writes]
    out: list[list[list[Action]]] = []
    for number in stage_numbers():
        chains: dict[Any, list[Action]] = {}
        for stage, kind, a in writes:
            if stage == number:
                if a.op == DELETE and kind.deletes_last:
                    key: Any = id(a)  # each on its own
                else:
                    key = a.project if kind.per_project and a.project else "in order"
                chains.setdefault(key, []).append(a)
        out.append(list(chains.values()))
    return [stage for stage in out if stage]


def execute(p: Plan, api: PrefectAPI, *, env: Mapping[str, str] | None = None,
            progress: Callable[[Action], None] | None = None, result: ApplyResult | None = None,
            before_write: Callable[[], None] | None = None, workers: int = DEFAULT_WORKERS) -> ApplyResult:
    """Send the plan's writes, stage by stage; raise ApplyFailed carrying `result` when one fails
    (after the chains already running have finished: everything written is in `result.applied`)."""
    import threading

    env = with_secrets(env)
    result = result or ApplyResult(p)
    ids: dict[Placeholder, str] = {}
    done = threading.Lock()
    failures: list[tuple[Action, UserError]] = []

    def run(chain: list[Action]) -> None:
        for action in chain:
            if failures:
                return  # another chain failed: start nothing new
            try:
                if before_write is not None:
                    before_write()
                for req in action.requests:
                    path, body = _resolve_path(req.path, ids), _resolve(req.body, ids, env)
                    own_step = _OWN_STEPS.get(req.method)
                    if own_step is not None:  # a step of apply's own (reads and writes), not one request
                        own_step(api, path, body)
                        continue
                    response = _send(api, action, req.method, path, body, result)
                    if action.provides and isinstance(response, dict) and "id" in response:  # the object it made
                        ids[action.provides] = response["id"]
            except UserError as exc:
                with done:
                    failures.append((action, exc))
                return
            with done:
                result.applied.append(action)
                if progress is not None:
                    progress(action)

    for stage in stages(p):
        parallel = workers > 1 and len(stage) > 1 and not api.busy
        api.concurrently(*[lambda chain=chain: run(chain) for chain in stage], workers=workers if parallel else 1)
        if failures:
            action, exc = failures[0]
            result.failed, result.error = action, str(exc)
            raise ApplyFailed(
                f"{action.op} {action.kind.replace('_', ' ')} {action.name} failed after {len(result.applied)} "
                f"change(s) were applied: {exc}. Re-run `chapctl apply`: it continues from what the server holds "
                "now", result
            ) from None
    return result


def _send(api: PrefectAPI, action: Action, method: str, path: str, body: Any, result: ApplyResult) -> Any:
    """One request; a create whose answer was lost (found on the server before it is sent again,
    or met by a retry as "already exists"), or a delete of what is already gone, counts as done once
    the server shows the state we meant to reach."""
    find = (lambda: _already_there(api, path, body)) if method == "POST" else None
    try:
        answer = api.request(method, path, json=body, find_created=find)
    except NotFound:
        if method == "DELETE" or path.endswith("/set_state"):
            result.recovered.append(f"{method} {path}: already gone")
            return None
        raise NotFound(f"{action.kind.replace('_', ' ')} {action.name} was deleted on the server while apply "
                       f"ran ({method} {path} answered 404)", path) from None
    except Conflict:
        found = _already_there(api, path, body) if method == "POST" else None
        if found is None:
            raise
        result.recovered.append(f"{method} {path}: already created (409), matches the plan")
        return found
    if api.last_found:
        result.recovered.append(f"{method} {path}: already created (its answer was lost), matches the plan")
    elif api.last_resent and path == "/automations/" and method == "POST" and isinstance(answer, dict):
        for row in automations_like(api, body):  # the first send committed late, after apply looked
            if row["id"] != answer.get("id"):
                api.delete(f"/automations/{row['id']}")
                result.recovered.append(f"{method} {path}: its first send was committed after apply looked for "
                                        f"it; that copy ({row['id']}) deleted")
    return answer


def _already_there(api: PrefectAPI, path: str, body: Any) -> Any:
    """The object a create meant to make, when the server holds it as the create meant it; else None
    (each kind knows its own creates: `Kind.find_created`)."""
    if not isinstance(body, (dict, list)):
        return None
    try:
        for kind in REGISTRY:
            found = kind.find_created(api, path, body) if kind.find_created is not None else None
            if found is not None:
                return found
    except (NotFound, KeyError, TypeError):
        return None
    return None


def _check_env(p: Plan, env: Mapping[str, str], api: PrefectAPI) -> None:
    """Every secret the plan will send must be set now — checked before the first write."""
    missing = set()
    for action in p.actions:
        if action.writes:
            for req in action.requests:
                for leaf in leaves(req.body):
                    if isinstance(leaf, SecretFromEnv):
                        if not env.get(leaf.var):
                            missing.add(leaf.var)
                        else:
                            api.register_secret(env[leaf.var])
    if missing:
        raise ApplyRefused(f"environment variable(s) {', '.join(sorted(missing))} not set; nothing was written")


def _resolve_path(path: str | tuple[Any, ...], ids: Mapping[Placeholder, str]) -> str:
    if isinstance(path, str):
        return path
    for part in path:
        if isinstance(part, Placeholder) and part not in ids:
            raise RuntimeError(f"plan order bug: {part} used before it was created")
    return "".join(part if isinstance(part, str) else ids[part] for part in path)


def _resolve(value: Any, ids: Mapping[Placeholder, str], env: Mapping[str, str]) -> Any:
    """Replace placeholder objects; strings, however they look, are sent exactly as compiled."""

    def leaf(v: Any) -> Any:
        if isinstance(v, SecretFromEnv):
            return env[v.var]
        if isinstance(v, AsRead):
            return v.value
        if isinstance(v, Placeholder):
            if v not in ids:
                raise RuntimeError(f"plan order bug: {v} used before it was created")
            return ids[v]
        if isinstance(v, ResourceId):
            if v.placeholder not in ids:
                raise RuntimeError(f"plan order bug: {v.placeholder} used before it was created")
            return v.prefix + ids[v.placeholder]
        return v

    return map_leaves(value, leaf)
