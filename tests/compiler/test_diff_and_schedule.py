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
    assert ("schedule before: `0 6 * * 1` Africa/Kigali: At 06:00, only on Monday (UTC: At 04:00, only on Monday)"
            in out)
    assert "schedule after: `30 2 * * *` Europe/Oslo: At 02:30 (UTC: At 01:30 (1 Jan – 27 Mar, 31 Oct – 31 Dec); " \
        "At 00:30 (28 Mar – 30 Oct))" in out
    assert "credentials.managed" not in out  # an internal field, never shown
    moves = out.split("~ moves (changed)")[1]
    runs_after = moves.split("schedule after:")[1].splitlines()[1:4]
    assert len(runs_after) == 3 and all("CET" in r or "CEST" in r for r in runs_after)
    assert "1 added, 1 changed, 1 removed, 1 unchanged" in out


def test_diff_between_two_revisions_in_markdown(repo_factory):
    repo = make_history(repo_factory)
    result = invoke("diff", "--root", str(repo), "--base", "main", "--head", "feature", "--markdown")
    assert result.exit_code == 0
    assert "#### moves — changed" in result.stdout
    out = result.stdout
    assert "**1 added, 1 changed, 1 removed, 1 unchanged**" in out
    assert "| schedule.cron | `0 6 * * 1` | `30 2 * * *` |" in out
    assert ("| when | `0 6 * * 1` Africa/Kigali: At 06:00, only on Monday (UTC: At 04:00, only on Monday) | "
            "`30 2 * * *` Europe/Oslo: At 02:30 (UTC: At 01:30 (1 Jan – 27 Mar, 31 Oct – 31 Dec); At 00:30 "
            "(28 Mar – 30 Oct)) |") in out
    assert "| next run 1 |" in out and "| next run 3 |" in out
    assert ":key: **Repository secrets apply needs** (each must exist before merge): `TEST_DHIS2_PASSWORD`" in out
    same = invoke("diff", "--root", str(repo), "--base", "feature", "--head", "feature", "--detailed-exitcode")
    assert same.exit_code == 0 and "No project changes." in same.stdout


def test_diff_names_new_secrets_and_new_hotspots(repo_factory):
    repo = make_history(repo_factory)
    git(repo, "checkout", "-qb", "country")
    kenya = valid_project("kenya", "kenya-dhis2").replace("TEST_DHIS2_PASSWORD", "KENYA_DHIS2_PASSWORD")
    (repo / "projects/kenya.yaml").write_text(kenya)
    for i in range(4):  # four more at keep's hour against the same instance: over the limit of 3
        (repo / f"projects/crowd-{i}.yaml").write_text(valid_project(f"crowd-{i}"))
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "a country and a crowd")
    out = invoke("diff", "--root", str(repo), "--base", "feature", "--head", "country", "--markdown").stdout
    assert "`KENYA_DHIS2_PASSWORD` **(new)**, `TEST_DHIS2_PASSWORD`" in out
    assert ":warning: **Load hot-spots this change adds:**" in out
    # keep and new were 2 at Mon 04:00 UTC against dhis2.example.org; kenya and the crowd make 7.
    assert "- 7 runs start Mon 04:00-04:59 UTC against dhis2.example.org (more than 3; all year)" in out
    text = invoke("diff", "--root", str(repo), "--base", "feature", "--head", "country").stdout
    assert "warning: new load hot-spot: 7 runs start Mon 04:00-04:59 UTC" in text
    assert "secrets apply will need that the base did not: KENYA_DHIS2_PASSWORD" in text


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
    # 02:30 does not exist on 2027-03-28 in Oslo. The answer is the installed Prefect's own
    # CronSchedule's, and it moved between releases: 3.8 fires at 00:30 UTC (01:30 CET, before the
    # gap), 3.9 at 01:30 UTC (03:30 CEST, after it). The server test checks the scheduler agrees.
    from importlib.metadata import version

    gap_run = {"3.8": "2027-03-28T00:30:00+00:00", "3.9": "2027-03-28T01:30:00+00:00"}
    assert [r["utc"] for r in preview["runs"]] == ["2027-03-27T01:30:00+00:00",
                                                    gap_run[".".join(version("prefect").split(".")[:2])],
                                                    "2027-03-29T00:30:00+00:00"]


def test_schedule_for_unknown_project_is_a_clean_error(repo_factory):
    repo = repo_factory({"projects/one.yaml": valid_project("one")})
    result = invoke("schedule", "--root", str(repo), "--project", "two")
    assert result.exit_code == 1
    assert "no scheduled project named 'two'" in result.stderr


def test_diff_shows_values_as_the_project_file_writes_them(repo_factory):
    """Issue 21 #19: a paused schedule read `schedule.active: True → False`, Python's spelling."""
    repo = repo_factory({"projects/keep.yaml": valid_project("keep")})
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    paused = valid_project("keep").replace('  cron: "0 6 * * 1"\n', '  cron: "0 6 * * 1"\n  active: false\n')
    assert paused != valid_project("keep")
    (repo / "projects/keep.yaml").write_text(paused)
    out = invoke("diff", "--root", str(repo), "--base", "main").stdout
    assert "    schedule.active: true → false" in out, out
    assert "True" not in out and "False" not in out
