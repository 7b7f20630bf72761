"""`chapctl import`'s mapping, without a server: `map_server` is a pure function of what was read
(`ServerState`, secrets already dropped by `read_server`) and of the repository (`RepoState`).
The end to end run against a real server is tests/server/test_import.py."""

from __future__ import annotations

import ast
import copy
import random
import shutil
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from compiler.compile.load import load_repo
from compiler.compile.validate import validate
from compiler.reconcile import importer
from compiler.reconcile.importer import RepoState, ServerState, cadence, instance_of_block, instance_of_url, map_server

ROOT = Path(__file__).resolve().parents[2]
CANARY = "canary-Pw-unit-9d2e"
LAOS, RWANDA = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"


def sid(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def ui_schedule(n: int, cron: str, zone: str | None, params: dict, active: bool = True, **extra) -> dict:
    return {"id": sid(n), "schedule": {"cron": cron, "timezone": zone, "day_or": True, **extra}, "active": active,
            "slug": None, "parameters": importer.read.safe_parameters(params), "max_scheduled_runs": None,
            "created": f"2026-01-01T00:00:{n:02d}Z"}


def ref(block_id: str) -> dict:
    return {"$ref": {"block_document_id": block_id}}


def served(schedules: list[dict], name: str = "chap-scheduler", params: dict | None = None) -> dict:
    return {"id": sid(900), "name": name, "work_pool_name": None, "paused": False, "tags": [], "version": "abc",
            "description": "Fetch DHIS2 data", "parameters": importer.read.safe_parameters(params or {}),
            "pull_steps": [], "schedules": schedules}


def state(*deployments: dict) -> ServerState:
    blocks = {LAOS: {"name": "laos-dhis2", "slug": "chap-dhis2-credentials", "anonymous": False},
              RWANDA: {"name": "rwanda-dhis2", "slug": "chap-dhis2-credentials", "anonymous": False}}
    return ServerState("http://prefect/api", "3.9.1", list(deployments), blocks, {"laos-dhis2", "rwanda-dhis2"})


def repo(**kw) -> RepoState:
    base = dict(project_names=set(), replaced={}, blocks=set(), defaults_exist=False, work_pool="default",
                timezone="UTC")
    base.update(kw)
    return RepoState(**base)


def load(text: str) -> dict:
    return YAML(typ="safe", pure=True).load(text)


SERVED = served([
    ui_schedule(1, "0 6 * * 1", "Asia/Vientiane", {"credentials": ref(LAOS), "end_mode": "offset",
                                                   "end_period_offset": 1, "configured_model_id": 12}),
    ui_schedule(2, "0 6 * * 4", "Asia/Vientiane", {"credentials": ref(LAOS), "end_mode": "offset",
                                                   "end_period_offset": 1, "configured_model_id": 12}),
    ui_schedule(3, "0 4 * * 2", None, {"credentials": ref(RWANDA), "configured_model_id": 3,
                                       "end_mode": "fixed", "end_date": "2026-06-30"}, active=False),
    {**ui_schedule(4, "x", "UTC", {"credentials": ref(RWANDA), "configured_model_id": 3}),
     "schedule": {"interval": 3600.0, "anchor_date": "2026-01-01T00:00:00Z", "timezone": "UTC"}},
    ui_schedule(5, "0 5 * * 1", "UTC", {"credentials": ref(RWANDA), "configured_model_id": 3, "retries": 3}),
    ui_schedule(6, "0 5 * * 1", "UTC", {"credentials": ref(RWANDA)}),
    ui_schedule(7, "0 5 * * 1", "UTC", {"credentials": ref(RWANDA), "configured_model_id": 4}, day_or=False),
], params={"end_mode": "calculated"})

PLAIN = {"id": sid(901), "name": "sl-malaria", "work_pool_name": "chap-pool", "paused": False, "tags": ["sl"],
         "version": None, "description": None,
         "parameters": importer.read.safe_parameters({"credentials": {"base_url": "https://dhis2.sl.example.org/",
                                                                  "username": "chap-bot", "password": CANARY},
                                                  "configured_model_id": 5}),
         "pull_steps": importer.read.safe_pull_steps([{"prefect.deployments.steps.git_clone": {
             "repository": "https://github.com/example/chap.git", "branch": "prod"}}]),
         "schedules": [ui_schedule(8, "0 3 * * 3", "Africa/Freetown", {}),
                       {**ui_schedule(9, "x", "UTC", {}), "schedule": {"rrule": "FREQ=DAILY"}}]}


def test_the_parameters_import_maps_are_the_flows():
    tree = ast.parse((ROOT / "flows/dhis2_chap_prediction.py").read_text())
    flow = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "dhis2_chap_prediction")
    signature = [a.arg for a in flow.args.args]
    assert [p for p in signature if p in importer.FLOW_PARAMETERS] == list(importer.FLOW_PARAMETERS)


