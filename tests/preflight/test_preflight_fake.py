"""`chapctl preflight` against the fake DHIS2+CHAP (its DHIS2 limits on): a mixed set of projects, each
failing (or warning) for one reason alone, judged in one run — the message naming the reason — next to
two projects that are fine, one DHIS2 that does not answer and one whose route is gone.

Every class of issue 24: a wrong password, a missing password variable, DHIS2 down, the route missing,
a route timeout too short, a model_id no setup uses, a project whose setups are all disabled in CHAP,
a covariate without data, less than two whole years, org units without geometry, a range over the
flow's 120 periods, a setup too big for the read budgets, a period type against the cadence, and
chap-core's own schedule fields disagreeing with the project (three ways).
"""

from __future__ import annotations

import pytest

from compiler.preflight import PreflightOptions, preflight
from compiler.preflight.model import FAIL, OK, WARN
from tests.preflight.scenario import (PASSWORD, PASSWORD_ENV, mixed_env, mixed_projects, project, seed_mixed,
                                      write_repo)

pytestmark = pytest.mark.flows

@pytest.fixture(scope="module")
def mixed(fakes, tmp_path_factory):
    seed_mixed(fakes)
    root = write_repo(tmp_path_factory.mktemp("mixed"), mixed_projects(fakes))
    report = preflight(root, PreflightOptions(), mixed_env())
    return {p.name: p for p in report.projects}, report, root


# (project, verdict, the one check its causes name, words of its message)
CLASSES = [
    ("good-monthly", OK, None, None),
    ("good-weekly", OK, None, None),
    ("wrong-password", FAIL, "credentials", "DHIS2 refused the login of user 'chap-bot' (HTTP 401): the password in "
                                            "WRONG_PASSWORD (block 'wrong-dhis2') or the username is wrong"),
    ("missing-password", FAIL, "credentials", "the environment variable UNSET_PASSWORD (password_env of block "
                                              "'missing-dhis2') is not set"),
    ("dhis2-down", FAIL, "dhis2", "did not answer: DHIS2 GET /api/system/info -> no response (ConnectError"),
    ("no-route", FAIL, "route", "DHIS2 has no route 'chap' that user 'chap-bot' may run: chap GET /system/info -> "
                                "HTTP 404: Route not found or not accessible: chap; DHIS2 lists no route 'chap' to "
                                "this user"),
    ("slow-route", WARN, "route_timeout", "DHIS2's route 'chap' waits only 5 s for chap-core (responseTimeoutSeconds, "
                                          "under 30 s)"),
    ("unknown-model", FAIL, "selection", "no setup to run: no prediction setup uses configured_model_id=99"),
    ("runs-none", FAIL, "selection", "would run no setup: every setup it selects (configured_model_id=13: setup 9) "
                                     "has scheduleEnabled false in chap-core"),
    ("no-data", FAIL, "covariates", "setup 20: DHIS2 returned no data within LAST_12_MONTHS for covariate(s): "
                                    "mean_temperature (D0200000003)"),
    ("short-history", FAIL, "history", "setup 3: the data runs from 202301 to 202406, less than the 2 whole years "
                                       "chap-core needs to train"),
    ("no-geometry", FAIL, "geometry", "setup 21: org unit(s) S0210000002 have no geometry in DHIS2"),
    ("too-long", FAIL, "range", "setup 11: 201501..202602 spans more than 120 month periods"),
    ("too-big", FAIL, "reads", "over the budget of 25000 records (CHAP_DHIS2_MAX_RECORDS) or 1024 bytes "
                               "(CHAP_DHIS2_MAX_REQUEST_LINE); raise it"),
    ("cadence", WARN, "cadence", "setup 23 is monthly (period type 'month') but schedule chapctl-cron ('0 6 * * 1' "
                                 "UTC) runs weekly"),
    ("chap-cron", WARN, "chap_schedule", "setup 24 'National monthly (3 org units)' is scheduled in chap-core at "
                                         "'0 6 2 * *' Etc/UTC (scheduleCronExpression, from the DHIS2 Modeling App); "
                                         "this project runs it at '0 7 2 * *' UTC (schedule chapctl-cron)"),
    ("disabled-there", WARN, "chap_schedule", "setup 8 'Malaria monthly (north pilot)' is disabled in chap-core "
                                              "(scheduleEnabled false, as the DHIS2 Modeling App shows it), yet this "
                                              "project runs it (schedule chapctl-cron, by prediction_setup_id=8)"),
    ("enabled-unrun", WARN, "chap_schedule", "setup 26 'National monthly (3 org units)' (configured model 55) is "
                                             "enabled in chap-core ('0 6 2 * *'), but no project of this repository "
                                             "runs it; this project runs that model and leaves it out (not "
                                             "prediction_setup_id=25)"),
    ("external-block", WARN, "not_checked", "not checked: its credentials block 'managed-elsewhere' is managed "
                                            "outside chapctl"),
]


