"""The fake server's mutable state: seed data, jobs, injected faults and the request log.

Faults (set over HTTP with `POST /__fake__/faults`, merged into the current ones):

- `http_errors`: `[{"method": "GET", "path": "/api/routes/chap/run/v1/jobs*", "status": 503,
  "times": 1, "body": {...}}]` -- answer matching requests (glob on the full path, method `*`
  for any) with that status, `times` times (omit or null for always), before any other handling.
  `"after": true` handles the request first (a `/run` makes its job) and then answers with this
  status instead of chap's (default body: DHIS2's own, an empty one for a 504): a proxy that lost
  the answer. `"reset": true` resets the connection instead of answering (before or after).
- `submit_seconds`: `{"3": 1.5, "*": ...}` -- chap takes this long to answer a `POST .../run` for
  that setup (built in or forwarded); its job is made at the end, as chap-core makes it. Past the
  route's `responseTimeoutSeconds` the route answers 504 and chap still makes the job (see
  `tests.fake_dhis2.route`).
- `data_gaps`: `[{"dataElement": "deRain001", "orgUnits": [...], "periods": [...]}]` -- remove
  analytics values; an omitted list means all (so `{"dataElement": X}` empties X completely).
- `job_statuses`: `{"3": ["PENDING", "FAILURE"], "*": [...]}` -- statuses a new job for that
  setup goes through, one per `GET /v1/jobs/{id}`; the last one repeats (so `["PENDING"]` never
  finishes). Default `["PENDING", "STARTED", "SUCCESS"]`.
- `job_seconds`: `{"3": 2.5, "*": ...}` -- a job for that setup does not end before this many
  seconds after its `/run`: until then a poll that would report a final status reports the
  last transient status before it again (`STARTED` if there is none). Makes jobs take a known
  time whatever the flow's poll interval.
- `job_results`: `{"3": null}` -- override the `result` a successful job reports in `/v1/jobs`.
- `job_errors`: `{"3": "ValueError: ..."}` -- the `error` a job that ends FAILURE reports in
  `/v1/jobs` (default: a generic message, as chap-core always records one).
- `future_weather_leak`: `[3]` -- these setups' backtests used a future-weather provider that
  reads the forecast window's own observations: chap-core refuses to run them (400).
- `odd_rows`: true -- analytics answers also carry a short row, an empty value, a
  non-numeric value and a data element nobody asked for, as real instances sometimes do.

DHIS2's limits (`limits`, on by default; `POST /__fake__/limits` changes them until the next
`reset`, which restores the ones the fake was started with):

- `max_records` (default 50,000, DHIS2's `keyAnalyticsMaxLimit`): an analytics answer with more
  records is refused with 409 and DHIS2's error E7128, no rows.
- `max_request_line` (default 8,192 bytes, nginx's request line buffer in front of DHIS2): a
  longer request line (method, path, query, protocol) is answered 414, as the proxy would.
- `max_route_body` (default 262,144 bytes, DHIS2's 256 KB for a route's response body): a
  route call whose answer from chap is longer is answered 502 with DHIS2's error body
  (`tests.fake_dhis2.route`), whatever chap said; a `POST .../run` still made its job.
- Values are rounded as DHIS2 rounds them unless the query says `skipRounding=true`;
  `skipMeta=true` leaves out `metaData`.

Job concurrency (what a CHAP concurrency limit must bound): a job is *active* from its `/run`
POST until the first poll (`GET /v1/jobs/{id}`) that reports it final. `job_concurrency()` gives
the number active now, the peak number active at once, and one interval per job (`job`, `setup`,
`start`, `end`: Unix times in seconds; `end` null while active). `reset` clears them.
"""

from __future__ import annotations

import fnmatch
import threading
import time
import uuid
import zlib
from datetime import date, datetime
from typing import Any

from tests.fake_dhis2 import periods, scale, seed
from tests.fake_dhis2.route import default_route

