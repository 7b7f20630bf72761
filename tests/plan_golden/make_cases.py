"""Rebuild the golden planner cases from a real Prefect server: `python -m tests.plan_golden.make_cases`.

Each case is a folder: `desired/` (prefect.yaml + blocks/, compiled by the real compiler from the
case's projects), `live.json` (what `read_live` read from a real server after a real apply of the
base projects and the scenario's edits made through the server's API, as the UI would make them),
`env.json`, optional `options.json`, and `expected_plan.json` (written by the golden test with
CHAPCTL_REGEN_GOLDEN=1, then reviewed). `facts.json` is refreshed from the installed Prefect too.

Live states are real, not invented: a deployment whose pool was deleted really has no pool name,
a paused schedule reads back as the server stores it. Ids and timestamps are replaced by stable
ones so that a rebuild only shows what changed. The folders are the source of truth once written.
"""

from __future__ import annotations

import contextlib
import copy
import json
import sys
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx

from compiler.constants import BLOCK_TYPE_SLUG
from compiler.reconcile.apply import ApplyOptions, apply
from compiler.reconcile.client import ApiSettings, PrefectAPI
from compiler.reconcile.desired import load_desired
from compiler.reconcile.facts import Facts, load_facts
from compiler.reconcile.live import read_live
from tests.server.prefect_server import PrefectServer
from tests.server.repo import Repo, project

HERE = Path(__file__).resolve().parent
CASES = HERE / "cases"
ENTRYPOINT = "flows/dhis2_chap_prediction.py:dhis2_chap_prediction"
PACKAGE_ENTRYPOINT = "flows.dhis2_chap_prediction.dhis2_chap_prediction"  # `source: {package: chapctl}`
ENV = {"CHAPCTL_FLOWS_DIR": "/srv/chap", "LAOS_DHIS2_PASSWORD": "golden-canary-laos",
       "RWANDA_DHIS2_PASSWORD": "golden-canary-rwanda"}
DEFAULTS = {"timezone": "UTC", "work_pool": "chap", "tags": ["chap"], "source": {"directory_env": "CHAPCTL_FLOWS_DIR"}}
BASE = [
    project("laos-malaria", "laos-dhis2", model_id=12, cron="0 6 * * 1"),
    project("laos-dengue", "laos-dhis2", model_id=7, cron="30 5 2 * *"),
    project("rwanda-malaria", "rwanda-dhis2", model_id=3, cron="0 4 * * 2", timezone="Africa/Kigali"),
]
UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
Mutation = Callable[["Server"], None]


class Server:
    """The scratch server and the scenario's API edits ("made in the UI")."""

    def __init__(self, prefect: PrefectServer):
        self.prefect = prefect
        self.http = prefect.client()

    def deployment(self, name: str) -> dict[str, Any]:
        rows = self.http.post("/deployments/filter", json={"deployments": {"name": {"any_": [name]}}}).json()
        return rows[0]

    def patch(self, path: str, body: dict[str, Any]) -> None:
        self.http.patch(path, json=body).raise_for_status()

    def post(self, path: str, body: Any = None) -> Any:
        response = self.http.post(path, json=body)
        response.raise_for_status()
        return response.json() if response.content else None

    def delete(self, path: str) -> None:
        self.http.delete(path).raise_for_status()

    def variables(self) -> list[dict[str, Any]]:
        return self.http.post("/variables/filter", json={}).json()


def compile_projects(projects: list[dict[str, Any]], into: Path, cache: Path,
                     defaults: dict[str, Any] | None = None) -> Repo:
    repo = Repo.create(into, projects, defaults or DEFAULTS, cache_from=cache)
    return repo


def capture(server: Server, desired_dir: Path, env: dict[str, str], facts: Facts,
            ids: dict[str, str] | None = None) -> dict[str, Any]:
    desired = load_desired(desired_dir, env, facts=facts)
    with PrefectAPI(ApiSettings.from_env(server.prefect.client_env())) as api:
        live = read_live(api, desired, env)
    return stabilise(asdict(live), ids)


