"""Realistic prediction setups, created through chap-core's own REST API as the modeling app does.

    setups = seed_setups(chap)      # {"monthly": Setup(id=1, ...), "weekly": Setup(id=2, ...)}

A prediction setup can only be made from a backtest (chap-core snapshots the backtest dataset's
first period, org units, period type and covariate -> data element mapping into the setup), so
each setup is: `POST /v1/analytics/create-backtest-with-data/` with generated data, wait for the
job, then `POST /v1/crud/prediction-setups` with the backtest id.

The data mirrors the fake DHIS2 (tests/fake_dhis2/seed.py) so the flow can later send the fake's
analytics to this chap-core: the org unit ids and data element ids of the fake's setups 3
(monthly, from 202301 as there) and 5 (weekly, but from 2024W01: see WEEKS). The values are made
up (seasonal curves with deterministic noise); only their shape matters to chap-core. Both setups
use `naive_model`, which runs in process in well under a second.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import httpx

# The fake's districts; chap-core drops a location without a polygon from a backtest, so each
# gets a small square here (the fake serves ouDist002 without geometry, as a real DHIS2 may).
DISTRICTS = {"ouDist001": (30.1, -1.9), "ouDist002": (30.1, -2.1), "ouDist003": (30.3, -1.9)}
MONTHLY_SOURCES = {"disease_cases": "deCase001", "rainfall": "deRain001", "mean_temperature": "deTemp001"}
WEEKLY_SOURCES = {"disease_cases": "deCaseW01", "rainfall": "deRainW01"}
# chap-core fails a prediction job whose data spans less than two years ("Training data must
# cover at least two whole years"), so the weekly setup starts at the fake's first weekly data,
# 2024W01, not at its setup 5's 2025W01.
MONTHS = [f"{year}{month:02d}" for year in (2023, 2024, 2025) for month in range(1, 13)]
WEEKS = [f"{d.isocalendar().year}W{d.isocalendar().week:02d}"
         for d in (date(2024, 1, 1) + timedelta(weeks=i) for i in range(106))]  # 2024W01..2026W02
JOB_TIMEOUT = 120.0
# chap-core's own schedule of each setup (as the DHIS2 Modeling App would set it): as the fake's seed has it
SCHEDULE_CRONS = {"month": "0 6 2 * *", "week": "0 6 * * 1"}


@dataclass(frozen=True)
class Setup:
    """A seeded prediction setup: its id and what the flow needs to build a request for it."""

    id: int
    name: str
    period_type: str  # "month" | "week"
    model: str  # configured model name
    org_units: tuple[str, ...]
    sources: dict[str, str]  # covariate -> DHIS2 data element id
    periods: tuple[str, ...]  # the periods the backtest was given


def geojson(org_units: list[str] | tuple[str, ...], shapes: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """A FeatureCollection shaped like the flow's: `shapes[ou]` (a GeoJSON geometry) per org unit,
    by default a 0.1-degree square at the fake's district's corner."""
    features = []
    for ou in org_units:
        if shapes is None:
            x, y = DISTRICTS[ou]
            geometry = {"type": "Polygon", "coordinates": [[[x, y], [x + 0.1, y], [x + 0.1, y - 0.1], [x, y - 0.1],
                                                            [x, y]]]}
        else:
            geometry = shapes[ou]
        features.append({"type": "Feature", "id": ou, "geometry": geometry,
                         "properties": {"id": ou, "level": 2, "displayName": ou, "parent": "ouProv0001"}})
    return {"type": "FeatureCollection", "features": features}


def value(feature: str, ou: str, period: str, index: int, per_year: int) -> float:
    """A plausible value: a seasonal curve per feature plus noise seeded by (feature, ou, period)."""
    season = math.sin(2 * math.pi * index / per_year)
    noise = random.Random(f"{feature}|{ou}|{period}").random()
    if feature == "disease_cases":
        scale = 120 if per_year == 12 else 30
        return float(round(scale * (1.5 + season) * (0.8 + 0.4 * noise)))
    if feature == "rainfall":
        return round(max(0.0, (150 if per_year == 12 else 35) * (1 + season) * (0.6 + 0.8 * noise)), 1)
    return round(24 + 3 * season + noise, 1)  # mean_temperature


def observations(sources: dict[str, str], org_units, periods) -> list[dict[str, Any]]:
    """chap-core `providedData` rows for every (covariate, org unit, period)."""
    per_year = 52 if "W" in periods[0] else 12
    return [
        {"featureName": feature, "orgUnit": ou, "period": period, "value": value(feature, ou, period, i, per_year)}
        for feature in sources for ou in org_units for i, period in enumerate(periods)
    ]


def wait_for_job(client: httpx.Client, job_id: str, timeout: float = JOB_TIMEOUT) -> dict[str, Any]:
    """Poll `/v1/jobs/{id}` (a bare status string) until it ends; return the job's `/v1/jobs` row."""
    deadline = time.monotonic() + timeout
    while (status := client.get(f"/v1/jobs/{job_id}").raise_for_status().json()) in ("PENDING", "STARTED", "RETRY"):
        if time.monotonic() > deadline:
            raise TimeoutError(f"chap-core job {job_id} still {status} after {timeout:.0f}s")
        time.sleep(0.2)
    (job,) = client.get("/v1/jobs", params={"ids": job_id}).raise_for_status().json()
    if status != "SUCCESS":
        raise RuntimeError(f"chap-core job {job_id} ended {status}: {job.get('error')}")
    return job


