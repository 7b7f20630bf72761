"""The schedule report: what every project's cron means in local time and UTC, and the weekly load.

Compile's own data (it renders SCHEDULES.md and schedules.svg from it and turns its hot-spots into
warnings), so it lives below compile; review (`diff`, `preview`) reads it, never the other way.

A pure function of the validated repository (never of today's date): DST is read from the pinned
tzdata for one fixed reference year, so SCHEDULES.md and schedules.svg are byte-stable. Run times
are derived from the cron fields analytically (no iteration), so the cost stays linear and small.
Exact next-run previews, with Prefect's own DST handling, are `chapctl schedule`'s job.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from compiler.compile.cron import MACRO_CRONS, describe, expand
from compiler.compile.models import SINGLE_SCHEDULE_SLUG, Defaults, Project, ScheduleEntry
from compiler.compile.parallel import map_split
from compiler.compile.validate import ValidatedRepo
from compiler.timefmt import MONTHS, day_month

REFERENCE_YEAR = 2027  # DST rules of this year (from the pinned tzdata) stand for "any year"
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
# The heat-map's rows: the hours of the week of weekly schedules, then one row for the schedules
# that recur by date (monthly, some months, 1st-or-Monday), at the busiest day they run: a monthly
# run falls on every weekday in a year and is drawn once, not on all seven.
DATED_ROW = len(WEEKDAYS)
HEATMAP_ROWS = (*WEEKDAYS, "Dated")
MINUTES_PER_WEEK = 7 * 24 * 60


@dataclass(frozen=True)
class Regime:
    """A stretch of the reference year in which every zone in use keeps one UTC offset."""

    start: dt.date
    end: dt.date  # inclusive
    offsets: tuple[tuple[str, int], ...]  # (zone, minutes east of UTC)

    def offset(self, zone: str) -> int:
        return dict(self.offsets)[zone]

    def label(self) -> str:
        return f"{day_month(self.start)} – {day_month(self.end)}"


@dataclass(frozen=True)
class ScheduleRow:
    project: str
    cron: str
    timezone: str
    active: bool
    local: str  # plain English, local time
    utc: tuple[str, ...]  # plain English in UTC; several when DST moves the times
    instance: str
    model_id: int


@dataclass(frozen=True)
class Hotspot:
    scope: str  # an instance, or "all instances"
    when: str  # "Mon 23:00-23:59 UTC", "02:00-02:59 UTC on day 1 of every month"
    runs: int
    limit: int
    projects: tuple[str, ...]
    period: str  # the part of the year, when DST matters; how many days, for dated ones
    cells: tuple[tuple[int, int], ...] = ()  # (weekday, hour) cells of the heat-map it touches

    def text(self) -> str:
        return (f"{self.runs} runs start {self.when} against {self.scope} (more than {self.limit}; "
                f"{self.period}): {', '.join(self.projects)}")


@dataclass(frozen=True)
class Cell:
    """One UTC hour of the week at its busiest time of the reference year."""

    runs: int  # the most runs that start in this hour on any one day of the year
    per_instance: tuple[tuple[str, int], ...]  # the same, per DHIS2 instance (each at its own busiest)
    projects: tuple[str, ...]  # every project with a run in this hour at some time of the year
    hot: bool  # part of a hot-spot

    def level(self) -> int:
        return next(i for i, (low, _label, _colour) in enumerate(SCALE) if self.runs >= low and (
            i + 1 == len(SCALE) or self.runs < SCALE[i + 1][0]))


# The heat-map's colour scale is fixed, so that one project more or less never recolours the map
# (runs per UTC hour, lower bound of each step).
SCALE = ((0, "0", "#f2f4f7"), (1, "1", "#dbe9f6"), (2, "2", "#b5d4ea"), (3, "3", "#7fb3d8"),
         (4, "4-5", "#4a8fc4"), (6, "6-9", "#2166a8"), (10, "10+", "#0b3d7a"))
HOT_COLOUR = "#d62728"


@dataclass(frozen=True)
class ScheduleReport:
    rows: tuple[ScheduleRow, ...]
    unscheduled: tuple[str, ...]
    cells: dict[tuple[int, int], Cell] = field(repr=False)  # (weekday, hour) -> busiest; non-empty only
    dated: tuple[str, ...]  # schedules that recur by day of month or in some months only (counted too)
    hotspots: tuple[Hotspot, ...]
    per_instance_limit: int
    overall_limit: int
    # Concurrency limits that protect CHAP: (DHIS2 instance, limit, projects) from `instance_limits`,
    # (project, limit, collision strategy) from a project's `limits`.
    instance_limits: tuple[tuple[str, int, tuple[str, ...]], ...] = ()
    project_limits: tuple[tuple[str, int, str], ...] = ()


def schedule_report(validated: ValidatedRepo) -> ScheduleReport:
    defaults = validated.defaults
    scheduled = [(v.project, entry) for v in validated.projects for entry in v.project.schedule_entries]
    zones = sorted({_zone(entry, defaults) for _, entry in scheduled})
    regimes = _regimes(tuple(zones))
    # Rows and weekly patterns per schedule in one pass (split over two processes when large).
    computed = map_split(lambda pe: _row(pe[0], pe[1], defaults, regimes), scheduled)
    rows = tuple(computed)
    active = [row for row in rows if row.active]
    limits = defaults.load_warnings
    load = _Load(regimes)
    for row in active:
        load.add(row)
    cells, hotspots = load.summarise(limits.per_instance, limits.overall)
    return ScheduleReport(
        rows=rows,
        unscheduled=tuple(v.project.name for v in validated.projects if not v.project.schedule_entries),
        cells=cells,
        dated=tuple(sorted(f"{row.project}: {row.local} ({row.timezone})" for row in active
                           if _weekly_minutes(row.cron) is None)),
        hotspots=hotspots,
        per_instance_limit=limits.per_instance,
        overall_limit=limits.overall,
        instance_limits=tuple(
            (block, limit, tuple(sorted(v.project.name for v in validated.projects
                                        if v.project.credentials.block == block)))
            for block, limit in sorted(defaults.instance_limits.items())),
        project_limits=tuple((v.project.name, v.project.limits.concurrency, v.project.limits.collision_strategy)
                             for v in validated.projects if v.project.limits is not None),
    )


def instance_of(project: Project) -> str:
    """The DHIS2 instance a project talks to: its host (and path), or its block when external."""
    creds = project.credentials
    if creds.base_url is None:
        return f"block {creds.block} (external)"
    parts = urlsplit(creds.base_url.rstrip("/"))
    return parts.netloc + parts.path


# --- per project -------------------------------------------------------------------------------


def _zone(entry: ScheduleEntry, defaults: Defaults) -> str:
    return entry.timezone or defaults.timezone


def schedule_label(project: str, slug: str) -> str:
    """How people see one schedule: the project's name, and the slug of an entry of `schedules:`."""
    return project if slug == SINGLE_SCHEDULE_SLUG else f"{project} [{slug}]"


