"""Environments on the compile side (issue 25 #4): compile writes one set of artifacts that lists
the environments, SCHEDULES.md says what each changes, every verb takes --env/CHAPCTL_ENV and an
unknown name is a usage error naming the declared ones; schedule and diff show an environment."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from click.testing import CliRunner

from compiler.cli import app
from tests.compiler.conftest import valid_project

DEFAULTS = """\
owner: laos-team
timezone: UTC
work_pool: chap
notifications:
  ops-webhook:
    webhook: {url_env: OPS_WEBHOOK_URL}
alerts: {notify: [ops-webhook]}
instance_limits: {laos-dhis2: 1}
environments:
  staging:
    api_url_env: STAGING_PREFECT_API_URL
    auth_string_env: STAGING_PREFECT_API_AUTH_STRING
    owner_suffix: staging
    work_pool: chap-staging
    schedules: paused
    notifications:
      ops-webhook: {webhook: {url_env: STAGING_OPS_WEBHOOK_URL}}
  production:
    api_url_env: PREFECT_API_URL
"""


def run(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(app, list(args), catch_exceptions=False, env={"CHAPCTL_ENV": None, **(env or {})})


@pytest.fixture
def repo(repo_factory):
    root = repo_factory({"projects/_defaults.yaml": DEFAULTS,
                         "projects/laos-malaria.yaml": valid_project("laos-malaria", "laos-dhis2")})
    assert run("compile", "--root", str(root)).exit_code == 0
    return root


def test_compile_writes_one_set_of_artifacts_that_lists_the_environments(repo):
    prefect = (repo / "prefect.yaml").read_text()
    assert "  environments:\n  - name: staging\n    owner: laos-team-staging\n" in prefect
    assert "        secrets.url: STAGING_OPS_WEBHOOK_URL\n" in prefect
    assert "  - name: production\n    owner: laos-team\n    api_url_env: PREFECT_API_URL\n    schedules: active\n" in prefect
    assert "  - chapctl-owner:laos-team\n" in prefect and "chapctl-owner:laos-team-staging" not in prefect  # as declared
    before = {p: p.read_bytes() for p in sorted(repo.rglob("*")) if p.is_file() and ".chapctl" not in p.parts}
    for args in (["--env", "staging"], ["--env", "production"]):
        result = run("compile", "--root", str(repo), *args)
        assert result.exit_code == 0 and "0 file(s) changed" in result.stdout
    assert {p: p.read_bytes() for p in before} == before  # the same bytes, whichever environment
    assert run("compile", "--check", "--root", str(repo), "--env", "staging").exit_code == 0


def test_schedules_md_says_what_it_shows_and_what_each_environment_changes(repo):
    text = (repo / "SCHEDULES.md").read_text()
    assert ("Shown as the projects declare them, which every environment starts from. What each environment\n"
            "(`chapctl --env NAME`, or `CHAPCTL_ENV`) changes:\n") in text
    assert [line for line in text.splitlines() if line.startswith("- **")] == [
        "- **staging**: Prefect server from $STAGING_PREFECT_API_URL (basic auth from $STAGING_PREFECT_API_AUTH_STRING); "
        "owner laos-team-staging; every project on work pool chap-staging; every schedule paused; notification "
        "ops-webhook: URL from $STAGING_OPS_WEBHOOK_URL",
        "- **production**: Prefect server from $PREFECT_API_URL; owner laos-team (as declared); schedules as declared"]


def test_without_environments_schedules_md_is_as_before(repo_factory):
    root = repo_factory({"projects/laos-malaria.yaml": valid_project("laos-malaria", "laos-dhis2")})
    assert run("compile", "--root", str(root)).exit_code == 0
    assert "environment" not in (root / "SCHEDULES.md").read_text().lower()
    assert "environments" not in (root / "prefect.yaml").read_text()


def _git_repo(root):
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.org", "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "one"]):
        subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True)


@pytest.mark.parametrize("via", ["--env", "CHAPCTL_ENV"])
def test_an_unknown_environment_is_a_usage_error_on_every_verb(repo, via):
    _git_repo(repo)
    checked = set()
    for verb in set(app.commands) - {"init"}:  # the CLI's own list (init makes a repository: none declared yet)
        args = [verb, "--root", str(repo)] + (["--env", "stagng"] if via == "--env" else [])
        result = run(*args, env={"CHAPCTL_ENV": "stagng"} if via == "CHAPCTL_ENV" else {})
        lines = result.stderr.strip().splitlines()
        assert result.exit_code == 64 and len(lines) == 1, (verb, result.exit_code, result.stderr, result.stdout)
        assert lines[0].startswith("error: unknown environment 'stagng' (--env or CHAPCTL_ENV): ") and \
            "declares 'staging', 'production'; did you mean 'staging'?" in lines[0], (verb, lines)
        checked.add(verb)
    assert {"validate", "compile", "schedule", "diff", "plan", "apply", "status", "import", "preflight"} <= checked


def test_an_environment_where_none_is_declared_is_a_clear_usage_error(repo_factory):
    root = repo_factory({"projects/laos-malaria.yaml": valid_project("laos-malaria", "laos-dhis2")})
    assert run("compile", "--root", str(root)).exit_code == 0
    for verb in ("validate", "plan"):
        result = run(verb, "--root", str(root), env={"CHAPCTL_ENV": "staging"})
        assert result.exit_code == 64, result.stderr
        assert "names environment 'staging', but" in result.stderr and "declares no environments" in result.stderr
    assert run("validate", "--root", str(root), env={"CHAPCTL_ENV": ""}).exit_code == 0  # empty: none


def test_validate_and_schedule_in_an_environment(repo):
    assert "1 project(s) valid, environment 'staging' declared" in run("validate", "--root", str(repo),
                                                                       "--env", "staging").stdout
    result = run("schedule", "--root", str(repo), "--env", "staging", "--format", "json", "-n", "1",
                 env={"PREFECT_API_URL": None, "STAGING_PREFECT_API_URL": None})
    assert result.exit_code == 0, result.stderr
    assert [p["active"] for p in json.loads(result.stdout)] == [False]
    assert "note: environment 'staging' applies every schedule paused" in result.stderr
    declared = run("schedule", "--root", str(repo), "--env", "production", "--format", "json", "-n", "1")
    assert [p["active"] for p in json.loads(declared.stdout)] == [True]


def test_diff_in_an_environment_shows_what_changes_there(repo):
    from compiler.compile.load import load_repo
    from compiler.compile.validate import validate
    from compiler.review.diff import compare

    before = validate(load_repo(repo))
    edited = DEFAULTS.replace("work_pool: chap-staging", "work_pool: chap-staging-2")
    (repo / "projects" / "_defaults.yaml").write_text(edited)
    after = validate(load_repo(repo))
    plain = compare(before, after)
    assert [f.field for f in plain.defaults] == ["environments.staging.work_pool"] and plain.changes == ()
    staged = compare(before, after, environment="staging")
    assert staged.environment == "staging"
    assert [(c.name, [(f.field, f.before, f.after) for f in c.fields]) for c in staged.changes] == [
        ("laos-malaria", [("work_pool", "chap-staging", "chap-staging-2")])]
    assert compare(before, after, environment="production").changes == ()
