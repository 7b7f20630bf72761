"""What the end-to-end tests set up: the projects, the passwords, the settings of the server and
the worker (shared by conftest.py and the tests; conftest modules are not imported by tests)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date

from tests.e2e.stack import Api, Worker
from tests.fake_dhis2 import FakeDhis2Server
from tests.server.prefect_server import PrefectServer
from tests.server.repo import Repo, project

TODAY = date(2026, 3, 10)  # Tuesday of 2026W11: the fake and the flow agree on it (CHAP_TODAY)
USERNAME = "chap-bot"  # the user tests.server.repo.project() writes
PASSWORD = "e2e-Pw-canary-51c7d2"  # the fake's password; must never show up in a deployment
WRONG_PASSWORD = "e2e-not-the-password-0b4e"
POOL = "chap-e2e"
PASSWORD_ENV = {"E2E_DHIS2_PASSWORD": PASSWORD, "E2E_WRONG_DHIS2_PASSWORD": WRONG_PASSWORD}

TRIGGERED, SCHEDULED, WRONG = "e2e-triggered", "e2e-scheduled", "e2e-wrong-password"

SERVER_SETTINGS = {
    # The scheduler service looks for deployments to schedule every 60 s by default.
    "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2",
    # An every-minute cron would otherwise get an hour (60 runs) inserted ahead.
    "PREFECT_SERVER_SERVICES_SCHEDULER_MAX_RUNS": "3",
    # A run waiting for a slot of a global concurrency limit retries after the server's Retry-After,
    # up to 30 s by default: the CHAP-limit test's runs queue behind each other's 2 s jobs.
    "PREFECT_SERVER_CONCURRENCY_MAXIMUM_CONCURRENCY_SLOT_WAIT_SECONDS": "0.5",
}
WORKER_SETTINGS = {
    "PREFECT_WORKER_QUERY_SECONDS": "1",  # default 10
    "PREFECT_WORKER_PREFETCH_SECONDS": "5",  # start the process a little before a scheduled time
    "CHAP_TODAY": TODAY.isoformat(),
    "CHAP_SCHEDULER_POLL_INTERVAL_SECONDS": "0.2",  # the fake's jobs finish after three polls
}


EVERY_MINUTE = "* * * * *"  # the scheduler has a run due within the minute, whenever the test starts


def e2e_projects(fake_url: str) -> list[dict]:
    common = dict(base_url=fake_url, cron=None)
    return [
        # triggered by the tests: the weekly setup 5 (configured model 7)
        project(TRIGGERED, "e2e-dhis2", model_id=7, password_env="E2E_DHIS2_PASSWORD", **common),
        # run by the scheduler (nearly) every minute: only setup 3 (monthly, model 12)
        project(SCHEDULED, "e2e-dhis2", model_id=12, password_env="E2E_DHIS2_PASSWORD",
                prediction_setup_id=3, base_url=fake_url, cron=EVERY_MINUTE, timezone="UTC"),
        # its block gets the wrong password at apply time
        project(WRONG, "e2e-dhis2-wrong", model_id=7, password_env="E2E_WRONG_DHIS2_PASSWORD", **common),
    ]


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any Prefect setting or e2e password, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_") and k not in PASSWORD_ENV}
    env.update(extra)
    return env


@dataclass
class Stack:
    server: PrefectServer
    fake: FakeDhis2Server
    repo: Repo
    worker: Worker
    api: Api
    apply_output: str
    projects: dict[str, dict]  # the project files as written, by name
