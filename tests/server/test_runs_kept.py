"""No scheduled run lost or doubled by an apply (issue 21, item 10).

Prefect 3.9.1 deletes a deployment's not-yet-started auto-scheduled future runs on every update
of it or of one of its schedules, and its scheduler service makes runs only from its own now
onward, on its next pass. A server whose scheduler passes once an hour makes that window as long
as a test needs: every fire time after an apply falls before the scheduler's next pass, as the
next cron tick does when an apply lands seconds before it on a server with Prefect's defaults
(one pass a minute, and one every 5 s for just-updated deployments). What the scheduler would
have made by then is made here the way it makes it (`POST /deployments/{id}/schedule`, the same
function, the same idempotency keys).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import pytest

from tests.lanes import lane
from tests.server.conftest import PASSWORDS, Chapctl
from tests.server.prefect_server import PrefectServer, main_backend, scheduler_env
from tests.server.repo import project

pytestmark = pytest.mark.server

UTC = dt.timezone.utc
HOUR = dt.timedelta(hours=1)


@pytest.fixture(scope="module")
@lane("server", group="runs-kept")
def slow_scheduler_server(request, tmp_path_factory) -> PrefectServer:
    srv = PrefectServer.start(tmp_path_factory.mktemp("prefect-runs-kept"), main_backend(),
                              extra_env=scheduler_env(loop_seconds=3600, recent_loop_seconds=3600))
    request.addfinalizer(srv.stop)
    return srv


@pytest.fixture
def runner(slow_scheduler_server, tmp_path) -> Chapctl:
    slow_scheduler_server.wipe()
    return Chapctl(slow_scheduler_server, {**slow_scheduler_server.client_env(),
                                           "CHAPCTL_FLOWS_DIR": str(tmp_path / "repo"), **PASSWORDS})


def deployment(server: PrefectServer, name: str) -> dict[str, Any]:
    with server.client() as c:
        return next(d for d in c.post("/deployments/filter", json={"limit": 200}).json() if d["name"] == name)


def scheduled_times(server: PrefectServer, deployment_id: str) -> Counter:
    """How many SCHEDULED runs the deployment has at each expected start time."""
    runs: list[dict[str, Any]] = []
    with server.client() as c:
        while True:
            page = c.post("/flow_runs/filter", json={
                "flow_runs": {"deployment_id": {"any_": [deployment_id]}, "state": {"type": {"any_": ["SCHEDULED"]}}},
                "sort": "EXPECTED_START_TIME_ASC", "limit": 200, "offset": len(runs)}).json()
            runs += page
            if len(page) < 200:
                break
    return Counter(dt.datetime.fromisoformat(r["expected_start_time"]).astimezone(UTC) for r in runs)


def scheduler_pass(server: PrefectServer, deployment_id: str) -> None:
    """What a pass of Prefect's scheduler service does for the deployment (from now, same keys)."""
    with server.client() as c:
        c.post(f"/deployments/{deployment_id}/schedule", json={}).raise_for_status()


def minutes(start: dt.datetime, end: dt.datetime, every: int = 1) -> list[dt.datetime]:
    """The fire times of `*/every * * * *` (UTC) in (start, end]."""
    t = start.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    out = []
    while t <= end:
        if t.minute % every == 0:
            out.append(t)
        t += dt.timedelta(minutes=1)
    return out


def assert_one_run_per_fire_time(server: PrefectServer, deployment_id: str, every: int = 1) -> None:
    """Every fire time of the next hour has exactly one SCHEDULED run, and no future run is at
    another time or past what the scheduler would make (until the first fire time an hour on)."""
    now = dt.datetime.now(UTC)
    runs = scheduled_times(server, deployment_id)
    expected = minutes(now, now + HOUR - dt.timedelta(minutes=1), every)
    assert [(t.isoformat(), runs[t]) for t in expected if runs[t] != 1] == [], "fire times without exactly one run"
    future = sorted(t for t in runs if t > now)
    strays = [t.isoformat() for t in future if t.minute % every or t.second]
    assert strays == [], "runs at times the schedule does not fire"
    assert future[-1] <= now + HOUR + dt.timedelta(minutes=every), "more runs than the scheduler makes"


