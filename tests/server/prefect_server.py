"""Start and stop a real Prefect server for tests and benchmarks (reusable: import it).

    with PrefectServer.start(tmp_dir, backend="postgres") as server:
        env = server.client_env()            # PREFECT_API_URL (+ auth) for chapctl / prefect CLI

* `prefect server start` through tests/processes.py (its own process group, stopped by group,
  never by name), on a free loopback port, with a temporary `PREFECT_HOME`.
* backend "sqlite": a database file in the temp dir. backend "postgres": a fresh database
  `chapctl_test_<random>` on 127.0.0.1:5432, dropped on stop.
* Either starts from a *template*: a database migrated once by a server of the same Prefect
  release (and holding the block types it registers), kept in the suite's cache (tests/cachedir.py; SQLite:
  a file, copied) or in PostgreSQL (`chapctl_tmpl_<release>`, cloned with `CREATE DATABASE …
  TEMPLATE`). A server then starts in about half the time: no migration, no block registration.
* `auth_string="user:pass"` sets `PREFECT_SERVER_API_AUTH_STRING` (every path but /health needs it).
* `extra_env=scheduler_env(...)` tunes the server's scheduler (loop intervals, run counts, horizon).
* The server's output goes to `<tmp>/server.log`; a start that fails shows its tail.

Which backend a test gets: `main_backend()` (PostgreSQL where there is one, always when `CI` is set)
for every server test; SQLite for the tests marked `sqlite` (tests/server/conftest.py says which).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import re
import shutil
import socket
import sys
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Iterator

import httpx

from tests import processes
from tests.cachedir import CACHE_ROOT
from tests.processes import free_port  # noqa: F401 (re-exported: tests and benches import it from here)

PG_HOST, PG_PORT, PG_USER, PG_ADMIN_DB = "127.0.0.1", 5432, "postgres", "test"
PREFECT_BIN = Path(sys.executable).with_name("prefect")
REPO = Path(__file__).resolve().parents[2]
TEMPLATES = CACHE_ROOT / "prefect-templates"


def postgres_available(timeout: float = 0.5) -> bool:
    """True when 127.0.0.1:5432 accepts TCP connections (decides the backend, not a skip)."""
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=timeout):
            return True
    except OSError:
        return False


def main_backend() -> str:
    """The backend of every server test: postgres when 127.0.0.1:5432 answers — and always when `CI`
    is set, so that a CI machine without PostgreSQL fails (PrefectServer.start says why) instead of
    silently testing less. `CHAPCTL_TEST_BACKENDS=sqlite` chooses SQLite on purpose."""
    wanted = [b.strip() for b in os.environ.get("CHAPCTL_TEST_BACKENDS", "").split(",") if b.strip()]
    if wanted:
        return "postgres" if "postgres" in wanted else wanted[0]
    return "postgres" if postgres_available() or os.environ.get("CI") else "sqlite"


def backends() -> list[str]:
    """Every backend this run covers: sqlite always (the SQLite-specific tests), and the main one."""
    return sorted({"sqlite", main_backend()}, key=["sqlite", "postgres"].index)


def backends_report() -> str:
    """One line for the test session's header and summary: which backends run, and why not."""
    main = main_backend()
    if main == "postgres" and not postgres_available():
        return (f"server backends: postgres, sqlite — PostgreSQL at {PG_HOST}:{PG_PORT} is unreachable and "
                "CI is set: the postgres tests will fail")
    if main == "sqlite" and not os.environ.get("CHAPCTL_TEST_BACKENDS"):
        return (f"server backends: sqlite only — PostgreSQL at {PG_HOST}:{PG_PORT} is unreachable (it is "
                "required when CI is set)")
    if main == "sqlite":
        return "server backends: sqlite only (CHAPCTL_TEST_BACKENDS)"
    return "server backends: postgres (every server test), sqlite (the tests marked sqlite)"


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


def _release_key(prefect_bin: Path | None) -> str:
    """What a template is keyed by: the Prefect release of the server binary (its migrations and
    block types)."""
    if prefect_bin is None or Path(prefect_bin) == PREFECT_BIN:
        from compiler.installed import version

        name = f"prefect-{version('prefect')}"
    else:  # another release's cached environment: <test cache>/server-envs/prefect-<version>-<hash>/bin/prefect
        name = Path(prefect_bin).resolve().parent.parent.name
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


@contextmanager
def _template_lock(key: str) -> Iterator[None]:
    """One process at a time builds or clones a template (xdist workers, two suites, a bench)."""
    TEMPLATES.mkdir(parents=True, exist_ok=True)
    with (TEMPLATES / f"{key}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


async def _pg_fetch(sql: str, *args: object) -> list:
    import asyncpg

    conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database=PG_ADMIN_DB)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


