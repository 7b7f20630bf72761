"""A shared server: project text that looks like a placeholder, owners, the prune guard, what
happens to the runs of a pruned deployment, credentials in PREFECT_API_URL, a server whose page
limit is lower than chapctl's default. All against a real Prefect server."""

from __future__ import annotations

import pytest

from tests.server.conftest import (
    AUTH_CANARY,
    AUTH_STRING,
    CANARY,
    PAGE_LIMIT,
    Chapctl,
    all_deployments,
    block_documents,
    deployment,
    updated_stamps,
)
from tests.server.repo import DEFAULTS, project

pytestmark = pytest.mark.server

LAOS = [project("laos-malaria", "laos-dhis2", model_id=12), project("laos-dengue", "laos-dhis2", model_id=7)]
RWANDA = [project("rwanda-malaria", "rwanda-dhis2", model_id=3, cron="0 4 * * 2", timezone="Africa/Kigali")]


def owned(owner: str) -> dict:
    return {**DEFAULTS, "owner": owner}


def every_output_format(runner: Chapctl, repo) -> str:
    printed = []
    for args in (["plan"], ["plan", "--json"], ["plan", "--markdown"], ["plan", "-v"], ["apply", "--json"],
                 ["apply", "--markdown"], ["apply"]):
        proc = runner.cli(repo, *args)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        printed += [proc.stdout, proc.stderr]
    return "\n".join(printed)


def test_placeholder_lookalikes_are_stored_verbatim_and_no_secret_leaks(chapctl, make_repo, clean_server):
    tricky = project("laos-malaria", "laos-dhis2", description="<<chapctl:env:LAOS_DHIS2_PASSWORD>>",
                     tags=["<<chapctl:env:PREFECT_API_AUTH_STRING>>", "<<chapctl:flow:x>>",
                           "<<chapctl:block_document:chap-dhis2-credentials/laos-dhis2>>"])
    repo = make_repo([tricky])
    chapctl.env["PREFECT_API_AUTH_STRING"] = "user:" + AUTH_CANARY  # sent, ignored by this server
    printed = every_output_format(chapctl, repo)
    live = deployment(clean_server, "laos-malaria")
    assert live["description"] == "<<chapctl:env:LAOS_DHIS2_PASSWORD>>"
    assert {"<<chapctl:env:PREFECT_API_AUTH_STRING>>", "<<chapctl:flow:x>>",
            "<<chapctl:block_document:chap-dhis2-credentials/laos-dhis2>>"} <= set(live["tags"])
    assert not chapctl.plan(repo).has_changes  # stored exactly as compiled: no drift either
    with clean_server.client() as c:
        server_text = "\n".join([
            c.post("/deployments/filter", json={}).text, c.get(f"/deployments/{live['id']}").text,
            c.post("/variables/filter", json={}).text, c.post("/flows/filter", json={}).text])
    for text in (printed, server_text):
        assert CANARY not in text and AUTH_CANARY not in text


