"""DHIS2 period ids for the period types CHAP prediction setups use: month, ISO week, year.

Ids: monthly `YYYYMM`, yearly `YYYY`, weekly `YYYYWn` with an ISO year and Monday-start week.
DHIS2 *outputs* weeks unpadded (`2025W5`) while chap-core writes `2025W05`; both are parsed here.
Ids this module *produces* are canonical (`2025W05`), which DHIS2 and chap-core both accept.

Every function is pure: "today" is always an argument, never read from the clock.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

PERIOD_CAP = 120
"""The most periods one prediction request may span; a longer range fails, it is never cut."""

SUPPORTED_PERIOD_TYPES = ("month", "week", "year")

# The relative period DHIS2 analytics understands for "the last complete stretch" of each type.
# Each excludes the in-progress period, which is what "latest complete data" needs.
PROBE_WINDOWS = {"month": "LAST_12_MONTHS", "week": "LAST_52_WEEKS", "year": "LAST_5_YEARS"}

# chap-core's default number of future periods to predict, per period type.
N_PERIODS = {"month": 3, "week": 12, "year": 1}

# chap-core 2.5.1 trains only on data that spans this many whole years (`validate_training_data`:
# the end of the last period sent is at least two years after the start of the first); a request
# with less makes a job that fails with "Training data must cover at least two whole years".
TRAINING_YEARS = 2

_PATTERNS = {
    "month": re.compile(r"^(\d{4})(\d{2})$"),
    "week": re.compile(r"^(\d{4})W(\d{1,2})$"),
    "year": re.compile(r"^(\d{4})$"),
}


class PeriodError(ValueError):
    """A period id or period type that cannot be used."""


def check_period_type(period_type: str) -> str:
    """Return `period_type` if supported, else raise a PeriodError naming the supported ones."""
    if period_type not in SUPPORTED_PERIOD_TYPES:
        supported = ", ".join(SUPPORTED_PERIOD_TYPES)
        raise PeriodError(f"period type {period_type!r} is not supported (supported: {supported})")
    return period_type


def period_start(period_id: str, period_type: str) -> date:
    """First day of the period `period_id`; raises PeriodError if the id is not of that type."""
    match = _PATTERNS[check_period_type(period_type)].match(period_id)
    if match is None:
        raise PeriodError(f"{period_id!r} is not a {period_type} period id")
    year = int(match.group(1))
    try:
        if period_type == "year":
            return date(year, 1, 1)
        if period_type == "month":
            return date(year, int(match.group(2)), 1)
        return date.fromisocalendar(year, int(match.group(2)), 1)
    except ValueError:
        # e.g. month 13, or week 53 of a year that has only 52 ISO weeks
        raise PeriodError(f"{period_id!r} is not a valid {period_type} period") from None


def period_containing(day: date, period_type: str) -> str:
    """The canonical id of the period that contains `day`."""
    check_period_type(period_type)
    if period_type == "year":
        return f"{day.year}"
    if period_type == "month":
        return f"{day.year}{day.month:02d}"
    iso_year, iso_week, _ = day.isocalendar()
    return f"{iso_year}W{iso_week:02d}"


def canonical(period_id: str, period_type: str) -> str:
    """`2025W5` -> `2025W05`; other valid ids unchanged."""
    return period_containing(period_start(period_id, period_type), period_type)


def shift(period_id: str, period_type: str, steps: int) -> str:
    """The period `steps` periods after `period_id` (before it when negative)."""
    start = period_start(period_id, period_type)
    if period_type == "week":
        return period_containing(start + timedelta(weeks=steps), period_type)
    if period_type == "year":
        return period_containing(date(start.year + steps, 1, 1), period_type)
    months = start.year * 12 + (start.month - 1) + steps
    return period_containing(date(months // 12, months % 12 + 1, 1), period_type)


def offset_end_period(today: date, period_type: str, offset: int) -> str:
    """The period `offset` steps back from the one containing `today` (0 = the current one)."""
    if offset < 0:
        raise PeriodError(f"end_period_offset must be >= 0, got {offset}")
    return shift(period_containing(today, period_type), period_type, -offset)


def latest(period_ids: list[str], period_type: str) -> str:
    """The period id that starts last."""
    return max(period_ids, key=lambda pid: period_start(pid, period_type))


def earliest(period_ids: list[str], period_type: str) -> str:
    """The period id that starts first."""
    return min(period_ids, key=lambda pid: period_start(pid, period_type))


def period_range(start: str, end: str, period_type: str, cap: int = PERIOD_CAP) -> list[str]:
    """Canonical ids from `start` to `end`, both included.

    Raises PeriodError when `start` is after `end` or when the range needs more than `cap`
    periods: a silently shortened range would train CHAP on less data than the setup asks for.
    """
    first = period_start(start, period_type)
    last = period_start(end, period_type)
    if first > last:
        raise PeriodError(f"start period {start} is after end period {end}")
    periods = [canonical(start, period_type)]
    while period_start(periods[-1], period_type) < last:
        if len(periods) == cap:
            raise PeriodError(
                f"{start}..{end} spans more than {cap} {period_type} periods; "
                f"move the setup's start period or the end period closer together"
            )
        periods.append(shift(periods[-1], period_type, 1))
    return periods


def training_span_end(first: str, period_type: str) -> date:
    """The first day the data must reach (exclusive end of its last period) for chap-core to train on
    data starting with the period `first`: `TRAINING_YEARS` years after its first day (29 February
    gives 28 February, as dateutil's relativedelta does)."""
    start = period_start(first, period_type)
    try:
        return start.replace(year=start.year + TRAINING_YEARS)
    except ValueError:
        return date(start.year + TRAINING_YEARS, 2, 28)


def covers_training_years(first: str, last: str, period_type: str) -> bool:
    """chap-core's rule: data from the period `first` to the period `last` (both included) spans at
    least two whole years (202301..202412 does; 202302..202412 does not)."""
    end = period_start(shift(last, period_type, 1), period_type)
    return end >= training_span_end(first, period_type)


def last_period_for_training(first: str, period_type: str) -> str:
    """The earliest last period with which data from the period `first` covers the training years."""
    due = training_span_end(first, period_type)
    containing = period_containing(due, period_type)
    # a period that begins on that day is not needed; one that begins before it and ends after it is
    return shift(containing, period_type, -1) if period_start(containing, period_type) == due else containing
