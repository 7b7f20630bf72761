"""`chapctl status` against a real Prefect server (the main backend, PostgreSQL): projects
applied with chapctl, real flow runs created and moved through their states with the REST API
(`create_flow_run`, `set_state` with `force`), and the server's own scheduler and late-runs
services running. Every output format, the exit codes, and a request count that does not grow
with the number of projects."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from typing import Any

import pytest

from compiler.cli.common import EXIT_USAGE
from tests.server.conftest import CANARY, deployment
from tests.server.repo import project

pytestmark = pytest.mark.server

UTC = dt.timezone.utc
# Weekly crons far from the test's clock (the next fires are days away, none falls due meanwhile).
PROJECTS = [
    project("done", cron="0 6 * * 1"),
    project("failing", cron="0 6 * * 2"),
    project("late", cron="0 6 * * 3"),
    project("idle", cron="0 6 * * 4"),
    project("edited", cron="0 6 * * 5"),
    project("manual", cron=None),
]
JSON_KEYS = {"generated_at", "server", "owner", "environment", "options", "applied", "head", "summary", "projects", "notes",
             "requests"}
PROJECT_KEYS = {"name", "health", "sync", "sync_detail", "deployment_id", "schedule", "last_run", "next_run",
                "failures_in_a_row", "completed_in_lookback", "late", "hints"}
RUN_KEYS = {"id", "name", "state", "state_type", "expected_start", "scheduled", "start", "end", "duration_seconds",
            "url"}


# -- helpers ----------------------------------------------------------------------------------------
def make_run(server, name: str, *states: str, scheduled: dt.datetime | None = None, pause: float = 0.05) -> str:
    """A flow run of the deployment `name`, moved through `states` (forced, as a worker would
    report them) `pause` seconds apart; created Scheduled at `scheduled` (default now)."""
    body: dict[str, Any] = {}
    if scheduled is not None:
        body["state"] = {"type": "SCHEDULED", "state_details": {"scheduled_time": scheduled.isoformat()}}
    with server.client() as c:
        r = c.post(f"/deployments/{deployment(server, name)['id']}/create_flow_run", json=body)
        r.raise_for_status()
        run_id = r.json()["id"]
        for state in states:
            time.sleep(pause)
            c.post(f"/flow_runs/{run_id}/set_state", json={"state": {"type": state}, "force": True}).raise_for_status()
    return run_id


def read_run(server, run_id: str) -> dict[str, Any]:
    with server.client() as c:
        return c.get(f"/flow_runs/{run_id}").json()


def wait_for_scheduler(server, names: list[str], timeout: float = 90) -> None:
    """Prefect's scheduler service creates the future runs of new schedules within seconds."""
    ids = [deployment(server, n)["id"] for n in names]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with server.client() as c:
            rows = c.post("/flow_runs/filter", json={"flow_runs": {
                "deployment_id": {"any_": ids}, "state": {"type": {"any_": ["SCHEDULED"]}},
                "expected_start_time": {"after_": dt.datetime.now(UTC).isoformat()}}}).json()
        if {r["deployment_id"] for r in rows} >= set(ids):
            return
        time.sleep(1)
    raise AssertionError(f"the scheduler created no future run for some of {names} in {timeout:.0f}s")


def wait_until(condition, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:.0f}s for {what}")
        time.sleep(0.5)


def status(chapctl, repo, **options):
    from compiler.reconcile.status import StatusOptions, project_status

    with chapctl.api() as api:
        report = project_status(repo.root, api, StatusOptions(**options), env=chapctl.env)
        chapctl.last_stats = api.stats
    return report


def t(text: str | None) -> dt.datetime:
    assert text and text.endswith("Z"), text
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