@pytest.mark.parametrize("name, verdict, check, words", CLASSES, ids=[c[0] for c in CLASSES])
def test_each_project_fails_or_warns_for_its_reason_alone(mixed, name, verdict, check, words):
    results, _, _ = mixed
    result = results[name]
    causes = result.causes
    assert result.verdict == verdict, [c.text for c in causes]
    if check is None:
        assert causes == [], [c.text for c in causes]
        return
    assert {c.check for c in causes} == {check}, [(c.check, c.text) for c in causes]
    assert any(words in c.text for c in causes), [c.text for c in causes]
    assert all(c.fix for c in causes), [c.text for c in causes if not c.fix]


def test_the_mixed_set_exits_3_and_one_dead_dhis2_stops_nothing(mixed):
    results, report, _ = mixed
    assert report.exit_code == 3
    assert report.counts() == {OK: 2, WARN: 6, FAIL: 11}
    assert sorted(p.name for p in report.failing) == sorted(name for name, verdict, _, _ in CLASSES if verdict == FAIL)
    # the projects behind the dead DHIS2 and the routeless one failed alone; the others were read
    assert results["good-monthly"].dhis2 == "DHIS2 2.41.2 (Demo HMIS)"
    assert results["slow-route"].chap == "chap-core 2.5.1 (python 3.13.1)"


def test_what_a_good_project_would_do_is_reported(mixed):
    results, _, _ = mixed
    (run,) = results["good-monthly"].runs
    assert (run.label, run.cron, run.end_mode, run.selection) == (
        "schedule chapctl-cron", "0 6 2 * *", "offset (end_period_offset=1)", "configured_model_id=12, prediction_setup_id=3")
    (setup,) = run.setups
    assert (setup.setup, setup.end_period, setup.first_period, setup.periods, setup.data_until) == (
        3, "202602", "202301", 38, "202602")
    assert [(c.covariate, c.latest) for c in setup.covariates] == [
        ("disease_cases", "202602"), ("rainfall", "202602"), ("mean_temperature", "202602")]
    assert (setup.org_units, setup.with_geometry, setup.without_geometry, setup.not_found) == (3, 3, (), ())
    assert (setup.reads, setup.records) == (2, 342)  # one data read (3 x 38 x 3 cells) and one org-unit read
    assert 25_000 < setup.send_bytes < 35_000
    assert [(i, why) for i, _, why in run.left_out] == [
        (5, "not prediction_setup_id=3"), (8, "not prediction_setup_id=3"), (9, "not prediction_setup_id=3"),
        (11, "not prediction_setup_id=3"), (12, "not prediction_setup_id=3"), (20, "not prediction_setup_id=3"),
        (21, "not prediction_setup_id=3"), (23, "not prediction_setup_id=3"), (24, "not prediction_setup_id=3"),
        (25, "not prediction_setup_id=3"), (26, "not prediction_setup_id=3")]
    (weekly,) = results["good-weekly"].runs[0].setups
    assert (weekly.end_period, weekly.periods) == ("2026W10", 114)  # calculated: the probe's latest week