def _row(project: Project, entry: ScheduleEntry, defaults: Defaults, regimes: tuple[Regime, ...]) -> ScheduleRow:
    zone = _zone(entry, defaults)
    cron = entry.cron
    return ScheduleRow(
        project=schedule_label(project.name, entry.slug),
        cron=cron,
        timezone=zone,
        active=entry.active,
        local=describe(cron),
        utc=_utc_descriptions(cron, zone, regimes),
        instance=instance_of(project),
        model_id=project.model_id,
    )


def utc_texts(cron: str, zone: str) -> tuple[str, ...]:
    """The cron in UTC, in plain English, one text per DST period of the reference year."""
    return _utc_descriptions(cron, zone, _regimes((zone,)))


def _utc_descriptions(cron: str, zone: str, regimes: tuple[Regime, ...]) -> tuple[str, ...]:
    by_offset: dict[int, list[Regime]] = {}
    for regime in regimes:
        by_offset.setdefault(regime.offset(zone), []).append(regime)
    texts = []
    for offset, spans in by_offset.items():
        text = _describe_in_utc(cron, offset)
        if len(by_offset) > 1:
            text += " (" + ", ".join(r.label() for r in _merge(spans)) + ")"
        texts.append(text)
    return tuple(texts)


def _describe_in_utc(cron: str, offset: int) -> str:
    if offset == 0:
        return describe(cron)
    shifted = utc_crons(cron, offset)
    if shifted is None:  # cron cannot say it: say how far the zone is from UTC
        hours, minutes = divmod(abs(offset), 60)
        amount = f"{hours} h" + (f" {minutes} min" if minutes else "")
        sign = "+" if offset > 0 else "-"
        return (f"the local times, {amount} {'earlier' if offset > 0 else 'later'} "
                f"(the zone is UTC{sign}{hours:02d}:{minutes:02d})")
    return "; ".join(describe(c) for c in shifted)


