"""The reads of one DHIS2 login, through the flow's own clients and checks (`flows.http`,
`flows.checks`): DHIS2's system info (the login), chap-core's through the `chap` route, the route's
timeout, the prediction setups, and for each setup some project runs: the end-period probe (the
latest period of each covariate, the read the calculated end mode makes) and the org units with
their geometry. Only GETs, each within the flow's read budgets; the data itself is never read
(its reads are planned and counted, not made), nothing is submitted and nothing is written.

Everything a server answers is kept as data for the pure judge (`compiler.preflight.judge`); an
error is kept as its text, never raised: one DHIS2 that does not answer is its projects' failure,
not preflight's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from flows import checks
from flows.api import ChapApi, Dhis2Api, ServiceError
from flows.checks import LatestPeriods, OrgUnitGeometry
from flows.dhis2_reads import ReadBudget, ReadPlanError
from flows.http import chap_client, dhis2_client
from flows.periods import PeriodError
from flows.report import RouteCheck
from flows.setups import SetupItem


@dataclass(frozen=True)
class Failure:
    """A read that gave no usable answer: its text and, if it got one, the HTTP status."""

    text: str
    status: int | None = None


@dataclass
class InstanceFacts:
    """What one DHIS2 login (and the chap-core behind its route) answered."""

    base_url: str
    username: str
    dhis2: str | Failure | None = None
    chap: str | Failure | None = None
    chap_time_zone: str | None = None
    route: RouteCheck | None = None
    setups: list[SetupItem] | Failure | None = None
    latest: dict[Any, LatestPeriods | Failure] = field(default_factory=dict)
    geometry: dict[Any, OrgUnitGeometry | Failure] = field(default_factory=dict)
    analytics_line: int = 0  # the request line of an empty analytics read on this DHIS2 (the plans' base)
    org_unit_line: int = 0

    @property
    def listed(self) -> list[SetupItem]:
        return self.setups if isinstance(self.setups, list) else []


def _failure(exc: BaseException) -> Failure:
    if isinstance(exc, (ServiceError, ReadPlanError, PeriodError)):
        return Failure(str(exc), getattr(exc, "status", None))
    return Failure(f"{type(exc).__name__}: {exc}")


def read_services(base_url: str, username: str, password: str, budget: ReadBudget) -> InstanceFacts:
    """DHIS2, chap-core, the route and the setups, in the flow's order; stops where the flow would."""
    facts = InstanceFacts(base_url, username)
    with dhis2_client(base_url, username, password) as dhis2_http, chap_client(base_url, username, password) as chap_http:
        dhis2, chap = Dhis2Api(dhis2_http), ChapApi(chap_http)
        facts.analytics_line, facts.org_unit_line = checks.analytics_line(dhis2), checks.org_unit_line(dhis2)
        try:
            facts.dhis2 = checks.dhis2_version(dhis2)
        except Exception as exc:  # noqa: BLE001 (the project's failure, reported as such)
            facts.dhis2 = _failure(exc)
            return facts
        facts.route = checks.chap_route(dhis2)
        try:
            info = chap.system_info()
            facts.chap, facts.chap_time_zone = checks.describe_chap(info), str(info.get("server_time_zone_id") or "")
        except Exception as exc:  # noqa: BLE001
            facts.chap = _failure(exc)
            return facts
        try:
            facts.setups = checks.prediction_setups(chap)
        except Exception as exc:  # noqa: BLE001
            facts.setups = _failure(exc)
    return facts


def read_setups(facts: InstanceFacts, password: str, setup_ids: Iterable[Any], budget: ReadBudget) -> None:
    """For each of these setups: the latest period of each covariate (the flow's end-period probe) and
    the org units with their geometry (the flow's org-unit read); each kept, or its failure."""
    by_id = {item.raw_id: item.setup for item in facts.listed if item.setup is not None}
    with dhis2_client(facts.base_url, facts.username, password) as dhis2_http:
        dhis2 = Dhis2Api(dhis2_http)
        for setup_id in setup_ids:
            setup = by_id.get(setup_id)
            if setup is None:
                continue
            try:
                facts.latest[setup_id] = checks.latest_periods(dhis2, setup, budget)
            except Exception as exc:  # noqa: BLE001
                facts.latest[setup_id] = _failure(exc)
            try:
                facts.geometry[setup_id] = checks.org_unit_geometry(dhis2, setup, budget)
            except Exception as exc:  # noqa: BLE001
                facts.geometry[setup_id] = _failure(exc)
