"""Every failure the fake can produce: the report names the step and the HTTP status/detail,
the other setups still run, and the run ends Failed."""

from __future__ import annotations

import re
import socket
from datetime import date

import pytest

from flows.blocks import Dhis2Credentials
from flows.dhis2_chap_prediction import dhis2_chap_prediction
from tests.fake_dhis2 import FakeAdmin
from tests.flows.helpers import USERNAME, read_artifacts

pytestmark = pytest.mark.flows

CHAP = "/api/routes/chap/run"
RUN_3 = CHAP + "/v1/crud/prediction-setups/3/run"
OFFSET_1 = dict(end_mode="offset", end_period_offset=1)


def statuses(fake: FakeAdmin, path: str, method: str = "*") -> list[int]:
    return [r["status"] for r in fake.requests(path, method=method)]


def assert_weekly_setup_succeeded(run) -> None:
    assert run.field("Dengue weekly", "Status") == "SUCCEEDED"
    assert run.field("Dengue weekly", "Prediction values returned") == "120"


# ------------------------------------------------------------------ services not reachable


def test_wrong_password_is_a_401_and_is_not_retried(fake: FakeAdmin, run_flow, fake_server) -> None:
    wrong = Dhis2Credentials(base_url=fake_server.url, username=USERNAME, password="not-the-password")

    run = run_flow(credentials=wrong)

    assert run.state.name == "Failed"
    assert run.state.message == "FAILED -- DHIS2 authentication failed (HTTP 401): check the username and password of the credentials block"
    assert run.lines[-3:] == [
        "## DHIS2", "", "**AUTHENTICATION FAILED** -- `DHIS2 GET /api/system/info -> HTTP 401: Unauthorized`"]
    assert [(r["path"], r["user"], r["status"]) for r in fake.requests()] == [("/api/system/info", USERNAME, 401)]


def test_dhis2_down_still_writes_the_report(prefect_api: str, run_flow) -> None:
    with socket.socket() as probe:  # a port nobody listens on: connection refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    down = Dhis2Credentials(base_url=f"http://127.0.0.1:{port}", username=USERNAME, password="x")

    run = run_flow(credentials=down)

    assert run.state.name == "Failed"
    assert run.key == "chap-report"
    assert "- **Result:** FAILED -- DHIS2 is not reachable" in run.lines
    assert re.fullmatch(r"\*\*NOT REACHABLE\*\* -- `DHIS2 GET /api/system/info -> no response "
                        r"\(ConnectError: .*Connection refused.*\)`", run.lines[-1])


@pytest.mark.parametrize(("status", "message", "attempts"), [
    (504, "Upstream timed out", 3),                     # route timeout: a 5xx GET is retried
    (404, "Route not found or not accessible: chap", 1),  # route missing: a 4xx is not
])
def test_chap_down(fake: FakeAdmin, run_flow, status: int, message: str, attempts: int) -> None:
    body = {"httpStatus": "Error", "httpStatusCode": status, "status": "ERROR", "message": message}
    fake.faults(http_errors=[{"path": CHAP + "/*", "status": status, "body": body}])

    run = run_flow()

    assert run.state.name == "Failed"
    assert run.state.message == "FAILED -- chap-core is not reachable"
    assert run.lines[-7:] == [
        "## DHIS2", "", "**REACHABLE** -- DHIS2 2.41.2 (Demo HMIS)", "",
        "## chap-core", "", f"**NOT REACHABLE** -- `chap GET /system/info -> HTTP {status}: {message}`",
    ]
    assert statuses(fake, CHAP + "/system/info") == [status] * attempts


def test_listing_failure_fails_the_run(fake: FakeAdmin, run_flow) -> None:
    fake.faults(http_errors=[{"path": CHAP + "/v1/crud/prediction-setups", "status": 500}])

    run = run_flow()

    assert run.state.name == "Failed"
    assert run.lines[-1] == ("Could not list prediction setups: "
                             "`chap GET /v1/crud/prediction-setups -> HTTP 500: injected HTTP 500`")


# ------------------------------------------------------------------ retries


