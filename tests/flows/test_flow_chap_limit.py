"""The CHAP concurrency limit (`chap_concurrency_limit`): a slot of a Prefect global concurrency
limit held around each setup's CHAP work, against the test harness's real Prefect server; and the
fake's record of CHAP job concurrency that the end-to-end proof (tests/e2e) reads.

Limits are created and slots taken through Prefect's REST API, as chapctl and other runs would.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any

import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings

from flows.chap_slot import SlotError, chap_slot
from tests.fake_dhis2 import FakeAdmin
from tests.processes import wait_until
from tests.server.prefect_server import retrying_client

pytestmark = pytest.mark.flows

CHAP = "/api/routes/chap/run"
RUN_POSTS = CHAP + "/v1/crud/prediction-setups/*/run"
WEEKLY = dict(end_mode="offset", end_period_offset=1, configured_model_id=7)  # setup 5 only
HTTP = retrying_client()  # a SQLite-backed test server (no PostgreSQL) answers 503 while its database is locked


def create_limit(api: str, name: str, limit: int = 1, active: bool = True) -> dict[str, Any]:
    response = HTTP.post(f"{api}/v2/concurrency_limits/", json={"name": name, "limit": limit, "active": active})
    assert response.status_code == 201, response.text
    return response.json()


def read_limit(api: str, name: str) -> dict[str, Any]:
    response = HTTP.get(f"{api}/v2/concurrency_limits/{name}")
    response.raise_for_status()
    return response.json()


def take_slot(api: str, name: str) -> str:
    """Hold a slot the way another flow run would; returns the lease id."""
    response = HTTP.post(f"{api}/v2/concurrency_limits/increment-with-lease",
                         json={"names": [name], "slots": 1, "mode": "concurrency", "lease_duration": 60})
    response.raise_for_status()
    return response.json()["lease_id"]


def release_slot(api: str, lease_id: str) -> None:
    HTTP.post(f"{api}/v2/concurrency_limits/decrement-with-lease", json={"lease_id": lease_id}).raise_for_status()


def test_a_missing_limit_fails_the_run_before_any_data_is_fetched(fake: FakeAdmin, run_flow) -> None:
    run = run_flow(**WEEKLY, chap_concurrency_limit="chap-nowhere")

    text = ("the CHAP concurrency limit 'chap-nowhere' does not exist on the Prefect server; run `chapctl apply` "
            "to create it")
    assert (run.state.name, run.state.message) == ("Failed", f"FAILED -- {text}")
    assert f"- **Result:** FAILED -- {text}" in run.lines
    assert run.lines[-3:] == ["## CHAP concurrency limit", "", f"**MISSING** -- {text}"]
    # Both services (and the chap route's timeout) were checked; no data was fetched from DHIS2 and
    # nothing was sent to CHAP.
    assert [r["path"] for r in fake.requests()] == ["/api/system/info", CHAP + "/system/info", "/api/routes"]


def test_a_blank_limit_name_is_refused(fake: FakeAdmin, run_flow) -> None:
    run = run_flow(**WEEKLY, chap_concurrency_limit=" ")

    assert run.state.message == "FAILED -- invalid parameters or settings"
    assert run.lines[-1] == ("**INVALID** -- `chap_concurrency_limit must be the name of a Prefect global "
                             "concurrency limit, got ' '; leave it out for no limit`")
    assert fake.requests() == []


def test_the_slot_is_held_from_the_post_until_the_result_is_read(fake: FakeAdmin, run_flow, prefect_api) -> None:
    create_limit(prefect_api, "chap-held")
    fake.faults(job_seconds={"5": 0.5})
    samples: list[tuple[float, int]] = []  # (time, slots in use)
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append((time.time(), read_limit(prefect_api, "chap-held")["active_slots"]))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        run = run_flow(**WEEKLY, chap_concurrency_limit="chap-held")
    finally:
        done.set()
        sampler.join(timeout=10)

    assert run.state.message == "SUCCEEDED -- 1 of 1 prediction setups succeeded"
    assert "**READY** -- `chap-held`: 1 CHAP job at a time (0 in use as the run started)" in run.lines
    assert not [line for line in run.section("Dengue weekly") if "Waited for CHAP slot" in line]
    [job] = fake.job_concurrency()["intervals"]
    during = [used for at, used in samples if job["start"] < at < job["end"]]
    assert during and set(during) == {1}, samples  # held while the job ran in CHAP
    assert read_limit(prefect_api, "chap-held")["active_slots"] == 0  # and given back


def test_a_setup_waits_for_a_slot_and_the_report_says_how_long(fake: FakeAdmin, run_flow, prefect_api) -> None:
    create_limit(prefect_api, "chap-busy")
    lease = take_slot(prefect_api, "chap-busy")  # another run's CHAP job holds the only slot ...
    released: list[float] = []

    def release() -> None:
        # ... until the run has read the org units (its last read before it asks for the slot: docs/flow.md,
        # "Steps"), and 1.5 s more: the run waits that long, however slow it was to get there.
        try:
            wait_until(lambda: fake.requests("/api/organisationUnits"), "the run to read the org units",
                       timeout=120, every=0.05)
            time.sleep(1.5)
        finally:
            released.append(time.time())
            release_slot(prefect_api, lease)

    holder = threading.Thread(target=release)
    holder.start()
    try:
        run = run_flow(**WEEKLY, chap_concurrency_limit="chap-busy")
    finally:
        holder.join()

    assert run.state.message == "SUCCEEDED -- 1 of 1 prediction setups succeeded"
    assert "**READY** -- `chap-busy`: 1 CHAP job at a time (1 in use as the run started)" in run.lines
    waited = re.fullmatch(r"(\d+) s \(limit `chap-busy`\)", run.field("Dengue weekly", "Waited for CHAP slot"))
    assert waited and int(waited[1]) >= 1
    [job] = fake.job_concurrency()["intervals"]
    assert job["start"] > released[0]  # the prediction was submitted only once the slot was free


def test_no_slot_in_time_fails_the_setup_without_submitting(fake: FakeAdmin, run_flow, prefect_api,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    create_limit(prefect_api, "chap-full")
    lease = take_slot(prefect_api, "chap-full")
    monkeypatch.setenv("CHAP_SLOT_TIMEOUT_SECONDS", "1")
    try:
        started = time.monotonic()
        run = run_flow(**WEEKLY, chap_concurrency_limit="chap-full")
        elapsed = time.monotonic() - started
    finally:
        release_slot(prefect_api, lease)

    assert run.state.message == "FAILED -- 1 of 1 prediction setups failed"
    assert run.field("Dengue weekly", "Status") == "FAILED at `acquire_chap_slot`"
    assert run.field("Dengue weekly", "Error") == (
        "`no slot of the CHAP concurrency limit 'chap-full' came free within 1 s (CHAP_SLOT_TIMEOUT_SECONDS, "
        "default CHAP_SCHEDULER_PREDICTION_TIMEOUT_SECONDS); the prediction was not submitted`")
    assert fake.requests(RUN_POSTS) == []
    assert elapsed < 30


def test_an_inactive_limit_limits_nothing_and_says_so(fake: FakeAdmin, run_flow, prefect_api) -> None:
    create_limit(prefect_api, "chap-off", active=False)

    run = run_flow(**WEEKLY, chap_concurrency_limit="chap-off")

    assert run.state.message == "SUCCEEDED -- 1 of 1 prediction setups succeeded"
    assert "**INACTIVE** -- `chap-off`: turned off on the Prefect server: CHAP jobs are not limited" in run.lines


def test_without_a_limit_nothing_asks_the_prefect_server() -> None:
    """The flow's slot helper with no limit makes no request: with the API unreachable it still
    goes through, while a named limit is asked for (and fails)."""
    logger = logging.getLogger("test")
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        with chap_slot(None, 1, logger) as slot:
            assert slot is None
        with pytest.raises(SlotError, match="chap-unreachable-probe"), chap_slot("chap-unreachable-probe", 1, logger):
            pass


# ---------------------------------------------------------------- the fake's job concurrency record


def test_the_fake_records_active_jobs_their_peak_and_intervals(fake: FakeAdmin, run_flow,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # Setup 3's job never ends (the flow gives up after 1 s; the job stays active in CHAP), then
    # setup 5's job runs for at least 0.3 s beside it: two jobs active at once.
    fake.faults(job_statuses={"3": ["PENDING"]}, job_seconds={"5": 0.3})
    monkeypatch.setenv("CHAP_SCHEDULER_PREDICTION_TIMEOUT_SECONDS", "1")

    run_flow(end_mode="offset", end_period_offset=1)

    record = fake.job_concurrency()
    jobs = {job["prediction_setup_id"]: job["id"] for job in fake.state()["jobs"]}
    assert [(i["job"], i["setup"]) for i in record["intervals"]] == [(jobs[3], 3), (jobs[5], 5)]
    stuck, weekly = record["intervals"]
    assert stuck["end"] is None
    assert weekly["end"] - weekly["start"] >= 0.3
    assert stuck["start"] < weekly["start"]
    assert (record["active"], record["peak"]) == (1, 2)
    # setup 5's job was held at STARTED until its time was up: more polls than its three statuses
    polls = fake.requests(f"{CHAP}/v1/jobs/{jobs[5]}")
    assert len(polls) > 3

    fake.reset()
    assert fake.job_concurrency() == {"active": 0, "peak": 0, "intervals": []}
