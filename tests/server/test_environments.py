"""Environments (issue 25 #4): the same commit applied to two real Prefect servers as two
environments, staging and production, each with its own owner, neither touching the other; staging's
schedules really paused on its server; every server verb for the environment `--env` or
CHAPCTL_ENV names, reading the server only from the variables the environment declares."""

from __future__ import annotations

import json

import pytest

from tests.server.conftest import AUTH_CANARY, AUTH_STRING, PASSWORDS, Chapctl, all_deployments, updated_stamps
from tests.server.repo import DEFAULTS, project
from tests.server.test_concurrency import commit, git

pytestmark = pytest.mark.server

ENVIRONMENTS = {
    "staging": {"api_url_env": "STAGING_PREFECT_API_URL", "owner_suffix": "staging", "work_pool": "chap-staging",
                "schedules": "paused"},
    "production": {"api_url_env": "PRODUCTION_PREFECT_API_URL"},
}
PROJECTS = [project("laos-malaria", "laos-dhis2", cron="0 6 * * 1"),
            project("rwanda-dengue", "rwanda-dhis2", cron="0 4 * * 2", timezone="Africa/Kigali")]


@pytest.fixture
def two(make_repo, clean_server, clean_second_server):
    """One committed repository with two environments: staging on the second server, production
    on the main one. PREFECT_API_URL points nowhere: with an environment selected it is never read."""
    repo = make_repo(PROJECTS, {**DEFAULTS, "owner": "moh", "environments": ENVIRONMENTS})
    (repo.root / ".gitignore").write_text(".chapctl/\n.prefect-home/\n")
    git(repo.root, "init", "-q", "-b", "main")
    commit(repo, "one commit for both environments")
    env = {"STAGING_PREFECT_API_URL": clean_second_server.api_url, "PRODUCTION_PREFECT_API_URL": clean_server.api_url,
           "PREFECT_API_URL": "http://127.0.0.1:9/api", "CHAPCTL_FLOWS_DIR": str(repo.root), **PASSWORDS}
    return repo, Chapctl(clean_server, env), clean_second_server, clean_server


def cli(chapctl: Chapctl, repo, *args: str, environment: str | None = None, via_variable: bool = False):
    env = dict(chapctl.env)
    if environment and via_variable:
        env["CHAPCTL_ENV"] = environment
    elif environment:
        args = (*args, "--env", environment)
    return chapctl.cli(repo, *args, env=env)


def owner_tags(deployment: dict) -> list[str]:
    return [t for t in deployment["tags"] if t.startswith("chapctl-owner:")]


def variables(server) -> dict[str, dict]:
    with server.client() as c:
        return {v["name"]: v for v in c.post("/variables/filter", json={"limit": 200}).json()}


def runs(server) -> list[dict]:
    with server.client() as c:
        return c.post("/flow_runs/filter", json={"limit": 200}).json()


def test_one_commit_applied_to_two_servers_as_two_environments(two):
    repo, chapctl, staging, production = two
    first = cli(chapctl, repo, "apply", "--format", "json", environment="staging")
    assert first.returncode == 0, first.stdout + first.stderr
    doc = json.loads(first.stdout)
    assert doc["environment"] == "staging" and doc["owner"] == "moh-staging" and doc["server"]["url"] == staging.api_url
    second = cli(chapctl, repo, "apply", "--format", "json", environment="production", via_variable=True)
    assert second.returncode == 0, second.stdout + second.stderr
    doc = json.loads(second.stdout)
    assert doc["environment"] == "production" and doc["owner"] == "moh" and doc["server"]["url"] == production.api_url
    stamps = {"staging": updated_stamps(staging), "production": updated_stamps(production)}

    # Each server holds only its own environment's objects, as that environment applies them.
    on_staging, on_production = all_deployments(staging), all_deployments(production)
    assert {d["name"] for d in on_staging} == {d["name"] for d in on_production} == {"laos-malaria", "rwanda-dengue"}
    for d in on_staging:
        assert owner_tags(d) == ["chapctl-owner:moh-staging"] and d["version"].startswith("chapctl:moh-staging:")
        assert d["work_pool_name"] == "chap-staging"
        assert [s["active"] for s in d["schedules"]] == [False]  # paused on the server
    for d in on_production:
        assert owner_tags(d) == ["chapctl-owner:moh"] and d["version"].startswith("chapctl:moh:")
        assert d["work_pool_name"] == "chap-test"
        assert [s["active"] for s in d["schedules"]] == [True]
    staging_vars, production_vars = variables(staging), variables(production)
    assert "chapctl-state--moh-staging" in staging_vars and "chapctl-state--moh" not in staging_vars
    assert "chapctl-state--moh" in production_vars and "chapctl-state--moh-staging" not in production_vars
    claims = {v["value"]["owner"] for n, v in staging_vars.items() if n.startswith("chapctl-block--")}
    assert claims == {"moh-staging"}
    assert {v["value"]["owner"] for n, v in production_vars.items() if n.startswith("chapctl-block--")} == {"moh"}

    # Again, both: nothing to write, nothing to change, neither server touched.
    for name, server in (("staging", staging), ("production", production)):
        again = cli(chapctl, repo, "apply", "--format", "json", environment=name)
        assert again.returncode == 0 and json.loads(again.stdout)["writes"] == 0, again.stdout + again.stderr
        plan = cli(chapctl, repo, "plan", "--detailed-exitcode", environment=name)
        assert plan.returncode == 0, plan.stdout + plan.stderr
        assert f"environment '{name}'" in plan.stdout and "No changes." in plan.stdout
    assert updated_stamps(staging) == stamps["staging"] and updated_stamps(production) == stamps["production"]

    # Paused really: production's runs were scheduled by its apply; staging has none, scheduler or not.
    assert runs(production) and not runs(staging)


