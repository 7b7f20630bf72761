"""One realistic national case end to end on the real chap-core 2.5.1: 150 districts weekly with the
naive model's covariates over 2024W01..2026W10 (chap-core needs two whole years), the fake DHIS2
with its limits on forwarding its `chap` route to chap-core, the real flow run by Prefect.

chap-core's side is seeded as the modeling app does it (a backtest over the same org units, geometry,
data elements and values, promoted to a setup: `tests.chap_real.seed.seed_national`); the fake
generates the DHIS2 side (`seed_scale`). The case has a chap-core of its own (its xdist group runs
beside the chap lane's), with chap-core's baseline models retired: they would run over the
backtest's 150 districts for longer than the backtest itself and play no part in a prediction.
Slow (about a minute: the backtest over 150 districts takes most of it), so it runs in `make
test`/CI; the flow lane's fake-only scale tests (tests/flows/test_flow_scale.py) cover the same
reads in seconds.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from flows.blocks import Dhis2Credentials
from tests.chap_real import seed
from tests.chap_real.chap import ChapCore
from tests.fake_dhis2 import FakeDhis2Server
from tests.flows.helpers import DEFAULT_TODAY, PASSWORD, USERNAME
from tests.lanes import lane

pytestmark = [pytest.mark.chap, pytest.mark.flows, pytest.mark.slow, pytest.mark.timeout(1200)]

DISTRICTS = 150
FAKE_SETUP = 20  # the fake's numbering of the generated ids; chap-core's setup id is its own


@pytest.fixture(scope="module")
@lane("chap", group="chap-national")
def national_chap(tmp_path_factory) -> Iterator[ChapCore]:
    """This module's own chap-core, without baseline models."""
    with ChapCore.start(tmp_path_factory.mktemp("chap-national"), baselines=False) as chap:
        yield chap


@pytest.fixture(scope="module")
def national(national_chap):
    """(the fake DHIS2 forwarding to the real chap-core, chap-core's setup, the fake's setup)."""
    with FakeDhis2Server(username=USERNAME, password=PASSWORD, today=DEFAULT_TODAY,
                         chap_url=national_chap.url) as fake:
        chap_setup, fake_setup = seed.seed_national(national_chap, fake, FAKE_SETUP, DISTRICTS, 3, 114)
        yield fake, chap_setup, fake_setup


@pytest.fixture
def credentials(national) -> Dhis2Credentials:  # the flow talks to this module's fake
    return Dhis2Credentials(base_url=national[0].url + "/", username=USERNAME, password=PASSWORD)


def test_150_districts_weekly_forecast_every_district_on_the_real_chap_core(national, national_chap, run_flow,
                                                                            monkeypatch) -> None:
    fake, chap_setup, fake_setup = national
    fake.admin.route(responseTimeoutSeconds=60)  # as docs/operations.md tells a ministry to set it
    monkeypatch.setenv("CHAP_TODAY", DEFAULT_TODAY.isoformat())
    monkeypatch.setenv("CHAP_SCHEDULER_POLL_INTERVAL_SECONDS", "0.5")
    assert len(chap_setup.org_units) == DISTRICTS and chap_setup.periods[0] == "2024W01"
    assert set(chap_setup.org_units) == set(fake_setup["orgUnits"])

    run = run_flow(prediction_setup_id=chap_setup.id)

    assert run.state.is_completed(), run.report
    assert run.field(chap_setup.name, "Status") == "SUCCEEDED"
    assert run.field(chap_setup.name, "Values sent to chap") == f"{DISTRICTS * 3 * 114:,}"
    with httpx.Client(base_url=national_chap.url, timeout=120) as chap:
        everything = chap.get("/v1/jobs").json()
        assert not [job for job in everything if job["type"] == "run_baseline"]  # retired: none ran
        jobs = [job for job in chap.get("/v1/jobs", params={"predictionSetupId": chap_setup.id}).json()
                if job["type"] == "create_prediction"]
        assert len(jobs) == 1, jobs
        assert jobs[0]["status"] == "SUCCESS"
        prediction = int(jobs[0]["result"])
        entries = chap.get(f"/v1/analytics/prediction-entry/{prediction}", params={"quantiles": "0.5"}).json()
    assert {entry["orgUnit"] for entry in entries} == set(chap_setup.org_units)
    assert sorted({entry["period"] for entry in entries}) == [f"2026W{w}" for w in range(11, 23)]
    assert run.field(chap_setup.name, "Prediction") == str(prediction)
    assert run.field(chap_setup.name, "Org units").endswith(f"sent {DISTRICTS} ({DISTRICTS} with geometry); "
                                                            f"predicted {DISTRICTS}")
    # the five quantiles (~0.7 MB) would be a 502 through DHIS2's route: the flow read the median
    assert run.field(chap_setup.name, "Prediction values returned") == f"{DISTRICTS * 12:,}"
    assert all(r["status"] == 200 for r in fake.admin.requests("/api/*")), "a request went past DHIS2's limits"
