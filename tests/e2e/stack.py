"""The end-to-end stack: a real Prefect server, a real process worker, the fake DHIS2+CHAP server
and a chapctl repository applied with the real CLI — what `make run` does by hand, for tests.

* The server is `tests.server.prefect_server.PrefectServer` (its own process group, temp
  PREFECT_HOME), started with a short scheduler loop through its `extra_env`.
* The worker is `prefect worker start --pool POOL --type process` (tests/processes.py), with a
  short polling interval. Prefect's process worker starts every flow run in a *new session*
  (`prefect/runner/_starter_engine.py`, `start_new_session=True`), so killing the worker's group
  does not reach them: `Worker.stop` records the worker's descendants from /proc first and stops
  each of them by PID afterwards (`reap_descendants`).
* Nothing is ever stopped by name.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests import processes

BIN = Path(sys.executable).parent
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
# An idle worker leaves within a second of SIGTERM (it turns it into SIGINT: stop polling, wait for
# its flow runs). Under the suite's load one that has run flows sometimes sat out a whole 20 s
# grace with no flow run left below it (seen: e2e teardowns and the topology test's stops, 20 s
# each); five seconds, then SIGKILL (the tests that read its log after a stop need only its
# websockets closed, which the kill does too).
STOP_GRACE = 5.0


# ------------------------------------------------------------------------------ processes


@dataclass
class Worker:
    """`prefect worker start --pool POOL --type process`, through tests/processes.py: its own process
    group, and the flow-run processes below it (in sessions of their own) stopped by PID too."""

    process: processes.Process

    @classmethod
    def start(cls, pool: str, env: dict[str, str], cwd: Path, log_path: Path, *,
              extra_args: tuple[str, ...] = (), bin_dir: Path = BIN, name: str | None = None) -> Worker:
        """`extra_args` go to `prefect worker start` (e.g. `--name`, `--limit`); `bin_dir`: the
        environment whose `prefect` runs it (default this one)."""
        return cls(processes.spawn(name or f"prefect worker ({pool})",
                                   [bin_dir / "prefect", "worker", "start", "--pool", pool, "--type", "process",
                                    *extra_args],
                                   env=env, cwd=cwd, log_path=log_path, reap_descendants=True, grace=STOP_GRACE))

    @property
    def running(self) -> bool:
        return self.process.running

    @property
    def log_path(self) -> Path:
        assert self.process.log_path is not None
        return self.process.log_path

    def log_tail(self, chars: int = 4000) -> str:
        return self.process.log_text()[-chars:] or "(no worker log)"

    def stop(self) -> None:
        self.process.stop()


def backend() -> str:
    """The e2e stacks' Prefect backend: PostgreSQL where there is one (always in CI), as production runs."""
    from tests.server.prefect_server import backends

    return "postgres" if "postgres" in backends() else "sqlite"


def wait_worker_online(api: Api, worker: Worker, pool: str, timeout: float = 90.0) -> None:
    """Fail fast (with the worker's log) when the worker does not come up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert worker.running, f"the worker exited at once:\n{worker.log_tail()}"
        workers = api.c.post(f"/work_pools/{pool}/workers/filter", json={}).json()
        if any(w["status"] == "ONLINE" for w in workers):
            return
        time.sleep(0.5)
    raise AssertionError(f"no worker online for pool {pool} after {timeout:.0f}s:\n{worker.log_tail()}")


# ------------------------------------------------------------------------------ reading the API


class Api:
    """A few reads and writes against the server's REST API (what the UI and the demo use)."""

    def __init__(self, client: httpx.Client):
        self.c = client

    def _ok(self, response: httpx.Response) -> Any:
        assert response.status_code < 300, f"{response.request.method} {response.request.url} -> " \
                                            f"{response.status_code} {response.text[:500]}"
        return response.json() if response.content else None

    def deployment(self, name: str, flow: str = "dhis2-chap-prediction") -> dict[str, Any]:
        return self._ok(self.c.get(f"/deployments/name/{flow}/{name}"))

    def block_document(self, name: str, include_secrets: bool = False) -> dict[str, Any]:
        return self._ok(self.c.get(f"/block_types/slug/chap-dhis2-credentials/block_documents/name/{name}",
                                   params={"include_secrets": include_secrets}))

    def trigger(self, deployment_id: str) -> dict[str, Any]:
        return self._ok(self.c.post(f"/deployments/{deployment_id}/create_flow_run", json={}))

    def flow_run(self, run_id: str) -> dict[str, Any]:
        return self._ok(self.c.get(f"/flow_runs/{run_id}"))

    def flow_runs(self, deployment_id: str) -> list[dict[str, Any]]:
        return self._ok(self.c.post("/flow_runs/filter", json={
            "flow_runs": {"deployment_id": {"any_": [deployment_id]}}, "sort": "EXPECTED_START_TIME_ASC",
            "limit": 200}))

    def runs_in_states(self, states: list[str]) -> list[dict[str, Any]]:
        return self._ok(self.c.post("/flow_runs/filter", json={
            "flow_runs": {"state": {"type": {"any_": states}}}, "limit": 200}))

    def artifacts_of(self, run_id: str) -> list[dict[str, Any]]:
        return self._ok(self.c.post("/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": [run_id]}}}))

    def latest_artifact(self, key: str) -> dict[str, Any]:
        return self._ok(self.c.get(f"/artifacts/{key}/latest"))

    def wait_terminal(self, run_id: str, timeout: float, worker: Worker | None = None) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            run = self.flow_run(run_id)
            if run["state"]["type"] in TERMINAL:
                return run
            if time.monotonic() > deadline:
                tail = worker.log_tail() if worker else ""
                raise AssertionError(f"flow run {run_id} still {run['state']['name']} after {timeout:.0f}s; "
                                     f"worker log tail:\n{tail}")
            time.sleep(0.5)