def test_two_owners_on_one_server_never_touch_each_other(chapctl, make_repo, clean_server):
    laos = make_repo(LAOS, owned("laos-team"), name="laos")
    rwanda = make_repo(RWANDA, owned("rwanda-team"), name="rwanda")
    chapctl.apply(laos)
    laos_state = updated_stamps(clean_server)
    chapctl.apply(rwanda)
    assert not chapctl.plan(laos).has_changes and not chapctl.plan(rwanda).has_changes
    after = updated_stamps(clean_server)
    assert {k: after[k] for k in laos_state if not k.startswith(("work_pool", "block_type", "flow"))} == \
        {k: v for k, v in laos_state.items() if not k.startswith(("work_pool", "block_type", "flow"))}
    tags = {d["name"]: d["tags"] for d in all_deployments(clean_server)}
    assert "chapctl-owner:laos-team" in tags["laos-malaria"] and "chapctl-owner:rwanda-team" in tags["rwanda-malaria"]

    # Rwanda removes its only project: its plan deletes only its own deployment (and needs the flag).
    rwanda.remove_project("rwanda-malaria")
    p = chapctl.plan(rwanda, allow_delete_all=True)
    assert [(a.kind, a.name, a.op) for a in p.actions if a.kind == "deployment"] == [
        ("deployment", "rwanda-malaria", "delete")]
    chapctl.apply(rwanda, allow_delete_all=True)
    assert {d["name"] for d in all_deployments(clean_server)} == {"laos-malaria", "laos-dengue"}
    assert not chapctl.plan(laos).has_changes

    # A project named like another owner's deployment, or managing its block: refused, naming it.
    rwanda.write_project(project("laos-malaria", "laos-dhis2", base_url="https://elsewhere.example.org"))
    p = chapctl.plan(rwanda)
    assert any("laos-malaria" in b and "'laos-team'" in b for b in p.blockers), p.blockers
    assert any("block 'laos-dhis2'" in b and "'laos-team'" in b for b in p.blockers), p.blockers
    proc = chapctl.cli(rwanda, "apply")
    assert proc.returncode == 1 and "'laos-team'" in proc.stderr and proc.stderr.count("\n") == 1
    # Using the other owner's block without managing it is fine.
    rwanda.remove_project("laos-malaria")
    rwanda.write_project(project("rwanda-on-laos", "laos-dhis2", managed=False))
    p = chapctl.plan(rwanda)
    assert not p.blockers, p.blockers
    shared = next(a for a in p.actions if a.kind == "block_document" and a.name == "laos-dhis2")
    assert shared.op == "noop" and "managed by chapctl owner 'laos-team'" in shared.reason
    chapctl.apply(rwanda)
    assert not chapctl.plan(laos).has_changes


def test_deployments_of_an_owner_less_chapctl_are_adopted_keeping_their_ids(chapctl, make_repo, clean_server):
    repo = make_repo(LAOS + RWANDA)
    chapctl.apply(repo)
    ids = {d["name"]: d["id"] for d in all_deployments(clean_server)}
    schedule_ids = {d["name"]: [s["id"] for s in d["schedules"]] for d in all_deployments(clean_server)}
    with clean_server.client() as c:  # make the server look as chapctl 0.1 left it
        for d in all_deployments(clean_server):
            c.patch(f"/deployments/{d['id']}", json={
                "tags": [t for t in d["tags"] if not t.startswith("chapctl-owner:")],
                "version": "chapctl:" + d["version"].rsplit(":", 1)[1]}).raise_for_status()
        for v in c.post("/variables/filter", json={}).json():
            c.delete(f"/variables/{v['id']}").raise_for_status()
        flow_id = all_deployments(clean_server)[0]["flow_id"]
        c.post("/deployments/", json={"name": "gone-before-upgrade", "flow_id": flow_id,
                                      "tags": ["managed-by:chapctl"], "version": "chapctl:0123456789abcdef"})
    p = chapctl.plan(repo)
    assert not p.blockers
    assert {a.name for a in p.actions if a.kind == "deployment" and a.writes} == set(ids)
    assert any("gone-before-upgrade" in n and "not pruned" in n for n in p.notes)
    chapctl.apply(repo)
    after = {d["name"]: d for d in all_deployments(clean_server)}
    assert {n: after[n]["id"] for n in ids} == ids
    assert {n: [s["id"] for s in after[n]["schedules"]] for n in ids} == schedule_ids
    assert all("chapctl-owner:default" in after[n]["tags"] for n in ids)
    assert "gone-before-upgrade" in after  # never pruned: another repository may still declare it
    assert not chapctl.plan(repo).has_changes


def test_owner_tag_removed_in_the_ui_is_drift_not_a_clash(chapctl, make_repo, clean_server):
    repo = make_repo(LAOS)
    chapctl.apply(repo)
    lm = deployment(clean_server, "laos-malaria")
    with clean_server.client() as c:
        c.patch(f"/deployments/{lm['id']}", json={"tags": ["chap"]}).raise_for_status()
    p = chapctl.plan(repo)
    assert not p.blockers
    (change,) = [a for a in p.actions if a.writes]
    assert (change.kind, change.name, change.drift) == ("deployment", "laos-malaria", True)
    chapctl.apply(repo)
    assert "chapctl-owner:default" in deployment(clean_server, "laos-malaria")["tags"]
    assert not chapctl.plan(repo).has_changes


