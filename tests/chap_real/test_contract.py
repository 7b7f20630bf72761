"""The contract between the fake and chap-core 2.5.1: the same requests, the same outcomes.

Every scenario of FINDINGS.md runs twice, through the fake DHIS2's `chap` route (as the flow
reaches CHAP): once to the fake's built-in chap-core, once forwarded to the real one
(`real_chap`). Each run is reduced to an outcome — the HTTP status and detail of the `/run`
POST, or the job's end (status, `error`) and which org units and periods its prediction holds —
and both backends must give the scenario's expected outcome. Where chap-core itself is not
deterministic (which incomplete covariate it reports first for an org unit: a Python set's
order), the outcome keeps what is certain and the check accepts every covariate it may name.

The bodies are the flow's: `flows.prediction_request` builds them from the setup that each
backend lists (the fake's setups 3 and 5, the lane's seeded monthly and weekly setups: same
org units, data elements and start periods), with `tests.chap_real.seed`'s values.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable

import httpx
import pytest

from flows.api import ChapApi
from flows.prediction_request import feature_collection, prediction_request
from flows.setups import parse_setup
from tests.chap_real import seed
from tests.fake_dhis2.server import FakeDhis2Server
from tests.lanes import lane
from tests.processes import wait_until

pytestmark = [pytest.mark.chap, pytest.mark.timeout(900)]

ROUTE = "/api/routes/chap/run"
MISSING = "Missing value for some/all time periods"
ALL_REJECTED = "All regions rejected due to missing values"
LEAK = ("Prediction setup {id} was evaluated with the 'observed' future-weather provider, which reads the forecast "
        "window's own observations and so cannot forecast ahead. Re-run the backtest with a forecasting provider "
        "before running predictions from it.")
MONTHS = seed.MONTHS  # 202301..202512, both backends' monthly setup starts at 202301


@dataclass
class Backend:
    name: str
    client: httpx.Client  # the fake DHIS2, logged in; CHAP is behind ROUTE
    setups: dict[str, int]  # "monthly" / "weekly" / "leaky" -> setup id
    fake: FakeDhis2Server

    def setup(self, kind: str):
        listed = self.client.get(f"{ROUTE}/v1/crud/prediction-setups").raise_for_status().json()
        (raw,) = [item for item in listed if item["id"] == self.setups[kind]]
        parsed = parse_setup(raw)
        assert parsed.setup is not None, parsed.invalid
        return parsed.setup


@pytest.fixture(scope="module")
@lane("chap", group="chap")
def leaky_setup(real_chap) -> int:
    """A setup of the real chap-core promoted from a backtest with the 'observed' weather provider."""
    with httpx.Client(base_url=real_chap.url, timeout=60) as client:
        made = seed.create_setup(client, "Malaria monthly (observed weather)", "naive_model", "month",
                                 seed.MONTHLY_SOURCES, ("ouDist001", "ouDist002", "ouDist003"), MONTHS,
                                 weather="observed")
        seed.wait_idle(client)
    return made.id


@pytest.fixture(scope="module", params=["fake", "real"])
@lane("chap", group="chap")
def backend(request) -> Backend:
    if request.param == "real":
        real_chap = request.getfixturevalue("real_chap")
        leaky = request.getfixturevalue("leaky_setup")
        fake = FakeDhis2Server(chap_url=real_chap.url).start()
        setups = {"monthly": real_chap.setups["monthly"].id, "weekly": real_chap.setups["weekly"].id, "leaky": leaky}
    else:
        fake = FakeDhis2Server().start()
        fake.admin.faults(future_weather_leak=[8])  # setup 8 (monthly, disabled) plays the leaky one
        setups = {"monthly": 3, "weekly": 5, "leaky": 8}
    client = httpx.Client(base_url=fake.url, auth=(fake.username, fake.password), timeout=60)
    yield Backend(request.param, client, setups, fake)
    client.close()
    fake.stop()


# -- bodies -------------------------------------------------------------------------------------

def body_for(backend: Backend, kind: str = "monthly", *, periods=None, rows: Callable[[dict], bool] = lambda r: True,
             features: list[str] | None = None, geometry: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    """The flow's `/run` body for the backend's setup (every covariate × org unit × period, weeks
    unpadded as DHIS2 writes them), then cut as the scenario needs — bodies the flow itself now
    refuses to send: only the rows `rows` keeps, only `features` if given, geometry only for
    `geometry`'s org units (default: all)."""
    setup = backend.setup(kind)
    sources = {s.covariate: s.data_element_id for s in setup.covariate_sources}
    periods = [p.replace("W0", "W") for p in (periods or (MONTHS if kind == "monthly" else seed.WEEKS))]
    shapes = seed.geojson(setup.org_units)["features"]
    units = [{"id": f["id"], "geometry": f["geometry"], "level": 2} for f in shapes]
    body = prediction_request(setup, periods[0], periods[-1], seed.observations(sources, setup.org_units, periods),
                              feature_collection(setup, units))
    body["providedData"] = [row for row in body["providedData"]
                            if rows(row) and (features is None or row["featureName"] in features)]
    body["geojson"]["features"] = [f for f in body["geojson"]["features"] if geometry is None or f["id"] in geometry]
    return {**body, **extra}