def test_a_5xx_on_a_get_succeeds_on_retry(fake: FakeAdmin, run_flow) -> None:
    fake.faults(http_errors=[
        {"method": "GET", "path": CHAP + "/v1/crud/prediction-setups", "status": 503, "times": 1},
        {"method": "GET", "path": "/api/analytics", "status": 502, "times": 1},
    ])

    run = run_flow(**OFFSET_1, configured_model_id=12)

    assert run.state.name == "Completed"
    assert statuses(fake, CHAP + "/v1/crud/prediction-setups") == [503, 200]
    assert statuses(fake, "/api/analytics") == [502, 200]


def test_a_5xx_on_post_run_is_not_retried_and_only_that_setup_fails(fake: FakeAdmin, run_flow) -> None:
    fake.faults(http_errors=[{"method": "POST", "path": RUN_3, "status": 500, "times": 1}])

    run = run_flow(**OFFSET_1)

    assert statuses(fake, RUN_3, "POST") == [500]  # never submitted twice
    assert run.section("Malaria monthly") == [
        "- **Status:** FAILED at `run_prediction_setup`",
        "- **Setup:** 3 (month, configured model 12)",
        "- **Error:** `chap POST /v1/crud/prediction-setups/3/run -> HTTP 500: injected HTTP 500`",
        "- **End period:** 202602",
        "- **Input periods:** 202301..202602 (38 periods)",
        "- **Analytics rows fetched:** 342",
        "- **Values sent to chap:** 342",
        "- **DHIS2 reads:** 2 reads (0 refused and halved), 342 records, 15.1 kB",
        "- **Org units:** 3 in the setup; sent 3 (3 with geometry)",
    ]
    assert_weekly_setup_succeeded(run)
    assert "## Prediction setups (1 succeeded, 1 failed, 1 skipped)" in run.lines
    assert run.state.name == "Failed"
    assert run.state.message == "FAILED -- 1 of 2 prediction setups failed, 1 skipped"


# ------------------------------------------------------------------ data problems


def test_covariate_without_data_fails_the_probe(fake: FakeAdmin, run_flow) -> None:
    fake.faults(data_gaps=[{"dataElement": "deRain001"}])

    run = run_flow()

    assert run.section("Malaria monthly")[:3] == [
        "- **Status:** FAILED at `probe_latest_covariate_periods`",
        "- **Setup:** 3 (month, configured model 12)",
        "- **Error:** `DHIS2 returned no data within LAST_12_MONTHS for covariate(s): rainfall (deRain001). "
        "Check that the analytics tables are up to date, or run with end_mode fixed or offset.`",
    ]
    assert fake.requests(RUN_3) == []
    assert_weekly_setup_succeeded(run)
    assert run.state.name == "Failed"


def test_missing_values_in_every_org_unit_are_rejected_with_400(fake: FakeAdmin, run_flow) -> None:
    # As chap-core 2.5.1: only the first incomplete covariate of each org unit is reported.
    fake.faults(data_gaps=[{"dataElement": "deTemp001", "periods": ["202512", "202601"]},
                           {"dataElement": "deRain001", "periods": ["202510"]}])

    run = run_flow(**OFFSET_1, configured_model_id=12)

    assert statuses(fake, RUN_3) == [400]
    assert run.section("Malaria monthly")[:5] == [
        "- **Status:** FAILED at `run_prediction_setup`",
        "- **Setup:** 3 (month, configured model 12)",
        "- **Error:** `chap POST /v1/crud/prediction-setups/3/run -> HTTP 400: "
        "All regions rejected due to missing values`",
        "- **Rejected for missing values:**",
        "  - `mean_temperature`: 3 org units, periods 202512, 202601 -- Missing value for some/all time periods",
    ]
    assert run.state.name == "Failed"


