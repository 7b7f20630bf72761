"""Times and durations for people and for JSON: the one place output formats them.

* `zoned(t)`: a run in its own zone to the minute, e.g. "Mon 2026-11-30 06:00 +07".
* `utc_minute(t, weekday=False)`: the same instant in UTC, e.g. "2026-11-29 23:00" or
  "Sun 2026-11-29 23:00" (no zone name: callers say "UTC" where their layout wants it).
* `utc_clock(t)`: weekday and clock time in UTC, e.g. "Sun 23:00".
* `iso_utc(t)`: ISO 8601 in UTC to the second, e.g. "2026-01-05T06:00:00Z".
* `iso(t)`: ISO 8601 in the time's own zone, as Python writes it, e.g. "2026-11-30T06:00:00+07:00".
* `run_json(t)`: a run for JSON, {"local": ISO in its zone, "utc": ISO in UTC}.
* `day_month(d)`: a day of the year, e.g. "3 Mar" (English month names, whatever the locale).
* `span(delta)`: a duration, e.g. 0.4s, 45s, 3m 07s, 12m, 3h 05m, 2d 04h, 35d.
"""

from __future__ import annotations

import datetime as dt

UTC = dt.timezone.utc


def zoned(t: dt.datetime) -> str:
    return f"{t:%a %Y-%m-%d %H:%M} {t.tzname()}"


def utc_minute(t: dt.datetime, weekday: bool = False) -> str:
    return format(t.astimezone(UTC), "%a %Y-%m-%d %H:%M" if weekday else "%Y-%m-%d %H:%M")


def utc_clock(t: dt.datetime) -> str:
    return f"{t.astimezone(UTC):%a %H:%M}"


def iso_utc(t: dt.datetime | None) -> str | None:
    return None if t is None else t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso(t: dt.datetime) -> str:
    return t.isoformat()


def run_json(t: dt.datetime) -> dict[str, str]:
    return {"local": iso(t), "utc": iso(t.astimezone(UTC))}


MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def iso_date(day: dt.date) -> str:
    """A day as ISO 8601 (2026-03-02): preflight's "today"."""
    return day.isoformat()


def day_month(day: dt.date) -> str:
    return f"{day.day} {MONTHS[day.month - 1]}"  # not strftime: its month names follow the locale


def span(delta: dt.timedelta) -> str:
    total = max(0.0, delta.total_seconds())
    if total < 10:
        return f"{total:.1f}s"
    seconds = int(total)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes:02d}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m {secs:02d}s" if minutes < 10 and secs else f"{minutes}m"
    return f"{secs}s"
