"""Exactly one job per setup per run: a submit whose answer was lost (DHIS2's route timed out and
answered 504, a proxy answered 502, the connection broke) may still have made its job. The flow
looks for it by its name, unique to the run, continues with it, and never submits again. The run
report shows the chap route's `responseTimeoutSeconds` and warns when it is too short."""

from __future__ import annotations

import re
import time

import pytest

from tests.fake_dhis2 import FakeAdmin
from tests.processes import wait_until

pytestmark = pytest.mark.flows

CHAP = "/api/routes/chap/run"
RUN_3 = CHAP + "/v1/crud/prediction-setups/3/run"
ONLY_3 = dict(end_mode="offset", end_period_offset=1, prediction_setup_id=3)
NAME_3 = r"Malaria monthly \(chapkit-ewars-model\) 202301-202602 \[run [0-9a-f]{8}\]"


def jobs_of(fake: FakeAdmin, setup_id: int) -> list[dict]:
    return [job for job in fake.state()["jobs"] if job["prediction_setup_id"] == setup_id]


def posts(fake: FakeAdmin) -> list[int]:
    return [r["status"] for r in fake.requests(RUN_3, method="POST")]


def assert_one_job_and_completed(fake: FakeAdmin, run, answered: str) -> None:
    (job,) = jobs_of(fake, 3)
    assert re.fullmatch(NAME_3, job["name"])
    assert job["name"].endswith(f"[run {str(run.state.state_details.flow_run_id).replace('-', '')[:8]}]")
    assert run.state.name == "Completed", run.report
    assert run.field("Malaria monthly", "Status") == "SUCCEEDED"
    assert re.fullmatch(rf"answered {answered}; found job {job['id']} by its name after \d+\.\d s and continued "
                        r"with it \(not submitted again\)", run.field("Malaria monthly", "Submit"))
    assert run.field("Malaria monthly", "Job") == f"`{job['id']}`"
    assert run.field("Malaria monthly", "Prediction values returned") == "45"
    assert run.state.result()["setups"][0]["submit"] == run.field("Malaria monthly", "Submit")


def test_a_route_timeout_after_the_job_was_made_gives_one_job_and_a_completed_run(fake: FakeAdmin, run_flow) -> None:
    # chap takes 1.5 s to accept the request, the route waits 1 s: DHIS2 answers 504 while chap
    # goes on and makes the job half a second later.
    fake.route(responseTimeoutSeconds=1)
    fake.faults(submit_seconds={"3": 1.5})

    run = run_flow(**ONLY_3)

    assert posts(fake) == [504]
    assert_one_job_and_completed(fake, run, "HTTP 504")


@pytest.mark.parametrize("fault, answered", [
    ({"status": 502}, "HTTP 502"),
    ({"status": 0, "reset": True}, r"no response \(ReadError: .*\)"),
], ids=["502", "reset"])
def test_a_lost_answer_after_the_job_was_made_gives_one_job_and_a_completed_run(fake: FakeAdmin, run_flow, fault,
                                                                                answered) -> None:
    fake.faults(http_errors=[{"method": "POST", "path": RUN_3, "after": True, "times": 1, **fault}])

    run = run_flow(**ONLY_3)

    assert posts(fake) == [fault["status"]]
    assert_one_job_and_completed(fake, run, answered)


def test_a_504_without_a_job_is_not_submitted_again(fake: FakeAdmin, run_flow, monkeypatch) -> None:
    # chap is slower than the route and then refuses the request: the 504 hides a submit that
    # made no job. The flow looks for it, finds none, and does not submit again.
    monkeypatch.setenv("CHAP_SUBMIT_LOOKUP_SECONDS", "1")
    fake.route(responseTimeoutSeconds=1)
    fake.faults(submit_seconds={"3": 1.2}, future_weather_leak=[3])

    run = run_flow(**ONLY_3)

    assert run.state.name == "Failed"
    assert posts(fake) == [504]
    assert jobs_of(fake, 3) == []
    assert run.field("Malaria monthly", "Status") == "FAILED at `run_prediction_setup`"
    error = run.section("Malaria monthly")[run.section("Malaria monthly").index("- **Error:**") + 2]
    assert re.fullmatch(
        rf"chap POST /v1/crud/prediction-setups/3/run -> HTTP 504: Gateway Timeout. chap-core may have made the job "
        rf"anyway, but it listed no job named '{NAME_3}' within 1 s \(CHAP_SUBMIT_LOOKUP_SECONDS\). Not submitted "
        r"again, so that this run never makes two forecasts of the setup: look for that name in chap-core's jobs "
        r"before running the setup again", error)
    looks = fake.requests(CHAP + "/v1/jobs")
    assert len(looks) >= 2 and all(["predictionSetupId", "3"] in r["query"] for r in looks)