def test_secrets_are_dropped_as_they_are_read():
    safe = importer.read.safe_deployment({"id": "x", "name": "d", "parameters": {
        "credentials": {"base_url": "https://h", "username": "u", "password": CANARY}, "api_token": CANARY},
        "schedules": [{"id": "s", "parameters": {"credentials": {"password": CANARY}, "whatever": [CANARY]}}]})
    assert CANARY not in repr(safe)
    assert safe["parameters"]["credentials"] == {"inline": True, "base_url": "https://h", "username": "u",
                                                 "has_password": True}


def test_served_schedules_become_projects_with_unique_readable_names():
    result = map_server(state(SERVED), repo())
    names = [p.name for p in result.projects]
    # Same credentials and model: one project, a `schedules:` entry each, named by its cadence.
    assert names == ["laos-model-12", "rwanda-model-3"]
    laos = load(result.files["projects/laos-model-12.yaml"])
    label = "dhis2-chap-prediction/chap-scheduler"
    assert laos == {
        "name": "laos-model-12", "description": f"Imported from schedules {sid(1)}, {sid(2)} of {label}",
        "credentials": {"block": "laos-dhis2"}, "model_id": 12, "end_mode": "offset", "end_period_offset": 1,
        "schedules": [{"slug": "mon-0600", "cron": "0 6 * * 1", "timezone": "Asia/Vientiane", "active": True,
                       "replaces": {"deployment": label, "schedule_id": sid(1)}},
                      {"slug": "thu-0600", "cron": "0 6 * * 4", "timezone": "Asia/Vientiane", "active": True,
                       "replaces": {"deployment": label, "schedule_id": sid(2)}}]}
    rwanda = load(result.files["projects/rwanda-model-3.yaml"])
    assert rwanda["schedule"] == {"cron": "0 4 * * 2", "timezone": "UTC", "active": False}  # paused stays paused
    assert str(rwanda["end_date"]) == "2026-06-30" and rwanda["end_mode"] == "fixed"
    text = result.files["projects/rwanda-model-3.yaml"]
    assert f"# block document {RWANDA}, in the schedule's parameters" in text
    assert f"# schedule {sid(3)}" in text
    assert "projects/_defaults.yaml" in result.files


def test_what_cannot_be_mapped_is_reported_with_its_id():
    result = map_server(state(SERVED), repo())
    unmapped = {f.id: f.message for f in result.of_kind("unmapped")}
    assert set(unmapped) == {sid(4), sid(5), sid(6), sid(7)}
    assert "interval schedule (every 3600 s)" in unmapped[sid(4)]
    assert "parameter(s) a project cannot hold: retries" in unmapped[sid(5)]
    assert "no configured_model_id" in unmapped[sid(6)]
    assert "day_or is false" in unmapped[sid(7)]
    (serve,) = result.of_kind("serve")
    assert "stop that process" in serve.message and "4 schedule(s) of it were not imported" in serve.message


def test_inline_credentials_become_a_managed_block_and_a_variable_to_set():
    result = map_server(state({**PLAIN, "schedules": PLAIN["schedules"][:1]}), repo())
    (project,) = result.projects
    assert project.name == "sl-malaria" and project.in_place
    data = load(result.files["projects/sl-malaria.yaml"])
    assert data["credentials"] == {"block": "sl-dhis2", "base_url": "https://dhis2.sl.example.org",
                                   "username": "chap-bot", "password_env": "SL_DHIS2_PASSWORD"}
    assert data["work_pool"] == "chap-pool" and data["tags"] == ["sl"]
    assert data["replaces"] == {"deployment": "dhis2-chap-prediction/sl-malaria", "schedule_id": sid(8)}
    (secret,) = result.of_kind("secret")
    assert secret.variable == "SL_DHIS2_PASSWORD"
    defaults = load(result.files["projects/_defaults.yaml"])
    assert defaults["source"] == {"git": {"repository": "https://github.com/example/chap.git", "branch": "prod"}}
    assert CANARY not in repr(result.to_json())