# -- the scenario ---------------------------------------------------------------------------------
@pytest.fixture
def scenario(chapctl, make_repo, clean_server):
    """Six applied projects with real runs, then the files and the server moved apart."""
    repo = make_repo(PROJECTS)
    chapctl.apply(repo)
    server = clean_server
    wait_for_scheduler(server, ["done", "failing", "late", "idle", "edited"])
    runs = {
        "done": make_run(server, "done", "RUNNING", "COMPLETED", pause=0.3),  # a duration the report shows
        "failing-ok": make_run(server, "failing", "RUNNING", "COMPLETED"),
        "failing-1": make_run(server, "failing", "RUNNING", "FAILED"),
        "failing-cancelled": make_run(server, "failing", "CANCELLED"),
        "failing-2": make_run(server, "failing", "RUNNING", "CRASHED"),
        "late": make_run(server, "late", scheduled=dt.datetime.now(UTC) - dt.timedelta(hours=1)),
    }
    wait_until(lambda: read_run(server, runs["late"])["state_name"] == "Late", "the late-runs service to mark it Late")
    # The files move on: one project edited, two added (one clashing with a hand-made deployment).
    repo.write_project(project("edited", cron="30 7 * * 5"), compile=False)
    repo.write_project(project("fresh", cron="0 6 * * 6"), compile=False)
    repo.write_project(project("clash", cron=None), compile=False)
    repo.compile()
    with server.client() as c:
        flow_id = deployment(server, "done")["flow_id"]
        c.post("/deployments/", json={"name": "clash", "flow_id": flow_id, "tags": ["hand-made"]}).raise_for_status()
        # The server moves on: someone pauses the schedule of `done` in the UI (drift).
        done = deployment(server, "done")
        c.patch(f"/deployments/{done['id']}/schedules/{done['schedules'][0]['id']}",
                json={"active": False}).raise_for_status()
    return repo, runs