def test_a_job_made_after_the_look_gave_up_is_still_the_only_one(fake: FakeAdmin, run_flow, monkeypatch) -> None:
    # chap is slower than the route (504 at 1 s) and than the flow's look (0.5 s more): the run
    # fails without a second submit, and the one job chap makes at 2.5 s stays the only one.
    monkeypatch.setenv("CHAP_SUBMIT_LOOKUP_SECONDS", "0.5")
    fake.route(responseTimeoutSeconds=1)
    fake.faults(submit_seconds={"3": 2.5})

    run = run_flow(**ONLY_3)
    assert run.state.name == "Failed"
    assert posts(fake) == [504]

    wait_until(lambda: jobs_of(fake, 3), timeout=10, what="the late job")
    time.sleep(0.2)
    assert len(jobs_of(fake, 3)) == 1
    assert posts(fake) == [504]


def test_a_rejection_is_not_a_lost_answer(fake: FakeAdmin, run_flow) -> None:
    fake.faults(http_errors=[{"method": "POST", "path": RUN_3, "status": 503, "times": 1}])

    run = run_flow(**ONLY_3)

    assert run.field("Malaria monthly", "Error") == "`chap POST /v1/crud/prediction-setups/3/run -> HTTP 503: injected HTTP 503`"
    assert fake.requests(CHAP + "/v1/jobs") == []


WARNING = ("-- **WARNING:** under 30 s. chap-core answers a submit only after checking its whole body (measured: 5.8 s "
           "for 700 districts, 110 weeks, 3 covariates), and when it is slower than this DHIS2 answers 504 although "
           "the job is made. Raise the route's responseTimeoutSeconds to 60 (see docs/operations.md)")


@pytest.mark.parametrize("route, fault, expected", [
    ({}, None, "5 s (`responseTimeoutSeconds` of the DHIS2 route `chap`) " + WARNING),
    ({"responseTimeoutSeconds": 60}, None, "60 s (`responseTimeoutSeconds` of the DHIS2 route `chap`)"),
    ({"responseTimeoutSeconds": None}, None,
     "unknown -- `DHIS2 lists no responseTimeoutSeconds for the route (before DHIS2 40.10 / 41.6 the timeout is "
     "fixed: 10 s, or 30 s in 40.8-40.9 and 41.4-41.5)`"),
    ({}, {"method": "GET", "path": "/api/routes", "status": 403},
     "unknown -- `could not read the route (DHIS2 GET /api/routes -> HTTP 403: injected HTTP 403)`"),
    # a route the user may run but not list (DHIS2's metadata sharing): the listing comes back empty
    ({}, {"method": "GET", "path": "/api/routes", "status": 200, "body": {"routes": []}},
     "unknown -- `DHIS2 lists no route 'chap' to this user`"),
], ids=["default", "sixty", "old-dhis2", "forbidden", "not-listed"])
def test_the_report_shows_the_chap_route_timeout(fake: FakeAdmin, run_flow, route, fault, expected) -> None:
    if route:
        fake.route(**route)
    if fault:
        fake.faults(http_errors=[fault])

    run = run_flow(configured_model_id=999)  # selects nothing: the report stops after the services

    assert f"- **DHIS2 route timeout:** {expected}" in run.lines
    assert run.lines.index("## chap-core") + 4 == run.lines.index(f"- **DHIS2 route timeout:** {expected}")
    (read,) = fake.requests("/api/routes")
    assert sorted(map(tuple, read["query"])) == [("fields", "id,code,responseTimeoutSeconds"),
                                                 ("filter", "code:eq:chap"), ("paging", "false")]