DEFAULT_JOB_STATUSES = ["PENDING", "STARTED", "SUCCESS"]
TRANSIENT = {"PENDING", "STARTED", "RUNNING", "QUEUED", "PROCESSING", "RETRY"}
RUN_KEYS = {"name", "geojson", "providedData", "nPeriods", "type"}
TARGET_FEATURE = "disease_cases"  # chap-core does not check the target for gaps
DEFAULT_JOB_ERROR = "RuntimeError: the model failed (injected by the fake)"
NO_GEOMETRY_ERROR = "No data in dataset DataSet({})"  # a job whose request has no geometry at all (chap-core's words)
SHORT_HISTORY_ERROR = "Training data must cover at least two whole years"  # chap_core.validators
# max_route_body: DHIS2's route buffers chap's answer in at most 256 KB (route.md)
DEFAULT_LIMITS = {"max_records": 50_000, "max_request_line": 8192, "max_route_body": 256 * 1024}
RECORD_CAP_ERROR = "E7128"  # DHIS2's "Query result set exceeded max limit"


def dhis2_error(status: int, message: str, error_code: str | None = None) -> dict[str, Any]:
    """DHIS2's WebMessage error body (`errorCode` only when DHIS2 gives one)."""
    reasons = {401: "Unauthorized", 404: "Not Found", 409: "Conflict", 500: "Internal Server Error",
               502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}
    body = {"httpStatus": reasons.get(status, "Error"), "httpStatusCode": status, "status": "ERROR",
            "message": message}
    if error_code:
        body["errorCode"] = error_code
    return body


def dhis2_rounded(value: str) -> str:
    """A value as DHIS2 analytics sends it without `skipRounding=true` (its `MathUtils.getRounded`):
    two decimals between -1 and 1, one otherwise; a value with no more places is sent unchanged."""
    whole, _, fraction = value.partition(".")
    number = float(value)
    places = 2 if -1 < number < 1 else 1
    return value if len(fraction) <= places else repr(round(number, places))


def _cron_invalid(cron: str) -> bool:
    """croniter's verdict (chap-core validates with croniter; Prefect's vendored copy is the same code)."""
    from compiler.compile.cron import expand

    return expand(cron) is None


def _valid_observation(row: Any) -> bool:
    return (
        isinstance(row, dict)
        and isinstance(row.get("featureName"), str)
        and isinstance(row.get("orgUnit"), str)
        and isinstance(row.get("period"), str)
        and periods.parse(row["period"]) is not None
        and isinstance(row.get("value"), (int, float))
    )


