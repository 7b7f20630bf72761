"""plan/apply against a real Prefect server (PostgreSQL; the first and second apply on SQLite too)."""

from __future__ import annotations

import json

import pytest

from compiler.errors import ApplyRefused
from tests.server.conftest import (
    CANARY,
    ON_BOTH_BACKENDS,
    PASSWORDS,
    SWEEPS,
    all_deployments,
    block_documents,
    deployment,
    assert_kills_converge,
    normalized_state,
    updated_stamps,
)
from tests.server.repo import project

pytestmark = pytest.mark.server

THREE = [
    project("laos-malaria", "laos-dhis2", model_id=12, cron="0 6 * * 1"),
    project("laos-dengue", "laos-dhis2", model_id=7, cron="30 5 2 * *"),
    project("rwanda-malaria", "rwanda-dhis2", model_id=3, cron="0 4 * * 2", timezone="Africa/Kigali"),
]


@ON_BOTH_BACKENDS
def test_first_apply_creates_everything_with_block_refs(chapctl, make_repo, clean_server):
    clean_server.wipe(registrations=True)
    repo = make_repo(THREE)
    p = chapctl.plan(repo)
    assert p.has_changes and not p.blockers
    result = chapctl.apply(repo)
    counts = result.counts()
    # pool, block type, schema, 2 blocks, flow, 3 deployments
    assert counts["created"] == 9, result.to_json()
    assert counts["updated"] == counts["deleted"] == 0

    deps = {d["name"]: d for d in all_deployments(clean_server)}
    assert set(deps) == {"laos-malaria", "laos-dengue", "rwanda-malaria"}
    blocks = {b["name"]: b for b in block_documents(clean_server, include_secrets=True)}
    assert blocks["laos-dhis2"]["data"] == {
        "base_url": "https://laos-dhis2.example.org", "username": "chap-bot", "password": PASSWORDS["LAOS_DHIS2_PASSWORD"]}
    lm = deps["laos-malaria"]
    assert lm["parameters"]["credentials"] == {"$ref": {"block_document_id": blocks["laos-dhis2"]["id"]}}
    assert lm["parameters"]["configured_model_id"] == 12
    assert lm["version"].startswith("chapctl:")
    assert "managed-by:chapctl" in lm["tags"]
    assert lm["work_pool_name"] == "chap-test"
    assert lm["entrypoint"] == "flows/dhis2_chap_prediction.py:dhis2_chap_prediction"
    assert lm["pull_steps"] == [{"prefect.deployments.steps.set_working_directory": {"directory": chapctl.env["CHAPCTL_FLOWS_DIR"]}}]
    assert lm["enforce_parameter_schema"] is True
    assert lm["parameter_openapi_schema"]["properties"]["credentials"]
    assert [(s["slug"], s["schedule"]["cron"], s["schedule"]["timezone"], s["active"]) for s in lm["schedules"]] == [
        ("chapctl-cron", "0 6 * * 1", "Asia/Vientiane", True)]
    with clean_server.client() as c:
        pools = {w["name"]: w for w in c.post("/work_pools/filter", json={}).json()}
    assert pools["chap-test"]["type"] == "process"
    assert pools["chap-test"]["base_job_template"].get("variables")  # the process worker's template


@ON_BOTH_BACKENDS
def test_second_apply_writes_nothing(chapctl, make_repo, clean_server):
    repo = make_repo(THREE)
    chapctl.apply(repo)
    before = updated_stamps(clean_server)
    result = chapctl.apply(repo)
    assert chapctl.last_stats.writes == 0
    assert result.counts()["created"] == result.counts()["updated"] == result.counts()["deleted"] == 0
    assert updated_stamps(clean_server) == before
    proc = chapctl.cli(repo, "plan", "--detailed-exitcode")
    assert proc.returncode == 0, proc.stderr
    assert "No changes" in proc.stdout


def test_noop_plan_requests_do_not_grow_with_projects(chapctl, make_repo, clean_server):
    repo = make_repo(THREE)
    chapctl.apply(repo)
    chapctl.plan(repo)
    few = chapctl.last_stats.requests
    many = THREE + [project(f"p-{i:02d}", "laos-dhis2", model_id=i + 1) for i in range(25)]
    repo.write_project(many[-1], compile=False)
    for doc in many[3:]:
        repo.write_project(doc, compile=False)
    repo.compile()
    chapctl.apply(repo)
    chapctl.plan(repo)
    assert chapctl.last_stats.requests == few <= 8


