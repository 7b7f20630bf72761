"""`plan` shows the next runs of every schedule it creates or changes (text, Markdown, JSON).

Previews are computed outside the pure planner (`compiler.reconcile.previews.schedule_previews`) from the
schedule bodies apply will send, with Prefect's own CronSchedule (`compiler.preview.schedule_runs`);
Prefect is imported only when an active schedule is created or changed.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from compiler.output import plan as plan_report
from compiler.reconcile.previews import schedule_previews
from compiler.reconcile.desired import load_desired
from compiler.reconcile.plan import plan
from compiler.review.preview import schedule_runs
from compiler.reconcile.facts import Facts
from compiler.reconcile.live import Live
from tests.plan_golden.make_cases import BASE, ENV
from tests.server.repo import Repo
from tests.server.repo import project

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
FACTS = Facts.from_json(json.loads((HERE / "facts.json").read_text()))
# The server as a complete apply of BASE left it, read from a real server (make_cases.py).
APPLIED_BASE = HERE / "cases" / "noop_everything_in_sync" / "live.json"


def compile_projects(projects, into: Path) -> None:
    Repo.create(into, projects, {"timezone": "UTC", "work_pool": "chap", "tags": ["chap"],
                                 "source": {"directory_env": "CHAPCTL_FLOWS_DIR"}})
START = dt.datetime(2026, 11, 23, tzinfo=dt.timezone.utc)


def golden_plan(name: str):
    case = HERE / "cases" / name
    env = json.loads((case / "env.json").read_text())
    options = json.loads((case / "options.json").read_text()) if (case / "options.json").exists() else {}
    live = Live.from_json(json.loads((case / "live.json").read_text()))
    return plan(load_desired(case / "desired", env, facts=FACTS), live, **options)


def scenario_plan(tmp_path: Path, projects):
    """Plan `projects` against the server state a complete apply of BASE left (captured)."""
    compile_projects(projects, tmp_path / "desired")
    live = json.loads(APPLIED_BASE.read_text())
    return plan(load_desired(tmp_path / "desired", ENV, facts=FACTS), Live.from_json(live))


def text(p, previews) -> str:
    return "\n".join(t for _style, t in plan_report.plan_lines(p, next_runs=previews))


def test_changed_schedule_text_markdown_and_json():
    p = golden_plan("yaml_change_one_project")
    previews = schedule_previews(p, start=START)
    assert previews is not None and list(previews.by_action) == [("schedule", "laos-malaria/chapctl-cron")]

    out = text(p, previews)
    assert """\
  ~ schedule laos-malaria/chapctl-cron: update — schedule changed in the project
      cron: 0 6 * * 1 → 0 7 * * 1
      when: cron '0 6 * * 1' Asia/Vientiane (At 06:00, only on Monday) → cron '0 7 * * 1' Asia/Vientiane \
(At 07:00, only on Monday)
      next runs (cron '0 7 * * 1' Asia/Vientiane):
        Mon 2026-11-23 07:00 +07 = Mon 2026-11-23 00:00 UTC
        Mon 2026-11-30 07:00 +07 = Mon 2026-11-30 00:00 UTC
        Mon 2026-12-07 07:00 +07 = Mon 2026-12-07 00:00 UTC
  ~ deployment laos-malaria: update""" in out
    assert out.count("next runs") == 1  # the deployment PATCH itself changes no schedule

    md = plan_report.plan_markdown(p, next_runs=previews)
    assert """\
