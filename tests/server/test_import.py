"""`chapctl import` and the adopt handover against a real Prefect server (SQLite).

The server is built the chap-scheduler way with Prefect's own code: two `Dhis2Credentials` blocks
saved by the block class, a deployment of `dhis2-chap-prediction` registered by
`flow.to_deployment(...).apply()` (what `flow.serve()` does before it polls: no work pool), cron
schedules added as the UI adds them (`POST /deployments/{id}/schedules` with parameters pinning a
block and an end mode; one paused, one interval), and a deployment made by the real `prefect
deploy` from a prefect.yaml holding the credentials inline, password included. Their runs are
scheduled as the scheduler service schedules them. Then the three commands of the README:
`import`, `compile` + `plan --adopt`, `apply --adopt` — and every future run time of every
imported schedule must exist exactly once, none lost, and a second apply must write nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from tests.server.conftest import CANARY, all_deployments, block_documents
from tests.server.prefect_server import PREFECT_BIN

# On SQLite (tests/server/conftest.py): import reads hand-made servers, most often SQLite ones.
pytestmark = [pytest.mark.server, pytest.mark.sqlite]

INLINE_PASSWORD = CANARY + "-inline"  # the password `prefect deploy` stored in the deployment
NEW_PASSWORD = CANARY + "-sl"  # what the operator exports for the block import declares
PREVIEW = 3

SERVED = """
import json, sys
sys.path.insert(0, sys.argv[1])
from flows.blocks import Dhis2Credentials
from flows.dhis2_chap_prediction import dhis2_chap_prediction
ids = {}
for name, url in (("laos-dhis2", "https://dhis2.la.example.org"), ("rwanda-dhis2", "https://dhis2.rw.example.org")):
    block = Dhis2Credentials(base_url=url, username="chap-bot", password=sys.argv[2] + "-" + name)
    ids[name] = str(block.save(name, overwrite=True))
ids["deployment"] = str(dhis2_chap_prediction.to_deployment(name="chap-scheduler").apply())
print(json.dumps(ids))
"""

PREFECT_YAML = """\
name: hand-made
pull:
- prefect.deployments.steps.set_working_directory:
    directory: /srv/chap
deployments:
- name: sl-malaria
  entrypoint: flows/dhis2_chap_prediction.py:dhis2_chap_prediction
  work_pool:
    name: chap-pool
  parameters:
    credentials:
      base_url: https://dhis2.sl.example.org
      username: chap-bot
      password: {password}
    configured_model_id: 5
    end_mode: calculated
  schedules:
  - cron: "0 3 * * 3"
    timezone: Africa/Freetown
