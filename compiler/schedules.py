"""Schedule review: what every project's cron means in local time and UTC, and the weekly load.

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

from compiler.cron import expand
from compiler.models import Defaults, Project
from compiler.parallel import map_split
from compiler.validate import ValidatedRepo

REFERENCE_YEAR = 2027  # DST rules of this year (from the pinned tzdata) stand for "any year"
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MINUTES_PER_WEEK = 7 * 24 * 60
MACRO_CRONS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
               "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"}


@dataclass(frozen=True)
class Regime:
    """A stretch of the reference year in which every zone in use keeps one UTC offset."""

    start: dt.date
    end: dt.date  # inclusive
    offsets: tuple[tuple[str, int], ...]  # (zone, minutes east of UTC)

    def offset(self, zone: str) -> int:
        return dict(self.offsets)[zone]

    def label(self) -> str:
        return f"{_day(self.start)} – {_day(self.end)}"


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
    when: str  # "Mon 23:00-23:59 UTC"
    runs: int
    limit: int
    projects: tuple[str, ...]
    period: str  # the part of the year, when DST matters


@dataclass(frozen=True)
class ScheduleReport:
    rows: tuple[ScheduleRow, ...]
    unscheduled: tuple[str, ...]
    # (weekday, hour) -> runs per instance, maxed over the year's DST regimes; active schedules only
    load: dict[tuple[int, int], dict[str, int]] = field(repr=False)
    totals: dict[tuple[int, int], int] = field(repr=False)  # all instances, maxed over regimes
    monthly: tuple[str, ...]  # runs that recur by day of month, listed apart from the weekly table
    hotspots: tuple[Hotspot, ...]
    per_instance_limit: int
    overall_limit: int


def schedule_report(validated: ValidatedRepo) -> ScheduleReport:
    defaults = validated.defaults
    scheduled = [v.project for v in validated.projects if v.project.schedule is not None]
    zones = sorted({_zone(p, defaults) for p in scheduled})
    regimes = _regimes(tuple(zones))
    # Rows and weekly patterns per project in one pass (split over two processes when large).
    computed = map_split(lambda p: (_row(p, defaults, regimes), _weekly_minutes(p.schedule.cron)), scheduled)
    rows = tuple(row for row, _ in computed)
    active = [(row, weekly) for row, weekly in computed if row.active]
    load, totals, contributors, monthly = _load(active, regimes)
    limits = defaults.load_warnings
    return ScheduleReport(
        rows=rows,
        unscheduled=tuple(v.project.name for v in validated.projects if v.project.schedule is None),
        load=load,
        totals=totals,
        monthly=monthly,
        hotspots=_hotspots(contributors, limits.per_instance, limits.overall),
        per_instance_limit=limits.per_instance,
        overall_limit=limits.overall,
    )


def instance_of(project: Project) -> str:
    """The DHIS2 instance a project talks to: its host (and path), or its block when external."""
    creds = project.credentials
    if creds.base_url is None:
        return f"block {creds.block} (external)"
    parts = urlsplit(creds.base_url.rstrip("/"))
    return parts.netloc + parts.path


@lru_cache(maxsize=4096)
def describe(cron: str) -> str:
    """Plain English for a cron, in 24-hour US English whatever the machine's locale."""
    return _describer()(MACRO_CRONS.get(cron.lower(), cron))


@lru_cache(maxsize=1)
def _describer():
    from cron_descriptor import ExpressionDescriptor, Options
    from cron_descriptor.ExpressionParser import ExpressionParser
    from cron_descriptor.GetText import GetText

    options = Options()
    options.use_24hour_time_format = True
    options.locale_code = "en_US"
    options.verbose = False
    translations = GetText(options.locale_code, options.locale_location)

    class SharedTranslations(ExpressionDescriptor):
        # The stock constructor re-reads the .mo catalogue for every expression (~0.3 ms each);
        # the pinned cron-descriptor's state is these three attributes, so share the catalogue.
        def __init__(self, expression: str) -> None:
            self._expression = expression
            self._options = options
            self.get_text = translations
            self._expression_parts = ExpressionParser(expression, options).parse()

    return lambda expression: SharedTranslations(expression).get_description()


# --- per project -------------------------------------------------------------------------------


def _zone(project: Project, defaults: Defaults) -> str:
    return project.schedule.timezone or defaults.timezone