| Schedule | Cron | Time zone | Local time | UTC |
|---|---|---|---|---|
| `laos-malaria/chapctl-cron` | `0 7 * * 1` | Asia/Vientiane | Mon 2026-11-23 07:00 +07 | Mon 2026-11-23 00:00 UTC |
| | | | Mon 2026-11-30 07:00 +07 | Mon 2026-11-30 00:00 UTC |
| | | | Mon 2026-12-07 07:00 +07 | Mon 2026-12-07 00:00 UTC |
""" in md
    assert "**Next 3 runs** of each schedule this plan creates or changes" in md

    doc = json.loads(plan_report.plan_json(p, next_runs=previews))
    assert doc["next_runs_from"] == "2026-11-23T00:00:00+00:00"
    by_name = {(a["kind"], a["name"]): a for a in doc["actions"]}
    assert by_name[("schedule", "laos-malaria/chapctl-cron")]["next_runs"] == [
        {"local": "2026-11-23T07:00:00+07:00", "utc": "2026-11-23T00:00:00+00:00"},
        {"local": "2026-11-30T07:00:00+07:00", "utc": "2026-11-30T00:00:00+00:00"},
        {"local": "2026-12-07T07:00:00+07:00", "utc": "2026-12-07T00:00:00+00:00"},
    ]
    assert "next_runs" not in by_name[("deployment", "laos-malaria")]
    # the JSON is the planner's JSON plus the previews: nothing else moved
    for a in doc["actions"]:
        a.pop("next_runs", None)
    doc.pop("next_runs_from")
    assert doc == p.to_json()


def test_new_deployments_show_the_runs_of_their_schedules():
    p = golden_plan("first_apply_empty_server")
    previews = schedule_previews(p, start=START)
    assert sorted(previews.by_action) == [("deployment", "laos-dengue"), ("deployment", "laos-malaria"),
                                          ("deployment", "rwanda-malaria")]
    (rw,) = previews.by_action[("deployment", "rwanda-malaria")]
    assert (rw.schedule, rw.cron, rw.timezone, rw.active) == ("rwanda-malaria/chapctl-cron", "0 4 * * 2", "Africa/Kigali", True)
    assert [r.isoformat() for r in rw.runs] == ["2026-11-24T04:00:00+02:00", "2026-12-01T04:00:00+02:00",
                                                "2026-12-08T04:00:00+02:00"]
    out = text(p, previews)
    assert "      next runs (cron '0 4 * * 2' Africa/Kigali):\n        Tue 2026-11-24 04:00 CAT = Tue 2026-11-24 02:00 UTC" in out
    md = plan_report.plan_markdown(p, next_runs=previews)
    assert "| `rwanda-malaria/chapctl-cron` | `0 4 * * 2` | Africa/Kigali | Tue 2026-11-24 04:00 CAT | Tue 2026-11-24 02:00 UTC |" in md
    assert md.index("**Next 3 runs**") > md.index("| + | deployment |")  # after the table of actions


def test_drift_reverts_are_previewed_and_deletes_are_not():
    p = golden_plan("drift_made_in_ui")
    previews = schedule_previews(p, start=START)
    # the cron edited in the UI and the schedule paused in the UI are both reverted: both previewed
    assert sorted(previews.by_action) == [("schedule", "laos-dengue/chapctl-cron"), ("schedule", "laos-malaria/chapctl-cron")]
    (dengue,) = previews.by_action[("schedule", "laos-dengue/chapctl-cron")]
    assert dengue.active and len(dengue.runs) == 3 and dengue.runs[0].isoformat() == "2026-12-02T05:30:00+07:00"
    doc = json.loads(plan_report.plan_json(p, next_runs=previews))
    deleted = next(a for a in doc["actions"] if a["op"] == "delete")
    assert "next_runs" not in deleted


def test_previews_are_prefects_own_schedule_runs_across_a_dst_change(tmp_path):
    """A change to `30 2 * * *` Europe/Oslo over the night 02:30 does not exist (2027-03-28)."""
    edited = copy.deepcopy(BASE)
    edited[0] = project("laos-malaria", "laos-dhis2", model_id=12, cron="30 2 * * *", timezone="Europe/Oslo")
    p = scenario_plan(tmp_path, edited)
    start = dt.datetime(2027, 3, 27, tzinfo=dt.timezone.utc)
    previews = schedule_previews(p, count=3, start=start)
    (nr,) = previews.by_action[("schedule", "laos-malaria/chapctl-cron")]
    assert list(nr.runs) == schedule_runs("30 2 * * *", "Europe/Oslo", 3, start)
    assert [r.date() for r in nr.runs] == [dt.date(2027, 3, 27), dt.date(2027, 3, 28), dt.date(2027, 3, 29)]
    # the run in the gap night: Prefect 3.8 puts it before the gap (CET), 3.9 after it (CEST)
    assert [r.utcoffset() for r in nr.runs] in ([dt.timedelta(hours=h) for h in (1, 1, 2)],
                                                [dt.timedelta(hours=h) for h in (1, 2, 2)])
    out = text(p, previews)
    assert "        Sat 2027-03-27 02:30 CET = Sat 2027-03-27 01:30 UTC" in out
    assert "        Mon 2027-03-29 02:30 CEST = Mon 2027-03-29 00:30 UTC" in out


def test_paused_schedules_say_paused_no_runs(tmp_path):
    edited = copy.deepcopy(BASE)
    edited[1] = project("laos-dengue", "laos-dhis2", model_id=7, cron="30 5 2 * *", active=False)
    edited.append(project("sl-malaria", "laos-dhis2", model_id=5, cron="0 8 * * 3", timezone="Africa/Freetown",
                          active=False))
    p = scenario_plan(tmp_path, edited)
    previews = schedule_previews(p, start=START)
    assert sorted(previews.by_action) == [("deployment", "sl-malaria"), ("schedule", "laos-dengue/chapctl-cron")]
    for (nr,) in previews.by_action.values():
        assert not nr.active and nr.runs == () and nr.note == "paused: no runs"
    out = text(p, previews)
    assert "      active: true → false\n      next runs (cron '30 5 2 * *' Asia/Vientiane): paused: no runs" in out
    assert "      next runs (cron '0 8 * * 3' Africa/Freetown): paused: no runs" in out
    md = plan_report.plan_markdown(p, next_runs=previews)
    assert "| `laos-dengue/chapctl-cron` | `30 5 2 * *` | Asia/Vientiane | paused: no runs | |" in md
    assert "| `sl-malaria/chapctl-cron` | `0 8 * * 3` | Africa/Freetown | paused: no runs | |" in md
    doc = json.loads(plan_report.plan_json(p, next_runs=previews))
    paused = next(a for a in doc["actions"] if a["name"] == "laos-dengue/chapctl-cron")
    assert paused["next_runs"] == [] and paused["next_runs_note"] == "paused: no runs"


@pytest.mark.parametrize("case", ["noop_everything_in_sync", "secret_rotated_in_env", "project_removed_prunes_and_orphans_block",
                                  "work_pool_deleted_on_server"])
def test_no_schedule_created_or_changed_means_no_previews(case):
    p = golden_plan(case)
    assert schedule_previews(p) is None
    assert "next runs" not in text(p, None).lower()
    assert "Next " not in plan_report.plan_markdown(p, next_runs=None)
    assert "next_runs" not in plan_report.plan_json(p, next_runs=None)


def test_verbose_text_previews_only_what_changes():
    p = golden_plan("yaml_change_one_project")
    previews = schedule_previews(p, start=START)
    out = "\n".join(t for _s, t in plan_report.plan_lines(p, show_noops=True, next_runs=previews))
    assert "= schedule rwanda-malaria/chapctl-cron: no change" in out
    assert out.count("next runs") == 1


_IMPORTS = """
import datetime as dt, json, sys
from pathlib import Path
from compiler.output import plan as plan_report
from compiler.reconcile.previews import schedule_previews
from compiler.reconcile.desired import load_desired
from compiler.reconcile.facts import Facts
from compiler.reconcile.plan import plan
from compiler.reconcile.live import Live
here = Path("tests/plan_golden")
facts = Facts.from_json(json.loads((here / "facts.json").read_text()))
case = Path(sys.argv[1])
p = plan(load_desired(case / "desired", json.loads((case / "env.json").read_text()), facts=facts),
         Live.from_json(json.loads((case / "live.json").read_text())))
