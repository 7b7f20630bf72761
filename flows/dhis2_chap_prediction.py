"""The `dhis2-chap-prediction` flow: DHIS2 data in, CHAP forecast out, a run report every time.

Every chapctl deployment runs `flows/dhis2_chap_prediction.py:dhis2_chap_prediction`.
Sequence: check DHIS2 and chap-core answer, list CHAP prediction setups, then for each selected
setup (isolated: one failing does not stop the next) resolve its end period, fetch DHIS2
analytics and org-unit geometry, submit the prediction, wait for the job and read the result.
A markdown report artifact is written in every outcome, and the run ends Failed whenever
something failed or a forecast lost org units, so operators can alert on run state. Environment settings: see run_config.
With `chap_concurrency_limit`, each setup holds one slot of that Prefect global concurrency limit
from submitting its prediction until its result is read (see chap_slot).
"""

from __future__ import annotations

import os
import sys
import uuid
from dataclasses import replace
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Literal

# A Prefect worker loads this file as a script (entrypoint `flows/dhis2_chap_prediction.py:...`)
# and only puts the working directory and `flows/` itself on sys.path. Add the repository root
# so `flows.*` imports resolve to *this* checkout whatever the worker's working directory is.
_REPO_ROOT = str(Path(__file__).resolve().parent.parent)
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from prefect import flow, get_run_logger  # noqa: E402
from prefect.artifacts import create_markdown_artifact  # noqa: E402
from prefect.states import Completed, Failed, State  # noqa: E402
from prefect.utilities.annotations import quote  # noqa: E402

from flows import steps  # noqa: E402
from flows.api import ChapApi, Dhis2Api, ServiceError, missing_value_rejections  # noqa: E402
from flows.blocks import Dhis2Credentials  # noqa: E402
from flows.chap_slot import SlotError, chap_slot  # noqa: E402
from flows.dhis2_reads import ReadPlanError, ReadStats  # noqa: E402
from flows.periods import PeriodError  # noqa: E402
from flows.prediction_request import NoDataError  # noqa: E402
from flows.report import LimitCheck, RunReport, ServiceCheck, SetupOutcome, render  # noqa: E402
from flows.run_config import (ConfigError, EndSpec, RunSettings, check_end, check_limit_name, read_settings,  # noqa: E402
                              report_key)
from flows.setups import PredictionSetup, Selection, SetupItem, select_setups  # noqa: E402

REPORT_DESCRIPTION = "CHAP prediction run report"

# Errors whose message is already written for operators; anything else is shown with its type.
_EXPLAINED = (ServiceError, ConfigError, PeriodError, NoDataError, steps.JobError, TimeoutError, SlotError,
              ReadPlanError)

# Not a task: the slot is held around the three CHAP steps that follow it.
ACQUIRE_SLOT_STEP = "acquire_chap_slot"


@flow(name="dhis2-chap-prediction", description="Fetch DHIS2 data, run CHAP predictions, report the outcome.")
def dhis2_chap_prediction(
    credentials: Dhis2Credentials,
    end_mode: Literal["calculated", "fixed", "offset"] = "calculated",
    end_date: date | None = None,
    end_period_offset: int | None = None,
    configured_model_id: int | None = None,
    prediction_setup_id: int | None = None,
    chap_concurrency_limit: str | None = None,
) -> State:
    """Run CHAP predictions for the prediction setups of one DHIS2 instance.

    Args:
        credentials: DHIS2 base URL and login; CHAP is reached through the DHIS2 route `chap`.
        end_mode: How each setup's last input period is chosen: `calculated` (latest period with
            data for every covariate), `fixed` (the period containing `end_date`) or `offset`
            (`end_period_offset` periods before the current one).
        end_date: Required with end_mode `fixed`, not allowed otherwise.
        end_period_offset: Required with end_mode `offset` (0 = the current period), not allowed otherwise.
        configured_model_id: Run only the setups whose CHAP configured model has this id.
        prediction_setup_id: Run only this prediction setup, even if its CHAP schedule is disabled.
        chap_concurrency_limit: Name of a Prefect global concurrency limit (chapctl creates one per
            DHIS2 instance). Each setup holds one slot of it from submitting its prediction until
            the job's result is read, waiting for a free slot up to CHAP_SLOT_TIMEOUT_SECONDS.
            A limit that does not exist fails the run. Leave it out for no limit.
    """
    report = _new_report(credentials, configured_model_id, prediction_setup_id)
    try:
        _run(report, credentials, end_mode, end_date, end_period_offset, configured_model_id, prediction_setup_id,
             chap_concurrency_limit)
    except Exception as exc:  # the report must still be written; the exception is re-raised below
        report.internal_error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        report.finished = datetime.now(timezone.utc)
        _publish(report)
    return _final_state(report)