def test_editing_one_project_writes_only_its_objects_and_keeps_schedule_ids(chapctl, make_repo, clean_server):
    repo = make_repo(THREE)
    chapctl.apply(repo)
    before = updated_stamps(clean_server)
    sched_id = deployment(clean_server, "laos-malaria")["schedules"][0]["id"]
    repo.write_project(project("laos-malaria", "laos-dhis2", model_id=13, cron="0 7 * * 1"))
    p = chapctl.plan(repo)
    changed = [(a.kind, a.name) for a in p.actions if a.writes]
    assert changed == [("schedule", "laos-malaria/chapctl-cron"), ("deployment", "laos-malaria")]
    assert not any(a.drift for a in p.actions)
    chapctl.apply(repo)
    assert chapctl.last_stats.writes == 3  # the schedule, the deployment, its runs (Prefect deleted them)
    after = updated_stamps(clean_server)
    differing = {k for k in after if after[k] != before.get(k)}
    assert differing == {"deployment:laos-malaria", f"schedule:laos-malaria:chapctl-cron:{sched_id}"}
    lm = deployment(clean_server, "laos-malaria")
    assert lm["schedules"][0]["id"] == sched_id
    assert lm["schedules"][0]["schedule"]["cron"] == "0 7 * * 1"
    assert lm["parameters"]["configured_model_id"] == 13


def test_removing_a_project_prunes_only_its_deployment(chapctl, make_repo, clean_server):
    repo = make_repo(THREE)
    chapctl.apply(repo)
    before = updated_stamps(clean_server)
    repo.remove_project("rwanda-malaria")
    p = chapctl.plan(repo)
    writes = [a for a in p.actions if a.writes]
    assert [(a.kind, a.name, a.op) for a in writes] == [
        ("block_document", "rwanda-dhis2", "update"), ("deployment", "rwanda-malaria", "delete")]
    assert "orphaned, not deleted" in writes[0].reason and "released" in writes[0].reason
    assert [c.to_json() for c in writes[0].changes] == [{"field": "owner", "before": "default", "after": None}]
    chapctl.apply(repo)
    assert chapctl.last_stats.writes == 2  # the block's ownership record, and the deployment
    after = updated_stamps(clean_server)
    assert {k for k in before if k not in after} == {
        "deployment:rwanda-malaria", "variable:chapctl-block--chap-dhis2-credentials--rwanda-dhis2",
        *[k for k in before if k.startswith("schedule:rwanda-malaria:")]}
    assert all(after[k] == v for k, v in before.items() if k in after)
    assert "rwanda-dhis2" in {b["name"] for b in block_documents(clean_server)}  # credentials are kept


def test_unmanaged_objects_are_left_alone(chapctl, make_repo, clean_server):
    with clean_server.client() as c:
        flow = c.post("/flows/", json={"name": "dhis2-chap-prediction"}).json()
        c.post("/work_pools/", json={"name": "other-pool", "type": "process"}).raise_for_status()
        mine = c.post("/deployments/", json={"name": "hand-made", "flow_id": flow["id"], "tags": ["x"]}).json()
    repo = make_repo(THREE)
    chapctl.apply(repo)
    # a block made in the UI after chapctl registered the type
    with clean_server.client() as c:
        bt = c.get("/block_types/slug/chap-dhis2-credentials").json()
        schema = c.post("/block_schemas/filter", json={"block_schemas": {"block_type_id": {"any_": [bt["id"]]}}}).json()[0]
        ui_block = c.post("/block_documents/", json={
            "name": "ui-made", "block_type_id": bt["id"], "block_schema_id": schema["id"],
            "data": {"base_url": "https://ui.example.org", "username": "u", "password": "p"}}).json()
    before = updated_stamps(clean_server)
    repo.remove_project("laos-dengue")
    chapctl.apply(repo)
    after = updated_stamps(clean_server)
    assert after["deployment:hand-made"] == before["deployment:hand-made"]
    assert after["block:ui-made"] == before["block:ui-made"]
    assert after["work_pool:other-pool"] == before["work_pool:other-pool"]
    names = {d["name"] for d in all_deployments(clean_server)}
    assert "hand-made" in names and "laos-dengue" not in names
    assert mine["id"] in {d["id"] for d in all_deployments(clean_server)}
    assert ui_block["id"] in {b["id"] for b in block_documents(clean_server)}


