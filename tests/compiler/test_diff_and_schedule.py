"""`chapctl diff` between commits of a temporary git repository, and `chapctl schedule` output."""

from __future__ import annotations

import json
import subprocess

import pytest
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
    assert (":key: **Variables apply will need** (each must be set where apply runs — a repository secret in CI): "
            "`CHAPCTL_FLOWS_DIR`, `TEST_DHIS2_PASSWORD`") in out
    same = invoke("diff", "--root", str(repo), "--base", "feature", "--head", "feature", "--detailed-exitcode")
    assert same.exit_code == 0 and "No project changes." in same.stdout


def test_diff_names_new_variables_and_new_hotspots(repo_factory):
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
    assert "variables apply will need that the base did not: KENYA_DHIS2_PASSWORD (set each where" in text


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


# --- issue 21 #7: every change plan acts on, every variable apply needs ------------------------------

DEFAULTS = """\
source:
  git:
    repository: https://github.com/example/chap-projects.git
    branch: main
notifications:
  ops-webhook:
    webhook:
      url_env: OPS_WEBHOOK_URL
alerts:
  notify: [ops-webhook]
  missed: 30m
instance_limits:
  test-dhis2: 1
"""


def committed(repo_factory, defaults=DEFAULTS):
    """A repository whose `main` holds `defaults` and one project, `keep`; edits go to the working tree."""
    repo = repo_factory({"projects/_defaults.yaml": defaults, "projects/keep.yaml": valid_project("keep")})
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    return repo


@pytest.mark.parametrize("old, new, line", [
    ("https://github.com/example/chap-projects.git", "https://github.com/example/other.git",
     "    source.git.repository: https://github.com/example/chap-projects.git → https://github.com/example/other.git"),
    ("branch: main", "branch: release", "    source.git.branch: main → release"),
    ("test-dhis2: 1", "test-dhis2: 2", "    instance_limits.test-dhis2: 1 → 2"),
    ("url_env: OPS_WEBHOOK_URL", "url_env: OPS_HOOK", "    notifications.ops-webhook.webhook.url_env: OPS_WEBHOOK_URL → OPS_HOOK"),
], ids=["git-repository", "git-branch", "instance-limit", "notification-url-env"])
def test_diff_shows_a_defaults_change_plan_acts_on(repo_factory, old, new, line):
    """Issue 21 #7: these said "No project changes" (and exited 0 with --detailed-exitcode)."""
    repo = committed(repo_factory)
    (repo / "projects/_defaults.yaml").write_text(DEFAULTS.replace(old, new))
    result = invoke("diff", "--root", str(repo), "--base", "main", "--detailed-exitcode")
    assert result.exit_code == 2, result.stdout
    assert "~ _defaults.yaml (changed)" in result.stdout and line in result.stdout, result.stdout
    md = invoke("diff", "--root", str(repo), "--base", "main", "--markdown").stdout
    assert "#### _defaults.yaml — changed" in md and "No project changes" not in md


def test_diff_shows_an_alert_whose_target_changes_kind(repo_factory):
    """The same target name, now a Slack webhook: every project's automation sends elsewhere."""
    repo = committed(repo_factory)
    slack = DEFAULTS.replace("    webhook:\n      url_env: OPS_WEBHOOK_URL", "    slack:\n      url_env: OPS_SLACK_URL")
    (repo / "projects/_defaults.yaml").write_text(slack)
    out = invoke("diff", "--root", str(repo), "--base", "main").stdout
    assert "~ keep (changed)" in out, out
    assert "    alerts.failed.notify: ops-webhook (custom-webhook) → ops-webhook (slack-webhook)" in out, out
    assert "    alerts.missed.notify: ops-webhook (custom-webhook) → ops-webhook (slack-webhook)" in out