class FakeState:
    def __init__(self, username: str, password: str, today: date | None = None,
                 chap_url: str | None = None, limits: dict[str, int | None] | None = None) -> None:
        self.username = username
        self.password = password
        self.chap_url = chap_url  # forward the chap route to this chap-core (None: the built-in fake)
        self.default_limits = {**DEFAULT_LIMITS, **(limits or {})}  # None: that limit is off
        self.lock = threading.RLock()
        self.reset(today)

    # ------------------------------------------------------------------ admin

    def reset(self, today: date | None = None) -> None:
        with self.lock:
            self.today = today or date.today()
            self.setups = seed.prediction_setups(self.today)
            self.units: dict[str, dict[str, Any]] = dict(seed.ORG_UNITS)
            self.data_elements: dict[str, seed.DataElement] = dict(seed.DATA_ELEMENTS)
            self.limits: dict[str, int | None] = dict(self.default_limits)
            self.jobs: list[dict[str, Any]] = []  # newest first, as chap-core lists them
            self.predictions: dict[int, list[dict[str, Any]]] = {}
            self.prediction_summaries: dict[int, dict[str, Any]] = {}  # GET /v1/crud/predictions/{id}
            self.next_prediction_id = 42
            self.faults: dict[str, Any] = {}
            self.requests: list[dict[str, Any]] = []
            self.rejection_log: list[dict[str, Any]] = []
            self.job_intervals: list[dict[str, Any]] = []  # oldest first
            self.peak_active_jobs = 0
            self.route = default_route(self.chap_url)  # the chap route as /api/routes lists it
            # chap work still running when the route gave up belongs to this generation; a reset drops it
            self.generation = getattr(self, "generation", 0) + 1

    def set_limits(self, limits: dict[str, Any]) -> None:
        with self.lock:
            unknown = set(limits) - set(DEFAULT_LIMITS)
            if unknown or any(v is not None and (not isinstance(v, int) or v < 1) for v in limits.values()):
                raise ValueError(f"limits are {sorted(DEFAULT_LIMITS)}: a positive integer, or null for none")
            self.limits.update(limits)

    def seed_scale(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Add a national-scale setup (see `tests.fake_dhis2.scale`); returns it."""
        with self.lock:
            setup, units, elements = scale.scaled_setup(spec, self.today)
            self.units.update(units)
            self.data_elements.update(elements)
            self.setups[setup["id"]] = setup
            return setup

    def held_values(self, setup_id: int, first: str, last: str) -> list[list[str]]:
        """Every value analytics holds for a setup's data elements and org units from `first` to
        `last` (inclusive): `[dataElement, period (DHIS2's id), orgUnit, value]`, full precision."""
        with self.lock:
            setup = self.setups[setup_id]
            start, end = periods.parse(first), periods.parse(last)
            wanted, period = [], start
            while period[1] <= end[1]:
                wanted.append(period)
                period = periods.step(period, 1)
            elements = [source["dataElementId"] for source in setup["covariateSources"]]
            return self._rows(wanted, elements, setup["orgUnits"], None, skip_rounding=True)[1]

    def request_line_too_long(self, length: int) -> bool:
        cap = self.limits.get("max_request_line")
        return cap is not None and length > cap

    def set_faults(self, faults: dict[str, Any]) -> None:
        with self.lock:
            self.faults.update(faults)

    def take_http_error(self, method: str, path: str, consume: bool = True,
                        after: bool = False) -> dict[str, Any] | None:
        """The first matching `http_errors` rule, consuming one of its `times` (unless `consume`
        is false: a look only). `after`: the rules that answer once the request was handled."""
        with self.lock:
            for rule in self.faults.get("http_errors", []):
                if rule.get("method", "*") not in ("*", method) or not fnmatch.fnmatchcase(path, rule["path"]):
                    continue
                if bool(rule.get("after")) != after:
                    continue
                if rule.get("times") is not None:
                    if rule["times"] <= 0:
                        continue
                    if consume:
                        rule["times"] -= 1
                return rule
        return None

    def job_concurrency(self) -> dict[str, Any]:
        with self.lock:
            return {"active": sum(1 for i in self.job_intervals if i["end"] is None),
                    "peak": self.peak_active_jobs, "intervals": [dict(i) for i in self.job_intervals]}

    # ------------------------------------------------------------------ chap-core's setup edits

    # `PredictionSetupUpdate` (chap-core 2.5.1): camelCase keys, unknown ones refused
    SETUP_FIELDS = {"name": "name", "scheduleCronExpression": "schedule_cron_expression",
                    "scheduleEnabled": "schedule_enabled", "quantileTargets": "quantile_targets",
                    "alertPolicyId": "alert_policy_id"}

    def update_setup(self, setup_id: int, body: Any) -> tuple[int, Any]:
        """`PATCH /v1/crud/prediction-setups/{id}` as chap-core 2.5.1 answers it (what the DHIS2 Modeling
        App sends to pause a schedule or change its cron): only the keys sent change; a cron must have
        five fields and croniter's blessing; an enabled schedule needs one; 422 otherwise."""
        if not isinstance(body, dict):
            return 422, {"detail": [{"type": "model_attributes_type", "loc": ["body"], "msg": "Input should be a "
                                                                                               "valid dictionary"}]}
        extra = [key for key in body if key not in self.SETUP_FIELDS]
        if extra:
            return 422, {"detail": [{"type": "extra_forbidden", "loc": ["body", key], "msg": "Extra inputs are not "
                                                                                             "permitted"} for key in extra]}
        setup = self.setups[setup_id]
        if "name" in body and not body["name"]:
            return 422, {"detail": "name cannot be null or empty"}
        if "alertPolicyId" in body and body["alertPolicyId"] is not None:
            return 404, {"detail": f"AlertPolicy {body['alertPolicyId']} not found"}
        if "scheduleCronExpression" in body or "scheduleEnabled" in body:
            enabled = body.get("scheduleEnabled", setup["scheduleEnabled"])
            cron = body.get("scheduleCronExpression", setup["scheduleCronExpression"])
            if enabled is None:
                return 422, {"detail": "schedule_enabled cannot be null"}
            cron = (cron or "").strip() or None
            if cron is None and enabled:
                return 422, {"detail": "Enabled schedules require a cron expression"}
            if cron is not None and len(cron.split()) != 5:
                return 422, {"detail": "Schedule expression must be standard five-field cron"}
            if cron is not None and _cron_invalid(cron):
                return 422, {"detail": f"Invalid schedule expression: {cron}"}
            setup["scheduleCronExpression"], setup["scheduleEnabled"] = cron, bool(enabled)
        if "name" in body:
            setup["name"] = body["name"]
        if "quantileTargets" in body:
            setup["quantileTargets"] = list(body["quantileTargets"] or [])
        return 200, setup

    # ------------------------------------------------------------------ DHIS2

    def dhis2_info(self) -> dict[str, Any]:
        return {**seed.DHIS2_INFO, "serverDate": f"{self.today.isoformat()}T08:15:00.000"}

    def chap_info(self) -> dict[str, Any]:
        return {**seed.CHAP_INFO, "server_date": f"{self.today.isoformat()}T08:15:02.123456+00:00"}

    def _has_gap(self, element: str, period: str, org_unit: str) -> bool:
        for gap in self.faults.get("data_gaps", []):
            if gap.get("dataElement") != element:
                continue
            if "orgUnits" in gap and org_unit not in gap["orgUnits"]:
                continue
            if "periods" in gap and period not in {periods.dhis2_id(periods.parse(p)) for p in gap["periods"]}:
                continue
            return True
        return False

    def _periods_of(self, items: list[str]) -> list[periods.Period] | str:
        found: list[periods.Period] = []
        for item in items:
            parsed = periods.relative(item, self.today) or ([periods.parse(item)] if periods.parse(item) else None)
            if parsed is None:
                return item
            found.extend(parsed)
        return found

    def analytics(self, dimensions: dict[str, list[str]], skip_rounding: bool = False,
                  skip_meta: bool = False) -> tuple[int, dict[str, Any]]:
        missing = [d for d in ("dx", "pe", "ou") if not dimensions.get(d)]
        if missing:
            return 409, dhis2_error(409, f"Dimension(s) {', '.join(missing)} missing or empty")
        unknown = [de for de in dimensions["dx"] if de not in self.data_elements]
        unknown += [ou for ou in dimensions["ou"] if ou not in self.units]
        if unknown:
            return 409, dhis2_error(409, f"Dimension items not found: {', '.join(unknown)}")
        pes = self._periods_of(dimensions["pe"])
        if isinstance(pes, str):
            return 409, dhis2_error(409, f"Period is invalid: `{pes}`")
        cap = self.limits.get("max_records")
        within, rows = self._rows(pes, dimensions["dx"], dimensions["ou"], cap, skip_rounding)
        if not within:
            return 409, dhis2_error(409, f"Query result set exceeded max limit: `{cap}`", RECORD_CAP_ERROR)
        if self.faults.get("odd_rows"):
            first = dimensions["dx"][0]
            rows += [[first, "202501"], [first, "202501", "ouDist001", ""],
                     [first, "202501", "ouDist001", "n/a"], ["deOther001", "202501", "ouDist001", "5"]]
        body: dict[str, Any] = {
            "headers": [{"name": "dx", "column": "Data", "valueType": "TEXT"},
                        {"name": "pe", "column": "Period", "valueType": "TEXT"},
                        {"name": "ou", "column": "Organisation unit", "valueType": "TEXT"},
                        {"name": "value", "column": "Value", "valueType": "NUMBER"}],
            "rows": rows, "height": len(rows), "width": 4,
        }
        if not skip_meta:
            body["metaData"] = {"items": {}, "dimensions": {"dx": dimensions["dx"],
                                                            "pe": [periods.dhis2_id(p) for p in pes],
                                                            "ou": dimensions["ou"]}}
        return 200, body

    def _rows(self, pes: list[periods.Period], elements: list[str], org_units: list[str], cap: int | None,
              skip_rounding: bool) -> tuple[bool, list[list[str]]]:
        """(within the cap, rows) -- generation stops as soon as the cap is passed, as DHIS2's
        query does (it asks the database for one record more than the cap)."""
        rows: list[list[str]] = []
        gaps = bool(self.faults.get("data_gaps"))
        # Newest period first: analytics gives no order guarantee, and the flow must not need one.
        for period in sorted(set(pes), key=lambda p: p[1], reverse=True):
            pid = periods.dhis2_id(period)
            for element in elements:
                holder = self.data_elements[element]
                if not holder.holds(period, self.today):
                    continue
                for org_unit in org_units:
                    if gaps and self._has_gap(element, pid, org_unit):
                        continue
                    value = holder.raw(pid, org_unit)
                    rows.append([element, pid, org_unit, value if skip_rounding else dhis2_rounded(value)])
                if cap is not None and len(rows) > cap:
                    return False, []
        return True, rows

    def org_units(self, ids: list[str] | None, paging: bool) -> dict[str, Any]:
        if ids is None:
            units = list(self.units.values())
        else:
            wanted = set(ids)
            units = [unit for uid, unit in self.units.items() if uid in wanted]
        body: dict[str, Any] = {"organisationUnits": units}
        if paging:
            body["pager"] = {"page": 1, "pageCount": 1, "total": len(units), "pageSize": 50}
        return body

    # ------------------------------------------------------------------ CHAP

    def run_setup(self, setup_id: int, body: Any) -> tuple[int, Any]:
        """chap-core 2.5.1's checks, in its order: body shape (422), archived model (409), empty data
        (422), target present (422), missing values of the covariates *present* (400 when every org
        unit is rejected; a partial rejection is only logged), future-weather provider (400)."""
        if setup_id not in self.setups:
            return 404, {"detail": f"PredictionSetup {setup_id} not found"}
        problem = self._invalid_run_body(body)
        if problem:
            return 422, {"detail": problem}
        setup = self.setups[setup_id]
        if setup.get("archived"):
            return 409, {"detail": f"Configured model '{setup['configuredModel']['name']}' is archived"}
        if not body["providedData"]:
            return 422, {"detail": "provided_data cannot be empty"}
        target = setup["configuredModel"]["modelTemplate"].get("target", TARGET_FEATURE)
        if target not in {row["featureName"] for row in body["providedData"]}:
            return 422, {"detail": f"Dataset has no target column {target!r}"}
        rejected, org_units = self._missing_values(target, body["providedData"])
        if {r["orgUnit"] for r in rejected} >= org_units:
            return 400, {"detail": {"message": "All regions rejected due to missing values", "imported_count": 0,
                                    "rejected": rejected}}
        self.rejection_log.extend(rejected)  # partial rejections are only logged by chap-core
        if setup_id in self.faults.get("future_weather_leak", []):
            return 400, {"detail": f"Prediction setup {setup_id} was evaluated with the 'observed' future-weather "
                                   "provider, which reads the forecast window's own observations and so cannot "
                                   "forecast ahead. Re-run the backtest with a forecasting provider before running "
                                   "predictions from it."}
        kept = org_units - {r["orgUnit"] for r in rejected}
        return 200, {"id": self._create_job(setup_id, body, kept)}

    def _invalid_run_body(self, body: Any) -> Any:
        if not isinstance(body, dict):
            return [{"type": "model_attributes_type", "loc": ["body"], "msg": "Input should be an object"}]
        extra = sorted(set(body) - RUN_KEYS)
        if extra:
            return [{"type": "extra_forbidden", "loc": ["body", key], "msg": "Extra inputs are not permitted"}
                    for key in extra]
        n_periods = body.get("nPeriods", 3)
        if not isinstance(n_periods, int) or n_periods <= 0:
            return [{"type": "greater_than", "loc": ["body", "nPeriods"], "msg": "Input should be greater than 0"}]
        if not isinstance(body.get("geojson"), dict) or not isinstance(body.get("providedData"), list):
            return [{"type": "missing", "loc": ["body", "geojson/providedData"], "msg": "Field required"}]
        for index, row in enumerate(body["providedData"]):
            if not _valid_observation(row):
                return [{"type": "value_error", "loc": ["body", "providedData", index], "msg": "Invalid observation"}]
        return None

    def _missing_values(self, target: str, provided: list[dict]) -> tuple[list[dict], set[str]]:
        """chap-core's check: every covariate *in the request* (the target aside) needs a value in
        every period from the first to the last one sent (a period nobody sent is a hole too), per
        org unit; only the first incomplete covariate of an org unit is reported. A covariate with
        no rows at all is not checked (nor used)."""
        seen = {(row["featureName"], row["orgUnit"], periods.chap_id(periods.parse(row["period"]))) for row in provided}
        sent = sorted({periods.parse(p) for _, _, p in seen}, key=lambda p: p[1])
        all_periods = [periods.chap_id(sent[0])]
        while all_periods[-1] != periods.chap_id(sent[-1]):
            all_periods.append(periods.chap_id(periods.step(periods.parse(all_periods[-1]), 1)))
        org_units = {ou for _, ou, _ in seen}
        covariates = sorted({feature for feature, _, _ in seen} - {target, TARGET_FEATURE})
        rejected = []
        for org_unit in sorted(org_units):
            for covariate in covariates:
                gaps = [p for p in all_periods if (covariate, org_unit, p) not in seen]
                if gaps:
                    rejected.append({"reason": "Missing value for some/all time periods", "orgUnit": org_unit,
                                     "featureName": covariate, "timePeriods": gaps})
                    break
        return rejected, org_units

    def _create_job(self, setup_id: int, body: dict[str, Any], kept: set[str]) -> str:
        script = self.faults.get("job_statuses", {})
        statuses = list(script.get(str(setup_id)) or script.get("*") or DEFAULT_JOB_STATUSES)
        # chap-core forecasts the org units that passed its check *and* have a feature in the
        # GeoJSON; the others vanish silently. With no geometry at all the job fails.
        with_geometry = {f.get("id") for f in body["geojson"].get("features", []) if isinstance(f, dict)}
        forecast_units = sorted(kept & with_geometry)
        error = NO_GEOMETRY_ERROR if not forecast_units else self._short_history(body["providedData"])
        if error:
            statuses = [statuses[0], "FAILURE"]
        job_id = str(uuid.uuid4())
        seconds = self.faults.get("job_seconds", {})
        min_seconds = seconds.get(str(setup_id), seconds.get("*", 0))
        started = time.time()
        self.job_intervals.append({"job": job_id, "setup": setup_id, "start": started, "end": None})
        self.peak_active_jobs = max(self.peak_active_jobs, self.job_concurrency()["active"])
        prediction_id = self.next_prediction_id
        self.next_prediction_id += 1
        self.predictions[prediction_id] = self._forecast(body, forecast_units)
        self.prediction_summaries[prediction_id] = self._summary(prediction_id, setup_id, body, forecast_units)
        self.jobs.insert(0, {
            "id": job_id, "type": "create_prediction", "name": body.get("name"), "status": statuses[0],
            # chap-core writes naive local timestamps
            "start_time": datetime.now().isoformat(), "end_time": None, "result": None, "error": None,
            "prediction_setup_id": setup_id, "_statuses": statuses, "_polls": 0,
            "_prediction_id": prediction_id, "_error": error, "_done_after": time.monotonic() + float(min_seconds or 0),
        })
        return job_id

    @staticmethod
    def _short_history(provided: list[dict[str, Any]]) -> str | None:
        """chap-core's `validate_training_data`: the data must span two whole years, from the first
        day of the first period sent to the first day after the last one (202301..202412 passes)."""
        sent = [periods.parse(row["period"]) for row in provided]
        first, last = min(sent, key=lambda p: p[1]), max(sent, key=lambda p: p[1])
        start, end = first[1], periods.step(last, 1)[1]
        two_years_on = start.replace(year=start.year + 2, day=min(start.day, 28) if start.month == 2 else start.day)
        return SHORT_HISTORY_ERROR if end < two_years_on else None

    def _forecast(self, body: dict[str, Any], org_units: list[str]) -> list[dict[str, Any]]:
        """Entries for nPeriods periods after the last period sent, per org unit forecast."""
        provided = body["providedData"]
        last = max((periods.parse(row["period"]) for row in provided), key=lambda p: p[1])
        future = [periods.step(last, n) for n in range(1, body.get("nPeriods", 3) + 1)]
        return [{"orgUnit": ou, "period": periods.chap_id(p)} for p in future for ou in org_units]

    def _summary(self, prediction_id: int, setup_id: int, body: dict[str, Any], org_units: list[str]) -> dict[str, Any]:
        """chap-core 2.5.1's `PredictionInfo` (camelCase), the fields a client may read: the org units
        forecast, `nPeriods`, and the dataset sent (`firstPeriod`, `lastPeriod`, its org units)."""
        sent = sorted({periods.parse(row["period"]) for row in body["providedData"]}, key=lambda p: p[1])
        model = self.setups[setup_id]["configuredModel"]
        return {"datasetId": prediction_id, "predictionSetupId": setup_id, "modelId": model["name"],
                "nPeriods": body.get("nPeriods", 3), "name": body.get("name"), "created": datetime.now().isoformat(),
                "metaData": {}, "orgUnits": org_units, "id": prediction_id,
                "configuredModel": {k: v for k, v in model.items() if k != "modelTemplate"},
                "dataset": {"name": body.get("name"), "dataSources": [], "type": "prediction", "id": prediction_id,
                            "covariates": sorted({row["featureName"] for row in body["providedData"]}),
                            "firstPeriod": periods.chap_id(sent[0]), "lastPeriod": periods.chap_id(sent[-1]),
                            "orgUnits": sorted({row["orgUnit"] for row in body["providedData"]})}}

    def prediction_summary(self, prediction_id: int) -> tuple[int, Any]:
        summary = self.prediction_summaries.get(prediction_id)
        return (200, summary) if summary is not None else (404, {"detail": "Prediction not found"})

    def job_status(self, job_id: str) -> tuple[int, Any]:
        with self.lock:
            job = self._job(job_id)
            if job is None:
                return 404, {"detail": f"Job '{job_id}' not found"}
            job["_polls"] += 1
            index = min(job["_polls"] - 1, len(job["_statuses"]) - 1)
            job["status"] = job["_statuses"][index]
            if job["status"] not in TRANSIENT and job["end_time"] is None and time.monotonic() < job["_done_after"]:
                job["_polls"] -= 1  # not done yet (`job_seconds`): the same poll again next time
                job["status"] = next((s for s in reversed(job["_statuses"][:index]) if s in TRANSIENT), "STARTED")
            if job["status"] not in TRANSIENT and job["end_time"] is None:
                job["end_time"] = datetime.now().isoformat()
                interval = next(i for i in self.job_intervals if i["job"] == job_id)
                interval["end"] = time.time()
                if job["status"] != "SUCCESS":
                    errors = self.faults.get("job_errors", {})
                    job["error"] = job["_error"] or errors.get(str(job["prediction_setup_id"]), DEFAULT_JOB_ERROR)
                else:
                    overrides = self.faults.get("job_results", {})
                    key = str(job["prediction_setup_id"])
                    job["result"] = overrides[key] if key in overrides else str(job["_prediction_id"])
            return 200, job["status"]

    def _job(self, job_id: str) -> dict[str, Any] | None:
        return next((job for job in self.jobs if job["id"] == job_id), None)

    def public_jobs(self, ids: list[str] | None = None, setup_id: int | None = None) -> list[dict[str, Any]]:
        """`GET /v1/jobs[?ids=...][&predictionSetupId=N]`: every tracked job, newest first, or just the
        ones named, or a setup's (chap-core 2.5.1's filters; they compose)."""
        return [{k: v for k, v in job.items() if not k.startswith("_")} for job in self.jobs
                if (not ids or job["id"] in ids) and (setup_id is None or job["prediction_setup_id"] == setup_id)]

    def prediction_entries(self, prediction_id: int, quantiles: list[str]) -> tuple[int, Any]:
        if not quantiles:
            return 422, {"detail": [{"type": "missing", "loc": ["query", "quantiles"], "msg": "Field required"}]}
        if prediction_id not in self.predictions:
            return 404, {"detail": "Prediction not found"}
        entries = []
        for cell in self.predictions[prediction_id]:
            base = zlib.crc32(f"{cell['orgUnit']}|{cell['period']}".encode()) % 100
            for q in quantiles:
                entries.append({**cell, "quantile": float(q), "value": round(base * (0.5 + float(q)), 1)})
        return 200, entries