def test_an_edit_applied_to_staging_leaves_production_alone(two):
    repo, chapctl, staging, production = two
    for name in ("staging", "production"):
        assert cli(chapctl, repo, "apply", environment=name).returncode == 0
    before = updated_stamps(production)
    repo.write_project(project("laos-malaria", "laos-dhis2", cron="0 7 * * 1"))
    commit(repo, "move laos-malaria")
    applied = cli(chapctl, repo, "apply", "--format", "json", environment="staging")
    assert applied.returncode == 0, applied.stderr
    assert [(a["kind"], a["name"]) for a in json.loads(applied.stdout)["applied"]] == [
        ("schedule", "laos-malaria/chapctl-cron"), ("deployment", "laos-malaria")]  # its schedule, its fingerprint
    assert updated_stamps(production) == before  # not a request to production
    pending = cli(chapctl, repo, "plan", "--format", "json", environment="production")
    assert [(a["name"], a["op"]) for a in json.loads(pending.stdout)["actions"] if a["op"] != "noop"] == [
        ("laos-malaria/chapctl-cron", "update"), ("laos-malaria", "update")]
    moved = next(d for d in all_deployments(staging) if d["name"] == "laos-malaria")
    assert moved["schedules"][0]["schedule"]["cron"] == "0 7 * * 1" and moved["schedules"][0]["active"] is False


def test_status_and_the_pull_request_comment_say_which_environment(two):
    repo, chapctl, staging, _ = two
    assert cli(chapctl, repo, "apply", environment="staging").returncode == 0
    status = cli(chapctl, repo, "status", "--format", "json", environment="staging")
    assert status.returncode == 0, status.stdout + status.stderr
    doc = json.loads(status.stdout)
    assert doc["environment"] == "staging" and doc["owner"] == "moh-staging"
    assert {p["sync"] for p in doc["projects"]} == {"in_sync"}
    assert {p["schedule"]["state"] for p in doc["projects"]} == {"paused"}
    md = cli(chapctl, repo, "plan", "--format", "markdown", environment="production").stdout
    assert f"at `{chapctl.env['PRODUCTION_PREFECT_API_URL']}` — environment `production` — owner `moh`" in md


def test_a_saved_plan_applies_only_to_its_own_environment(two, tmp_path):
    repo, chapctl, staging, production = two
    saved = tmp_path / "staging.plan.json"
    assert cli(chapctl, repo, "plan", "--out", str(saved), environment="staging").returncode == 0
    proc = cli(chapctl, repo, "apply", str(saved), environment="production")
    assert proc.returncode == 1
    assert "the plan was made for environment 'staging'; this apply is for environment 'production'" in proc.stderr
    assert all_deployments(production) == [] and all_deployments(staging) == []
    proc = cli(chapctl, repo, "apply", str(saved), environment="staging")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(all_deployments(staging)) == 2 and all_deployments(production) == []


def test_an_environment_reads_only_the_variables_it_names(two):
    repo, chapctl, _, _ = two
    env = {k: v for k, v in chapctl.env.items() if k != "STAGING_PREFECT_API_URL"}
    proc = chapctl.cli(repo, "plan", "--env", "staging", env=env)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert "STAGING_PREFECT_API_URL is not set: environment 'staging' reads its Prefect server's API URL" in proc.stderr