@pytest.mark.parametrize("end", [OFFSET_1, dict(end_mode="fixed", end_date=date(2026, 2, 15))])
def test_a_covariate_without_data_fails_its_setup_before_submit(fake: FakeAdmin, run_flow, end) -> None:
    """chap-core checks only the features a request holds: without this check the model would run
    without rainfall and the run would end Completed with a degraded forecast."""
    fake.faults(data_gaps=[{"dataElement": "deRain001"}])

    run = run_flow(**end, configured_model_id=12)

    assert run.field("Malaria monthly", "Status") == "FAILED at `build_prediction_request`"
    assert ("DHIS2 returned no values for 202301..202602 for covariate(s) rainfall (deRain001): chap-core would "
            "forecast without them (or refuse a missing target). Check the data elements and the analytics tables "
            "in DHIS2, or choose an end period that has data.") in run.report
    assert fake.requests(RUN_3) == []
    assert run.state.name == "Failed"


def test_org_units_rejected_in_a_partial_rejection_make_the_setup_incomplete(fake: FakeAdmin, run_flow) -> None:
    fake.faults(data_gaps=[{"dataElement": "deRain001", "orgUnits": ["ouDist002"], "periods": ["202511"]}])

    run = run_flow(**OFFSET_1, configured_model_id=12)

    assert statuses(fake, RUN_3) == [200]
    assert [(r["orgUnit"], r["featureName"], r["timePeriods"]) for r in fake.state()["rejections"]] == \
        [("ouDist002", "rainfall", ["202511"])]
    assert run.field("Malaria monthly", "Status") == "INCOMPLETE -- the forecast covers 2 of the 3 org units sent"
    assert run.field("Malaria monthly", "Org units") == (
        "3 in the setup; sent 3 (3 with geometry); predicted 2; rejected 1; missing from the forecast: "
        "ouDist002 (rejected by chap-core: incomplete covariates)")
    assert run.state.name == "Failed"
    assert run.state.message == ("FAILED -- 1 of 1 prediction setups incomplete: org units missing from the forecast, "
                                 "1 skipped")


def test_an_org_unit_without_geometry_makes_the_setup_incomplete(fake: FakeAdmin, run_flow) -> None:
    fake.patch_setup(3, orgUnits=["ouDist001", "ouDist004"])

    run = run_flow(**OFFSET_1, configured_model_id=12)

    assert run.field("Malaria monthly", "Status") == "INCOMPLETE -- the forecast covers 1 of the 2 org units sent"
    assert run.field("Malaria monthly", "Org units") == (
        "2 in the setup; sent 2 (1 with geometry); predicted 1; rejected 0; missing from the forecast: "
        "ouDist004 (no geometry in DHIS2)")
    assert run.state.name == "Failed"


def test_no_geometry_at_all_fails_before_submit(fake: FakeAdmin, run_flow) -> None:
    fake.patch_setup(3, orgUnits=["ouDist004"])

    run = run_flow(**OFFSET_1, configured_model_id=12)

    assert run.field("Malaria monthly", "Status") == "FAILED at `build_prediction_request`"
    assert "none of the setup's 1 org units has a geometry in DHIS2" in run.report
    assert fake.requests(RUN_3) == []


def test_less_than_two_whole_years_of_data_fails_before_submit(fake: FakeAdmin, run_flow) -> None:
    """chap-core 2.5.1 makes the job and only then fails it ("Training data must cover at least two whole
    years"): the flow says so before the submit, naming the period the data must reach."""
    fake.patch_setup(3, startPeriod="202403")  # 202403..202602: 24 months

    whole = run_flow(**OFFSET_1, configured_model_id=12)
    assert whole.field("Malaria monthly", "Status") == "SUCCEEDED"  # 202403..202602 is exactly two years

    fake.reset(date(2026, 3, 10))
    fake.patch_setup(3, startPeriod="202404")  # 202404..202602: 23 months
    run = run_flow(**OFFSET_1, configured_model_id=12)

    assert run.field("Malaria monthly", "Status") == "FAILED at `build_prediction_request`"
    assert ("the data runs from 202404 to 202602, less than the 2 whole years chap-core needs to train (its job would "
            "fail with 'Training data must cover at least two whole years'): from 202404 the data must reach 202603"
            ) in run.report
    assert fake.requests(RUN_3) == []
    assert run.state.name == "Failed"


