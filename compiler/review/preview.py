"""Next run times of each project, computed by the installed Prefect's own schedule code.

Schedule semantics move between Prefect releases (DST gaps and overlaps, `day_or`), so previews
never re-implement them: they call `prefect.server.schemas.schedules.CronSchedule.get_dates`, the
method the server's scheduler itself uses, imported lazily (it costs a couple of seconds).

`run_schedule` is the entry point of `chapctl schedule`; its reporters are in
compiler/output/review.py.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from compiler.constants import EXIT_OK
from compiler.errors import UserError
from compiler.compile.models import Project
from compiler.compile.validate import ValidatedRepo


@dataclass(frozen=True)
class Preview:
    project: str
    cron: str
    timezone: str
    active: bool
    runs: tuple[dt.datetime, ...]  # aware, in the schedule's zone


def next_runs(validated: ValidatedRepo, count: int, start: dt.datetime | None = None,
              only: tuple[str, ...] = ()) -> list[Preview]:
    """Previews of every scheduled project (or just those named in `only`), starting at `start`
    (default now)."""
    projects = [v.project for v in validated.projects if v.project.schedule_entries]
    if only:
        unknown = sorted(set(only) - {p.name for p in projects})
        if unknown:
            known = ", ".join(v.project.name for v in validated.projects) or "none"
            raise UserError(f"no scheduled project named {', '.join(map(repr, unknown))} (projects: {known})")
        projects = [p for p in projects if p.name in only]
    return [_preview(p, e, validated.defaults.timezone, count, start) for p in projects for e in p.schedule_entries]


def schedule_runs(cron: str, timezone: str, count: int, start: dt.datetime | None = None) -> list[dt.datetime]:
    from prefect.server.schemas.schedules import CronSchedule

    schedule = CronSchedule(cron=cron, timezone=timezone, day_or=True)
    dates = asyncio.run(schedule.get_dates(n=count, start=start))
    return [dt.datetime.fromtimestamp(d.timestamp(), tz=dt.timezone.utc).astimezone(_zone(timezone)) for d in dates]


def _preview(project: Project, entry, default_zone: str, count: int, start: dt.datetime | None) -> Preview:
    from compiler.compile.schedule_report import schedule_label

    zone = entry.timezone or default_zone
    runs = schedule_runs(entry.cron, zone, count, start)
    return Preview(schedule_label(project.name, entry.slug), entry.cron, zone, entry.active, tuple(runs))


def _zone(name: str):
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


def installed_prefect() -> str:
    from compiler.installed import version

    return version("prefect") or "unknown"


def semantics_note(server_version: str | None) -> str | None:
    """One line when the server's Prefect is another minor release than the installed one, whose
    schedule code computes the previews: their schedulers may place a run differently around a
    DST change (3.8 and 3.9 put the run of a skipped 02:30 an hour apart)."""
    installed = installed_prefect()
    if not server_version or server_version.split(".")[:2] == installed.split(".")[:2]:
        return None
    return (f"next runs are computed with Prefect {installed}'s schedule code; the server runs {server_version}, "
            "whose scheduler may place a run differently around a DST change (a skipped or repeated hour)")


def parse_start(text: str | None, default_zone: str = "UTC") -> dt.datetime | None:
    """`--from` value: an ISO date or date-time; naive values are read in UTC."""
    if text is None:
        return None
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise UserError(f"--from {text!r} is not an ISO date or date-time; e.g. 2027-03-27 or "
                        "2027-03-27T12:00+02:00") from None
    return value if value.tzinfo else value.replace(tzinfo=_zone(default_zone))


@dataclass(frozen=True)
class ScheduleResult:
    """`chapctl schedule`: the next runs of each schedule; `note` when the server's Prefect is
    another release than the one computing them."""

    previews: tuple[Preview, ...]
    note: str | None = None
    environment: str | None = None  # --env
    paused_by_environment: bool = False  # that environment applies every schedule paused

    @property
    def exit_code(self) -> int:
        return EXIT_OK


def run_schedule(root: Path, count: int, start: str | None = None, only: tuple[str, ...] = (),
                 server_version: Callable[[], str | None] = lambda: None,
                 environment: str | None = None) -> ScheduleResult:
    """Validate, then the next `count` runs of every scheduled project (or those in `only`) from
    `start` (`--from`), as `environment` (--env) applies them (paused there: each shows paused).
    `server_version` asks the configured server its release (None offline)."""
    from dataclasses import replace

    from compiler.compile.build import select_environment, validate_repo

    validated = validate_repo(root)
    name = select_environment(validated, environment)
    previews = next_runs(validated, count, parse_start(start), only)
    paused = name is not None and validated.defaults.environments[name].schedules == "paused"
    if paused:
        previews = [replace(p, active=False) for p in previews]
    return ScheduleResult(tuple(previews), semantics_note(server_version()), name, paused)
