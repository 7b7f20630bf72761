"""What a run checks and reads before it submits anything, without Prefect.

`flows.steps` wraps each of these in the Prefect task an operator sees fail; `chapctl preflight`
(compiler/preflight) calls the same functions against the same DHIS2 and CHAP, so the two can
never disagree about a rule: the services and their versions, the `chap` route and its timeout,
the prediction setups, each setup's end period (every end mode), its period range (the 120-period
cap), the latest period each covariate has data for, the org units and their geometry, and the
reads that fit DHIS2's limits (`flows.dhis2_reads`, planned the one way here: `analytics_plan`,
`org_unit_plan`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from flows import periods
from flows.api import CHAP_ROUTE_CODE, ChapApi, Dhis2Api, ServiceError
from flows.dhis2_reads import Chunk, ReadBudget, ReadStats, halve_ids, plan_analytics, plan_ids, run_reads
from flows.prediction_request import feature_collection, latest_period_per_element, observations
from flows.report import RouteCheck
from flows.run_config import EndSpec
from flows.setups import PredictionSetup, SetupItem, parse_setup


@dataclass(frozen=True)
class OrgUnitGeometry:
    geojson: dict[str, Any]
    not_found: list[str] = field(default_factory=list)
    reads: ReadStats = field(default_factory=ReadStats)


@dataclass(frozen=True)
class LatestPeriods:
    """The probe's answer: the latest period each data element has data for (in the probe's window)."""

    latest: dict[str, str]
    reads: ReadStats


@dataclass(frozen=True)
class SetupData:
    """A setup's analytics, already as chap-core's `providedData` items."""

    provided: list[dict[str, Any]]
    reads: ReadStats  # its `records` are the analytics rows received


def dhis2_version(dhis2: Dhis2Api) -> str:
    info = dhis2.system_info()
    return f"DHIS2 {info['version']} ({info.get('systemName') or 'unnamed system'})"


def chap_version(chap: ChapApi) -> str:
    return describe_chap(chap.system_info())


def describe_chap(info: dict[str, Any]) -> str:
    """chap-core's `/system/info` (`ChapApi.system_info`, its keys checked) in one line."""
    return f"chap-core {info['chap_core_version']} (python {info['python_version']})"


def chap_route(dhis2: Dhis2Api) -> RouteCheck:
    """The `chap` route's `responseTimeoutSeconds`, where the user may read it; "unknown" (never an
    error) when DHIS2 refuses, does not list the route, or has no such field."""
    try:
        routes = dhis2.routes(CHAP_ROUTE_CODE)
    except ServiceError as exc:
        return RouteCheck(None, f"could not read the route ({exc})")
    if not routes:
        return RouteCheck(None, f"DHIS2 lists no route {CHAP_ROUTE_CODE!r} to this user")
    seconds = routes[0].get("responseTimeoutSeconds")
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
        return RouteCheck(None, "DHIS2 lists no responseTimeoutSeconds for the route (before DHIS2 40.10 / 41.6 "
                                "the timeout is fixed: 10 s, or 30 s in 40.8-40.9 and 41.4-41.5)")
    return RouteCheck(seconds)


def prediction_setups(chap: ChapApi) -> list[SetupItem]:
    return [parse_setup(raw) for raw in chap.prediction_setups()]


def end_period(setup: PredictionSetup, end: EndSpec, today: date) -> str:
    """End period for the fixed and offset modes (no DHIS2 call needed): the period containing
    `end_date`, or `offset` periods before the one containing today."""
    if end.mode == "fixed":
        return periods.period_containing(end.end_date, periods.check_period_type(setup.period_type))
    return periods.offset_end_period(today, periods.check_period_type(setup.period_type), end.offset)


def probe_window(setup: PredictionSetup) -> str:
    """The relative period the calculated end mode reads: the last complete stretch of the setup's type."""
    return periods.PROBE_WINDOWS[periods.check_period_type(setup.period_type)]


