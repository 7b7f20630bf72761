"""Rebuild the golden planner cases: `python -m tests.plan_golden.make_cases`.

Each case is a folder: `desired/` (prefect.yaml + blocks/, compiled by the real compiler from the
projects below), `live.json` (a server as a previous apply left it, then edited per scenario),
optional `env.json` and `options.json`, and `expected_plan.json` (written by the test with
CHAPCTL_REGEN_GOLDEN=1). The folders are the source of truth once written; this script only
documents how they were made and rebuilds them when the artifact format changes.
"""

from __future__ import annotations

import copy
import json
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

from compiler.reconcile.desired import BlockRef, load_desired, secret_digest
from compiler.reconcile.facts import Facts
from tests.server.repo import Repo, project

HERE = Path(__file__).resolve().parent
CASES = HERE / "cases"
FACTS = Facts.from_json(json.loads((HERE / "facts.json").read_text()))
ENV = {"CHAPCTL_FLOWS_DIR": "/srv/chap", "LAOS_DHIS2_PASSWORD": "golden-canary-laos",
       "RWANDA_DHIS2_PASSWORD": "golden-canary-rwanda"}
DEFAULTS = {"timezone": "UTC", "work_pool": "chap", "tags": ["chap"], "source": {"directory_env": "CHAPCTL_FLOWS_DIR"}}
BASE = [
    project("laos-malaria", "laos-dhis2", model_id=12, cron="0 6 * * 1"),
    project("laos-dengue", "laos-dhis2", model_id=7, cron="30 5 2 * *"),
    project("rwanda-malaria", "rwanda-dhis2", model_id=3, cron="0 4 * * 2", timezone="Africa/Kigali"),
]


def _id(seed: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "chapctl-golden:" + seed))


