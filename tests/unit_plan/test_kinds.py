"""The registry of Prefect object kinds (compiler/reconcile/kinds/), the house test of issue 23 #1:
every kind is one module, registered once, with its read, its rule, the action kinds it emits (a
label and a stage each); the planner emits exactly the registered action kinds on the golden
cases; apply's stages write every object after what it refers to; and a new kind really is one
module — a toy kind written to a file of its own is read, planned, staged, applied and reported
with no other edit (the server is httpx's transport seam)."""

from __future__ import annotations

import importlib.util
import json
import pkgutil
import uuid
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from compiler.jsontree import leaves
from compiler.output import plan as report
from compiler.reconcile import kinds
from compiler.reconcile.actions import CREATE, NOOP, Placeholder, ResourceId
from compiler.reconcile.apply import execute, stages
from compiler.reconcile.client import ApiSettings, PrefectAPI
from compiler.reconcile.desired import load_desired
from compiler.reconcile.facts import Facts
from compiler.reconcile.kinds import LABELS, REGISTRY, action_kinds, register, unregister
from compiler.reconcile.live import manages, read_live
from compiler.reconcile.plan import plan
from tests.plan_golden.test_plan_golden import CASES, _load

GOLDEN = Path(__file__).resolve().parents[1] / "plan_golden"
PLANS = {case.name: _load(case)[1] for case in CASES}


# -- the registry ---------------------------------------------------------------------------------
def test_every_kind_module_is_registered_once():
    package = Path(kinds.__file__).parent
    modules = sorted(m.name for m in pkgutil.iter_modules([str(package)]) if m.name != "base")
    registered = []
    for name in modules:
        module = importlib.import_module(f"compiler.reconcile.kinds.{name}")
        assert getattr(module, "KIND", None) in REGISTRY, f"kinds/{name}.py defines no registered KIND"
        registered.append(module.KIND)
    assert len(REGISTRY) == len(registered) == len({k.name for k in REGISTRY})
    every = [a.name for k in REGISTRY for a in k.actions]
    assert len(every) == len(set(every)), "an action kind is emitted by two kinds"
    with pytest.raises(ValueError, match="registered already"):
        register(REGISTRY[0])


def test_every_kind_reads_and_plans_and_labels_and_stages_what_it_emits():
    for kind in REGISTRY:
        assert kind.reads and all(callable(r.read) and isinstance(r.at, int) for r in kind.reads), kind.name
        for a in kind.actions:
            assert a.label and isinstance(a.stage, int) and a.stage >= 0, (kind.name, a)
        if kind.actions:
            assert callable(kind.rule), kind.name
    # The one kind without a rule of its own: chapctl's variables, whose claims the block documents'
    # actions write and whose commit record apply writes.
    assert [k.name for k in REGISTRY if k.rule is None] == ["variable"]
    assert {k.manages for k in REGISTRY if k.manages} == {"automations", "concurrency_limits"}


def test_the_planner_emits_exactly_the_registered_kinds():
    emitted = {a.kind for p in PLANS.values() for a in p.actions}
    assert emitted == set(action_kinds())


def test_the_reporters_group_every_kind_by_its_label():
    assert dict(report.GROUPS) == {a.name: a.label for k in REGISTRY for a in k.actions}


def _refers_to(action) -> set[Placeholder]:
    out = set()
    for r in action.requests:
        parts = [*(r.path if isinstance(r.path, tuple) else ()), *leaves(r.body)]
        out |= {p for p in parts if isinstance(p, Placeholder)} | {p.placeholder for p in parts
                                                                   if isinstance(p, ResourceId)}
    return out


def _assert_written_after_what_it_refers_to(p) -> None:
    where = {}  # action -> (stage, chain, position)
    for s, stage in enumerate(stages(p)):
        for c, chain in enumerate(stage):
            for i, a in enumerate(chain):
                where[id(a)] = (s, c, i)
    assert len(where) == sum(a.writes for a in p.actions)  # every write is in a stage, once
    providers = {a.provides: a for a in p.actions if a.provides is not None and id(a) in where}
    for a in p.actions:
        for ph in _refers_to(a):
            if ph in providers and providers[ph] is not a:  # an action's later requests may use its own id
                (ps, pc, pi), (s, c, i) = where[id(providers[ph])], where[id(a)]
                assert ps < s or (ps == s and pc == c and pi < i), (a.kind, a.name, ph)


@pytest.mark.parametrize("name", sorted(PLANS))
def test_apply_writes_every_object_after_what_it_refers_to(name):
    _assert_written_after_what_it_refers_to(PLANS[name])


def test_some_case_refers_across_stages():  # the check above is not vacuous
    assert any(ph in {a.provides for a in p.actions} for p in PLANS.values() for a in p.actions
               for ph in _refers_to(a))


