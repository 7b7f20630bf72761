"""Apply what was reviewed (issue 25 #5): `chapctl plan --out FILE` saves the plan with the commit,
the server, the environment and a digest of the live state; `chapctl apply FILE` applies exactly
it, or refuses naming what changed — against a real Prefect server."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from tests.server.conftest import CANARY, PASSWORDS, all_deployments, deployment, updated_stamps
from tests.server.repo import project
from tests.server.test_concurrency import commit, git

pytestmark = pytest.mark.server

TWO = [project("laos-malaria", "laos-dhis2", cron="0 6 * * 1"),
       project("rwanda-dengue", "rwanda-dhis2", cron="0 4 * * 2", timezone="Africa/Kigali")]


@pytest.fixture
def repo(make_repo):
    repo = make_repo(TWO)
    (repo.root / ".gitignore").write_text(".chapctl/\n.prefect-home/\n*.plan.json\n")
    git(repo.root, "init", "-q", "-b", "main")
    commit(repo, "two projects")
    return repo


def save(chapctl, repo, path, *args, env=None):
    proc = chapctl.cli(repo, "plan", "--out", str(path), *args, env=env)
    assert proc.returncode in (0, 2), proc.stdout + proc.stderr
    return json.loads(path.read_text())


def writing(doc: dict) -> list[tuple[str, str, str]]:
    return [(a["kind"], a["name"], a["op"]) for a in doc["actions"] if a["op"] != "noop"]


def test_a_saved_plan_is_applied_exactly_when_nothing_changed(chapctl, repo, tmp_path):
    saved = save(chapctl, repo, tmp_path / "first.plan.json")
    assert saved["commit"] == git(repo.root, "rev-parse", "HEAD")
    assert saved["tree"] == git(repo.root, "rev-parse", "HEAD^{tree}")
    assert saved["server"]["url"] == chapctl.server.api_url and saved["environment"] is None
    assert set(saved["compiled_files"]) == {"prefect.yaml", "blocks/laos-dhis2.yaml", "blocks/rwanda-dhis2.yaml"}
    planned = writing(saved["plan"])
    assert ("deployment", "laos-malaria", "create") in planned
    digest = "sha256:" + hashlib.sha256((tmp_path / "first.plan.json").read_bytes()).hexdigest()
    md = chapctl.cli(repo, "plan", "--format", "markdown", "--out", str(tmp_path / "again.plan.json")).stdout
    assert f"Saved plan `{tmp_path / 'again.plan.json'}`, digest `{digest}`: `chapctl apply` of this file" in md
    proc = chapctl.cli(repo, "apply", str(tmp_path / "first.plan.json"), "--format", "json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    done = json.loads(proc.stdout)
    # what was planned, no more, no less (independent projects are written at once: in any order)
    assert sorted((a["kind"], a["name"], a["op"]) for a in done["applied"]) == sorted(planned)
    assert done["saved_plan"]["digest"] == "sha256:" + hashlib.sha256(
        (tmp_path / "first.plan.json").read_bytes()).hexdigest()
    assert chapctl.cli(repo, "plan", "--detailed-exitcode").returncode == 0  # nothing left to do

    # An edit, planned and applied from its saved plan: only that edit is written.
    repo.write_project(project("laos-malaria", "laos-dhis2", cron="0 7 * * 1"))
    commit(repo, "move laos-malaria")
    before = updated_stamps(chapctl.server)
    second = save(chapctl, repo, tmp_path / "second.plan.json")
    assert writing(second["plan"]) == [("schedule", "laos-malaria/chapctl-cron", "update"),
                                       ("deployment", "laos-malaria", "update")]
    proc = chapctl.cli(repo, "apply", str(tmp_path / "second.plan.json"), "--format", "json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [(a["kind"], a["name"], a["op"]) for a in json.loads(proc.stdout)["applied"]] == writing(second["plan"])
    after = updated_stamps(chapctl.server)
    assert sorted(k for k in after if after[k] != before.get(k)) == [
        "deployment:laos-malaria", *[k for k in after if k.startswith("schedule:laos-malaria:")],
        "variable:chapctl-state--default"]  # the schedule, the fingerprint, the commit record
    assert deployment(chapctl.server, "laos-malaria")["schedules"][0]["schedule"]["cron"] == "0 7 * * 1"


def test_a_saved_plan_is_refused_after_an_edit_in_the_ui(chapctl, repo, clean_server, tmp_path):
    assert chapctl.cli(repo, "apply").returncode == 0
    repo.write_project(project("laos-malaria", "laos-dhis2", cron="0 7 * * 1"))
    commit(repo, "move laos-malaria")
    save(chapctl, repo, tmp_path / "edit.plan.json")
    # Someone edits the other project's deployment in the UI between review and apply.
    target = deployment(clean_server, "rwanda-dengue")
    with clean_server.client() as c:
        assert c.patch(f"/deployments/{target['id']}", json={"description": "edited in the UI"}).status_code == 204
    before = updated_stamps(clean_server)
    proc = chapctl.cli(repo, "apply", str(tmp_path / "edit.plan.json"))
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stdout + proc.stderr
    assert (f"error: the saved plan {tmp_path / 'edit.plan.json'} no longer matches: the server changed since the "
            "plan was made: deployment dhis2-chap-prediction/rwanda-dengue changed. Nothing was written") in proc.stderr
    assert updated_stamps(clean_server) == before
    assert deployment(clean_server, "laos-malaria")["schedules"][0]["schedule"]["cron"] == "0 6 * * 1"
    # Plain apply keeps working: it plans afresh (and reverts the drift).
    assert chapctl.cli(repo, "apply").returncode == 0
    assert deployment(clean_server, "rwanda-dengue")["description"] == "Forecast rwanda-dengue"


def test_a_saved_plan_is_refused_when_the_files_changed(chapctl, repo, clean_server, tmp_path):
    made_at = git(repo.root, "rev-parse", "HEAD")
    save(chapctl, repo, tmp_path / "old.plan.json")
    repo.write_project(project("laos-malaria", "laos-dhis2", model_id=13))  # merged meanwhile
    now = commit(repo, "another pull request")
    proc = chapctl.cli(repo, "apply", str(tmp_path / "old.plan.json"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert (f"the compiled files differ from those the plan was made from (commit {made_at[:12]}, tree "
            f"{git(repo.root, 'rev-parse', made_at + '^{tree}')[:12]}; this checkout: commit {now[:12]}, tree "
            f"{git(repo.root, 'rev-parse', 'HEAD^{tree}')[:12]}): prefect.yaml changed") in proc.stderr
    assert all_deployments(clean_server) == []


def test_another_commit_with_the_same_compiled_files_applies_with_a_note(chapctl, repo, clean_server, tmp_path):
    """A pull request's plan is made at GitHub's merge ref; main gets another commit with the same
    files (or a docs-only merge came in between): the reviewed plan still holds."""
    made_at = git(repo.root, "rev-parse", "HEAD")
    save(chapctl, repo, tmp_path / "pr.plan.json")
    (repo.root / "README.md").write_text("docs only\n")
    commit(repo, "docs")
    proc = chapctl.cli(repo, "apply", str(tmp_path / "pr.plan.json"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"note: the plan was made at commit {made_at[:12]}" in proc.stdout
    assert "with the same compiled files" in proc.stdout and len(all_deployments(clean_server)) == 2


def test_a_pull_requests_plan_without_passwords_is_applied_with_them(chapctl, repo, clean_server, tmp_path):
    """The pull request's check has no password; apply on main has them. Secrets it could not
    check do not make the reviewed plan differ, unless one now differs from the server's."""
    assert chapctl.cli(repo, "apply").returncode == 0
    repo.write_project(project("laos-malaria", "laos-dhis2", model_id=13))
    commit(repo, "model 13")
    no_passwords = {k: v for k, v in chapctl.env.items() if k not in PASSWORDS}
    save(chapctl, repo, tmp_path / "pr.plan.json", env=no_passwords)
    proc = chapctl.cli(repo, "apply", str(tmp_path / "pr.plan.json"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert deployment(clean_server, "laos-malaria")["parameters"]["configured_model_id"] == 13

    # A password rotated in CI since: a write nobody reviewed. Refused, named; a fresh apply does it.
    repo.write_project(project("laos-malaria", "laos-dhis2", model_id=14))
    commit(repo, "model 14")
    save(chapctl, repo, tmp_path / "pr2.plan.json", env=no_passwords)
    rotated = dict(chapctl.env, LAOS_DHIS2_PASSWORD=CANARY + "-rotated")
    proc = chapctl.cli(repo, "apply", str(tmp_path / "pr2.plan.json"), env=rotated)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert ("the plan made now differs from the saved one: block_document laos-dhis2 would now be written"
            in proc.stderr)
    assert CANARY not in proc.stdout + proc.stderr
    assert deployment(clean_server, "laos-malaria")["parameters"]["configured_model_id"] == 13


def test_a_plan_file_never_holds_a_secret(chapctl, repo, clean_server, tmp_path):
    assert chapctl.cli(repo, "apply").returncode == 0
    rotated = dict(chapctl.env, LAOS_DHIS2_PASSWORD=CANARY + "-Zq9!distinct")  # the plan must write it
    doc = save(chapctl, repo, tmp_path / "secret.plan.json", env=rotated)
    text = (tmp_path / "secret.plan.json").read_text()
    assert ("block_document", "laos-dhis2", "update") in writing(doc["plan"])
    assert '"$secret_from_env": "LAOS_DHIS2_PASSWORD"' in text  # the variable's name, never its value
    for secret in (rotated["LAOS_DHIS2_PASSWORD"], PASSWORDS["LAOS_DHIS2_PASSWORD"], PASSWORDS["RWANDA_DHIS2_PASSWORD"]):
        for form in (secret, base64.b64encode(secret.encode()).decode(), hashlib.sha256(secret.encode()).hexdigest()):
            assert form not in text
    assert CANARY not in text
    proc = chapctl.cli(repo, "apply", str(tmp_path / "secret.plan.json"), env=rotated)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_plan_file_is_deterministic_and_its_live_digest_moves_only_with_an_edit(chapctl, repo, clean_server,
                                                                                      tmp_path):
    assert chapctl.cli(repo, "apply").returncode == 0
    repo.write_project(project("laos-malaria", "laos-dhis2", model_id=13))
    commit(repo, "model 13")
    first = tmp_path / "a.plan.json"
    second = tmp_path / "b.plan.json"
    save(chapctl, repo, first)
    save(chapctl, repo, second)  # the same inputs, the server read again (its scheduler still runs)
    assert first.read_bytes() == second.read_bytes()
    with clean_server.client() as c:
        target = deployment(clean_server, "rwanda-dengue")
        schedule = target["schedules"][0]
        assert c.patch(f"/deployments/{target['id']}/schedules/{schedule['id']}",
                       json={"active": False}).status_code == 204  # a UI pause
    third = save(chapctl, repo, tmp_path / "c.plan.json")
    before = json.loads(first.read_text())
    assert third["live"]["digest"] != before["live"]["digest"]
    moved = [k for k in third["live"]["objects"] if third["live"]["objects"][k] != before["live"]["objects"].get(k)]
    assert moved == ["deployment dhis2-chap-prediction/rwanda-dengue"]


def test_a_saved_plan_made_against_another_server_is_refused(chapctl, repo, clean_server, tmp_path):
    save(chapctl, repo, tmp_path / "here.plan.json")
    doc = json.loads((tmp_path / "here.plan.json").read_text())
    doc["server"]["url"] = "https://prefect.example.org/api"
    (tmp_path / "there.plan.json").write_text(json.dumps(doc))
    proc = chapctl.cli(repo, "apply", str(tmp_path / "there.plan.json"))
    assert proc.returncode == 1
    assert (f"the plan was made against the Prefect server at https://prefect.example.org/api; this apply talks to "
            f"{clean_server.api_url}") in proc.stderr
    proc = chapctl.cli(repo, "apply", str(tmp_path / "here.plan.json"), "--adopt")
    assert proc.returncode == 64 and "are the plan's" in proc.stderr
    assert all_deployments(clean_server) == []
