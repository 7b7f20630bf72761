"""Issue 15 against a real server: several schedules per project (slugs keep ids, parameters per
schedule), alerts as Prefect automations (owned, reviewed, drift reverted, pruned, never touching
others'), and limits (a deployment concurrency limit; a global limit per DHIS2 instance)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.server.conftest import CANARY, SWEEPS, deployment
from tests.server.repo import project

pytestmark = pytest.mark.server

HOOK_SECRET = CANARY + "-hook"  # the webhook URL's token: a secret like a password
HOOK_URL = f"http://127.0.0.1:9/hook/{HOOK_SECRET}"
DEFAULTS = {
    "timezone": "UTC",
    "notifications": {"ops-webhook": {"webhook": {"url_env": "OPS_WEBHOOK_URL"}}},
    "alerts": {"notify": ["ops-webhook"], "missed": "30m"},
}


@pytest.fixture
def env(env):
    return {**env, "OPS_WEBHOOK_URL": HOOK_URL}


def two_schedules(monthly_cron: str = "0 5 2 * *", monthly_slug: str = "monthly-fixed") -> dict[str, Any]:
    doc = project("laos-dengue", cron=None, model_id=7)
    doc["schedules"] = [
        {"slug": "weekly", "cron": "0 6 * * 1", "timezone": "Asia/Vientiane"},
        {"slug": monthly_slug, "cron": monthly_cron,
         "parameters": {"end_mode": "fixed", "end_date": "2026-06-30", "prediction_setup_id": 3}},
    ]
    return doc


def schedules_by_slug(server, name: str) -> dict[str, dict[str, Any]]:
    return {s["slug"]: s for s in deployment(server, name)["schedules"]}


def test_schedules_carry_their_parameters_and_slugs_keep_ids(chapctl, make_repo, clean_server):
    repo = make_repo([two_schedules()], {"timezone": "UTC"})
    chapctl.apply(repo)
    first = schedules_by_slug(clean_server, "laos-dengue")
    assert sorted(first) == ["monthly-fixed", "weekly"]
    assert first["weekly"]["parameters"] == {}
    assert first["monthly-fixed"]["parameters"] == {"end_mode": "fixed", "end_date": "2026-06-30",
                                                    "end_period_offset": None, "prediction_setup_id": 3}
    assert first["weekly"]["schedule"]["timezone"] == "Asia/Vientiane"

    # Runs the server schedules carry their schedule's parameters over the deployment's.
    dep = deployment(clean_server, "laos-dengue")
    with clean_server.client() as c:
        c.post(f"/deployments/{dep['id']}/schedule", json={"min_runs": 2, "max_runs": 4}).raise_for_status()
        runs = c.post("/flow_runs/filter", json={"flow_runs": {"deployment_id": {"any_": [dep["id"]]}}}).json()
    by_schedule: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        schedule_id = run["idempotency_key"].split()[2]  # "scheduled <deployment> <schedule> <time>"
        slug = next(slug for slug, s in first.items() if s["id"] == schedule_id)
        by_schedule.setdefault(slug, []).append(run["parameters"])
    assert set(by_schedule) == {"weekly", "monthly-fixed"}
    assert all(p["end_mode"] == "offset" and p["end_period_offset"] == 1 for p in by_schedule["weekly"])
    assert all(p["end_mode"] == "fixed" and p["end_date"] == "2026-06-30" and p["end_period_offset"] is None
               and p["prediction_setup_id"] == 3 for p in by_schedule["monthly-fixed"])

    # Editing one schedule updates it in place and leaves the other alone.
    repo.write_project(two_schedules(monthly_cron="0 5 3 * *"))
    plan = chapctl.plan(repo)
    assert [(a.kind, a.name, a.op) for a in plan.actions if a.writes and not a.quiet] == [
        ("schedule", "laos-dengue/monthly-fixed", "update")]
    chapctl.apply(repo)
    second = schedules_by_slug(clean_server, "laos-dengue")
    assert {k: s["id"] for k, s in second.items()} == {k: s["id"] for k, s in first.items()}
    assert second["monthly-fixed"]["schedule"]["cron"] == "0 5 3 * *"
    assert second["weekly"]["updated"] == first["weekly"]["updated"]

    # A new slug is a new schedule (the old one goes); the other keeps its id.
    repo.write_project(two_schedules(monthly_slug="monthly"))
    chapctl.apply(repo)
    third = schedules_by_slug(clean_server, "laos-dengue")
    assert sorted(third) == ["monthly", "weekly"] and third["weekly"]["id"] == first["weekly"]["id"]
    again = chapctl.apply(repo).counts()
    assert (again["created"], again["updated"], again["deleted"]) == (0, 0, 0)


def automations(server) -> list[dict[str, Any]]:
    with server.client() as c:
        return c.post("/automations/filter", json={}).json()


def foreign_automations(server) -> list[str]:
    """Two automations chapctl does not own: one made by hand, one of another chapctl owner."""
    created = []
    with server.client() as c:
        for name, tags in (("by hand", []), ("other repo", ["managed-by:chapctl", "chapctl-owner:someone-else",
                                                           "chapctl-alert:laos-dengue/failed"])):
            body = {"name": name, "tags": tags, "trigger": {"type": "event", "posture": "Reactive",
                                                            "expect": ["prefect.flow-run.Failed"], "threshold": 1,
                                                            "within": 0},
                    "actions": [{"type": "do-nothing"}]}
            created.append(c.post("/automations/", json=body).raise_for_status().json()["id"])
    return created


def test_alerts_are_automations_reviewed_reverted_and_pruned(chapctl, make_repo, clean_server):
    theirs = foreign_automations(clean_server)
    repo = make_repo([two_schedules(), project("laos-malaria")], DEFAULTS)
    plan = chapctl.plan(repo)
    created = sorted(a.name for a in plan.actions if a.kind == "automation" and a.op == "create")
    assert created == ["laos-dengue/failed", "laos-dengue/missed", "laos-malaria/failed", "laos-malaria/missed"]
    chapctl.apply(repo)

    mine = {a["name"]: a for a in automations(clean_server) if a["id"] not in theirs}
    assert sorted(mine) == ["chapctl laos-dengue: failed run", "chapctl laos-dengue: missed run",
                            "chapctl laos-malaria: failed run", "chapctl laos-malaria: missed run"]
    failed = mine["chapctl laos-dengue: failed run"]
    dep_id = deployment(clean_server, "laos-dengue")["id"]
    assert failed["trigger"]["match_related"]["prefect.resource.id"] == f"prefect.deployment.{dep_id}"
    assert sorted(failed["trigger"]["expect"]) == ["prefect.flow-run.Crashed", "prefect.flow-run.Failed"]
    assert "chapctl-owner:default" in failed["tags"]
    missed = mine["chapctl laos-dengue: missed run"]
    assert missed["trigger"]["posture"] == "Proactive" and missed["trigger"]["within"] == 1800
    (action,) = failed["actions"]
    with clean_server.client() as c:
        block = c.get(f"/block_documents/{action['block_document_id']}", params={"include_secrets": True}).json()
    assert block["name"] == "ops-webhook" and block["data"]["secrets"] == {"url": HOOK_URL}
    assert block["block_type"]["slug"] == "custom-webhook"
    assert chapctl.plan(repo).has_changes is False
    assert not any(HOOK_SECRET in (path.read_text()) for path in repo.root.glob("**/*.yaml"))

    # Edited in the UI: plan shows the drift, before -> after; apply reverts it.
    with clean_server.client() as c:
        c.patch(f"/automations/{failed['id']}", json={"enabled": False}).raise_for_status()
    plan = chapctl.plan(repo)
    (drifted,) = [a for a in plan.actions if a.writes]
    assert (drifted.kind, drifted.name, drifted.op, drifted.drift) == ("automation", "laos-dengue/failed", "update", True)
    assert [(c.field, c.before, c.after) for c in drifted.changes] == [("enabled", False, True)]
    chapctl.apply(repo)
    assert next(a for a in automations(clean_server) if a["id"] == failed["id"])["enabled"] is True

    # A project without `missed` loses that automation; a removed project loses both.
    malaria = project("laos-malaria", alerts={"notify": ["ops-webhook"]})
    repo.write_project(malaria)
    repo.remove_project("laos-dengue")
    plan = chapctl.plan(repo)
    deleted = sorted(a.name for a in plan.actions if a.kind == "automation" and a.op == "delete")
    assert deleted == ["laos-dengue/failed", "laos-dengue/missed", "laos-malaria/missed"]
    chapctl.apply(repo)
    left = {a["id"]: a["name"] for a in automations(clean_server)}
    assert sorted(left.values()) == ["by hand", "chapctl laos-malaria: failed run", "other repo"]
    assert set(theirs) <= set(left)
    result = chapctl.apply(repo)
    assert (result.counts()["created"], result.counts()["updated"], result.counts()["deleted"]) == (0, 0, 0)

    # The last alert gone: the owner's automations are still found and pruned.
    repo.write_project(project("laos-malaria"))
    repo.write_defaults({"timezone": "UTC"})
    repo.compile()
    chapctl.apply(repo)
    assert sorted(a["name"] for a in automations(clean_server)) == ["by hand", "other repo"]
    assert all(HOOK_SECRET not in out for out in chapctl.outputs)


def concurrency_limits(server) -> dict[str, dict[str, Any]]:
    with server.client() as c:
        return {r["name"]: r for r in c.post("/v2/concurrency_limits/filter", json={}).json()}


def test_limits_per_project_and_per_dhis2_instance(chapctl, make_repo, clean_server):
    with clean_server.client() as c:  # somebody else's global limit
        c.post("/v2/concurrency_limits/", json={"name": "their-limit", "limit": 5}).raise_for_status()
    limited = project("laos-malaria", limits={"concurrency": 1, "collision_strategy": "CANCEL_NEW"})
    repo = make_repo([limited, project("laos-dengue"), project("rwanda-dengue", "rwanda-dhis2")],
                     {"timezone": "UTC", "instance_limits": {"laos-dhis2": 1}})
    chapctl.apply(repo)
    limits = concurrency_limits(clean_server)
    assert limits["chapctl-default--laos-dhis2"]["limit"] == 1 and limits["their-limit"]["limit"] == 5
    malaria = deployment(clean_server, "laos-malaria")
    assert malaria["global_concurrency_limit"]["limit"] == 1
    assert malaria["concurrency_options"]["collision_strategy"] == "CANCEL_NEW"
    assert deployment(clean_server, "laos-dengue")["global_concurrency_limit"] is None
    assert malaria["parameters"]["chap_concurrency_limit"] == "chapctl-default--laos-dhis2"
    assert "chap_concurrency_limit" not in deployment(clean_server, "rwanda-dengue")["parameters"]
    assert chapctl.plan(repo).has_changes is False

    # Changed on the server: reverted. Changed in the files: updated.
    with clean_server.client() as c:
        c.patch(f"/v2/concurrency_limits/{limits['chapctl-default--laos-dhis2']['id']}", json={"limit": 4})
    (drift,) = [a for a in chapctl.plan(repo).actions if a.writes]
    assert (drift.kind, drift.op, drift.drift, [(c.field, c.before, c.after) for c in drift.changes]) == (
        "concurrency_limit", "update", True, [("limit", 4, 1)])
    repo.write_project(project("laos-malaria", limits={"concurrency": 2}))
    repo.write_defaults({"timezone": "UTC", "instance_limits": {"laos-dhis2": 2}})
    repo.compile()
    chapctl.apply(repo)
    assert concurrency_limits(clean_server)["chapctl-default--laos-dhis2"]["limit"] == 2
    malaria = deployment(clean_server, "laos-malaria")
    assert (malaria["global_concurrency_limit"]["limit"], malaria["concurrency_options"]["collision_strategy"]) == (
        2, "ENQUEUE")

    # Dropped: the deployment limit and the instance limit go; theirs stays.
    repo.write_project(project("laos-malaria"))
    repo.write_defaults({"timezone": "UTC"})
    repo.compile()
    chapctl.apply(repo)
    assert sorted(concurrency_limits(clean_server)) == ["their-limit"]
    assert deployment(clean_server, "laos-malaria")["global_concurrency_limit"] is None
    assert chapctl.plan(repo).has_changes is False


def test_plan_output_names_alerts_and_limits(chapctl, make_repo, clean_server):
    repo = make_repo([two_schedules()], {**DEFAULTS, "instance_limits": {"laos-dhis2": 1}})
    proc = chapctl.cli(repo, "plan")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "+ concurrency limit chapctl-default--laos-dhis2: create" in out
    assert "+ automation laos-dengue/failed: create — alert on failed runs, to ops-webhook" in out
    assert "grace: 1800 s after Late" in out
    assert "schedule monthly-fixed: cron '0 5 2 * *' UTC" in out and "end_mode=fixed" in out
    assert HOOK_SECRET not in out + proc.stderr


def test_a_notification_another_owner_manages_is_refused_with_a_notification_hint(chapctl, make_repo, clean_server):
    """Issue 21 #19: the clash hint spoke of `credentials.block` for a notification's block."""
    laos = make_repo([project("laos-malaria", "laos-dhis2", alerts={"notify": ["ops-webhook"]})],
                     {**DEFAULTS, "owner": "laos-team"}, name="laos")
    chapctl.apply(laos)
    rwanda = make_repo([project("rwanda-malaria", "rwanda-dhis2", alerts={"notify": ["ops-webhook"]})],
                       {**DEFAULTS, "owner": "rwanda-team"}, name="rwanda")
    (blocker,) = [b for b in chapctl.plan(rwanda).blockers if "ops-webhook" in b]
    assert "'laos-team'" in blocker and "credentials.block" not in blocker
    assert "rename the notification `ops-webhook` in projects/_defaults.yaml" in blocker


@pytest.mark.parametrize("sweep", SWEEPS)
def test_a_killed_apply_of_alerts_limits_and_schedules_converges(chapctl, make_repo, clean_server, sweep):
    """Kill after k writes (the server committed them, the client died); re-run. The default run
    kills at the first and last write and around every stage boundary; the slow lane after every write."""
    from tests.server.conftest import assert_kills_converge, normalized_state

    limited = {**two_schedules(), "limits": {"concurrency": 1}}
    repo = make_repo([limited, project("laos-malaria")], {**DEFAULTS, "instance_limits": {"laos-dhis2": 1}})

    def state() -> dict[str, Any]:
        out = normalized_state(clean_server)
        out["automations"] = sorted((a["name"], a["enabled"], json_of(a["trigger"]["expect"])) for a in automations(clean_server))
        out["limits"] = sorted(("deployment:*" if n.startswith("deployment:") else n, r["limit"])
                               for n, r in concurrency_limits(clean_server).items())  # a deployment's own: by id
        return out

    assert assert_kills_converge(chapctl, repo, clean_server.wipe, state, sweep) >= 10


def json_of(value: Any) -> str:
    import json

    return json.dumps(sorted(value))