"""


def _prefect_env(server, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(server.client_env(), PREFECT_HOME=str(home), PREFECT_LOGGING_LEVEL="WARNING")
    return env


def build_chap_scheduler(server, flows_root: Path, work: Path) -> dict:
    """The server as chap-scheduler users have it (see the module docstring); returns the ids."""
    env = _prefect_env(server, work / "prefect-home")
    proc = subprocess.run([sys.executable, "-c", SERVED, str(flows_root), CANARY], env=env, capture_output=True,
                          text=True, timeout=120, cwd=flows_root)
    assert proc.returncode == 0, proc.stderr
    ids = json.loads(proc.stdout.strip().splitlines()[-1])

    def ref(block: str) -> dict:
        return {"$ref": {"block_document_id": ids[block]}}

    ui = [  # as the Prefect UI adds schedules with parameter overrides
        ("laos-weekly", {"cron": "0 6 * * 1", "timezone": "Asia/Vientiane", "day_or": True}, True,
         {"credentials": ref("laos-dhis2"), "end_mode": "offset", "end_period_offset": 1, "configured_model_id": 12}),
        ("laos-monthly", {"cron": "30 5 2 * *", "timezone": "Asia/Vientiane", "day_or": True}, True,
         {"credentials": ref("laos-dhis2"), "configured_model_id": 7}),
        ("rwanda-weekly", {"cron": "0 4 * * 2", "timezone": "Africa/Kigali", "day_or": True}, True,
         {"credentials": ref("rwanda-dhis2"), "end_mode": "fixed", "end_date": "2026-06-30", "configured_model_id": 3}),
        ("rwanda-paused", {"cron": "0 4 * * 5", "timezone": "Africa/Kigali", "day_or": True}, False,
         {"credentials": ref("rwanda-dhis2"), "configured_model_id": 3, "prediction_setup_id": 9}),
        ("rwanda-hourly", {"interval": 3600}, True, {"credentials": ref("rwanda-dhis2"), "configured_model_id": 3}),
    ]
    with server.client() as c:
        made = c.post(f"/deployments/{ids['deployment']}/schedules", json=[
            {"schedule": sched, "active": active, "parameters": params} for _, sched, active, params in ui])
        made.raise_for_status()
        ids["schedules"] = {label: s["id"] for (label, *_), s in zip(ui, made.json())}
        c.post("/work_pools/", json={"name": "chap-pool", "type": "process"}).raise_for_status()
    hand = work / "hand-made"
    shutil.copytree(flows_root / "flows", hand / "flows", ignore=shutil.ignore_patterns("__pycache__"))
    (hand / "prefect.yaml").write_text(PREFECT_YAML.format(password=INLINE_PASSWORD))
    proc = subprocess.run([str(PREFECT_BIN), "--no-prompt", "deploy", "--all"], cwd=hand, env=env,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    schedule_everything(server)  # what the scheduler service does within its next loop
    return ids


def schedule_everything(server) -> None:
    with server.client() as c:
        for d in c.post("/deployments/filter", json={"limit": 200}).json():
            c.post(f"/deployments/{d['id']}/schedule", json={}).raise_for_status()


def runs(server) -> list[dict]:
    with server.client() as c:
        rows, offset = [], 0
        while True:
            page = c.post("/flow_runs/filter", json={"limit": 200, "offset": offset,
                                                     "sort": "EXPECTED_START_TIME_ASC"}).json()
            rows += page
            offset += len(page)
            if len(page) < 200:
                return rows


def when(run: dict) -> dt.datetime:
    return dt.datetime.fromisoformat(run["expected_start_time"].replace("Z", "+00:00"))


def times_of(server, deployment_id: str, schedule_id: str) -> list[dt.datetime]:
    return sorted(when(r) for r in runs(server)
                  if r["deployment_id"] == deployment_id and (r.get("created_by") or {}).get("id") == schedule_id)


def readme_lines(name: str) -> list[str]:
    """The lines of the README's `<!-- output: name … -->` block (real output, ids and port aside)."""
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = re.search(rf"<!-- output: {re.escape(name)} .*?-->\n```text\n(.*?)```", text, re.S)
    assert block, f"README has no output block {name!r}"
    return [line for line in block.group(1).splitlines() if line.strip() and not line.startswith("$ ")]