def test_status_reports_sync_runs_and_health_of_every_project(chapctl, scenario, clean_server):
    repo, runs = scenario
    proc = chapctl.cli(repo, "status", "--format", "json")
    assert proc.returncode == 3, proc.stderr  # failing and late projects
    assert proc.stderr == ""
    doc = json.loads(proc.stdout)
    assert set(doc) == JSON_KEYS
    now = t(doc["generated_at"])
    assert doc["server"] == {"url": clean_server.api_url, "version": "3.9.1",
                             "ui_url": clean_server.api_url.removesuffix("/api")}
    ui = doc["server"]["ui_url"]
    assert doc["owner"] == "default"
    assert doc["options"] == {"grace_seconds": 900, "lookback_seconds": 35 * 86400, "require_sync": False}
    assert doc["applied"]["applied_at"] and doc["applied"]["by"]
    by = {p["name"]: p for p in doc["projects"]}
    assert list(by) == ["clash", "done", "edited", "failing", "fresh", "idle", "late", "manual"]
    for p in doc["projects"]:
        assert set(p) == PROJECT_KEYS, p["name"]
        for key in ("last_run", "next_run"):
            assert p[key] is None or set(p[key]) == RUN_KEYS

    # done: completed, schedule paused in the UI (drift), so nothing scheduled
    done = by["done"]
    assert (done["health"], done["sync"], done["schedule"]["state"]) == ("healthy", "drift", "paused")
    assert done["sync_detail"] == "schedule chapctl-cron: paused on the server"
    assert done["schedule"]["schedules"] == [
        {"slug": "chapctl-cron", "cron": "0 6 * * 1", "timezone": "Asia/Vientiane", "active": False}]
    last = done["last_run"]
    server_run = read_run(clean_server, runs["done"])
    assert (last["id"], last["name"], last["state"], last["state_type"]) == (
        runs["done"], server_run["name"], "Completed", "COMPLETED")
    assert last["url"] == f"{ui}/runs/flow-run/{runs['done']}"
    assert t(last["start"]) <= t(last["end"]) <= now
    assert last["start"] == server_run["start_time"][:19] + "Z"
    assert 0.2 <= last["duration_seconds"] < 30
    assert done["next_run"] is None and done["late"] is None
    assert (done["failures_in_a_row"], done["completed_in_lookback"]) == (0, True)
    assert done["deployment_id"] == deployment(clean_server, "done")["id"]

    # failing: Completed, Failed, Cancelled (skipped), Crashed -> 2 failures in a row
    failing = by["failing"]
    assert (failing["health"], failing["sync"], failing["schedule"]["state"]) == ("failing", "in_sync", "active")
    assert (failing["failures_in_a_row"], failing["completed_in_lookback"]) == (2, True)
    assert (failing["last_run"]["id"], failing["last_run"]["state"]) == (runs["failing-2"], "Crashed")
    nxt = failing["next_run"]
    assert nxt["state"] == "Scheduled" and t(nxt["scheduled"]) > now and nxt["start"] is None
    assert nxt["url"] == f"{ui}/runs/flow-run/{nxt['id']}"
    assert t(nxt["scheduled"]).astimezone(dt.timezone(dt.timedelta(hours=7))).strftime("%a %H:%M") == "Tue 06:00"
    assert failing["late"] is None

    # late: a run due an hour ago that nobody started (Prefect's late-runs service renamed it Late)
    late = by["late"]
    assert (late["health"], late["sync"], late["last_run"], late["failures_in_a_row"]) == ("late", "in_sync", None, 0)
    assert (late["late"]["run"]["id"], late["late"]["run"]["state"]) == (runs["late"], "Late")
    assert late["late"]["overdue_runs"] == 1
    assert 3500 <= late["late"]["overdue_seconds"] <= 3900
    assert "has not started" in late["late"]["reason"]
    assert t(late["next_run"]["scheduled"]) > now  # the schedule's own next run is still ahead

    # idle: applied, scheduled, no run yet and nothing due: never run, not an error
    idle = by["idle"]
    assert (idle["health"], idle["sync"], idle["last_run"], idle["late"]) == ("never_run", "in_sync", None, None)
    assert t(idle["next_run"]["scheduled"]) > now
    # manual: no schedule at all
    manual = by["manual"]
    assert (manual["health"], manual["schedule"]["state"], manual["next_run"]) == ("never_run", "none", None)
    # edited: the file changed since the apply
    edited = by["edited"]
    assert (edited["sync"], edited["health"]) == ("changed", "never_run")
    assert edited["sync_detail"] == "schedule chapctl-cron: schedule changed in the project"
    # fresh: not on the server
    fresh = by["fresh"]
    assert (fresh["sync"], fresh["schedule"]["state"], fresh["deployment_id"], fresh["last_run"]) == (
        "not_applied", "not_applied", None, None)
    # clash: a hand-made deployment of that name: not ours, its runs are not read
    clash = by["clash"]
    assert (clash["sync"], clash["health"], clash["deployment_id"]) == ("conflict", "unknown", None)
    assert "belongs to no chapctl" in clash["sync_detail"]
    assert any(n.startswith("apply would refuse: deployment dhis2-chap-prediction/clash") for n in doc["notes"])

    assert doc["summary"] == {
        "projects": 8, "exit_code": 3,
        "health": {"healthy": 1, "failing": 1, "late": 1, "never_run": 4, "unknown": 1},
        "sync": {"in_sync": 4, "changed": 1, "drift": 1, "not_applied": 1, "conflict": 1},
    }

    # The same facts in text and Markdown.
    text = chapctl.cli(repo, "status")
    assert text.returncode == 3 and text.stderr == ""
    markdown = chapctl.cli(repo, "status", "--markdown")
    assert markdown.returncode == 3 and markdown.stderr == ""
    rows = {line.split()[0]: line for line in text.stdout.splitlines() if line and not line.startswith(" ")}
    md_rows = {m.group(1): line for line in markdown.stdout.splitlines() if (m := re.match(r"\| `([a-z-]+)` \|", line))}
    assert set(md_rows) == set(by) and set(by) <= set(rows)
    for name, p in by.items():
        cells = [c.strip() for c in md_rows[name].strip("|").split("|")]
        health, sync = p["health"].replace("_", " "), p["sync"].replace("_", " ")
        state = p["last_run"]["state"] if p["last_run"] else "never"
        assert re.search(rf"^{name}\s+{health}\s+{sync}\s+", rows[name]), rows[name]
        assert f" {state} " in rows[name] and rows[name].endswith(f" {p['failures_in_a_row']}"), rows[name]
        assert cells[1].endswith(health) and cells[2].endswith(sync) and cells[-1] == str(p["failures_in_a_row"])
        assert cells[4] == (f"[{state}]({p['last_run']['url']})" if p["last_run"] else "never")
        if p["next_run"]:
            when = t(p["next_run"]["scheduled"]).strftime("%Y-%m-%d %H:%M")
            assert when in rows[name] and cells[7] == when
        if p["last_run"] and p["last_run"]["start"]:
            started = t(p["last_run"]["start"]).strftime("%Y-%m-%d %H:%M")
            assert started in rows[name] and cells[5] == started
    for output in (text.stdout, markdown.stdout):
        assert runs["failing-2"] in output and runs["late"] in output  # links to the runs to open
        assert "8 project(s): 1 healthy, 1 failing, 1 late, 4 never run, 1 unknown" in output
        assert "4 in sync, 1 changed, 1 drift, 1 not applied, 1 conflict" in output
        assert "exit 3: 2 project(s) failing or late" in output
        assert "2 failed run(s) in a row since the last Completed run" in output
        assert "schedule chapctl-cron: paused on the server" in output
    assert all(CANARY not in out for out in chapctl.outputs)


