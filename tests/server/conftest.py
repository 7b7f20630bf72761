"""Fixtures for integration tests against a real Prefect server.

Servers are shared: one per session (per xdist worker), wiped before each test.

* `server` / `clean_server`: every server test runs on the main backend — PostgreSQL, as production
  does (SQLite where there is no PostgreSQL and CI is not set: tests/server/prefect_server.py).
* The tests marked `sqlite` run on a SQLite server instead (`sqlite_server`, one per run: the
  marker puts them in one xdist group). SQLite keeps what is SQLite's own: the 503 a locked
  database answers and the sequential fallback it makes apply take, the fault-injection tests
  (retries behind a proxy, whose timing SQLite's writer lock stresses most), one end-to-end apply
  (tests/server/test_server_apply.py), and import (a hand-made server is most often a SQLite one).
  docs/architecture.md says the same.
* `special_server`: the one server with basic auth (`AUTH_STRING`) and a page limit of
  `PAGE_LIMIT` instead of Prefect's 200, for the tests of credentials and of paging.
* `second_server`: a second server like the main one (one per run: xdist group `environments`),
  for the tests of environments, each applied to its own server.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import traceback
from pathlib import Path
from typing import Any

import pytest

from tests.lanes import lane
from tests.server.prefect_server import PrefectServer, main_backend
from tests.server.repo import Repo, project

CANARY = "canary-Pw-7f3a9c"  # the password of every test block; must never show up anywhere
PASSWORDS = {"LAOS_DHIS2_PASSWORD": CANARY + "-laos", "RWANDA_DHIS2_PASSWORD": CANARY + "-rwanda"}
AUTH_CANARY = CANARY + "-auth-string"
AUTH_STRING = "admin:" + AUTH_CANARY  # the special server's PREFECT_SERVER_API_AUTH_STRING
PAGE_LIMIT = 20  # the special server's PREFECT_SERVER_API_DEFAULT_LIMIT


# The services the status tests wait for, on short loops (Prefect's defaults: 5 s each): the scheduler
# pass for just-applied deployments, and the one that marks overdue runs Late.
SERVICE_LOOPS = {"PREFECT_SERVER_SERVICES_SCHEDULER_RECENT_DEPLOYMENTS_LOOP_SECONDS": "1",
                 "PREFECT_SERVER_SERVICES_LATE_RUNS_LOOP_SECONDS": "1"}
# The services no test of this lane waits for, off on its session servers (each costs CPU on every
# event or loop, for the whole run, on every worker's servers): automations are read and written
# here, never fired (tests/e2e fires them); no worker or task run, no paused run. The scheduler,
# late runs, cancellation clean-up and the event persister (tests/server/test_design_facts.py
# reads the event feed) stay on.
QUIET = {f"PREFECT_SERVER_SERVICES_{name}_ENABLED": "false"
         for name in ("TRIGGERS", "FOREMAN", "REPOSSESSOR", "PAUSE_EXPIRATIONS", "TASK_RUN_RECORDER")}


@pytest.fixture(scope="session")
@lane("server")
def server(tmp_path_factory) -> PrefectServer:
    srv = PrefectServer.start(tmp_path_factory.mktemp(f"prefect-{main_backend()}"), main_backend(),
                              extra_env={**SERVICE_LOOPS, **QUIET})
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
@lane("server", group="sqlite")
def sqlite_server(request, tmp_path_factory) -> PrefectServer:
    if main_backend() == "sqlite":
        yield request.getfixturevalue("server")
        return
    # Without Prefect's scheduler service: the SQLite tests that need runs schedule them themselves
    # (POST /deployments/{id}/schedule, as the service does), and a pass of the service reading a
    # deployment just before an apply updates it would add runs with the old parameters (a race of
    # Prefect's own, issue 21's "no scheduled run lost or doubled" is about it), making them flaky.
    srv = PrefectServer.start(tmp_path_factory.mktemp("prefect-sqlite"), "sqlite",
                              extra_env={"PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false", **QUIET})
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
@lane("server", group="special")
def special_server(tmp_path_factory) -> PrefectServer:
    srv = PrefectServer.start(tmp_path_factory.mktemp("prefect-special"), main_backend(), auth_string=AUTH_STRING,
                              extra_env={"PREFECT_SERVER_API_DEFAULT_LIMIT": str(PAGE_LIMIT), **QUIET})
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
@lane("server", group="environments")
def second_server(tmp_path_factory) -> PrefectServer:
    """Another Prefect server (main backend): with the main one, the two servers of two
    environments (staging and production) that the same commit is applied to."""
    srv = PrefectServer.start(tmp_path_factory.mktemp(f"prefect-second-{main_backend()}"), main_backend(),
                              extra_env={**SERVICE_LOOPS, **QUIET})
    yield srv
    srv.stop()


@pytest.fixture
def clean_second_server(second_server) -> PrefectServer:
    second_server.wipe()
    return second_server


@pytest.fixture
@lane("server")
def clean_server(request) -> PrefectServer:
    """The main server, or the SQLite one for a test marked `sqlite` (or parametrized indirectly
    with "sqlite"), wiped."""
    on_sqlite = getattr(request, "param", None) == "sqlite" or request.node.get_closest_marker("sqlite") is not None
    srv = request.getfixturevalue("sqlite_server" if on_sqlite else "server")
    srv.wipe()
    return srv


@pytest.fixture
def clean_special_server(special_server) -> PrefectServer:
    special_server.wipe()
    return special_server


# A test that runs on both backends: @ON_BOTH_BACKENDS (the SQLite case joins the group `sqlite`).
ON_BOTH_BACKENDS = pytest.mark.parametrize(
    "clean_server", ["main", pytest.param("sqlite", marks=pytest.mark.sqlite)], indirect=True)


@pytest.fixture(scope="session")
def warm_cache(tmp_path_factory) -> Path:
    """A repository whose .chapctl/cache holds the Prefect facts, copied into every test repo: for
    the flow with the DHIS2 credentials block alone, and with the webhook notification block
    (the alerts' tests). Any other set of block types is a miss, computed in its test."""
    root = tmp_path_factory.mktemp("warm")
    repo = Repo.create(root, [project("laos-malaria")])
    from compiler.compile.render import NOTIFICATION_TYPES
    from compiler.constants import BLOCK_TYPE_SLUG
    from compiler.reconcile.desired import load_desired
    from compiler.reconcile.facts import load_facts

    desired = load_desired(repo.root, {"CHAPCTL_FLOWS_DIR": "/x"})
    entrypoints = sorted({d.entrypoint for d in desired.deployments})
    load_facts(repo.root, entrypoints, [BLOCK_TYPE_SLUG, NOTIFICATION_TYPES["webhook"]])
    return root


@pytest.fixture
def make_repo(tmp_path, warm_cache):
    def make(projects: list[dict[str, Any]], defaults: dict[str, Any] | None = None, name: str = "repo") -> Repo:
        return Repo.create(tmp_path / name, projects, defaults, cache_from=warm_cache)

    return make


@pytest.fixture
def env(clean_server, tmp_path) -> dict[str, str]:
    return {**clean_server.client_env(), "CHAPCTL_FLOWS_DIR": str(tmp_path / "repo"), **PASSWORDS}


@contextlib.contextmanager
def _working_directory(path: Path):
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def run_cli(args: tuple[str, ...] | list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    """`chapctl ARGS` in this process (click's runner): the environment is exactly `env` for the
    Prefect and chapctl settings (this process's PREFECT_* are hidden), the working directory
    `cwd`. The result looks like a finished process; an exception that escaped the CLI's error
    boundary becomes exit 1 with its traceback on stderr, where the tests look for one."""
    from click.testing import CliRunner

    from compiler.cli import app

    overrides: dict[str, str | None] = {k: None for k in os.environ if k.startswith("PREFECT_")}
    overrides.update(env)
    with _working_directory(cwd):
        result = CliRunner().invoke(app, list(args), env=overrides, prog_name="chapctl", catch_exceptions=True)
    stderr = result.stderr
    code = result.exit_code
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(result.exception))
        code = 1
    return subprocess.CompletedProcess(["chapctl", *args], code, result.stdout, stderr)


class Chapctl:
    """Run plan/apply in-process (fast, exposes request counts) or as the real CLI."""

    def __init__(self, server: PrefectServer, env: dict[str, str]):
        self.server = server
        self.env = env
        self.outputs: list[str] = []  # everything the CLI printed, for the canary search

    def api(self, **kw):
        from compiler.reconcile.client import ApiSettings, PrefectAPI

        return PrefectAPI(ApiSettings.from_env(self.env), **kw)

    def plan(self, repo: Repo, adopt: bool = False, **flags: bool):
        from compiler.reconcile.prepare import prepare
        from compiler.reconcile.plan import PlanOptions

        with self.api() as api:
            prepared = prepare(repo.root, api, env=self.env, options=PlanOptions(adopt=adopt, **flags))
            self.last_stats = api.stats
            self.last_prepared = prepared
            return prepared.plan

    def apply(self, repo: Repo, adopt: bool = False, *, lock_timeout: float = 60, ignore_applied_commit: bool = False,
              allow_delete_all: bool = False, cancel_in_flight: bool = False, **api_kw):
        """Apply in-process; `last_stats` counts the plan's reads and writes (the lock and the
        commit record use their own client: `result.bookkeeping`)."""
        from compiler.reconcile.apply import ApplyOptions, apply
        from compiler.reconcile.plan import PlanOptions

        options = ApplyOptions(PlanOptions(adopt, allow_delete_all, cancel_in_flight), lock_timeout,
                               ignore_applied_commit)
        with self.api(**api_kw) as api:
            try:
                _, result = apply(repo.root, api, env=self.env, options=options)
                return result
            finally:
                self.last_stats = api.stats

    def cli(self, repo: Repo, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """The CLI's verb in-process (`run_cli`): options, output and exit codes as a user sees them."""
        full_env = dict(self.env if env is None else env)
        full_env["PREFECT_HOME"] = str(repo.root / ".prefect-home")  # no stray profile
        proc = run_cli(args, full_env, repo.root)
        self.outputs += [proc.stdout, proc.stderr]
        return proc

    def process_env(self, repo: Repo, env: dict[str, str] | None = None) -> dict[str, str]:
        """The environment of the CLI run as its own process (`python -m compiler`), where the process
        boundary is what is tested (signals, a kill, imports): this process's, without its PREFECT_*."""
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        full_env.update(self.env if env is None else env)
        full_env["PREFECT_HOME"] = str(repo.root / ".prefect-home")  # no stray profile
        return full_env


@pytest.fixture
def chapctl(clean_server, env) -> Chapctl:
    return Chapctl(clean_server, env)


# -- reading the server back ------------------------------------------------------------------------
def all_deployments(server: PrefectServer) -> list[dict[str, Any]]:
    with server.client() as c:
        return c.post("/deployments/filter", json={"limit": 200}).json()


def deployment(server: PrefectServer, name: str) -> dict[str, Any]:
    return next(d for d in all_deployments(server) if d["name"] == name)


def block_documents(server: PrefectServer, include_secrets: bool = False) -> list[dict[str, Any]]:
    with server.client() as c:
        return c.post("/block_documents/filter", json={
            "limit": 200, "include_secrets": include_secrets, "block_documents": {"is_anonymous": {"eq_": False}}}).json()


def updated_stamps(server: PrefectServer) -> dict[str, str]:
    """`updated` of every object chapctl could have written, keyed by kind and name."""
    out: dict[str, str] = {}
    with server.client() as c:
        for d in c.post("/deployments/filter", json={"limit": 200}).json():
            out[f"deployment:{d['name']}"] = d["updated"]
            for s in d["schedules"]:
                out[f"schedule:{d['name']}:{s['slug']}:{s['id']}"] = s["updated"]
        for b in c.post("/block_documents/filter", json={"limit": 200}).json():
            out[f"block:{b['name']}"] = b["updated"]
        for w in c.post("/work_pools/filter", json={"limit": 200}).json():
            out[f"work_pool:{w['name']}"] = w["updated"]
        for f in c.post("/flows/filter", json={"limit": 200}).json():
            out[f"flow:{f['name']}"] = f["updated"]
        bt = c.get("/block_types/slug/chap-dhis2-credentials")
        if bt.status_code == 200:
            out["block_type"] = bt.json()["updated"]
        for s in c.post("/block_schemas/filter", json={"limit": 200}).json():
            out[f"block_schema:{s['checksum']}"] = s["updated"]
        for v in c.post("/variables/filter", json={"limit": 200}).json():
            if not v["name"].startswith("chapctl-lock--"):  # the lock comes and goes with every apply
                out[f"variable:{v['name']}"] = v["updated"]
    return out


def normalized_state(server: PrefectServer) -> dict[str, Any]:
    """The server's content without ids and timestamps, to compare two runs' end states."""
    blocks = block_documents(server, include_secrets=True)
    name_by_id = {b["id"]: b["name"] for b in blocks}
    out: dict[str, Any] = {"blocks": {}, "deployments": {}, "work_pools": {}}
    for b in blocks:
        data = dict(b["data"])
        data["password"] = hashlib.sha256(str(data.get("password")).encode()).hexdigest()
        out["blocks"][b["name"]] = data
    for d in all_deployments(server):
        params = json.loads(json.dumps(d["parameters"]))
        cred = params.get("credentials")
        if isinstance(cred, dict) and "$ref" in cred:
            params["credentials"] = "block:" + name_by_id.get(cred["$ref"]["block_document_id"], "?")
        out["deployments"][d["name"]] = {
            **{k: d[k] for k in ("version", "description", "tags", "work_pool_name", "paused", "entrypoint",
                                 "pull_steps", "enforce_parameter_schema", "job_variables")},
            "parameters": params,
            "schedules": sorted(
                (s["slug"], json.dumps(s["schedule"], sort_keys=True), s["active"], json.dumps(s["parameters"]))
                for s in d["schedules"]
            ),
        }
    with server.client() as c:
        for w in c.post("/work_pools/filter", json={"limit": 200}).json():
            out["work_pools"][w["name"]] = w["type"]
        out["automations"] = sorted(  # a duplicate shows as a second row
            (a["name"], json.dumps(sorted(a["tags"])), a["enabled"])
            for a in c.post("/automations/filter", json={"limit": 200}).json())
    return out


SWEEPS = ["sample", pytest.param("all", marks=pytest.mark.slow)]  # @pytest.mark.parametrize("sweep", SWEEPS)


@pytest.hookimpl(trylast=True)  # after `-m` and `-k` chose what runs
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A sweep's sample is deselected when the whole sweep runs too (make test, CI): its kill
    points are a subset of the sweep's, on the same scenario."""
    def case(item: pytest.Item, sweep: str) -> tuple | None:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if params.get("sweep") != sweep:
            return None
        return item.path, item.originalname, tuple(sorted((k, repr(v)) for k, v in params.items() if k != "sweep"))

    swept = {key for item in items if (key := case(item, "all")) is not None}
    samples = [item for item in items if case(item, "sample") in swept]
    if samples:
        config.hook.pytest_deselected(items=samples)
        items[:] = [item for item in items if item not in samples]


# apply's stages (the `ActionKind` stages of compiler/reconcile/kinds/), by the path a write goes to
_STAGE_OF = {"work_pools": "definitions", "block_types": "definitions", "block_schemas": "definitions",
             "v2": "definitions", "block_documents": "blocks", "variables": "blocks", "flows": "flows",
             "deployments": "deployments", "automations": "automations"}


def _stage(write: tuple[str, str]) -> str:
    method, path = write
    if method == "DELETE" and path.startswith("/deployments/"):
        return "prune"  # pruned deployments go last, in a stage of their own
    return _STAGE_OF.get(path.strip("/").split("/")[0], path)


def kill_points(writes: list[tuple[str, str]], sweep: str) -> list[int]:
    """After which writes to kill an apply whose writes are `writes` (method, path), in order.
    "all": after every write but the last. "sample": after the first, after the last but one, and
    after the last write of every stage of apply (pools and block types, blocks, flows,
    deployments, automations, prunes): where a half-made apply hands over to the next stage."""
    last = len(writes) - 1
    if sweep == "all":
        return list(range(1, last + 1))
    points = {1, last} | {k for k in range(1, len(writes)) if _stage(writes[k]) != _stage(writes[k - 1])}
    return sorted(p for p in points if 1 <= p <= last)


def assert_kills_converge(chapctl: Chapctl, repo: Repo, setup, state, sweep: str = "all") -> int:
    """Apply once after `setup()` for the reference `state()`; then for each kill point k
    (`kill_points`), `setup()` again, kill an apply after its k-th write (the server committed
    them, the client died), re-run it and require the same state with nothing left to change.
    Returns the number of writes."""

    class Killed(BaseException):
        pass

    setup()
    chapctl.apply(repo)  # on a server that never saw chapctl: registers the block types, which stay
    setup()
    writes: list[tuple[str, str]] = []
    chapctl.apply(repo, on_write=lambda method, path: writes.append((method, path)))
    reference = state()
    total = chapctl.last_stats.writes
    assert len(writes) == total, (len(writes), total)
    for k in kill_points(writes, sweep):
        setup()

        def on_write(method: str, path: str, k=k, seen=[0]) -> None:
            seen[0] += 1
            if seen[0] >= k:
                raise Killed()

        with pytest.raises(Killed):
            chapctl.apply(repo, on_write=on_write)
        chapctl.apply(repo)
        assert state() == reference, f"diverged after a kill at write {k} of {total} ({writes[k - 1]})"
        assert not chapctl.plan(repo).has_changes
    return total
