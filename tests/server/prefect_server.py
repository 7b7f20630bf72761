"""Start and stop a real Prefect server for tests and benchmarks (reusable: import it).

    with PrefectServer.start(tmp_dir, backend="sqlite") as server:
        env = server.client_env()            # PREFECT_API_URL (+ auth) for chapctl / prefect CLI

* `prefect server start` as a subprocess in its own process group, on a free loopback port, with
  a temporary `PREFECT_HOME`; stopped by killing that process group (never by name).
* backend "sqlite": a database file in the temp dir. backend "postgres": a fresh database
  `chapctl_test_<random>` created with asyncpg on 127.0.0.1:5432 and dropped on stop.
* `auth_string="user:pass"` sets `PREFECT_SERVER_API_AUTH_STRING` (every path but /health needs it).
* `extra_env=scheduler_env(...)` tunes the server's scheduler (loop intervals, run counts, horizon).
* The server's output goes to `<tmp>/server.log`; a start that fails shows its tail.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import httpx

PG_HOST, PG_PORT, PG_USER, PG_ADMIN_DB = "127.0.0.1", 5432, "postgres", "test"
PREFECT_BIN = Path(sys.executable).with_name("prefect")


def postgres_available(timeout: float = 0.5) -> bool:
    """True when 127.0.0.1:5432 accepts TCP connections (decides the backend list, not a skip)."""
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=timeout):
            return True
    except OSError:
        return False


def backends() -> list[str]:
    """sqlite always; postgres when 127.0.0.1:5432 answers — and always when `CI` is set, so that
    a CI machine without PostgreSQL fails (PrefectServer.start says why) instead of silently
    testing less. `CHAPCTL_TEST_BACKENDS=sqlite` narrows the list on purpose."""
    wanted = os.environ.get("CHAPCTL_TEST_BACKENDS")
    if wanted:
        return [b.strip() for b in wanted.split(",") if b.strip()]
    return ["sqlite", "postgres"] if postgres_available() or os.environ.get("CI") else ["sqlite"]


def backends_report() -> str:
    """One line for the test session's header and summary: which backends run, and why not."""
    chosen = backends()
    if "postgres" in chosen and not postgres_available():
        return (f"server backends: {', '.join(chosen)} — PostgreSQL at {PG_HOST}:{PG_PORT} is unreachable and "
                "CI is set: the postgres tests will fail")
    if "postgres" not in chosen and not os.environ.get("CHAPCTL_TEST_BACKENDS"):
        return (f"server backends: sqlite only — PostgreSQL at {PG_HOST}:{PG_PORT} is unreachable (it is "
                "required when CI is set)")
    return f"server backends: {', '.join(chosen)}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scheduler_env(*, loop_seconds: float = 60, recent_loop_seconds: float = 5, min_runs: int = 3,
                  max_runs: int = 100, min_scheduled_time: timedelta = timedelta(hours=1),
                  max_scheduled_time: timedelta = timedelta(days=100)) -> dict[str, str]:
    """Server environment for the scheduler service (`prefect.server.services.scheduler`; the
    defaults are Prefect 3.8's). It schedules each active schedule's runs from now until both
    `min_runs` and `now + min_scheduled_time` are reached, never more than `max_runs` nor past
    `now + max_scheduled_time`; the main loop runs every `loop_seconds`, the loop for deployments
    updated since its last pass every `recent_loop_seconds`. Durations go as ISO 8601 (the
    settings reject plain seconds)."""

    def iso(delta: timedelta) -> str:
        return f"P{delta.days}DT{delta.seconds}S"

    prefix = "PREFECT_SERVER_SERVICES_SCHEDULER_"
    return {
        prefix + "ENABLED": "true",
        prefix + "LOOP_SECONDS": str(loop_seconds),
        prefix + "RECENT_DEPLOYMENTS_LOOP_SECONDS": str(recent_loop_seconds),
        prefix + "MIN_RUNS": str(min_runs),
        prefix + "MAX_RUNS": str(max_runs),
        prefix + "MIN_SCHEDULED_TIME": iso(min_scheduled_time),
        prefix + "MAX_SCHEDULED_TIME": iso(max_scheduled_time),
    }


async def _pg(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database=PG_ADMIN_DB)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


