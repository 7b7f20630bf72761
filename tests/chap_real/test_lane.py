"""The real chap-core lane works: healthy, the seeded setups listed, a prediction per setup.

The prediction goes the flow's way: the flow's parser reads the listed setup, the flow's builder
makes the `/run` body and the flow's chap client submits it, polls the job and reads the result.
"""

from __future__ import annotations

import time

import httpx
import pytest

from flows.api import ChapApi
from flows.prediction_request import feature_collection, prediction_request
from flows.setups import parse_setup
from tests.chap_real import seed

# The first test also waits for the lane: an environment build (about a minute with a warm uv
# cache) plus the start and the seeding backtests.
pytestmark = [pytest.mark.chap, pytest.mark.timeout(900)]


@pytest.fixture
def chap_api(real_chap):
    with httpx.Client(base_url=real_chap.url, timeout=60) as client:
        yield ChapApi(client)


def test_healthy(real_chap, chap_api):
    assert httpx.get(f"{real_chap.url}/health/ready").json() == {
        "status": "success", "checks": {"db": "ok", "redis": "ok", "celery": "ok"}}
    assert chap_api.system_info()["chap_core_version"] == "2.5.1"


def test_seeded_setups_listed(real_chap, chap_api):
    listed = {item.raw_id: item for item in map(parse_setup, chap_api.prediction_setups())}
    for name, expected in real_chap.setups.items():
        setup = listed[expected.id].setup
        assert setup is not None, listed[expected.id].invalid
        assert (setup.period_type, setup.start_period, setup.org_units) == (
            expected.period_type, expected.periods[0], expected.org_units), name
        assert {s.covariate: s.data_element_id for s in setup.covariate_sources} == expected.sources
        assert setup.configured_model.name == "naive_model" and setup.schedule_enabled


@pytest.mark.parametrize("kind", ["monthly", "weekly"])
def test_prediction_completes(real_chap, chap_api, kind):
    seeded = real_chap.setups[kind]
    setup = next(item.setup for item in map(parse_setup, chap_api.prediction_setups()) if item.raw_id == seeded.id)
    units = [{"id": f["id"], "geometry": f["geometry"], "level": 2} for f in seed.geojson(seeded.org_units)["features"]]
    body = prediction_request(setup, seeded.periods[0], seeded.periods[-1],
                              seed.observations(seeded.sources, seeded.org_units, seeded.periods),
                              feature_collection(setup, units))
    job_id = chap_api.run_setup(seeded.id, body)
    deadline = time.monotonic() + 60
    while (status := chap_api.job_status(job_id)) in ("PENDING", "STARTED") and time.monotonic() < deadline:
        time.sleep(0.2)
    (job,) = httpx.get(f"{real_chap.url}/v1/jobs", params={"ids": job_id}).json()
    assert status == "SUCCESS", job
    assert job["prediction_setup_id"] == seeded.id and job["type"] == "create_prediction"

    entries = chap_api.prediction_entries(int(job["result"]))
    periods = {entry["period"] for entry in entries}
    assert len(periods) == body["nPeriods"] and min(periods) > seeded.periods[-1]
    per_unit = {ou: [e for e in entries if e["orgUnit"] == ou] for ou in seeded.org_units}
    assert all(len(rows) == len(periods) * 5 for rows in per_unit.values()), per_unit  # 5 default quantiles
    assert all(e["value"] >= 0 for e in entries)