def test_emptied_projects_folder_is_refused_unless_allowed(chapctl, make_repo, clean_server):
    repo = make_repo(LAOS + RWANDA)
    chapctl.apply(repo)
    for p in LAOS + RWANDA:
        (repo.root / "projects" / f"{p['name']}.yaml").unlink()
    repo.compile()
    proc = chapctl.cli(repo, "plan")
    assert proc.returncode == 1
    assert "deletes every deployment of owner 'default' (3:" in proc.stdout and "--allow-delete-all" in proc.stdout
    proc = chapctl.cli(repo, "apply")
    assert proc.returncode == 1 and "--allow-delete-all" in proc.stderr and proc.stderr.count("\n") == 1
    assert len(all_deployments(clean_server)) == 3
    proc = chapctl.cli(repo, "plan", "--allow-delete-all", "--detailed-exitcode")
    assert proc.returncode == 2, proc.stdout
    proc = chapctl.cli(repo, "apply", "--allow-delete-all")
    assert proc.returncode == 0, proc.stderr
    assert all_deployments(clean_server) == []
    assert {b["name"] for b in block_documents(clean_server)} == {"laos-dhis2", "rwanda-dhis2"}  # never deleted


def test_pruning_says_what_happens_to_runs(chapctl, make_repo, clean_server):
    doomed = project("laos-dengue", "laos-dhis2", model_id=7, cron=None)  # no schedule: only our runs
    repo = make_repo([LAOS[0], doomed])
    chapctl.apply(repo)
    dep = deployment(clean_server, "laos-dengue")
    with clean_server.client() as c:
        def run(state: dict) -> str:
            r = c.post(f"/deployments/{dep['id']}/create_flow_run", json={"state": state})
            r.raise_for_status()
            return r.json()["id"]

        scheduled = run({"type": "SCHEDULED", "state_details": {"scheduled_time": "2099-01-01T00:00:00Z"}})
        running = run({"type": "SCHEDULED"})
        c.post(f"/flow_runs/{running}/set_state", json={"state": {"type": "RUNNING"}, "force": True}).raise_for_status()
        pending = run({"type": "SCHEDULED"})
        c.post(f"/flow_runs/{pending}/set_state", json={"state": {"type": "PENDING"}, "force": True}).raise_for_status()
    repo.remove_project("laos-dengue")
    proc = chapctl.cli(repo, "plan")
    assert proc.returncode == 0, proc.stderr
    assert "scheduled runs: 1 (next 2099-01-01T00:00:00Z) → deleted with the deployment" in proc.stdout
    assert "runs in flight: 2 (1 Pending, 1 Running) → left to finish" in proc.stdout
    proc = chapctl.cli(repo, "apply")
    assert proc.returncode == 0, proc.stderr
    assert "runs in flight: 2 (1 Pending, 1 Running) → left to finish" in proc.stdout
    with clean_server.client() as c:
        assert c.get(f"/flow_runs/{scheduled}").status_code == 404
        assert c.get(f"/flow_runs/{running}").json()["state"]["type"] == "RUNNING"
        assert c.get(f"/flow_runs/{pending}").json()["state"]["type"] == "PENDING"

    # Asked to, apply cancels them first.
    repo.write_project(doomed)
    chapctl.apply(repo)
    dep = deployment(clean_server, "laos-dengue")
    with clean_server.client() as c:
        r = c.post(f"/deployments/{dep['id']}/create_flow_run", json={"state": {"type": "SCHEDULED"}}).json()["id"]
        c.post(f"/flow_runs/{r}/set_state", json={"state": {"type": "RUNNING"}, "force": True}).raise_for_status()
    repo.remove_project("laos-dengue")
    proc = chapctl.cli(repo, "apply", "--cancel-in-flight")
    assert proc.returncode == 0, proc.stderr
    assert "runs in flight: 1 (1 Running) → cancelled (--cancel-in-flight)" in proc.stdout
    with clean_server.client() as c:
        assert c.get(f"/flow_runs/{r}").json()["state"]["type"] == "CANCELLING"


