"""`schedules:` (issue 15): every entry is reviewed like the single `schedule:` — in SCHEDULES.md
and the heat-map's load, in `chapctl schedule`, in `chapctl diff` (next runs of the entry that
moved) — and compiled with its slug and parameter overrides."""

from __future__ import annotations

import json

from click.testing import CliRunner

from compiler.cli import app
from tests.compiler.test_diff_and_schedule import git

PROJECT = """\
name: laos-dengue
credentials: {{block: laos-dhis2}}
model_id: 7
end_mode: offset
end_period_offset: 1
schedules:
  - slug: weekly
    cron: "0 6 * * 1"
    timezone: Asia/Vientiane
  - slug: monthly-fixed
    cron: "{monthly}"
    parameters:
      end_mode: fixed
      end_date: 2026-06-30
      prediction_setup_id: 3
limits:
  concurrency: 1
"""
DEFAULTS = "instance_limits:\n  laos-dhis2: 1\n"


def invoke(*args):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_every_schedule_is_compiled_and_reviewed(repo_factory):
    repo = repo_factory({"projects/laos-dengue.yaml": PROJECT.format(monthly="0 5 2 * *"),
                         "projects/_defaults.yaml": DEFAULTS})
    assert invoke("compile", "--root", str(repo)).exit_code == 0
    prefect_yaml = (repo / "prefect.yaml").read_text()
    assert "    slug: weekly\n" in prefect_yaml and "    slug: monthly-fixed\n" in prefect_yaml
    assert ("    parameters:\n      end_mode: fixed\n      end_date: \"2026-06-30\"\n      end_period_offset: null\n"
            "      prediction_setup_id: 3\n") in prefect_yaml
    assert "  concurrency_limit:\n    limit: 1\n    collision_strategy: ENQUEUE\n" in prefect_yaml
    assert "    chap_concurrency_limit: chapctl-default--laos-dhis2\n" in prefect_yaml

    report = (repo / "SCHEDULES.md").read_text()
    assert "| laos-dengue \\[weekly\\] | `0 6 * * 1` | Asia/Vientiane |" in report
    assert "| laos-dengue \\[monthly-fixed\\] | `0 5 2 * *` | UTC |" in report
    assert "## Concurrency limits" in report
    assert "DHIS2 instance (block) **laos-dhis2**: at most 1 run(s) at a time do CHAP work (laos-dengue)" in report
    assert "project **laos-dengue**: at most 1 run(s) at a time; a run over the limit waits (ENQUEUE)" in report

    listed = json.loads(invoke("schedule", "--root", str(repo), "--format", "json").stdout)
    rows = listed if isinstance(listed, list) else listed.get("projects") or listed.get("schedules")
    assert sorted(r["project"] for r in rows) == ["laos-dengue [monthly-fixed]", "laos-dengue [weekly]"]

    # Issue 21 #19: the text table named both rows `laos-dengue` (rich read `[weekly]` as markup).
    text = invoke("schedule", "--root", str(repo), "--next", "1").stdout
    assert "laos-dengue [weekly]" in text and "laos-dengue [monthly-fixed]" in text


def test_diff_shows_the_schedule_entry_that_moved(repo_factory):
    repo = repo_factory({"projects/laos-dengue.yaml": PROJECT.format(monthly="0 5 2 * *")})
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    git(repo, "checkout", "-qb", "feature")
    (repo / "projects/laos-dengue.yaml").write_text(PROJECT.format(monthly="0 5 3 * *"))
    git(repo, "commit", "-qam", "move")
    result = invoke("diff", "--root", str(repo), "--detailed-exitcode")
    assert result.exit_code == 2, result.stderr
    out = result.stdout
    assert "    schedule.monthly-fixed.cron: 0 5 2 * * → 0 5 3 * *" in out
    assert "schedule before: `0 5 2 * *` UTC: At 05:00, on day 2 of the month" in out
    assert "schedule after: `0 5 3 * *` UTC: At 05:00, on day 3 of the month" in out
    assert "schedule.weekly" not in out
