"""The production topology, end to end: what docs/operations.md tells an operator to build.

    chapctl compile/apply ─┐                                   ┌─ PostgreSQL (a fresh database)
    2 process workers ─────┼─ https ─▶ nginx (TLS, the doc's ─▶ Prefect server (basic auth)
    flow-run processes ────┘           server block)
    flow-run processes ── git:// ──▶ git daemon ─▶ bare clone of the project repository
    flow-run processes ── http ───▶ DHIS2 (the fake) ─▶ CHAP (the fake's, or a real chap-core)

* The Prefect server runs on PostgreSQL with `PREFECT_SERVER_API_AUTH_STRING`. Nothing but the
  server talks to it directly: chapctl, the workers, the flow runs they start and this test's own
  API client all use `PREFECT_API_URL=https://<nginx>/api` and `PREFECT_API_AUTH_STRING`.
* nginx (Debian's 1.22 package, tests/topology/nginx.py) runs the ```nginx block of
  docs/operations.md with only `listen`, the certificate and `proxy_pass` filled in.
* The project repository is a git repository (projects, the compiled artifacts, this checkout's
  `flows/`); its `_defaults.yaml` says `source: {git: {repository: git://…}}` and its bare clone
  is served by `git daemon` (tests/topology/git_daemon.py). So every flow run starts with
  Prefect's `git_clone` pull step, in a fresh temporary directory, exactly as in production.
* Two workers (`--limit 2` each) share the pool; four runs of two projects are triggered at once.

What is observed, and where:

* *Code cloned from git*, per run: the deployment's only pull step is `git_clone` of the git://
  URL; the run's own logs say the step ran and completed; the server holds the run's
  `prefect.flow-run.pull-step.executed` event naming `git_clone` and the URL; `git daemon` logged
  at least one upload-pack per run. The entrypoint is relative (`flows/…`) and each run starts in
  a new empty directory, so the flow that completed can only have been loaded from that clone.
* *Websockets through the proxy*: nginx's access log shows a 101 for `/api/events/in` (workers
  and every flow run send events there), `/api/events/out` (workers watch for cancellations) and
  `/api/work_pools/<pool>/workers/connect` (Prefect 3.9's worker channel), and no websocket
  request answered with anything but 101. The runs' task runs exist on the server: Prefect 3
  records task runs only from events, so they prove the flow runs' websockets carried data.
* *No websocket errors*: the workers' logs (which include the flow-run processes' output) and the
  server's log hold none of the lines Prefect writes when a websocket fails. The second test
  puts an nginx without the two websocket lines in front of the same server and checks that
  these very detectors catch it (Prefect says "Unable to connect to 'wss://…/api/events/in' …
  server rejected WebSocket connection: HTTP 404", nginx logs 404/401 for the upgrades).

The CHAP side is a fixture (`chap_backend`): the fake DHIS2+CHAP, or the real chap-core 2.5.1
lane (tests/chap_real, fixture `real_chap`) behind the fake DHIS2's route. The topology is built
once per run: on the real one when the chap lane is selected too (tests/topology/conftest.py).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.scenario import PASSWORD, TODAY, USERNAME, WORKER_SETTINGS, clean_env
from tests.e2e.stack import BIN, Api, Worker
from tests.fake_dhis2 import FakeDhis2Server
from tests.lanes import lane
from tests.server.prefect_server import PrefectServer, postgres_available
from tests.server.repo import SOURCE, Repo, project
from tests.topology.git_daemon import GitDaemon, bare_clone, commit_all
from tests.topology.nginx import NginxProxy

# The whole topology is an exhaustive end-to-end check: the slow lane (make test and CI run it).
pytestmark = [pytest.mark.topology, pytest.mark.slow, pytest.mark.timeout(1200)]

# The CHAP behind the fake DHIS2's route: the fake's own, and the real chap-core 2.5.1 of the
# session (`real_chap`, tests/conftest.py), shared with tests/chap_real.
BACKENDS = ["fake", pytest.param("real", marks=pytest.mark.chap)]

AUTH = "chap-admin:topology-Pw-3e9d41"  # PREFECT_SERVER_API_AUTH_STRING / PREFECT_API_AUTH_STRING
POOL = "chap-topology"
WORKERS = ("topology-worker-a", "topology-worker-b")
WORKER_LIMIT = 2  # concurrent runs per worker: four runs at once need both workers
RUNS_PER_PROJECT = 2
BARE_REPO = "chap-projects.git"
PASSWORD_ENV = "TOPOLOGY_DHIS2_PASSWORD"
BLOCK = "topology-dhis2"
CHAP_ROUTE = "/api/routes/chap/run"
# The flow's tasks for one setup in end_mode offset (docs/flow.md, "Steps").
FLOW_STEPS = {"check_dhis2", "check_chap", "read_chap_route", "list_prediction_setups", "resolve_end_period", "validate_period_range",
              "fetch_dhis2_for_setup", "fetch_org_units_geojson", "build_prediction_request", "run_prediction_setup",
              "wait_for_prediction", "fetch_prediction_result"}

# What Prefect 3.9 writes when a websocket to the API fails (seen with the proxy's Upgrade and
# Connection lines removed), and the websockets library's words for a dropped connection.
WEBSOCKET_FAILURE = re.compile(
    r"websocket|Unable to connect to|EventsWorker' failed|Failed to emit|ConnectionClosed|no close frame"
    r"|InvalidStatus|InvalidHandshake|Worker channel disabled|Cancellation polling task failed",
    re.IGNORECASE)


# ------------------------------------------------------------------------------ the CHAP backend


@dataclass
class ChapBackend:
    """DHIS2 is always the fake; CHAP behind its `chap` route is the fake's own or a real one."""

    name: str
    fake: FakeDhis2Server
    setup_ids: tuple[int, ...]  # one project per setup
    run_timeout: float  # seconds, per run, all four running at once
    worker_env: dict[str, str] = field(default_factory=dict)

    def chap(self, path: str, **params: Any) -> Any:
        """GET a chap-core path through the DHIS2 route, as the flow does."""
        response = httpx.get(f"{self.fake.url}{CHAP_ROUTE}{path}", params=params, auth=(USERNAME, PASSWORD),
                             timeout=60)
        assert response.status_code == 200, f"GET {path} -> {response.status_code} {response.text[:300]}"
        return response.json()

    def setups(self) -> list[tuple[int, int]]:
        """(setup id, configured model id) of the setups the projects run, as CHAP lists them."""
        from flows.setups import parse_setup

        listed = {item.raw_id: item.model_id for item in map(parse_setup, self.chap("/v1/crud/prediction-setups"))}
        missing = [i for i in self.setup_ids if i not in listed]
        assert not missing, f"CHAP ({self.name}) lists no prediction setups {missing}; it has {sorted(listed)}"
        return [(setup_id, listed[setup_id]) for setup_id in self.setup_ids]

    def job(self, job_id: str) -> dict[str, Any]:
        [job] = [j for j in self.chap("/v1/jobs", ids=job_id) if j.get("id") == job_id]
        return job