def test_exit_codes_healthy_and_require_sync(chapctl, make_repo, clean_server):
    repo = make_repo([project("done", cron="0 6 * * 1"), project("idle", cron=None)])
    chapctl.apply(repo)
    make_run(clean_server, "done", "RUNNING", "COMPLETED")
    proc = chapctl.cli(repo, "status")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 project(s): 1 healthy, 1 never run; 2 in sync" in proc.stdout
    assert "exit 0: no project failing or late" in proc.stdout
    assert chapctl.cli(repo, "status", "--require-sync").returncode == 0

    # out of sync only: exit 0, unless --require-sync (4)
    repo.write_project(project("idle", cron="0 5 * * *"))
    assert chapctl.cli(repo, "status", "--json").returncode == 0
    strict = chapctl.cli(repo, "status", "--require-sync", "--json")
    assert strict.returncode == 4
    assert json.loads(strict.stdout)["summary"]["exit_code"] == 4

    # a failure wins over sync: 3
    make_run(clean_server, "done", "RUNNING", "FAILED")
    assert chapctl.cli(repo, "status", "--require-sync").returncode == 3
    # --project narrows the rows (and so the verdict); an unknown name is one line, exit 1
    only = chapctl.cli(repo, "status", "--project", "idle", "--json")
    assert only.returncode == 0 and [p["name"] for p in json.loads(only.stdout)["projects"]] == ["idle"]
    unknown = chapctl.cli(repo, "status", "--project", "nope")
    assert unknown.returncode == 1 and unknown.stderr.startswith("error: no project named nope")
    assert "Traceback" not in unknown.stderr
    # a grace longer than the lateness: not late any more
    make_run(clean_server, "idle", scheduled=dt.datetime.now(UTC) - dt.timedelta(minutes=30))
    by_grace = {g: json.loads(chapctl.cli(repo, "status", "--project", "idle", "--json", "--grace", g).stdout)
                for g in ("15m", "1h")}
    assert by_grace["15m"]["projects"][0]["health"] == "late"
    assert by_grace["1h"]["projects"][0]["health"] == "never_run"
    assert by_grace["1h"]["projects"][0]["next_run"]["state"] in ("Scheduled", "Late")  # due, within the grace
    bad = chapctl.cli(repo, "status", "--grace", "15")
    assert bad.returncode == EXIT_USAGE and "not a duration" in bad.stderr


def test_status_requests_do_not_grow_with_projects(chapctl, make_repo, clean_server):
    def measured(count: int) -> tuple[int, Any]:
        clean_server.wipe()
        names = [f"p-{i:02d}" for i in range(count)]
        repo = make_repo([project(n, cron=f"{i % 60} 6 * * 1") for i, n in enumerate(names)], name=f"repo-{count}")
        chapctl.apply(repo)
        wait_for_scheduler(clean_server, names)
        for n in names:
            make_run(clean_server, n, "RUNNING", "COMPLETED", pause=0)
        make_run(clean_server, names[0], "RUNNING", "FAILED", pause=0)
        report = status(chapctl, repo)
        return chapctl.last_stats.requests, report

    few, few_report = measured(3)
    many, many_report = measured(30)
    # plan's reads (6), one page of recent runs, the scheduled runs: the README's figure
    assert few == many == 8, (few, many)
    assert many_report.requests == many
    assert [p.health for p in many_report.projects] == ["failing"] + ["healthy"] * 29
    assert all(p.next_run is not None and p.last_run is not None for p in many_report.projects)