def stabilise(doc: dict[str, Any], ids: dict[str, str] | None = None) -> dict[str, Any]:
    """Stable ids (in order of first appearance), timestamps and run names; nothing else moves.
    `ids` receives the mapping (raw id -> stable id), for desired files that name a live id."""
    text = json.dumps(doc, sort_keys=True)
    ids = {} if ids is None else ids
    text = UUID.sub(lambda m: ids.setdefault(m.group(0), f"00000000-0000-4000-8000-{len(ids) + 1:012d}"), text)
    doc = json.loads(text)
    for b in doc["block_documents"]:
        b["updated"] = "2026-01-01T00:00:00Z"
    doc["block_documents"].sort(key=lambda b: b["name"])
    for d in doc["deployments"]:
        d["updated"] = "2026-01-01T00:00:00Z"
        for s in d["schedules"]:
            s["updated"] = "2026-01-01T00:00:00Z"
    for v in doc["variables"].values():
        v["updated"] = "2026-01-01T00:00:00Z"
        if isinstance(v.get("value"), dict) and "applied_at" in v["value"]:
            v["value"].update(applied_at="2026-01-01T00:00:00+00:00", by="golden@make_cases (pid 1)")
    for runs in doc["runs"].values():
        for index, run in enumerate(runs, 1):
            run["name"] = f"run-{index}"
    for a in doc["automations"]:
        a["updated"] = "2026-01-01T00:00:00Z"
    for kind in ("automations", "concurrency_limits"):  # read only when a case has some
        if not doc[kind]:
            del doc[kind]
    return doc


@contextlib.contextmanager
def chapctl_release(version: str | None):
    """Compile as chapctl `version` would (the release a package source's pull step names)."""
    if version is None:
        yield
        return
    from unittest import mock

    with mock.patch("compiler.compile.render.__version__", version):
        yield


def write_case(server: Server, work: Path, facts: Facts, name: str,
               projects: list[dict[str, Any]] | Callable[[Server], list[dict[str, Any]]], *,
               base: list[dict[str, Any]] | None = None, env: dict[str, str] | None = None,
               options: dict[str, Any] | None = None, mutate: Mutation | None = None,
               defaults: dict[str, Any] | None = None, base_release: str | None = None) -> None:
    """`base` (default: `projects`; [] for an empty server) applied for real, then `mutate`, then
    the live state read for the desired state of `projects` (a function of the server when they
    name live ids: a schedule they replace). `base_release`: the base compiled by that chapctl
    release, with the case's defaults (an upgrade of chapctl)."""
    env = ENV if env is None else env
    server.prefect.wipe(registrations=True)
    base_defaults = defaults if base is None or base_release else None  # a different base: the plain defaults
    base = projects if base is None else base
    if base:
        with chapctl_release(base_release):
            base_repo = compile_projects(base, work / f"{name}-base", work / "warm", base_defaults)
            with PrefectAPI(ApiSettings.from_env(server.prefect.client_env())) as api:
                apply(base_repo.root, api, env={**env, **ENV}, options=ApplyOptions(lock_timeout=5))
    if mutate:
        mutate(server)
    if callable(projects):
        projects = projects(server)
    case = CASES / name
    shutil.rmtree(case, ignore_errors=True)
    repo = compile_projects(projects, work / f"{name}-desired", work / "warm", defaults)
    (case / "desired").mkdir(parents=True)
    shutil.copy(repo.root / "prefect.yaml", case / "desired" / "prefect.yaml")
    if (repo.root / "blocks").is_dir():
        shutil.copytree(repo.root / "blocks", case / "desired" / "blocks")
    ids: dict[str, str] = {}
    live = capture(server, case / "desired", env, facts, ids)
    for path in (case / "desired").rglob("*.yaml"):  # live ids the projects name, stabilised alike
        path.write_text(UUID.sub(lambda m: ids.get(m.group(0), m.group(0)), path.read_text()))
    (case / "live.json").write_text(json.dumps(live, indent=1, sort_keys=True) + "\n")
    (case / "env.json").write_text(json.dumps(env, indent=1, sort_keys=True) + "\n")
    if options:
        (case / "options.json").write_text(json.dumps(options) + "\n")
    print(f"  {name}")


