"""Issue 15 end to end: projects declared with `alerts`, `instance_limits` and `schedules`, compiled
and applied by the real CLI to a real Prefect server, run by a real process worker against the
fake DHIS2+CHAP; notifications arrive at a webhook receiver on loopback.

- a failed run makes the automation deliver a notification naming the project and the run; a
  successful run does not; a run that never starts (its pool has no worker) is reported missed;
- four runs of two projects sharing a DHIS2 instance limited to 1 all complete and never have
  two CHAP jobs at once (the fake records every job's interval).
"""

from __future__ import annotations

import datetime as dt
import subprocess
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.scenario import PASSWORD, PASSWORD_ENV, POOL, SERVER_SETTINGS, TODAY, USERNAME, WORKER_SETTINGS, clean_env
from tests.e2e.stack import BIN, Api, Worker, backend
from tests.fake_dhis2 import FakeDhis2Server
from tests.lanes import lane
from tests.processes import wait_until
from tests.server.prefect_server import PrefectServer
from tests.server.repo import Repo, project
from tests.server.webhook_receiver import WebhookReceiver

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

OK_A, OK_B, FAILS, MISSED = "alert-ok-a", "alert-ok-b", "alert-fails", "alert-missed"
IDLE_POOL = "no-worker-here"  # a pool no worker polls: a run of it never starts
GRACE = "10s"


@dataclass
class AlertStack:
    api: Api
    fake: FakeDhis2Server
    hook: WebhookReceiver
    worker: Worker
    repo: Repo


def _chapctl(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "chapctl"), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
@lane("e2e", group="e2e-alerts")
def stack(tmp_path_factory) -> AlertStack:
    tmp = tmp_path_factory.mktemp("alerts")
    with ExitStack() as cleanup:
        hook = cleanup.enter_context(WebhookReceiver())
        fake = FakeDhis2Server(username=USERNAME, password=PASSWORD, today=TODAY).start()
        cleanup.callback(fake.stop)
        fake.admin.faults(job_seconds={"3": 1.5})  # CHAP jobs that take a while: overlaps would show
        # PostgreSQL where there is one (always in CI): on SQLite the automation services, the late-runs
        # service, a worker and four flow runs at once can hold its one writer lock for a minute.
        server = PrefectServer.start(tmp / "server", backend(), extra_env={
            **SERVER_SETTINGS,
            "PREFECT_SERVER_SERVICES_LATE_RUNS_LOOP_SECONDS": "1",
            "PREFECT_SERVER_SERVICES_LATE_RUNS_AFTER_SECONDS": "PT2S",
        })
        cleanup.callback(server.stop)
        api = Api(cleanup.enter_context(server.client()))
        common = dict(base_url=fake.url, cron=None, password_env="E2E_DHIS2_PASSWORD")
        projects = [
            project(OK_A, "e2e-dhis2", model_id=12, prediction_setup_id=3, **common),
            project(OK_B, "e2e-dhis2", model_id=12, prediction_setup_id=3, **common),
            project(FAILS, "e2e-dhis2-wrong", model_id=12, prediction_setup_id=3, base_url=fake.url, cron=None,
                    password_env="E2E_WRONG_DHIS2_PASSWORD"),
            project(MISSED, "e2e-dhis2", model_id=12, prediction_setup_id=3, work_pool=IDLE_POOL, **common),
        ]
        repo = Repo.create(tmp / "repo", projects, defaults={
            "timezone": "UTC", "work_pool": POOL, "source": {"directory_env": "CHAPCTL_FLOWS_DIR"},
            "notifications": {"ops": {"webhook": {"url_env": "OPS_WEBHOOK_URL"}}},
            "alerts": {"notify": ["ops"], "missed": GRACE},
            "instance_limits": {"e2e-dhis2": 1},
        })
        env = clean_env(**server.client_env(), **PASSWORD_ENV, PREFECT_HOME=str(tmp / "chapctl-home"),
                        CHAPCTL_FLOWS_DIR=str(repo.root), OPS_WEBHOOK_URL=hook.url)
        applied = _chapctl("apply", "--root", str(repo.root), env=env, cwd=tmp)
        assert applied.returncode == 0, applied.stdout + applied.stderr
        assert hook.token not in applied.stdout + applied.stderr  # the URL's secret part is never printed

        (tmp / "worker").mkdir()
        worker_env = clean_env(**server.client_env(), **WORKER_SETTINGS, PREFECT_HOME=str(tmp / "worker-home"))
        worker = Worker.start(POOL, worker_env, cwd=tmp / "worker", log_path=tmp / "worker.log")
        cleanup.callback(worker.stop)
        yield AlertStack(api, fake, hook, worker, repo)
        for name in (OK_A, OK_B, FAILS, MISSED):  # no run left behind for the worker's teardown
            api.c.delete(f"/deployments/{api.deployment(name)['id']}")