def without_ids(text: str) -> str:
    text = re.sub(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", "<id>", text)
    return re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:<port>", text)


def deployment_by_name(server, name: str) -> dict:
    return next(d for d in all_deployments(server) if d["name"] == name)


def load(path: Path) -> dict:
    return YAML(typ="safe", pure=True).load(path.read_text())


def test_import_then_adopt_hands_every_schedule_over_once(chapctl, make_repo, clean_server, tmp_path):
    from compiler.review.preview import schedule_runs

    clean_server.wipe(registrations=True)
    repo = make_repo([])
    ids = build_chap_scheduler(clean_server, repo.root, tmp_path)
    old_id, sched = ids["deployment"], ids["schedules"]
    sl = next(d for d in all_deployments(clean_server) if d["name"] == "sl-malaria")
    assert INLINE_PASSWORD in json.dumps(sl["parameters"])  # the hand-made state really holds it inline
    before = {label: times_of(clean_server, old_id, sid) for label, sid in sched.items()}
    assert all(len(before[label]) >= PREVIEW for label in ("laos-weekly", "laos-monthly", "rwanda-weekly"))
    with clean_server.client() as c:
        old_params = {s["id"]: s["parameters"] for s in c.get(f"/deployments/{old_id}/schedules").json()}

    # 1. import: --dry-run writes nothing, then the files (in an empty projects/, as the README).
    (repo.root / "projects/_defaults.yaml").unlink()
    dry = chapctl.cli(repo, "import", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "--- projects/laos-model-12.yaml (would write)" in dry.stdout
    assert list((repo.root / "projects").iterdir()) == []
    proc = chapctl.cli(repo, "import")
    assert proc.returncode == 0, proc.stderr
    missing = [line for line in readme_lines("import") if without_ids(line) not in without_ids(proc.stdout)]
    assert not missing, "README lines not in the output:\n" + "\n".join(missing) + "\n--- output:\n" + proc.stdout
    written = sorted(p.name for p in (repo.root / "projects").iterdir())
    assert written == ["_defaults.yaml", "laos-model-12.yaml", "laos-model-7.yaml", "rwanda-model-3-setup-9.yaml",
                       "rwanda-model-3.yaml", "sl-malaria.yaml"]
    label = "dhis2-chap-prediction/chap-scheduler"
    weekly = load(repo.root / "projects/laos-model-12.yaml")
    assert weekly["credentials"] == {"block": "laos-dhis2"}
    assert (weekly["model_id"], weekly["end_mode"], weekly["end_period_offset"]) == (12, "offset", 1)
    assert weekly["schedule"] == {"cron": "0 6 * * 1", "timezone": "Asia/Vientiane", "active": True}
    assert weekly["replaces"] == {"deployment": label, "schedule_id": sched["laos-weekly"]}
    assert "work_pool" not in weekly  # flow.serve() had none: the default pool
    fixed = load(repo.root / "projects/rwanda-model-3.yaml")
    assert (fixed["credentials"], fixed["end_mode"], str(fixed["end_date"])) == (
        {"block": "rwanda-dhis2"}, "fixed", "2026-06-30")
    paused = load(repo.root / "projects/rwanda-model-3-setup-9.yaml")
    assert paused["schedule"]["active"] is False and paused["prediction_setup_id"] == 9
    plain = load(repo.root / "projects/sl-malaria.yaml")
    assert plain["credentials"] == {"block": "sl-dhis2", "base_url": "https://dhis2.sl.example.org",
                                    "username": "chap-bot", "password_env": "SL_DHIS2_PASSWORD"}
    assert plain["work_pool"] == "chap-pool" and plain["replaces"]["schedule_id"] == sl["schedules"][0]["id"]
    assert sched["rwanda-hourly"] in proc.stdout and "interval schedule" in proc.stdout  # reported, not dropped
    assert "SL_DHIS2_PASSWORD" in proc.stdout and "stop that process" in proc.stdout

    # 2. compile, and plan: refused without --adopt (both would run), the handover shown with it.
    assert chapctl.cli(repo, "validate").returncode == 0
    assert chapctl.cli(repo, "compile").returncode == 0
    refused = chapctl.cli(repo, "plan")
    assert refused.returncode == 1 and "run twice" in refused.stdout and "--adopt" in refused.stdout
    env = {**chapctl.env, "SL_DHIS2_PASSWORD": NEW_PASSWORD}
    shown = chapctl.cli(repo, "plan", "--adopt", env=env)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert f"schedule {label}/{sched['laos-weekly']}: update — replaced by project laos-model-12: paused (not " \
           "deleted)" in shown.stdout
    assert "taken over in place from the hand-made schedule" in shown.stdout

    # 3. apply --adopt: the handover.
    start = dt.datetime.now(dt.timezone.utc)
    applied = chapctl.cli(repo, "apply", "--adopt", env=env)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    schedule_everything(clean_server)  # the scheduler's next pass adds nothing twice

    deps = {d["name"]: d for d in all_deployments(clean_server)}
    old = deps["chap-scheduler"]
    assert old["id"] == old_id  # untouched but for its schedules' active flag
    by_id = {s["id"]: s for s in old["schedules"]}
    assert {k: by_id[v]["active"] for k, v in sched.items()} == {
        "laos-weekly": False, "laos-monthly": False, "rwanda-weekly": False, "rwanda-paused": False,
        "rwanda-hourly": True}
    assert {s["id"]: s["parameters"] for s in old["schedules"]} == old_params  # paused, never reset or deleted
    assert deps["sl-malaria"]["id"] == sl["id"]  # adopted in place
    (kept,) = deps["sl-malaria"]["schedules"]
    assert (kept["id"], kept["slug"]) == (sl["schedules"][0]["id"], "chapctl-cron")
    blocks = {b["name"]: b for b in block_documents(clean_server, include_secrets=True)}
    assert blocks["sl-dhis2"]["data"]["password"] == NEW_PASSWORD
    assert deps["sl-malaria"]["parameters"]["credentials"] == {"$ref": {"block_document_id": blocks["sl-dhis2"]["id"]}}

    # Every future run time of every imported schedule exists exactly once, old and new together.
    successors = {"laos-weekly": "laos-model-12", "laos-monthly": "laos-model-7", "rwanda-weekly": "rwanda-model-3"}
    everything = runs(clean_server)
    for old_label, project in successors.items():
        s = load(repo.root / f"projects/{project}.yaml")["schedule"]
        new = deps[project]
        expected = [t.astimezone(dt.timezone.utc) for t in schedule_runs(s["cron"], s["timezone"], PREVIEW, start)]
        pair = [r for r in everything if (r["deployment_id"], (r.get("created_by") or {}).get("id")) in (
            (old_id, sched[old_label]), (new["id"], new["schedules"][0]["id"]))]
        for t in expected:
            at = [r for r in pair if when(r) == t]
            assert len(at) == 1, (project, t, at)
        horizon = expected[-1]
        assert sorted(when(r) for r in pair if start <= when(r) <= horizon) == expected, project  # none lost or extra
        assert not [r for r in pair if r["deployment_id"] == old_id and r["state_type"] == "SCHEDULED"
                    and when(r) > start], project  # the paused schedule keeps no future run
    assert times_of(clean_server, deps["rwanda-model-3-setup-9"]["id"],
                    deps["rwanda-model-3-setup-9"]["schedules"][0]["id"]) == []  # paused: no runs
    hourly = times_of(clean_server, old_id, sched["rwanda-hourly"])
    assert len(hourly) == len(set(hourly)) and set(before["rwanda-hourly"]) <= set(hourly)  # restored, not doubled
    sl_times = times_of(clean_server, sl["id"], kept["id"])
    expected_sl = [t.astimezone(dt.timezone.utc) for t in schedule_runs("0 3 * * 3", "Africa/Freetown", PREVIEW, start)]
    assert len(sl_times) == len(set(sl_times)) and set(expected_sl) <= set(sl_times)
    sl_runs = [r for r in everything if r["deployment_id"] == sl["id"] and r["state_type"] == "SCHEDULED"]
    assert sl_runs and all("$ref" in r["parameters"]["credentials"] for r in sl_runs)  # the new parameters

    # 4. A second apply writes nothing; plan without --adopt is clean now; import adds nothing.
    result = chapctl.apply(repo, adopt=True)
    assert chapctl.last_stats.writes == 0 and not [a for a in result.applied], result.to_json()
    again = chapctl.cli(repo, "plan", "--detailed-exitcode", env=env)
    assert again.returncode == 0, again.stdout
    reimport = chapctl.cli(repo, "import")
    assert reimport.returncode == 0 and "Nothing to write." in reimport.stdout

    # 5. Someone resumes a replaced schedule in the UI: both run again. Plan refuses to go on
    # without --adopt; apply --adopt pauses it again, and each time is back to one run.
    old_weekly = by_id[sched["laos-weekly"]]
    with clean_server.client() as c:
        c.patch(f"/deployments/{old_id}/schedules/{old_weekly['id']}", json={
            "schedule": old_weekly["schedule"], "active": True, "parameters": old_weekly["parameters"]}).raise_for_status()
    schedule_everything(clean_server)
    resumed = chapctl.plan(repo)
    assert any("laos-model-12 is on the server too: every forecast runs twice" in b for b in resumed.blockers)
    chapctl.apply(repo, adopt=True)
    schedule_everything(clean_server)
    new = deployment_by_name(clean_server, "laos-model-12")
    pair = [r for r in runs(clean_server) if (r["deployment_id"], (r.get("created_by") or {}).get("id")) in (
        (old_id, sched["laos-weekly"]), (new["id"], new["schedules"][0]["id"])) and when(r) > start]
    assert len(pair) >= PREVIEW and len({when(r) for r in pair}) == len(pair)
    assert not chapctl.plan(repo, adopt=True).has_changes

    # 6. The flow.serve() process is started again: it registers its deployment anew, and Prefect
    # deletes every schedule added in the UI (the README warns). The projects do not depend on
    # them: the plan only notes that the schedules they replaced are gone.
    proc = subprocess.run([sys.executable, "-c", SERVED, str(repo.root), CANARY], env=_prefect_env(
        clean_server, tmp_path / "prefect-home"), capture_output=True, text=True, timeout=120, cwd=repo.root)
    assert proc.returncode == 0, proc.stderr
    assert deployment_by_name(clean_server, "chap-scheduler")["schedules"] == []
    after_restart = chapctl.plan(repo, adopt=True)
    assert not after_restart.has_changes and not after_restart.blockers
    assert any(f"schedule {sched['laos-weekly']} of deployment {label}" in n and "no longer on the server" in n
               for n in after_restart.notes)

    # No secret anywhere: not in a file of the repository, not in anything chapctl printed.
    texts = [p.read_text(errors="replace") for p in repo.root.rglob("*") if p.is_file() and ".chapctl" not in p.parts
             and p.suffix in (".yaml", ".md", ".json", ".svg")]
    for secret in (INLINE_PASSWORD, NEW_PASSWORD, CANARY):
        assert not [t for t in texts if secret in t]
        assert not [o for o in chapctl.outputs if secret in o]


def test_import_json_and_clean_errors(chapctl, make_repo, clean_server):
    repo = make_repo([])
    empty = chapctl.cli(repo, "import", "--format", "json")
    assert empty.returncode == 0, empty.stderr
    doc = json.loads(empty.stdout)
    assert doc["files"] == {} and doc["read"] == {"deployments": 0, "schedules": 0}
    down = chapctl.cli(repo, "import", env={**chapctl.env, "PREFECT_API_URL": "http://127.0.0.1:9/api"})
    assert down.returncode == 1 and down.stderr.startswith("error: ") and "Traceback" not in down.stderr


POOL_YAML = """\
name: hand-made
pull:
- prefect.deployments.steps.set_working_directory:
    directory: /srv/chap
deployments:
- name: {name}
  entrypoint: flows/dhis2_chap_prediction.py:dhis2_chap_prediction
  work_pool:
    name: chap-pool
  parameters:
    credentials:
      base_url: https://dhis2.{host}.example.org
      username: chap-bot
      password: {password}
    configured_model_id: 5
  schedules:
  - cron: "0 3 * * 3"
    timezone: UTC
"""


def test_import_maps_every_ui_schedule_of_a_pool_deployment_and_adopt_deletes_none(chapctl, make_repo, clean_server,
                                                                                    tmp_path):
    """Issue 21 #9: a `prefect deploy` deployment with schedules added in the UI, each pinning its
    own parameters (one its own credentials block; one an interval). Import used to write one
    project with the first schedule and say `apply --adopt` deletes the others; now every schedule
    is mapped and adopt deletes nothing. A deployment whose schedules all share credentials is
    taken over in place, every schedule kept with its id."""
    clean_server.wipe(registrations=True)
    repo = make_repo([])
    env = _prefect_env(clean_server, tmp_path / "prefect-home")
    proc = subprocess.run([sys.executable, "-c", SERVED, str(repo.root), CANARY], env=env, capture_output=True,
                          text=True, timeout=120, cwd=repo.root)
    assert proc.returncode == 0, proc.stderr
    laos = json.loads(proc.stdout.strip().splitlines()[-1])["laos-dhis2"]
    with clean_server.client() as c:
        c.post("/work_pools/", json={"name": "chap-pool", "type": "process"}).raise_for_status()
    for name, host in (("sl-malaria", "sl"), ("ke-malaria", "ke")):
        hand = tmp_path / name
        shutil.copytree(repo.root / "flows", hand / "flows", ignore=shutil.ignore_patterns("__pycache__"))
        (hand / "prefect.yaml").write_text(POOL_YAML.format(name=name, host=host, password=INLINE_PASSWORD))
        proc = subprocess.run([str(PREFECT_BIN), "--no-prompt", "deploy", "--all"], cwd=hand, env=env,
                              capture_output=True, text=True, timeout=180)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    deps = {d["name"]: d for d in all_deployments(clean_server)}
    ui = {"sl-malaria": [({"cron": "0 4 * * 5", "timezone": "UTC"}, {"end_mode": "offset", "end_period_offset": 2}),
                         ({"cron": "0 6 * * 1", "timezone": "UTC"},
                          {"credentials": {"$ref": {"block_document_id": laos}}, "configured_model_id": 12}),
                         ({"interval": 3600}, {})],
          "ke-malaria": [({"cron": "0 5 1 * *", "timezone": "UTC"}, {"end_mode": "fixed", "end_date": "2026-06-30"})]}
    with clean_server.client() as c:
        for name, rows in ui.items():
            c.post(f"/deployments/{deps[name]['id']}/schedules", json=[
                {"schedule": sched, "active": True, "parameters": params} for sched, params in rows]).raise_for_status()
    before = {d["name"]: {s["id"]: s for s in sorted(d["schedules"], key=lambda s: (s["created"], s["id"]))}
              for d in all_deployments(clean_server) if d["name"] in ui}  # in import's order: as created
    schedule_everything(clean_server)

    (repo.root / "projects/_defaults.yaml").unlink()
    out = chapctl.cli(repo, "import")
    assert out.returncode == 0, out.stderr
    assert "deletes" not in out.stdout, out.stdout
    written = sorted(p.name for p in (repo.root / "projects").iterdir())
    assert written == ["_defaults.yaml", "ke-malaria.yaml", "laos-model-12.yaml", "sl-model-5.yaml"], out.stdout
    sl = load(repo.root / "projects/sl-model-5.yaml")
    assert [e["replaces"]["schedule_id"] for e in sl["schedules"]] == list(before["sl-malaria"])[:2]
    assert sl["schedules"][1]["parameters"] == {"end_mode": "offset", "end_period_offset": 2}
    ke = load(repo.root / "projects/ke-malaria.yaml")
    assert [e["replaces"]["schedule_id"] for e in ke["schedules"]] == list(before["ke-malaria"])

    assert chapctl.cli(repo, "compile").returncode == 0
    env = {**chapctl.env, "SL_DHIS2_PASSWORD": NEW_PASSWORD, "KE_DHIS2_PASSWORD": NEW_PASSWORD}
    applied = chapctl.cli(repo, "apply", "--adopt", env=env)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    after = {d["name"]: {s["id"]: s for s in d["schedules"]} for d in all_deployments(clean_server)}
    # Not one hand-made schedule deleted: sl-malaria's mapped ones paused, its interval untouched;
    # ke-malaria's both kept with their ids, as the project's schedules.
    assert set(after["sl-malaria"]) == set(before["sl-malaria"])
    assert [after["sl-malaria"][i]["active"] for i in before["sl-malaria"]] == [False, False, False, True]
    assert set(after["ke-malaria"]) == set(before["ke-malaria"])
    assert sorted(s["slug"] for s in after["ke-malaria"].values()) == ["day1-0500", "wed-0300"]
    assert len(after["sl-model-5"]) == 2 and len(after["laos-model-12"]) == 1

    # Again: import writes nothing new, apply writes nothing.
    reimport = chapctl.cli(repo, "import")
    assert reimport.returncode == 0 and "Nothing to write." in reimport.stdout, reimport.stdout
    chapctl.apply(repo, adopt=True)
    assert chapctl.last_stats.writes == 0