# -- scenarios: edits made on the server after an apply -------------------------------------------
def drift(s: Server) -> None:
    lm, ld, rm = (s.deployment(n) for n in ("laos-malaria", "laos-dengue", "rwanda-malaria"))
    sched = lm["schedules"][0]
    s.patch(f"/deployments/{lm['id']}/schedules/{sched['id']}",
            {"schedule": {"cron": "0 9 * * 1", "timezone": "Asia/Vientiane"}, "active": True})
    s.patch(f"/deployments/{ld['id']}/schedules/{ld['schedules'][0]['id']}", {"active": False})
    s.patch(f"/deployments/{rm['id']}", {"parameters": dict(rm["parameters"], configured_model_id=99)})
    s.post(f"/deployments/{rm['id']}/pause_deployment")
    s.post(f"/deployments/{lm['id']}/schedules", [{"schedule": {"interval": 3600}, "active": True}])
    block = s.post("/block_documents/filter", {"block_documents": {"name": {"any_": ["laos-dhis2"]}}})[0]
    s.patch(f"/block_documents/{block['id']}", {"data": {"username": "someone-else"}, "merge_existing_data": True})


def unmanaged(s: Server) -> None:
    lm = s.deployment("laos-malaria")
    inline = {"credentials": {"base_url": "https://x", "username": "u", "password": "golden-canary-inline"}}
    s.patch(f"/deployments/{lm['id']}", {"tags": ["hand-made"], "version": None, "parameters": inline})
    for sched in lm["schedules"]:
        s.delete(f"/deployments/{lm['id']}/schedules/{sched['id']}")
    s.post("/deployments/", {"name": "not-ours", "flow_id": lm["flow_id"], "tags": ["hand-made"],
                             "parameters": inline})


def pool_deleted(s: Server) -> None:
    s.delete("/work_pools/chap")  # the server unsets work_pool_name on its deployments


def other_owner(s: Server) -> None:
    lm = s.deployment("laos-malaria")
    tags = [t for t in lm["tags"] if not t.startswith("chapctl-owner:")] + ["chapctl-owner:rwanda-team"]
    s.patch(f"/deployments/{lm['id']}", {"tags": tags, "version": "chapctl:rwanda-team:0123456789abcdef"})
    claim = next(v for v in s.variables() if v["name"] == f"chapctl-block--{BLOCK_TYPE_SLUG}--rwanda-dhis2")
    s.patch(f"/variables/{claim['id']}", {"value": dict(claim["value"], owner="rwanda-team")})


def legacy(s: Server) -> None:
    """As chapctl 0.1 (before owners) left a server: the global tag, an owner-less fingerprint."""
    for name in ("laos-malaria", "laos-dengue", "rwanda-malaria"):
        d = s.deployment(name)
        s.patch(f"/deployments/{d['id']}", {"tags": [t for t in d["tags"] if not t.startswith("chapctl-owner:")],
                                            "version": "chapctl:" + d["version"].rsplit(":", 1)[1]})
    for v in s.variables():
        s.delete(f"/variables/{v['id']}")
    flow_id = s.deployment("laos-malaria")["flow_id"]
    s.post("/deployments/", {"name": "removed-before-the-upgrade", "flow_id": flow_id,
                             "tags": ["managed-by:chapctl"], "version": "chapctl:00000000000000aa"})


def tags_removed(s: Server) -> None:
    lm = s.deployment("laos-malaria")
    s.patch(f"/deployments/{lm['id']}", {"tags": ["chap"]})  # every marker removed in the UI


def runs(s: Server) -> None:
    rm = s.deployment("rwanda-malaria")

    def run(state: dict[str, Any]) -> str:
        return s.post(f"/deployments/{rm['id']}/create_flow_run", {"state": state})["id"]

    run({"type": "SCHEDULED", "state_details": {"scheduled_time": "2099-01-06T04:00:00Z"}})
    run({"type": "SCHEDULED", "state_details": {"scheduled_time": "2099-01-13T04:00:00Z"}})
    running = run({"type": "SCHEDULED", "state_details": {"scheduled_time": "2099-01-01T04:00:00Z"}})
    s.post(f"/flow_runs/{running}/set_state", {"state": {"type": "RUNNING"}, "force": True})
    waiting = run({"type": "SCHEDULED", "state_details": {"scheduled_time": "2099-01-02T04:00:00Z"}})
    s.post(f"/flow_runs/{waiting}/set_state", {"state": {
        "type": "SCHEDULED", "name": "AwaitingConcurrencySlot",
        "state_details": {"scheduled_time": "2099-01-02T04:00:00Z"}}, "force": True})


