"""The entry points of `chapctl plan` and `chapctl apply`: each returns one result that carries
its exit code (`PlanResult`, `ApplyOutcome`), built around `prepare()` and `apply()`; apply also
reports events while it runs (`Applied` after each write, `Waiting` for the lock). Their reporters
are in compiler/output/plan.py."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from compiler.constants import EXIT_CHANGES, EXIT_ERROR, EXIT_OK
from compiler.errors import ApplyFailed
from compiler.reconcile.actions import Action, Plan, PlanOptions
from compiler.reconcile.apply import ApplyOptions, ApplyResult, apply
from compiler.reconcile.client import PrefectAPI
from compiler.reconcile.prepare import CommitGuard, Prepared, prepare
from compiler.reconcile.previews import Previews, schedule_previews
from compiler.reconcile.saved import SavedFile


@dataclass(frozen=True)
class Header:
    url: str  # never carries a user:password (ApiSettings strips it)
    server_version: str
    projects: int
    requests: int = 0
    writes: int = 0
    owner: str = ""
    environment: str | None = None  # --env (None: the projects as declared)

    def title(self) -> str:
        where = f" — environment {self.environment!r}" if self.environment else ""
        owner = f" — owner {self.owner!r}" if self.owner else ""
        return f"Prefect {self.server_version} at {self.url}{where}{owner} — {self.projects} project(s)"


def header(api: PrefectAPI, prepared: Prepared) -> Header:
    """Which server, which release, which environment, how many projects, and what it cost."""
    spec = prepared.desired.environment
    return Header(api.settings.url, prepared.live.server_version, len(prepared.desired.deployments),
                  api.stats.requests, api.stats.writes, prepared.desired.owner, spec.name if spec else None)


@dataclass(frozen=True)
class PlanResult:
    """`chapctl plan`: the plan, the server it was made against, the next runs of the schedules
    it creates or changes (None when there are none), the applied-commit guard, and the compile
    warnings (only when asked for: the pull-request comment lists them)."""

    plan: Plan
    header: Header
    previews: Previews | None = None
    guard: CommitGuard | None = None
    warnings: tuple[str, ...] | None = None
    detailed_exitcode: bool = False  # exit 2 when there are changes
    verbose: bool = False  # the text lists unchanged objects too
    saved: SavedFile | None = None  # --out: where the plan was saved, and the file's digest

    @property
    def exit_code(self) -> int:
        if self.plan.blockers:
            return EXIT_ERROR
        return EXIT_CHANGES if self.detailed_exitcode and self.plan.has_changes else EXIT_OK


def run_plan(root: Path, api: PrefectAPI, options: PlanOptions | None = None, *, detailed_exitcode: bool = False,
             verbose: bool = False, load_warnings: bool = False, environment: str | None = None,
             out: Path | None = None) -> PlanResult:
    """Read the server and plan for `environment` (--env; None: as declared); writes nothing to the
    server. `load_warnings`: also run the compile checks for their warnings (load hot-spots).
    `out`: save the plan there (compiler/reconcile/saved.py) for `chapctl apply FILE`."""
    options = options or PlanOptions()
    # the PR check: no green plan before a red apply
    prepared = prepare(root, api, options=options, require_env=True, environment=environment)
    saved_file = None
    if out is not None:
        from compiler.installed import version
        from compiler.reconcile import saved

        saved_file = saved.write(out, saved.made_from(prepared, api.settings.url, options, version("chapctl")))
    head = header(api, prepared)
    # Next runs of every schedule the plan creates or changes, from Prefect's own schedule code;
    # None (and prefect never imported) when no schedule is created or changed.
    previews = schedule_previews(prepared.plan, server_version=prepared.live.server_version)
    warnings = None
    if load_warnings:
        from compiler.compile.build import check_repo  # the compile pipeline: only for the pull-request comment

        warnings = tuple(d.message for d in check_repo(prepared.root).warnings)
    return PlanResult(prepared.plan, head, previews, prepared.guard, warnings, detailed_exitcode, verbose, saved_file)


@dataclass(frozen=True)
class Applied:
    """An event of apply: `action` was just written."""

    action: Action


@dataclass(frozen=True)
class Waiting:
    """An event of apply: it waits for another apply's lock (`message` says whose, how long)."""

    message: str


@dataclass(frozen=True)
class ApplyOutcome:
    """`chapctl apply`: what it did (`result`: also when a write failed half-way, then `failure`
    is the error), on which server."""

    result: ApplyResult
    header: Header
    failure: str | None = None
    saved: SavedFile | None = None  # the saved plan applied (`chapctl apply FILE`)

    @property
    def exit_code(self) -> int:
        return EXIT_ERROR if self.failure is not None else EXIT_OK


def run_apply(root: Path, api: PrefectAPI, options: ApplyOptions | None = None, *,
              events: Callable[[Applied | Waiting], None] | None = None,
              on_plan: Callable[[Plan], None] | None = None, environment: str | None = None,
              plan_file: Path | None = None) -> ApplyOutcome:
    """Apply (compiler.reconcile.apply) for `environment` (--env); `events` hears of each write and
    of each wait for the lock, `on_plan` of the plan it will carry out (e.g. to size a progress bar).
    `plan_file`: a plan saved by `plan --out`, applied only while it still holds (its options are
    the plan's). A refusal raises ApplyRefused before any write; a failed write is the outcome's
    `failure`."""
    saved_plan, saved_file = None, None
    if plan_file is not None:
        from compiler.reconcile import saved

        saved_plan, saved_file = saved.load(plan_file)

    def progress(action: Action) -> None:
        if events is not None:
            events(Applied(action))

    def waiting(message: str) -> None:
        if events is not None:
            events(Waiting(message))

    try:
        prepared, result = apply(root, api, options=options, progress=progress, on_wait=waiting, on_plan=on_plan,
                                 environment=environment,
                                 saved=(saved_plan, str(plan_file)) if saved_plan is not None else None)
        failure = None
    except ApplyFailed as exc:
        prepared, result, failure = exc.prepared, exc.result, str(exc)
    return ApplyOutcome(result, header(api, prepared), failure, saved_file)