def test_paged_reads_give_the_same_report(chapctl, scenario):
    """A full first page of recent runs: the projects whose story it did not finish are read
    again by id; the report is the same as with one big page."""
    repo, _runs = scenario
    now = dt.datetime.now(UTC)
    whole = status(chapctl, repo, now=now)
    from compiler.reconcile.status import StatusOptions, project_status

    with chapctl.api() as api:
        api.page_size = 2
        paged = project_status(repo.root, api, StatusOptions(now=now), env=chapctl.env)
    strip = lambda r: {k: v for k, v in r.to_json().items() if k != "requests"}  # noqa: E731
    assert strip(paged) == strip(whole)
    assert paged.requests > whole.requests


def test_unreachable_server_is_one_line(chapctl, make_repo):
    from tests.server.prefect_server import free_port

    repo = make_repo([project("done")])
    env = {**chapctl.env, "PREFECT_API_URL": f"http://127.0.0.1:{free_port()}/api"}
    proc = chapctl.cli(repo, "status", env=env)
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: cannot reach the Prefect API at http://127.0.0.1:")
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stdout == ""


# -- the README's example -------------------------------------------------------------------------
def normalized(line: str) -> str:
    """A line without what differs from run to run: times, durations, ids, run names, the commit,
    the host, the server's port, and so the column widths."""
    line = re.sub(r"http://127\.0\.0\.1:\d+", "http://127.0.0.1:PORT", line)
    line = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "ID", line)
    line = re.sub(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d(:\d\d)?(\+00:00|Z)?", "TIME", line)
    line = re.sub(r"\b\d+(\.\d)?s\b|\b\d+[mhd]( \d+[smh])?\b", "SPAN", line)
    line = re.sub(r"\b(run|last run) [a-z]+-[a-z]+ \(", r"\1 NAME (", line)
    line = re.sub(r"commit [0-9a-f]{12} at TIME by \S+ \(pid \d+\)", "commit COMMIT at TIME by WHO", line)
    return " ".join(line.split())


def test_readme_status_example_is_real_output(chapctl, clean_server, tmp_path, warm_cache):
    import subprocess

    from tests.server.test_docs_match_output import apply_examples, quoted

    repo, env = apply_examples(chapctl, clean_server, tmp_path / "demo", warm_cache)
    root = repo.root
    git = ["git", "-c", "user.email=ops@example.org", "-c", "user.name=ops"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "projects"]):
        subprocess.run(git + args, cwd=root, check=True, capture_output=True)
    assert chapctl.cli(repo, "apply", env=env).returncode == 0
    wait_for_scheduler(clean_server, ["laos-dengue", "laos-malaria", "rwanda-dengue"])
    make_run(clean_server, "laos-malaria", "RUNNING", "COMPLETED")
    make_run(clean_server, "sierra-leone-malaria", "RUNNING", "COMPLETED")
    make_run(clean_server, "rwanda-malaria", "RUNNING", "COMPLETED")
    make_run(clean_server, "rwanda-malaria", "RUNNING", "FAILED")
    make_run(clean_server, "rwanda-malaria", "RUNNING", "FAILED")
    late = make_run(clean_server, "laos-dengue", scheduled=dt.datetime.now(UTC) - dt.timedelta(minutes=47))
    wait_until(lambda: read_run(clean_server, late)["state_name"] == "Late", "the late-runs service to mark it Late")
    edited = root / "projects" / "rwanda-dengue.yaml"
    edited.write_text(edited.read_text().replace('cron: "0 4 * * 2"', 'cron: "0 5 * * 2"'))
    repo.compile()
    with clean_server.client() as c:
        lm = deployment(clean_server, "laos-malaria")
        c.patch(f"/deployments/{lm['id']}/schedules/{lm['schedules'][0]['id']}", json={"active": False}).raise_for_status()

    proc = chapctl.cli(repo, "status", env=env)
    assert proc.returncode == 3, proc.stderr
    printed = [normalized(line) for line in proc.stdout.splitlines()]
    readme = [normalized(line) for line in quoted("status") if not line.startswith("$ ")]
    missing = [line for line in readme if line not in printed]
    assert not missing, "README lines not in the output:\n" + "\n".join(missing) + "\n--- output:\n" + proc.stdout
    assert len(printed) == len(readme)
