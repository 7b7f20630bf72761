"""`chapctl preflight` with the real chap-core 2.5.1 behind the fake DHIS2's route, and with the fake's
built-in chap-core: the same projects, the same failure classes, the same verdicts and causes.

Each class is a small repository of projects (written and compiled as an operator would) run
against both sides: `fake` (the fake DHIS2 with its own chap-core: setups 3 monthly and 5 weekly)
and `real` (the fake DHIS2 forwarding its `chap` route to the session's real chap-core: its seeded
monthly and weekly setups, over the same org units and data elements). What a class changes on the
chap side is changed through chap-core's own API on both (PATCH of a setup's schedule, as the DHIS2
Modeling App does) and restored after it.

The real chap-core of the session also holds other tests' setups of the same model (the contract's
leaky setup, a national one); findings about setups outside the scenario's two are left out of the
comparison.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from compiler.preflight import PreflightOptions, preflight
from compiler.preflight.model import FAIL, OK, WARN, Finding
from tests.fake_dhis2 import FakeDhis2Server
from tests.lanes import lane
from tests.preflight.scenario import PASSWORD, PASSWORD_ENV, TODAY, USERNAME, project, write_repo

pytestmark = [pytest.mark.chap, pytest.mark.timeout(900)]

ROUTE = "/api/routes/chap/run"


@dataclass
class Side:
    name: str
    fake: FakeDhis2Server
    monthly: tuple[int, int]  # (setup id, configured model id)
    weekly: tuple[int, int]

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.fake.url + ROUTE, auth=(USERNAME, PASSWORD), timeout=60)

    def setups(self) -> list[dict[str, Any]]:
        with self.client() as client:
            return client.get("/v1/crud/prediction-setups").raise_for_status().json()

    def patch(self, setup_id: int, **fields: Any) -> None:
        with self.client() as client:
            client.patch(f"/v1/crud/prediction-setups/{setup_id}", json=fields).raise_for_status()


@pytest.fixture(scope="module", params=["fake", "real"])
@lane("chap", group="chap")
def side(request) -> Iterator[Side]:
    chap_url = request.getfixturevalue("real_chap").url if request.param == "real" else None
    fake = FakeDhis2Server(username=USERNAME, password=PASSWORD, today=TODAY, chap_url=chap_url).start()
    try:
        if chap_url is None:
            yield Side("fake", fake, (3, 12), (5, 7))
        else:
            real_chap = request.getfixturevalue("real_chap")
            listed = {s["id"]: s for s in Side("real", fake, (0, 0), (0, 0)).setups()}
            ids = (real_chap.setups["monthly"].id, real_chap.setups["weekly"].id)
            yield Side("real", fake, *((i, listed[i]["configuredModel"]["id"]) for i in ids))
    finally:
        fake.stop()


@pytest.fixture
def fresh(side) -> Iterator[Side]:
    """The side with the fake DHIS2 reset (route timeout 60 s, as advised) and every chap-side schedule
    this test changes restored afterwards."""
    side.fake.admin.reset(TODAY)
    side.fake.admin.route(responseTimeoutSeconds=60)
    before = {s["id"]: (s["scheduleEnabled"], s["scheduleCronExpression"]) for s in side.setups()}
    yield side
    side.fake.admin.reset(TODAY)  # the route back (a test may have renamed it), so chap-core can be reached
    for s in side.setups():
        if s["id"] in before and (s["scheduleEnabled"], s["scheduleCronExpression"]) != before[s["id"]]:
            enabled, cron = before[s["id"]]
            side.patch(s["id"], scheduleCronExpression=cron, scheduleEnabled=enabled)


def both(side: Side) -> dict[str, dict]:
    """Two fine projects: the monthly setup by id on its chap-side cron, the weekly one calculated."""
    (m, m_model), (w, w_model) = side.monthly, side.weekly
    return {"monthly": project(side.fake.url, model_id=m_model, setup_id=m, cron="0 6 2 * *"),
            "weekly": project(side.fake.url, model_id=w_model, setup_id=w, end_mode="calculated", offset=None,
                              cron="0 6 * * 1")}


def monthly_like(side: Side, **changes: Any) -> dict[str, dict]:
    """The fine pair with the monthly project changed."""
    projects = both(side)
    (m, m_model) = side.monthly
    fields = dict(model_id=m_model, setup_id=m, cron="0 6 2 * *")
    fields.update(changes)
    projects["monthly"] = project(side.fake.url, **fields)
    return projects


def disable_model(side: Side) -> None:
    """Every enabled setup of the monthly setup's model disabled in chap-core (restored by `fresh`)."""
    for s in side.setups():
        if s["configuredModel"]["id"] == side.monthly[1] and s["scheduleEnabled"]:
            side.patch(s["id"], scheduleEnabled=False)


