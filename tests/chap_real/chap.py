"""Start and stop a real chap-core 2.5.1 (REST API, Celery worker, Redis) for tests.

    with ChapCore.start(tmp_dir) as chap:
        httpx.get(f"{chap.url}/v1/jobs")     # chap.url: the REST API's base URL (no /v1)

The same three processes as chap-core's compose.yml, each in its own process group on loopback
(tests/processes.py),
stopped by killing those groups (never by name), also when the start fails:

* `redis-server` on a free port, without persistence: the Celery broker and result backend, and
  chap-core's job metadata (what `/v1/jobs` lists).
* the API: `chap_core.rest_api.app:app` under uvicorn. Before serving, it runs
  `create_db_and_tables()`, as the Docker image's gunicorn `on_starting` hook does: it creates
  the schema and seeds the model templates and configured models (tests/chap_real/env.py says
  which).
* the worker: `celery -A chap_core.rest_api.celery_tasks worker` with the solo pool (one job at
  a time, in the worker process, so a job's memory is the worker's).

The database is SQLite in the temp dir (chap-core also runs on it; PostgreSQL would add a server
and a database per run for nothing these tests look at). Every output goes to `<tmp>/*.log`; a
start that fails raises with their tails. chap-core's own env vars configure it: the database URL,
Redis and the broker, and the logs and runs directories; `CHAP_API_TOKEN` is set empty, because
chap-core loads the first `.env` above its installed sources (this repository's, if any).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests import processes
from tests.chap_real.env import chap_python, redis_server_binary
from tests.processes import free_port

API = ("from chap_core.database.database import create_db_and_tables; create_db_and_tables(); import uvicorn; "
       "uvicorn.run('chap_core.rest_api.app:app', host='127.0.0.1', port={port}, log_level='info')")


@dataclass
class ChapCore:
    home: Path
    port: int
    redis_port: int
    processes: dict[str, processes.Process] = field(default_factory=dict)
    setups: dict = field(default_factory=dict)  # filled by tests/chap_real/seed.py:seed_setups

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- lifecycle -------------------------------------------------------------------------------
    @classmethod
    def start(cls, home: Path, *, timeout: float = 180.0, baselines: bool = True) -> ChapCore:
        """Start Redis, the API and the worker; return once `/health/ready` says all are up.
        `baselines=False` retires chap-core's baseline models (`retire_baselines`) before returning."""
        home.mkdir(parents=True, exist_ok=True)
        python = chap_python()
        chap = cls(home=home, port=free_port(), redis_port=free_port())
        try:
            chap._spawn("redis", [redis_server_binary(python), "--port", str(chap.redis_port), "--bind", "127.0.0.1",
                                  "--save", "", "--appendonly", "no", "--dir", str(home)])
            chap._wait_for_port(chap.redis_port, "redis", timeout=20)
            env = chap._env()
            chap._spawn("api", [str(python), "-c", API.format(port=chap.port)], env)
            chap._spawn("worker", [str(python), "-m", "celery", "-A", "chap_core.rest_api.celery_tasks", "worker",
                                   "--pool", "solo", "--loglevel", "INFO"], env)
            chap._wait_ready(timeout)
            if not baselines:
                chap.retire_baselines()
        except BaseException:
            chap.stop()
            raise
        return chap

    def _env(self) -> dict[str, str]:
        broker = f"redis://127.0.0.1:{self.redis_port}/0"
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("CHAP_", "REDIS_", "CELERY_", "PYTHON", "VIRTUAL_ENV"))}
        env.update(
            CHAP_DATABASE_URL=f"sqlite:///{self.home / 'chap.db'}",
            REDIS_HOST="127.0.0.1", REDIS_PORT=str(self.redis_port), CELERY_BROKER=broker,
            CHAP_LOGS_DIR=str(self.home / "logs"), CHAP_RUNS_DIR=str(self.home / "runs"),
            CHAP_API_TOKEN="",
            C_FORCE_ROOT="1",  # Celery refuses to run as root with pickle (chap-core's serializer) otherwise
        )
        return env

    def _spawn(self, name: str, command: list[str], env: dict[str, str] | None = None) -> None:
        self.processes[name] = processes.spawn(f"chap-core's {name}", command, env=env, cwd=self.home,
                                               log_path=self.home / f"{name}.log", grace=15)

    def _check_alive(self) -> None:
        for proc in self.processes.values():
            if not proc.running:
                raise RuntimeError(f"{proc.name} exited with {proc.returncode}:\n{self.log_tails()}")

    def _wait_for_port(self, port: int, name: str, timeout: float) -> None:
        self.processes[name].wait_ready(processes.port_open(port), timeout)

    def _wait_ready(self, timeout: float) -> None:
        """`/health/ready` checks the database, Redis and a Celery ping to the worker."""
        deadline = time.monotonic() + timeout
        answer = "no answer"
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                response = httpx.get(f"{self.url}/health/ready", timeout=5)
                if response.status_code == 200:
                    return
                answer = f"HTTP {response.status_code} {response.text[:200]}"
            except httpx.HTTPError as exc:
                answer = type(exc).__name__
            time.sleep(0.5)
        raise RuntimeError(f"chap-core not ready after {timeout:.0f}s (/health/ready: {answer}):\n{self.log_tails()}")

    def retire_baselines(self) -> list[str]:
        """Retire every baseline model template (what `chap-admin uninstall` does: `DELETE
        /v1/crud/model-templates/{id}?allVersions=true`), so a backtest queues no `run_baseline` jobs
        after it. chap-core runs each baseline on every backtest's data (the modeling app's
        comparison; nothing a prediction uses): over 150 weekly districts they take longer than the
        backtest itself. Returns the retired templates' names."""
        with httpx.Client(base_url=self.url, timeout=60) as client:
            baselines = [t for t in client.get("/v1/crud/model-templates").raise_for_status().json()
                         if t.get("role") == "baseline"]
            for template in baselines:
                client.delete(f"/v1/crud/model-templates/{template['id']}",
                              params={"allVersions": "true"}).raise_for_status()
        return sorted(template["name"] for template in baselines)

    def log_tails(self, lines: int = 15) -> str:
        parts = []
        for name in ("redis", "api", "worker"):
            path = self.home / f"{name}.log"
            text = path.read_text(errors="replace").splitlines()[-lines:] if path.is_file() else ["(no log)"]
            parts.append(f"--- {path}\n" + "\n".join(text))
        return "\n".join(parts)

    def stop(self) -> None:
        """SIGTERM each process group (the worker first: it finishes its job), SIGKILL after 15 s."""
        for name in ("worker", "api", "redis"):
            proc = self.processes.pop(name, None)
            if proc is not None:
                proc.stop()

    def __enter__(self) -> ChapCore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
