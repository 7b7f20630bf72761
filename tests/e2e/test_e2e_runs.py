"""End to end: projects applied by `chapctl apply`, run by a real process worker against the fake
DHIS2+CHAP server — triggered by hand, started by Prefect's scheduler, and with a wrong password.

The three projects share one fake server; each is told apart by what it asks CHAP for (setup 5
for the triggered project, setup 3 for the scheduled one, nothing past the 401 for the wrong
password), so the every-minute scheduled runs cannot disturb the other tests' expectations.
The CHAP concurrency limit test adds a deployment of its own (created through the API) and
setups 31-34, and reads only the fake's jobs its own reports name.
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime, timedelta
from itertools import pairwise

import pytest

from tests.e2e.scenario import PASSWORD, POOL, SCHEDULED, TODAY, TRIGGERED, USERNAME, WRONG, WRONG_PASSWORD, Stack
from tests.e2e.stack import TERMINAL, Api

pytestmark = pytest.mark.e2e

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
    # the run's token makes the name unique to this run (a lost submit answer is looked for by it)
    assert body["name"] == f"Dengue weekly (auto-regressive-weekly) 2024W01-2026W10 [run {run['id'].replace('-', '')[:8]}]"
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


# ------------------------------------------------------------------ the CHAP concurrency limit

CHAP_LIMIT = "chap-e2e-dhis2"  # any name: how chapctl names the limit of a DHIS2 instance is not tested here
LIMIT_SETUPS = (31, 32, 33, 34)  # copies of the monthly setup 3: nothing else in this module selects them
# Each of their CHAP jobs runs this long (the fake's `job_seconds`; ~20 polls of 0.2 s): longer than
# the spread of the runs' starts (each is a new process importing Prefect on a busy box, 3-7 s
# apart), so that without the limit some of them must overlap.
JOB_SECONDS = 4.0


def test_a_chap_limit_of_one_serialises_four_concurrent_runs(stack: Stack, api: Api) -> None:
    """Four runs started together, each with one setup and the same global concurrency limit of 1:
    all complete, and chap-core never has two of their jobs at once. The same four runs without
    the limit, started with them, do overlap (the control: the check can fail), and a run naming
    a limit that does not exist fails, saying so."""
    deployment_id = limit_deployment(api)
    seed = next(s for s in stack.fake.admin.state()["setups"] if s["id"] == 3)
    for setup_id in LIMIT_SETUPS:
        stack.fake.admin.put_setup({**seed, "id": setup_id, "name": f"Malaria monthly copy {setup_id}"})
    stack.fake.admin.faults(job_seconds={str(setup_id): JOB_SECONDS for setup_id in LIMIT_SETUPS})
    api._ok(api.c.post("/v2/concurrency_limits/", json={"name": CHAP_LIMIT, "limit": 1, "active": True}))

    # All nine at once: the four limited runs, the four of the control (their jobs are told apart
    # by id; the limit holds only the limited ones) and the run naming a missing limit.
    started = time.monotonic()
    together = run_together(api, stack, deployment_id, [(s, CHAP_LIMIT) for s in LIMIT_SETUPS]
                            + [(s, None) for s in LIMIT_SETUPS] + [(31, "chap-e2e-missing")])
    seconds = time.monotonic() - started
    limited, control, missing = together[:4], together[4:8], together[8]

    for run, lines in limited + control:
        assert run["state"]["message"] == "SUCCEEDED -- 1 of 1 prediction setups succeeded", \
            (run["state"], stack.worker.log_tail())
    intervals = stack.fake.admin.job_concurrency()["intervals"]
    with_limit = [i for i in intervals if i["job"] in job_ids(limited)]
    without = [i for i in intervals if i["job"] in job_ids(control)]
    assert len(with_limit) == len(without) == 4
    assert all(i["end"] - i["start"] >= JOB_SECONDS for i in with_limit + without)
    ordered = sorted(with_limit, key=lambda i: i["start"])
    assert all(later["start"] > earlier["end"] for earlier, later in pairwise(ordered)), ordered
    assert peak(with_limit) == 1
    assert peak(without) > 1, f"the control runs did not overlap, so the test proves nothing: {without}"
    # The runs that queued say how long they waited (16 s of jobs cannot fit beside the ~5 s
    # between the four runs' starts without someone waiting).
    waits = [wait_seconds(lines) for _, lines in limited]
    assert any(w is not None for w in waits), waits
    assert api._ok(api.c.get(f"/v2/concurrency_limits/{CHAP_LIMIT}"))["active_slots"] == 0  # all given back

    text = ("the CHAP concurrency limit 'chap-e2e-missing' does not exist on the Prefect server; run `chapctl apply` "
            "to create it")
    run, lines = missing
    assert (run["state"]["type"], run["state"]["message"]) == ("FAILED", f"FAILED -- {text}")
    assert lines[-3:] == ["## CHAP concurrency limit", "", f"**MISSING** -- {text}"]
    print(f"\nCHAP limit: 4 limited runs, 4 control runs and the missing limit at once {seconds:.1f} s (waits {waits})")


def limit_deployment(api: Api) -> str:
    """A deployment like the triggered project's (flow, pool, pull step, credentials block, the
    parameter schema chapctl stored), whose runs name their setup and limit as parameters, so that
    one deployment can run limited and unlimited side by side (the control); projects name theirs
    through `instance_limits:`, proven in tests/e2e/test_alerts_and_limits.py."""
    triggered = api.deployment(TRIGGERED)
    body = {key: triggered[key] for key in ("flow_id", "entrypoint", "pull_steps", "work_pool_name",
                                            "parameter_openapi_schema")}
    body.update(name="e2e-chap-limit", parameters={"credentials": triggered["parameters"]["credentials"],
                                                   "end_mode": "offset", "end_period_offset": 1})
    return api._ok(api.c.post("/deployments/", json=body))["id"]


def run_together(api: Api, stack: Stack, deployment_id: str,
                 runs: list[tuple[int, str | None]]) -> list[tuple[dict, list[str]]]:
    """Create one run per (setup, limit) at once, wait for all; each final run with its report."""
    created = []
    for setup_id, limit in runs:
        parameters = {"prediction_setup_id": setup_id, **({"chap_concurrency_limit": limit} if limit else {})}
        created.append(api._ok(api.c.post(f"/deployments/{deployment_id}/create_flow_run",
                                          json={"parameters": parameters})))
    finished = [api.wait_terminal(run["id"], RUN_TIMEOUT, stack.worker) for run in created]
    return [(run, report_lines(only_report(api, run, "chap-report-e2e-chap-limit"))) for run in finished]


def job_ids(runs: list[tuple[dict, list[str]]]) -> set[str]:
    return {field(lines, "Job").strip("`") for _, lines in runs if any(line.startswith("- **Job:**") for line in lines)}


def wait_seconds(lines: list[str]) -> int | None:
    found = [line for line in lines if line.startswith("- **Waited for CHAP slot:** ")]
    if not found:
        return None
    match = re.fullmatch(rf"- \*\*Waited for CHAP slot:\*\* (\d+) s \(limit `{CHAP_LIMIT}`\)", found[0])
    assert match, found
    return int(match[1])


def peak(intervals: list[dict]) -> int:
    """The most intervals open at one time (an interval ending exactly when another starts does not overlap)."""
    events = sorted([(i["start"], 1) for i in intervals] + [(i["end"], -1) for i in intervals],
                    key=lambda e: (e[0], e[1]))
    most = current = 0
    for _, change in events:
        current += change
        most = max(most, current)
    return most


# Last in the module: the every-minute schedule has been running since the stack was applied, so its
# first run has most likely completed by now (the test waits for it either way).
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
    assert posts[0]["json"]["name"] == f"Malaria monthly (chapkit-ewars-model) 202301-202602 [run {run['id'].replace('-', '')[:8]}]"


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
