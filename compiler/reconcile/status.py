"""`chapctl status`: one row per project — is the server in sync with the files, and did the
project run when it should have. `project_status(root, api, options)` is the one entry point; it
returns a `StatusReport` that compiler/output/status.py renders as text, JSON or Markdown.

Sync comes from the planner (`prepare`: desired + live + plan), per project:
  in_sync      no action of that project's objects would write
  changed      the files differ from the server (apply would update or adopt it)
  drift        the server was edited since the last apply (the plan's drift marks)
  not_applied  no deployment of that name on the server
  conflict     a deployment of that name belongs to another owner or to no chapctl (apply refuses)
Secrets and pull-step resolution are left out: status needs neither a DHIS2 password nor the
worker's directory, so the same command gives the same answer on a laptop and in a cron job.

Runs come from bulk flow-run filters over the owned deployments, never one request per project:
  recent     runs that are not SCHEDULED, expected within the lookback window (default 35 days),
             newest first: one page (200). Only when that page is full are the projects whose
             last run or whose last COMPLETED run it did not reach read again, by id, in pages.
  scheduled  every SCHEDULED-type run (Scheduled, Late, AwaitingRetry, AwaitingConcurrencySlot),
             in pages: Prefect's scheduler keeps about 3 future runs per active schedule.
Health per project, from those runs:
  failing    the newest finished run is FAILED or CRASHED (failures_in_a_row counts them back to
             the last COMPLETED; CANCELLED runs are skipped)
  late       a SCHEDULED-type run (Prefect's late-runs service renames it "Late") is more than the
             grace period past its start time and has not started; or an active schedule fired
             more than the grace period ago, after it was last applied, and no run exists for it
             (Prefect's scheduler did not create one)
  never_run  no run in the lookback window (and nothing overdue)
  healthy    otherwise
  unknown    the deployment is not this owner's (conflict): its runs are not read
Exit codes (`StatusReport.exit_code`): 0 all well, 3 any project failing or late, 4 (only with
`require_sync`) any project not in sync while none is failing or late.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compiler.constants import DEFAULT_TIMEZONE, EXIT_OK, EXIT_OUT_OF_SYNC, EXIT_UNHEALTHY, LOCK_VARIABLE
from compiler.errors import HandEdited, StaleArtifacts, UserError, ValidationFailed
from compiler.reconcile.client import PrefectAPI
from compiler.reconcile.ownership import LEGACY, deployment_owner
from compiler.timefmt import iso_utc as iso
from compiler.timefmt import span, utc_minute

UTC = dt.timezone.utc
DEFAULT_GRACE = dt.timedelta(minutes=15)
DEFAULT_LOOKBACK = dt.timedelta(days=35)  # longer than a month: monthly schedules keep a last run
SYNC_STATES = ("in_sync", "changed", "drift", "not_applied", "conflict")
HEALTH_STATES = ("healthy", "failing", "late", "never_run", "unknown")
FAILED_TYPES = frozenset({"FAILED", "CRASHED"})
FINISHED_TYPES = frozenset({"COMPLETED", "FAILED", "CRASHED", "CANCELLED"})
# A run expected this close before a schedule's fire time is taken as that fire's run.
_COVER_SLACK = dt.timedelta(minutes=1)
CLOUD_API, CLOUD_UI = "https://api.prefect.cloud/api", "https://app.prefect.cloud"


@dataclass(frozen=True)
class StatusOptions:
    grace: dt.timedelta = DEFAULT_GRACE  # how long past its start time a run may wait before it is late
    lookback: dt.timedelta = DEFAULT_LOOKBACK  # how far back runs are read
    require_sync: bool = False  # a project not in sync makes the exit code 4
    projects: tuple[str, ...] = ()  # only these projects (default: all)
    now: dt.datetime | None = None  # the reference time (tests); default: now
    ui_url: str | None = None  # the Prefect UI for run links; default PREFECT_UI_URL, else the API URL less /api
    environment: str | None = None  # --env: the environment laid over the projects (None: as declared)
    preflight: bool = False  # also `chapctl preflight`'s verdict per project, checked live (DHIS2 reads only)


# -- value objects --------------------------------------------------------------------------------
def parse_time(value: Any) -> dt.datetime | None:
    if not value:
        return None
    try:
        t = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


@dataclass(frozen=True)
class Run:
    id: str
    name: str
    state_type: str  # COMPLETED, FAILED, SCHEDULED, …
    state_name: str  # Completed, Failed, Late, AwaitingRetry, …
    expected_start: dt.datetime | None
    scheduled: dt.datetime | None  # when a SCHEDULED-type run is due (next_scheduled_start_time)
    start: dt.datetime | None
    end: dt.datetime | None
    url: str

    @classmethod
    def from_api(cls, row: Mapping[str, Any], ui: str) -> Run:
        state = row.get("state") or {}
        details = state.get("state_details") or {}
        state_type = str(row.get("state_type") or state.get("type") or "")
        expected = parse_time(row.get("expected_start_time"))
        return cls(
            id=str(row["id"]),
            name=str(row.get("name") or ""),
            state_type=state_type,
            state_name=str(row.get("state_name") or state.get("name") or state_type.title()),
            expected_start=expected,
            scheduled=(parse_time(row.get("next_scheduled_start_time")) or parse_time(details.get("scheduled_time"))
                       or expected) if state_type == "SCHEDULED" else None,
            start=parse_time(row.get("start_time")),
            end=parse_time(row.get("end_time")),
            url=f"{ui}/runs/flow-run/{row['id']}",
        )

    @property
    def order_key(self) -> dt.datetime:
        """What Prefect's START_TIME_DESC sorts by: the start, else the expected start."""
        return self.start or self.expected_start or dt.datetime.min.replace(tzinfo=UTC)

    def duration(self, now: dt.datetime) -> dt.timedelta | None:
        """How long it ran (so far, when it is still running)."""
        if self.start is None:
            return None
        return (self.end or now) - self.start

    def to_json(self, now: dt.datetime) -> dict[str, Any]:
        took = self.duration(now)
        return {
            "id": self.id,
            "name": self.name,
            "state": self.state_name,
            "state_type": self.state_type,
            "expected_start": iso(self.expected_start),
            "scheduled": iso(self.scheduled),
            "start": iso(self.start),
            "end": iso(self.end),
            "duration_seconds": None if took is None else round(took.total_seconds(), 3),
            "url": self.url,
        }


