"""`chapctl diff` between commits of a temporary git repository, and `chapctl schedule` output."""

from __future__ import annotations

import json
import subprocess

from click.testing import CliRunner

from compiler.cli import app
from tests.compiler.conftest import valid_project


def git(repo, *args):
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True,
                   env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "t",
                        "GIT_COMMITTER_EMAIL": "t@example.org", "PATH": "/usr/bin:/bin", "HOME": str(repo)})


def invoke(*args):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def make_history(repo_factory):
    repo = repo_factory({"projects/keep.yaml": valid_project("keep"), "projects/gone.yaml": valid_project("gone"),
                         "projects/moves.yaml": valid_project("moves")})
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    git(repo, "checkout", "-qb", "feature")
    (repo / "projects/gone.yaml").unlink()
    (repo / "projects/new.yaml").write_text(valid_project("new"))
    moved = valid_project("moves").replace('"0 6 * * 1"', '"30 2 * * *"').replace("Africa/Kigali", "Europe/Oslo")
    (repo / "projects/moves.yaml").write_text(moved.replace("model_id: 12", "model_id: 13"))
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "feature")
    return repo


def test_diff_against_merge_base_shows_added_removed_and_schedule_runs(repo_factory):
    repo = make_history(repo_factory)
    result = invoke("diff", "--root", str(repo), "--detailed-exitcode")
    assert result.exit_code == 2, result.stderr
    out = result.stdout
    assert "+ new (added)" in out and "- gone (removed)" in out and "~ moves (changed)" in out
    assert "keep" not in out
    assert "    parameters.configured_model_id: 12 → 13" in out
    assert "    schedule.cron: 0 6 * * 1 → 30 2 * * *" in out
    assert "    schedule.timezone: Africa/Kigali → Europe/Oslo" in out
    assert "schedule before: `0 6 * * 1` Africa/Kigali — At 06:00, only on Monday" in out
    assert "schedule after: `30 2 * * *` Europe/Oslo — At 02:30" in out
    moves = out.split("~ moves (changed)")[1]
    runs_after = moves.split("schedule after:")[1].splitlines()[1:4]
    assert len(runs_after) == 3 and all("CET" in r or "CEST" in r for r in runs_after)
    assert "1 added, 1 changed, 1 removed, 1 unchanged" in out


def test_diff_between_two_revisions_in_markdown(repo_factory):
    repo = make_history(repo_factory)
    result = invoke("diff", "--root", str(repo), "--base", "main", "--head", "feature", "--markdown")
    assert result.exit_code == 0
    assert "#### moves — changed" in result.stdout
    assert "| schedule.cron | `0 6 * * 1` | `30 2 * * *` |" in result.stdout
    assert "| next runs | before | after |" in result.stdout
    same = invoke("diff", "--root", str(repo), "--base", "feature", "--head", "feature", "--detailed-exitcode")
    assert same.exit_code == 0 and "No project changes." in same.stdout


def test_diff_with_an_unknown_revision_is_a_clean_error(repo_factory):
    repo = make_history(repo_factory)
    result = invoke("diff", "--root", str(repo), "--base", "no-such-rev")
    assert result.exit_code == 1
    assert result.stderr.strip() == ("error: unknown git revision 'no-such-rev'; give a commit, branch or tag "
                                     "to --base/--head")


def test_schedule_json_gives_local_and_utc_times_across_a_dst_change(repo_factory):
    oslo = valid_project("oslo").replace('"0 6 * * 1"', '"30 2 * * *"').replace("Africa/Kigali", "Europe/Oslo")
    repo = repo_factory({"projects/oslo.yaml": oslo})
    result = invoke("schedule", "--root", str(repo), "--next", "3", "--from", "2027-03-27T00:00:00+00:00", "--json")
    assert result.exit_code == 0, result.stderr
    (preview,) = json.loads(result.stdout)
    assert preview["timezone"] == "Europe/Oslo"
    # 02:30 does not exist on 2027-03-28 in Oslo: Prefect 3.8 fires at 00:30 UTC (this is its answer,
    # computed by its own CronSchedule; the server test checks the scheduler agrees).
    assert [r["utc"] for r in preview["runs"]] == ["2027-03-27T01:30:00+00:00", "2027-03-28T00:30:00+00:00",
                                                    "2027-03-29T00:30:00+00:00"]


def test_schedule_for_unknown_project_is_a_clean_error(repo_factory):
    repo = repo_factory({"projects/one.yaml": valid_project("one")})
    result = invoke("schedule", "--root", str(repo), "--project", "two")
    assert result.exit_code == 1
    assert "no scheduled project named 'two'" in result.stderr