def test_two_environments_on_one_server_never_take_each_others_objects(two):
    """Both environments pointed at one server (a mistake, or a server shared on purpose): the
    second is refused for every object the first owns, and writes nothing."""
    repo, chapctl, _, production = two
    chapctl.env["STAGING_PREFECT_API_URL"] = production.api_url
    assert cli(chapctl, repo, "apply", environment="production").returncode == 0
    before = updated_stamps(production)
    plan = cli(chapctl, repo, "plan", environment="staging")
    assert plan.returncode == 1
    blocked = [line for line in plan.stdout.splitlines() if line.startswith("blocked:")]
    assert blocked and all("owner 'moh'" in line for line in blocked), plan.stdout
    proc = cli(chapctl, repo, "apply", environment="staging")
    assert proc.returncode == 1 and "chapctl owner 'moh'" in proc.stderr and "nothing was written" in proc.stderr
    assert updated_stamps(production) == before
    assert {owner_tags(d)[0] for d in all_deployments(production)} == {"chapctl-owner:moh"}


def test_an_environments_credentials_come_from_the_variable_it_names(make_repo, clean_special_server):
    """The server with basic auth as staging: its user:password from STAGING_AUTH, never from
    PREFECT_API_AUTH_STRING (set here to production's, wrong for this server)."""
    environments = {"staging": {"api_url_env": "STAGING_URL", "auth_string_env": "STAGING_AUTH"}}
    repo = make_repo(PROJECTS[:1], {**DEFAULTS, "environments": environments})
    env = {"STAGING_URL": clean_special_server.api_url, "STAGING_AUTH": AUTH_STRING,
           "PREFECT_API_URL": clean_special_server.api_url, "PREFECT_API_AUTH_STRING": "admin:production-password",
           "CHAPCTL_FLOWS_DIR": str(repo.root), **PASSWORDS}
    chapctl = Chapctl(clean_special_server, env)
    proc = chapctl.cli(repo, "apply", "--env", "staging")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert AUTH_CANARY not in proc.stdout + proc.stderr
    wrong = chapctl.cli(repo, "plan", "--env", "staging", env={**env, "STAGING_AUTH": "admin:wrong"})
    assert wrong.returncode == 1 and ("the server refused the user:password in STAGING_AUTH (environment 'staging')"
                                      in wrong.stderr), wrong.stderr
    none = chapctl.cli(repo, "plan", "--env", "staging", env={**env, "STAGING_AUTH": ""})
    assert none.returncode == 1 and ("authentication is required; set STAGING_AUTH (named by environment 'staging' "
                                     "in projects/_defaults.yaml)") in none.stderr, none.stderr


def test_an_environments_server_is_found_in_the_ci_secrets_map(two):
    """chapctl-apply.yml's production jobs hand over every secret as CHAPCTL_SECRETS: the
    environment's URL variable is read from it by name, like a password."""
    repo, chapctl, _, production = two
    env = {k: v for k, v in chapctl.env.items() if k != "PRODUCTION_PREFECT_API_URL" and k not in PASSWORDS}
    env["CHAPCTL_SECRETS"] = json.dumps({"PRODUCTION_PREFECT_API_URL": production.api_url, **PASSWORDS})
    proc = chapctl.cli(repo, "apply", "--env", "production", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(all_deployments(production)) == 2


def test_two_environments_as_one_owner_on_one_server_are_caught_by_the_commit_record(make_repo, clean_server):
    """Validation cannot see that two variables hold one server's URL: two environments without
    their own owner_suffix would then take over each other's objects. The owner's commit record
    names the environment last applied, and apply for another one is refused."""
    environments = {"first": {"api_url_env": "FIRST_URL"}, "second": {"api_url_env": "SECOND_URL", "schedules": "paused"}}
    repo = make_repo(PROJECTS[:1], {**DEFAULTS, "owner": "moh", "environments": environments})
    env = {"FIRST_URL": clean_server.api_url, "SECOND_URL": clean_server.api_url, "CHAPCTL_FLOWS_DIR": str(repo.root),
           **PASSWORDS}
    chapctl = Chapctl(clean_server, env)
    assert chapctl.cli(repo, "apply", "--env", "first").returncode == 0
    before = updated_stamps(clean_server)
    plan = chapctl.cli(repo, "plan", "--env", "second")
    assert "warning: apply from this checkout would refuse: owner 'moh' was last applied to this server for " \
           "environment 'first'; this apply is for environment 'second'" in plan.stdout, plan.stdout
    proc = chapctl.cli(repo, "apply", "--env", "second")
    assert proc.returncode == 1 and "it would take over that environment's objects" in proc.stderr, proc.stderr
    assert updated_stamps(clean_server) == before
    assert [s["active"] for s in all_deployments(clean_server)[0]["schedules"]] == [True]
    # On purpose: the server moves to `second`, which it then is.
    assert chapctl.cli(repo, "apply", "--env", "second", "--ignore-applied-commit").returncode == 0
    assert [s["active"] for s in all_deployments(clean_server)[0]["schedules"]] == [False]
    assert chapctl.cli(repo, "apply", "--env", "second").returncode == 0
    assert chapctl.cli(repo, "apply", "--env", "first").returncode == 1