def test_an_apply_keeps_the_run_of_the_next_tick(runner, make_repo, slow_scheduler_server):
    srv = slow_scheduler_server
    repo = make_repo([project("every-minute", cron="* * * * *", timezone="UTC")])
    runner.apply(repo)
    dep_id = deployment(srv, "every-minute")["id"]
    scheduler_pass(srv, dep_id)  # the scheduler's pass between the two applies
    assert_one_run_per_fire_time(srv, dep_id)

    # A change lands before the next tick (and before the scheduler's next pass).
    repo.write_project(project("every-minute", cron="* * * * *", timezone="UTC", model_id=13))
    applied = runner.apply(repo)
    assert [(a.kind, a.op) for a in applied.applied] == [("deployment", "update")]
    next_tick = minutes(dt.datetime.now(UTC), dt.datetime.now(UTC) + dt.timedelta(minutes=1))[0]
    assert scheduled_times(srv, dep_id)[next_tick] == 1, f"the run of the next tick {next_tick} was lost"
    assert_one_run_per_fire_time(srv, dep_id)

    scheduler_pass(srv, dep_id)  # the scheduler's next pass makes none twice
    assert_one_run_per_fire_time(srv, dep_id)
    before = scheduled_times(srv, dep_id)
    runner.apply(repo)  # nothing changed: nothing written, nothing scheduled
    assert runner.last_stats.writes == 0
    assert scheduled_times(srv, dep_id) == before


def test_a_schedule_change_keeps_one_run_per_new_fire_time_and_a_paused_one_gets_none(runner, make_repo,
                                                                                       slow_scheduler_server):
    srv = slow_scheduler_server
    repo = make_repo([project("every-minute", cron="* * * * *", timezone="UTC"),
                      project("paused", cron="* * * * *", timezone="UTC", active=False)])
    runner.apply(repo)
    dep_id = deployment(srv, "every-minute")["id"]
    scheduler_pass(srv, dep_id)

    repo.write_project(project("every-minute", cron="*/5 * * * *", timezone="UTC"))
    repo.write_project(project("paused", cron="*/5 * * * *", timezone="UTC", active=False, model_id=13))
    runner.apply(repo)
    assert_one_run_per_fire_time(srv, dep_id, every=5)
    assert scheduled_times(srv, deployment(srv, "paused")["id"]) == Counter()

    repo.write_project(project("every-minute", cron="*/5 * * * *", timezone="UTC", active=False))
    runner.apply(repo)
    now = dt.datetime.now(UTC)
    assert [t for t in scheduled_times(srv, dep_id) if t > now] == [], "a paused schedule keeps no future run"


def test_an_apply_killed_before_it_restored_the_runs_is_completed_by_the_next(runner, make_repo,
                                                                             slow_scheduler_server, tmp_path):
    """SIGKILL between a project's last write (Prefect deleted its future runs) and its RUNS step:
    the lock it held stays on the server, and the next apply, though it has nothing to change,
    takes the dead lock over and puts back every run since the dead apply began."""
    import os
    import signal
    import subprocess
    import sys

    from tests.processes import wait_until
    from tests.server.fault_proxy import FaultProxy

    srv = slow_scheduler_server
    repo = make_repo([project("every-minute", cron="* * * * *", timezone="UTC")])
    runner.apply(repo)
    dep_id = deployment(srv, "every-minute")["id"]
    scheduler_pass(srv, dep_id)
    repo.write_project(project("every-minute", cron="* * * * *", timezone="UTC", model_id=13))

    with FaultProxy(srv.api_url) as proxy:
        held = proxy.stall("POST", r"^/api/deployments/[^/]+/schedule$")
        env = {**runner.process_env(repo), "PREFECT_API_URL": proxy.api_url, "CHAPCTL_LOCK_TTL": "2"}
        proc = subprocess.Popen([sys.executable, "-m", "compiler", "apply", "--root", str(repo.root)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until(lambda: held.arrived.is_set() or proc.poll() is not None, timeout=60,
                       what="the apply's RUNS step")
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        assert held.arrived.is_set(), "the apply ended before its RUNS step"
    now = dt.datetime.now(UTC)
    assert [t for t in scheduled_times(srv, dep_id) if t > now + dt.timedelta(seconds=5)] == [], \
        "the update deleted the future runs (what the kill leaves behind)"

    result = runner.apply(repo)  # nothing to change; the dead apply's lock is still there
    assert not result.applied  # no change to make, only the runs to put back
    assert any("runs" in note and "every-minute" in note for note in result.notes), result.notes
    assert_one_run_per_fire_time(srv, dep_id)
    before = scheduled_times(srv, dep_id)
    runner.apply(repo)  # a live lock was released: nothing more to do
    assert scheduled_times(srv, dep_id) == before
