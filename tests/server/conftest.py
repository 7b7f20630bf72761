"""Fixtures for integration tests against a real Prefect server.

One server per backend per session (sqlite always; postgres too when 127.0.0.1:5432 accepts
connections — the backend list is conditional, nothing is skipped), wiped before each test.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.server.prefect_server import PrefectServer, backends
from tests.server.repo import Repo, project

CANARY = "canary-Pw-7f3a9c"  # the password of every test block; must never show up anywhere
PASSWORDS = {"LAOS_DHIS2_PASSWORD": CANARY + "-laos", "RWANDA_DHIS2_PASSWORD": CANARY + "-rwanda"}


@pytest.fixture(scope="session", params=backends())
def server(request, tmp_path_factory) -> PrefectServer:
    srv = PrefectServer.start(tmp_path_factory.mktemp(f"prefect-{request.param}"), request.param)
    request.addfinalizer(srv.stop)
    return srv


@pytest.fixture
def clean_server(server: PrefectServer) -> PrefectServer:
    server.wipe()
    return server


@pytest.fixture(scope="session")
def warm_cache(tmp_path_factory) -> Path:
    """A repository whose .chapctl/cache holds the Prefect facts, copied into every test repo."""
    root = tmp_path_factory.mktemp("warm")
    repo = Repo.create(root, [project("laos-malaria")])
    from compiler.reconcile.desired import load_desired

    load_desired(repo.root, {"CHAPCTL_FLOWS_DIR": "/x"})
    return root


@pytest.fixture
def make_repo(tmp_path, warm_cache):
    def make(projects: list[dict[str, Any]], defaults: dict[str, Any] | None = None, name: str = "repo") -> Repo:
        return Repo.create(tmp_path / name, projects, defaults, cache_from=warm_cache)

    return make


@pytest.fixture
def env(clean_server, tmp_path) -> dict[str, str]:
    return {**clean_server.client_env(), "CHAPCTL_FLOWS_DIR": str(tmp_path / "repo"), **PASSWORDS}


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
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        full_env.update(self.env if env is None else env)
        full_env["PREFECT_HOME"] = str(repo.root / ".prefect-home")  # no stray profile
        proc = subprocess.run([sys.executable, "-m", "compiler", *args], cwd=repo.root, env=full_env,
                              capture_output=True, text=True, timeout=120)
        self.outputs += [proc.stdout, proc.stderr]
        return proc


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
    return out


def assert_kills_converge(chapctl: Chapctl, repo: Repo, setup, state) -> int:
    """Apply once after `setup()` for the reference `state()`; then for every k, `setup()` again,
    kill an apply after its k-th write (the server committed them, the client died), re-run it and
    require the same state with nothing left to change. Returns the number of writes."""

    class Killed(BaseException):
        pass

    setup()
    chapctl.apply(repo)  # on a server that never saw chapctl: registers the block types, which stay
    setup()
    chapctl.apply(repo)
    reference = state()
    total = chapctl.last_stats.writes
    for k in range(1, total):
        setup()

        def on_write(method: str, path: str, k=k, seen=[0]) -> None:
            seen[0] += 1
            if seen[0] >= k:
                raise Killed()

        with pytest.raises(Killed):
            chapctl.apply(repo, on_write=on_write)
        chapctl.apply(repo)
        assert state() == reference, f"diverged after a kill at write {k}"
        assert not chapctl.plan(repo).has_changes
    return total