def latest_periods(dhis2: Dhis2Api, setup: PredictionSetup, budget: ReadBudget) -> LatestPeriods:
    """The latest period with data of each of the setup's data elements, within `probe_window`: what
    the calculated end mode takes the earliest of (`prediction_request.calculated_end_period`)."""
    latest: dict[str, str] = {}
    stats = read_analytics(dhis2, setup.data_elements, [probe_window(setup)], setup.org_units, budget,
                           lambda rows: latest_period_per_element(rows, setup.period_type, latest))
    return LatestPeriods(latest, stats)


def setup_data(dhis2: Dhis2Api, setup: PredictionSetup, input_periods: list[str], budget: ReadBudget) -> SetupData:
    """Every value of the setup's covariates, read in chunks that fit DHIS2's limits and turned
    into chap-core's items as each chunk arrives."""
    provided: list[dict[str, Any]] = []
    stats = read_analytics(dhis2, setup.data_elements, input_periods, setup.org_units, budget,
                           lambda rows: observations(setup, rows, provided))
    return SetupData(provided, stats)


def org_unit_geometry(dhis2: Dhis2Api, setup: PredictionSetup, budget: ReadBudget) -> OrgUnitGeometry:
    """The setup's org units with their geometry, as GeoJSON features (those without a geometry left
    out, as chap-core needs them), and the ids DHIS2 does not know."""
    units: list[dict[str, Any]] = []
    stats = run_reads(org_unit_plan(dhis2, setup, budget), dhis2.org_units, halve_ids,
                      lambda page: units.extend(page.items), budget.concurrency)
    found = {unit["id"] for unit in units}
    return OrgUnitGeometry(
        geojson=feature_collection(setup, units),
        not_found=[ou for ou in setup.org_units if ou not in found],
        reads=stats,
    )


def analytics_plan(dhis2: Dhis2Api, dx: Sequence[str], pe: Sequence[str], ou: Sequence[str],
                   budget: ReadBudget) -> list[Chunk]:
    """The analytics reads of (data elements × periods × org units) that fit the budgets, as this
    DHIS2's request lines measure them (`flows.dhis2_reads.plan_analytics`; ReadPlanError when even
    one cell does not fit)."""
    return analytics_chunks(dx, pe, ou, budget, analytics_line(dhis2))


def analytics_chunks(dx: Sequence[str], pe: Sequence[str], ou: Sequence[str], budget: ReadBudget,
                     line: int) -> list[Chunk]:
    """`analytics_plan` for a DHIS2 whose empty analytics read has a `line`-byte request line."""
    return plan_analytics(dx, pe, list(dict.fromkeys(ou)), budget, line)


def analytics_line(dhis2: Dhis2Api) -> int:
    """The request line of an analytics read with every dimension empty, on this DHIS2 (its context
    path included): what every item of a read adds to."""
    return dhis2.request_line(dhis2.ANALYTICS, dhis2.analytics_params([], [], []))


def org_unit_line(dhis2: Dhis2Api) -> int:
    """The request line of an org-unit read with no id, on this DHIS2."""
    return dhis2.request_line(dhis2.ORG_UNITS, dhis2.org_unit_params([]))


def org_unit_plan(dhis2: Dhis2Api, setup: PredictionSetup, budget: ReadBudget) -> list[tuple[str, ...]]:
    """The org-unit reads of the setup, each within the request-line budget."""
    return org_unit_groups(setup.org_units, budget, org_unit_line(dhis2))


def org_unit_groups(org_units: Sequence[str], budget: ReadBudget, line: int) -> list[tuple[str, ...]]:
    """`org_unit_plan` for a DHIS2 whose empty org-unit read has a `line`-byte request line."""
    return plan_ids(list(dict.fromkeys(org_units)), budget, line)


def read_analytics(dhis2: Dhis2Api, dx: Sequence[str], pe: Sequence[str], ou: Sequence[str], budget: ReadBudget,
                   consume: Callable[[list[list[str]]], Any]) -> ReadStats:
    """Every (data element, period, org unit) in reads that fit the budgets (`analytics_plan`);
    `consume` gets each read's rows as they arrive."""
    return run_reads(analytics_plan(dhis2, dx, pe, ou, budget), lambda chunk: dhis2.analytics(chunk.dx, chunk.pe,
                                                                                               chunk.ou),
                     Chunk.halves, lambda page: consume(page.items), budget.concurrency)