def utc_crons(cron: str, offset: int) -> list[str] | None:
    """Equivalent UTC cron expressions for a cron read at a fixed UTC offset (minutes east), or
    None when cron cannot say it (day-of-month crossing a month edge, irregular fields)."""
    fields = _fields(cron)
    if fields is None:
        return None
    minutes, hours, dom, months, dow, special = fields
    if special:
        return None
    every_day = dom == months == dow == ["*"]  # then a shift across midnight changes no day field
    groups: dict[int, set[tuple[int, int]]] = {}
    for hour in hours:
        for minute in minutes:
            total = hour * 60 + minute - offset
            groups.setdefault(0 if every_day else total // 1440, set()).add(divmod(total % 1440, 60))
    result = []
    for delta in sorted(groups):
        times = groups[delta]
        utc_hours = sorted({h for h, _ in times})
        utc_minutes = sorted({m for _, m in times})
        if len(times) != len(utc_hours) * len(utc_minutes):
            return None  # not a product of minute and hour sets any more
        day_part = _shift_days(dom, dow, delta)
        if day_part is None or (delta and months != ["*"]):  # a day earlier may be another month
            return None
        dom_part, dow_part = day_part
        month_part = "*" if months == ["*"] else _cron_list(months, 12)
        result.append(f"{_cron_list(utc_minutes, 60)} {_cron_list(utc_hours, 24)} {dom_part} {month_part} {dow_part}")
    return result


def _shift_days(dom: list, dow: list, delta: int) -> tuple[str, str] | None:
    """The (day of month, day of week) fields `delta` days later, or None when cron cannot say it."""
    if not all(isinstance(d, int) for d in (*dom, *dow) if d != "*"):
        return None  # `L`, `#`: no shifting
    if delta == 0:
        return ("*" if dom == ["*"] else _cron_list(dom, 32)), ("*" if dow == ["*"] else _cron_list(dow, 7))
    if dom == ["*"] and dow == ["*"]:
        return "*", "*"
    if dom == ["*"]:
        return "*", _cron_list(sorted({(d + delta) % 7 for d in dow}), 7)
    if dow == ["*"] and all(isinstance(d, int) and 1 <= d + delta <= 28 for d in dom):
        return _cron_list(sorted(d + delta for d in dom), 32), "*"
    return None


def _cron_list(values: list[int], modulus: int) -> str:
    """A cron field for sorted values: `*` for all, `a-b` for runs of three or more."""
    if len(values) == modulus or (modulus == 32 and len(values) == 31):
        return "*"
    parts: list[str] = []
    start = previous = values[0]
    for value in [*values[1:], None]:
        if value is not None and value == previous + 1:
            previous = value
            continue
        parts.append(str(start) if previous == start else f"{start},{previous}" if previous == start + 1
                     else f"{start}-{previous}")
        if value is not None:
            start = previous = value
    return ",".join(parts)


@lru_cache(maxsize=4096)
def _fields(cron: str):
    """(minutes, hours, dom, months, dow, special) from Prefect's croniter, or None."""
    expansion = expand(MACRO_CRONS.get(cron.lower(), cron))
    if expansion is None:  # valid for Prefect but beyond expand() (e.g. "5L"): no weekly pattern
        return None
    expanded, nth = expansion
    minutes, hours, dom, months, dow = expanded
    # expand() collapses a field that covers its whole range to ["*"]; minutes and hours are
    # always enumerated here (day fields keep "*", which means "no restriction" below).
    minutes = list(range(60)) if minutes == ["*"] else minutes
    hours = list(range(24)) if hours == ["*"] else hours
    special = bool(nth) or "l" in dom or "l" in dow
    return minutes, hours, dom, months, dow, special


# --- load: every cadence over the reference year, and hot-spots ------------------------------------
#
# A schedule that recurs weekly (no day-of-month or month restriction) is counted per DST regime
# as a weekly pattern: cheap however often it runs. Any other schedule (monthly, some months,
# 1st-or-Monday, last day of the month, nth weekday) is expanded day by day over the reference
# year into runs per UTC date and hour, and added to the weekly pattern of that date. A cell of
# the heat-map is the busiest such hour of the year.

_All = "all instances"


class _Load:
    def __init__(self, regimes: tuple[Regime, ...]):
        self.regimes = regimes
        # (regime, weekday, hour) -> (instance, project) -> runs, for weekly schedules
        self.weekly: dict[tuple[int, int, int], dict[tuple[str, str], int]] = {}
        # (UTC date, hour) -> (instance, project) -> runs, for every other schedule
        self.dated: dict[tuple[dt.date, int], dict[tuple[str, str], int]] = {}

    def add(self, row: ScheduleRow) -> None:
        who = (row.instance, row.project)
        weekly = _weekly_minutes(row.cron)
        if weekly is not None:
            for index, regime in enumerate(self.regimes):
                for (day, hour), runs in _utc_week(tuple(weekly), regime.offset(row.timezone)).items():
                    cell = self.weekly.setdefault((index, day, hour), {})
                    cell[who] = cell.get(who, 0) + runs
            return
        for key, runs in _dated_runs(row.cron, row.timezone).items():
            cell = self.dated.setdefault(key, {})
            cell[who] = cell.get(who, 0) + runs

    def regime_of(self, day: dt.date) -> int:
        for index, regime in enumerate(self.regimes):
            if regime.start <= day <= regime.end:
                return index
        return 0 if day < self.regimes[0].start else len(self.regimes) - 1

    def summarise(self, per_instance: int, overall: int) -> tuple[dict[tuple[int, int], Cell], tuple[Hotspot, ...]]:
        busiest: dict[tuple[int, int], dict[str, int]] = {}  # (weekday, hour) -> scope -> runs
        names: dict[tuple[int, int], set[str]] = {}
        weekly_spots: dict[tuple, list[int]] = {}  # (scope, day, hour, runs, projects) -> regimes
        dated_spots: dict[tuple, list[dt.date]] = {}  # (scope, hour, runs, projects) -> dates

        def scopes(runs: dict[tuple[str, str], int]) -> dict[str, tuple[int, set[str]]]:
            out: dict[str, tuple[int, set[str]]] = {}
            for (instance, project), n in runs.items():
                for scope in (_All, instance):
                    total, who = out.get(scope, (0, set()))
                    out[scope] = (total + n, who | {project})
            return out

        def note(day: int, hour: int, counted: dict[str, tuple[int, set[str]]]) -> None:
            cell = busiest.setdefault((day, hour), {})
            for scope, (runs, who) in counted.items():
                cell[scope] = max(cell.get(scope, 0), runs)
                names.setdefault((day, hour), set()).update(who)

        def limit(scope: str) -> int:
            return overall if scope == _All else per_instance

        for (regime, day, hour), runs in self.weekly.items():
            counted = scopes(runs)
            note(day, hour, counted)
            for scope, (n, who) in counted.items():
                if n > limit(scope):
                    weekly_spots.setdefault((scope, day, hour, n, tuple(sorted(who))), []).append(regime)
        for (date, hour), runs in self.dated.items():
            weekly = self.weekly.get((self.regime_of(date), date.weekday(), hour), {})
            combined = dict(weekly)
            for who, n in runs.items():
                combined[who] = combined.get(who, 0) + n
            counted, alone = scopes(combined), scopes(weekly)
            note(DATED_ROW, hour, counted)
            for scope, (n, who) in counted.items():
                if n > limit(scope) and alone.get(scope, (0, set()))[0] <= limit(scope):
                    dated_spots.setdefault((scope, hour, n, tuple(sorted(who))), []).append(date)

        spots = self._weekly_hotspots(weekly_spots, per_instance, overall)
        spots += self._dated_hotspots(dated_spots, per_instance, overall)
        spots.sort(key=lambda s: (s.scope != _All, s.scope, s.when, s.period))
        hot = {c for spot in spots for c in spot.cells}
        cells = {
            key: Cell(runs=scoped.get(_All, 0),
                      per_instance=tuple(sorted((k, v) for k, v in scoped.items() if k != _All)),
                      projects=tuple(sorted(names.get(key, ()))), hot=key in hot)
            for key, scoped in sorted(busiest.items()) if scoped.get(_All, 0)
        }
        return cells, tuple(spots)

    def _weekly_hotspots(self, found: dict[tuple, list[int]], per_instance: int, overall: int) -> list[Hotspot]:
        grouped: dict[tuple, list[tuple[int, int]]] = {}
        for (scope, day, hour, runs, who), regimes in found.items():
            period = "all year" if len(set(regimes)) == len(self.regimes) else ", ".join(
                r.label() for r in _merge([self.regimes[i] for i in sorted(set(regimes))]))
            grouped.setdefault((scope, runs, who, period), []).append((day, hour))
        return [Hotspot(scope, _windows(sorted(hours)), runs, overall if scope == _All else per_instance, who, period,
                        tuple(sorted(hours)))
                for (scope, runs, who, period), hours in grouped.items()]

    @staticmethod
    def _dated_hotspots(found: dict[tuple, list[dt.date]], per_instance: int, overall: int) -> list[Hotspot]:
        return [Hotspot(scope, f"{hour:02d}:00-{hour:02d}:59 UTC {_on_dates(sorted(dates))}", runs,
                        overall if scope == _All else per_instance, who,
                        f"{len(dates)} day{'s' if len(dates) > 1 else ''} a year", ((DATED_ROW, hour),))
                for (scope, hour, runs, who), dates in found.items()]


@lru_cache(maxsize=4096)
def _utc_week(weekly: tuple[int, ...], offset: int) -> dict[tuple[int, int], int]:
    """Runs per (UTC weekday, UTC hour) of a weekly pattern of local minutes at a UTC offset."""
    out: dict[tuple[int, int], int] = {}
    for minute_of_week in weekly:
        utc = (minute_of_week - offset) % MINUTES_PER_WEEK
        key = (utc // 1440, (utc % 1440) // 60)
        out[key] = out.get(key, 0) + 1
    return out


def _weekly_minutes(cron: str) -> list[int] | None:
    """Minutes of the (local, Monday-based) week at which the cron fires, if it recurs weekly.

    Schedules that recur by day of month (or only in some months) have no weekly pattern."""
    fields = _fields(cron)
    if fields is None:
        return None
    minutes, hours, dom, months, dow, special = fields
    if special or dom != ["*"] or months != ["*"]:
        return None
    days = range(7) if dow == ["*"] else sorted({(d - 1) % 7 for d in dow})  # cron 0 = Sunday
    return [day * 1440 + hour * 60 + minute for day in days for hour in hours for minute in minutes]


@lru_cache(maxsize=4096)
def _dated_runs(cron: str, zone: str) -> dict[tuple[dt.date, int], int]:
    """Runs per (UTC date, UTC hour) over the local days of the reference year on which a
    non-weekly cron fires (croniter's rules: day of month OR day of week when both are given)."""
    expansion = expand(MACRO_CRONS.get(cron.lower(), cron))
    if expansion is None:
        return {}
    (minutes, hours, dom, months, dow), nth = expansion
    minutes = list(range(60)) if minutes == ["*"] else minutes
    hours = list(range(24)) if hours == ["*"] else hours
    info = ZoneInfo(zone)
    out: dict[tuple[dt.date, int], int] = {}
    day = dt.date(REFERENCE_YEAR, 1, 1)
    while day.year == REFERENCE_YEAR:
        if _day_matches(day, dom, months, dow, nth):
            midnight = dt.datetime(day.year, day.month, day.day)
            for hour in hours:
                offset = int(dt.datetime(day.year, day.month, day.day, hour, tzinfo=info).utcoffset().total_seconds()
                             // 60)
                whole = offset % 60 == 0  # then every minute of the hour lands in the same UTC hour
                for minute in minutes[:1] if whole else minutes:
                    utc = midnight + dt.timedelta(minutes=hour * 60 + minute - offset)
                    key = (utc.date(), utc.hour)
                    out[key] = out.get(key, 0) + (len(minutes) if whole else 1)
        day += dt.timedelta(days=1)
    return out


def _day_matches(day: dt.date, dom: list, months: list, dow: list, nth: dict) -> bool:
    if months != ["*"] and day.month not in months:
        return False
    next_month = (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    last = (next_month - dt.timedelta(days=1)).day
    dom_ok = dom == ["*"] or day.day in dom or ("l" in dom and day.day == last)
    weekday = (day.weekday() + 1) % 7  # cron: 0 = Sunday
    dow_ok = dow == ["*"] or (weekday in dow and (weekday not in nth or (day.day - 1) // 7 + 1 in nth[weekday]))
    if dom == ["*"]:
        return dow_ok
    if dow == ["*"]:
        return dom_ok
    return dom_ok or dow_ok  # day_or, as Prefect's CronSchedule defaults


def _on_dates(dates: list[dt.date]) -> str:
    months = sorted({d.month for d in dates})
    every = "every month" if len(months) == 12 else ", ".join(MONTHS[m - 1] for m in months)
    if len(months) == len(dates):
        days = {d.day for d in dates}
        if len(days) == 1:
            return f"on day {days.pop()} of {every}"
        if all((d + dt.timedelta(days=1)).day == 1 for d in dates):
            return f"on the last day of {every}"
    shown = ", ".join(day_month(d) for d in dates[:3]) + (", …" if len(dates) > 3 else "")
    return f"on {len(dates)} day{'s' if len(dates) > 1 else ''} of the year ({shown})"


def _windows(hours: list[tuple[int, int]]) -> str:
    """One line for many equal hot-spots: an every-minute cron must not yield 168 warnings."""
    def one(day: int, hour: int) -> str:
        return f"{WEEKDAYS[day]} {hour:02d}:00-{hour:02d}:59 UTC"

    if len(hours) == 7 * 24:
        return "in every UTC hour of the week"
    if len(hours) <= 3:
        return ", ".join(one(*h) for h in hours)
    return f"in {len(hours)} UTC hours of the week (first {one(*hours[0])})"


# --- DST regimes of the reference year -------------------------------------------------------------


@lru_cache(maxsize=64)
def _regimes(zones: tuple[str, ...]) -> tuple[Regime, ...]:
    if not zones:
        return (Regime(dt.date(REFERENCE_YEAR, 1, 1), dt.date(REFERENCE_YEAR, 12, 31), ()),)
    infos = [ZoneInfo(z) for z in zones]
    regimes: list[Regime] = []
    day = dt.date(REFERENCE_YEAR, 1, 1)
    while day.year == REFERENCE_YEAR:
        noon = dt.datetime(day.year, day.month, day.day, 12, tzinfo=dt.timezone.utc)
        offsets = tuple((z, int(noon.astimezone(i).utcoffset().total_seconds() // 60)) for z, i in zip(zones, infos))
        if regimes and regimes[-1].offsets == offsets:
            regimes[-1] = Regime(regimes[-1].start, day, offsets)
        else:
            regimes.append(Regime(day, day, offsets))
        day += dt.timedelta(days=1)
    return tuple(regimes)


def _merge(spans: list[Regime]) -> list[Regime]:
    """Adjacent regimes with the same offsets for the zone(s) of interest read as one period."""
    merged: list[Regime] = []
    for span in sorted(spans, key=lambda r: r.start):
        if merged and merged[-1].end + dt.timedelta(days=1) == span.start:
            merged[-1] = Regime(merged[-1].start, span.end, merged[-1].offsets)
        else:
            merged.append(span)
    return merged
