"""Environments laid over the compiled artifacts (compiler/compile/environments.py, reconcile.desired)
and the server an environment names (ApiSettings.for_environment): pure, on a golden case's files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from compiler.compile.artifact import read_prefect_yaml
from compiler.compile.environments import overlay, select
from compiler.compile.load import parse_artifact
from compiler.errors import BadUsage, ServerError
from compiler.reconcile.client import ApiSettings, PrefectAPI
from compiler.reconcile.desired import load_desired
from compiler.reconcile.facts import Facts
from compiler.reconcile.live import Live
from compiler.reconcile.plan import plan

GOLDEN = Path(__file__).resolve().parents[1] / "plan_golden"
CASE = GOLDEN / "cases" / "automation_edited_in_ui_is_reverted"  # instance limits, alerts, a notification
STAGING = """\
  environments:
  - name: staging
    owner: default-staging
    api_url_env: STAGING_URL
    auth_string_env: STAGING_AUTH
    work_pool: chap-staging
    schedules: paused
    notifications:
    - block_type_slug: custom-webhook
      name: ops-webhook
      data:
        name: ops-webhook
        url: "{{url}}"
        method: POST
        json_data:
          subject: "{{subject}}"
          body: "{{body}}"
      secret_env:
        secrets.url: STAGING_HOOK_URL
  - name: production
    owner: default
    api_url_env: PRODUCTION_URL
    schedules: active
"""


@pytest.fixture
def desired_dir(tmp_path) -> Path:
    target = shutil.copytree(CASE / "desired", tmp_path / "desired")
    text = (target / "prefect.yaml").read_text()
    (target / "prefect.yaml").write_text(text.replace("  owner: default\n", "  owner: default\n" + STAGING, 1))
    return target


def load(root: Path, environment: str | None):
    facts = Facts.from_json(json.loads((GOLDEN / "facts.json").read_text()))
    env = json.loads((CASE / "env.json").read_text())
    return load_desired(root, env, facts=facts, environment=environment)


def test_staging_is_laid_over_every_deployment_limit_and_notification(desired_dir):
    base, staging = load(desired_dir, None), load(desired_dir, "staging")
    assert base.owner == "default" and base.environment is None
    assert staging.owner == "default-staging" and staging.environment.name == "staging"
    for d in staging.deployments:
        assert "chapctl-owner:default-staging" in d.tags and "chapctl-owner:default" not in d.tags
        assert d.work_pool == "chap-staging" and not any(s.active for s in d.schedules)
        assert d.fingerprint.startswith("chapctl:default-staging:")
    assert {d.parameters.get("chap_concurrency_limit") for d in staging.deployments} == {
        "chapctl-default-staging--laos-dhis2", None}
    assert [c.name for c in staging.concurrency_limits] == ["chapctl-default-staging--laos-dhis2"]
    assert staging.work_pools == ["chap-staging"]
    hook = next(b for b in staging.blocks if b.name == "ops-webhook")
    assert hook.secret_env == {"secrets.url": "STAGING_HOOK_URL"} and hook.secret_digests == {"secrets.url": None}
    assert next(b for b in base.blocks if b.name == "ops-webhook").secret_env == {"secrets.url": "OPS_WEBHOOK_URL"}
    # An environment without changes is the projects as declared, fingerprints and all.
    production = load(desired_dir, "production")
    assert [d.fingerprint for d in production.deployments] == [d.fingerprint for d in base.deployments]
    assert production.owner == "default"


def test_on_one_server_an_environment_never_takes_another_owners_objects(desired_dir):
    """The golden live state is owner `default`'s: staging's plan refuses every clash and neither
    changes nor prunes one of default's deployments, limits, automations or claimed blocks."""
    live = Live.from_json(json.loads((CASE / "live.json").read_text()))
    # As staging's reads find them: automations by its owner tag, limits by its name prefix (none here).
    live.automations = [a for a in live.automations if "chapctl-owner:default-staging" in a["tags"]]
    live.concurrency_limits = [c for c in live.concurrency_limits if c["name"].startswith("chapctl-default-staging--")]
    p = plan(load(desired_dir, "staging"), live)
    assert p.blockers and all("owner 'default'" in b or "chapctl owner 'default'" in b for b in p.blockers)
    owned = {d["id"] for d in live.deployments} | {a["id"] for a in live.automations} | {
        c["id"] for c in live.concurrency_limits} | {b["id"] for b in live.block_documents}
    touched = [r.to_json()["path"] for a in p.actions if a.writes for r in a.requests
               if any(i in r.to_json()["path"] for i in owned)]
    assert touched == []


