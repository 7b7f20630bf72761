"""SQLite's one writer, without a server: apply writes independent projects a few at a time, and
once the server answers 503 ("database is locked") the stages after it go one write at a time.
The plan is the golden first apply of three projects; the server is httpx's transport seam, which
answers every write after a short pause and counts how many were in flight at once."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path

import httpx

from compiler.reconcile.apply import execute
from compiler.reconcile.client import ApiSettings, PrefectAPI
from compiler.reconcile.desired import load_desired
from compiler.reconcile.facts import Facts
from compiler.reconcile.live import Live
from compiler.reconcile.plan import plan

GOLDEN = Path(__file__).resolve().parents[1] / "plan_golden"
CASE = GOLDEN / "cases" / "first_apply_empty_server"


class Server:
    """Answers each write after 50 ms with a new id; when `busy`, the very first write (the work pool,
    apply's first stage) answers 503 once, and succeeds on the retry. Records the most writes in
    flight at once to deployments (a later stage, one chain per project)."""

    def __init__(self, busy: bool):
        self.busy = busy
        self.lock = threading.Lock()
        self.in_flight = 0
        self.peak: dict[str, int] = {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET" or request.url.path.endswith("/filter"):
            # a deployment read back by apply's RUNS step: no active schedule, nothing to schedule
            return httpx.Response(200, json={} if "/deployments/" in request.url.path else [])
        stage = "deployments" if "/deployments" in request.url.path else "other"
        with self.lock:
            if self.busy:
                self.busy = False
                return httpx.Response(503, json={"exception_message": "database is locked"})
            self.in_flight += 1
            self.peak[stage] = max(self.peak.get(stage, 0), self.in_flight)
        time.sleep(0.05)
        with self.lock:
            self.in_flight -= 1
        body = json.loads(request.content or b"{}")
        return httpx.Response(201, json={"id": str(uuid.uuid4()), **(body if isinstance(body, dict) else {})})


def apply_golden(busy: bool) -> tuple[Server, PrefectAPI]:
    env = json.loads((CASE / "env.json").read_text()) if (CASE / "env.json").exists() else {}
    facts = Facts.from_json(json.loads((GOLDEN / "facts.json").read_text()))
    p = plan(load_desired(CASE / "desired", env, facts=facts), Live.from_json(json.loads((CASE / "live.json").read_text())))
    server = Server(busy)
    api = PrefectAPI(ApiSettings(url="http://prefect.test/api"), transport=httpx.MockTransport(server), backoff=0.001)
    execute(p, api, env=env, workers=4)
    return server, api


def test_writes_go_one_at_a_time_once_the_server_says_it_is_locked():
    server, api = apply_golden(busy=True)
    assert api.busy and api.stats.retries >= 1
    assert server.peak["deployments"] == 1


def test_without_a_503_independent_projects_are_written_at_once():  # the control: the check can fail
    server, api = apply_golden(busy=False)
    assert not api.busy
    assert server.peak["deployments"] > 1