def _setup_ids(setups: Any) -> tuple[int, ...]:
    values = setups.values() if isinstance(setups, dict) else setups
    return tuple(getattr(s, "id", s) for s in values)


@pytest.fixture(scope="module", params=BACKENDS)
@lane("topology", group="chap")  # with the real chap-core of tests/chap_real: one worker
def chap_backend(request) -> Iterator[ChapBackend]:
    if request.param == "fake":
        with FakeDhis2Server(username=USERNAME, password=PASSWORD, today=TODAY) as fake:
            # setup 5: weekly, model 7; setup 3: monthly, model 12 (tests/fake_dhis2/seed.py)
            yield ChapBackend("fake", fake, setup_ids=(5, 3), run_timeout=300.0)
    elif request.param == "real":
        real_chap = request.getfixturevalue("real_chap")
        with FakeDhis2Server(username=USERNAME, password=PASSWORD, today=TODAY, chap_url=real_chap.url) as fake:
            yield ChapBackend("real", fake, setup_ids=_setup_ids(real_chap.setups), run_timeout=1800.0,
                              worker_env={"CHAP_SCHEDULER_POLL_INTERVAL_SECONDS": "2"})
    else:
        raise ValueError(f"unknown CHAP backend {request.param!r}")


# ------------------------------------------------------------------------------ the stack


