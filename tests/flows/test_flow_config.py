"""Unit tables for the flow's parameter rules, environment settings and report key."""

from __future__ import annotations

from datetime import date

import pytest

from flows.run_config import ConfigError, check_end, check_limit_name, read_settings, report_key

D = date(2026, 6, 30)


@pytest.mark.parametrize(("mode", "end_date", "offset", "described"), [
    ("calculated", None, None, "calculated (latest period with data for every covariate)"),
    ("fixed", D, None, "fixed (end_date=2026-06-30)"),
    ("offset", None, 0, "offset (end_period_offset=0)"),
    ("offset", None, 3, "offset (end_period_offset=3)"),
])
def test_valid_end_parameters(mode: str, end_date: date | None, offset: int | None, described: str) -> None:
    assert check_end(mode, end_date, offset).describe() == described


@pytest.mark.parametrize(("mode", "end_date", "offset", "message"), [
    ("fixed", None, None, "end_mode='fixed' needs end_date (an ISO date such as 2026-06-30)"),
    ("offset", None, None, "end_mode='offset' needs end_period_offset (0 = the current period)"),
    ("offset", None, -1, "end_period_offset must be >= 0, got -1"),
    ("calculated", D, None,
     "end_date is only used with end_mode='fixed', not 'calculated'; remove it or change end_mode"),
    ("offset", D, 1, "end_date is only used with end_mode='fixed', not 'offset'; remove it or change end_mode"),
    ("fixed", D, 2, "end_period_offset is only used with end_mode='offset', not 'fixed'; remove it or change end_mode"),
    ("calculated", None, 0, "end_period_offset is only used with end_mode='offset', not 'calculated'; "
                            "remove it or change end_mode"),
])
def test_mode_value_mismatches(mode: str, end_date: date | None, offset: int | None, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        check_end(mode, end_date, offset)
    assert str(error.value) == message


def test_settings_defaults() -> None:
    settings = read_settings({}, date(2026, 3, 10))
    assert (settings.today, settings.today_from_env, settings.job_timeout, settings.poll_interval,
            settings.slot_timeout) == (date(2026, 3, 10), False, 3600.0, 5.0, 3600.0)


def test_settings_from_environment() -> None:
    settings = read_settings({"CHAP_TODAY": "2027-01-02", "CHAP_SCHEDULER_PREDICTION_TIMEOUT_SECONDS": "1.5",
                              "CHAP_SCHEDULER_POLL_INTERVAL_SECONDS": "0.2"}, date(2026, 3, 10))
    assert (settings.today, settings.today_from_env, settings.job_timeout, settings.poll_interval,
            settings.slot_timeout) == (date(2027, 1, 2), True, 1.5, 0.2, 1.5)  # the slot wait follows the job timeout
    assert read_settings({"CHAP_SCHEDULER_PREDICTION_TIMEOUT_SECONDS": "90", "CHAP_SLOT_TIMEOUT_SECONDS": "600"},
                         date(2026, 3, 10)).slot_timeout == 600.0


@pytest.mark.parametrize("name", [None, "chap-laos", "chap laos 1"])
def test_limit_names(name: str | None) -> None:
    assert check_limit_name(name) == name


@pytest.mark.parametrize("name", ["", "  "])
def test_blank_limit_name_is_refused(name: str) -> None:
    with pytest.raises(ConfigError) as error:
        check_limit_name(name)
    assert str(error.value) == (f"chap_concurrency_limit must be the name of a Prefect global concurrency limit, "
                                f"got {name!r}; leave it out for no limit")


@pytest.mark.parametrize(("environ", "message"), [
    ({"CHAP_TODAY": "10/03/2026"}, "CHAP_TODAY must be a date like 2026-03-10, got '10/03/2026'"),
    ({"CHAP_SCHEDULER_PREDICTION_TIMEOUT_SECONDS": "soon"},
     "CHAP_SCHEDULER_PREDICTION_TIMEOUT_SECONDS must be a number of seconds, got 'soon'"),
    ({"CHAP_SCHEDULER_POLL_INTERVAL_SECONDS": "0"},
     "CHAP_SCHEDULER_POLL_INTERVAL_SECONDS must be more than 0 seconds, got '0'"),
    ({"CHAP_SLOT_TIMEOUT_SECONDS": "-5"}, "CHAP_SLOT_TIMEOUT_SECONDS must be more than 0 seconds, got '-5'"),
    ({"CHAP_DHIS2_MAX_RECORDS": "lots"}, "CHAP_DHIS2_MAX_RECORDS must be a whole number of records, got 'lots'"),
    ({"CHAP_DHIS2_MAX_RECORDS": "50"}, "CHAP_DHIS2_MAX_RECORDS must be from 100 to 10,000,000 records, got '50'"),
    ({"CHAP_DHIS2_MAX_REQUEST_LINE": "8k"},
     "CHAP_DHIS2_MAX_REQUEST_LINE must be a whole number of bytes, got '8k'"),
    ({"CHAP_DHIS2_MAX_REQUEST_LINE": "512"},
     "CHAP_DHIS2_MAX_REQUEST_LINE must be from 1,024 to 1,000,000 bytes, got '512'"),
    ({"CHAP_DHIS2_CONCURRENT_READS": "0"}, "CHAP_DHIS2_CONCURRENT_READS must be from 1 to 32 reads, got '0'"),
])
def test_bad_settings(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        read_settings(environ, date(2026, 3, 10))
    assert str(error.value) == message


@pytest.mark.parametrize(("deployment", "block", "key"), [
    ("laos-malaria", "laos-dhis2", "chap-report-laos-malaria"),
    (None, "laos-dhis2", "chap-report-laos-dhis2"),
    ("", "laos-dhis2", "chap-report-laos-dhis2"),
    ("Laos Malaria (weekly)", None, "chap-report-laos-malaria-weekly"),
    ("___", "rwanda", "chap-report-rwanda"),
    (None, None, "chap-report"),
])
def test_report_key(deployment: str | None, block: str | None, key: str) -> None:
    assert report_key(deployment, block) == key


def test_read_budgets_default_under_dhis2s_limits_and_are_read_from_the_environment() -> None:
    default = read_settings({}, date(2026, 3, 10)).reads
    assert (default.max_records, default.max_request_line, default.concurrency) == (25_000, 6_000, 4)
    chosen = read_settings({"CHAP_DHIS2_MAX_RECORDS": "10_000", "CHAP_DHIS2_MAX_REQUEST_LINE": "4096",
                            "CHAP_DHIS2_CONCURRENT_READS": "2"}, date(2026, 3, 10)).reads
    assert (chosen.max_records, chosen.max_request_line, chosen.concurrency) == (10_000, 4096, 2)