@dataclass
class PrefectServer:
    home: Path
    port: int
    backend: str
    auth_string: str | None = None
    database: str | None = None
    process: processes.Process | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def page_limit(self) -> int:
        """The most objects one filter request may ask for (PREFECT_SERVER_API_DEFAULT_LIMIT)."""
        return int(self.extra_env.get("PREFECT_SERVER_API_DEFAULT_LIMIT", 200))

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
              prefect_bin: Path | None = None, template: bool = True) -> PrefectServer:
        """`prefect_bin`: another Prefect's CLI (tests/server/server_envs.py); default the locked one.
        `template=False`: a database migrated by this very start (what `make run` and a first
        start do)."""
        if backend not in ("sqlite", "postgres"):
            raise ValueError(f"unknown backend {backend!r}")
        if backend == "postgres" and not postgres_available():
            raise RuntimeError(f"PostgreSQL at {PG_HOST}:{PG_PORT} is unreachable; the postgres backend needs it "
                               "(required when CI is set; CHAPCTL_TEST_BACKENDS=sqlite runs without it)")
        home.mkdir(parents=True, exist_ok=True)
        server = cls(home=home, port=processes.free_port(), backend=backend, auth_string=auth_string,
                     extra_env=dict(extra_env or {}))
        from_template = template and server._from_template(prefect_bin)
        env = server._env()
        if from_template:  # migrated, block types registered: nothing to do at start
            env.update(PREFECT_API_DATABASE_MIGRATE_ON_START="false", PREFECT_API_BLOCKS_REGISTER_ON_START="false")
        env.update(server.extra_env)
        try:
            server._launch(f"prefect server ({backend}, port {server.port})", prefect_bin, env, timeout)
        except BaseException:
            server._drop_database()
            raise
        return server

    def _launch(self, name: str, prefect_bin: Path | None, env: dict[str, str], timeout: float) -> None:
        """`prefect server start` on this server's port, in its home, ready once /health answers."""
        self.process = processes.start(
            name, [prefect_bin or PREFECT_BIN, "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
            env=env, cwd=self.home, log_path=self.log_path, ready=processes.http_ok(f"{self.api_url}/health"),
            timeout=timeout)

    def _db_url(self) -> str:
        if self.backend == "sqlite":
            return f"sqlite+aiosqlite:///{self.home / 'prefect.db'}"
        return f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{self.database}"

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env.update(
            PREFECT_HOME=str(self.home),
            PREFECT_API_DATABASE_CONNECTION_URL=self._db_url(),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_UI_ENABLED="false",
            PREFECT_SERVER_LOGGING_LEVEL="WARNING",
            PREFECT_LOGGING_LEVEL="WARNING",
        )
        if self.auth_string:
            env["PREFECT_SERVER_API_AUTH_STRING"] = self.auth_string
        return env

    def _from_template(self, prefect_bin: Path | None) -> bool:
        """Lay this server's database from the release's template, building the template first
        when there is none. True when it did."""
        key = _release_key(prefect_bin)
        with _template_lock(key):
            if self.backend == "sqlite":
                template = TEMPLATES / key / "prefect.db"
                if not template.is_file():
                    self._build_template(prefect_bin, TEMPLATES / key, template)
                shutil.copyfile(template, self.home / "prefect.db")
                return True
            name = f"chapctl_tmpl_{key}"[:63]
            if not asyncio.run(_pg_fetch("SELECT 1 FROM pg_database WHERE datname = $1", name)):
                self._build_template(prefect_bin, None, name)
            self.database = f"chapctl_test_{uuid.uuid4().hex[:12]}"
            asyncio.run(_pg(f'CREATE DATABASE "{self.database}" TEMPLATE "{name}"'))
            return True

    def _build_template(self, prefect_bin: Path | None, folder: Path | None, target: Path | str) -> None:
        """Start a server of that release on an empty database (it migrates it and registers its
        block types), stop it, and keep the database as the template (published whole: a file
        renamed into place, a database renamed)."""
        builder = PrefectServer(home=self.home / "template-build", port=processes.free_port(), backend=self.backend)
        builder.home.mkdir(parents=True, exist_ok=True)
        if self.backend == "postgres":
            builder.database = f"chapctl_build_{uuid.uuid4().hex[:12]}"
            asyncio.run(_pg(f'CREATE DATABASE "{builder.database}"'))
        try:
            builder._launch(f"prefect server (building the {self.backend} template)", prefect_bin, builder._env(), 180)
            builder.process.stop()
            if self.backend == "sqlite":
                assert isinstance(target, Path) and folder is not None
                folder.mkdir(parents=True, exist_ok=True)
                import sqlite3

                with contextlib.closing(sqlite3.connect(builder.home / "prefect.db")) as db:  # WAL into the file
                    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                partial = folder / f".prefect.db.{os.getpid()}"
                shutil.copyfile(builder.home / "prefect.db", partial)
                partial.replace(target)
            else:
                asyncio.run(_pg(f'ALTER DATABASE "{builder.database}" RENAME TO "{target}"'))
                builder.database = None
        finally:
            if builder.process is not None:
                builder.process.stop()
            builder._drop_database()
            shutil.rmtree(builder.home, ignore_errors=True)

    def _drop_database(self) -> None:
        if self.database:
            db, self.database = self.database, None
            asyncio.run(_pg(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))

    def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is not None:
            proc.stop()
        self._drop_database()

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
        def each(path: str, body: dict | None = None, key: str = "id", keep=lambda row: True) -> None:
            """Delete every object of a filter endpoint (but those to keep), page by page."""
            for _ in range(1000):
                rows = c.post(f"{path}/filter", json={"limit": self.page_limit, **(body or {})}).json()
                rows = [row for row in rows if keep(row)]
                if not rows:
                    return
                for row in rows:
                    c.delete(f"{path}/{row[key]}")

        with self.client() as c:
            each("/deployments")
            each("/block_documents", {"block_documents": {"is_anonymous": {"eq_": False}}})
            each("/variables")
            each("/automations")
            each("/v2/concurrency_limits")
            each("/work_pools", key="name",
                 keep=lambda wp: wp["name"] not in keep_work_pools and not wp["name"].startswith("default-agent"))
            if registrations:
                bt = c.get("/block_types/slug/chap-dhis2-credentials")
                if bt.status_code == 200:
                    c.delete(f"/block_types/{bt.json()['id']}").raise_for_status()
                flow = c.get("/flows/name/dhis2-chap-prediction")
                if flow.status_code == 200:
                    c.delete(f"/flows/{flow.json()['id']}").raise_for_status()