@dataclass(frozen=True)
class Late:
    since: dt.datetime  # when the oldest overdue run (or the missed fire) was due
    overdue_runs: int  # SCHEDULED-type runs past the grace period; 0 for a fire with no run
    run: Run | None  # the oldest overdue run; None when no run exists for a due fire

    def reason(self, now: dt.datetime) -> str:
        late = span(now - self.since)
        if self.run is None:
            return (f"its schedule fired at {utc_minute(self.since)} UTC ({late} ago) and no run exists for it: "
                    "is Prefect's scheduler service running?")
        more = f" ({self.overdue_runs} overdue runs)" if self.overdue_runs > 1 else ""
        return (f"run {self.run.name} ({self.run.state_name}) was due {utc_minute(self.since)} UTC and has not "
                f"started for {late}{more}: is a worker polling its work pool?")

    def to_json(self, now: dt.datetime) -> dict[str, Any]:
        return {"since": iso(self.since), "overdue_seconds": int((now - self.since).total_seconds()),
                "overdue_runs": self.overdue_runs, "run": self.run.to_json(now) if self.run else None,
                "reason": self.reason(now)}


@dataclass
class ProjectStatus:
    name: str
    sync: str  # one of SYNC_STATES
    sync_detail: str = ""
    deployment_id: str | None = None
    schedule: str = "none"  # active | paused | deployment_paused | none | not_applied
    schedules: list[dict[str, Any]] = field(default_factory=list)  # {slug, cron, timezone, active} on the server
    health: str = "never_run"  # one of HEALTH_STATES
    last_run: Run | None = None
    next_run: Run | None = None
    failures_in_a_row: int = 0
    completed_in_lookback: bool = False  # a COMPLETED run was seen (else a streak may go back further)
    late: Late | None = None
    hints: list[str] = field(default_factory=list)  # e.g. an active schedule with nothing scheduled

    def to_json(self, now: dt.datetime) -> dict[str, Any]:
        return {
            "name": self.name,
            "health": self.health,
            "sync": self.sync,
            "sync_detail": self.sync_detail,
            "deployment_id": self.deployment_id,
            "schedule": {"state": self.schedule, "schedules": self.schedules},
            "last_run": self.last_run.to_json(now) if self.last_run else None,
            "next_run": self.next_run.to_json(now) if self.next_run else None,
            "failures_in_a_row": self.failures_in_a_row,
            "completed_in_lookback": self.completed_in_lookback,
            "late": self.late.to_json(now) if self.late else None,
            "hints": list(self.hints),
        }


