"""Secrets in CI: a pull request's plan needs no password; apply finds every password by name in
one `CHAPCTL_SECRETS` map (JSON, as GitHub's `toJSON(secrets)` gives it, or dotenv lines)."""

from __future__ import annotations

import json

import pytest

from tests.server.conftest import CANARY, PASSWORDS, all_deployments, block_documents
from tests.server.repo import DEFAULTS, project

pytestmark = pytest.mark.server

NEW_COUNTRY = [project("laos-malaria", "laos-dhis2"), project("kenya-malaria", "kenya-dhis2")]


def test_a_new_countrys_password_fails_plan_unless_apply_will_have_it(chapctl, make_repo, clean_server):
    """Issue 25 #6: plan warned and exited 2 while apply refused (a green pull request before a red
    apply). Now a blocker, unless the names of apply's secrets include it (what the PR check is
    given instead of the secrets) or the repository allows it unset (`ci.allow_unset`)."""
    repo = make_repo(NEW_COUNTRY)
    env = {k: v for k, v in chapctl.env.items() if k != "KENYA_DHIS2_PASSWORD"}
    proc = chapctl.cli(repo, "plan", "--detailed-exitcode", env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "blocked: apply will need KENYA_DHIS2_PASSWORD: block 'kenya-dhis2' is created" in proc.stdout
    assert "nor named in CHAPCTL_SECRET_NAMES" in proc.stdout and "warning:" not in proc.stdout
    doc = json.loads(chapctl.cli(repo, "plan", "--json", env=env).stdout)
    assert len(doc["blockers"]) == 1 and doc["missing_env"] == []
    md = chapctl.cli(repo, "plan", "--markdown", env=env).stdout
    assert ":no_entry: **Apply would refuse:**" in md and "apply will need KENYA_DHIS2_PASSWORD" in md
    # The pull request's check knows the names of the repository's secrets, never their values.
    named = dict(env, CHAPCTL_SECRET_NAMES="GITHUB_TOKEN,KENYA_DHIS2_PASSWORD,LAOS_DHIS2_PASSWORD")
    proc = chapctl.cli(repo, "plan", "--detailed-exitcode", env=named)
    assert proc.returncode == 2, proc.stdout + proc.stderr  # changes pending; nothing missing
    assert "blocked:" not in proc.stdout and "warning:" not in proc.stdout
    # The repository may say otherwise: a warning, as before.
    repo.write_defaults({**DEFAULTS, "ci": {"allow_unset": ["KENYA_DHIS2_PASSWORD"]}})
    repo.compile()
    proc = chapctl.cli(repo, "plan", "--detailed-exitcode", env=env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "warning: apply will need KENYA_DHIS2_PASSWORD" in proc.stdout and "ci.allow_unset" in proc.stdout
    # apply itself refuses either way: it cannot create the block without its password.
    proc = chapctl.cli(repo, "apply", env=named)
    assert proc.returncode == 1 and "KENYA_DHIS2_PASSWORD" in proc.stderr and "nothing was written" in proc.stderr
    assert all_deployments(clean_server) == []


@pytest.mark.parametrize("form", ["json", "dotenv"])
def test_apply_reads_every_password_from_one_secrets_map(form, chapctl, make_repo, clean_server):
    repo = make_repo(NEW_COUNTRY)
    secrets = {"LAOS_DHIS2_PASSWORD": PASSWORDS["LAOS_DHIS2_PASSWORD"], "KENYA_DHIS2_PASSWORD": CANARY + "-kenya",
               "GITHUB_TOKEN": "ghs_unrelated", "PREFECT_API_URL": "ignored-here"}
    text = json.dumps(secrets) if form == "json" else "".join(f"{k}={v}\n" for k, v in secrets.items())
    env = {k: v for k, v in chapctl.env.items() if not k.endswith("_PASSWORD")}
    env["CHAPCTL_SECRETS"] = text
    for args in (["plan"], ["apply"], ["plan", "--json"]):
        proc = chapctl.cli(repo, *args, env=env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert CANARY not in proc.stdout + proc.stderr
    blocks = {b["name"]: b["data"]["password"] for b in block_documents(clean_server, include_secrets=True)}
    assert blocks == {"laos-dhis2": PASSWORDS["LAOS_DHIS2_PASSWORD"], "kenya-dhis2": CANARY + "-kenya"}
    # The environment wins over the map; a rotated secret in the map is seen as rotated.
    rotated = dict(secrets, KENYA_DHIS2_PASSWORD=CANARY + "-kenya-2")
    env["CHAPCTL_SECRETS"] = json.dumps(rotated)
    doc = json.loads(chapctl.cli(repo, "plan", "--json", env=env).stdout)
    assert [a["name"] for a in doc["actions"] if a["op"] != "noop"] == ["kenya-dhis2"]


def test_a_malformed_secrets_map_is_one_line_that_never_shows_it(chapctl, make_repo, clean_server):
    repo = make_repo(NEW_COUNTRY)
    env = {k: v for k, v in chapctl.env.items() if not k.endswith("_PASSWORD")}
    env["CHAPCTL_SECRETS"] = '{"KENYA_DHIS2_PASSWORD": "' + CANARY
    proc = chapctl.cli(repo, "apply", env=env)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "CHAPCTL_SECRETS" in proc.stderr
    assert CANARY not in proc.stderr + proc.stdout and "Traceback" not in proc.stderr


def test_plan_markdown_lists_the_load_warnings(chapctl, make_repo, clean_server):
    crowd = [project(f"crowd-{i}", "laos-dhis2", cron="0 2 1 * *", timezone="UTC") for i in range(5)]
    repo = make_repo(crowd)
    md = chapctl.cli(repo, "plan", "--markdown").stdout
    assert ":warning: **Load warnings of the compiled projects (1)**" in md
    assert "5 runs start 02:00-02:59 UTC on day 1 of every month against laos-dhis2.example.org" in md