def test_name_clash_with_unmanaged_deployment_refused_unless_adopt(chapctl, make_repo, clean_server):
    with clean_server.client() as c:
        flow = c.post("/flows/", json={"name": "dhis2-chap-prediction"}).json()
        theirs = c.post("/deployments/", json={
            "name": "laos-malaria", "flow_id": flow["id"], "tags": ["hand"],
            "schedules": [{"schedule": {"interval": 3600}, "active": True}]}).json()
    repo = make_repo(THREE)
    p = chapctl.plan(repo)
    assert any("laos-malaria" in b and "--adopt" in b for b in p.blockers)
    with pytest.raises(ApplyRefused, match="--adopt"):
        chapctl.apply(repo)
    assert chapctl.last_stats.writes == 0
    proc = chapctl.cli(repo, "plan", "--detailed-exitcode")
    assert proc.returncode == 1 and "--adopt" in proc.stdout
    proc = chapctl.cli(repo, "apply")
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "--adopt" in proc.stderr
    result = chapctl.apply(repo, adopt=True)
    assert any(a.name == "laos-malaria" and a.op == "update" for a in result.applied)
    adopted = deployment(clean_server, "laos-malaria")
    assert adopted["id"] == theirs["id"]
    assert "managed-by:chapctl" in adopted["tags"]
    # Issue 21 #9: the hand-made interval schedule is left alone (adopt deletes no hand-made schedule),
    # and stays so: the next plan has nothing to do, and an apply without --adopt keeps it too.
    assert sorted(str(s["slug"]) for s in adopted["schedules"]) == ["None", "chapctl-cron"]
    assert theirs["schedules"][0]["id"] in {s["id"] for s in adopted["schedules"]}
    assert not chapctl.plan(repo).has_changes
    chapctl.apply(repo)
    assert theirs["schedules"][0]["id"] in {s["id"] for s in deployment(clean_server, "laos-malaria")["schedules"]}


def test_drift_is_shown_by_plan_and_reverted_by_apply(chapctl, make_repo, clean_server):
    repo = make_repo(THREE)
    chapctl.apply(repo)
    lm, ld, rm = (deployment(clean_server, n) for n in ("laos-malaria", "laos-dengue", "rwanda-malaria"))
    sched_ids = {d["name"]: d["schedules"][0]["id"] for d in (lm, ld, rm)}
    with clean_server.client() as c:  # edits "in the UI"
        s = lm["schedules"][0]
        c.patch(f"/deployments/{lm['id']}/schedules/{s['id']}", json={
            "schedule": {"cron": "0 9 * * 1", "timezone": "Asia/Vientiane"}, "active": True}).raise_for_status()
        s = ld["schedules"][0]
        c.patch(f"/deployments/{ld['id']}/schedules/{s['id']}", json={"active": False}).raise_for_status()
        params = dict(rm["parameters"], configured_model_id=99)
        c.patch(f"/deployments/{rm['id']}", json={"parameters": params}).raise_for_status()
    p = chapctl.plan(repo)
    writes = {(a.kind, a.name): a for a in p.actions if a.writes}
    assert set(writes) == {("schedule", "laos-malaria/chapctl-cron"), ("schedule", "laos-dengue/chapctl-cron"),
                           ("deployment", "rwanda-malaria")}
    assert all(a.drift for a in writes.values())
    assert "paused" in writes[("schedule", "laos-dengue/chapctl-cron")].reason
    proc = chapctl.cli(repo, "plan", "--detailed-exitcode", "--json")
    assert proc.returncode == 2
    doc = json.loads(proc.stdout)
    assert doc["counts"]["drift"] == 3
    chapctl.apply(repo)
    assert chapctl.last_stats.writes == 3 + 3  # and each deployment's runs, which Prefect deleted, made again
    assert not chapctl.plan(repo).has_changes
    for name, sid in sched_ids.items():
        d = deployment(clean_server, name)
        assert d["schedules"][0]["id"] == sid and d["schedules"][0]["active"] is True
    assert deployment(clean_server, "laos-malaria")["schedules"][0]["schedule"]["cron"] == "0 6 * * 1"
    assert deployment(clean_server, "rwanda-malaria")["parameters"]["configured_model_id"] == 3


def test_paused_deployment_and_deleted_schedule_are_drift(chapctl, make_repo, clean_server):
    repo = make_repo(THREE[:1])
    chapctl.apply(repo)
    lm = deployment(clean_server, "laos-malaria")
    with clean_server.client() as c:
        c.post(f"/deployments/{lm['id']}/pause_deployment").raise_for_status()
        c.delete(f"/deployments/{lm['id']}/schedules/{lm['schedules'][0]['id']}").raise_for_status()
    p = chapctl.plan(repo)
    kinds = {(a.kind, a.op, a.drift) for a in p.actions if a.writes}
    assert kinds == {("schedule", "create", True), ("deployment", "update", True)}
    chapctl.apply(repo)
    lm = deployment(clean_server, "laos-malaria")
    assert lm["paused"] is False and len(lm["schedules"]) == 1
    assert not chapctl.plan(repo).has_changes