def drop(*cells: tuple[str | None, str | None, str]) -> Callable[[dict], bool]:
    """Keep a row unless it matches one of (featureName or None, orgUnit or None, period)."""
    def keep(row: dict) -> bool:
        return not any((f is None or row["featureName"] == f) and (ou is None or row["orgUnit"] == ou)
                       and row["period"] == p for f, ou, p in cells)
    return keep


# -- outcomes -----------------------------------------------------------------------------------

def outcome(backend: Backend, kind: str, body: Any, setup_id: int | None = None) -> dict[str, Any]:
    """POST the body to the setup's `/run`; on 200 follow the job to its end and read its prediction."""
    setup_id = backend.setups[kind] if setup_id is None else setup_id
    answer = backend.client.post(f"{ROUTE}/v1/crud/prediction-setups/{setup_id}/run", json=body)
    if answer.status_code != 200:
        return {"status": answer.status_code, "detail": normalise_detail(answer.json()["detail"], setup_id)}
    job_id = answer.json()["id"]
    deadline = time.monotonic() + 120
    while (status := backend.client.get(f"{ROUTE}/v1/jobs/{job_id}").raise_for_status().json()) in (
            "PENDING", "STARTED", "RETRY"):
        assert time.monotonic() < deadline, f"job {job_id} still {status}"
        time.sleep(0.05)
    (row,) = backend.client.get(f"{ROUTE}/v1/jobs", params={"ids": job_id}).raise_for_status().json()
    assert (row["id"], row["type"], row["prediction_setup_id"]) == (job_id, "create_prediction", setup_id)
    result = {"status": 200, "job": status, "error": row["error"]}
    if status == "SUCCESS":
        entries = backend.client.get(f"{ROUTE}/v1/analytics/prediction-entry/{row['result']}",
                                     params={"quantiles": ["0.5"]}).raise_for_status().json()
        result["org_units"] = sorted({e["orgUnit"] for e in entries})
        result["periods"] = sorted({e["period"] for e in entries})
    else:
        assert row["result"] is None
    return result


def normalise_detail(detail: Any, setup_id: int) -> Any:
    """What both backends promise of an error detail: pydantic errors as (type, loc); the
    missing-values 400 as {org unit: (reported covariate, its missing periods)}; setup ids as {id}."""
    if isinstance(detail, list):
        return [(e["type"], tuple(e["loc"])) for e in detail]
    if isinstance(detail, dict) and detail.get("message") == ALL_REJECTED:
        assert detail["imported_count"] == 0 and {r["reason"] for r in detail["rejected"]} == {MISSING}
        return {"message": ALL_REJECTED,
                "rejected": {r["orgUnit"]: (r["featureName"], tuple(r["timePeriods"])) for r in detail["rejected"]}}
    return re.sub(rf"\b{setup_id}\b", "{id}", detail) if isinstance(detail, str) else detail


def months_after(last: str, n: int) -> list[str]:
    year, month = int(last[:4]), int(last[4:])
    out = []
    for _ in range(n):
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        out.append(f"{year}{month:02d}")
    return out


ALL3 = ["ouDist001", "ouDist002", "ouDist003"]


def success(org_units: list[str], periods: list[str]) -> dict[str, Any]:
    return {"status": 200, "job": "SUCCESS", "error": None, "org_units": org_units, "periods": periods}


def failure(error: str) -> dict[str, Any]:
    return {"status": 200, "job": "FAILURE", "error": error}