# (class, what to do to the side, the projects, the monthly project's verdict, its causes' checks)
CLASSES: list[tuple[str, Callable[[Side], None] | None, Callable[[Side], dict], str, set[str]]] = [
    ("ok", None, both, OK, set()),
    ("wrong-password", None, lambda s: monthly_like(s, block="wrong-dhis2", password_env="WRONG_PASSWORD"), FAIL,
     {"credentials"}),
    ("route-missing", lambda s: s.fake.admin.route(code="chap-core", id="Zy0ChapCore"), both, FAIL, {"route"}),
    ("route-timeout", lambda s: s.fake.admin.route(responseTimeoutSeconds=5), both, WARN, {"route_timeout"}),
    ("unknown-model", None, lambda s: monthly_like(s, model_id=999, setup_id=None), FAIL, {"selection"}),
    ("runs-none", disable_model, lambda s: monthly_like(s, setup_id=None), FAIL, {"selection"}),
    ("no-data", lambda s: s.fake.admin.faults(data_gaps=[{"dataElement": "deRain001"}]),
     lambda s: monthly_like(s, end_mode="calculated", offset=None), FAIL, {"covariates"}),
    ("short-history", None, lambda s: monthly_like(s, end_mode="fixed", offset=None, end_date="2024-06-30"), FAIL,
     {"history"}),
    ("no-geometry", lambda s: s.fake.admin.org_unit("ouDist002", geometry=None), both, FAIL, {"geometry"}),
    ("cadence", None, lambda s: monthly_like(s, cron="0 6 * * 1"), WARN, {"cadence", "chap_schedule"}),
    ("chap-cron", None, lambda s: monthly_like(s, cron="0 7 2 * *"), WARN, {"chap_schedule"}),
    ("disabled-there", lambda s: s.patch(s.monthly[0], scheduleEnabled=False), both, WARN, {"chap_schedule"}),
]


def own(findings: list[Finding], side: Side) -> list[Finding]:
    """The findings about the scenario's setups (or no setup): the real chap-core holds others."""
    return [f for f in findings if f.setup in (None, side.monthly[0], side.weekly[0])]


@pytest.mark.parametrize("name, prepare, projects, verdict, checks", CLASSES, ids=[c[0] for c in CLASSES])
def test_the_same_verdict_with_the_fake_and_the_real_chap_core(fresh, tmp_path, name, prepare, projects, verdict,
                                                               checks):
    if prepare is not None:
        prepare(fresh)
    root = write_repo(tmp_path, projects(fresh))
    env = {"CHAP_TODAY": TODAY.isoformat(), PASSWORD_ENV: PASSWORD, "WRONG_PASSWORD": "not-the-password"}
    report = preflight(root, PreflightOptions(), env)
    results = {p.name: p for p in report.projects}
    causes = own(results["monthly"].causes, fresh)
    got = FAIL if any(c.level == FAIL for c in causes) else WARN if causes else OK
    assert (got, {c.check for c in causes}) == (verdict, checks), [(c.check, c.text) for c in causes]
    if name == "ok":
        weekly = own(results["weekly"].causes, fresh)
        assert weekly == [], [(c.check, c.text) for c in weekly]
        (run,) = results["weekly"].runs
        assert (run.setups[0].end_period, run.setups[0].periods) == ("2026W10", 114)
    assert {r["method"] for r in fresh.fake.admin.requests() if r["path"].startswith("/api/")} <= {"GET", "PATCH"}
    assert not [r for r in fresh.fake.admin.requests() if r["method"] != "GET" and "/run" in r["path"][len(ROUTE):]]
