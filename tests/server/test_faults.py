"""Apply through a faulty reverse proxy (tests/server/fault_proxy.py) in front of a real server:
writes the server committed but whose answer was lost, retried deletes, a write that fails half-way,
automations (which the server never deduplicates) whose create was lost or committed late."""

from __future__ import annotations

import json

import pytest

from compiler.errors import ApplyFailed
from tests.server.conftest import CANARY, PASSWORDS, Chapctl, all_deployments, deployment, normalized_state
from tests.server.fault_proxy import FaultProxy
from tests.server.repo import DEFAULTS, Repo, project

# On SQLite (tests/server/conftest.py): a retried write meets its one-writer lock there.
pytestmark = [pytest.mark.server, pytest.mark.sqlite]

THREE = [
    project("laos-malaria", "laos-dhis2", model_id=12, cron="0 6 * * 1"),
    project("laos-dengue", "laos-dhis2", model_id=7, cron="30 5 2 * *"),
    project("rwanda-malaria", "rwanda-dhis2", model_id=3, cron="0 4 * * 2", timezone="Africa/Kigali"),
]
HOOK_URL = f"http://127.0.0.1:9/hook/{CANARY}-hook"
# THREE, of which one alerts (on failed and on missed runs: two automations) through a webhook.
ALERTING = {**DEFAULTS, "notifications": {"ops-webhook": {"webhook": {"url_env": "OPS_WEBHOOK_URL"}}}}
THREE_ALERTING = [{**THREE[0], "alerts": {"notify": ["ops-webhook"], "missed": "30m"}}, *THREE[1:]]

# Every kind of create a first apply sends; the proxy forwards it, the server commits it, the
# client hears 502 and sends it again.
CREATES = {
    "work pool": (r"^/api/work_pools/$", b""),
    "block type": (r"^/api/block_types/$", b""),
    "block schema": (r"^/api/block_schemas/$", b""),
    "block claim": (r"^/api/variables/$", b"chapctl-block--"),
    "block document": (r"^/api/block_documents/$", b""),
    "flow": (r"^/api/flows/$", b""),
    "deployment": (r"^/api/deployments/$", b""),
    "apply lock": (r"^/api/variables/$", b"chapctl-lock--"),
    "commit record": (r"^/api/variables/$", b"chapctl-state--"),
    "automation": (r"^/api/automations/$", b""),
}
# Idempotent by themselves (the server upserts), or recognised by the lock's own token.
NOTHING_TO_RECOVER = {"block schema", "flow", "deployment", "apply lock", "commit record"}


@pytest.fixture
def env(env):
    return {**env, "OPS_WEBHOOK_URL": HOOK_URL}


def state(server, repo) -> dict:
    """`normalized_state`, the repository's own path (the flows directory every pull step names) as <repo>."""
    return json.loads(json.dumps(normalized_state(server)).replace(str(repo.root), "<repo>"))


@pytest.fixture(scope="module")
def reference_state(sqlite_server, warm_cache, tmp_path_factory) -> dict:
    """The server state one undisturbed apply of THREE_ALERTING leaves behind (once per module:
    every test compares its own apply's end state with it)."""
    sqlite_server.wipe(registrations=True)
    repo = Repo.create(tmp_path_factory.mktemp("reference") / "repo", THREE_ALERTING, ALERTING,
                       cache_from=warm_cache)
    env = {**sqlite_server.client_env(), **PASSWORDS, "CHAPCTL_FLOWS_DIR": str(repo.root),
           "OPS_WEBHOOK_URL": HOOK_URL}
    Chapctl(sqlite_server, env).apply(repo)
    return state(sqlite_server, repo)


@pytest.fixture
def reference(reference_state, make_repo, clean_server):
    """(this test's repository of THREE_ALERTING, the state its undisturbed apply leaves), on a
    server where every create happens again."""
    clean_server.wipe(registrations=True)
    return make_repo(THREE_ALERTING, ALERTING), reference_state


@pytest.mark.parametrize("what", sorted(CREATES))
def test_create_committed_behind_a_502_is_a_green_converged_apply(what, reference, chapctl, clean_server):
    repo, expected = reference
    with FaultProxy(clean_server.api_url) as proxy:
        path, body = CREATES[what]
        proxy.fail("POST", path, status=502, after_forwarding=True, times=1, body=body)
        runner = Chapctl(clean_server, dict(chapctl.env, PREFECT_API_URL=proxy.api_url))
        result = runner.apply(repo)
        assert [r for r in proxy.rules if r.hits], "the fault was never injected"
        if what not in NOTHING_TO_RECOVER:
            assert result.recovered, result.to_json()
    assert state(clean_server, repo) == expected
    assert not chapctl.plan(repo).has_changes