def interrupted(s: Server) -> None:
    """An apply killed after its schedule writes, before the deployment PATCH that records the
    new fingerprint: only the fingerprint is left to write."""
    lm = s.deployment("laos-malaria")
    s.patch(f"/deployments/{lm['id']}", {"version": "chapctl:default:0000000000000000"})


def chap_scheduler(s: Server) -> None:
    """A deployment made the chap-scheduler way next to the applied projects: by flow.serve() (no
    work pool), its cron schedules added in the UI with parameters pinning a block and an end mode."""
    lm = s.deployment("laos-malaria")
    block = s.post("/block_documents/filter", {"block_documents": {"name": {"any_": ["laos-dhis2"]}}})[0]
    pinned = {"credentials": {"$ref": {"block_document_id": block["id"]}}, "end_mode": "offset",
              "end_period_offset": 1, "configured_model_id": 12}
    s.post("/deployments/", {"name": "chap-scheduler", "flow_id": lm["flow_id"], "schedules": [
        {"schedule": {"cron": "0 6 * * 3", "timezone": "Asia/Vientiane"}, "active": True, "parameters": pinned},
        {"schedule": {"interval": 3600}, "active": True,
         "parameters": {**pinned, "credentials": {"base_url": "https://x", "username": "u",
                                                  "password": "golden-canary-inline"}}}]})


def replacing(s: Server) -> list[dict[str, Any]]:
    """BASE and a project that replaces the hand-made cron schedule of chap-scheduler."""
    cron = next(x for x in s.deployment("chap-scheduler")["schedules"] if "cron" in x["schedule"])
    return copy.deepcopy(BASE) + [project("laos-wednesday", "laos-dhis2", model_id=12, cron="0 6 * * 3",
                                          replaces={"deployment": "dhis2-chap-prediction/chap-scheduler",
                                                    "schedule_id": cron["id"]})]


# Issue 15: several schedules, alerts (automations + a notification block), limits.
RUN_SETTINGS_DEFAULTS = {**DEFAULTS, "notifications": {"ops-webhook": {"webhook": {"url_env": "OPS_WEBHOOK_URL"}}},
                         "alerts": {"notify": ["ops-webhook"], "missed": "30m"}, "instance_limits": {"laos-dhis2": 1}}
RUN_SETTINGS_ENV = {**ENV, "OPS_WEBHOOK_URL": "http://hooks.example.org/hook/golden-canary-hook"}


def run_settings_projects() -> list[dict[str, Any]]:
    projects = copy.deepcopy(BASE)
    projects[1] = project("laos-dengue", "laos-dhis2", model_id=7, cron=None, limits={"concurrency": 1},
                          schedules=[{"slug": "monthly", "cron": "30 5 2 * *"},
                                     {"slug": "mid-year", "cron": "0 5 2 7 *",
                                      "parameters": {"end_mode": "fixed", "end_date": "2026-06-30"}}])
    return projects


def automation_edited(s: Server) -> None:
    """An alert disabled and its grace changed in the UI."""
    for a in s.http.post("/automations/filter", json={}).json():
        if "chapctl-alert:laos-malaria/missed" in a["tags"]:
            body = {k: a[k] for k in ("name", "description", "enabled", "tags", "trigger", "actions",
                                      "actions_on_trigger", "actions_on_resolve")}
            body["enabled"] = False
            body["trigger"] = {**body["trigger"], "within": 60}
            s.http.put(f"/automations/{a['id']}", json=body).raise_for_status()


def refresh_facts(work: Path) -> Facts:
    repo = Repo.create(work / "warm", BASE[:1], DEFAULTS)
    facts = load_facts(repo.root, [ENTRYPOINT, PACKAGE_ENTRYPOINT], [BLOCK_TYPE_SLUG, "custom-webhook"])
    (HERE / "facts.json").write_text(json.dumps(asdict(facts), indent=1, sort_keys=True) + "\n")
    return facts


PACKAGE_DEFAULTS = {**DEFAULTS, "source": {"package": "chapctl"}}


