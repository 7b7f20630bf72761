"""Facts about Prefect's server that chapctl's design rests on, checked against the real server.

If one of these starts failing after a Prefect upgrade, the design can change with it (see
docs/performance.md): today a no-op must read every owned deployment in full, because an edit of
a schedule — what "pause this schedule" in the UI does — leaves no trace anywhere cheaper.
"""

from __future__ import annotations

import datetime as dt
import time

import pytest

from tests.server.conftest import deployment
from tests.server.repo import project

pytestmark = pytest.mark.server


def _deployment_events(server, dep_id: str, since: str) -> list[str]:
    with server.client() as c:
        page = c.post("/events/filter", json={"limit": 50, "filter": {
            "occurred": {"since": since}, "resource": {"id": [f"prefect.deployment.{dep_id}"]}}}).json()
    return [e["event"] for e in page.get("events", [])]


def test_a_schedule_edit_changes_neither_the_deployment_nor_the_event_feed(chapctl, make_repo, clean_server):
    chapctl.apply(make_repo([project("laos-malaria", "laos-dhis2")]))
    before = deployment(clean_server, "laos-malaria")
    time.sleep(0.1)
    since = dt.datetime.now(dt.timezone.utc).isoformat()  # after the apply's own events
    with clean_server.client() as c:
        schedule = before["schedules"][0]
        c.patch(f"/deployments/{before['id']}/schedules/{schedule['id']}", json={"active": False}).raise_for_status()
        # the control: an edit of the deployment itself is announced
        c.patch(f"/deployments/{before['id']}", json={"description": "edited in the UI"}).raise_for_status()
    deadline = time.monotonic() + 20
    while "prefect.deployment.updated" not in (events := _deployment_events(clean_server, before["id"], since)):
        assert time.monotonic() < deadline, f"the control event never arrived: {events}"
        time.sleep(0.5)
    after = deployment(clean_server, "laos-malaria")
    assert after["schedules"][0]["active"] is False and after["schedules"][0]["updated"] != schedule["updated"]
    # one event, for the description; nothing says the schedule changed
    assert events == ["prefect.deployment.updated"]
    with clean_server.client() as c:
        c.patch(f"/deployments/{before['id']}/schedules/{schedule['id']}", json={"active": True}).raise_for_status()
    assert deployment(clean_server, "laos-malaria")["updated"] == after["updated"]  # a schedule edit alone
