"""`chapctl preflight` from the command line, as CI and `make run` call it: nothing submitted to CHAP,
nothing written to DHIS2 or Prefect (Prefect neither imported nor asked), the exit codes, the three
formats, and no secret in any of them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.fake_dhis2 import FakeDhis2Server
from tests.preflight.scenario import (PASSWORD, PASSWORD_ENV, REPO, TODAY, chap_patch, mixed_env, mixed_projects,
                                      project, secret_forms_of, seed_mixed, write_repo)

pytestmark = pytest.mark.flows


def chapctl(*args: str, env: dict[str, str], importtime: bool = False) -> subprocess.CompletedProcess:
    command = [sys.executable, *(["-X", "importtime"] if importtime else []), "-m", "compiler", *args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO),
                               "HOME": os.environ.get("HOME", "/tmp"), "COLUMNS": "250", **env})


def imported(stderr: str) -> set[str]:
    return {line.split("|")[-1].strip() for line in stderr.splitlines() if line.startswith("import time:")}


def test_nothing_is_submitted_to_chap_nor_written_to_dhis2_or_prefect(fakes, tmp_path):
    """The mixed set, every class of failure among it, through the real CLI in its own process: every
    request any fake DHIS2 (and chap-core behind its route) saw was a GET; a Prefect server the
    environment names was never asked anything, and Prefect was never imported."""
    seed_mixed(fakes)
    root = write_repo(tmp_path / "repo", mixed_projects(fakes))
    for server in fakes.values():
        server.admin.clear_requests()
    with FakeDhis2Server() as prefect_stand_in:  # records every request it gets
        result = chapctl("preflight", "--root", str(root), "--format", "json", importtime=True,
                         env={**mixed_env(), "PREFECT_API_URL": prefect_stand_in.url + "/api",
                              "PREFECT_API_AUTH_STRING": "admin:pw"})
        assert prefect_stand_in.admin.requests() == []
    assert result.returncode == 3, result.stderr[-2000:]
    modules = imported(result.stderr)
    assert "compiler.preflight" in modules and "flows.checks" in modules
    assert not [m for m in modules if m == "prefect" or m.startswith("prefect.")]
    seen = [(r["method"], r["path"]) for server in fakes.values() for r in server.admin.requests()]
    assert seen and {method for method, _ in seen} == {"GET"}, sorted(set(seen))
    assert not [path for _, path in seen if path.endswith("/run") or "dataValueSets" in path or "/v1/jobs" in path]
    assert {path for _, path in seen} >= {"/api/system/info", "/api/routes", "/api/analytics", "/api/organisationUnits",
                                          "/api/routes/chap/run/system/info",
                                          "/api/routes/chap/run/v1/crud/prediction-setups"}
    document = json.loads(result.stdout)
    assert set(document) == {"today", "budget", "strict", "summary", "projects", "notes"}
    assert document["summary"] == {"projects": 19, "ok": 2, "warn": 6, "fail": 11, "exit_code": 3}
    first = document["projects"][0]
    assert {"name", "verdict", "causes", "notes", "runs", "dhis2", "chap", "route_timeout_seconds"} <= set(first)
    assert {p["name"]: p["verdict"] for p in document["projects"]}["good-monthly"] == "ok"
    wrong = next(p for p in document["projects"] if p["name"] == "wrong-password")
    assert [(c["level"], c["check"]) for c in wrong["causes"]] == [("fail", "credentials")]


@pytest.fixture
def small_repo(fake, tmp_path):
    """Two fine projects and, with `warn=True`, one whose schedule disagrees with chap-core's."""
    def make(warn: bool = False):
        projects = {"monthly": project(fake.url, model_id=12, setup_id=3, cron="0 6 2 * *"),
                    "weekly": project(fake.url, model_id=7, end_mode="calculated", offset=None, cron="0 6 * * 1")}
        if warn:
            projects["late-cron"] = project(fake.url, model_id=12, setup_id=3, cron="0 9 2 * *")
        return write_repo(tmp_path / ("warn" if warn else "ok"), projects)
    return make