def test_rotated_secret_updates_only_the_block(chapctl, make_repo, clean_server):
    repo = make_repo(THREE)
    chapctl.apply(repo)
    before = updated_stamps(clean_server)
    chapctl.env["LAOS_DHIS2_PASSWORD"] = CANARY + "-rotated"
    p = chapctl.plan(repo)
    writes = [a for a in p.actions if a.writes]
    assert [(a.kind, a.name) for a in writes] == [("block_document", "laos-dhis2")]
    assert [c.to_json() for c in writes[0].changes] == [
        {"field": "password", "before": "changed", "after": "from $LAOS_DHIS2_PASSWORD", "secret": True}]
    chapctl.apply(repo)
    after = updated_stamps(clean_server)
    assert {k for k in after if after[k] != before[k]} == {"block:laos-dhis2"}
    blocks = {b["name"]: b for b in block_documents(clean_server, include_secrets=True)}
    assert blocks["laos-dhis2"]["data"]["password"] == CANARY + "-rotated"


def test_missing_secret_env(chapctl, make_repo, clean_server):
    repo = make_repo(THREE)
    del chapctl.env["RWANDA_DHIS2_PASSWORD"]
    with pytest.raises(ApplyRefused, match="RWANDA_DHIS2_PASSWORD"):
        chapctl.apply(repo)
    assert chapctl.last_stats.writes == 0
    assert all_deployments(clean_server) == []
    chapctl.env["RWANDA_DHIS2_PASSWORD"] = PASSWORDS["RWANDA_DHIS2_PASSWORD"]
    chapctl.apply(repo)
    del chapctl.env["RWANDA_DHIS2_PASSWORD"]  # the block exists now: only non-secret fields compared
    p = chapctl.plan(repo)
    assert not p.has_changes and not p.blockers
    rw = next(a for a in p.actions if a.kind == "block_document" and a.name == "rwanda-dhis2")
    assert "password not checked ($RWANDA_DHIS2_PASSWORD unset)" in rw.reason
    repo.write_project(project("rwanda-malaria", "rwanda-dhis2", model_id=3, cron="0 4 * * 2",
                               timezone="Africa/Kigali", base_url="https://new.rw.example.org"))
    chapctl.apply(repo)  # a non-secret edit without the secret keeps the stored password
    blocks = {b["name"]: b for b in block_documents(clean_server, include_secrets=True)}
    assert blocks["rwanda-dhis2"]["data"] == {"base_url": "https://new.rw.example.org", "username": "chap-bot",
                                              "password": PASSWORDS["RWANDA_DHIS2_PASSWORD"]}


def test_password_never_leaks(chapctl, make_repo, clean_server):
    repo = make_repo(THREE)
    for args in (["plan"], ["plan", "--json"], ["plan", "--markdown"], ["apply"], ["apply", "--json"]):
        assert chapctl.cli(repo, *args).returncode == 0
    chapctl.env["LAOS_DHIS2_PASSWORD"] = CANARY + "-second"
    for args in (["plan"], ["plan", "--json"], ["plan", "--markdown"], ["apply", "--markdown"], ["plan", "-v"]):
        assert chapctl.cli(repo, *args).returncode == 0
    printed = "\n".join(chapctl.outputs)
    assert "laos-dhis2" in printed and CANARY not in printed
    with clean_server.client() as c:
        dumps = [c.post("/deployments/filter", json={}).text,
                 c.post("/block_documents/filter", json={}).text,  # without include_secrets
                 c.post("/logs/filter", json={}).text,
                 c.post("/flow_runs/filter", json={}).text,
                 c.post("/events/filter", json={}).text if c.post("/events/filter", json={}).status_code == 200 else ""]
        for d in c.post("/deployments/filter", json={}).json():
            dumps.append(c.get(f"/deployments/{d['id']}/schedules").text)
            dumps.append(c.get(f"/deployments/{d['id']}").text)
    assert all(CANARY not in text for text in dumps)
    assert CANARY not in clean_server.log_path.read_text(errors="replace")