def test_output_validates_and_is_deterministic(tmp_path):
    first = map_server(state(SERVED, PLAIN), repo())
    shuffled = copy.deepcopy(state(SERVED, PLAIN))
    random.Random(7).shuffle(shuffled.deployments)
    assert map_server(shuffled, repo()).files == first.files
    (tmp_path / "projects").mkdir()
    for path, text in first.files.items():
        (tmp_path / path).write_text(text)
    validated = validate(load_repo(tmp_path))
    assert [d for d in validated.diagnostics if d.severity == "error"] == []
    assert len(validated.projects) == 3


def test_names_avoid_the_repository_and_the_server_and_imports_are_not_repeated():
    taken = repo(project_names={"laos-model-12-mon-0600", "sl-malaria"}, replaced={sid(2): "projects/x.yaml"},
                 defaults_exist=True)
    other = served([], name="rwanda-model-3")
    result = map_server(state(SERVED, PLAIN, other), taken)
    names = {p.name for p in result.projects}
    assert names == {"laos-model-12", "rwanda-model-3-tue-0400"}
    kept = {f.object: f.message for f in result.of_kind("kept")}
    assert "already imported: projects/x.yaml replaces it" in kept[f"schedule {sid(2)} of deployment "
                                                                    "dhis2-chap-prediction/chap-scheduler"]
    assert "left alone" in kept["deployment dhis2-chap-prediction/sl-malaria"]
    assert "projects/_defaults.yaml" not in result.files


def test_deployments_chapctl_manages_are_not_imported():
    mine = {**PLAIN, "tags": ["managed-by:chapctl", "chapctl-owner:default"], "version": "chapctl:default:0123456789abcdef"}
    result = map_server(state(mine), repo())
    assert result.projects == [] and result.files == {}
    assert "not imported: sl-malaria" in result.of_kind("kept")[0].message


@pytest.mark.parametrize("cron, word", [("0 6 * * 1", "mon-0600"), ("30 5 2 * *", "day2-0530"),
                                        ("0 6 * * *", "daily-0600"), ("@weekly", "weekly"),
                                        ("0 6 * * 1-5", "montofri-0600"), ("*/5 * * * *", "hourly")])
def test_cadence_words(cron, word):
    assert cadence(cron) == word


def test_instances():
    assert instance_of_block("laos-dhis2") == "laos"
    assert instance_of_block("dhis2-kenya-credentials") == "kenya"
    assert instance_of_url("https://dhis2.la.example.org/dhis") == "la"
    assert instance_of_url("https://hmis.moh.gov.rw") == "moh"
    assert instance_of_url("http://127.0.0.1:8080") == "127-0-0-1"


def test_import_never_overwrites_and_dry_run_writes_nothing(tmp_path, monkeypatch):
    root = tmp_path / "repo"
    (root / "projects").mkdir(parents=True)
    monkeypatch.setattr(importer, "read_server", lambda api: state(SERVED))
    result = importer.import_server(None, root, importer.ImportOptions(dry_run=True))
    assert result.files and not result.written and list((root / "projects").iterdir()) == []
    (root / "projects/rwanda-model-3.yaml").write_text("# mine\n")  # appears between the read and the write
    monkeypatch.setattr(importer, "read_repo", lambda root: repo())
    result = importer.import_server(None, root)
    assert (root / "projects/rwanda-model-3.yaml").read_text() == "# mine\n"
    assert any(f.object == "projects/rwanda-model-3.yaml" and "left alone" in f.message for f in result.findings)
    assert (root / "projects/laos-model-12.yaml").exists()


def test_a_dangling_symlink_in_projects_does_not_break_the_import_check(tmp_path):
    """Issue 21 #12: import validates its files in a scratch copy of projects/; a dangling symlink
    there made the copy fail (an internal shutil.Error)."""
    (tmp_path / "projects").mkdir()
    (tmp_path / "projects" / "gone.yaml").symlink_to(tmp_path / "nowhere.yaml")
    result = map_server(state(SERVED), repo())
    importer.write.validate_files(tmp_path, result)
    assert result.files and not [f for f in result.findings if "would not validate" in f.message]


# -- issue 21 #4: idempotent for every name; server text never becomes YAML; one finding, one line --
def write(tmp_path: Path, files: dict[str, str]) -> None:
    (tmp_path / "projects").mkdir(exist_ok=True)
    for path, text in files.items():
        (tmp_path / path).write_text(text)


