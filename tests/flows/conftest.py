"""Fixtures for the prediction flow's tests: a Prefect server of the session, the fake DHIS2+CHAP
server, and a helper that runs the flow for real and returns its final state and report.

Nothing here patches the flow: "today", the job timeout and the poll interval are set through
the environment variables the flow documents, and faults are injected into the fake over HTTP.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Callable

import pytest
from prefect.events.worker import EventsWorker
from prefect.logging.handlers import APILogWorker
from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

from flows.blocks import Dhis2Credentials
from flows.dhis2_chap_prediction import dhis2_chap_prediction
from tests.fake_dhis2 import FakeAdmin, FakeDhis2Server
from tests.lanes import lane
from tests.server.prefect_server import PrefectServer, main_backend
from tests.flows.helpers import DEFAULT_TODAY, PASSWORD, USERNAME, FlowRun, artifact_of


# The server's settings for the flow's tests.
FLOW_SERVER_SETTINGS = {
    # The server's task-run recorder and event persister turn every task state change into
    # database writes that contend with the flow engine's own; on two cores that made each run
    # ~5x slower. Flow runs, their states and artifacts (all the tests read) do not need them.
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_ENABLED": "false",
    # A run waiting for a slot of a global concurrency limit retries after the server's
    # Retry-After, up to 30 s by default; the CHAP-limit tests wait for slots held for ~1 s.
    "PREFECT_SERVER_CONCURRENCY_MAXIMUM_CONCURRENCY_SLOT_WAIT_SECONDS": "0.5",
    # No automation, worker, paused run or deployment schedule here (the runs are in-process): those
    # services would only spend CPU for the whole run on every worker's server.
    **{f"PREFECT_SERVER_SERVICES_{name}_ENABLED": "false"
       for name in ("TRIGGERS", "FOREMAN", "PAUSE_EXPIRATIONS", "SCHEDULER", "LATE_RUNS")},
}


@pytest.fixture(scope="session")
@lane("flows")
def prefect_api(tmp_path_factory) -> str:
    """A Prefect server of the session (per xdist worker) on the main backend, which the flow runs
    of this process report to (Prefect's settings point at it while the session lasts)."""
    server = PrefectServer.start(tmp_path_factory.mktemp("prefect-flows"), main_backend(),
                                 extra_env=FLOW_SERVER_SETTINGS)
    try:
        # Heartbeats only detect crashed runs of long-lived workers; in-process test runs pay
        # up to a second per run joining the heartbeat thread, so turn them off here.
        with temporary_settings(updates={PREFECT_API_URL: server.api_url, PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            yield server.api_url
            # the runs' last logs and events, while the server still answers
            APILogWorker.drain_all(timeout=5)
            EventsWorker.drain_all(timeout=5)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def fake_server() -> FakeDhis2Server:
    with FakeDhis2Server(username=USERNAME, password=PASSWORD, today=DEFAULT_TODAY) as server:
        yield server


@pytest.fixture
def fake(fake_server: FakeDhis2Server, monkeypatch: pytest.MonkeyPatch) -> FakeAdmin:
    """The fake, reset to its seed data, with the flow and the fake agreeing on today."""
    fake_server.admin.reset(DEFAULT_TODAY)
    monkeypatch.setenv("CHAP_TODAY", DEFAULT_TODAY.isoformat())
    monkeypatch.setenv("CHAP_SCHEDULER_POLL_INTERVAL_SECONDS", "0.01")
    monkeypatch.delenv("CHAP_SCHEDULER_PREDICTION_TIMEOUT_SECONDS", raising=False)
    return fake_server.admin


@pytest.fixture
def use_today(fake: FakeAdmin, monkeypatch: pytest.MonkeyPatch) -> Callable[[date], None]:
    def set_today(day: date) -> None:
        fake.reset(day)
        monkeypatch.setenv("CHAP_TODAY", day.isoformat())
    return set_today


@pytest.fixture
def credentials(fake_server: FakeDhis2Server) -> Dhis2Credentials:
    return Dhis2Credentials(base_url=fake_server.url + "/", username=USERNAME, password=PASSWORD)


@pytest.fixture
def run_flow(prefect_api: str, credentials: Dhis2Credentials) -> Callable[..., FlowRun]:
    """Run the flow as a real Prefect flow run; return its final state and its report."""

    def run(**parameters: Any) -> FlowRun:
        parameters.setdefault("credentials", credentials)
        state = dhis2_chap_prediction(**parameters, return_state=True)
        artifact = artifact_of(prefect_api, state.state_details.flow_run_id)
        return FlowRun(state=state, report=artifact["data"], key=artifact["key"])

    return run
