"""The flow's steps as Prefect tasks. A task's name is the step an operator sees fail.

Tasks never retry themselves: the HTTP clients already retry idempotent requests, and
re-running a step that POSTs would submit a second prediction. A submit whose answer was lost
looks for its job by name instead (`run_prediction_setup`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows import checks, periods
from flows.api import DEFAULT_QUANTILES, ROUTE_BODY_LIMIT, ChapApi, Dhis2Api, ServiceError, error_text
from flows.chap_slot import read_limit
from flows.checks import OrgUnitGeometry, SetupData
from flows.dhis2_reads import ReadBudget, ReadStats
from flows.prediction_request import calculated_end_period, check_history, prediction_request, sent_span
from flows.report import LimitCheck, RouteCheck
from flows.retrying import policy
from flows.run_config import EndSpec, RunSettings
from flows.setups import PredictionSetup, SetupItem

# Status names chap-core (Celery) reports while a job is still going; anything else is final.
TRANSIENT_JOB_STATUSES = frozenset({"PENDING", "RUNNING", "STARTED", "QUEUED", "PROCESSING", "RETRY"})

# Inputs hold HTTP clients, which cannot be hashed for a cache key, and every run must call
# DHIS2 and CHAP afresh anyway.
_STEP = dict(cache_policy=NO_CACHE, retries=0)


class JobError(RuntimeError):
    """A CHAP job that did not produce a usable prediction."""


@dataclass(frozen=True)
class EndProbe:
    end_period: str
    reads: ReadStats


@dataclass(frozen=True)
class Submission:
    job_id: str
    note: str | None = None  # what happened, when the submit's answer was lost and its job found


@dataclass(frozen=True)
class PredictionResult:
    prediction_id: int
    values: int | None  # entries read (None: none could be read through the route)
    periods: list[str]
    org_units: list[str] | None = None  # the org units the forecast covers (None: unknown)
    note: str | None = None  # what could not be read through DHIS2's route, and where to read it


@task(name="check_dhis2", **_STEP)
def check_dhis2(dhis2: Dhis2Api) -> str:
    return checks.dhis2_version(dhis2)


@task(name="check_chap", **_STEP)
def check_chap(chap: ChapApi) -> str:
    return checks.chap_version(chap)


@task(name="check_chap_limit", **_STEP)
def check_chap_limit(limit: str) -> LimitCheck:
    """The CHAP concurrency limit exists and can be used (`chap_slot.SlotError` otherwise)."""
    return read_limit(limit)


@task(name="read_chap_route", **_STEP)
def read_chap_route(dhis2: Dhis2Api) -> RouteCheck:
    """The `chap` route's `responseTimeoutSeconds`, where the user may read it; "unknown" (never an
    error) when DHIS2 refuses, does not list the route, or has no such field."""
    return checks.chap_route(dhis2)


@task(name="list_prediction_setups", **_STEP)
def list_prediction_setups(chap: ChapApi) -> list[SetupItem]:
    return checks.prediction_setups(chap)


@task(name="resolve_end_period", task_run_name="resolve_end_period [setup {setup.id}]", **_STEP)
def resolve_end_period(setup: PredictionSetup, end: EndSpec, today: date) -> str:
    """End period for fixed and offset modes; no DHIS2 call needed."""
    return checks.end_period(setup, end, today)


@task(name="probe_latest_covariate_periods",
      task_run_name="probe_latest_covariate_periods [setup {setup.id}]", **_STEP)
def probe_latest_covariate_periods(dhis2: Dhis2Api, setup: PredictionSetup, budget: ReadBudget) -> EndProbe:
    """End period for calculated mode: the last period every covariate has data for."""
    probe = checks.latest_periods(dhis2, setup, budget)
    return EndProbe(calculated_end_period(setup, probe.latest), probe.reads)


@task(name="validate_period_range", task_run_name="validate_period_range [setup {setup.id}]", **_STEP)
def validate_period_range(setup: PredictionSetup, end_period: str) -> list[str]:
    return periods.period_range(setup.start_period, end_period, setup.period_type)


@task(name="fetch_dhis2_for_setup", task_run_name="fetch_dhis2_for_setup [setup {setup.id}]", **_STEP)
def fetch_dhis2_for_setup(dhis2: Dhis2Api, setup: PredictionSetup, input_periods: list[str],
                          budget: ReadBudget) -> SetupData:
    """Every value of the setup's covariates, read in chunks that fit DHIS2's limits and turned
    into chap-core's items as each chunk arrives."""
    return checks.setup_data(dhis2, setup, input_periods, budget)


@task(name="fetch_org_units_geojson", task_run_name="fetch_org_units_geojson [setup {setup.id}]", **_STEP)
def fetch_org_units_geojson(dhis2: Dhis2Api, setup: PredictionSetup, budget: ReadBudget) -> OrgUnitGeometry:
    return checks.org_unit_geometry(dhis2, setup, budget)