@dataclass
class StatusReport:
    url: str  # the API URL, never with a user:password
    ui_url: str
    server_version: str
    owner: str
    generated_at: dt.datetime
    options: StatusOptions
    projects: list[ProjectStatus]
    notes: list[str] = field(default_factory=list)
    applied: dict[str, Any] | None = None  # {commit, applied_at, by} the owner's last apply recorded
    head: str | None = None  # this checkout's commit (None outside git)
    requests: int = 0
    environment: str | None = None  # --env
    # with --preflight: project name -> {"verdict": ok|warn|fail, "causes": [{level, check, text, fix}]}
    preflight: dict[str, dict[str, Any]] | None = None

    def counts(self) -> dict[str, dict[str, int]]:
        health = {h: 0 for h in HEALTH_STATES}
        sync = {s: 0 for s in SYNC_STATES}
        for p in self.projects:
            health[p.health] += 1
            sync[p.sync] += 1
        return {"health": health, "sync": sync}

    @property
    def unhealthy(self) -> list[ProjectStatus]:
        return [p for p in self.projects if p.health in ("failing", "late")]

    @property
    def out_of_sync(self) -> list[ProjectStatus]:
        return [p for p in self.projects if p.sync != "in_sync"]

    @property
    def exit_code(self) -> int:
        if self.unhealthy:
            return EXIT_UNHEALTHY
        if self.options.require_sync and self.out_of_sync:
            return EXIT_OUT_OF_SYNC
        return EXIT_OK

    def _project_json(self, p: ProjectStatus, now: dt.datetime) -> dict[str, Any]:
        out = p.to_json(now)
        if self.preflight is not None:
            out["preflight"] = self.preflight.get(p.name)
        return out

    def to_json(self) -> dict[str, Any]:
        now = self.generated_at
        applied = None
        if self.applied:
            applied = {k: self.applied.get(k) for k in ("commit", "applied_at", "by")}
        return {
            "generated_at": iso(now),
            "server": {"url": self.url, "version": self.server_version, "ui_url": self.ui_url},
            "owner": self.owner,
            "environment": self.environment,
            "options": {"grace_seconds": int(self.options.grace.total_seconds()),
                        "lookback_seconds": int(self.options.lookback.total_seconds()),
                        "require_sync": self.options.require_sync},
            "applied": applied,
            "head": self.head,
            "summary": {"projects": len(self.projects), **self.counts(), "exit_code": self.exit_code},
            "projects": [self._project_json(p, now) for p in self.projects],
            "notes": list(self.notes),
            "requests": self.requests,
        }