@pytest.mark.parametrize("sweep", SWEEPS)
@pytest.mark.parametrize("scenario", ["first", "update"])
def test_killed_apply_converges(chapctl, make_repo, clean_server, scenario, sweep):
    """Kill after k writes (the server committed them, the client died); re-run. The default run
    kills at the first and last write and around every stage boundary; the slow lane after every write."""

    start = THREE if scenario == "first" else THREE
    target_projects = THREE if scenario == "first" else [
        project("laos-malaria", "laos-dhis2", model_id=13, cron="0 8 * * 1"),
        project("laos-dengue", "laos-dhis2", model_id=7, cron=None),
        project("sl-malaria", "sl-dhis2", model_id=5, password_env="LAOS_DHIS2_PASSWORD"),
    ]
    repo = make_repo(start)

    def setup() -> None:
        clean_server.wipe()
        if scenario == "update":
            for name in [p["name"] for p in target_projects] + ["rwanda-malaria", "sl-malaria"]:
                (repo.root / "projects" / f"{name}.yaml").unlink(missing_ok=True)
            for doc in start:
                repo.write_project(doc, compile=False)
            repo.compile()
            chapctl.apply(repo)
            for name in ("rwanda-malaria",):
                (repo.root / "projects" / f"{name}.yaml").unlink()
            for doc in target_projects:
                repo.write_project(doc, compile=False)
            repo.compile()

    assert assert_kills_converge(chapctl, repo, setup, lambda: normalized_state(clean_server), sweep) >= 3


def test_server_down_is_one_clear_line(chapctl, make_repo):
    repo = make_repo(THREE[:1])
    from tests.server.prefect_server import free_port

    env = dict(chapctl.env, PREFECT_API_URL=f"http://127.0.0.1:{free_port()}/api", CHAPCTL_HTTP_RETRIES="1")
    proc = chapctl.cli(repo, "plan", env=env)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert env["PREFECT_API_URL"] in proc.stderr and "PREFECT_API_URL" in proc.stderr
    proc = chapctl.cli(repo, "apply", env=dict(env, PREFECT_API_URL=chapctl.env["PREFECT_API_URL"].removesuffix("/api")))
    assert proc.returncode == 1 and "/api" in proc.stderr and proc.stderr.count("\n") == 1
    env.pop("PREFECT_API_URL")
    proc = chapctl.cli(repo, "plan", env=env)
    assert proc.returncode == 1 and "PREFECT_API_URL is not set" in proc.stderr


def test_stale_artifacts_are_refused_before_any_write(chapctl, make_repo):
    repo = make_repo(THREE[:1])
    (repo.root / "projects" / "laos-malaria.yaml").write_text(
        json.dumps(project("laos-malaria", model_id=99)))
    proc = chapctl.cli(repo, "apply")
    assert proc.returncode == 1 and "stale" in proc.stderr and proc.stderr.count("\n") == 1
    assert all_deployments(chapctl.server) == []


def test_warm_noop_plan_does_not_import_prefect(chapctl, make_repo):
    import subprocess
    import sys

    repo = make_repo(THREE)
    chapctl.apply(repo)
    env = {**{k: v for k, v in __import__("os").environ.items() if not k.startswith("PREFECT_")}, **chapctl.env}
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "compiler", "plan", "--detailed-exitcode"],
                          cwd=repo.root, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = [line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")]
    assert imported and not [m for m in imported if m == "prefect" or m.startswith("prefect.")]
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "compiler", "--help"],
                          cwd=repo.root, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "plan" in proc.stdout and "apply" in proc.stdout
    assert " prefect\n" not in proc.stderr and "| prefect." not in proc.stderr


def test_wrong_auth_string_is_a_clear_401(clean_special_server, make_repo, tmp_path):
    auth_server = clean_special_server
    from tests.server.conftest import Chapctl

    env = {**auth_server.client_env(), "CHAPCTL_FLOWS_DIR": str(tmp_path / "repo"), **PASSWORDS}
    runner = Chapctl(auth_server, env)
    repo = make_repo(THREE[:1])
    proc = runner.cli(repo, "plan", env=dict(env, PREFECT_API_AUTH_STRING="admin:wrong"))
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert "401" in proc.stderr and "PREFECT_API_AUTH_STRING" in proc.stderr and auth_server.api_url in proc.stderr
    assert "wrong" not in proc.stderr
    proc = runner.cli(repo, "apply", env={k: v for k, v in env.items() if k != "PREFECT_API_AUTH_STRING"})
    assert proc.returncode == 1 and "401" in proc.stderr
    proc = runner.cli(repo, "apply")
    assert proc.returncode == 0, proc.stderr
    assert runner.cli(repo, "plan", "--detailed-exitcode").returncode == 0