# -- the scenarios (FINDINGS.md's letters) ------------------------------------------------------

def test_a_valid_monthly_request_predicts_every_org_unit(backend):
    assert outcome(backend, "monthly", body_for(backend)) == success(ALL3, ["202601", "202602", "202603"])


def test_a_valid_weekly_request_with_unpadded_weeks(backend):
    got = outcome(backend, "weekly", body_for(backend, "weekly"))
    assert got == success(["ouDist001", "ouDist003"], [f"2026W{w:02d}" for w in range(3, 15)])


def test_a_prediction_summary_names_its_org_units_and_periods(backend):
    # what the flow reads when the entries are too large for DHIS2's route (flows/steps.py)
    answer = backend.client.post(f"{ROUTE}/v1/crud/prediction-setups/{backend.setups['monthly']}/run",
                                 json=body_for(backend, rows=drop(("rainfall", "ouDist002", "202505"))))
    job_id = answer.raise_for_status().json()["id"]
    wait_until(lambda: backend.client.get(f"{ROUTE}/v1/jobs/{job_id}").json() not in ("PENDING", "STARTED"),
               "the job's end", 120)
    (row,) = backend.client.get(f"{ROUTE}/v1/jobs", params={"ids": job_id}).json()
    summary = backend.client.get(f"{ROUTE}/v1/crud/predictions/{row['result']}").raise_for_status().json()
    assert sorted(summary["orgUnits"]) == ["ouDist001", "ouDist003"]  # the org units forecast, not those sent
    assert (summary["nPeriods"], summary["dataset"]["lastPeriod"]) == (3, "202512")
    assert backend.client.get(f"{ROUTE}/v1/crud/predictions/99999").json() == {"detail": "Prediction not found"}


def test_a_predicted_periods_follow_the_last_period_sent(backend):
    got = outcome(backend, "monthly", body_for(backend, periods=MONTHS[:-1]))  # to 202511
    assert got == success(ALL3, ["202512", "202601", "202602"])


def test_b_no_target_rows_is_a_422(backend):
    body = body_for(backend, features=["rainfall", "mean_temperature"])
    assert outcome(backend, "monthly", body) == {"status": 422, "detail": "Dataset has no target column 'disease_cases'"}


def test_b_empty_data_is_a_422(backend):
    body = {**body_for(backend), "providedData": []}
    assert outcome(backend, "monthly", body) == {"status": 422, "detail": "provided_data cannot be empty"}


def test_b_target_rows_only_predict(backend):
    assert outcome(backend, "monthly", body_for(backend, features=["disease_cases"])) == success(
        ALL3, ["202601", "202602", "202603"])


def test_c_a_covariate_with_no_rows_is_not_checked(backend):
    body = body_for(backend, features=["disease_cases", "rainfall"])
    assert outcome(backend, "monthly", body) == success(ALL3, ["202601", "202602", "202603"])


def test_d_an_org_unit_with_an_incomplete_covariate_vanishes(backend):
    body = body_for(backend, rows=drop(("rainfall", "ouDist002", "202505")))
    assert outcome(backend, "monthly", body) == success(["ouDist001", "ouDist003"], ["202601", "202602", "202603"])


def test_d_every_org_unit_incomplete_is_a_400_naming_one_covariate_each(backend):
    body = body_for(backend, rows=drop(("rainfall", "ouDist001", "202505"), ("mean_temperature", "ouDist001", "202506"),
                                       *[("mean_temperature", "ouDist002", p) for p in ("202507", "202508", "202509")],
                                       ("rainfall", "ouDist003", "202512")))
    got = outcome(backend, "monthly", body)
    assert (got["status"], got["detail"]["message"]) == (400, ALL_REJECTED)
    rejected = got["detail"]["rejected"]
    assert set(rejected) == set(ALL3)
    # chap-core names the first incomplete covariate in a set's order: either one for ouDist001
    assert rejected["ouDist001"] in {("rainfall", ("202505",)), ("mean_temperature", ("202506",))}
    assert rejected["ouDist002"] == ("mean_temperature", ("202507", "202508", "202509"))
    assert rejected["ouDist003"] == ("rainfall", ("202512",))


def test_d_gaps_in_the_target_are_not_checked(backend):
    body = body_for(backend, rows=drop(("disease_cases", None, "202505")))
    assert outcome(backend, "monthly", body) == success(ALL3, ["202601", "202602", "202603"])