class _RetryOn503(httpx.HTTPTransport):
    """SQLite-backed servers answer 503 while the database is locked: retry a few times."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        for attempt in range(8):
            response = super().handle_request(request)
            if response.status_code != 503:
                return response
            response.close()
            time.sleep(0.1 * (attempt + 1))
        return super().handle_request(request)


def retrying_client(**kwargs: object) -> httpx.Client:
    """An HTTP client that retries the 503 a SQLite-backed server answers while its database is locked."""
    return httpx.Client(transport=_RetryOn503(), **{"timeout": 30, **kwargs})


@dataclass
class PrefectServer:
    home: Path
    port: int
    backend: str
    auth_string: str | None = None
    database: str | None = None
    process: subprocess.Popen | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def log_path(self) -> Path:
        return self.home / "server.log"

    def client_env(self) -> dict[str, str]:
        env = {"PREFECT_API_URL": self.api_url}
        if self.auth_string:
            env["PREFECT_API_AUTH_STRING"] = self.auth_string
        return env

    def client(self) -> httpx.Client:
        auth = None
        if self.auth_string:
            user, _, pw = self.auth_string.partition(":")
            auth = httpx.BasicAuth(user, pw)
        return httpx.Client(base_url=self.api_url, auth=auth, timeout=30, transport=_RetryOn503())

    # -- lifecycle -------------------------------------------------------------------------------
    @classmethod
    def start(cls, home: Path, backend: str = "sqlite", *, auth_string: str | None = None,
              extra_env: dict[str, str] | None = None, timeout: float = 120.0,
              prefect_bin: Path | None = None) -> PrefectServer:
        """`prefect_bin`: another Prefect's CLI (tests/server/server_envs.py); default the locked one."""
        home.mkdir(parents=True, exist_ok=True)
        server = cls(home=home, port=free_port(), backend=backend, auth_string=auth_string,
                     extra_env=dict(extra_env or {}))
        if backend == "sqlite":
            db_url = f"sqlite+aiosqlite:///{home / 'prefect.db'}"
        elif backend == "postgres":
            if not postgres_available():
                raise RuntimeError(f"PostgreSQL at {PG_HOST}:{PG_PORT} is unreachable; the postgres backend needs it "
                                   "(required when CI is set; CHAPCTL_TEST_BACKENDS=sqlite runs without it)")
            server.database = f"chapctl_test_{uuid.uuid4().hex[:12]}"
            asyncio.run(_pg(f'CREATE DATABASE "{server.database}"'))
            db_url = f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{server.database}"
        else:
            raise ValueError(f"unknown backend {backend!r}")
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env.update(
            PREFECT_HOME=str(home),
            PREFECT_API_DATABASE_CONNECTION_URL=db_url,
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_UI_ENABLED="false",
            PREFECT_SERVER_LOGGING_LEVEL="WARNING",
            PREFECT_LOGGING_LEVEL="WARNING",
        )
        if auth_string:
            env["PREFECT_SERVER_API_AUTH_STRING"] = auth_string
        env.update(server.extra_env)
        log = server.log_path.open("ab")
        try:
            server.process = subprocess.Popen(
                [str(prefect_bin or PREFECT_BIN), "server", "start", "--host", "127.0.0.1", "--port", str(server.port)],
                env=env, cwd=home, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,  # own process group: stop() kills it and its children
            )
        finally:
            log.close()
        try:
            server._wait_healthy(timeout)
        except BaseException:
            server.stop()
            raise
        return server

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"prefect server exited with {self.process.returncode}:\n{self._log_tail()}")
            try:
                if httpx.get(f"{self.api_url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise RuntimeError(f"prefect server not healthy after {timeout:.0f}s:\n{self._log_tail()}")

    def _log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=10)
        if self.database:
            db, self.database = self.database, None
            asyncio.run(_pg(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))

    def __enter__(self) -> PrefectServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- test helpers ----------------------------------------------------------------------------
    def wipe(self, keep_work_pools: tuple[str, ...] = (), *, registrations: bool = False) -> None:
        """Delete every deployment, block document, variable, automation, global concurrency limit and
        work pool so the next test starts clean.
        Flows, block types and block schemas stay (they are shared, registration is idempotent),
        unless `registrations`: then chapctl's block type (with its schemas) and flow go too, as
        on a server chapctl never saw."""
        with self.client() as c:
            for _ in range(100):
                rows = c.post("/deployments/filter", json={"limit": 200}).json()
                if not rows:
                    break
                for d in rows:
                    c.delete(f"/deployments/{d['id']}")
            for _ in range(100):
                rows = c.post("/block_documents/filter", json={"limit": 200, "block_documents": {"is_anonymous": {"eq_": False}}}).json()
                if not rows:
                    break
                for b in rows:
                    c.delete(f"/block_documents/{b['id']}")
            for _ in range(100):
                rows = c.post("/variables/filter", json={"limit": 200}).json()
                if not rows:
                    break
                for v in rows:
                    c.delete(f"/variables/{v['id']}")
            for automation in c.post("/automations/filter", json={"limit": 200}).json():
                c.delete(f"/automations/{automation['id']}")
            for limit in c.post("/v2/concurrency_limits/filter", json={"limit": 200}).json():
                c.delete(f"/v2/concurrency_limits/{limit['id']}")
            for wp in c.post("/work_pools/filter", json={"limit": 200}).json():
                if wp["name"] not in keep_work_pools and not wp["name"].startswith("default-agent"):
                    c.delete(f"/work_pools/{wp['name']}")
            if registrations:
                bt = c.get("/block_types/slug/chap-dhis2-credentials")
                if bt.status_code == 200:
                    c.delete(f"/block_types/{bt.json()['id']}").raise_for_status()
                flow = c.get("/flows/name/dhis2-chap-prediction")
                if flow.status_code == 200:
                    c.delete(f"/flows/{flow.json()['id']}").raise_for_status()