@task(name="build_prediction_request", task_run_name="build_prediction_request [setup {setup.id}]", **_STEP)
def build_prediction_request(setup: PredictionSetup, input_periods: list[str], provided: list[dict[str, Any]],
                             geojson: dict[str, Any], run_token: str = "") -> dict[str, Any]:
    """The request body, once every check that can be made before the submit passed: values to send,
    every covariate among them, a geometry, and the whole years of data chap-core trains on."""
    body = prediction_request(setup, input_periods[0], input_periods[-1], provided, geojson, run_token)
    check_history(setup, *sent_span(setup, provided))
    return body


@task(name="run_prediction_setup", task_run_name="run_prediction_setup [setup {setup.id}]", **_STEP)
def run_prediction_setup(chap: ChapApi, setup: PredictionSetup, body: dict[str, Any],
                         settings: RunSettings) -> Submission:
    """Submit once. A submit whose answer was lost (a 502/504, a broken connection, a timeout) may
    have made its job: look for it by its name, which is unique to this run, and never submit again."""
    try:
        job_id = chap.run_setup(setup.id, body)
    except ServiceError as exc:
        if not exc.answer_lost:
            raise _explained_refusal(exc, setup) from None
        return _find_lost_submit(chap, setup, body["name"], settings, exc)
    get_run_logger().info("chap accepted setup %s as job %s", setup.id, job_id)
    return Submission(job_id)


def _find_lost_submit(chap: ChapApi, setup: PredictionSetup, name: str, settings: RunSettings,
                      lost: ServiceError) -> Submission:
    """Look for the job of a submit whose answer was lost, for up to `settings.submit_lookup` s.

    chap-core makes the job at the end of its `/run` handler, so it may be listed only seconds
    after DHIS2's route answered 504. Not found in time means not submitted again: a job that
    appeared after a second submit would be a second forecast of the same setup in one run."""
    logger = get_run_logger()
    logger.warning("setup %s: %s; looking for its job by name %r", setup.id, lost, name)

    def look_again(state: Any) -> bool:
        if not state.outcome.failed:
            return state.outcome.result() is None
        error = state.outcome.exception()  # a look that failed outright (a 4xx) will not do better
        return isinstance(error, ServiceError) and (error.status is None or error.status >= 500)

    started = time.monotonic()
    retrying = policy(attempts=10_000, backoff=settings.poll_interval, cap=max(settings.poll_interval, 8.0),
                      retry_if=look_again, seconds=settings.submit_lookup)
    problem = ""
    try:
        job = retrying(chap.find_job, setup.id, name)
    except ServiceError as exc:
        job, problem = None, f"; the last look failed: {exc}"
    waited = time.monotonic() - started
    if job is None:
        raise JobError(f"{lost}. chap-core may have made the job anyway, but it listed no job named {name!r} within "
                       f"{settings.submit_lookup:g} s (CHAP_SUBMIT_LOOKUP_SECONDS){problem}. Not submitted again, so "
                       "that this run never makes two forecasts of the setup: look for that name in chap-core's jobs "
                       "before running the setup again")
    logger.info("setup %s: found job %s by its name after %.1f s; continuing with it", setup.id, job["id"], waited)
    return Submission(job["id"], f"answered {_lost_answer(lost)}; found job {job['id']} by its name after "
                                 f"{waited:.1f} s and continued with it (not submitted again)")


def _lost_answer(error: ServiceError) -> str:
    if error.status is None:
        return str(error).split(" -> ", 1)[-1]  # "no response (ReadError: ...)"
    return f"HTTP {error.status}"


@task(name="wait_for_prediction", task_run_name="wait_for_prediction [job {job_id}]", **_STEP)
def wait_for_prediction(chap: ChapApi, job_id: str, settings: RunSettings) -> str:
    """Poll the job until it ends; only SUCCESS counts. A timeout leaves the job running in CHAP.

    Each poll reads only this job's status (`GET /v1/jobs/{id}`, 404 for a job chap does not
    know); a job that ended otherwise is read once more for the `error` chap-core recorded."""
    logger = get_run_logger()
    deadline = time.monotonic() + settings.job_timeout
    previous = None
    while True:
        status = chap.job_status(job_id)
        if status != previous:
            logger.info("job %s is %s", job_id, status)
            previous = status
        if status.upper() not in TRANSIENT_JOB_STATUSES:
            break
        if time.monotonic() >= deadline:
            raise TimeoutError(f"job {job_id} still {status} after {settings.job_timeout:g} s "
                               "(CHAP_SCHEDULER_PREDICTION_TIMEOUT_SECONDS); it keeps running in chap-core")
        time.sleep(settings.poll_interval)
    if status.upper() != "SUCCESS":
        error = chap.job(job_id).get("error")
        reason = f": {error}" if isinstance(error, str) and error.strip() else " (chap-core recorded no error text)"
        raise JobError(f"job {job_id} ended with status {status!r}{reason}")
    return status