def notifications_about(stack: AlertStack, name: str) -> list[dict]:
    return [r for r in stack.hook.received() if f"chap project {name}:" in (r["json"] or {}).get("subject", "")]


def automation_ids(stack: AlertStack, name: str) -> set[str]:
    """The automations chapctl made for project `name` (tagged `chapctl-alert:<project>/<kind>`)."""
    rows = stack.api._ok(stack.api.c.post("/automations/filter", json={}))
    return {a["id"] for a in rows if any(t.startswith(f"chapctl-alert:{name}/") for t in a.get("tags", []))}


def triggered(stack: AlertStack, automation: set[str]) -> list[dict]:
    """The persisted `prefect.automation.triggered` events of these automations."""
    page = stack.api._ok(stack.api.c.post("/events/filter", json={"limit": 50, "filter": {
        "event": {"name": ["prefect.automation.triggered"]},
        "resource": {"id": [f"prefect.automation.{i}" for i in automation]},
        "occurred": {"since": (dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)).isoformat()}}}))
    return page["events"]


def test_a_failed_run_is_notified_and_a_successful_one_is_not(stack):
    # The successful run ends first, the failing one starts after it: the server's triggers service
    # reads events in the order they came, so when the failure's automation has fired (and its
    # event is stored), the success's Completed event was judged before it. No fixed wait.
    ok = stack.api.trigger(stack.api.deployment(OK_A)["id"])
    assert stack.api.wait_terminal(ok["id"], 180, stack.worker)["state"]["type"] == "COMPLETED"
    failing = stack.api.trigger(stack.api.deployment(FAILS)["id"])
    assert stack.api.wait_terminal(failing["id"], 180, stack.worker)["state"]["type"] == "FAILED"

    message = stack.hook.wait_for(lambda r: failing["id"] in r["text"], timeout=60)["json"]
    assert message["subject"] == f"chap project {FAILS}: run {failing['name']} Failed"
    assert f"Project {FAILS}: flow run {failing['name']} ({failing['id']}) ended Failed" in message["body"]
    assert "None" not in message["body"]  # no UI address on this server: no link, not "None"
    wait_until(lambda: triggered(stack, automation_ids(stack, FAILS)), "the failure's automation event to be stored",
               timeout=60, every=0.2)
    assert triggered(stack, automation_ids(stack, OK_A)) == []
    assert notifications_about(stack, OK_A) == []


def test_a_run_that_never_starts_is_notified_as_missed(stack):
    due = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=20)).isoformat()
    run = stack.api._ok(stack.api.c.post(f"/deployments/{stack.api.deployment(MISSED)['id']}/create_flow_run", json={
        "state": {"type": "SCHEDULED", "name": "Scheduled", "state_details": {"scheduled_time": due}}}))
    message = stack.hook.wait_for(lambda r: run["id"] in r["text"], timeout=90)["json"]
    assert message["subject"] == f"chap project {MISSED}: a scheduled run did not start"
    assert f"flow run {run['name']} ({run['id']}) has not started 10 s after it was marked Late" in message["body"]
    assert stack.api.flow_run(run["id"])["state"]["name"] == "Late"


def test_an_instance_limit_of_one_serialises_chap_jobs_of_four_runs(stack):
    stack.fake.admin.clear_requests()
    before = len(stack.fake.admin.job_concurrency()["intervals"])
    runs = [stack.api.trigger(stack.api.deployment(name)["id"]) for name in (OK_A, OK_B, OK_A, OK_B)]
    finished = [stack.api.wait_terminal(r["id"], 300, stack.worker) for r in runs]
    assert [r["state"]["type"] for r in finished] == ["COMPLETED"] * 4
    intervals = sorted(stack.fake.admin.job_concurrency()["intervals"][before:], key=lambda i: i["start"])
    assert len(intervals) == 4
    for earlier, later in zip(intervals, intervals[1:]):
        assert earlier["end"] is not None and earlier["end"] <= later["start"], intervals
    limit = stack.api._ok(stack.api.c.get("/v2/concurrency_limits/chapctl-default--e2e-dhis2"))
    assert (limit["limit"], limit["active_slots"]) == (1, 0)