# -- read_live through the registry ----------------------------------------------------------------
class FakeServer:
    """httpx's transport seam: every filter answers `rows` (by path; else nothing), a GET of a
    deployment answers one without schedules, other GETs 404, and every write a new id; `lost` (a
    path) loses the first answer to a write there (502) once."""

    def __init__(self, rows: dict[str, list] | None = None, lost: str | None = None, found: dict | None = None):
        self.rows, self.lost, self.found = rows or {}, lost, found
        self.requests: list[tuple[str, str]] = []
        self.bodies: dict[tuple[str, str], list] = {}
        self.ids: dict[tuple[str, str], str] = {}  # (path, name) -> the id of the object a write made

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/api")
        body = json.loads(request.content) if request.content else None
        self.requests.append((request.method, path))
        self.bodies.setdefault((request.method, path), []).append(body)
        if path == "/admin/version":
            return httpx.Response(200, json="3.4.0")
        if request.method == "POST" and path.endswith("/filter"):
            return httpx.Response(200, json=self.rows.get(path, []) if not body.get("offset") else [])
        if request.method == "GET":
            if self.found is not None and path == self.found["at"]:
                return httpx.Response(200, json=self.found["row"])
            if path.startswith("/deployments/"):
                return httpx.Response(200, json={})  # apply's RUNS step: no active schedule, nothing to make
            return httpx.Response(404, json={"detail": "not found"})
        if self.lost == path:
            self.lost = None
            return httpx.Response(502)
        made = str(uuid.uuid4())
        if isinstance(body, dict) and "name" in body:
            self.ids[(path, body["name"])] = made
        return httpx.Response(201, json={"id": made, **(body if isinstance(body, dict) else {})})

    def paths(self, method: str | None = None) -> list[str]:
        return [p for m, p in self.requests if method in (None, m)]


def _api(server: FakeServer) -> PrefectAPI:
    return PrefectAPI(ApiSettings(url="http://prefect.test/api"), transport=httpx.MockTransport(server),
                      backoff=0.001, retries=2)


def _desired(case: str):
    path = GOLDEN / "cases" / case
    env = json.loads((path / "env.json").read_text())
    facts = Facts.from_json(json.loads((GOLDEN / "facts.json").read_text()))
    return load_desired(path / "desired", env, facts=facts), env


STATE = "chapctl-state--default"


def _record(manages_: list[str]) -> dict[str, list]:
    return {"/variables/filter": [{"name": STATE, "id": "v1", "value": {"owner": "default", "manages": manages_}}]}


def test_read_live_runs_the_kinds_reads_in_their_order():
    """The order the registry gives (`Read.at`): work pools, block documents then the block types no
    document showed, chapctl's variables, deployments, their flows, then the optional kinds the
    owner's record lists. Before an owner's first apply, the legacy read comes after the flows."""
    desired, env = _desired("first_apply_empty_server")
    server = FakeServer(_record(["automations", "concurrency_limits"]))
    read_live(_api(server), desired, env)
    schemas = [p for p in server.paths() if p.startswith(("/block_schemas/", "/block_types/"))]
    assert len(schemas) == 2  # the schema by checksum (404), then the type by slug (404)
    assert server.paths() == ["/admin/version", "/work_pools/filter", "/block_documents/filter", *schemas,
                              "/variables/filter", "/deployments/filter", "/flows/filter",
                              "/automations/filter", "/v2/concurrency_limits/filter"]
    server = FakeServer()  # no record: the first apply; no optional kind declared
    read_live(_api(server), desired, env)
    assert server.paths()[-3:] == ["/deployments/filter", "/flows/filter", "/deployments/filter"]


# -- a new kind is one module ------------------------------------------------------------------
TOY_MODULE = '''
"""Widgets: one per project, naming its deployment; created when missing. A toy kind for the test."""

from compiler.reconcile.actions import CREATE, NOOP, Action, Change, Request, ref
from compiler.reconcile.kinds.base import ActionKind, Kind, Read


def read(api, desired, live, env):
    live.extra["widget"] = {r["name"]: r["id"] for r in api.filter_all("/widgets/filter", {})}


def rule(ctx, p):
    have = ctx.live.extra.get("widget", {})
    out = []
    for d in ctx.desired.deployments:
        if d.name in have:
            out.append(Action("widget", d.name, NOOP, "exists", project=d.name))
            continue
        deployment = (ctx.live_by_key.get((d.flow_name, d.name)) or {}).get("id") or ref("deployment", d.name)
        out.append(Action("widget", d.name, CREATE, "new project", changes=[Change("deployment", None, d.name)],
                          requests=[Request("POST", "/widgets/", {"name": d.name, "deployment_id": deployment})],
                          project=d.name))
    return out


def find_created(api, path, body):
    return api.get(f"/widgets/name/{body['name']}") if path == "/widgets/" else None


KIND = Kind("widget", reads=(Read(65, read),), rule=rule, actions=(ActionKind("widget", "Widgets", stage=5),),
            find_created=find_created, **OPTIONAL)
'''