@task(name="fetch_prediction_result", task_run_name="fetch_prediction_result [job {job_id}]", **_STEP)
def fetch_prediction_result(chap: ChapApi, job_id: str, setup: PredictionSetup, n_periods: int) -> PredictionResult:
    """What the report needs of the forecast, within DHIS2's route limit (256 KB per answer, 502 past
    it): the entries of the five quantiles if they fit, else of the median only, else the prediction's
    summary (its org units and periods, no values). The forecast exists once its job succeeded: an
    answer too large for the route is said in the report, never a failure of the setup."""
    prediction_id = _prediction_id(chap.job(job_id), job_id)
    too_large = None
    for quantiles in (DEFAULT_QUANTILES, (0.5,)):
        if ChapApi.entries_size(setup.org_units, n_periods, quantiles) > ROUTE_BODY_LIMIT:
            too_large = f"its entries are larger than DHIS2's route passes on ({ROUTE_BODY_LIMIT // 1024} KB)"
            continue
        try:
            entries = chap.prediction_entries(prediction_id, quantiles)
        except ServiceError as exc:
            if exc.status != 502:
                raise
            too_large = "reading its entries through DHIS2's route answered HTTP 502 (larger than the route passes on?)"
            break
        if not entries:
            raise JobError(f"prediction {prediction_id} (job {job_id}) has no prediction entries")
        found = {str(entry.get("period")) for entry in entries if entry.get("period") is not None}
        org_units = sorted({str(entry["orgUnit"]) for entry in entries if entry.get("orgUnit") is not None})
        note = None if quantiles == DEFAULT_QUANTILES else f"the median only: {too_large}"
        return PredictionResult(prediction_id, len(entries), _sorted_periods(found, setup.period_type), org_units, note)
    where = (f"read prediction {prediction_id} in chap-core (`GET /v1/analytics/prediction-entry/{prediction_id}`"
             " directly, not through DHIS2's route) or in the DHIS2 Modeling app")
    get_run_logger().warning("prediction %s: %s; reading its summary instead", prediction_id, too_large)
    try:
        summary = chap.prediction(prediction_id)
    except ServiceError as exc:
        if exc.status != 502:
            raise
        return PredictionResult(prediction_id, None, [], None,
                                f"not read: {too_large}, and so is its summary (HTTP 502); {where}")
    org_units = sorted(str(ou) for ou in summary["orgUnits"])
    return PredictionResult(prediction_id, None, _summary_periods(summary, setup.period_type), org_units,
                            f"values not read: {too_large}; org units and periods from its summary; {where}")


def _summary_periods(summary: dict[str, Any], period_type: str) -> list[str]:
    """The `nPeriods` periods after the last period sent (`dataset.lastPeriod`), as chap-core predicts them."""
    last, count = (summary.get("dataset") or {}).get("lastPeriod"), summary.get("nPeriods")
    try:
        return [periods.shift(str(last), period_type, n) for n in range(1, int(count) + 1)]
    except (periods.PeriodError, TypeError, ValueError):
        return []


def _prediction_id(job: dict[str, Any], job_id: str) -> int:
    result = job.get("result")
    try:
        # chap-core stores the prediction id as a JSON-encoded string such as "42"
        return int(str(result).strip().strip('"'))
    except ValueError:
        raise JobError(f"job {job_id} has no prediction id (result={result!r})") from None


def _explained_refusal(exc: ServiceError, setup: PredictionSetup) -> Exception:
    """chap-core's refusals that only the setup's owner can fix, said in words; others unchanged
    (a missing-values 400 keeps its detail: the report lists the rejected org units from it)."""
    text = error_text(exc.detail) if exc.detail is not None else ""
    if exc.status == 422 and "target column" in text:
        return JobError(f"chap-core refused setup {setup.id}: {text}. The request carries no values for the "
                        "target its backtest was trained on: check that data element in DHIS2 and the setup's "
                        "covariate sources")
    if exc.status == 400 and "future-weather provider" in text:
        return JobError(f"chap-core refused setup {setup.id}: its backtest used a future-weather provider that reads "
                        "the forecast window's own observations, so it cannot forecast ahead. Re-run the backtest "
                        "with a forecasting provider in CHAP and save it as the setup again. (chap-core: "
                        f"{text})")
    return exc


def _sorted_periods(ids: set[str], period_type: str) -> list[str]:
    try:
        return sorted(ids, key=lambda pid: periods.period_start(pid, period_type))
    except periods.PeriodError:
        return sorted(ids)