def test_a_missing_target_column_is_a_clear_setup_failure(fake: FakeAdmin, run_flow) -> None:
    # The setup maps no data element to the backtest's target: chap-core answers 422.
    fake.patch_setup(3, covariateSources=[{"covariate": "rainfall", "dataElementId": "deRain001"},
                                          {"covariate": "mean_temperature", "dataElementId": "deTemp001"}])

    run = run_flow(**OFFSET_1, configured_model_id=12)

    assert statuses(fake, RUN_3) == [422]
    assert ("chap-core refused setup 3: Dataset has no target column 'disease_cases'. The request carries no values "
            "for the target its backtest was trained on: check that data element in DHIS2 and the setup's covariate "
            "sources") in run.report
    assert run.state.name == "Failed"


def test_a_future_weather_provider_that_leaks_is_a_clear_setup_failure(fake: FakeAdmin, run_flow) -> None:
    fake.faults(future_weather_leak=[3])

    run = run_flow(**OFFSET_1, configured_model_id=12)

    assert statuses(fake, RUN_3) == [400]
    assert ("chap-core refused setup 3: its backtest used a future-weather provider that reads the forecast "
            "window's own observations, so it cannot forecast ahead. Re-run the backtest") in run.report
    assert run.state.name == "Failed"


def test_polling_reads_only_our_job(fake: FakeAdmin, run_flow) -> None:
    """chap-core's bare `GET /v1/jobs` reads every job it tracks; the flow polls `/v1/jobs/{id}` and
    lists with `?ids=` once per job, for its result."""
    run = run_flow(**OFFSET_1)

    assert run.state.name == "Completed"
    jobs = sorted(job["id"] for job in fake.state()["jobs"])
    listings = [r["query"] for r in fake.requests(CHAP + "/v1/jobs")]
    assert sorted(value for query in listings for key, value in query if key == "ids") == jobs
    assert all(query for query in listings)


@pytest.mark.parametrize(("patch", "step", "error"), [
    ({"startPeriod": "201602"}, "validate_period_range",
     "201602..202602 spans more than 120 month periods; "
     "move the setup's start period or the end period closer together"),
    ({"startPeriod": "202604"}, "validate_period_range", "start period 202604 is after end period 202602"),
    ({"startPeriod": "2023-01"}, "validate_period_range", "'2023-01' is not a month period id"),
    ({"periodType": "quarter"}, "resolve_end_period",
     "period type 'quarter' is not supported (supported: month, week, year)"),
    ({"startPeriod": None}, "list_prediction_setups",
     "chap returned an invalid prediction setup (startPeriod: Input should be a valid string)"),
])
def test_a_broken_setup_fails_alone(fake: FakeAdmin, run_flow, patch: dict, step: str, error: str) -> None:
    fake.patch_setup(3, **patch)

    run = run_flow(**OFFSET_1)

    assert run.section("Malaria monthly")[0] == f"- **Status:** FAILED at `{step}`"
    assert run.field("Malaria monthly", "Error") == f"`{error}`"
    assert [dx for dx in fake.requests("/api/analytics") if "deCase001" in str(dx["query"])] == []
    assert_weekly_setup_succeeded(run)
    assert run.state.name == "Failed"


def test_exactly_120_periods_are_fetched(fake: FakeAdmin, run_flow) -> None:
    fake.patch_setup(3, startPeriod="201603")

    run = run_flow(**OFFSET_1, configured_model_id=12)

    assert run.state.name == "Completed"
    assert run.field("Malaria monthly", "Input periods") == "201603..202602 (120 periods)"
    [fetch] = fake.requests("/api/analytics")
    assert len(fetch["query"][1][1].removeprefix("pe:").split(";")) == 120


# ------------------------------------------------------------------ jobs


def job_id_of(fake: FakeAdmin, setup_id: int) -> str:
    return next(job["id"] for job in fake.state()["jobs"] if job["prediction_setup_id"] == setup_id)


