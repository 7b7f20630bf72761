"""`chapctl preflight`'s pure parts, without any server: the projects read from the committed artifacts
(the password only by its variable's name), a cron's cadence, the judge on answers given by hand,
and the reporters."""

from __future__ import annotations

import json
from datetime import date

import pytest

from compiler.preflight.instance import Failure, InstanceFacts
from compiler.preflight.judge import Context, cadence, judge
from compiler.preflight.model import FAIL, OK, WARN, PreflightReport
from compiler.output.preflight import preflight_json, preflight_lines, preflight_markdown
from compiler.preflight.targets import WHEN_TRIGGERED, Password, read_targets
from flows.checks import LatestPeriods, OrgUnitGeometry
from flows.dhis2_reads import ReadBudget, ReadStats
from flows.report import RouteCheck
from flows.setups import parse_setup
from tests.compiler.conftest import REPO

TODAY = date(2026, 3, 10)


def test_the_example_projects_as_preflight_reads_them():
    targets = {t.name: t for t in read_targets(REPO)}
    malaria = targets["laos-malaria"]
    assert (malaria.credentials.block, malaria.credentials.base_url, malaria.credentials.username) == (
        "laos-dhis2", "https://dhis2.la.example.org", "chap-bot")
    assert malaria.credentials.password == Password("LAOS_DHIS2_PASSWORD")
    (run,) = malaria.runs
    assert (run.label, run.cron, run.timezone, run.parameter("end_mode"), run.parameter("end_period_offset")) == (
        "schedule chapctl-cron", "0 6 * * 1", "Asia/Vientiane", "offset", 1)
    assert run.parameter("credentials") is None  # the block reference is not a flow parameter here
    assert [r.label for r in targets["rwanda-malaria"].runs] == [WHEN_TRIGGERED]
    assert not targets["sierra-leone-malaria"].credentials.managed


def test_a_password_is_read_by_its_variable_only():
    password = Password("LAOS_DHIS2_PASSWORD")
    assert password.read({"LAOS_DHIS2_PASSWORD": "s3cret"}) == "s3cret"
    assert password.read({"LAOS_DHIS2_PASSWORD": ""}) is None  # CI reads an undefined secret as ""
    assert password.read({}) is None
    assert "s3cret" not in repr(password)


@pytest.mark.parametrize("cron, expected", [
    ("0 6 * * 1", "week"), ("0 6 2 * *", "month"), ("30 5 2 * *", "month"), ("0 5 2 7 *", "year"),
    ("0 6 * * *", "day"), ("*/15 * * * *", "day"), ("0 6 1,15 * *", None), ("0 6 * * 1,4", None), ("@weekly", "week"),
])
def test_a_cron_s_cadence(cron, expected):
    assert cadence(cron, TODAY) == expected


SETUP = {"id": 3, "name": "Malaria monthly", "configuredModel": {"id": 12, "name": "ewars"}, "startPeriod": "202301",
         "periodType": "month", "orgUnits": ["ouA", "ouB"], "scheduleEnabled": True, "scheduleCronExpression": "0 6 2 * *",
         "covariateSources": [{"covariate": "disease_cases", "dataElementId": "deCase"},
                              {"covariate": "rainfall", "dataElementId": "deRain"}]}


def facts(**changes) -> InstanceFacts:
    item = parse_setup(SETUP)
    base = dict(base_url="https://dhis2.example.org", username="chap-bot", dhis2="DHIS2 2.41.2 (Demo)",
                chap="chap-core 2.5.1 (python 3.13.1)", chap_time_zone="Etc/UTC", route=RouteCheck(60),
                setups=[item], latest={3: LatestPeriods({"deCase": "202602", "deRain": "202602"}, ReadStats())},
                geometry={3: OrgUnitGeometry({"type": "FeatureCollection", "features": [
                    {"type": "Feature", "id": ou, "geometry": {"type": "Point", "coordinates": [0, 0]},
                     "properties": {}} for ou in ("ouA", "ouB")]})},
                analytics_line=110, org_unit_line=90)
    base.update(changes)
    return InstanceFacts(**base)