@dataclass
class Topology:
    server: PrefectServer
    proxy: NginxProxy
    daemon: GitDaemon
    backend: ChapBackend
    api: Api
    repo: Path
    git_url: str
    workers: dict[str, Worker]
    projects: dict[str, dict[str, Any]]
    apply_output: str
    tmp: Path


def run_cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "chapctl"), *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def proxy_client(proxy: NginxProxy) -> httpx.Client:
    user, _, password = AUTH.partition(":")
    return httpx.Client(base_url=proxy.api_url, auth=httpx.BasicAuth(user, password), timeout=30,
                        verify=ssl.create_default_context(cafile=str(proxy.ca_file)))


def make_project_repo(root: Path, git_url: str, backend: ChapBackend) -> dict[str, dict[str, Any]]:
    """A chapctl project repository as production keeps it: projects, schema and this
    checkout's flows/ (as they are on disk now), with workers told to clone it from `git_url`."""
    root.mkdir(parents=True)
    for folder in ("flows", "schema"):
        shutil.copytree(SOURCE / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (root / "projects").mkdir()
    (root / ".gitignore").write_text(".chapctl/\n__pycache__/\n")
    repo = Repo(root)
    repo.write_defaults({"timezone": "UTC", "work_pool": POOL, "tags": ["topology"],
                         "source": {"git": {"repository": git_url, "branch": "main"}}})
    projects = {}
    for setup_id, model_id in backend.setups():
        doc = project(f"topology-setup-{setup_id}", BLOCK, model_id=model_id, password_env=PASSWORD_ENV,
                      base_url=backend.fake.url, cron=None, prediction_setup_id=setup_id)
        repo.write_project(doc, compile=False)
        projects[doc["name"]] = doc
    return projects


def wait_workers_online(api: Api, workers: dict[str, Worker], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        for name, worker in workers.items():
            assert worker.running, f"worker {name} exited at once:\n{worker.log_tail()}"
        online = {w["name"] for w in api.c.post(f"/work_pools/{POOL}/workers/filter", json={}).json()
                  if w["status"] == "ONLINE"}
        if set(workers) <= online:
            return
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {n}\n{w.log_tail()}" for n, w in workers.items())
            raise AssertionError(f"workers online after {timeout:.0f}s: {sorted(online)}, wanted {sorted(workers)}\n"
                                 f"{tails}")
        time.sleep(0.5)


def wait_runs_over(api: Api, timeout: float = 120.0) -> None:
    """Best effort before stopping the workers: no run of ours still pending or running."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and api.runs_in_states(["SCHEDULED", "PENDING", "RUNNING", "CANCELLING"]):
            time.sleep(0.5)
    except (httpx.HTTPError, AssertionError):
        pass


@pytest.fixture(scope="module")
@lane("topology", group="chap")
def topology(chap_backend: ChapBackend, tmp_path_factory) -> Iterator[Topology]:
    if not postgres_available() and not os.environ.get("CI"):
        # as for the server tests' backend list: required in CI (PrefectServer.start then says why)
        pytest.skip("the production topology runs Prefect on PostgreSQL; 127.0.0.1:5432 is unreachable")
    tmp = tmp_path_factory.mktemp("topology")
    with ExitStack() as cleanup:
        server = PrefectServer.start(tmp / "server", "postgres", auth_string=AUTH)
        cleanup.callback(server.stop)
        proxy = NginxProxy.start(tmp / "nginx", upstream_port=server.port)
        cleanup.callback(proxy.stop)
        api = Api(cleanup.enter_context(proxy_client(proxy)))

        # The project repository, committed, and its bare clone behind git daemon.
        daemon = GitDaemon.reserve(tmp / "git", tmp / "git-daemon.log")
        git_url = daemon.url(BARE_REPO)
        work = tmp / "checkout" / "chap-projects"
        projects = make_project_repo(work, git_url, chap_backend)
        cli_env = clean_env(**proxy.client_env(), PREFECT_API_AUTH_STRING=AUTH, PREFECT_HOME=str(tmp / "cli-home"),
                            **{PASSWORD_ENV: PASSWORD})
        compiled = run_cli("compile", "--root", str(work), env=cli_env, cwd=tmp)
        assert compiled.returncode == 0, compiled.stdout + compiled.stderr
        commit_all(work, "chap projects for the topology test")
        bare_clone(work, daemon.base / BARE_REPO)
        daemon.start()
        cleanup.callback(daemon.stop)

        # CI's part: check and apply from the checkout, through the proxy.
        check = run_cli("compile", "--check", "--root", str(work), env=cli_env, cwd=tmp)
        assert check.returncode == 0, check.stdout + check.stderr
        applied = run_cli("apply", "--root", str(work), env=cli_env, cwd=tmp)
        assert applied.returncode == 0, applied.stdout + applied.stderr

        # Two workers on the pool, through the proxy; they know no DHIS2 password.
        workers: dict[str, Worker] = {}
        for name in WORKERS:
            home = tmp / name
            (home / "tmp").mkdir(parents=True)
            env = clean_env(**proxy.client_env(), PREFECT_API_AUTH_STRING=AUTH,
                            **{**WORKER_SETTINGS, **chap_backend.worker_env}, PREFECT_HOME=str(home / "prefect-home"),
                            TMPDIR=str(home / "tmp"))  # the per-run directories the clones go to
            workers[name] = Worker.start(POOL, env, cwd=home, log_path=tmp / f"{name}.log",
                                         extra_args=("--name", name, "--limit", str(WORKER_LIMIT)))
            cleanup.callback(workers[name].stop)
        cleanup.callback(wait_runs_over, api)  # runs first (LIFO): let runs end before the workers stop
        wait_workers_online(api, workers)

        yield Topology(server=server, proxy=proxy, daemon=daemon, backend=chap_backend, api=api, repo=work,
                       git_url=git_url, workers=workers, projects=projects,
                       apply_output=applied.stdout + applied.stderr, tmp=tmp)


# ------------------------------------------------------------------------------ reading it back


def report_field(report: dict[str, Any], label: str) -> str:
    prefix = f"- **{label}:** "
    values = [line[len(prefix):] for line in report["data"].splitlines() if line.startswith(prefix)]
    assert values, f"no {label!r} line in the report:\n{report['data']}"
    return values[0]


def poll(read, timeout: float, every: float = 1.0):
    """`read()` until it returns something truthy or `timeout` seconds pass; its last value."""
    deadline = time.monotonic() + timeout
    while not (value := read()) and time.monotonic() < deadline:
        time.sleep(every)
    return value


def run_logs(api: Api, run_id: str) -> list[str]:
    rows = api.c.post("/logs/filter", json={"logs": {"flow_run_id": {"any_": [run_id]}}, "limit": 200,
                                            "sort": "TIMESTAMP_ASC"}).json()
    return [row["message"] for row in rows]


def pull_step_events(api: Api, run_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    body = {"filter": {"event": {"name": ["prefect.flow-run.pull-step.executed"]},
                       "resource": {"id": [f"prefect.flow-run.{run_id}" for run_id in run_ids]}},
            "limit": 50}
    response = api.c.post("/events/filter", json=body)
    assert response.status_code == 200, response.text[:500]
    found: dict[str, list[dict[str, Any]]] = {}
    for event in response.json()["events"]:
        found.setdefault(event["resource"]["prefect.resource.id"].removeprefix("prefect.flow-run."), []).append(event)
    return found


def task_run_names(api: Api, run_id: str) -> set[str]:
    rows = api.c.post("/task_runs/filter", json={"flow_runs": {"id": {"any_": [run_id]}}, "limit": 200}).json()
    # "fetch_prediction_result [job …]" (a task_run_name), "check_dhis2-1e0" (Prefect's default)
    return {re.sub(r"-[0-9a-f]{3}$", "", row["name"].split(" [")[0]) for row in rows}


def started_runs(worker_log: str, run_ids: list[str]) -> set[str]:
    """The runs a worker submitted and was not told to abort (another worker had claimed them)."""
    return {run_id for run_id in run_ids if f"submitting flow run '{run_id}'" in worker_log
            and f"Aborted submission of flow run '{run_id}'" not in worker_log}


def websocket_failures(text: str) -> list[str]:
    return [line for line in text.splitlines() if WEBSOCKET_FAILURE.search(line)]


def refused_upgrades(proxy: NginxProxy) -> list[str]:
    """Access-log lines of websocket handshakes nginx did not answer with 101."""
    return [e.line for e in proxy.access_entries() if e.upgrade.lower() == "websocket" and e.status != 101]


def upgrades(proxy: NginxProxy, path: str) -> list[str]:
    return [e.line for e in proxy.access_entries() if e.status == 101 and e.path.split("?")[0] == path]


# ------------------------------------------------------------------------------ the tests


def test_production_topology(topology: Topology) -> None:
    t, api = topology, topology.api
    deployments = {name: api.deployment(name) for name in t.projects}
    for name, deployment in deployments.items():
        # the worker is told to clone the project repository, nothing else
        assert deployment["pull_steps"] == [
            {"prefect.deployments.steps.git_clone": {"repository": t.git_url, "branch": "main"}}], name
        assert (deployment["entrypoint"], deployment["work_pool_name"]) == (
            "flows/dhis2_chap_prediction.py:dhis2_chap_prediction", POOL)
    assert PASSWORD not in json.dumps(deployments) + t.apply_output
    served_before = len(t.daemon.upload_packs(BARE_REPO))

    # Four runs of two projects at once.
    with ThreadPoolExecutor(4) as pool:
        created = list(pool.map(lambda d: api.trigger(d["id"]),
                                [d for d in deployments.values() for _ in range(RUNS_PER_PROJECT)]))
    project_of = {run["id"]: run["deployment_id"] for run in created}
    name_of = {d["id"]: name for name, d in deployments.items()}
    runs = [api.wait_terminal(run["id"], t.backend.run_timeout) for run in created]
    logs = "\n".join(f"--- {n}\n{w.log_tail(6000)}" for n, w in t.workers.items())
    for run in runs:
        assert (run["state"]["type"], run["state"]["message"]) == (
            "COMPLETED", "SUCCEEDED -- 1 of 1 prediction setups succeeded"), f"{run['state']}\n{logs}"
        assert run["work_pool_name"] == POOL

    # Each run's report names its CHAP job and the prediction that job made.
    predictions = set()
    for run in runs:
        project_name = name_of[project_of[run["id"]]]
        [report] = [a for a in api.artifacts_of(run["id"]) if a["key"] == f"chap-report-{project_name}"]
        assert report_field(report, "Project") == project_name
        job_id, prediction = report_field(report, "Job").strip("`"), report_field(report, "Prediction")
        job = t.backend.job(job_id)
        assert (job["status"], str(job["result"])) == ("SUCCESS", prediction), (job, report["data"])
        predictions.add(prediction)
    assert len(predictions) == len(runs)  # four runs, four predictions

    # Code cloned from git, per run: the run's logs, its pull-step event, the git daemon's log.
    for run in runs:
        messages = run_logs(api, run["id"])
        assert "Executing deployment step: git_clone" in messages, messages
        assert "Deployment step 'git_clone' completed successfully" in messages, messages
    run_ids = [run["id"] for run in runs]
    events = poll(lambda: (found := pull_step_events(api, run_ids)) and set(found) == set(run_ids) and found, 60)
    assert events and set(events) == set(run_ids), f"pull-step events for {sorted(events or {})}, runs {run_ids}"
    for run_events in events.values():
        assert [(e["payload"]["qualified_name"], e["payload"]["inputs"]) for e in run_events] == [
            ("prefect.deployments.steps.git_clone", {"repository": t.git_url, "branch": "main"})], run_events
    served = t.daemon.upload_packs(BARE_REPO)[served_before:]
    assert len(served) >= len(runs), f"git daemon served {len(served)} clones for {len(runs)} runs:\n{t.daemon.log()}"

    # Task runs exist only if the flow runs' events reached the server (websocket /api/events/in).
    for run in runs:
        names = poll(lambda run=run: task_run_names(api, run["id"]) == FLOW_STEPS, 60)
        assert names, f"task runs of {run['id']}: {sorted(task_run_names(api, run['id']))}"

    # Both workers took runs: each run was started by exactly one of them (both may try to claim a
    # run; the server lets one move it to Pending and answers the other with an abort).
    by_worker = {name: started_runs(w.log_path.read_text(errors="replace"), run_ids) for name, w in t.workers.items()}
    assert sorted(rid for ids in by_worker.values() for rid in ids) == sorted(run_ids), by_worker
    assert all(by_worker.values()), f"runs per worker: {by_worker}\n{logs}"

    # Stop the workers (their websockets close, so nginx logs them), then read every log.
    for worker in t.workers.values():
        worker.stop()
    for name, worker in t.workers.items():
        text = worker.log_path.read_text(errors="replace")
        trouble = websocket_failures(text)
        assert not trouble, f"websocket trouble in {name}'s log:\n" + "\n".join(trouble)
        assert "Error logging to API" not in text, text  # a log batch the proxy refused (413)
    server_log = t.server.log_path.read_text(errors="replace")
    assert not websocket_failures(server_log), "\n".join(websocket_failures(server_log))

    # nginx carried the websockets: 101s on the event streams and the worker channel, no refusal.
    assert not refused_upgrades(t.proxy), "\n".join(refused_upgrades(t.proxy))
    assert len(upgrades(t.proxy, "/api/events/in")) >= len(runs), t.proxy.access_log.read_text()[-3000:]
    assert upgrades(t.proxy, "/api/events/out"), "no worker subscribed to /api/events/out through the proxy"
    assert len(upgrades(t.proxy, f"/api/work_pools/{POOL}/workers/connect")) >= len(WORKERS)
    # ... and chapctl's writes went through it too
    created_deployments = [e for e in t.proxy.access_entries()
                           if (e.method, e.path, e.status) == ("POST", "/api/deployments/", 201)]
    assert len(created_deployments) == len(t.projects)


def test_large_log_batches_pass_the_proxy(topology: Topology) -> None:
    """Prefect batches logs up to PREFECT_LOGGING_TO_API_BATCH_SIZE (4 MB) per POST /api/logs/;
    nginx refuses bodies over 1 MB (413) unless the server block raises client_max_body_size."""
    batch = [{"name": "topology", "level": 20, "message": f"{i}" + "x" * 900_000,  # max_log_size: 1e6
              "timestamp": "2026-03-10T00:00:00+00:00", "flow_run_id": None, "task_run_id": None}
             for i in range(3)]
    response = topology.api.c.post("/logs/", json=batch)
    assert response.status_code == 201, f"{response.status_code} {response.text[:200]}"


def test_a_proxy_without_websocket_headers_is_caught(topology: Topology) -> None:
    """The detectors above, against the misconfiguration they exist for: nginx without the
    Upgrade/Connection lines. A Prefect client's events then fail with the text we look for,
    and nginx logs the refused upgrade."""
    broken_dir = topology.tmp / "nginx-without-websockets"
    with NginxProxy.start(broken_dir, upstream_port=topology.server.port, websockets=False) as broken:
        env = clean_env(**broken.client_env(), PREFECT_API_AUTH_STRING=AUTH,
                        PREFECT_HOME=str(broken_dir / "prefect-home"))
        emit = subprocess.run(
            [str(BIN / "python"), "-c", ("from prefect.events import emit_event\n"
                                         "emit_event(event='topology.probe', "
                                         "resource={'prefect.resource.id': 'topology.probe'})")],
            env=env, capture_output=True, text=True, timeout=120)
    output = emit.stdout + emit.stderr
    warned = [line for line in websocket_failures(output) if "Unable to connect to" in line and "/api/events/in" in line]
    assert warned, output
    assert [line for line in refused_upgrades(broken) if '"GET /api/events/in ' in line], \
        broken.access_log.read_text()
