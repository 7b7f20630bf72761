"""Seed data: a small, realistic DHIS2 instance with a CHAP server behind its `chap` route.

- Prediction setups 3 (monthly, model 12), 5 (weekly, model 7, its start moving with "today":
  `weekly_start`) and 8 (monthly, model 12, `scheduleEnabled: false`), listed in that order.
- Org units with a Polygon, a MultiPolygon, a Point, and one district without geometry or code
  (`ouDist004`, in no setup: chap-core would leave it out of a forecast silently).
- Data elements whose values exist from a first period up to the last *complete* period
  before the fake's "today" (so "today" decides what data exists, as in a real instance).
"""

from __future__ import annotations

import copy
import zlib
from dataclasses import dataclass
from datetime import date

from tests.fake_dhis2 import periods

DHIS2_INFO = {
    "version": "2.41.2",
    "revision": "abc1234",
    "buildTime": "2025-01-15T10:00:00.000",
    "serverDate": "2026-03-10T08:15:00.000",
    "contextPath": "http://127.0.0.1",
    "systemName": "Demo HMIS",
}

CHAP_INFO = {
    "chap_core_version": "2.5.1",
    "python_version": "3.13.1",
    "server_date": "2026-03-10T08:15:02.123456+00:00",
    "server_time_zone_id": "Etc/UTC",
    "revision": "",
    "auth_required": False,
}

_POLYGON = {"type": "Polygon", "coordinates": [[[30.1, -1.9], [30.2, -1.9], [30.2, -2.0], [30.1, -1.9]]]}
_SOUTH = {"type": "Polygon", "coordinates": [[[30.1, -2.0], [30.2, -2.0], [30.2, -2.1], [30.1, -2.0]]]}
_MULTI = {"type": "MultiPolygon", "coordinates": [[[[30.3, -1.9], [30.4, -1.9], [30.4, -2.0], [30.3, -1.9]]]]}

ORG_UNITS = {
    "ouProv0001": {"id": "ouProv0001", "displayName": "Central Province", "code": "CP01", "level": 1,
                   "geometry": _POLYGON},
    "ouDist001": {"id": "ouDist001", "displayName": "North District", "code": "ND01", "level": 2,
                  "parent": {"id": "ouProv0001"}, "geometry": _POLYGON},
    "ouDist002": {"id": "ouDist002", "displayName": "South District", "level": 2, "parent": {"id": "ouProv0001"},
                  "geometry": _SOUTH},
    "ouDist003": {"id": "ouDist003", "displayName": "East District", "level": 2,
                  "parent": {"id": "ouProv0001"}, "geometry": _MULTI},
    "ouDist004": {"id": "ouDist004", "displayName": "West District", "level": 2, "parent": {"id": "ouProv0001"}},
    "ouHC000001": {"id": "ouHC000001", "displayName": "Lakeside Health Centre", "code": "LHC1", "level": 3,
                   "parent": {"id": "ouDist001"}, "geometry": {"type": "Point", "coordinates": [30.15, -1.95]}},
}


@dataclass(frozen=True)
class DataElement:
    id: str
    period_type: str
    first_period: str
    scale: int  # values are in [0, scale)
    decimals: int  # places after the point (0: whole numbers)

    def holds(self, period: periods.Period, today: date) -> bool:
        """Whether analytics has values of this element in `period` (from its first period to the
        last complete one before today)."""
        first = periods.parse(self.first_period)
        last_complete = periods.step(periods.current(self.period_type, today), -1)
        return period[0] == self.period_type and first[1] <= period[1] <= last_complete[1]

    def raw(self, period_id: str, org_unit: str) -> str:
        """The value held for a period (DHIS2's id) and org unit, at full precision, generated on
        demand from a hash (nothing is stored, so a national-scale instance costs no memory)."""
        digest = zlib.crc32(f"{self.id}|{period_id}|{org_unit}".encode())
        if self.decimals:
            factor = 10 ** self.decimals
            return f"{digest % (self.scale * factor) / factor:.{self.decimals}f}"
        return str(digest % self.scale)

    def value(self, period: periods.Period, org_unit: str, today: date) -> str | None:
        """The value DHIS2 analytics holds, as the string it would send, or None (no row)."""
        return self.raw(periods.dhis2_id(period), org_unit) if self.holds(period, today) else None