def test_e_a_period_missing_for_every_element_rejects_every_org_unit(backend):
    got = outcome(backend, "monthly", body_for(backend, rows=drop((None, None, "202506"))))
    assert (got["status"], got["detail"]["message"]) == (400, ALL_REJECTED)
    assert set(got["detail"]["rejected"]) == set(ALL3)
    assert {covariate for covariate, _ in got["detail"]["rejected"].values()} <= {"rainfall", "mean_temperature"}
    assert {periods for _, periods in got["detail"]["rejected"].values()} == {("202506",)}


def test_f_an_org_unit_without_geometry_vanishes(backend):
    body = body_for(backend, geometry=["ouDist001", "ouDist003"])
    assert outcome(backend, "monthly", body) == success(["ouDist001", "ouDist003"], ["202601", "202602", "202603"])


def test_f_no_geometry_at_all_fails_the_job(backend):
    assert outcome(backend, "monthly", body_for(backend, geometry=[])) == failure("No data in dataset DataSet({})")


@pytest.mark.parametrize("kind, periods", [
    ("monthly", MONTHS[13:]),  # 202402..202512: 23 months
    ("weekly", [p for p in seed.WEEKS if p >= "2025W01"]),  # 2025W01..2026W02: 54 weeks
], ids=["monthly-23-months", "weekly-54-weeks"])
def test_less_than_two_years_of_data_fails_the_job(backend, kind, periods):
    got = outcome(backend, kind, body_for(backend, kind, periods=periods))
    assert got == failure("Training data must cover at least two whole years")


def test_exactly_two_years_of_data_is_enough(backend):
    assert outcome(backend, "monthly", body_for(backend, periods=MONTHS[12:])) == success(  # 202401..202512
        ALL3, ["202601", "202602", "202603"])


def test_h_a_setup_whose_weather_provider_leaks_is_a_400(backend):
    assert outcome(backend, "leaky", body_for(backend)) == {"status": 400, "detail": LEAK}


def test_h_body_checks_come_before_the_weather_check(backend):
    body = body_for(backend, features=["rainfall", "mean_temperature"])
    assert outcome(backend, "leaky", body)["status"] == 422


