"""Period arithmetic against hand-computed tables.

Calendar facts used below (checked by hand): 2020 and 2026 have 53 ISO weeks, 2021 and 2025
have 52; 2025-12-29 (Monday) starts 2026W01; 2027-01-04 (Monday) starts 2027W01; 2027-01-02
(Saturday) is in 2026W53; 2021-01-03 (Sunday) is in 2020W53.
"""

from __future__ import annotations

from datetime import date

import pytest

from flows import periods
from flows.periods import PeriodError
from tests.flows.helpers import months, weeks


@pytest.mark.parametrize(("day", "period_type", "expected"), [
    (date(2026, 3, 10), "month", "202603"),
    (date(2026, 12, 31), "month", "202612"),
    (date(2026, 3, 10), "year", "2026"),
    (date(2026, 3, 10), "week", "2026W11"),
    (date(2025, 12, 30), "week", "2026W01"),  # a 2025 date in ISO year 2026
    (date(2024, 12, 30), "week", "2025W01"),
    (date(2026, 12, 31), "week", "2026W53"),
    (date(2027, 1, 2), "week", "2026W53"),    # a 2027 date in ISO week 53 of 2026
    (date(2027, 1, 4), "week", "2027W01"),
    (date(2021, 1, 3), "week", "2020W53"),
    (date(2026, 1, 1), "week", "2026W01"),
])
def test_period_containing(day: date, period_type: str, expected: str) -> None:
    assert periods.period_containing(day, period_type) == expected


@pytest.mark.parametrize(("today", "period_type", "offset", "expected"), [
    (date(2026, 3, 10), "month", 0, "202603"),
    (date(2026, 3, 10), "month", 1, "202602"),
    (date(2026, 1, 15), "month", 1, "202512"),
    (date(2026, 1, 15), "month", 13, "202412"),
    (date(2026, 3, 10), "month", 26, "202401"),
    (date(2026, 3, 10), "year", 0, "2026"),
    (date(2026, 3, 10), "year", 2, "2024"),
    (date(2026, 1, 2), "week", 1, "2025W52"),   # the reference's example
    (date(2027, 1, 5), "week", 0, "2027W01"),
    (date(2027, 1, 5), "week", 1, "2026W53"),
    (date(2027, 1, 5), "week", 2, "2026W52"),
    (date(2027, 1, 5), "week", 53, "2026W01"),  # 2026 has 53 weeks
    (date(2021, 1, 5), "week", 1, "2020W53"),
    (date(2026, 3, 10), "week", 11, "2025W52"),
])
def test_offset_end_period(today: date, period_type: str, offset: int, expected: str) -> None:
    assert periods.offset_end_period(today, period_type, offset) == expected


def test_negative_offset_is_refused() -> None:
    with pytest.raises(PeriodError, match="must be >= 0"):
        periods.offset_end_period(date(2026, 3, 10), "month", -1)


@pytest.mark.parametrize(("period_id", "period_type", "steps", "expected"), [
    ("202512", "month", 1, "202601"),
    ("202601", "month", -1, "202512"),
    ("2026W52", "week", 1, "2026W53"),
    ("2026W53", "week", 1, "2027W01"),
    ("2025W52", "week", 1, "2026W01"),
    ("2020W53", "week", 1, "2021W01"),
    ("2021W01", "week", -1, "2020W53"),
    ("2025W9", "week", 1, "2025W10"),            # DHIS2's unpadded form is read
    ("2026", "year", -3, "2023"),
])
def test_shift(period_id: str, period_type: str, steps: int, expected: str) -> None:
    assert periods.shift(period_id, period_type, steps) == expected


@pytest.mark.parametrize(("period_id", "period_type", "start"), [
    ("202603", "month", date(2026, 3, 1)),
    ("2026", "year", date(2026, 1, 1)),
    ("2026W01", "week", date(2025, 12, 29)),
    ("2026W1", "week", date(2025, 12, 29)),
    ("2026W53", "week", date(2026, 12, 28)),
    ("2020W53", "week", date(2020, 12, 28)),
])
def test_period_start(period_id: str, period_type: str, start: date) -> None:
    assert periods.period_start(period_id, period_type) == start