def test_diff_lists_every_variable_apply_will_need(repo_factory):
    """Notification URLs and the flows directory were left out: a green PR, then a refused apply."""
    repo = committed(repo_factory, DEFAULTS.replace(
        "source:\n  git:\n    repository: https://github.com/example/chap-projects.git\n    branch: main\n", ""))
    md = invoke("diff", "--root", str(repo), "--base", "main", "--markdown").stdout
    assert (":key: **Variables apply will need** (each must be set where apply runs — a repository secret in CI): "
            "`CHAPCTL_FLOWS_DIR`, `OPS_WEBHOOK_URL`, `TEST_DHIS2_PASSWORD`") in md, md


def test_diff_names_a_new_notification_variable(repo_factory):
    repo = committed(repo_factory)
    (repo / "projects/_defaults.yaml").write_text(DEFAULTS.replace("url_env: OPS_WEBHOOK_URL", "url_env: OPS_HOOK"))
    text = invoke("diff", "--root", str(repo), "--base", "main").stdout
    assert "variables apply will need that the base did not: OPS_HOOK" in text, text


def test_diff_lists_exactly_the_variables_apply_refuses_without(repo_factory):
    """The list a reviewer reads is the set apply checks: without any one of them apply refuses (on a
    server that has nothing yet, where it needs the most), with all of them it does not."""
    from pathlib import Path

    from compiler.compile.build import compile_repo, write
    from compiler.errors import ApplyRefused
    from compiler.reconcile.apply import _check_env
    from compiler.reconcile.client import ApiSettings, PrefectAPI
    from compiler.reconcile.desired import load_desired
    from compiler.reconcile.facts import Facts
    from compiler.reconcile.live import Live
    from compiler.reconcile.plan import plan

    defaults = DEFAULTS.replace(
        "source:\n  git:\n    repository: https://github.com/example/chap-projects.git\n    branch: main\n", "")
    repo = committed(repo_factory, defaults)
    (repo / "projects/kenya.yaml").write_text(
        valid_project("kenya", "kenya-dhis2").replace("TEST_DHIS2_PASSWORD", "KENYA_DHIS2_PASSWORD"))
    write(repo, compile_repo(repo).artifacts)
    listed = json.loads(invoke("diff", "--root", str(repo), "--base", "main", "--json").stdout)["variables"]
    facts = Facts.from_json(json.loads((Path(__file__).parents[1] / "plan_golden/facts.json").read_text()))

    def refusal(env: dict[str, str]) -> str | None:
        p = plan(load_desired(repo, env, facts=facts), Live())
        if p.blockers or p.missing_env:  # what apply refuses for before it writes (apply._refuse)
            return "; ".join(p.blockers + p.missing_env)
        try:
            with PrefectAPI(ApiSettings(url="http://prefect.invalid/api")) as api:
                _check_env(p, env, api)
        except ApplyRefused as exc:
            return str(exc)
        return None

    assert listed == ["CHAPCTL_FLOWS_DIR", "KENYA_DHIS2_PASSWORD", "OPS_WEBHOOK_URL", "TEST_DHIS2_PASSWORD"]
    everything = {name: "/some/value" for name in listed}
    assert refusal(everything) is None
    for name in listed:
        refused = refusal({k: v for k, v in everything.items() if k != name})
        assert refused is not None and name in refused, (name, refused)