DATA_ELEMENTS = {
    de.id: de
    for de in (
        DataElement("deCase001", "month", "202101", 400, 0),
        DataElement("deRain001", "month", "202101", 300, 1),
        DataElement("deTemp001", "month", "202101", 35, 1),
        DataElement("deCaseW01", "week", "2024W1", 90, 0),
        DataElement("deRainW01", "week", "2024W1", 80, 1),
    )
}


SCHEDULE_CRONS = {"month": "0 6 2 * *", "week": "0 6 * * 1"}


def _setup(setup_id: int, name: str, model_id: int, model_name: str, template: dict, period_type: str,
           start: str, org_units: list[str], covariates: list[tuple[str, str]], enabled: bool) -> dict:
    return {
        "id": setup_id,
        "name": name,
        "created": "2026-02-01T09:00:00",
        "backtestId": 10 + setup_id,
        "configuredModel": {"id": model_id, "name": model_name, "userOptionValues": {},
                            "additionalContinuousCovariates": [], "modelTemplate": template},
        "startPeriod": start,
        "orgUnits": org_units,
        "covariateSources": [{"covariate": c, "dataElementId": de} for c, de in covariates],
        "periodType": period_type,
        # chap-core's schedule of the setup (the DHIS2 Modeling App edits it; chap-core never runs it):
        # a monthly setup monthly, a weekly one weekly, none when disabled
        "scheduleCronExpression": SCHEDULE_CRONS[period_type] if enabled else None,
        "scheduleEnabled": enabled,
        "quantileTargets": [{"quantile": "0.5", "dataElementId": "deMed0001"}],
        "alertPolicy": None,
    }


_EWARS = {"id": 4, "name": "chapkit-ewars-model", "displayName": "CHAP-EWARS", "target": "disease_cases",
          "requiredCovariates": ["population"], "supportedPeriodType": "month"}
_WEEKLY = {"id": 6, "name": "auto-regressive-weekly", "displayName": "Auto-regressive (weekly)",
           "target": "disease_cases", "requiredCovariates": [], "supportedPeriodType": "week"}

_MONTHLY_COVARIATES = [("disease_cases", "deCase001"), ("rainfall", "deRain001"), ("mean_temperature", "deTemp001")]


WEEKLY_HISTORY = 114  # weeks: two whole years for chap-core 2.5.1 (104), within the flow's cap (120)


def weekly_start(today: date) -> str:
    """Setup 5's start: 114 weeks before the fake's current week, but not before its data begins
    (2024W01). A weekly setup with a fixed start works for only 16 weeks between chap-core's
    two-year rule and the flow's 120-period cap, so the fake's moves with its today: 2024W01 on
    the tests' 2026-03-10, recent enough on the real date for `make run`'s scheduled runs."""
    first = periods.parse(DATA_ELEMENTS["deCaseW01"].first_period)
    start = max(first, periods.step(periods.current("week", today), -WEEKLY_HISTORY), key=lambda p: p[1])
    return periods.chap_id(start)


def prediction_setups(today: date) -> dict[int, dict]:
    setups = [
        _setup(3, "Malaria monthly", 12, "chapkit-ewars-model", _EWARS, "month", "202301",
               ["ouDist001", "ouDist002", "ouDist003"], _MONTHLY_COVARIATES, True),
        _setup(5, "Dengue weekly", 7, "auto-regressive-weekly", _WEEKLY, "week", weekly_start(today),
               ["ouDist001", "ouDist003"], [("disease_cases", "deCaseW01"), ("rainfall", "deRainW01")], True),
        _setup(8, "Malaria monthly (north pilot)", 12, "chapkit-ewars-model", _EWARS, "month", "202401",
               ["ouDist001"], _MONTHLY_COVARIATES, False),
    ]
    return {setup["id"]: setup for setup in copy.deepcopy(setups)}
