"""The fake server's own period handling, written apart from `flows.periods` on purpose:
if the flow and the fake shared one implementation, a bug in it would go unnoticed.

A period is held as (type, first day). DHIS2 writes weeks unpadded (`2025W5`); chap-core
writes them padded (`2025W05`); both are read.
"""

from __future__ import annotations

import re
from functools import lru_cache
from datetime import date, timedelta

Period = tuple[str, date]

_MONTH = re.compile(r"^(\d{4})(0[1-9]|1[0-2])$")
_WEEK = re.compile(r"^(\d{4})W(\d{1,2})$")
_YEAR = re.compile(r"^(\d{4})$")

RELATIVE = {"LAST_12_MONTHS": ("month", 12), "LAST_52_WEEKS": ("week", 52), "LAST_5_YEARS": ("year", 5)}


@lru_cache(maxsize=65536)  # a national-scale request repeats each period thousands of times
def parse(period_id: str) -> Period | None:
    """(type, first day) of a period id, or None if DHIS2 would not accept it."""
    if m := _MONTH.match(period_id):
        return "month", date(int(m[1]), int(m[2]), 1)
    if m := _YEAR.match(period_id):
        return "year", date(int(m[1]), 1, 1)
    if m := _WEEK.match(period_id):
        try:
            return "week", date.fromisocalendar(int(m[1]), int(m[2]), 1)
        except ValueError:
            return None
    return None


def current(period_type: str, today: date) -> Period:
    if period_type == "month":
        return "month", today.replace(day=1)
    if period_type == "year":
        return "year", date(today.year, 1, 1)
    return "week", today - timedelta(days=today.weekday())


def step(period: Period, n: int) -> Period:
    kind, start = period
    if kind == "week":
        return kind, start + timedelta(days=7 * n)
    if kind == "year":
        return kind, date(start.year + n, 1, 1)
    index = start.year * 12 + start.month - 1 + n
    return kind, date(index // 12, index % 12 + 1, 1)


@lru_cache(maxsize=65536)  # a national-scale request repeats each period thousands of times
def dhis2_id(period: Period) -> str:
    """How DHIS2 writes the period: weeks without zero padding."""
    kind, start = period
    if kind == "month":
        return f"{start.year}{start.month:02d}"
    if kind == "year":
        return str(start.year)
    year, week, _ = start.isocalendar()
    return f"{year}W{week}"


@lru_cache(maxsize=65536)  # a national-scale request repeats each period thousands of times
def chap_id(period: Period) -> str:
    """How chap-core writes the period: weeks zero-padded."""
    if period[0] != "week":
        return dhis2_id(period)
    year, week, _ = period[1].isocalendar()
    return f"{year}W{week:02d}"


def relative(name: str, today: date) -> list[Period] | None:
    """The periods of a DHIS2 relative period: the N before the current one, oldest first."""
    if name not in RELATIVE:
        return None
    kind, count = RELATIVE[name]
    now = current(kind, today)
    return [step(now, -n) for n in range(count, 0, -1)]