def _new_report(credentials: Dhis2Credentials, configured_model_id: int | None,
                prediction_setup_id: int | None) -> RunReport:
    deployment = _deployment_name()
    block_name = getattr(credentials, "_block_document_name", None)
    return RunReport(
        project=deployment or block_name or "(run outside a deployment)",
        key=report_key(deployment, block_name),
        dhis2_url=credentials.base_url,
        started=datetime.now(timezone.utc),
        selection=_describe_selection(configured_model_id, prediction_setup_id),
    )


def _run_token() -> str:
    """What makes this run's prediction names unique: the start of the flow run's id (a random one
    outside a flow run). A submit whose answer was lost is looked for by that name."""
    try:
        from prefect.runtime import flow_run

        run_id = flow_run.id
    except Exception:
        run_id = None
    return str(run_id or uuid.uuid4()).replace("-", "")[:8]


def _deployment_name() -> str | None:
    try:
        from prefect.runtime import deployment

        return deployment.name or None
    except Exception:  # an API hiccup must not cost the run its report; fall back to the block name
        return None


def _describe_selection(configured_model_id: int | None, prediction_setup_id: int | None) -> str:
    parts = [f"configured_model_id={configured_model_id}" if configured_model_id is not None else "",
             f"prediction_setup_id={prediction_setup_id}" if prediction_setup_id is not None else ""]
    return ", ".join(part for part in parts if part) or "every setup with its CHAP schedule enabled"


def _run(report: RunReport, credentials: Dhis2Credentials, end_mode: str, end_date: date | None,
         end_period_offset: int | None, configured_model_id: int | None, prediction_setup_id: int | None,
         limit: str | None) -> None:
    try:
        end = check_end(end_mode, end_date, end_period_offset)
        limit = check_limit_name(limit)
        settings = replace(read_settings(os.environ, date.today()), run_token=_run_token())
    except ConfigError as exc:
        report.config_error = str(exc)
        return
    report.end_mode = end.describe()
    report.today = settings.today.isoformat() + (" (from CHAP_TODAY)" if settings.today_from_env else "")
    logger = get_run_logger()
    with credentials.dhis2_client(logger=logger) as dhis2_http, credentials.chap_client(logger=logger) as chap_http:
        dhis2, chap = Dhis2Api(dhis2_http), ChapApi(chap_http)
        selection = _reach_and_select(report, dhis2, chap, configured_model_id, prediction_setup_id, limit)
        if selection is None:
            return
        for item in selection.chosen:
            report.outcomes.append(_run_setup(item, selection, end, settings, dhis2, chap, limit))


def _reach_and_select(report: RunReport, dhis2: Dhis2Api, chap: ChapApi, configured_model_id: int | None,
                      prediction_setup_id: int | None, limit: str | None) -> Selection | None:
    """Check both services (and the CHAP concurrency limit, when there is one) and choose setups;
    None (with the reason in the report) stops the run."""
    for attribute, check, api in (("dhis2", steps.check_dhis2, dhis2), ("chap", steps.check_chap, chap)):
        try:
            setattr(report, attribute, ServiceCheck(True, check(api)))
        except Exception as exc:
            setattr(report, attribute, ServiceCheck(False, _describe(exc), getattr(exc, "status", None)))
            return None
    report.chap_route = steps.read_chap_route(dhis2)
    if limit is not None:
        report.chap_limit = _check_limit(limit)
        if not report.chap_limit.usable:
            return None
    try:
        items = steps.list_prediction_setups(chap)
    except Exception as exc:
        report.listing_error = _describe(exc)
        return None
    selection = select_setups(items, configured_model_id, prediction_setup_id)
    if selection.error:
        report.selection_error = selection.error
        return None
    return selection


def _check_limit(limit: str) -> LimitCheck:
    """Before any DHIS2 data is fetched: a run whose limit is missing would fail every setup."""
    try:
        return steps.check_chap_limit(limit)
    except SlotError as exc:
        return LimitCheck(limit, False, "MISSING" if exc.missing else "NOT USABLE", str(exc))
    except Exception as exc:
        return LimitCheck(limit, False, "NOT USABLE", f"could not read the CHAP concurrency limit {limit!r} from "
                                                      f"the Prefect server: {_describe(exc)}")


class _StepTracker:
    """Calls step tasks and remembers the last one started, which is the one that failed."""

    def __init__(self) -> None:
        self.current = "?"

    def __call__(self, step: Any, *args: Any, **kwargs: Any) -> Any:
        self.current = step.name
        return step(*args, **kwargs)