def test_a_name_no_file_declares_is_a_usage_error_naming_the_declared_ones(desired_dir):
    with pytest.raises(BadUsage, match=r"unknown environment 'stagin' \(--env or CHAPCTL_ENV\): prefect.yaml .* "
                                       r"declares 'staging', 'production'; did you mean 'staging'\?"):
        load(desired_dir, "stagin")
    with pytest.raises(BadUsage, match="declares no environments"):
        load(CASE / "desired", "staging")
    assert select(["staging"], "") is None and select([], None) is None  # an empty CHAPCTL_ENV: none


def test_overlay_of_no_environment_is_the_file_itself(desired_dir):
    compiled = read_prefect_yaml(parse_artifact((desired_dir / "prefect.yaml").read_text(), "prefect.yaml"))
    assert overlay(compiled, None) is compiled
    assert [e.name for e in compiled.environments] == ["staging", "production"]


# -- the server an environment names ---------------------------------------------------------------
def _spec(**fields):
    compiled = read_prefect_yaml({"chapctl": {"environments": [{"name": "staging", "owner": "o-staging",
                                                                "api_url_env": "STAGING_URL", **fields}]}})
    return compiled.environments[0]


def test_an_environment_reads_its_server_only_from_the_variables_it_names():
    env = {"STAGING_URL": "https://staging.example.org/api/", "PREFECT_API_URL": "https://prod.example.org/api",
           "PREFECT_API_AUTH_STRING": "admin:production-password", "PREFECT_API_KEY": "pnu_production"}
    settings = ApiSettings.for_environment(_spec(), env)
    assert settings.url == "https://staging.example.org/api"
    assert settings.auth_string is None and settings.api_key is None  # production's credentials never sent
    assert settings.url_source == "STAGING_URL (environment 'staging')"
    settings = ApiSettings.for_environment(_spec(auth_string_env="STAGING_AUTH"),
                                           {**env, "STAGING_AUTH": "admin:staging-password"})
    assert settings.auth_string == "admin:staging-password" and settings.auth_source.startswith("STAGING_AUTH")
    api = PrefectAPI(settings)
    assert "staging-password" in api._secrets  # scrubbed from any error message, as PREFECT_API_AUTH_STRING is
    api.close()
    key = ApiSettings.for_environment(_spec(api_key_env="STAGING_KEY"), {**env, "STAGING_KEY": "pnu_staging"})
    assert key.api_key == "pnu_staging" and key.auth_string is None
    inline = ApiSettings.for_environment(_spec(), {"STAGING_URL": "https://u:p%40ss@staging.example.org/api"})
    assert inline.url == "https://staging.example.org/api" and inline.auth_string == "u:p@ss"
    # A credentials variable left empty (CI passes the one of the auth it does not use as ""): none sent,
    # and a 401 names the variables to set.
    unset = ApiSettings.for_environment(_spec(auth_string_env="STAGING_AUTH", api_key_env="STAGING_KEY"),
                                        {"STAGING_URL": "https://s.example.org/api", "STAGING_AUTH": ""})
    assert unset.auth_string is None and unset.api_key is None and unset.auth_source is None
    assert unset.auth_hint == "STAGING_AUTH or STAGING_KEY (named by environment 'staging' in projects/_defaults.yaml)"


@pytest.mark.parametrize(("fields", "env", "message"), [
    ({}, {"PREFECT_API_URL": "https://prod.example.org/api"},
     "STAGING_URL is not set: environment 'staging' reads its Prefect server's API URL from it"),
    ({}, {"STAGING_URL": "ftp://staging.example.org"}, "STAGING_URL (environment 'staging') is not a usable URL"),
])
def test_an_environments_server_settings_must_be_set(fields, env, message):
    with pytest.raises(ServerError) as caught:
        ApiSettings.for_environment(_spec(**fields), env)
    assert str(caught.value).startswith(message)