def test_the_instance_note_names_a_setup_nobody_runs(mixed, fakes):
    _, report, _ = mixed
    assert report.notes == [f"{fakes['slow_route'].url}: setup 5 'Dengue weekly' (configured model 7) is enabled in "
                            "chap-core ('0 6 * * 1') and no project of this repository runs it"]


def test_one_project_selected(mixed):
    _, _, root = mixed
    report = preflight(root, PreflightOptions(projects=("good-weekly",)), mixed_env())
    assert [(p.name, p.verdict) for p in report.projects] == [("good-weekly", OK)]


def test_an_unknown_project_is_refused_before_any_read(mixed, fakes):
    from compiler.errors import UserError

    _, _, root = mixed
    fakes["main"].admin.clear_requests()
    with pytest.raises(UserError, match="no project named nope"):
        preflight(root, PreflightOptions(projects=("nope",)), mixed_env())
    assert fakes["main"].admin.requests() == []


def test_every_schedule_picks_its_own_end_period(fake, tmp_path, env):
    """A project with two schedules: the weekly one ends a period back, the mid-year one at a fixed date
    and on another setup; each run is judged on its own, every finding naming its schedule."""
    root = write_repo(tmp_path, {"two-runs": project(fake.url, model_id=12, setup_id=3, schedules=[
        {"slug": "monthly", "cron": "0 6 2 * *", "timezone": "UTC"},
        {"slug": "mid-year", "cron": "0 5 2 7 *", "timezone": "UTC",
         "parameters": {"end_mode": "fixed", "end_date": "2024-06-30"}},
    ])})
    report = preflight(root, PreflightOptions(), {**env, PASSWORD_ENV: PASSWORD})
    (result,) = report.projects
    assert [(r.label, r.end_mode, r.setups[0].end_period) for r in result.runs] == [
        ("schedule monthly", "offset (end_period_offset=1)", "202602"),
        ("schedule mid-year", "fixed (end_date=2024-06-30)", "202406")]
    assert [(c.check, c.run) for c in result.causes] == [("history", "schedule mid-year")]
    assert result.causes[0].text.startswith("schedule mid-year: setup 3: the data runs from 202301 to 202406")


def test_a_covariate_behind_the_others_at_the_end_period(fake, tmp_path, env):
    """Offset mode ends at 202602; rainfall has data only to 202601: chap-core would reject every org unit."""
    fake.admin.faults(data_gaps=[{"dataElement": "deRain001", "periods": ["202602"]}])
    root = write_repo(tmp_path, {"lagging": project(fake.url, model_id=12, setup_id=3)})
    (result,) = preflight(root, PreflightOptions(), {**env, PASSWORD_ENV: PASSWORD}).projects
    assert [(c.level, c.check) for c in result.causes] == [(FAIL, "covariates")]
    assert result.causes[0].text == (
        "setup 3: covariate rainfall (deRain001) has data up to 202601, the others up to 202602: chap-core rejects "
        "every org unit with a gap in a covariate (HTTP 400 'missing values' when none is left), so the run fails")


def test_a_secret_echoed_by_a_server_never_reaches_the_report(fake, tmp_path, env):
    fake.admin.faults(http_errors=[{"method": "GET", "path": "/api/system/info", "status": 500,
                                    "body": {"message": f"login {PASSWORD} refused; Basic "
                                                        "Y2hhcC1ib3Q6UGYtM3hxIWQxc3QxbmN0MXZl"}}])
    root = write_repo(tmp_path, {"echo": project(fake.url, model_id=12, setup_id=3)})
    report = preflight(root, PreflightOptions(), {**env, PASSWORD_ENV: PASSWORD})
    from compiler.output.preflight import preflight_json, preflight_lines, preflight_markdown

    shown = preflight_json(report) + "\n".join(t for _, t in preflight_lines(report)) + preflight_markdown(report)
    assert "login ******** refused; Basic ********" in shown
    assert PASSWORD not in shown and "Y2hhcC1ib3Q6UGYtM3hxIWQxc3QxbmN0MXZl" not in shown