def create_setup(client: httpx.Client, name: str, model: str, period_type: str, sources: dict[str, str],
                 org_units: tuple[str, ...], periods: list[str], *, weather: str | None = None,
                 shapes: dict[str, dict[str, Any]] | None = None,
                 rows: list[dict[str, Any]] | None = None) -> Setup:
    """Backtest `model` on generated data (or on `rows`, `providedData` items), then promote the
    backtest to a prediction setup. `shapes`: each org unit's geometry (default: `geojson`'s squares)."""
    body: dict[str, Any] = {
        "name": f"{name} backtest",
        "modelId": model,
        "geojson": geojson(org_units, shapes),
        "providedData": rows if rows is not None else observations(sources, org_units, periods),
        "dataToBeFetched": [],
        "dataSources": [{"covariate": c, "dataElementId": de} for c, de in sources.items()],
        "nPeriods": 3,
        "nSplits": 3,
        "stride": 1,
    }
    if weather:
        body["futureWeatherProvider"] = weather
    answer = client.post("/v1/analytics/create-backtest-with-data/", json=body).raise_for_status().json()
    backtest_id = int(wait_for_job(client, answer["id"])["result"])
    created = client.post("/v1/crud/prediction-setups", json={
        "backtestId": backtest_id, "name": name, "scheduleCronExpression": SCHEDULE_CRONS[period_type],
        "scheduleEnabled": True,
        "quantileTargets": [{"quantile": "0.5", "dataElementId": "deMed0001"}],
    }).raise_for_status().json()
    return Setup(created["id"], name, period_type, model, org_units, dict(sources), tuple(periods))


def wait_idle(client: httpx.Client, timeout: float = JOB_TIMEOUT) -> None:
    """Wait until no job is queued or running: every backtest queues chap-core's baseline models
    (`run_baseline` jobs), and a busy solo worker answers no Celery ping (`/health/ready` 503)."""
    deadline = time.monotonic() + timeout
    while busy := [job["name"] for job in client.get("/v1/jobs", params=[("status", "PENDING"), ("status", "STARTED")])
                   .raise_for_status().json()]:
        if time.monotonic() > deadline:
            raise TimeoutError(f"chap-core jobs still queued or running after {timeout:.0f}s: {busy}")
        time.sleep(0.2)


def seed_setups(chap) -> dict[str, Setup]:
    """A monthly and a weekly setup (like the fake's setups 3 and 5) on `chap` (anything with `.url`),
    returned once chap-core is idle again."""
    with httpx.Client(base_url=chap.url, timeout=60) as client:
        setups = {
            "monthly": create_setup(client, "Malaria monthly", "naive_model", "month", MONTHLY_SOURCES,
                                    ("ouDist001", "ouDist002", "ouDist003"), MONTHS),
            "weekly": create_setup(client, "Dengue weekly", "naive_model", "week", WEEKLY_SOURCES,
                                   ("ouDist001", "ouDist003"), WEEKS),
        }
        wait_idle(client)
        return setups


def seed_national(chap, fake, setup_id: int, org_units: int, covariates: int, periods: int) -> tuple[Setup, dict[str, Any]]:
    """A national-scale weekly setup on both sides: the fake DHIS2 (`fake`, a `FakeDhis2Server` in
    this process) generates it with `seed_scale` (org units with geometry, data elements, values);
    chap-core gets the same org units, geometry, data elements and values by a backtest of
    `naive_model` (which needs `rainfall` and `mean_temperature`: `covariates` >= 3), promoted to a
    setup. Returns chap-core's setup (its id is chap-core's own) and the fake's."""
    from tests.fake_dhis2 import periods as fake_periods

    made = fake.admin.seed_scale(setup_id, "week", org_units, covariates, periods)
    sources = {source["covariate"]: source["dataElementId"] for source in made["covariateSources"]}
    covariate_of = {de: covariate for covariate, de in sources.items()}
    with fake.state.lock:
        shapes = {ou: fake.state.units[ou]["geometry"] for ou in made["orgUnits"]}
        last = fake_periods.chap_id(fake_periods.step(fake_periods.current("week", fake.state.today), -1))
        held = fake.state.held_values(setup_id, made["startPeriod"], last)
    rows = [{"featureName": covariate_of[de], "orgUnit": ou, "period": fake_periods.chap_id(fake_periods.parse(pe)),
             "value": float(value)} for de, pe, ou, value in held]
    weeks = sorted({row["period"] for row in rows}, key=lambda pe: fake_periods.parse(pe)[1])
    with httpx.Client(base_url=chap.url, timeout=120) as client:
        setup = create_setup(client, made["name"], "naive_model", "week", sources, tuple(made["orgUnits"]), weeks,
                             shapes=shapes, rows=rows)
        wait_idle(client, timeout=600)
    return setup, made