# -- the entry point ------------------------------------------------------------------------------
def project_status(root: Path, api: PrefectAPI, options: StatusOptions | None = None, *,
                   env: Mapping[str, str] | None = None) -> StatusReport:
    """Sync state and run health of every project (or `options.projects`) of the repository at
    `root` on the server `api` talks to. Reads only; a constant number of requests for any number
    of projects while the runs fit a page (see the module docstring)."""
    options = options or StatusOptions()
    env = os.environ if env is None else env
    now = options.now or dt.datetime.now(UTC)
    notes: list[str] = []
    checks = _start_preflight(root, options, env) if options.preflight else None
    prepared = _prepare(root, api, env, notes, options.projects, options.environment)
    desired, live, plan = prepared.desired, prepared.live, prepared.plan
    chosen = [d for d in desired.deployments if not options.projects or d.name in options.projects]
    ui = _printable_url(options.ui_url.rstrip("/")) if options.ui_url else ui_url(api.settings.url, env)

    live_by_key = {(d["flow_name"], d["name"]): d for d in live.deployments}
    rows: list[ProjectStatus] = []
    ours: dict[str, tuple[ProjectStatus, dict[str, Any]]] = {}  # deployment id -> (row, live deployment)
    for d in chosen:
        lv = live_by_key.get((d.flow_name, d.name))
        row = ProjectStatus(d.name, *_sync(d, lv, plan, desired.owner))
        if lv is not None and row.sync != "conflict":
            row.deployment_id = lv["id"]
            row.schedule, row.schedules = _schedule_state(lv)
            ours[lv["id"]] = (row, lv)
        elif lv is None:
            row.schedule = "not_applied"
        else:
            row.health = "unknown"
        rows.append(row)

    since = now - options.lookback
    with api.reading():
        recent = _read_recent(api, list(ours), since, ui)
        scheduled = _read_scheduled(api, list(ours), ui)
        for dep_id, (row, lv) in ours.items():
            assess(row, recent.get(dep_id, []), scheduled.get(dep_id, []), lv, now=now, grace=options.grace,
                   since=since)

    notes += _plan_notes(plan, desired, live)
    from compiler.reconcile.prepare import recorded_state

    applied = recorded_state(live, desired.owner) or None
    report = StatusReport(api.settings.url, ui, live.server_version, desired.owner, now, options, rows, notes,
                          applied, prepared.guard.head, api.stats.requests, options.environment)
    if checks is not None:
        report.preflight = _preflight_verdicts(checks, notes)
    return report


def _start_preflight(root: Path, options: StatusOptions, env: Mapping[str, str]) -> Any:
    """`chapctl preflight` of the same projects, run live in a thread while status reads Prefect: its
    reads go to each project's DHIS2 (GETs only), status's to Prefect, so neither waits for the other.
    Live rather than a stored verdict: nothing records one, and a verdict is only worth as much as the
    DHIS2 and CHAP state it read."""
    from concurrent.futures import ThreadPoolExecutor

    from compiler.preflight import PreflightOptions, preflight

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="status-preflight")
    future = pool.submit(preflight, root, PreflightOptions(projects=options.projects, environment=options.environment),
                         env)
    pool.shutdown(wait=False)
    return future


def _preflight_verdicts(future: Any, notes: list[str]) -> dict[str, dict[str, Any]]:
    """Each project's preflight verdict and causes; preflight's own failure is a note, not status's."""
    try:
        report = future.result()
    except UserError as exc:
        notes.append(f"preflight could not run: {exc}")
        return {}
    return {p.name: {"verdict": p.verdict, "causes": [{k: f.to_json()[k] for k in ("level", "check", "text", "fix")}
                                                      for f in p.causes]}
            for p in report.projects}