@pytest.mark.parametrize("fault", ["reset", "held"])
def test_a_lost_automation_create_leaves_one_automation_and_a_green_apply(fault, reference, chapctl, clean_server):
    """Issue 21 #3: the client's own re-send of a lost `POST /automations/` made a second automation
    (every failure notified twice) and apply still exited 0. `reset`: the server committed it and the
    connection was reset; `held`: it reaches the server only after apply looked for it, just
    before the re-send."""
    repo, expected = reference
    with FaultProxy(clean_server.api_url) as proxy:
        proxy.fail("POST", r"^/api/automations/$", **{fault: True})
        proc = Chapctl(clean_server, dict(chapctl.env, PREFECT_API_URL=proxy.api_url)).cli(repo, "apply", "--json")
        assert [r for r in proxy.rules if r.hits], "the fault was never injected"
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert state(clean_server, repo) == expected  # one automation per alert
    said = {"reset": "already created (its answer was lost)", "held": "committed after apply looked for it"}[fault]
    assert any(r.startswith("POST /automations/") and said in r for r in json.loads(proc.stdout)["recovered"]), \
        proc.stdout
    assert not chapctl.plan(repo).has_changes


def test_a_duplicate_automation_left_behind_is_deleted_and_the_original_kept(reference, chapctl, clean_server):
    """A duplicate of this owner's alert (left by an older chapctl, or a kill) is deleted by the
    next apply; the automation that matches the plan (the older one of identical copies) stays."""
    repo, expected = reference
    chapctl.apply(repo)
    with clean_server.client() as c:
        mine = c.post("/automations/filter", json={}).json()
        original = next(a for a in mine if "chapctl-alert:laos-malaria/failed" in a["tags"])
        edited = next(a for a in mine if "chapctl-alert:laos-malaria/missed" in a["tags"])
        keys = ("name", "description", "enabled", "tags", "trigger", "actions", "actions_on_trigger",
                "actions_on_resolve")
        c.post("/automations/", json={k: original[k] for k in keys}).raise_for_status()  # a newer copy
        # The older one of `missed` no longer says what the plan says; its newer copy does.
        c.put(f"/automations/{edited['id']}", json={**{k: edited[k] for k in keys}, "enabled": False}
              ).raise_for_status()
        matching = c.post("/automations/", json={k: edited[k] for k in keys}).raise_for_status().json()
    plan = chapctl.plan(repo)
    assert sorted((a.name, a.op) for a in plan.actions if a.kind == "automation" and a.writes) == [
        ("laos-malaria/failed", "delete"), ("laos-malaria/missed", "delete")]
    proc = chapctl.cli(repo, "apply")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert state(clean_server, repo) == expected and not chapctl.plan(repo).has_changes
    with clean_server.client() as c:
        left = {a["id"] for a in c.post("/automations/filter", json={}).json()}
    assert left == {original["id"], matching["id"]}


def test_schedule_recreated_behind_a_502(chapctl, make_repo, clean_server):
    repo = make_repo(THREE[:1])
    chapctl.apply(repo)
    lm = deployment(clean_server, "laos-malaria")
    with clean_server.client() as c:  # deleted in the UI: apply re-creates it with one POST
        c.delete(f"/deployments/{lm['id']}/schedules/{lm['schedules'][0]['id']}").raise_for_status()
    with FaultProxy(clean_server.api_url) as proxy:
        proxy.fail("POST", r"/schedules$", status=504, after_forwarding=True)
        result = Chapctl(clean_server, dict(chapctl.env, PREFECT_API_URL=proxy.api_url)).apply(repo)
    assert any("/schedules" in r for r in result.recovered)
    assert [s["slug"] for s in deployment(clean_server, "laos-malaria")["schedules"]] == ["chapctl-cron"]
    assert not chapctl.plan(repo).has_changes


