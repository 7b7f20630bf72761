"""Pure transforms from DHIS2 answers to chap-core's prediction request (no I/O here)."""

from __future__ import annotations

import math
import sys
from datetime import date
from typing import Any

from flows import periods
from flows.periods import PeriodError
from flows.setups import PredictionSetup


class NoDataError(ValueError):
    """DHIS2 has no data the prediction could use."""


def latest_period_per_element(rows: list[list[str]], period_type: str,
                              latest: dict[str, str] | None = None) -> dict[str, str]:
    """For each data element in the rows, its latest period (by period start, not by text),
    merged into `latest` when given (one read's rows at a time).

    Ordering by start date matters for weeks: as text, DHIS2's unpadded `2025W9` sorts after
    `2025W10`. Each distinct period is parsed once: a national read repeats it in every org unit.
    """
    latest = {} if latest is None else latest
    seen: dict[str, dict[str, None]] = {}  # element -> its periods, in the order first met
    for row in rows:
        if len(row) >= 4:
            seen.setdefault(row[0], {})[row[1]] = None
    starts: dict[str, date | None] = {}

    def start(period: str) -> date | None:
        if period not in starts:
            try:
                starts[period] = periods.period_start(period, period_type)
            except PeriodError:
                starts[period] = None
        return starts[period]

    for element, found in seen.items():
        for period in found:
            begins, best = start(period), start(latest[element]) if element in latest else None
            if begins is not None and (best is None or begins > best):
                latest[element] = period
    return latest


