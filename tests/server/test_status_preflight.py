"""`chapctl status --preflight`: each project's preflight verdict next to its health, checked live
against its DHIS2 (the fake, with its DHIS2 limits on) while status reads the Prefect server; the
exit code stays status's own."""

from __future__ import annotations

import json
from datetime import date

import pytest

from tests.fake_dhis2 import FakeDhis2Server
from tests.server.conftest import CANARY, PASSWORDS
from tests.server.repo import project

pytestmark = pytest.mark.server

TODAY = date(2026, 3, 10)


def test_status_shows_the_preflight_verdict_next_to_health(chapctl, make_repo):
    password = PASSWORDS["LAOS_DHIS2_PASSWORD"]
    with FakeDhis2Server(username="chap-bot", password=password, today=TODAY) as fake:
        fake.admin.route(responseTimeoutSeconds=60)
        repo = make_repo([
            project("fine", base_url=fake.url, model_id=12, prediction_setup_id=3, cron="0 6 2 * *", timezone="UTC"),
            project("no-setup", base_url=fake.url, model_id=99, cron="0 6 2 * *", timezone="UTC"),
        ])
        chapctl.env["CHAP_TODAY"] = TODAY.isoformat()
        assert chapctl.cli(repo, "apply").returncode == 0

        fake.admin.clear_requests()
        plain = chapctl.cli(repo, "status")
        assert plain.returncode == 0 and "PREFLIGHT" not in plain.stdout
        assert fake.admin.requests() == []  # without --preflight, no DHIS2 is asked anything

        text = chapctl.cli(repo, "status", "--preflight")
        assert text.returncode == 0, text.stderr  # a preflight fail does not change status's exit code
        lines = text.stdout.splitlines()
        header = next(line for line in lines if line.startswith("PROJECT"))
        assert header.split()[:4] == ["PROJECT", "HEALTH", "PREFLIGHT", "SYNC"]
        assert next(line for line in lines if line.startswith("fine")).split()[1:4] == ["never", "run", "ok"]
        assert next(line for line in lines if line.startswith("no-setup")).split()[1:4] == ["never", "run", "fail"]
        assert ("    preflight fail: no setup to run: no prediction setup uses configured_model_id=99; the setups on "
                "this CHAP use configured model ids [7, 12]") in text.stdout

        document = json.loads(chapctl.cli(repo, "status", "--preflight", "--json").stdout)
        verdicts = {p["name"]: p["preflight"] for p in document["projects"]}
        assert verdicts["fine"] == {"verdict": "ok", "causes": []}
        assert verdicts["no-setup"]["verdict"] == "fail"
        assert [c["check"] for c in verdicts["no-setup"]["causes"]] == ["selection"]

        markdown = chapctl.cli(repo, "status", "--preflight", "--markdown").stdout
        assert "| Project | Health | Preflight | Sync |" in markdown
        assert "| `no-setup` | :white_circle: never run | :x: fail | = in sync |" in markdown
        assert {r["method"] for r in fake.admin.requests()} == {"GET"}
    for output in chapctl.outputs:
        assert CANARY not in output