def test_a_failed_job_fails_its_setup(fake: FakeAdmin, run_flow) -> None:
    fake.faults(job_statuses={"3": ["PENDING", "STARTED", "FAILURE"]})

    run = run_flow(**OFFSET_1)

    job = job_id_of(fake, 3)
    assert run.section("Malaria monthly")[:3] == [
        "- **Status:** FAILED at `wait_for_prediction`",
        "- **Setup:** 3 (month, configured model 12)",
        f"- **Error:** `job {job} ended with status 'FAILURE': RuntimeError: the model failed (injected by the fake)`",
    ]
    assert run.field("Malaria monthly", "Job") == f"`{job}`"
    assert statuses(fake, CHAP + f"/v1/jobs/{job}") == [200, 200, 200]
    assert_weekly_setup_succeeded(run)
    assert run.state.name == "Failed"


def test_a_job_that_never_finishes_times_out(fake: FakeAdmin, run_flow, monkeypatch) -> None:
    monkeypatch.setenv("CHAP_SCHEDULER_PREDICTION_TIMEOUT_SECONDS", "0.3")
    fake.faults(job_statuses={"5": ["PENDING"]})

    run = run_flow(**OFFSET_1)

    job = job_id_of(fake, 5)
    assert run.field("Dengue weekly", "Status") == "FAILED at `wait_for_prediction`"
    assert run.field("Dengue weekly", "Error") == (
        f"`job {job} still PENDING after 0.3 s (CHAP_SCHEDULER_PREDICTION_TIMEOUT_SECONDS); "
        "it keeps running in chap-core`")
    assert len(fake.requests(CHAP + f"/v1/jobs/{job}")) > 3
    assert run.field("Malaria monthly", "Status") == "SUCCEEDED"
    assert run.state.name == "Failed"


def test_a_job_without_a_prediction_id_fails_fetching_the_result(fake: FakeAdmin, run_flow) -> None:
    fake.faults(job_results={"3": None})

    run = run_flow(**OFFSET_1, configured_model_id=12)

    job = job_id_of(fake, 3)
    assert run.field("Malaria monthly", "Status") == "FAILED at `fetch_prediction_result`"
    assert run.field("Malaria monthly", "Error") == f"`job {job} has no prediction id (result=None)`"
    assert run.state.name == "Failed"


# ------------------------------------------------------------------ parameters


@pytest.mark.parametrize(("parameters", "message"), [
    ({"end_mode": "fixed"}, "end_mode='fixed' needs end_date (an ISO date such as 2026-06-30)"),
    ({"end_mode": "offset"}, "end_mode='offset' needs end_period_offset (0 = the current period)"),
    ({"end_mode": "offset", "end_period_offset": -2}, "end_period_offset must be >= 0, got -2"),
    ({"end_date": date(2026, 1, 31)},
     "end_date is only used with end_mode='fixed', not 'calculated'; remove it or change end_mode"),
])
def test_mode_value_mismatch_fails_before_any_request(fake: FakeAdmin, run_flow, parameters, message) -> None:
    run = run_flow(**parameters)

    assert run.state.name == "Failed"
    assert run.state.message == "FAILED -- invalid parameters or settings"
    assert run.lines[-3:] == ["## Parameters", "", f"**INVALID** -- `{message}`"]
    assert fake.requests() == []


def test_bad_today_setting_fails_before_any_request(fake: FakeAdmin, run_flow, monkeypatch) -> None:
    monkeypatch.setenv("CHAP_TODAY", "tomorrow")

    run = run_flow()

    assert run.lines[-1] == "**INVALID** -- `CHAP_TODAY must be a date like 2026-03-10, got 'tomorrow'`"
    assert run.state.name == "Failed"
    assert fake.requests() == []


def test_an_end_mode_outside_the_enum_is_refused_by_prefect(fake: FakeAdmin, prefect_api, credentials) -> None:
    state = dhis2_chap_prediction(credentials=credentials, end_mode="latest", return_state=True)

    assert state.name == "Failed"
    assert "end_mode" in state.message
    assert fake.requests() == []
    # Prefect refuses the parameters before the flow body runs, so there is no report to write.
    assert [a for a in read_artifacts(prefect_api, state.state_details.flow_run_id) if a["key"]] == []
