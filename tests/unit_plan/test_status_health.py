"""`chapctl status` without a server: the health rules on hand-made runs, the missed-fire check,
the UI links, durations, the three renderers on one hand-made report, and a refused login."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import click
import httpx
import pytest

from compiler.errors import ServerError
from compiler.reconcile.status import (
    Late,
    ProjectStatus,
    Run,
    StatusOptions,
    StatusReport,
    assess,
    missed_fire,
    project_status,
    span,
    ui_url,
)
from compiler.output.status import status_json, status_lines, status_markdown

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 3, 4, 9, 0, tzinfo=UTC)  # a Wednesday
GRACE = dt.timedelta(minutes=15)
SINCE = NOW - dt.timedelta(days=35)
UI = "http://prefect.test"
LONG_AGO = "2026-01-01T00:00:00Z"


def run(n: int, state_type: str, *, name: str | None = None, start: dt.datetime | None = None,
        minutes: float = 2, scheduled: dt.datetime | None = None) -> Run:
    """Run number `n`: started n hours before NOW unless given, `minutes` long when finished."""
    start = start if start is not None or state_type == "SCHEDULED" else NOW - dt.timedelta(hours=n)
    finished = state_type in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")
    return Run(id=f"run-{n}", name=f"run-{n}", state_type=state_type, state_name=name or state_type.title(),
               expected_start=scheduled or start, scheduled=scheduled if state_type == "SCHEDULED" else None,
               start=start, end=start + dt.timedelta(minutes=minutes) if start and finished else None,
               url=f"{UI}/runs/flow-run/run-{n}")


def deployment(cron: str | None = "0 6 * * *", *, zone: str = "UTC", active: bool = True, paused: bool = False,
               updated: str = LONG_AGO) -> dict:
    schedules = [] if cron is None else [{"slug": "chapctl-cron", "active": active, "updated": updated,
                                          "schedule": {"cron": cron, "timezone": zone, "day_or": True}}]
    return {"id": "dep", "paused": paused, "updated": updated, "schedules": schedules}


def assessed(recent=(), scheduled=(), dep=None, schedule="active") -> ProjectStatus:
    row = ProjectStatus("p", "in_sync", schedule=schedule)
    return assess(row, list(recent), list(scheduled), dep if dep is not None else deployment(), now=NOW, grace=GRACE,
                  since=SINCE)


def upcoming() -> Run:
    return run(90, "SCHEDULED", scheduled=NOW + dt.timedelta(hours=21))


# -- health ---------------------------------------------------------------------------------------
def test_failures_in_a_row_count_back_to_the_last_completed_skipping_cancelled_and_in_flight():
    recent = [run(1, "RUNNING"), run(2, "CRASHED"), run(3, "CANCELLED"), run(4, "FAILED"), run(5, "COMPLETED"),
              run(6, "FAILED")]
    row = assessed(recent, [upcoming()])
    assert (row.health, row.failures_in_a_row, row.completed_in_lookback) == ("failing", 2, True)
    assert row.last_run.id == "run-1" and row.next_run.id == "run-90" and row.late is None


def test_a_streak_without_any_completed_run_says_so():
    row = assessed([run(1, "FAILED"), run(2, "FAILED")], [upcoming()])
    assert (row.failures_in_a_row, row.completed_in_lookback) == (2, False)


def test_completed_last_is_healthy_and_no_runs_is_never_run():
    assert assessed([run(1, "COMPLETED"), run(2, "FAILED")], [upcoming()]).health == "healthy"
    just_applied = deployment(updated="2026-03-04T08:00:00Z")  # after today's 06:00: nothing was due yet
    row = assessed([], [upcoming()], just_applied)
    assert (row.health, row.last_run, row.failures_in_a_row, row.late) == ("never_run", None, 0, None)
    assert assessed([], [upcoming()]).health == "late"  # applied long ago, fired today, no run at all


@pytest.mark.parametrize("state_name", ["Scheduled", "Late", "AwaitingRetry"])
def test_a_scheduled_run_past_the_grace_is_late_whatever_its_name(state_name):
    overdue = run(10, "SCHEDULED", name=state_name, scheduled=NOW - dt.timedelta(minutes=16))
    older = run(11, "SCHEDULED", name=state_name, scheduled=NOW - dt.timedelta(hours=3))
    row = assessed([run(1, "COMPLETED")], [older, overdue, upcoming()])
    assert row.health == "late"
    assert (row.late.since, row.late.overdue_runs, row.late.run.id) == (older.scheduled, 2, "run-11")
    assert row.next_run.id == "run-90"
    assert "has not started for 3h" in row.late.reason(NOW) and "(2 overdue runs)" in row.late.reason(NOW)
    assert row.late.to_json(NOW)["overdue_seconds"] == 3 * 3600


def test_a_run_due_within_the_grace_is_the_next_run_not_late():
    due = run(10, "SCHEDULED", scheduled=NOW - dt.timedelta(minutes=14))
    row = assessed([run(1, "COMPLETED")], [due, upcoming()])
    assert (row.health, row.next_run.id, row.late) == ("healthy", "run-10", None)


def test_failing_wins_over_late_and_both_are_reported():
    overdue = run(10, "SCHEDULED", scheduled=NOW - dt.timedelta(hours=1))
    row = assessed([run(1, "FAILED")], [overdue])
    assert row.health == "failing" and row.late is not None


# -- a schedule that fired without any run (the scheduler created none) --------------------------
def test_a_fire_without_a_run_is_late():
    # daily 06:00 UTC, written long ago, no run since: today's 06:00 was missed
    row = assessed([run(30, "COMPLETED")], [upcoming()])
    assert row.health == "late" and row.late.run is None and row.late.overdue_runs == 0
    assert row.late.since == dt.datetime(2026, 3, 4, 6, 0, tzinfo=UTC)
    assert "no run exists for it" in row.late.reason(NOW) and "scheduler" in row.late.reason(NOW)


def test_a_fire_with_its_run_is_not_late():
    todays = run(3, "COMPLETED", start=dt.datetime(2026, 3, 4, 6, 0, 5, tzinfo=UTC),
                 scheduled=None)
    assert assessed([todays], [upcoming()]).late is None


def test_fires_in_the_schedules_zone():
    # 06:00 in Vientiane (UTC+7) is 23:00 UTC the day before: the last fire before NOW is 2026-03-03 23:00 UTC
    dep = deployment("0 6 * * *", zone="Asia/Vientiane")
    fired = missed_fire(dep, [], now=NOW, grace=GRACE, since=SINCE)
    assert fired == dt.datetime(2026, 3, 3, 23, 0, tzinfo=UTC)


@pytest.mark.parametrize("dep", [
    deployment(paused=True),
    deployment(active=False),
    deployment(None),
    deployment(updated="2026-03-04T07:00:00Z"),  # applied after the last fire: the scheduler owes nothing yet
    deployment("0 6 1 1 *"),  # fired on 1 January, before the lookback window
    deployment("not a cron"),
])
def test_no_missed_fire_verdict(dep):
    assert missed_fire(dep, [], now=NOW, grace=GRACE, since=SINCE) is None


def test_the_grace_applies_to_missed_fires_too():
    dep = deployment("50 8 * * *")  # fired 10 minutes ago: within the grace
    assert missed_fire(dep, [], now=NOW, grace=GRACE, since=SINCE) == dt.datetime(2026, 3, 3, 8, 50, tzinfo=UTC)
    assert missed_fire(dep, [], now=NOW, grace=dt.timedelta(minutes=5), since=SINCE) == dt.datetime(
        2026, 3, 4, 8, 50, tzinfo=UTC)


def test_an_active_schedule_with_nothing_scheduled_gets_a_hint():
    dep = deployment("0 6 1 * *", updated="2026-03-02T00:00:00Z")  # monthly: the next fire is weeks away
    row = assessed([run(1, "COMPLETED")], [], dep)
    assert row.health == "healthy" and row.next_run is None
    assert row.hints == ["the schedule is active but no run is scheduled: is Prefect's scheduler service running?"]
    just_applied = deployment("0 6 1 * *", updated=(NOW - dt.timedelta(minutes=1)).isoformat())
    assert assessed([run(1, "COMPLETED")], [], just_applied).hints == []


# -- small parts ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("seconds", "text"), [
    (0.34, "0.3s"), (45, "45s"), (187, "3m 07s"), (720, "12m"), (3600, "1h"), (11100, "3h 05m"),
    (187200, "2d 04h"), (35 * 86400, "35d")])
def test_span(seconds, text):
    assert span(dt.timedelta(seconds=seconds)) == text


@pytest.mark.parametrize(("api", "env", "ui"), [
    ("http://127.0.0.1:4200/api", {}, "http://127.0.0.1:4200"),
    ("https://prefect.example.org/prefect/api", {}, "https://prefect.example.org/prefect"),
    ("https://api.prefect.cloud/api/accounts/a1/workspaces/w2", {},
     "https://app.prefect.cloud/account/a1/workspace/w2"),
    ("http://127.0.0.1:4200/api", {"PREFECT_UI_URL": "https://ui.example.org/"}, "https://ui.example.org"),
    # Credentials in either URL never reach a printed link (the browser asks for them itself).
    ("http://127.0.0.1:4200/api", {"PREFECT_UI_URL": "https://admin:s3cret@ui.example.org/"}, "https://ui.example.org"),
    ("https://admin:s3cret@prefect.example.org/api", {}, "https://prefect.example.org"),
    ("http://127.0.0.1:4200/api", {"PREFECT_UI_URL": "admin:s3cret@ui.example.org"}, "***@ui.example.org"),
])
def test_ui_url(api, env, ui, tmp_path):
    assert ui_url(api, {"PREFECT_HOME": str(tmp_path), **env}) == ui


def test_durations_on_the_command_line():
    from compiler.cli.status_cmds import Duration

    d = Duration()
    assert d.convert("15m", None, None) == dt.timedelta(minutes=15)
    assert d.convert("1h30m", None, None) == dt.timedelta(minutes=90)
    assert d.convert("35d", None, None) == dt.timedelta(days=35)
    for bad in ("15", "m", "1x", "", "-5m"):
        with pytest.raises(click.BadParameter):
            d.convert(bad, None, None)


def test_a_refused_login_is_a_server_error_naming_the_setting(tmp_path):
    from compiler.reconcile.client import ApiSettings, PrefectAPI

    api = PrefectAPI(ApiSettings(url="http://prefect.test/api", auth_string="admin:s3cret-pw",
                                 auth_source="PREFECT_API_AUTH_STRING"),
                     transport=httpx.MockTransport(lambda request: httpx.Response(401)), backoff=0.001)
    root = Path(__file__).resolve().parents[2]
    with pytest.raises(ServerError) as err:
        project_status(root, api, env={"PREFECT_HOME": str(tmp_path)})
    assert "the server refused the user:password in PREFECT_API_AUTH_STRING" in str(err.value)
    assert "s3cret-pw" not in str(err.value)


# -- renderers ------------------------------------------------------------------------------------
def report() -> StatusReport:
    failing = ProjectStatus("laos-dengue", "in_sync", deployment_id="d1", schedule="active",
                            schedules=[{"slug": "chapctl-cron", "cron": "0 6 * * 1", "timezone": "Asia/Vientiane",
                                        "active": True}])
    assess(failing, [run(1, "FAILED", minutes=3), run(2, "COMPLETED")], [upcoming()], deployment("0 6 * * 1"),
           now=NOW, grace=GRACE, since=SINCE)
    late = ProjectStatus("laos-malaria", "drift", "schedule chapctl-cron: edited on the server", "d2", "active")
    assess(late, [], [run(10, "SCHEDULED", name="Late", scheduled=NOW - dt.timedelta(hours=1))],
           deployment("0 8 * * 3"), now=NOW, grace=GRACE, since=SINCE)
    fresh = ProjectStatus("new-one", "not_applied", "no deployment on the server: `chapctl apply` creates it",
                          schedule="not_applied")
    ok = ProjectStatus("rwanda-malaria", "in_sync", deployment_id="d3", schedule="paused")
    assess(ok, [run(4, "COMPLETED", minutes=65)], [], deployment("0 6 * * 1", active=False), now=NOW, grace=GRACE,
           since=SINCE)
    applied = {"commit": "a" * 40, "applied_at": "2026-03-03T10:00:00+00:00", "by": "ci@runner"}
    return StatusReport("http://prefect.test/api", UI, "3.9.1", "moh", NOW, StatusOptions(), [failing, late, fresh, ok],
                        ["apply would refuse: something"], applied, "b" * 40, 9)


def test_the_three_formats_say_the_same():
    r = report()
    assert r.exit_code == 3
    doc = json.loads(status_json(r))
    assert doc["summary"] == {"projects": 4, "exit_code": 3,
                              "health": {"healthy": 1, "failing": 1, "late": 1, "never_run": 1, "unknown": 0},
                              "sync": {"in_sync": 2, "changed": 0, "drift": 1, "not_applied": 1, "conflict": 0}}
    by = {p["name"]: p for p in doc["projects"]}
    assert by["laos-dengue"]["last_run"] == {
        "id": "run-1", "name": "run-1", "state": "Failed", "state_type": "FAILED",
        "expected_start": "2026-03-04T08:00:00Z", "scheduled": None, "start": "2026-03-04T08:00:00Z",
        "end": "2026-03-04T08:03:00Z", "duration_seconds": 180.0, "url": f"{UI}/runs/flow-run/run-1"}
    assert by["laos-malaria"]["late"]["since"] == "2026-03-04T08:00:00Z"
    assert doc["applied"] == {"commit": "a" * 40, "applied_at": "2026-03-03T10:00:00+00:00", "by": "ci@runner"}

    text = "\n".join(line for _style, line in status_lines(r))
    markdown = status_markdown(r)
    rows = {line.split()[0]: line for line in text.splitlines()[2:] if line and not line.startswith(" ")}
    assert rows["laos-dengue"].split() == ["laos-dengue", "failing", "in", "sync", "active", "Failed", "2026-03-04",
                                           "08:00", "3m", "2026-03-05", "06:00", "1"]
    assert rows["laos-malaria"].split() == ["laos-malaria", "late", "drift", "active", "never", "—", "—", "none", "0"]
    assert rows["new-one"].split() == ["new-one", "never", "run", "not", "applied", "—", "never", "—", "—", "—", "0"]
    assert rows["rwanda-malaria"].split() == ["rwanda-malaria", "healthy", "in", "sync", "paused", "Completed",
                                              "2026-03-04", "05:00", "1h", "05m", "—", "0"]
    assert ("| `laos-dengue` | :x: failing | = in sync | active `0 6 * * 1` Asia/Vientiane | "
            f"[Failed]({UI}/runs/flow-run/run-1) | 2026-03-04 08:00 | 3m | 2026-03-05 06:00 | 1 |") in markdown
    assert "| `new-one` | :white_circle: never run | + not applied | — | never | — | — | — | 0 |" in markdown
    for out in (text, markdown):
        assert "4 project(s): 1 healthy, 1 failing, 1 late, 1 never run; 2 in sync, 1 drift, 1 not applied" in out
        assert "exit 3: 2 project(s) failing or late" in out
        assert "1 failed run(s) in a row since the last Completed run" in out
        assert "run run-10 (Late) was due 2026-03-04 08:00 UTC and has not started for 1h" in out
        assert "drift: schedule chapctl-cron: edited on the server" in out
        assert "apply would refuse: something" in out
        assert f"last apply of commit {'a' * 12} at 2026-03-03T10:00:00+00:00 by ci@runner; this checkout is at " \
               f"{'b' * 12}" in out
        assert f"{UI}/runs/flow-run/run-10" in out


def test_exit_codes_and_require_sync():
    r = report()
    healthy = [p for p in r.projects if p.health in ("healthy", "never_run")]
    calm = StatusReport(r.url, UI, "3.9.1", "moh", NOW, StatusOptions(), healthy)
    assert calm.exit_code == 0  # not applied does not count by default
    strict = StatusReport(r.url, UI, "3.9.1", "moh", NOW, StatusOptions(require_sync=True), healthy)
    assert strict.exit_code == 4
    assert "exit 4: 1 project(s) not in sync (--require-sync)" in status_markdown(strict)
    in_sync = StatusReport(r.url, UI, "3.9.1", "moh", NOW, StatusOptions(require_sync=True),
                           [p for p in healthy if p.sync == "in_sync"])
    assert in_sync.exit_code == 0


def test_late_without_a_run_in_every_format():
    row = ProjectStatus("p", "in_sync", deployment_id="d", schedule="active")
    row.late = Late(NOW - dt.timedelta(hours=3), 0, None)
    row.health = "late"
    r = StatusReport("http://prefect.test/api", UI, "3.9.1", "moh", NOW, StatusOptions(), [row])
    assert json.loads(status_json(r))["projects"][0]["late"] == {
        "since": "2026-03-04T06:00:00Z", "overdue_seconds": 10800, "overdue_runs": 0, "run": None,
        "reason": "its schedule fired at 2026-03-04 06:00 UTC (3h ago) and no run exists for it: is Prefect's "
                  "scheduler service running?"}
    assert "no run exists for it" in status_markdown(r)
