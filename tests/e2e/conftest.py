"""One end-to-end stack per test module: the fake DHIS2+CHAP server, a real Prefect server (PostgreSQL,
or SQLite where there is none; scheduler loop 2 s), a temporary chapctl repository compiled and applied with the real CLI, and a
real process worker for its pool. No mocks and no patching: the flow runs as the worker runs it in
production, in its own process, loading the code through the deployment's pull step.

Teardown deletes the deployments (the every-minute schedule would keep creating runs), waits
until no run is pending or running, then stops the worker (and any flow-run process below it),
the server and the fake, by PID / process group.
"""

from __future__ import annotations

import subprocess
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from tests.e2e.scenario import (PASSWORD, PASSWORD_ENV, POOL, SERVER_SETTINGS, TODAY, USERNAME, WORKER_SETTINGS,
                                Stack, clean_env, e2e_projects)
from tests.e2e.stack import BIN, Api, Worker, backend, wait_worker_online
from tests.fake_dhis2 import FakeDhis2Server
from tests.lanes import lane
from tests.server.prefect_server import PrefectServer
from tests.server.repo import Repo


def chapctl(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "chapctl"), *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def _quiesce(api: Api, worker: Worker, timeout: float = 120.0) -> None:
    """Delete every deployment (and so its scheduled runs), then wait for in-flight runs to end.
    Best effort: whatever is still running afterwards is stopped by `Worker.stop`."""
    try:
        for deployment in api.c.post("/deployments/filter", json={"limit": 200}).json():
            api.c.delete(f"/deployments/{deployment['id']}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and worker.running:
            if not api.runs_in_states(["PENDING", "RUNNING", "CANCELLING"]):
                return
            time.sleep(0.5)
    except httpx.HTTPError:
        pass


@pytest.fixture(scope="module")
@lane("e2e", group="e2e-runs")
def stack(tmp_path_factory) -> Stack:
    tmp = tmp_path_factory.mktemp("e2e")
    with ExitStack() as cleanup:
        fake = FakeDhis2Server(username=USERNAME, password=PASSWORD, today=TODAY).start()
        cleanup.callback(fake.stop)

        # PostgreSQL where there is one (always in CI), as production runs: on SQLite, a worker, the
        # scheduler and four flow runs taking global-concurrency slots at once can hold its one
        # writer lock past a client's 30 s timeout (seen in CI). SQLite is covered by tests/server.
        server = PrefectServer.start(tmp / "server", backend(),
                                     extra_env=SERVER_SETTINGS)
        cleanup.callback(server.stop)
        client = cleanup.enter_context(server.client())
        api = Api(client)

        projects = e2e_projects(fake.url)
        repo = Repo.create(tmp / "repo", projects,
                           defaults={"timezone": "UTC", "work_pool": POOL, "tags": ["e2e"],
                                     "source": {"directory_env": "CHAPCTL_FLOWS_DIR"}})
        cli_env = clean_env(**server.client_env(), **PASSWORD_ENV, PREFECT_HOME=str(tmp / "chapctl-home"),
                            CHAPCTL_FLOWS_DIR=str(repo.root))
        check = chapctl("compile", "--check", "--root", str(repo.root), env=cli_env, cwd=tmp)
        assert check.returncode == 0, check.stdout + check.stderr
        applied = chapctl("apply", "--root", str(repo.root), env=cli_env, cwd=tmp)
        assert applied.returncode == 0, applied.stdout + applied.stderr

        # The worker knows no DHIS2 password: it must resolve the credentials block reference.
        (tmp / "worker").mkdir()
        worker_env = clean_env(**server.client_env(), **WORKER_SETTINGS, PREFECT_HOME=str(tmp / "worker-home"))
        worker = Worker.start(POOL, worker_env, cwd=tmp / "worker", log_path=tmp / "worker.log")
        cleanup.callback(worker.stop)
        cleanup.callback(_quiesce, api, worker)  # runs before worker.stop (LIFO)
        wait_worker_online(api, worker, POOL)

        yield Stack(server=server, fake=fake, repo=repo, worker=worker, api=api,
                    apply_output=applied.stdout + applied.stderr, projects={p["name"]: p for p in projects})


@pytest.fixture(scope="module")
def api(stack: Stack) -> Api:
    return stack.api