def _prepare(root: Path, api: PrefectAPI, env: Mapping[str, str], notes: list[str], projects: tuple[str, ...],
             environment: str | None = None):
    """plan's reads and diff, without secrets or pull-step resolution (status needs neither);
    an unknown project name is refused before any request."""
    from compiler.reconcile.desired import load_desired
    from compiler.reconcile.freshness import ensure_fresh
    from compiler.reconcile.prepare import prepare

    try:
        desired = load_desired(root, env, environment=environment)
    except UserError:
        ensure_fresh(root)  # the clearer error: which artifact is stale and why
        raise
    names = [d.name for d in desired.deployments]
    unknown = sorted(set(projects) - set(names))
    if unknown:
        raise UserError(f"no project named {', '.join(unknown)} (the compiled projects: {', '.join(names) or 'none'})")
    for d in desired.deployments:
        d.pull_steps = None  # the worker's directory: not compared (a machine's matter, not the repository's)
    for b in desired.blocks:
        b.secret_digests = {f: None for f in b.secret_digests}  # passwords: neither read nor compared
    desired.unset_pull_env = []
    try:
        ensure_fresh(root)
    except (StaleArtifacts, HandEdited, ValidationFailed) as exc:
        notes.append(f"sync is against the compiled files as they are: {exc}")
    return prepare(root, api, env=env, desired=desired, fresh_check=False)


def ui_url(api_url: str, env: Mapping[str, str] | None = None) -> str:
    """The Prefect UI's base URL, as Prefect derives it: PREFECT_UI_URL (environment, then the
    active profile), else the API URL without its /api (Prefect Cloud: app.prefect.cloud/account/…).
    Never with credentials: a link is printed (and pasted), the browser asks for them itself."""
    from compiler.reconcile.client import _active_profile

    env = os.environ if env is None else env
    explicit = env.get("PREFECT_UI_URL") or _active_profile(env).get("PREFECT_UI_URL")
    if explicit:
        return _printable_url(explicit.rstrip("/"))
    url = _printable_url(api_url.rstrip("/"))
    if url.startswith(CLOUD_API):
        url = CLOUD_UI + url[len(CLOUD_API):]
    if url.endswith("/api"):
        url = url[:-4]
    return url.replace("/api/", "/").replace("/accounts/", "/account/").replace("/workspaces/", "/workspace/")


def _printable_url(url: str) -> str:
    """`url` without a user:password (`***@` where it is too malformed to take apart)."""
    from compiler.reconcile.client import redacted_url, split_userinfo

    return redacted_url(split_userinfo(url)[0])


# -- sync -----------------------------------------------------------------------------------------
def _sync(d: Any, lv: dict[str, Any] | None, plan: Any, owner: str) -> tuple[str, str]:
    if lv is None:
        return "not_applied", "no deployment on the server: `chapctl apply` creates it"
    live_owner = deployment_owner(lv)
    if live_owner not in (owner, LEGACY):
        whose = f"chapctl owner {live_owner!r}" if live_owner else "no chapctl (made by hand or by `prefect deploy`)"
        return "conflict", f"the deployment {d.flow_name}/{d.name} on the server belongs to {whose}: apply refuses"
    mine = [a for a in plan.actions if a.writes and _concerns(a, d)]
    if not mine:
        return "in_sync", ""
    drifted = [a for a in mine if a.drift]
    if drifted:
        return "drift", "; ".join(_describe(a) for a in drifted)
    shown = [a for a in mine if not a.quiet] or mine
    return "changed", "; ".join(_describe(a) for a in shown)


def _concerns(action: Any, d: Any) -> bool:
    if action.kind == "work_pool":
        return action.name == d.work_pool
    return bool(action.project) and d.name in action.project.split(", ")


def _describe(action: Any) -> str:
    what = action.kind.replace("_", " ")
    name = action.name.rpartition("/")[2] if action.kind == "schedule" else ""
    return f"{what}{' ' + name if name else ''}: {action.reason}"


