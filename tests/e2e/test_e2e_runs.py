"""End to end: projects applied by `chapctl apply`, run by a real process worker against the fake
DHIS2+CHAP server — triggered by hand, started by Prefect's scheduler, and with a wrong password.

The three projects share one fake server; each is told apart by what it asks CHAP for (setup 5
for the triggered project, setup 3 for the scheduled one, nothing past the 401 for the wrong
password), so the every-minute scheduled runs cannot disturb the other tests' expectations.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta

import pytest

from tests.e2e.scenario import PASSWORD, POOL, SCHEDULED, TODAY, TRIGGERED, USERNAME, WRONG, WRONG_PASSWORD, Stack
from tests.e2e.stack import TERMINAL, Api

pytestmark = pytest.mark.server

CHAP = "/api/routes/chap/run"
RUN_TIMEOUT = 240.0  # a run is a new interpreter importing Prefect; generous on a busy 2-core box
SCHEDULER_TIMEOUT = 90.0  # the scheduler loop runs every 2 s: runs exist within seconds of apply
SCHEDULE_TIMEOUT = 240.0  # the next minute boundary, then the run itself


def report_lines(report: dict) -> list[str]:
    return report["data"].splitlines()


def field(lines: list[str], label: str) -> str:
    """The value of the first `- **label:** value` line."""
    prefix = f"- **{label}:** "
    values = [line[len(prefix):] for line in lines if line.startswith(prefix)]
    assert values, f"no {label!r} line in the report:\n" + "\n".join(lines)
    return values[0]


def only_report(api: Api, run: dict, key: str) -> dict:
    artifacts = api.artifacts_of(run["id"])
    assert [(a["type"], a["key"]) for a in artifacts] == [("markdown", key)]
    return artifacts[0]


def credentials_ref(api: Api, block: str) -> dict:
    return {"$ref": {"block_document_id": api.block_document(block)["id"]}}


def test_triggered_run_completes_with_its_report_and_prediction(stack: Stack, api: Api) -> None:
    deployment = api.deployment(TRIGGERED)
    # Stored parameters: a reference to the block document, never the password itself.
    assert deployment["parameters"] == {"credentials": credentials_ref(api, "e2e-dhis2"), "configured_model_id": 7,
                                        "end_mode": "offset", "end_period_offset": 1}
    assert PASSWORD not in json.dumps(deployment)
    assert PASSWORD not in stack.apply_output
    assert api.block_document("e2e-dhis2", include_secrets=True)["data"] == {
        "base_url": stack.fake.url, "username": USERNAME, "password": PASSWORD}
    assert deployment["work_pool_name"] == POOL
    assert deployment["pull_steps"] == [
        {"prefect.deployments.steps.set_working_directory": {"directory": str(stack.repo.root)}}]

    created = api.trigger(deployment["id"])
    run = api.wait_terminal(created["id"], RUN_TIMEOUT, stack.worker)

    assert (run["state"]["type"], run["state"]["name"]) == ("COMPLETED", "Completed"), stack.worker.log_tail()
    assert run["state"]["message"] == "SUCCEEDED -- 1 of 1 prediction setups succeeded"
    assert run["work_pool_name"] == POOL
    assert run["infrastructure_pid"]  # the process worker started it
    assert run["parameters"] == deployment["parameters"]  # the run, too, holds only the reference
    # ours, not the scheduler's (the contrast for the scheduled test below)
    assert (run["auto_scheduled"], run["idempotency_key"], run["created_by"]) == (False, None, None)
    assert sorted(run["tags"]) == ["chapctl-owner:default", "e2e", "managed-by:chapctl"]  # the server keeps no tag order

    # The report, read back through the API by run and by key.
    report = only_report(api, run, f"chap-report-{TRIGGERED}")
    # (GET /artifacts/{key}/latest answers the key's collection row: its `id` is not the artifact's)
    latest = api.latest_artifact(f"chap-report-{TRIGGERED}")
    assert (latest["key"], latest["flow_run_id"], latest["data"]) == (report["key"], run["id"], report["data"])
    assert report["description"] == "CHAP prediction run report"
    lines = report_lines(report)
    assert lines[0] == "# CHAP prediction run report"
    assert field(lines, "Result") == "SUCCEEDED -- 1 of 1 prediction setups succeeded"
    assert field(lines, "Project") == TRIGGERED
    assert field(lines, "DHIS2") == stack.fake.url
    assert field(lines, "End mode") == "offset (end_period_offset=1)"
    assert field(lines, "Today") == f"{TODAY.isoformat()} (from CHAP_TODAY)"
    assert field(lines, "Selection") == "configured_model_id=7"
    assert "**REACHABLE** -- DHIS2 2.41.2 (Demo HMIS)" in lines
    assert "## Prediction setups (1 succeeded, 0 failed, 0 skipped)" in lines
    assert "### `Dengue weekly` -- auto-regressive-weekly" in lines
    assert field(lines, "Status") == "SUCCEEDED"
    assert field(lines, "End period") == "2026W10"
    assert field(lines, "Values sent to chap") == "456"

    # What the fake DHIS2+CHAP received: one prediction POST for setup 5, as the chap-bot user.
    posts = stack.fake.admin.requests(CHAP + "/v1/crud/prediction-setups/*/run", method="POST")
    mine = [p for p in posts if p["path"].endswith("/5/run")]
    assert [(p["path"], p["user"], p["status"]) for p in mine] == [
        (CHAP + "/v1/crud/prediction-setups/5/run", USERNAME, 200)]
    body = mine[0]["json"]
    assert sorted(body) == ["geojson", "nPeriods", "name", "providedData", "type"]
    assert body["name"] == "Dengue weekly (auto-regressive-weekly) 2024W01-2026W10"
    assert (body["nPeriods"], body["type"]) == (12, "forecasting")
    # DHIS2 writes weeks unpadded and the flow passes them on as written: 114 weeks x 2 covariates x 2 org units
    weeks = [f"{year}W{w}" for year in (2024, 2025) for w in range(1, 53)] + [f"2026W{w}" for w in range(1, 11)]
    assert sorted({row["period"] for row in body["providedData"]}) == sorted(weeks)
    assert len(body["providedData"]) == 114 * 2 * 2
    assert {row["featureName"] for row in body["providedData"]} == {"disease_cases", "rainfall"}
    assert [f["id"] for f in body["geojson"]["features"]] == ["ouDist001", "ouDist003"]
    # ... and the job the report names is the fake's job for setup 5, with its prediction id.
    [job] = [j for j in stack.fake.admin.state()["jobs"] if j["prediction_setup_id"] == 5]
    assert (job["status"], job["name"]) == ("SUCCESS", body["name"])
    assert field(lines, "Job") == f"`{job['id']}`"
    assert field(lines, "Prediction") == job["result"]


def test_wrong_password_run_fails_and_reports_the_401(stack: Stack, api: Api) -> None:
    deployment = api.deployment(WRONG)
    assert deployment["parameters"]["credentials"] == credentials_ref(api, "e2e-dhis2-wrong")
    assert WRONG_PASSWORD not in json.dumps(deployment)
    # apply stored what the variable held: the block is well formed, only its password is wrong
    assert api.block_document("e2e-dhis2-wrong", include_secrets=True)["data"] == {
        "base_url": stack.fake.url, "username": USERNAME, "password": WRONG_PASSWORD}

    run = api.wait_terminal(api.trigger(deployment["id"])["id"], RUN_TIMEOUT, stack.worker)

    assert (run["state"]["type"], run["state"]["name"]) == ("FAILED", "Failed"), stack.worker.log_tail()
    assert run["state"]["message"] == "FAILED -- DHIS2 authentication failed (HTTP 401): check the username and password of the credentials block"
    report = only_report(api, run, f"chap-report-{WRONG}")
    lines = report_lines(report)
    assert field(lines, "Result") == "FAILED -- DHIS2 authentication failed (HTTP 401): check the username and password of the credentials block"
    assert field(lines, "Project") == WRONG
    # The report stops at DHIS2: it answered 401, nothing else was asked.
    assert lines[-3:] == ["## DHIS2", "", "**AUTHENTICATION FAILED** -- `DHIS2 GET /api/system/info -> HTTP 401: Unauthorized`"]
    refused = [(r["method"], r["path"], r["user"]) for r in stack.fake.admin.requests() if r["status"] == 401]
    assert refused == [("GET", "/api/system/info", USERNAME)]  # a 401 is not retried


def test_the_scheduler_starts_a_run_that_completes(stack: Stack, api: Api) -> None:
    deployment = api.deployment(SCHEDULED)
    [schedule] = deployment["schedules"]
    cron = stack.projects[SCHEDULED]["schedule"]["cron"]
    assert (schedule["slug"], schedule["schedule"]["cron"], schedule["schedule"]["timezone"], schedule["active"]) == \
        ("chapctl-cron", cron, "UTC", True)

    run = wait_for_completed_scheduled_run(api, deployment["id"], stack)

    # Created by the scheduler from this deployment's schedule, not by a client.
    assert run["created_by"] == {"id": schedule["id"], "type": "SCHEDULE", "display_value": "chapctl-cron"}
    assert run["auto_scheduled"] is True
    assert sorted(run["tags"]) == ["auto-scheduled", "chapctl-owner:default", "e2e", "managed-by:chapctl"]
    assert run["idempotency_key"].startswith(f"scheduled {deployment['id']} {schedule['id']} ")
    expected = datetime.fromisoformat(run["expected_start_time"])
    assert (expected.second, expected.microsecond) == (0, 0)  # a minute boundary the cron names
    assert cron == "* * * * *"
    # not before its time (Prefect's WaitForScheduledTime rounds the remaining delay to whole seconds)
    assert datetime.fromisoformat(run["start_time"]) >= expected - timedelta(seconds=1)
    assert run["parameters"] == {"credentials": credentials_ref(api, "e2e-dhis2"), "configured_model_id": 12,
                                 "end_mode": "offset", "end_period_offset": 1, "prediction_setup_id": 3}

    assert run["state"]["message"] == "SUCCEEDED -- 1 of 1 prediction setups succeeded"
    lines = report_lines(only_report(api, run, f"chap-report-{SCHEDULED}"))
    assert field(lines, "Result") == "SUCCEEDED -- 1 of 1 prediction setups succeeded"
    assert field(lines, "Project") == SCHEDULED
    assert field(lines, "Selection") == "configured_model_id=12, prediction_setup_id=3"
    assert "### `Malaria monthly` -- chapkit-ewars-model" in lines
    assert field(lines, "End period") == "202602"
    posts = stack.fake.admin.requests(CHAP + "/v1/crud/prediction-setups/3/run", method="POST")
    assert posts and all((p["user"], p["status"]) == (USERNAME, 200) for p in posts)
    assert posts[0]["json"]["name"] == "Malaria monthly (chapkit-ewars-model) 202301-202602"


def wait_for_completed_scheduled_run(api: Api, deployment_id: str, stack: Stack) -> dict:
    """The first run of the deployment to reach a final state; it must be Completed.

    Two phases, so a scheduler that creates nothing fails in a minute with the server's own error
    instead of after the whole timeout."""
    runs = poll(lambda: api.flow_runs(deployment_id), SCHEDULER_TIMEOUT)
    assert runs, ("the scheduler created no run for the deployment within "
                  f"{SCHEDULER_TIMEOUT:.0f}s; last server errors:\n{server_errors(stack)}")
    finished = poll(lambda: [r for r in api.flow_runs(deployment_id) if r["state"]["type"] in TERMINAL],
                    SCHEDULE_TIMEOUT)
    assert finished, (f"no scheduled run finished within {SCHEDULE_TIMEOUT:.0f}s; runs: "
                      f"{[(r['name'], r['state']['name']) for r in api.flow_runs(deployment_id)]}\n"
                      f"{stack.worker.log_tail()}")
    run = finished[0]
    assert (run["state"]["type"], run["state"]["name"]) == ("COMPLETED", "Completed"), \
        f"{run['state']}\n{stack.worker.log_tail()}"
    return run


def poll(read, timeout: float, every: float = 1.0):
    """`read()` until it returns something truthy or `timeout` seconds pass; its last value."""
    deadline = time.monotonic() + timeout
    while not (value := read()) and time.monotonic() < deadline:
        time.sleep(every)
    return value


def server_errors(stack: Stack, lines: int = 12) -> str:
    log = stack.server.log_path.read_text(errors="replace").splitlines()
    errors = [line for line in log if "Error" in line or "ERROR" in line]
    return "\n".join(errors[-lines:]) or "(none logged)"