runs = schedule_previews(p)
plan_report.plan_lines(p, next_runs=runs); plan_report.plan_markdown(p, next_runs=runs); plan_report.plan_json(p, next_runs=runs)
print(runs is not None)
"""


def _imports_prefect(case: str | Path) -> tuple[bool, str]:
    case = case if isinstance(case, Path) else HERE / "cases" / case
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", _IMPORTS, str(case)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    modules = [line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")]
    assert modules, "importtime printed nothing"
    return any(m == "prefect" or m.startswith("prefect.") for m in modules), proc.stdout.strip()


def test_prefect_is_imported_only_when_a_schedule_is_created_or_changed(tmp_path):
    # changes, but none to a schedule (a rotated secret): no previews, no prefect
    assert _imports_prefect("secret_rotated_in_env") == (False, "False")
    # only a pause: previewed ("paused: no runs") without asking Prefect
    paused = copy.deepcopy(BASE)
    paused[1] = project("laos-dengue", "laos-dhis2", model_id=7, cron="30 5 2 * *", active=False)
    compile_projects(paused, tmp_path / "case" / "desired")
    shutil.copy(APPLIED_BASE, tmp_path / "case" / "live.json")
    (tmp_path / "case" / "env.json").write_text(json.dumps(ENV))
    assert _imports_prefect(tmp_path / "case") == (False, "True")
    # the check is meaningful: a changed schedule does import Prefect's CronSchedule
    assert _imports_prefect("yaml_change_one_project") == (True, "True")