def _schedule_state(lv: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    schedules = [{"slug": s.get("slug"), "cron": (s.get("schedule") or {}).get("cron"),
                  "timezone": (s.get("schedule") or {}).get("timezone") or DEFAULT_TIMEZONE, "active": bool(s.get("active"))}
                 for s in lv.get("schedules") or []]
    if not schedules:
        return "none", schedules
    if lv.get("paused"):
        return "deployment_paused", schedules
    return ("active" if any(s["active"] for s in schedules) else "paused"), schedules


def _plan_notes(plan: Any, desired: Any, live: Any) -> list[str]:
    from compiler.reconcile.live import prune_candidates

    notes = []
    shared = [a for a in plan.actions if a.writes and not a.project and a.kind != "work_pool"]
    if shared:
        notes.append("apply would also change objects no single project owns: "
                     + "; ".join(f"{a.kind.replace('_', ' ')} {a.name} ({a.reason})" for a in shared))
    doomed = sorted(d["name"] for d in prune_candidates(desired, live))
    if doomed:
        notes.append(f"{len(doomed)} deployment(s) of owner {desired.owner!r} are declared by no project "
                     f"(apply deletes them): {', '.join(doomed)}")
    notes += [f"apply would refuse: {b}" for b in plan.blockers]
    lock = live.variables.get(LOCK_VARIABLE.format(owner=desired.owner))
    if lock is not None:
        value = lock.get("value") if isinstance(lock.get("value"), dict) else {}
        notes.append(f"an apply of owner {desired.owner!r} holds the lock ({value.get('holder') or 'unknown holder'}, "
                     f"last renewed {lock.get('updated')}): the sync column may change when it ends")
    return notes


# -- runs -----------------------------------------------------------------------------------------
def _read_recent(api: PrefectAPI, ids: list[str], since: dt.datetime, ui: str) -> dict[str, list[Run]]:
    """Runs that are not SCHEDULED, expected since `since`, newest first, by deployment id: one
    page, then (only when it is full) the runs of the deployments whose story it did not finish."""
    if not ids:
        return {}
    flt = {"state": {"type": {"not_any_": ["SCHEDULED"]}}, "expected_start_time": {"after_": iso(since)}}
    body = {"flow_runs": {**flt, "deployment_id": {"any_": ids}}, "sort": "START_TIME_DESC"}
    size = api.page_size
    rows = api.post("/flow_runs/filter", {**body, "limit": size, "offset": 0}) or []
    if len(rows) >= size:
        grouped = _group(rows, ui, newest_first=True)
        unfinished = [i for i in ids if not _story_complete(grouped.get(i, []))]
        if unfinished:
            seen = {r["id"] for r in rows}
            more = api.filter_all("/flow_runs/filter",
                                  {**body, "flow_runs": {**flt, "deployment_id": {"any_": unfinished}}})
            rows = list(rows) + [r for r in more if r["id"] not in seen]
    return _group(rows, ui, newest_first=True)


def _story_complete(runs: list[Run]) -> bool:
    """The newest runs reach back to a COMPLETED one: older runs change neither the last run nor
    the failure streak."""
    return any(r.state_type == "COMPLETED" for r in runs)


def _read_scheduled(api: PrefectAPI, ids: list[str], ui: str) -> dict[str, list[Run]]:
    if not ids:
        return {}
    rows = api.filter_all("/flow_runs/filter", {
        "flow_runs": {"deployment_id": {"any_": ids}, "state": {"type": {"any_": ["SCHEDULED"]}}},
        "sort": "NEXT_SCHEDULED_START_TIME_ASC",
    })
    return _group(rows, ui, newest_first=False)


def _group(rows: list[Mapping[str, Any]], ui: str, *, newest_first: bool) -> dict[str, list[Run]]:
    out: dict[str, list[Run]] = {}
    for r in rows:
        if r.get("deployment_id"):
            out.setdefault(str(r["deployment_id"]), []).append(Run.from_api(r, ui))
    for runs in out.values():
        if newest_first:
            runs.sort(key=lambda r: r.order_key, reverse=True)
        else:
            runs.sort(key=lambda r: r.scheduled or r.order_key)
    return out


# -- health (pure) --------------------------------------------------------------------------------
def assess(row: ProjectStatus, recent: list[Run], scheduled: list[Run], deployment: Mapping[str, Any], *,
           now: dt.datetime, grace: dt.timedelta, since: dt.datetime) -> ProjectStatus:
    """Fill the run columns and the health of `row` from its runs: `recent` newest first (not
    SCHEDULED), `scheduled` by due time; `deployment` is the live deployment (schedules, paused,
    updated). Pure: tests call it with hand-made runs."""
    row.last_run = recent[0] if recent else None
    streak = 0
    for run in recent:
        if run.state_type == "COMPLETED":
            row.completed_in_lookback = True
            break
        if run.state_type in FAILED_TYPES:
            streak += 1
        # in flight (RUNNING, PENDING, PAUSED, CANCELLING) and CANCELLED runs neither count nor break
    row.failures_in_a_row = streak
    due = now - grace
    overdue = [r for r in scheduled if r.scheduled is not None and r.scheduled < due]
    upcoming = [r for r in scheduled if r.scheduled is not None and r.scheduled >= due]
    row.next_run = upcoming[0] if upcoming else None
    if overdue:
        row.late = Late(overdue[0].scheduled, len(overdue), overdue[0])
    else:
        fired = missed_fire(deployment, recent + scheduled, now=now, grace=grace, since=since)
        row.late = Late(fired, 0, None) if fired else None
    written = max([t for t in [parse_time(deployment.get("updated"))]
                   + [parse_time(s.get("updated")) for s in deployment.get("schedules") or []] if t], default=None)
    if (row.schedule == "active" and row.next_run is None and row.late is None and written is not None
            and written < due):
        row.hints.append("the schedule is active but no run is scheduled: is Prefect's scheduler service running?")
    if streak:
        row.health = "failing"
    elif row.late is not None:
        row.health = "late"
    elif row.last_run is None:
        row.health = "never_run"
    else:
        row.health = "healthy"
    return row


def missed_fire(deployment: Mapping[str, Any], runs: list[Run], *, now: dt.datetime, grace: dt.timedelta,
                since: dt.datetime) -> dt.datetime | None:
    """The latest time an active cron schedule of `deployment` fired more than `grace` before
    `now`, when no run exists for it (none expected between it and now, none started after it);
    None when it has a run. Only fires after the schedule and the deployment were last written
    count (Prefect's scheduler never creates runs for earlier ones), and only fires inside the
    lookback window."""
    due = now - grace
    if deployment.get("paused"):
        return None
    written = [t for t in (parse_time(deployment.get("updated")),) if t]
    latest: dt.datetime | None = None
    for s in deployment.get("schedules") or []:
        spec = s.get("schedule") or {}
        if not s.get("active") or not spec.get("cron"):
            continue
        after = max(written + [t for t in (parse_time(s.get("updated")),) if t], default=since)
        fired = _last_fire(spec["cron"], spec.get("timezone") or DEFAULT_TIMEZONE, bool(spec.get("day_or", True)), due)
        if fired is None or fired < max(after, since):
            continue
        latest = fired if latest is None or fired > latest else latest
    if latest is None:
        return None
    for r in runs:
        if (r.expected_start and latest - _COVER_SLACK <= r.expected_start <= now) or (r.start and r.start >= latest):
            return None
    return latest


def _last_fire(cron: str, zone: str, day_or: bool, before: dt.datetime) -> dt.datetime | None:
    """The last time `cron` fires at or before `before`, in UTC (wall-clock times in `zone`, as
    Prefect's CronSchedule computes them; a fire in a DST gap or overlap may be off by the shift)."""
    from zoneinfo import ZoneInfo

    from compiler.compile.cron import fires

    try:
        tz = ZoneInfo(zone)
        wall = before.astimezone(tz).replace(tzinfo=None) + dt.timedelta(seconds=1)
        prev = fires(cron, wall, day_or).get_prev(dt.datetime)
    except Exception:  # a schedule made in the UI that the vendored croniter cannot read: no verdict
        return None
    return prev.replace(tzinfo=tz).astimezone(UTC)
