"""The end-to-end stack: a real Prefect server, a real process worker, the fake DHIS2+CHAP server
and a chapctl repository applied with the real CLI — what `make run` does by hand, for tests.

* The server is `tests.server.prefect_server.PrefectServer` (its own process group, temp
  PREFECT_HOME, SQLite), started with a short scheduler loop through its `extra_env`.
* The worker is `prefect worker start --pool POOL --type process` in its own process group, with
  a short polling interval. Prefect's process worker starts every flow run in a *new session*
  (`prefect/runner/_starter_engine.py`, `start_new_session=True`), so killing the worker's group
  does not reach them: `Worker.stop` records the worker's descendants from /proc first and stops
  each of them by PID afterwards.
* Nothing is ever stopped by name.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

BIN = Path(sys.executable).parent
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


# ------------------------------------------------------------------------------ processes


def _children_map() -> dict[int, list[int]]:
    """ppid -> pids of every process visible in /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # the command name (2nd field) is in parentheses and may hold spaces: split after it
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    return children


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, whatever its session or process group."""
    children, found, todo = _children_map(), [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def stop_leader_then_group(proc: subprocess.Popen | None, graceful: int = signal.SIGTERM,
                           grace: float = 10.0) -> None:
    """Stop a process started with `start_new_session=True`: `graceful` to the leader (a daemon
    that shuts its children down itself), then SIGKILL to its whole group if it lingers."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.kill(proc.pid, graceful)
        proc.wait(timeout=grace)
        return
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is dead for our purpose
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def stop_pids(pids: list[int], grace: float = 15.0) -> None:
    """SIGTERM each still-running pid, then SIGKILL the ones that outlive `grace` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        running = [pid for pid in pids if alive(pid)]
        for pid in running:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while running and time.monotonic() < deadline:
            running = [pid for pid in running if alive(pid)]
            time.sleep(0.1)
        if not running:
            return


@dataclass
class Worker:
    """`prefect worker start --pool POOL --type process`, in its own process group."""

    process: subprocess.Popen
    log_path: Path

    @classmethod
    def start(cls, pool: str, env: dict[str, str], cwd: Path, log_path: Path, *,
              extra_args: tuple[str, ...] = ()) -> Worker:
        """`extra_args` go to `prefect worker start` (e.g. `--name`, `--limit`)."""
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [str(BIN / "prefect"), "worker", "start", "--pool", pool, "--type", "process", *extra_args],
                env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return cls(process, log_path)

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no worker log)"

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        below = descendants(self.process.pid)  # flow runs live in sessions of their own
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(timeout=10)
        stop_pids(below)


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
