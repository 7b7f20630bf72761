"""Saved plans, the pure part (compiler/reconcile/saved.py): the live digest moves with what the
planner decides by and with nothing else, the file reads back what it wrote, and a mismatch is named."""

from __future__ import annotations

import copy
import functools
import json
from dataclasses import replace
from pathlib import Path

import pytest

from compiler.errors import UserError
from compiler.reconcile import saved
from compiler.reconcile.actions import RUNS, Action, Plan, PlanOptions, Request, SecretFromEnv
from compiler.reconcile.desired import load_desired
from compiler.reconcile.facts import Facts
from compiler.reconcile.live import Live

GOLDEN = Path(__file__).resolve().parents[1] / "plan_golden"
CASE = GOLDEN / "cases" / "automation_edited_in_ui_is_reverted"
OPTIONS = PlanOptions()


def live() -> Live:
    return Live.from_json(json.loads((CASE / "live.json").read_text()))


@functools.cache
def desired():
    facts = Facts.from_json(json.loads((GOLDEN / "facts.json").read_text()))
    return load_desired(CASE / "desired", json.loads((CASE / "env.json").read_text()), facts=facts)


def objects(state: Live, options: PlanOptions = OPTIONS) -> dict[str, str]:
    return saved.live_objects(desired(), state, options)


def moved(a: Live, b: Live, options: PlanOptions = OPTIONS) -> list[str]:
    before, after = objects(a, options), objects(b, options)
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


def test_every_kind_names_its_objects():
    names = list(objects(live()))
    for prefix in ("server version", "work pool ", "block type ", "block schema ", "block ", "flow ",
                   "deployment dhis2-chap-prediction/", "automation ", "concurrency limit ", "variable "):
        assert any(n.startswith(prefix) for n in names), prefix


def test_what_moves_on_a_quiet_server_does_not_move_the_digest():
    quiet = live()
    state = copy.deepcopy(quiet)
    for d in state.deployments:  # a worker's poll, the scheduler's pass
        d["updated"] = "2031-01-01T00:00:00Z"
        for s in d["schedules"]:
            s["updated"] = "2031-01-01T00:00:00Z"
    for b in state.block_documents:
        b["updated"] = "2031-01-01T00:00:00Z"
        b["secret_digests"] = {"password": "sha256:" + "1" * 64}  # read only where the variable is set
    for v in state.variables.values():
        v["updated"] = "2031-01-01T00:00:00Z"
    for a in state.automations:
        a["updated"] = "2031-01-01T00:00:00Z"
    state.variables["chapctl-lock--default"] = {"id": "l1", "value": {"holder": "apply"}, "updated": "x"}  # our own lock
    state.runs = {state.deployments[0]["id"]: [  # the scheduler's runs of a deployment being pruned
        {"id": "r1", "state_type": "SCHEDULED", "state_name": "Scheduled", "run_count": 0}]}
    state.deployments = list(reversed(state.deployments))  # another order of the same answer
    assert moved(quiet, state) == []


@pytest.mark.parametrize(("edit", "named"), [
    (lambda s: s.deployments[0].update(description="edited in the UI"), "deployment dhis2-chap-prediction/"),
    (lambda s: s.deployments[0]["schedules"][0].update(active=False), "deployment dhis2-chap-prediction/"),
    (lambda s: s.automations[0].update(enabled=False), "automation "),
    (lambda s: s.concurrency_limits[0].update(limit=5), "concurrency limit "),
    (lambda s: s.block_documents[0]["data"].update(username="someone"), "block "),
    (lambda s: s.variables.update({"chapctl-state--default": {"id": "v", "value": {"commit": "other"}}}),
     "variable chapctl-state--default"),
    (lambda s: s.work_pools.clear(), "work pool "),
    (lambda s: setattr(s, "server_version", "3.99.0"), "server version"),
])
def test_an_edit_moves_the_digest_and_names_the_object(edit, named):
    state = live()
    edit(state)
    changed = moved(live(), state)
    assert len(changed) == 1 and changed[0].startswith(named), changed


def test_runs_in_flight_count_only_when_the_plan_cancels_them():
    state = live()
    dep = state.deployments[0]
    state.runs = {dep["id"]: [{"id": "r2", "state_type": "RUNNING", "state_name": "Running", "run_count": 1}]}
    assert moved(live(), state) == []
    cancelling = PlanOptions(cancel_in_flight=True)
    assert moved(live(), state, cancelling) == [f"runs in flight of deployment {dep['name']}"]


def _plan(body_secret: str = "LAOS_DHIS2_PASSWORD", stamp: str = "t1") -> Plan:
    return Plan(actions=[
        Action("block_document", "laos-dhis2", "update", requests=[
            Request("PATCH", "/block_documents/b1", {"data": {"password": SecretFromEnv(body_secret)}})]),
        Action("deployment", "laos-malaria", "update", requests=[
            Request("PATCH", "/deployments/d1", {"version": "chapctl:default:1"}),
            Request(RUNS, "/deployments/d1", {"as_read": {"d1": stamp}})]),
        Action("flow", "dhis2-chap-prediction", "noop"),
    ])