# Every field of a project and of _defaults.yaml, set; each edit below changes one of them.
EVERY_DEFAULT = """\
owner: team
timezone: UTC
work_pool: chap
tags: [chap]
source:
  git:
    repository: https://github.com/example/chap-projects.git
    branch: main
load_warnings:
  per_instance: 3
  overall: 10
notifications:
  hook:
    webhook:
      url_env: HOOK_URL
  chat:
    slack:
      url_env: SLACK_URL
  mail:
    email:
      to: [ops@example.org]
      sender: prefect@example.org
      api_key_env: SENDGRID_KEY
alerts:
  notify: [chat]
  failed: true
  missed: 1h
instance_limits:
  one-dhis2: 1
environments:
  staging:
    api_url_env: STAGING_URL
    auth_string_env: STAGING_AUTH
    api_key_env: STAGING_KEY
    owner_suffix: staging
    work_pool: staging-pool
    schedules: paused
    notifications:
      hook:
        webhook:
          url_env: STAGING_HOOK_URL
      chat:
        slack:
          url_env: STAGING_SLACK_URL
      mail:
        email:
          to: [staging@example.org]
          sender: staging@example.org
          api_key_env: STAGING_SENDGRID_KEY
ci:
  allow_unset: [SENDGRID_KEY]
"""
EVERY_PROJECT = """\
name: one
description: First
credentials:
  block: one-dhis2
  base_url: https://dhis2.example.org
  username: chap-bot
  password_env: ONE_PASSWORD
model_id: 12
prediction_setup_id: 3
end_mode: offset
end_period_offset: 1
schedule:
  cron: "0 6 * * 1"
  timezone: Africa/Kigali
  active: true
alerts:
  notify: [hook]
  failed: true
  missed: 30m
limits:
  concurrency: 1
  collision_strategy: ENQUEUE
tags: [malaria]
work_pool: chap
replaces:
  deployment: dhis2-chap-prediction/old
  schedule_id: 0b7e5f5c-8d1e-4a51-9a43-0c7c1b0e9f11
"""
EVERY_ENTRY = """\
name: two
credentials:
  block: shared-dhis2
model_id: 12
end_mode: fixed
end_date: 2026-06-30
schedules:
  - slug: weekly
    cron: "0 6 * * 1"
    timezone: Europe/Oslo
    active: true
    parameters:
      end_mode: offset
      end_period_offset: 0
      prediction_setup_id: 4
  - slug: monthly
    cron: "0 5 2 * *"
    parameters:
      end_date: 2026-06-30
    replaces:
      deployment: dhis2-chap-prediction/hand-made
      schedule_id: 1b7e5f5c-8d1e-4a51-9a43-0c7c1b0e9f11
"""
D, P, E = "projects/_defaults.yaml", "projects/one.yaml", "projects/two.yaml"
FIELD_EDITS = {  # model field -> (file, text, replacement)
    "Defaults.owner": (D, "owner: team", "owner: other-team"),
    "Defaults.timezone": (D, "timezone: UTC", "timezone: Africa/Kigali"),
    "Defaults.work_pool": (D, "work_pool: chap", "work_pool: other"),
    "Defaults.tags": (D, "tags: [chap]", "tags: [chap, more]"),
    "Defaults.source.git.repository": (D, "chap-projects.git", "other.git"),
    "Defaults.source.git.branch": (D, "branch: main", "branch: release"),
    "Defaults.source.directory_env": (
        D, "  git:\n    repository: https://github.com/example/chap-projects.git\n    branch: main\n",
        "  directory_env: FLOWS\n"),
    "Defaults.source.package": (
        D, "  git:\n    repository: https://github.com/example/chap-projects.git\n    branch: main\n",
        "  package: chapctl\n"),
    "Defaults.load_warnings.per_instance": (D, "per_instance: 3", "per_instance: 4"),
    "Defaults.load_warnings.overall": (D, "overall: 10", "overall: 11"),
    "Defaults.notifications.webhook.url_env": (D, "url_env: HOOK_URL", "url_env: HOOK_URL_2"),
    "Defaults.notifications.slack.url_env": (D, "url_env: SLACK_URL", "url_env: SLACK_URL_2"),
    "Defaults.notifications.email.to": (D, "to: [ops@example.org]", "to: [ops@example.org, me@example.org]"),
    "Defaults.notifications.email.sender": (D, "sender: prefect@example.org", "sender: chap@example.org"),
    "Defaults.notifications.email.api_key_env": (D, "api_key_env: SENDGRID_KEY", "api_key_env: SENDGRID_KEY_2"),
    "Defaults.alerts.notify": (D, "notify: [chat]", "notify: [mail]"),
    "Defaults.alerts.failed": (D, "  failed: true\n  missed: 1h", "  failed: false\n  missed: 1h"),
    "Defaults.alerts.missed": (D, "missed: 1h", "missed: 2h"),
    "Defaults.instance_limits": (D, "one-dhis2: 1", "one-dhis2: 2"),
    "Defaults.environments.api_url_env": (D, "api_url_env: STAGING_URL", "api_url_env: STAGING_URL_2"),
    "Defaults.environments.auth_string_env": (D, "auth_string_env: STAGING_AUTH", "auth_string_env: STAGING_AUTH_2"),
    "Defaults.environments.api_key_env": (D, "api_key_env: STAGING_KEY", "api_key_env: STAGING_KEY_2"),
    "Defaults.environments.owner_suffix": (D, "owner_suffix: staging", "owner_suffix: test"),
    "Defaults.environments.work_pool": (D, "work_pool: staging-pool", "work_pool: test-pool"),
    "Defaults.environments.schedules": (D, "schedules: paused", "schedules: active"),
    "Defaults.environments.notifications.webhook.url_env": (D, "url_env: STAGING_HOOK_URL", "url_env: STAGING_HOOK_2"),
    "Defaults.environments.notifications.slack.url_env": (D, "url_env: STAGING_SLACK_URL", "url_env: STAGING_SLACK_2"),
    "Defaults.environments.notifications.email.to": (D, "to: [staging@example.org]", "to: [test@example.org]"),
    "Defaults.environments.notifications.email.sender": (D, "sender: staging@example.org", "sender: test@example.org"),
    "Defaults.environments.notifications.email.api_key_env": (
        D, "api_key_env: STAGING_SENDGRID_KEY", "api_key_env: STAGING_SENDGRID_2"),
    "Defaults.ci.allow_unset": (D, "allow_unset: [SENDGRID_KEY]", "allow_unset: [SENDGRID_KEY, HOOK_URL]"),
    "Project.description": (P, "description: First", "description: Second"),
    "Project.credentials.block": (E, "block: shared-dhis2", "block: other-dhis2"),
    "Project.credentials.base_url": (P, "https://dhis2.example.org", "https://dhis2.example.org/hmis"),
    "Project.credentials.username": (P, "username: chap-bot", "username: chap-robot"),
    "Project.credentials.password_env": (P, "password_env: ONE_PASSWORD", "password_env: ONE_PASSWORD_2"),
    "Project.model_id": (P, "model_id: 12", "model_id: 13"),
    "Project.prediction_setup_id": (P, "prediction_setup_id: 3", "prediction_setup_id: 5"),
    "Project.end_mode": (P, "end_mode: offset\nend_period_offset: 1", "end_mode: calculated"),
    "Project.end_period_offset": (P, "end_period_offset: 1", "end_period_offset: 2"),
    "Project.end_date": (E, "end_date: 2026-06-30\nschedules", "end_date: 2026-07-31\nschedules"),
    "Project.schedule.cron": (P, '"0 6 * * 1"', '"0 7 * * 1"'),
    "Project.schedule.timezone": (P, "timezone: Africa/Kigali", "timezone: Europe/Oslo"),
    "Project.schedule.active": (P, "  active: true\nalerts", "  active: false\nalerts"),
    "Project.schedules.slug": (E, "slug: monthly", "slug: monthly-2"),
    "Project.schedules.cron": (E, '"0 5 2 * *"', '"0 5 3 * *"'),
    "Project.schedules.timezone": (E, "timezone: Europe/Oslo", "timezone: Asia/Vientiane"),
    "Project.schedules.active": (E, "    active: true", "    active: false"),
    "Project.schedules.parameters.end_mode": (
        E, "end_mode: offset\n      end_period_offset: 0", "end_mode: calculated"),
    "Project.schedules.parameters.end_period_offset": (E, "end_period_offset: 0", "end_period_offset: 1"),
    "Project.schedules.parameters.end_date": (E, "      end_date: 2026-06-30", "      end_date: 2026-09-30"),
    "Project.schedules.parameters.prediction_setup_id": (E, "prediction_setup_id: 4", "prediction_setup_id: 6"),
    "Project.alerts.notify": (P, "notify: [hook]", "notify: [hook, mail]"),
    "Project.alerts.failed": (P, "  failed: true\n  missed: 30m", "  failed: false\n  missed: 30m"),
    "Project.alerts.missed": (P, "missed: 30m", "missed: 45m"),
    "Project.limits.concurrency": (P, "concurrency: 1", "concurrency: 2"),
    "Project.limits.collision_strategy": (P, "collision_strategy: ENQUEUE", "collision_strategy: CANCEL_NEW"),
    "Project.tags": (P, "tags: [malaria]", "tags: [malaria, weekly]"),
    "Project.work_pool": (P, "work_pool: chap\nreplaces", "work_pool: other\nreplaces"),
    "Project.replaces.deployment": (P, "prediction/old", "prediction/older"),
    "Project.replaces.schedule_id": (P, "0c7c1b0e9f11", "0c7c1b0e9f12"),
    "Project.schedules.replaces.deployment": (E, "prediction/hand-made", "prediction/hand-made-2"),
    "Project.schedules.replaces.schedule_id": (E, "1b7e5f5c-8d1e", "1b7e5f5c-8d1f"),
}