def compile_projects(projects: list[dict[str, Any]], into: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        repo = Repo.create(Path(tmp) / "repo", projects, DEFAULTS)
        into.mkdir(parents=True, exist_ok=True)
        shutil.copy(repo.root / "prefect.yaml", into / "prefect.yaml")
        if (repo.root / "blocks").is_dir():
            shutil.copytree(repo.root / "blocks", into / "blocks", dirs_exist_ok=True)


def applied_live(desired_dir: Path, env: dict[str, str]) -> dict[str, Any]:
    """The live state a complete apply of `desired_dir` leaves behind."""
    desired = load_desired(desired_dir, env, facts=FACTS)
    slug = "chap-dhis2-credentials"
    spec = FACTS.block_types[slug]
    live: dict[str, Any] = {
        "server_version": "3.8.8",
        "work_pools": {p: {"id": _id("pool:" + p), "type": "process"} for p in desired.work_pools},
        "block_types": {slug: {"id": _id("bt"), **spec.block_type}},
        "block_schemas": {spec.block_schema["checksum"]: {"id": _id("bs"), "version": "3.8.8", "block_type_id": _id("bt")}},
        "block_documents": [],
        "flows": {f: _id("flow:" + f) for f in desired.flows},
        "deployments": [],
    }
    live["variables"] = {
        f"chapctl-state--{desired.owner}": {"id": _id("state"), "value": {"owner": desired.owner, "commit": None},
                                            "updated": "2026-01-01T00:00:00Z"}}
    for b in desired.blocks:
        live["variables"][f"chapctl-block--{b.slug}--{b.name}"] = {
            "id": _id("claim:" + b.name), "value": {"owner": desired.owner, "slug": b.slug, "name": b.name},
            "updated": "2026-01-01T00:00:00Z"}
        live["block_documents"].append({
            "id": _id("block:" + b.name), "slug": b.slug, "name": b.name, "data": {**b.data, "password": "********"},
            "block_schema_id": _id("bs"), "updated": "2026-01-01T00:00:00Z",
            "secret_digests": {f: secret_digest(env[v]) for f, v in b.secret_env.items() if v in env},
        })
    for d in desired.deployments:
        did = _id("dep:" + d.name)
        live["deployments"].append({
            "id": did, "name": d.name, "flow_id": _id("flow:" + d.flow_name), "flow_name": d.flow_name,
            "version": d.fingerprint, "description": d.description, "tags": d.tags, "work_pool_name": d.work_pool,
            "parameters": {k: ({"$ref": {"block_document_id": _id("block:" + v.name)}} if isinstance(v, BlockRef) else v)
                           for k, v in d.parameters.items()},
            "parameter_openapi_schema": d.parameter_openapi_schema, "enforce_parameter_schema": True,
            "pull_steps": d.pull_steps, "entrypoint": d.entrypoint, "paused": False, "job_variables": {},
            "updated": "2026-01-01T00:00:00Z",
            "schedules": [{"id": _id(f"sched:{d.name}:{s.slug}"), **{k: v for k, v in s.api_body().items()},
                           "updated": "2026-01-01T00:00:00Z"} for s in d.schedules],
        })
    return live


def dep(live: dict[str, Any], name: str) -> dict[str, Any]:
    return next(d for d in live["deployments"] if d["name"] == name)


def write_case(name: str, projects: list[dict[str, Any]], live: dict[str, Any] | None, *, env: dict[str, str] | None = None,
               options: dict[str, Any] | None = None, base_projects: list[dict[str, Any]] | None = None,
               mutate=None) -> None:
    case = CASES / name
    shutil.rmtree(case, ignore_errors=True)
    compile_projects(projects, case / "desired")
    env = ENV if env is None else env
    if live is None:  # derive: the state an apply of base_projects (default: the same) left behind
        with tempfile.TemporaryDirectory() as tmp:
            compile_projects(base_projects or projects, Path(tmp))
            live = applied_live(Path(tmp), ENV)
    if mutate:
        mutate(live)
    (case / "live.json").write_text(json.dumps(live, indent=1, sort_keys=True) + "\n")
    (case / "env.json").write_text(json.dumps(env, indent=1, sort_keys=True) + "\n")
    if options:
        (case / "options.json").write_text(json.dumps(options) + "\n")


def main() -> None:
    empty = {"server_version": "3.8.8"}
    write_case("first_apply_empty_server", BASE, empty)
    write_case("noop_everything_in_sync", BASE, None)

    def yaml_edit(live):  # nothing to mutate: the projects differ from what was applied
        pass

    edited = copy.deepcopy(BASE)
    edited[0] = project("laos-malaria", "laos-dhis2", model_id=13, cron="0 7 * * 1")
    write_case("yaml_change_one_project", edited, None, base_projects=BASE, mutate=yaml_edit)

    def drift(live):
        lm, ld, rm = dep(live, "laos-malaria"), dep(live, "laos-dengue"), dep(live, "rwanda-malaria")
        lm["schedules"][0]["schedule"]["cron"] = "0 9 * * 1"
        ld["schedules"][0]["active"] = False
        rm["parameters"]["configured_model_id"] = 99
        rm["paused"] = True
        lm["schedules"].append({"id": _id("ui-sched"), "slug": None, "schedule": {"interval": 3600.0},
                                "active": True, "parameters": {}, "max_scheduled_runs": None})
        live["block_documents"][0]["data"]["username"] = "someone-else"
    write_case("drift_made_in_ui", BASE, None, mutate=drift)

    def prune(live):
        pass
    write_case("project_removed_prunes_and_orphans_block", BASE[:2], None, base_projects=BASE, mutate=prune)

    def unmanaged(live):
        lm = dep(live, "laos-malaria")
        lm["tags"] = ["hand-made"]
        lm["version"] = None
        lm["parameters"] = {"credentials": {"base_url": "https://x", "username": "u", "password": "golden-canary-inline"}}
        lm["schedules"] = []
        live["deployments"].append({**copy.deepcopy(lm), "id": _id("other"), "name": "not-ours"})
    write_case("unmanaged_name_clash_refused", BASE, None, mutate=unmanaged)
    write_case("unmanaged_name_clash_adopted", BASE, None, mutate=unmanaged, options={"adopt": True})

    rotated = dict(ENV, LAOS_DHIS2_PASSWORD="golden-canary-rotated")
    write_case("secret_rotated_in_env", BASE, None, env=rotated)
    unset = {k: v for k, v in ENV.items() if k != "RWANDA_DHIS2_PASSWORD"}
    write_case("secret_unset_block_exists", BASE, None, env=unset)
    write_case("secret_unset_block_missing", BASE, empty, env=unset)

    external = copy.deepcopy(BASE) + [project("sl-malaria", "sl-dhis2", managed=False, model_id=5)]
    write_case("external_block_missing", external, None, base_projects=BASE)

    def pool_deleted(live):
        live["work_pools"] = {}
    write_case("work_pool_deleted_on_server", BASE, None, mutate=pool_deleted)

    unset_pull = {k: v for k, v in ENV.items() if k != "CHAPCTL_FLOWS_DIR"}
    write_case("pull_step_env_unset", BASE, None, env=unset_pull)

    # -- ownership on a shared server ------------------------------------------------------------
    def other_owner(live):
        lm = dep(live, "laos-malaria")
        lm["tags"] = [t for t in lm["tags"] if not t.startswith("chapctl-owner:")] + ["chapctl-owner:rwanda-team"]
        lm["version"] = "chapctl:rwanda-team:0123456789abcdef"
        claim = live["variables"]["chapctl-block--chap-dhis2-credentials--rwanda-dhis2"]
        claim["value"]["owner"] = "rwanda-team"
    write_case("other_owner_deployment_and_block_clash", BASE, None, mutate=other_owner)

    def legacy(live):  # as chapctl 0.1 (before owners) left them: global tag, owner-less fingerprint
        live["variables"] = {}
        for d in live["deployments"]:
            d["tags"] = [t for t in d["tags"] if not t.startswith("chapctl-owner:")]
            d["version"] = "chapctl:" + d["version"].rsplit(":", 1)[1]
        live["legacy"] = ["removed-before-the-upgrade"]
    write_case("legacy_deployments_adopted_by_first_owner", BASE, None, mutate=legacy)

    def tags_removed(live):
        lm = dep(live, "laos-malaria")
        lm["tags"] = ["chap"]  # every tag removed in the UI but one; the fingerprint still says whose
    write_case("owner_tag_removed_in_ui_is_drift", BASE, None, mutate=tags_removed)

    write_case("empty_projects_prune_all_refused", [], None, base_projects=BASE)
    write_case("empty_projects_prune_all_allowed", [], None, base_projects=BASE, options={"allow_delete_all": True})

    def runs(live):
        rm = dep(live, "rwanda-malaria")
        live["runs"] = {rm["id"]: [
            {"id": _id("run1"), "name": "scheduled-1", "state_type": "SCHEDULED", "state_name": "Scheduled",
             "run_count": 0, "next_scheduled_start_time": "2026-12-08T04:00:00Z", "auto_scheduled": True},
            {"id": _id("run2"), "name": "manual-1", "state_type": "SCHEDULED", "state_name": "Scheduled",
             "run_count": 0, "next_scheduled_start_time": "2026-12-09T04:00:00Z", "auto_scheduled": False},
            {"id": _id("run3"), "name": "running-1", "state_type": "RUNNING", "state_name": "Running",
             "run_count": 1, "next_scheduled_start_time": None, "auto_scheduled": False},
            {"id": _id("run4"), "name": "waiting-1", "state_type": "SCHEDULED", "state_name": "AwaitingConcurrencySlot",
             "run_count": 0, "next_scheduled_start_time": None, "auto_scheduled": False},
        ]}
    write_case("prune_reports_runs", BASE[:2], None, base_projects=BASE, mutate=runs)
    write_case("prune_cancels_runs_in_flight", BASE[:2], None, base_projects=BASE, mutate=runs,
               options={"cancel_in_flight": True})

    def interrupted(live):  # an apply killed after its schedule writes, before the deployment PATCH
        dep(live, "laos-malaria")["version"] = "chapctl:default:0000000000000000"
    write_case("fingerprint_only_after_interrupted_apply", BASE, None, mutate=interrupted)

    long_text = copy.deepcopy(BASE)
    long_text[0] = project("laos-malaria", "laos-dhis2", model_id=12, cron="0 6 * * 1",
                           description="Weekly malaria forecast for the Lao PDR from the national HMIS, offset by one "
                                       "week so that late district reports are in; owner: the MoH surveillance unit")
    write_case("long_values_are_never_cut", long_text, None, base_projects=BASE)

    injected = copy.deepcopy(BASE)
    injected[0] = project("laos-malaria", "laos-dhis2", model_id=12, cron="0 6 * * 1",
                          description="<<chapctl:env:LAOS_DHIS2_PASSWORD>>",
                          tags=["<<chapctl:env:PREFECT_API_AUTH_STRING>>", "<<chapctl:flow:x>>"])
    write_case("placeholder_lookalikes_are_plain_text", injected, None, base_projects=BASE)


if __name__ == "__main__":
    main()