def test_the_writes_compared_are_the_requests_but_the_stamps_a_runs_step_carries():
    assert saved.writes(_plan()) == saved.writes(_plan(stamp="t2"))
    assert list(saved.writes(_plan())) == ["block_document laos-dhis2", "deployment laos-malaria"]
    assert saved.writes(_plan()) != saved.writes(_plan(body_secret="OTHER_PASSWORD"))


def _saved(**changes) -> saved.SavedPlan:
    plan = _plan()
    base = saved.SavedPlan(environment="staging", owner="moh-staging", server="https://s.example.org/api",
                           server_version="3.9.1", commit="a" * 40, tree="b" * 40,
                           files={"prefect.yaml": "sha256:1", "blocks/x.yaml": "sha256:2"}, options=OPTIONS,
                           live=objects(live()), writes=saved.writes(plan), plan=plan.to_json(include_requests=True),
                           chapctl="0.1.0")
    return replace(base, **changes)


def test_the_file_reads_back_what_it_wrote_and_is_the_same_bytes_for_the_same_inputs(tmp_path):
    first = saved.write(tmp_path / "a.json", _saved())
    second = saved.write(tmp_path / "b.json", _saved())
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes() and first.digest == second.digest
    back, where = saved.load(tmp_path / "a.json")
    assert back == _saved() and where.digest == first.digest
    text = (tmp_path / "a.json").read_text()
    assert '"$secret_from_env": "LAOS_DHIS2_PASSWORD"' in text and '"url": "https://s.example.org/api"' in text


@pytest.mark.parametrize(("content", "message"), [
    ("not json", "is not a plan saved by `chapctl plan --out` (not JSON)"),
    ('{"actions": []}', "is not a plan saved by `chapctl plan --out`"),
    ('{"chapctl_saved_plan": 2}', "was saved by another chapctl (saved-plan format 2, this one reads 1)"),
    ('{"chapctl_saved_plan": 1, "environment": null}', "is not a complete saved plan (missing or malformed"),
])
def test_a_file_that_is_no_saved_plan_is_one_clear_error(tmp_path, content, message):
    (tmp_path / "plan.json").write_text(content)
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)").replace("`", ".")):
        saved.load(tmp_path / "plan.json")


def test_a_mismatch_names_the_first_thing_that_differs():
    ok = _saved()
    assert saved.mismatch(ok, _saved()) is None
    assert saved.mismatch(ok, _saved(environment=None)) == (
        "the plan was made for environment 'staging'; this apply is for no environment (the projects as declared) "
        "(--env or CHAPCTL_ENV)")
    assert saved.mismatch(ok, _saved(server="https://p.example.org/api", environment="staging")) == (
        "the plan was made against the Prefect server at https://s.example.org/api; this apply talks to "
        "https://p.example.org/api")
    files = saved.mismatch(ok, _saved(files={"prefect.yaml": "sha256:9", "blocks/y.yaml": "sha256:3"}, commit="c" * 40,
                                      tree="d" * 40))
    assert files == ("the compiled files differ from those the plan was made from (commit aaaaaaaaaaaa, tree "
                     "bbbbbbbbbbbb; this checkout: commit cccccccccccc, tree dddddddddddd): prefect.yaml changed, "
                     "blocks/y.yaml added, blocks/x.yaml removed")
    state = live()
    state.deployments[0]["description"] = "edited"
    assert saved.mismatch(ok, _saved(live=objects(state))) == (
        f"the server changed since the plan was made: deployment dhis2-chap-prediction/"
        f"{state.deployments[0]['name']} changed")
    assert saved.mismatch(ok, _saved(writes=saved.writes(_plan(body_secret="X")))) == (
        "the plan made now differs from the saved one: block_document laos-dhis2 would now be written differently")
    assert saved.moved_commit(ok, "c" * 40, "d" * 40).startswith("the plan was made at commit aaaaaaaaaaaa")
    assert saved.moved_commit(ok, "a" * 40, "b" * 40) is None


def test_what_concerns_only_other_owners_does_not_move_the_digest():
    """Another team's apply on the same server (its commit record, its lock, its own credentials
    block and claim) is none of this plan's business."""
    state = live()
    state.variables["chapctl-state--kenya-team"] = {"id": "k1", "value": {"commit": "abc"}}
    state.variables["chapctl-lock--kenya-team"] = {"id": "k2", "value": {"holder": "ci"}}
    state.variables["chapctl-block--chap-dhis2-credentials--kenya-dhis2"] = {
        "id": "k3", "value": {"owner": "kenya-team", "slug": "chap-dhis2-credentials", "name": "kenya-dhis2"}}
    state.block_documents.append({"id": "kb", "slug": "chap-dhis2-credentials", "name": "kenya-dhis2",
                                  "data": {"base_url": "https://k.example.org"}, "block_schema_id": "s",
                                  "secret_digests": {}})
    assert moved(live(), state) == []
    # ... but a claim of a block this owner manages, by whoever, is.
    claimed = live()
    claimed.variables["chapctl-block--chap-dhis2-credentials--laos-dhis2"] = {
        "id": "k4", "value": {"owner": "kenya-team", "slug": "chap-dhis2-credentials", "name": "laos-dhis2"}}
    assert moved(live(), claimed) == ["variable chapctl-block--chap-dhis2-credentials--laos-dhis2"]