def calculated_end_period(setup: PredictionSetup, latest: dict[str, str]) -> str:
    """The earliest of the covariates' latest periods (`latest_period_per_element`): the last
    period all of them cover."""
    missing = sorted(
        f"{source.covariate} ({source.data_element_id})"
        for source in setup.covariate_sources
        if source.data_element_id not in latest
    )
    if missing:
        window = periods.PROBE_WINDOWS[setup.period_type]
        raise NoDataError(
            f"DHIS2 returned no data within {window} for covariate(s): {', '.join(missing)}. "
            "Check that the analytics tables are up to date, or run with end_mode fixed or offset."
        )
    ends = [latest[element] for element in setup.data_elements]
    return periods.canonical(periods.earliest(ends, setup.period_type), setup.period_type)


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def observations(setup: PredictionSetup, rows: list[list[str]],
                 into: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """chap-core `providedData` items, one per usable analytics row and covariate, appended to
    `into` when given (one read's rows at a time, so the raw rows need not all be kept).

    The period is passed on as DHIS2 wrote it (chap-core accepts `2025W5` and `2025W05`).
    Rows that are too short, name a data element the setup does not use, or hold no number
    are dropped. Org unit and period strings are interned: a national dataset repeats each one
    thousands of times.
    """
    covariates: dict[str, list[str]] = {}
    for source in setup.covariate_sources:
        covariates.setdefault(source.data_element_id, []).append(source.covariate)
    provided = [] if into is None else into
    append, intern = provided.append, sys.intern  # (the loop runs once per value of a national dataset)
    for row in rows:
        names = covariates.get(row[0]) if len(row) >= 4 else None
        if names is None or (value := _number(row[3])) is None:
            continue
        org_unit, period = intern(row[2]), intern(row[1])
        for name in names:
            append({"featureName": name, "orgUnit": org_unit, "period": period, "value": value})
    return provided


def feature(unit: dict[str, Any]) -> dict[str, Any]:
    """A GeoJSON Feature for an org unit that has a geometry."""
    properties: dict[str, Any] = {"id": unit["id"], "level": unit.get("level"),
                                  "displayName": unit.get("displayName")}
    if unit.get("code"):
        properties["code"] = unit["code"]
    parent = unit.get("parent")
    if isinstance(parent, dict) and parent.get("id"):
        properties["parent"] = parent["id"]
        properties["parentGraph"] = parent["id"]
    return {"type": "Feature", "id": unit["id"], "geometry": unit["geometry"], "properties": properties}


def feature_collection(setup: PredictionSetup, units: list[dict[str, Any]]) -> dict[str, Any]:
    """Features for the setup's org units that have a geometry, in the setup's order."""
    by_id = {unit["id"]: unit for unit in units}
    features = [feature(by_id[ou]) for ou in setup.org_units if by_id.get(ou, {}).get("geometry")]
    return {"type": "FeatureCollection", "features": features}


def request_name(setup: PredictionSetup, start: str, end: str, run_token: str = "") -> str:
    """The prediction's name in chap-core (its job's `name` in `GET /v1/jobs`). `run_token` makes it
    unique to one flow run, so that a submit whose answer was lost can be found by its name."""
    name = f"{setup.name} ({setup.configured_model.name}) {start}-{end}"
    return f"{name} [run {run_token}]" if run_token else name


def prediction_request(setup: PredictionSetup, start: str, end: str,
                       provided: list[dict[str, Any]], geojson: dict[str, Any], run_token: str = "") -> dict[str, Any]:
    """The body of `POST /v1/crud/prediction-setups/{id}/run` (chap-core forbids other keys)."""
    if not provided:
        # chap-core would answer 422 "provided_data cannot be empty"; saying why is kinder.
        raise NoDataError(f"DHIS2 returned no usable values for {start}..{end}: nothing to send to chap")
    check_covariates(setup, start, end, provided)
    check_geometry(setup, geojson)
    return {
        "name": request_name(setup, start, end, run_token),
        "geojson": geojson,
        "providedData": provided,
        "nPeriods": periods.N_PERIODS[setup.period_type],
        "type": "forecasting",
    }


def check_covariates(setup: PredictionSetup, start: str, end: str, provided: list[dict[str, Any]]) -> None:
    """Every covariate of the setup, the target included, must have values to send.

    chap-core checks only the features a request contains: a covariate with no rows at all is not
    an error there, and the model runs without it -- a forecast that looks fine and is not. A
    missing target is refused with a 422. Both are stopped here, naming the covariate."""
    sent = {row["featureName"] for row in provided}
    missing = [f"{source.covariate} ({source.data_element_id})" for source in setup.covariate_sources
               if source.covariate not in sent]
    if missing:
        raise NoDataError(
            f"DHIS2 returned no values for {start}..{end} for covariate(s) {', '.join(missing)}: chap-core would "
            "forecast without them (or refuse a missing target). Check the data elements and the analytics "
            "tables in DHIS2, or choose an end period that has data."
        )


def check_geometry(setup: PredictionSetup, geojson: dict[str, Any]) -> None:
    """At least one org unit with a geometry: chap-core accepts a request without any, and its job
    fails with "No data in dataset"."""
    if not geojson["features"]:
        raise NoDataError(f"none of the setup's {len(setup.org_units)} org units has a geometry in DHIS2: chap-core "
                          "cannot forecast without one (its job would fail with 'No data in dataset'); add "
                          "geometries to the org units in DHIS2 or choose other org units in the setup")


def check_history(setup: PredictionSetup, first: str, last: str) -> None:
    """The data sent, from the period `first` to the period `last`, spans the whole years chap-core
    trains on (`periods.covers_training_years`); with less, its job fails after the submit."""
    if not periods.covers_training_years(first, last, setup.period_type):
        needed = periods.last_period_for_training(first, setup.period_type)
        raise NoDataError(
            f"the data runs from {first} to {last}, less than the {periods.TRAINING_YEARS} whole years chap-core needs "
            f"to train (its job would fail with 'Training data must cover at least two whole years'): from {first} "
            f"the data must reach {needed}. Move the setup's start period back, or the end period on")


def sent_span(setup: PredictionSetup, provided: list[dict[str, Any]]) -> tuple[str, str]:
    """The first and the last period of the values sent (as chap-core measures the training data)."""
    found = {row["period"] for row in provided}
    ordered = sorted(found, key=lambda pid: periods.period_start(pid, setup.period_type))
    return periods.canonical(ordered[0], setup.period_type), periods.canonical(ordered[-1], setup.period_type)