def model_fields(model, prefix):
    """Every leaf field of a pydantic model, through optionals, lists and mappings of models."""
    import typing

    from pydantic import BaseModel

    def models_in(annotation):
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            return [annotation]
        return [m for arg in typing.get_args(annotation) for m in models_in(arg)]

    for name, info in model.model_fields.items():
        inner = models_in(info.annotation)
        if not inner:
            yield f"{prefix}.{name}"
        for sub in inner:
            yield from model_fields(sub, f"{prefix}.{name}")


def test_every_field_of_a_project_and_of_the_defaults_has_an_edit_case():
    """A field added to the models must get a case here, and so is proven to show in `diff`."""
    from compiler.compile.models import Defaults, Project

    fields = {*model_fields(Project, "Project"), *model_fields(Defaults, "Defaults")} - {"Project.name"}
    assert fields == set(FIELD_EDITS)  # Project.name: a renamed project is one removed and one added


@pytest.fixture(scope="module")
def every_field(tmp_path_factory):
    from compiler.compile.load import load_repo
    from compiler.compile.validate import validate
    from tests.compiler.conftest import make_repo

    root = make_repo(tmp_path_factory.mktemp("every"), {D: EVERY_DEFAULT, P: EVERY_PROJECT, E: EVERY_ENTRY})
    base = validate(load_repo(root))
    assert base.ok, [d.message for d in base.diagnostics]
    return root, base


@pytest.mark.parametrize("field", sorted(FIELD_EDITS))
def test_diff_shows_an_edit_of_every_field(every_field, field, tmp_path):
    import shutil

    from compiler.compile.load import load_repo
    from compiler.compile.validate import validate
    from compiler.review.diff import compare

    root, base = every_field
    path, old, new = FIELD_EDITS[field]
    edited = shutil.copytree(root, tmp_path / "edited")
    text = (edited / path).read_text()
    assert text.count(old) == 1, (field, old)
    (edited / path).write_text(text.replace(old, new))
    head = validate(load_repo(edited))
    assert head.ok, [d.message for d in head.diagnostics]
    diff = compare(base, head)
    changed = [f.field for f in diff.defaults] + [f"{c.name}: {f.field}" for c in diff.changes for f in c.fields]
    assert diff.changed and changed, field
    shown = ("monthly-2" if field == "Project.schedules.slug"  # a renamed entry: a new one
             else "monthly.replaces" if field.startswith("Project.schedules.replaces.")  # the entry's whole replaces
             else field.split(".")[-1])
    assert any(shown in name for name in changed), (field, changed)