def _run_setup(item: SetupItem, selection: Selection, end: EndSpec, settings: RunSettings,
               dhis2: Dhis2Api, chap: ChapApi, limit: str | None) -> SetupOutcome:
    outcome = SetupOutcome.for_item(item)
    if item.setup is None:
        return outcome.fail("list_prediction_setups", item.invalid or "invalid prediction setup")
    if selection.skips(item):
        return outcome.skip("scheduleEnabled is false in CHAP")
    step = _StepTracker()
    try:
        _predict(item.setup, outcome, step, end, settings, dhis2, chap, limit)
    except Exception as exc:  # isolation: record this setup's failure and go on with the next
        get_run_logger().error("setup %s failed at %s: %s", item.raw_id, step.current, _describe(exc))
        outcome.fail(step.current, _describe(exc), missing_value_rejections(exc))
    return outcome


def _predict(setup: PredictionSetup, outcome: SetupOutcome, step: _StepTracker, end: EndSpec,
             settings: RunSettings, dhis2: Dhis2Api, chap: ChapApi, limit: str | None) -> None:
    body = _prepare_request(setup, outcome, step, end, settings, dhis2)
    n_periods = body["nPeriods"]
    if limit is not None:
        step.current = ACQUIRE_SLOT_STEP
    # chap-core's memory is what the limit protects: hold the slot from the POST until the job
    # has ended and its result is read. With no limit this makes no request at all.
    with chap_slot(limit, settings.slot_timeout, get_run_logger()) as slot:
        if slot is not None:
            outcome.slot_limit, outcome.slot_wait = slot.limit, slot.waited
        submission = step(steps.run_prediction_setup, chap, setup, quote(body), settings)
        outcome.job_id, outcome.submit_note = submission.job_id, submission.note
        step(steps.wait_for_prediction, chap, outcome.job_id, settings)
        result = step(steps.fetch_prediction_result, chap, outcome.job_id, setup, n_periods)
    outcome.prediction_id = result.prediction_id
    outcome.prediction_values = result.values
    outcome.predicted_periods = result.periods
    outcome.org_units_predicted = result.org_units
    outcome.prediction_note = result.note
    if outcome.settle().org_units_lost:
        get_run_logger().error("setup %s: the forecast is missing org units %s", setup.id,
                               ", ".join(outcome.org_units_lost))


def _prepare_request(setup: PredictionSetup, outcome: SetupOutcome, step: _StepTracker, end: EndSpec,
                     settings: RunSettings, dhis2: Dhis2Api) -> dict[str, Any]:
    """End period, period range, DHIS2 data and geometry: everything chap's request needs."""
    outcome.reads = ReadStats()
    if end.mode == "calculated":
        probe = step(steps.probe_latest_covariate_periods, dhis2, setup, settings.reads)
        outcome.reads.add(probe.reads)
        outcome.end_period = probe.end_period
    else:
        outcome.end_period = step(steps.resolve_end_period, setup, end, settings.today)
    outcome.input_periods = step(steps.validate_period_range, setup, outcome.end_period)
    data = step(steps.fetch_dhis2_for_setup, dhis2, setup, outcome.input_periods, settings.reads)
    outcome.reads.add(data.reads)
    outcome.analytics_rows = data.reads.records
    geometry = step(steps.fetch_org_units_geojson, dhis2, setup, settings.reads)
    outcome.reads.add(geometry.reads)
    outcome.org_units = len(setup.org_units)
    outcome.org_units_with_geometry = len(geometry.geojson["features"])
    outcome.org_units_not_found = geometry.not_found
    # quote(): the data can be hundreds of thousands of items; Prefect need not walk them
    # looking for futures when they are passed to the next task.
    body = step(steps.build_prediction_request, setup, outcome.input_periods, quote(data.provided),
                quote(geometry.geojson), settings.run_token)
    del data  # the body holds the same items; nothing else should keep them alive
    outcome.observations = len(body["providedData"])
    sent = {row["orgUnit"] for row in body["providedData"]}
    with_geometry = {feature["id"] for feature in geometry.geojson["features"]}
    outcome.org_units_sent = [ou for ou in setup.org_units if ou in sent]
    outcome.org_units_without_geometry = [ou for ou in outcome.org_units_sent if ou not in with_geometry]
    return body


def _describe(exc: BaseException) -> str:
    if isinstance(exc, _EXPLAINED):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _publish(report: RunReport) -> None:
    try:
        create_markdown_artifact(markdown=render(report), key=report.key, description=REPORT_DESCRIPTION)
    except Exception as exc:  # losing the report must not hide the run's own outcome
        get_run_logger().error("could not write the run report artifact %r: %s", report.key, exc)


class ChapRunFailed(Exception):
    """The run's report says FAILED; the message is the report's headline."""


def _final_state(report: RunReport) -> State:
    if report.failed:
        # A Failed state's data must be an exception (Prefect raises it for callers); the summary
        # stays in the report artifact.
        return Failed(message=report.headline, data=ChapRunFailed(report.headline))
    return Completed(message=report.headline, data=report.summary())