ENV = {"CHAP_TODAY": TODAY.isoformat(), PASSWORD_ENV: PASSWORD}


def test_exit_0_when_every_project_is_fine(small_repo):
    result = chapctl("preflight", "--root", str(small_repo()), env=ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == "2 project(s): 2 ok, 0 warn, 0 fail — exit 0: no project would fail " \
                                             "(warnings allowed; --strict fails them)."


def test_warnings_pass_unless_strict(small_repo):
    root = str(small_repo(warn=True))
    assert chapctl("preflight", "--root", root, env=ENV).returncode == 0
    strict = chapctl("preflight", "--root", root, "--strict", env=ENV)
    assert strict.returncode == 3
    assert strict.stdout.splitlines()[-1] == ("3 project(s): 2 ok, 1 warn, 0 fail — exit 3: 1 project(s) would fail "
                                              "or warn (--strict).")
    one = chapctl("preflight", "--root", root, "--strict", "-p", "monthly", "--project", "weekly", env=ENV)
    assert one.returncode == 0 and "late-cron" not in one.stdout


@pytest.mark.parametrize("env, words", [
    ({"CHAP_TODAY": "10/03/2026"}, "error: preflight reads the flow's settings from the environment, as a worker "
                                   "does: CHAP_TODAY must be a date like 2026-03-10, got '10/03/2026'"),
    ({"CHAP_DHIS2_MAX_RECORDS": "lots"}, "CHAP_DHIS2_MAX_RECORDS must be a whole number of records, got 'lots'"),
], ids=["today", "budget"])
def test_exit_1_when_preflight_itself_cannot_run(small_repo, env, words):
    result = chapctl("preflight", "--root", str(small_repo()), env={**ENV, **env})
    assert result.returncode == 1 and result.stdout == ""
    assert words in result.stderr and len(result.stderr.splitlines()) == 1


def test_exit_1_without_compiled_files(tmp_path):
    (tmp_path / "projects").mkdir()
    result = chapctl("preflight", "--root", str(tmp_path), env=ENV)
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: {tmp_path / 'prefect.yaml'} does not exist; run `chapctl compile` first"


def test_no_format_shows_a_secret_and_server_text_is_escaped(fake, tmp_path):
    """A distinctive password, a wrong one, and one that is echoed back; a setup whose name carries a
    terminal escape and Markdown: no format holds a secret in any of its encodings, the terminal gets
    the escape written out, Markdown gets inert text."""
    chap_patch(fake, 3, name="Malaria \x1b[2J [click](http://evil.example) | `x` <b>")
    fake.admin.faults(http_errors=[{"method": "GET", "path": "/api/organisationUnits", "status": 400,
                                    "body": {"message": f"no org units for password {PASSWORD}"}}])
    root = write_repo(tmp_path, {"monthly": project(fake.url, model_id=12, setup_id=3, cron="0 6 2 * *"),
                                 "wrong": project(fake.url, block="wrong-dhis2", password_env="WRONG_PASSWORD")})
    env = {**ENV, "WRONG_PASSWORD": "Wr0ng-but-still-s3cret"}
    outputs = {fmt: chapctl("preflight", "--root", str(root), "--format", fmt, env=env) for fmt in
               ("text", "json", "markdown")}
    for fmt, result in outputs.items():
        assert result.returncode == 3, (fmt, result.stderr)
        shown = result.stdout + result.stderr
        for secret in (PASSWORD, "Wr0ng-but-still-s3cret"):
            for form in secret_forms_of(secret, "chap-bot"):
                assert form not in shown, (fmt, form)
        assert "no org units for password ********" in (shown if fmt != "markdown" else shown.replace("\\", ""))
    assert "Malaria \\x1b[2J [click](http://evil.example)" in outputs["text"].stdout
    assert "\x1b" not in outputs["text"].stdout
    markdown = outputs["markdown"].stdout
    assert "\\[click\\](http:\u200b//evil.example) \\| \\`x\\` &lt;b&gt;" in markdown and "<b>" not in markdown