def _row(project: Project, defaults: Defaults, regimes: tuple[Regime, ...]) -> ScheduleRow:
    zone = _zone(project, defaults)
    cron = project.schedule.cron
    return ScheduleRow(
        project=project.name,
        cron=cron,
        timezone=zone,
        active=project.schedule.active,
        local=describe(cron),
        utc=_utc_descriptions(cron, zone, regimes),
        instance=instance_of(project),
        model_id=project.model_id,
    )


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
    if shifted is None:
        sign = "+" if offset > 0 else "-"
        return f"local times minus {sign}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"
    return "; ".join(describe(c) for c in shifted)


def utc_crons(cron: str, offset: int) -> list[str] | None:
    """Equivalent UTC cron expressions for a cron read at a fixed UTC offset (minutes east), or
    None when cron cannot say it (day-of-month crossing a month edge, irregular fields)."""
    fields = _fields(cron)
    if fields is None:
        return None
    minutes, hours, dom, months, dow, special = fields
    if special or months != ["*"]:
        return None
    every_day = dom == ["*"] and dow == ["*"]  # then a shift across midnight changes no day field
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
        if day_part is None:
            return None
        result.append(f"{_cron_list(utc_minutes, 60)} {_cron_list(utc_hours, 24)} {day_part}")
    return result


def _shift_days(dom: list, dow: list, delta: int) -> str | None:
    if dom == ["*"] and dow == ["*"]:
        return "* * *"
    if dom == ["*"]:
        return "* * " + _cron_list(sorted({(d + delta) % 7 for d in dow}), 7)
    if dow == ["*"] and all(isinstance(d, int) and 1 <= d + delta <= 28 for d in dom):
        return _cron_list(sorted(d + delta for d in dom), 32) + " * *"
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


# --- weekly load and hot-spots ------------------------------------------------------------------


def _load(active: list[tuple[ScheduleRow, list[int] | None]], regimes: tuple[Regime, ...]):
    """Runs per (UTC weekday, UTC hour) per instance, for each regime, maxed over regimes."""
    load: dict[tuple[int, int], dict[str, int]] = {}
    totals: dict[tuple[int, int], int] = {}
    contributors: dict[tuple[Regime, int, int], list[tuple[str, str]]] = {}
    monthly: list[str] = []
    for row, weekly in active:
        if weekly is None:
            monthly.append(f"{row.project}: {row.local} ({row.timezone})")
            continue
        for regime in regimes:
            offset = regime.offset(row.timezone)
            for minute_of_week in weekly:
                utc = (minute_of_week - offset) % MINUTES_PER_WEEK
                day, hour = utc // 1440, (utc % 1440) // 60
                contributors.setdefault((regime, day, hour), []).append((row.instance, row.project))
    for (regime, day, hour), runs in contributors.items():
        counts: dict[str, int] = {}
        for instance, _ in runs:
            counts[instance] = counts.get(instance, 0) + 1
        totals[(day, hour)] = max(totals.get((day, hour), 0), len(runs))
        cell = load.setdefault((day, hour), {})
        for instance, count in counts.items():
            cell[instance] = max(cell.get(instance, 0), count)
    return dict(sorted(load.items())), dict(sorted(totals.items())), contributors, tuple(sorted(monthly))


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


def _hotspots(contributors, per_instance: int, overall: int) -> tuple[Hotspot, ...]:
    found: dict[tuple, dict] = {}
    for (regime, day, hour), runs in contributors.items():
        scopes: dict[str, list[str]] = {"all instances": [name for _, name in runs]}
        for instance, name in runs:
            scopes.setdefault(instance, []).append(name)
        for scope, names in scopes.items():
            limit = overall if scope == "all instances" else per_instance
            if len(names) > limit:
                key = (scope, day, hour, len(names), tuple(sorted(set(names))))
                found.setdefault(key, {"limit": limit, "regimes": []})["regimes"].append(regime)
    grouped: dict[tuple, list[tuple[int, int]]] = {}
    for (scope, day, hour, runs, names), info in found.items():
        period = "all year" if len(info["regimes"]) == len({r for r, _, _ in contributors}) else ", ".join(
            r.label() for r in _merge(info["regimes"]))
        grouped.setdefault((scope, runs, info["limit"], names, period), []).append((day, hour))
    spots = [Hotspot(scope, _windows(sorted(hours)), runs, limit, names, period)
             for (scope, runs, limit, names, period), hours in grouped.items()]
    return tuple(sorted(spots, key=lambda s: (s.scope != "all instances", s.scope, s.when, s.period)))


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


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _day(day: dt.date) -> str:
    return f"{day.day} {_MONTHS[day.month - 1]}"  # not strftime: its month names follow the locale