def test_credentials_in_the_api_url_are_used_and_never_printed(clean_special_server, make_repo, tmp_path):
    auth_server = clean_special_server
    url = auth_server.api_url.replace("http://", f"http://{AUTH_STRING}@")
    env = {"PREFECT_API_URL": url, "CHAPCTL_FLOWS_DIR": str(tmp_path / "repo"),
           "LAOS_DHIS2_PASSWORD": CANARY + "-laos"}
    runner = Chapctl(auth_server, env)
    repo = make_repo(LAOS)
    printed = every_output_format(runner, repo)
    assert auth_server.api_url in printed  # the URL is shown, without its user:password
    proc = runner.cli(repo, "plan", env=dict(env, PREFECT_API_URL=url.replace(AUTH_CANARY, AUTH_CANARY + "x")))
    assert proc.returncode == 1 and "401" in proc.stderr
    printed += proc.stdout + proc.stderr
    from tests.server.prefect_server import free_port

    down = f"http://admin:{AUTH_CANARY}@127.0.0.1:{free_port()}/api"
    proc = runner.cli(repo, "plan", env=dict(env, PREFECT_API_URL=down, CHAPCTL_HTTP_RETRIES="0"))
    assert proc.returncode == 1 and "cannot reach" in proc.stderr
    printed += proc.stdout + proc.stderr
    assert AUTH_CANARY not in printed and CANARY not in printed


# The default run proves paging on three pages (and a prune across them); the slow lane on 250 projects.
@pytest.mark.parametrize("count, kept", [(2 * PAGE_LIMIT + 5, PAGE_LIMIT + 1),
                                         pytest.param(250, 120, marks=pytest.mark.slow)])
def test_a_server_with_a_lower_page_limit_plans_and_prunes_every_project(clean_special_server, make_repo, tmp_path,
                                                                        count, kept):
    """The special server answers at most PAGE_LIMIT objects a request (PREFECT_SERVER_API_DEFAULT_LIMIT),
    not Prefect's 200: chapctl reads every page."""
    limited_server = clean_special_server
    env = {**limited_server.client_env(), "CHAPCTL_FLOWS_DIR": str(tmp_path / "repo"), "LAOS_DHIS2_PASSWORD": "x"}
    runner = Chapctl(limited_server, env)
    many = [project(f"p-{i:03d}", "laos-dhis2", model_id=i + 1, cron=f"{i % 60} {i % 24} * * *") for i in range(count)]
    repo = make_repo(many)
    result = runner.apply(repo)
    assert result.counts()["created"] >= count
    assert len(all_deployments_paged(limited_server)) == count
    p = runner.plan(repo)
    assert not p.has_changes
    noop_requests = runner.last_stats.requests
    for doc in many[kept:]:
        (repo.root / "projects" / f"{doc['name']}.yaml").unlink()
    repo.compile()
    p = runner.plan(repo)
    assert sorted(a.name for a in p.actions if a.op == "delete") == [d["name"] for d in many[kept:]]
    runner.apply(repo)
    assert sorted(d["name"] for d in all_deployments_paged(limited_server)) == [d["name"] for d in many[:kept]]
    assert not runner.plan(repo).has_changes
    print(f"no-op plan of {count} projects on a limit-{PAGE_LIMIT} server: {noop_requests} requests")


def all_deployments_paged(server) -> list[dict]:
    out, offset = [], 0
    with server.client() as c:
        while True:
            page = c.post("/deployments/filter", json={"limit": server.page_limit, "offset": offset}).json()
            out += page
            if len(page) < server.page_limit:
                return out
            offset += server.page_limit