def test_a_second_import_writes_nothing_for_a_name_that_is_not_a_project_name(tmp_path):
    """`SL Malaria` becomes projects/sl-malaria.yaml; a second import must recognise it (it used
    to write sl-malaria-wed-0300.yaml, then -2, …), with a schedule and without one."""
    odd = {**PLAIN, "name": "SL Malaria"}
    bare = {**PLAIN, "id": sid(902), "name": "Kenya HMIS", "schedules": []}
    first = map_server(state(odd, bare), repo())
    assert sorted(p.name for p in first.projects) == ["kenya-hmis", "sl-malaria"]
    write(tmp_path, first.files)
    second = map_server(state(odd, bare), importer.read_repo(tmp_path))
    assert second.files == {} and second.projects == []
    kept = " ".join(f.message for f in second.of_kind("kept"))
    assert "projects/sl-malaria.yaml" in kept and "projects/kenya-hmis.yaml" in kept


def test_server_text_is_escaped_in_comments_and_never_becomes_a_key():
    evil = "x\nprediction_setup_id: 99\n#"
    odd = {**PLAIN, "name": evil, "description": "line\nmodel_id: 1", "work_pool_name": "pool\nend_mode: fixed"}
    served_evil = served([ui_schedule(1, "0 6 * * 1", "UTC", {"credentials": ref(LAOS), "configured_model_id": 12})],
                         name="chap\u2028prediction_setup_id: 98\rend_mode: x")
    result = map_server(state(odd, served_evil), repo())
    assert result.projects, result.findings
    for path, text in result.files.items():
        data = load(text)
        assert "prediction_setup_id" not in data and data.get("end_mode") != "fixed", (path, text)
        for line in text.splitlines():
            assert line.startswith("#") or not line.lstrip().startswith(("prediction_setup_id", "model_id: 1\n",
                                                                            "end_mode: x", "end_mode: fixed")), line
    texts = [t for path, t in result.files.items() if not path.endswith("_defaults.yaml")]
    assert any("x\\nprediction_setup_id: 99" in t for t in texts)  # shown escaped, not dropped
    assert any("chap\\u2028prediction_setup_id: 98\\x0dend_mode: x" in t for t in texts)


def test_findings_are_one_line_each():
    from compiler.output.importer import import_lines

    odd = served([{**ui_schedule(4, "x", "UTC", {}), "schedule": {"interval": 60.0}}], name="a\nb: c\r\u2028d")
    result = map_server(state(odd), repo())
    assert result.of_kind("unmapped")
    for _style, text in import_lines(result, dry_run=False):
        assert not any(c in text for c in "\n\r\u2028\u2029\x85"), repr(text)


# -- issue 21 #9: every schedule of every deployment is mapped; nothing is left for adopt to delete --
def pool_deployment(schedules: list[dict], name: str = "sl-malaria") -> dict:
    return {**PLAIN, "name": name, "parameters": importer.read.safe_parameters({"credentials": ref(LAOS),
                                                                          "configured_model_id": 5}),
            "schedules": schedules}


def test_every_schedule_of_a_pool_deployment_is_mapped_in_place_when_they_share_credentials():
    d = pool_deployment([
        ui_schedule(1, "0 3 * * 3", "UTC", {}),
        ui_schedule(2, "0 4 * * 5", "UTC", {"end_mode": "offset", "end_period_offset": 2}),
        ui_schedule(3, "0 5 1 * *", "UTC", {"end_mode": "fixed", "end_date": "2026-06-30"}, active=False)])
    result = map_server(state(d), repo())
    (project,) = result.projects
    assert project.name == "sl-malaria" and project.in_place and project.schedule_ids == (sid(1), sid(2), sid(3))
    data = load(result.files["projects/sl-malaria.yaml"])
    label = "dhis2-chap-prediction/sl-malaria"
    assert [(e["slug"], e.get("parameters"), e["replaces"]["schedule_id"], e["active"]) for e in data["schedules"]] == [
        ("wed-0300", None, sid(1), True),
        ("fri-0400", {"end_mode": "offset", "end_period_offset": 2}, sid(2), True),
        ("day1-0500", {"end_mode": "fixed", "end_date": __import__("datetime").date(2026, 6, 30)}, sid(3), False)]
    assert all(e["replaces"]["deployment"] == label for e in data["schedules"]) and "replaces" not in data
    assert not result.of_kind("unmapped") and "deletes it when" not in repr(result.to_json())