@contextmanager
def registered_toy(tmp_path: Path, optional: bool = False):
    """The toy kind's module, written to a file of its own, imported and registered (and no more)."""
    path = tmp_path / "widget.py"
    optional_args = ('dict(manages="widgets", declared=lambda desired: False, '
                     'present=lambda live: bool(live.extra.get("widget")))') if optional else "{}"
    path.write_text(TOY_MODULE.replace("**OPTIONAL", f"**{optional_args}"))
    spec = importlib.util.spec_from_file_location("toy_widget_kind", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    register(module.KIND)
    try:
        yield module.KIND
    finally:
        unregister(module.KIND)


def test_a_new_kind_is_one_module(tmp_path):
    desired, env = _desired("first_apply_empty_server")
    before = plan(desired, read_live(_api(FakeServer()), desired, env))
    with registered_toy(tmp_path):
        # read_live runs its read at its place: after the deployments and their flows, before the optional kinds
        server = FakeServer({"/widgets/filter": [{"name": "laos-dengue", "id": "w1"}], **_record(["automations"])})
        live = read_live(_api(server), desired, env)
        assert live.extra == {"widget": {"laos-dengue": "w1"}}
        assert server.paths()[-3:] == ["/flows/filter", "/widgets/filter", "/automations/filter"]
        # a saved plan compares its facts (compiler/reconcile/saved.py), as read
        from compiler.reconcile.actions import PlanOptions
        from compiler.reconcile.saved import digest, live_objects

        assert live_objects(desired, live, PlanOptions())["widget"] == digest({"laos-dengue": "w1"})

        # plan runs its rule after the kinds registered before it
        p = plan(desired, live)
        toys = [(a.name, a.op) for a in p.actions if a.kind == "widget"]
        assert toys == [("laos-dengue", NOOP), ("laos-malaria", CREATE), ("rwanda-malaria", CREATE)]
        assert [a.kind for a in p.actions[:len(before.actions)]] == [a.kind for a in before.actions]
        assert p.actions[-1].kind == "widget"

        # apply writes it in its stage, after the deployments it names
        staged = stages(p)
        assert [[a.kind for a in chain] for chain in staged[-1]] == [["widget", "widget"]]
        _assert_written_after_what_it_refers_to(p)

        # the reporters group it under its label
        assert report.GROUPS["widget"] == LABELS["widget"] == "Widgets"
        lines = [text for _, text in report.plan_lines(p)]
        assert lines[lines.index("Widgets") + 1:][:2] == ["  + widget laos-malaria: create — new project",
                                                          "      deployment: laos-malaria"]

        # apply sends its writes, the deployment's id resolved; a create whose answer was lost is
        # found by the kind's own `find_created` and not sent again
        server = FakeServer(lost="/widgets/", found={"at": "/widgets/name/laos-malaria", "row": {"id": "w2"}})
        result = execute(p, _api(server), env=env)
        widgets = server.bodies[("POST", "/widgets/")]
        assert [w["name"] for w in widgets] == ["laos-malaria", "rwanda-malaria"]  # the first answer lost, found
        assert widgets[1]["deployment_id"] == server.ids[("/deployments/", "rwanda-malaria")]  # the id the deployment's POST gave
        assert server.paths("POST")[-2:] == ["/widgets/", "/widgets/"] and "/widgets/name/laos-malaria" in server.paths()
        assert any(r.startswith("POST /widgets/: already created (its answer was lost)") for r in result.recovered)
    # unregistered, it is gone from every phase
    assert "widget" not in LABELS and not any(a.kind == "widget" for a in plan(desired, live).actions)


@pytest.mark.parametrize(("recorded", "on_server", "read", "kept"), [
    ([], [], False, []),  # neither declared nor recorded: not read
    (["widgets"], [{"name": "laos-dengue", "id": "w1"}], True, ["widgets"]),  # recorded, some left: still managed
    (["widgets"], [], True, []),  # recorded, none left (all pruned): the next record drops it
])
def test_an_optional_kind_is_read_only_when_the_owner_has_some(tmp_path, recorded, on_server, read, kept):
    desired, env = _desired("first_apply_empty_server")
    with registered_toy(tmp_path, optional=True):
        server = FakeServer({"/widgets/filter": on_server, **_record(recorded)})
        live = read_live(_api(server), desired, env)
        assert ("/widgets/filter" in server.paths()) is read
        assert manages(desired, live) == kept