def main(only: set[str]) -> None:
    """Every case, or only the cases named on the command line."""
    with tempfile.TemporaryDirectory(prefix="chapctl-golden-") as tmp:
        work = Path(tmp)
        facts = refresh_facts(work)
        prefect = PrefectServer.start(work / "server", "sqlite",
                                      extra_env={"PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false"})
        try:
            server = Server(prefect)

            def case(name: str, *args: Any, **kwargs: Any) -> None:
                if not only or name in only:
                    write_case(server, work, facts, name, *args, **kwargs)

            print(f"capturing golden live states from Prefect {httpx.get(prefect.api_url + '/admin/version').json()}:")
            case("first_apply_empty_server", BASE, base=[])
            case("noop_everything_in_sync", BASE)
            edited = copy.deepcopy(BASE)
            edited[0] = project("laos-malaria", "laos-dhis2", model_id=13, cron="0 7 * * 1")
            case("yaml_change_one_project", edited, base=BASE)
            case("drift_made_in_ui", BASE, mutate=drift)
            case("project_removed_prunes_and_orphans_block", BASE[:2], base=BASE)
            case("unmanaged_name_clash_refused", BASE, mutate=unmanaged)
            case("unmanaged_name_clash_adopted", BASE, mutate=unmanaged, options={"adopt": True})
            case("secret_rotated_in_env", BASE, env=dict(ENV, LAOS_DHIS2_PASSWORD="golden-canary-rotated"))
            unset = {k: v for k, v in ENV.items() if k != "RWANDA_DHIS2_PASSWORD"}
            case("secret_unset_block_exists", BASE, env=unset)
            case("secret_unset_block_missing", BASE, base=[], env=unset)
            external = copy.deepcopy(BASE) + [project("sl-malaria", "sl-dhis2", managed=False, model_id=5)]
            case("external_block_missing", external, base=BASE)
            case("work_pool_deleted_on_server", BASE, mutate=pool_deleted)
            case("pull_step_env_unset", BASE, env={k: v for k, v in ENV.items() if k != "CHAPCTL_FLOWS_DIR"})
            case("other_owner_deployment_and_block_clash", BASE, mutate=other_owner)
            case("legacy_deployments_adopted_by_first_owner", BASE, mutate=legacy)
            case("owner_tag_removed_in_ui_is_drift", BASE, mutate=tags_removed)
            case("empty_projects_prune_all_refused", [], base=BASE)
            case("empty_projects_prune_all_allowed", [], base=BASE, options={"allow_delete_all": True})
            case("prune_reports_runs", BASE[:2], base=BASE, mutate=runs)
            case("prune_cancels_runs_in_flight", BASE[:2], base=BASE, mutate=runs, options={"cancel_in_flight": True})
            injected = copy.deepcopy(BASE)
            injected[0] = project("laos-malaria", "laos-dhis2", model_id=12, cron="0 6 * * 1",
                                  description="<<chapctl:env:LAOS_DHIS2_PASSWORD>>",
                                  tags=["<<chapctl:env:PREFECT_API_AUTH_STRING>>", "<<chapctl:flow:x>>"])
            case("placeholder_lookalikes_are_plain_text", injected, base=BASE)
            case("fingerprint_only_after_interrupted_apply", BASE, mutate=interrupted)
            case("replaced_schedule_refused_while_active", replacing, base=BASE, mutate=chap_scheduler)
            case("replaced_schedule_paused_with_adopt", replacing, base=BASE, mutate=chap_scheduler,
                 options={"adopt": True})
            case("run_settings_added", run_settings_projects(), base=BASE, env=RUN_SETTINGS_ENV,
                 defaults=RUN_SETTINGS_DEFAULTS)
            case("automation_edited_in_ui_is_reverted", run_settings_projects(), env=RUN_SETTINGS_ENV,
                 defaults=RUN_SETTINGS_DEFAULTS, mutate=automation_edited)
            long_text = copy.deepcopy(BASE)
            long_text[0] = project("laos-malaria", "laos-dhis2", model_id=12, cron="0 6 * * 1",
                                   description="Weekly malaria forecast for the Lao PDR from the national HMIS, "
                                               "offset by one week so that late district reports are in; owner: "
                                               "the MoH surveillance unit")
            case("long_values_are_never_cut", long_text, base=BASE)
            # Issue 25: the flow from the installed package; upgrading chapctl changes its release in
            # every deployment's pull step, which plan shows like any other change.
            case("flow_from_package_first_apply", BASE, base=[], defaults=PACKAGE_DEFAULTS)
            case("flow_release_upgraded", BASE, defaults=PACKAGE_DEFAULTS, base_release="0.0.9")
        finally:
            prefect.stop()


if __name__ == "__main__":
    main(set(sys.argv[1:]))