def test_schedules_pinning_other_credentials_become_a_project_each_and_nothing_is_deleted(tmp_path):
    d = pool_deployment([
        ui_schedule(1, "0 3 * * 3", "UTC", {}),
        ui_schedule(2, "0 4 * * 5", "UTC", {"end_mode": "offset", "end_period_offset": 2}),
        ui_schedule(3, "0 6 * * 1", "UTC", {"credentials": ref(RWANDA), "configured_model_id": 3}),
        {**ui_schedule(4, "x", "UTC", {}), "schedule": {"interval": 3600.0}}])
    result = map_server(state(d), repo())
    by_name = {p.name: p for p in result.projects}
    assert sorted(by_name) == ["laos-model-5", "rwanda-model-3"] and not any(p.in_place for p in by_name.values())
    assert by_name["laos-model-5"].schedule_ids == (sid(1), sid(2)) and by_name["rwanda-model-3"].schedule_ids == (sid(3),)
    rwanda = load(result.files["projects/rwanda-model-3.yaml"])
    assert rwanda["replaces"] == {"deployment": "dhis2-chap-prediction/sl-malaria", "schedule_id": sid(3)}
    assert rwanda["work_pool"] == "chap-pool"
    (interval,) = result.of_kind("unmapped")
    assert interval.id == sid(4) and "deletes it when" not in repr(result.to_json())
    (note,) = [f for f in result.of_kind("note") if "not taken over in place" in f.message]
    assert "keeps the others as they are" in note.message
    write(tmp_path, result.files)  # the files validate, and a second import writes nothing
    validated = validate(load_repo(tmp_path))
    assert [x for x in validated.diagnostics if x.severity == "error"] == []
    assert map_server(state(d), importer.read_repo(tmp_path)).files == {}


# -- issue 23 #5: import writes a value as compile quotes it; it reads back the same and compiles --
TRICKY = ['He said "hi": it\'s #1 — ünïcödé 中文 🎉', "*starred", "&anchor", "!tag", "123", "1.5", "0x1F", "1e3",
          "2026-06-30", "yes", "no", "No", "on", "off", "y", "null", "~", "true", "key: value", "ends:", "a #b",
          "#comment", "- dash", "[flow]", "{map}", "|", ">", "%percent", "@at", "`tick`", " lead", "trail ", "",
          "line\nbreak"]


def test_tricky_values_read_back_the_same_through_chapctl_and_compile(tmp_path):
    """A description, a tag, a DHIS2 username and a git branch holding what YAML would read as
    something else (an alias, a number, a boolean, a comment, a mapping) come back from the project
    files and from prefect.yaml exactly as the server had them."""
    from compiler.compile.build import compile_repo

    tags = sorted(t for t in TRICKY if importer.mapping._TAG.match(t))
    git = importer.read.safe_pull_steps([{"git_clone": {"repository": "https://github.com/example/chap.git",
                                                        "branch": "yes"}}])
    deployments = [{**PLAIN, "id": sid(700 + n), "name": f"tricky-{n}", "description": text, "tags": tags,
                    "pull_steps": git,
                    "parameters": importer.read.safe_parameters({"credentials": {
                        "base_url": "https://dhis2.sl.example.org", "username": text or "u", "password": CANARY},
                        "configured_model_id": 5}),
                    "schedules": [ui_schedule(n + 10, "0 3 * * 3", "UTC", {})]}
                   for n, text in enumerate(TRICKY)]
    result = map_server(state(*deployments), repo())
    assert len(result.projects) == len(TRICKY), result.findings
    write(tmp_path, result.files)
    loaded = {s.path: s.data for s in load_repo(tmp_path).projects}
    compiled = compile_repo(tmp_path)
    validated = {v.project.name: v.project for v in compiled.checked.validated.projects}
    prefect = {d["name"]: d for d in load(compiled.artifacts.files["prefect.yaml"])["deployments"]}
    for n, text in enumerate(TRICKY):
        name, path = f"tricky-{n}", f"projects/tricky-{n}.yaml"
        description = load(result.files[path]).get("description")
        if text:  # an empty description is not kept
            assert loaded[path]["description"] == description == validated[name].description == text, path
            assert prefect[name]["description"] == text
        assert loaded[path]["tags"] == validated[name].tags == tags
        assert loaded[path]["credentials"]["username"] == (text or "u")
    assert load(result.files["projects/_defaults.yaml"])["source"]["git"]["branch"] == "yes"
    assert compiled.checked.validated.defaults.source.git.branch == "yes"