def target(**params):
    from compiler.preflight.targets import Credentials, RunSpec, Target

    parameters = {"configured_model_id": 12, "end_mode": "offset", "end_period_offset": 1, **params}
    run = RunSpec("schedule chapctl-cron", "chapctl-cron", "0 6 2 * *", "UTC", True, tuple(parameters.items()))
    return Target("p", Credentials("b", "https://dhis2.example.org", "chap-bot", Password("P")), (run,))


CTX = Context(TODAY, ReadBudget())


def test_a_project_whose_answers_are_all_fine_is_ok():
    result = judge(target(), facts(), CTX)
    assert result.verdict == OK and result.findings == []
    (run,) = result.runs
    (setup,) = run.setups
    assert (setup.end_period, setup.periods, setup.reads, setup.records) == ("202602", 38, 2, 152)


@pytest.mark.parametrize("changes, level, check", [
    ({"dhis2": Failure("DHIS2 GET /api/system/info -> HTTP 401: Unauthorized", 401)}, FAIL, "credentials"),
    ({"dhis2": Failure("DHIS2 GET /api/system/info -> no response (ConnectError: refused)")}, FAIL, "dhis2"),
    ({"chap": Failure("chap GET /system/info -> HTTP 404: not found", 404)}, FAIL, "route"),
    ({"chap": Failure("chap GET /system/info -> HTTP 502: down", 502)}, FAIL, "chap"),
    ({"route": RouteCheck(5)}, WARN, "route_timeout"),
    ({"setups": Failure("chap GET /v1/crud/prediction-setups -> HTTP 500: boom", 500)}, FAIL, "setups"),
    ({"latest": {3: LatestPeriods({"deCase": "202602", "deRain": "202512"}, ReadStats())}}, FAIL, "covariates"),
    ({"latest": {3: LatestPeriods({"deCase": "202512", "deRain": "202602"}, ReadStats())}}, WARN, "covariates"),
    ({"geometry": {3: OrgUnitGeometry({"type": "FeatureCollection", "features": []}, ["ouB"])}}, FAIL, "geometry"),
], ids=["login", "down", "route", "chap", "timeout", "listing", "covariate-behind", "target-behind", "geometry"])
def test_each_answer_is_judged_by_itself(changes, level, check):
    result = judge(target(), facts(**changes), CTX)
    assert {(f.level, f.check) for f in result.causes} == {(level, check)}, [f.text for f in result.causes]


def test_a_missing_password_fails_without_any_read():
    result = judge(target(), None, CTX, password_missing=True)
    (cause,) = result.causes
    assert (cause.level, cause.check) == (FAIL, "credentials") and "environment variable P " in cause.text


def test_the_reporters_agree_on_the_verdicts():
    results = [judge(target(), facts(), CTX), judge(target(configured_model_id=99), facts(), CTX)]
    results[1].name = "q"
    report = PreflightReport(TODAY, {"CHAP_DHIS2_MAX_RECORDS": 25000}, results)
    assert report.exit_code == 3 and report.counts() == {OK: 1, WARN: 0, FAIL: 1}
    document = json.loads(preflight_json(report))
    assert [(p["name"], p["verdict"]) for p in document["projects"]] == [("p", OK), ("q", FAIL)]
    lines = [text for _, text in preflight_lines(report)]
    assert lines[-1] == "2 project(s): 1 ok, 0 warn, 1 fail — exit 3: 1 project(s) would fail."
    assert "q: FAIL — DHIS2 2.41.2 (Demo), chap-core 2.5.1 (python 3.13.1), route timeout 60 s" in lines
    markdown = preflight_markdown(report)
    assert "| `q` | :x: fail |" in markdown and "- `q` **fail** (selection): no setup to run" in markdown