def test_i_jobs_answer_as_chap_core_does(backend):
    assert backend.client.get(f"{ROUTE}/v1/jobs/nope").json() == {"detail": "Job 'nope' not found"}
    assert backend.client.get(f"{ROUTE}/v1/jobs/nope").status_code == 404
    job_id = backend.client.post(f"{ROUTE}/v1/crud/prediction-setups/{backend.setups['monthly']}/run",
                                 json=body_for(backend)).json()["id"]
    status = backend.client.get(f"{ROUTE}/v1/jobs/{job_id}").json()
    assert status in ("PENDING", "STARTED", "SUCCESS")  # a bare Celery state string
    rows = backend.client.get(f"{ROUTE}/v1/jobs", params={"ids": job_id}).json()
    assert [row["id"] for row in rows] == [job_id]
    assert set(rows[0]) == {"id", "type", "name", "status", "start_time", "end_time", "result", "error",
                            "prediction_setup_id"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+", rows[0]["start_time"])  # naive local time
    assert backend.client.get(f"{ROUTE}/v1/jobs", params={"ids": "nope"}).json() == []


def test_j_a_submit_slower_than_the_route_is_a_504_and_its_one_job_is_found_by_its_name(backend):
    # chap takes 1.5 s (injected before the forward: chap-core's own time to accept is too short to
    # rely on for a small body), the route waits 1 s: DHIS2's empty 504, then the job appears and
    # the flow's look-up (`ChapApi.find_job`) finds it under the request's name.
    setup_id = backend.setups["monthly"]
    body = body_for(backend, name=f"route timeout {uuid.uuid4().hex[:8]}")
    backend.fake.admin.route(responseTimeoutSeconds=1)
    backend.fake.admin.faults(submit_seconds={str(setup_id): 1.5})
    try:
        answer = backend.client.post(f"{ROUTE}/v1/crud/prediction-setups/{setup_id}/run", json=body)
        assert (answer.status_code, answer.content) == (504, b"")
        with httpx.Client(base_url=backend.fake.url + ROUTE + "/", auth=(backend.fake.username, backend.fake.password),
                          timeout=60) as client:
            job = wait_until(lambda: ChapApi(client).find_job(setup_id, body["name"]), "the job after the 504", 30)
        listed = backend.client.get(f"{ROUTE}/v1/jobs", params={"predictionSetupId": setup_id}).json()
        assert [row["id"] for row in listed if row["name"] == body["name"]] == [job["id"]]
        assert job["prediction_setup_id"] == setup_id
        other = backend.client.get(f"{ROUTE}/v1/jobs", params={"predictionSetupId": backend.setups["weekly"]}).json()
        assert job["id"] not in [row["id"] for row in other]
        wait_until(lambda: backend.client.get(f"{ROUTE}/v1/jobs/{job['id']}").json() not in ("PENDING", "STARTED"),
                   "the job's end", 120)
    finally:
        backend.fake.admin.route(responseTimeoutSeconds=5)
        backend.fake.admin.faults(submit_seconds={})


@pytest.mark.parametrize("change, expected", [
    ({"dataSources": []}, [("extra_forbidden", ("body", "dataSources"))]),
    ({"nPeriods": 0}, [("greater_than", ("body", "nPeriods"))]),
], ids=["extra-key", "zero-periods"])
def test_bodies_chap_core_refuses(backend, change, expected):
    assert outcome(backend, "monthly", {**body_for(backend), **change}) == {"status": 422, "detail": expected}


def test_an_unknown_setup_is_a_404(backend):
    assert outcome(backend, "monthly", body_for(backend), setup_id=999) == {
        "status": 404, "detail": "PredictionSetup {id} not found"}


# -- the setups' schedule fields (what the DHIS2 Modeling App edits, what `chapctl preflight` reads) --

SETUP_KEYS = {"id", "name", "created", "backtestId", "configuredModel", "startPeriod", "orgUnits", "covariateSources",
              "periodType", "scheduleCronExpression", "scheduleEnabled", "quantileTargets", "alertPolicy"}


def test_a_listed_setup_has_chap_core_s_fields(backend):
    listed = backend.client.get(f"{ROUTE}/v1/crud/prediction-setups").raise_for_status().json()
    (setup,) = [s for s in listed if s["id"] == backend.setups["monthly"]]
    assert set(setup) == SETUP_KEYS
    assert (setup["scheduleEnabled"], setup["scheduleCronExpression"], setup["alertPolicy"]) == (True, "0 6 2 * *", None)


@pytest.mark.parametrize("body, status, detail", [
    ({"scheduleEnabled": True, "scheduleCronExpression": None}, 422, "Enabled schedules require a cron expression"),
    ({"scheduleCronExpression": "0 6 * * 1 *"}, 422, "Schedule expression must be standard five-field cron"),
    ({"scheduleEnabled": None}, 422, "schedule_enabled cannot be null"),
    ({"configuredModelId": 3}, 422, [("extra_forbidden", ("body", "configuredModelId"))]),
], ids=["enabled-without-cron", "six-fields", "null-enabled", "immutable-field"])
def test_editing_a_setup_s_schedule_is_refused_as_chap_core_refuses_it(backend, body, status, detail):
    setup_id = backend.setups["monthly"]
    answer = backend.client.patch(f"{ROUTE}/v1/crud/prediction-setups/{setup_id}", json=body)
    assert (answer.status_code, normalise_detail(answer.json()["detail"], setup_id)) == (status, detail)


def test_pausing_a_setup_s_schedule_keeps_its_cron(backend):
    setup_id = backend.setups["monthly"]
    path = f"{ROUTE}/v1/crud/prediction-setups/{setup_id}"
    try:
        paused = backend.client.patch(path, json={"scheduleEnabled": False}).raise_for_status().json()
        assert (paused["scheduleEnabled"], paused["scheduleCronExpression"]) == (False, "0 6 2 * *")
        moved = backend.client.patch(path, json={"scheduleCronExpression": " 30 5 2 * * "}).raise_for_status().json()
        assert (moved["scheduleEnabled"], moved["scheduleCronExpression"]) == (False, "30 5 2 * *")
        listed = backend.client.get(f"{ROUTE}/v1/crud/prediction-setups").json()
        assert [(s["scheduleEnabled"], s["scheduleCronExpression"]) for s in listed if s["id"] == setup_id] == [
            (False, "30 5 2 * *")]
    finally:
        backend.client.patch(path, json={"scheduleEnabled": True, "scheduleCronExpression": "0 6 2 * *"})