def test_retried_delete_that_answers_404_is_done(chapctl, make_repo, clean_server):
    repo = make_repo(THREE)
    chapctl.apply(repo)
    repo.remove_project("laos-dengue")
    with FaultProxy(clean_server.api_url) as proxy:
        proxy.fail("DELETE", r"^/api/deployments/", status=502, after_forwarding=True)
        runner = Chapctl(clean_server, dict(chapctl.env, PREFECT_API_URL=proxy.api_url))
        proc = runner.cli(repo, "apply", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["ok"] is True and doc["counts"]["deleted"] == 1
    assert any("already gone" in r for r in doc["recovered"])
    assert "laos-dengue" not in {d["name"] for d in all_deployments(clean_server)}


@pytest.mark.parametrize("fmt", ["--json", "--markdown", "text"])
def test_failure_half_way_reports_every_write_already_made(fmt, chapctl, make_repo, clean_server):
    repo = make_repo(THREE)
    before_deployments = [(a.kind, a.op) for a in chapctl.plan(repo).actions if a.writes and a.kind != "deployment"]
    n = len(before_deployments)
    assert n >= 3  # work pool and two blocks at least (type, schema, flow when the server is new)
    with FaultProxy(clean_server.api_url) as proxy:
        # The first deployment create is refused (a proxy's 500 before the server saw it).
        proxy.fail("POST", r"^/api/deployments/$", status=500, after_forwarding=False)
        runner = Chapctl(clean_server, dict(chapctl.env, PREFECT_API_URL=proxy.api_url))
        args = ["apply", "--parallel", "1"] + ([fmt] if fmt != "text" else [])  # one at a time: exact counts
        proc = runner.cli(repo, *args)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr and "internal error" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and "Re-run `chapctl apply`" in proc.stderr
    if fmt == "--json":
        doc = json.loads(proc.stdout)
        assert doc["ok"] is False
        assert [(a["kind"], a["op"]) for a in doc["applied"]] == before_deployments
        assert doc["failed"]["kind"] == "deployment" and "500" in doc["failed"]["error"]
        assert {a["name"] for a in doc["not_applied"]} == {"laos-malaria", "rwanda-malaria"}
    elif fmt == "--markdown":
        assert f":x: **Apply failed after {n} created" in proc.stdout
        assert "| + | block document | `laos-dhis2` | created" in proc.stdout
        assert "| ! | deployment | `laos-dengue` | **failed** (create) |" in proc.stdout
    else:
        assert f"Apply failed after {n} created, 0 updated, 0 deleted" in proc.stdout
        assert "+ block document laos-dhis2: created" in proc.stdout
    # The next apply continues from what the server holds.
    assert chapctl.cli(repo, "apply").returncode == 0
    assert {d["name"] for d in all_deployments(clean_server)} == {p["name"] for p in THREE}
    assert not chapctl.plan(repo).has_changes


def test_a_failure_among_parallel_writes_accounts_for_every_project(chapctl, make_repo, clean_server):
    many = THREE + [project(f"more-{i}", "laos-dhis2", model_id=20 + i) for i in range(6)]
    repo = make_repo(many)
    with FaultProxy(clean_server.api_url) as proxy:
        proxy.fail("POST", r"^/api/deployments/$", status=400, after_forwarding=False, body=b'"more-2"')
        runner = Chapctl(clean_server, dict(chapctl.env, PREFECT_API_URL=proxy.api_url))
        proc = runner.cli(repo, "apply", "--format", "json", "--parallel", "8")
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    created = {a["name"] for a in doc["applied"] if a["kind"] == "deployment"}
    waiting = {a["name"] for a in doc["not_applied"] if a["kind"] == "deployment"}
    assert doc["failed"]["name"] == "more-2" and "more-2" not in created | waiting
    assert created | waiting | {"more-2"} == {p["name"] for p in many} and not created & waiting
    assert created == {d["name"] for d in all_deployments(clean_server)}  # the report says what exists
    assert chapctl.cli(repo, "apply").returncode == 0 and not chapctl.plan(repo).has_changes


def test_apply_failed_in_process_carries_the_partial_result(chapctl, make_repo, clean_server):
    repo = make_repo(THREE)
    clean_server.wipe(registrations=True)  # the flow is created again by this apply
    with FaultProxy(clean_server.api_url) as proxy:
        proxy.fail("POST", r"^/api/flows/$", status=400, after_forwarding=False)
        runner = Chapctl(clean_server, dict(chapctl.env, PREFECT_API_URL=proxy.api_url))
        with pytest.raises(ApplyFailed) as err:
            runner.apply(repo)
    result = err.value.result
    assert result.failed.kind == "flow" and [a.kind for a in result.applied][-2:] == ["block_document"] * 2
    assert result.to_json()["ok"] is False