@pytest.mark.parametrize(("period_id", "period_type"), [
    ("2025W53", "week"),   # 2025 has only 52 ISO weeks
    ("2021W53", "week"),
    ("2025W00", "week"),
    ("202613", "month"),
    ("2026-03", "month"),
    ("202603", "week"),
    ("2026W10", "month"),
])
def test_invalid_period_ids(period_id: str, period_type: str) -> None:
    with pytest.raises(PeriodError):
        periods.period_start(period_id, period_type)


def test_unsupported_period_type_names_the_supported_ones() -> None:
    with pytest.raises(PeriodError, match=r"'quarter' is not supported \(supported: month, week, year\)"):
        periods.period_containing(date(2026, 3, 10), "quarter")


def test_canonical_pads_weeks() -> None:
    assert periods.canonical("2025W5", "week") == "2025W05"
    assert periods.canonical("2025W05", "week") == "2025W05"
    assert periods.canonical("202505", "month") == "202505"


def test_latest_and_earliest_order_by_start_not_text() -> None:
    # As text "2025W9" > "2025W10"; by date it is earlier.
    assert periods.latest(["2025W9", "2025W10", "2024W52"], "week") == "2025W10"
    assert periods.earliest(["2025W9", "2025W10", "2025W52"], "week") == "2025W9"


@pytest.mark.parametrize(("start", "end", "period_type", "expected"), [
    ("202511", "202602", "month", ["202511", "202512", "202601", "202602"]),
    ("202603", "202603", "month", ["202603"]),
    ("2026W52", "2027W02", "week", ["2026W52", "2026W53", "2027W01", "2027W02"]),
    ("2020W52", "2021W01", "week", ["2020W52", "2020W53", "2021W01"]),
    ("2025W9", "2025W11", "week", ["2025W09", "2025W10", "2025W11"]),
    ("2024", "2026", "year", ["2024", "2025", "2026"]),
])
def test_period_range(start: str, end: str, period_type: str, expected: list[str]) -> None:
    assert periods.period_range(start, end, period_type) == expected


def test_range_across_a_53_week_year_matches_a_hand_count() -> None:
    got = periods.period_range("2025W01", "2027W01", "week")
    assert got == weeks("2025W01", "2027W01", {2025: 52, 2026: 53})
    assert len(got) == 52 + 53 + 1


def test_exactly_120_periods_pass() -> None:
    got = periods.period_range("201603", "202602", "month")
    assert got == months("201603", "202602")
    assert len(got) == 120


def test_a_121st_period_fails_instead_of_truncating() -> None:
    with pytest.raises(PeriodError, match=r"201602\.\.202602 spans more than 120 month periods"):
        periods.period_range("201602", "202602", "month")


def test_start_after_end_fails() -> None:
    with pytest.raises(PeriodError, match="start period 202604 is after end period 202603"):
        periods.period_range("202604", "202603", "month")


def test_probe_windows_and_prediction_lengths() -> None:
    assert periods.PROBE_WINDOWS == {"month": "LAST_12_MONTHS", "week": "LAST_52_WEEKS", "year": "LAST_5_YEARS"}
    assert periods.N_PERIODS == {"month": 3, "week": 12, "year": 1}


@pytest.mark.parametrize(("first", "last", "period_type", "covers"), [
    ("202301", "202412", "month", True),  # 2023-01-01 .. 2025-01-01: two whole years
    ("202302", "202412", "month", False),  # one month short
    ("202302", "202501", "month", True),
    ("2024W01", "2026W01", "week", True),  # 2024-01-01 .. 2026-01-05 (2026W01 starts 2025-12-29)
    ("2024W01", "2025W52", "week", False),  # .. 2025-12-29, before 2026-01-01
    ("2025W01", "2026W02", "week", False),  # the contract test's 54 weeks
    ("2016W09", "2018W08", "week", False),  # 2016-02-29 (a leap day) .. 2018-02-26: short of 2018-02-28
    ("2016W09", "2018W09", "week", True),
    ("2020", "2021", "year", True),
])
def test_two_whole_years_as_chap_core_counts_them(first: str, last: str, period_type: str, covers: bool) -> None:
    """chap-core 2.5.1's `validate_training_data`: the end of the last period is at least two years
    (dateutil's relativedelta) after the start of the first."""
    assert periods.covers_training_years(first, last, period_type) is covers
    needed = periods.last_period_for_training(first, period_type)
    assert periods.covers_training_years(first, needed, period_type)
    assert not periods.covers_training_years(first, periods.shift(needed, period_type, -1), period_type)
