"""The judge of `chapctl preflight`: pure. From a project (`targets.Target`) and what its DHIS2 login
answered (`instance.InstanceFacts`), its findings and facts, by the flow's own rules — the setup
selection (`flows.setups.select_setups`), the end period of every end mode (`flows.checks.end_period`,
`prediction_request.calculated_end_period`), the 120-period cap (`periods.period_range`), the checks
before a submit (`prediction_request.check_geometry`, `check_history`: chap-core's two whole years),
the reads within DHIS2's limits (`flows.checks.analytics_chunks`, `org_unit_groups`) and the route's
timeout (`flows.report.RouteCheck`) — and by what only preflight can compare: every covariate's
latest period against each run's end period, the setup's period type against the schedule's
cadence, and chap-core's own schedule fields against the project's.

Each finding is a `model.Finding`: `fail` (a run would fail for it), `warn` (it would run, not as
the operator expects), `info` (a fact worth knowing); every text is scrubbed of the secrets in play.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from compiler.preflight.instance import Failure, InstanceFacts
from compiler.preflight.model import FAIL, INFO, WARN, Covariate, Finding, ProjectResult, RunFacts, SetupRun
from compiler.preflight.targets import RunSpec, Target, end_date
from flows import checks, periods
from flows.api import CHAP_ROUTE_CODE
from flows.checks import LatestPeriods, OrgUnitGeometry
from flows.dhis2_reads import RELATIVE_PERIODS, ReadBudget, ReadPlanError
from flows.periods import PeriodError
from flows.prediction_request import NoDataError, calculated_end_period, check_geometry, check_history
from flows.report import ROUTE_TIMEOUT_ADVISED_SECONDS
from flows.run_config import ConfigError, EndSpec, check_end
from flows.setups import PredictionSetup, SetupItem, select_setups

TARGET = "disease_cases"  # chap-core's target: it does not check it for gaps (tests/chap_real/FINDINGS.md)
CADENCE_WORDS = {"day": "daily (or more often)", "week": "weekly", "month": "monthly", "year": "yearly"}
_UTC = {"UTC", "Etc/UTC", "Etc/Universal", "Universal", "Etc/Zulu", "Zulu", "GMT", "Etc/GMT", "Etc/GMT0", "GMT0",
        "Etc/GMT+0", "Etc/GMT-0", "Etc/Greenwich", "Greenwich", "Etc/UCT", "UCT"}
# Bytes of one `providedData` item as httpx sends it (compact JSON) besides its covariate, org unit
# and period: `{"featureName":"","orgUnit":"","period":"","value":},` plus a value of ~5 characters.
_ITEM_BYTES = 56
BUDGET_FIX = ("raise CHAP_DHIS2_MAX_RECORDS / CHAP_DHIS2_MAX_REQUEST_LINE on the workers, within what DHIS2 and the "
              "proxy in front of it accept (preflight reads them from its environment, as the workers do), or make "
              "the setup's ids shorter")


@dataclass(frozen=True)
class Context:
    today: date
    budget: ReadBudget
    scrub: Callable[[str], str] = lambda text: text
    # setup ids some project of the repository runs, per DHIS2 base URL (for chap-core's enabled setups)
    running: Mapping[str, frozenset[Any]] = field(default_factory=dict)


def _selection_text(model_id: Any, setup_id: Any) -> str:
    parts = [f"configured_model_id={model_id}" if model_id is not None else "",
             f"prediction_setup_id={setup_id}" if setup_id is not None else ""]
    return ", ".join(part for part in parts if part) or "every setup with its CHAP schedule enabled"


def run_end(run: RunSpec) -> EndSpec:
    """The run's end mode and value, checked as the flow checks them (ConfigError, ValueError)."""
    offset = run.parameter("end_period_offset")
    return check_end(run.parameter("end_mode") or "calculated", end_date(run.parameter("end_date")),
                     None if offset is None else int(offset))


def selected(run: RunSpec, items: list[SetupItem]):
    """The flow's selection of setups for this run."""
    return select_setups(items, run.parameter("configured_model_id"), run.parameter("prediction_setup_id"))


def setups_run(target: Target, items: list[SetupItem]) -> set[Any]:
    """The ids of the setups any run of the project works on (not those it skips)."""
    ids: set[Any] = set()
    for run in target.runs:
        ids |= {item.raw_id for item in selected(run, items).runs}
    return ids


class _Judge:
    def __init__(self, target: Target, facts: InstanceFacts | None, ctx: Context) -> None:
        self.target, self.facts, self.ctx = target, facts, ctx
        creds = target.credentials
        self.result = ProjectResult(target.name, creds.block, dhis2_url=creds.base_url)
        self.many_runs = len(target.runs) > 1
        self.run: RunSpec | None = None

    # -- findings ------------------------------------------------------------------------------
    def add(self, level: str, check: str, text: str, fix: str = "", setup: Any = None, *,
            per_run: bool = True) -> None:
        run = self.run.label if (self.run is not None and per_run and self.many_runs) else None
        prefix = f"{run}: " if run else ""
        self.result.add(Finding(level, check, self.ctx.scrub(prefix + text), self.ctx.scrub(fix), setup, run))

    # -- the whole project ---------------------------------------------------------------------
    def judge(self, password_missing: bool) -> ProjectResult:
        creds = self.target.credentials
        if not creds.managed:
            self.add(WARN, "not_checked",
                     f"not checked: its credentials block {creds.block!r} is managed outside chapctl, so its DHIS2 "
                     "URL, login and password are not in this repository",
                     "give `base_url`, `username` and `password_env` under the project's `credentials:` (chapctl "
                     "then manages the block, and preflight checks it), or check it with a run of the deployment")
            return self.result
        if password_missing:
            self.add(FAIL, "credentials",
                     f"the environment variable {creds.password.variable} (password_env of block {creds.block!r}) is "
                     "not set: preflight reads the DHIS2 password from it, as apply does",
                     f"export {creds.password.variable}, or in CI give the repository secret "
                     f"{creds.password.variable} (the apply workflow hands every secret over in CHAPCTL_SECRETS)")
            return self.result
        facts = self.facts
        if facts is None or not self._services(facts):
            return self.result
        for run in self.target.runs:
            self.run = run
            self.result.runs.append(self._judge_run(run, facts))
        self.run = None
        self._chap_schedule(facts)
        return self.result

    def _services(self, facts: InstanceFacts) -> bool:
        """DHIS2, its login, the route, chap-core and the setups: False when a run would stop there."""
        creds = self.target.credentials
        if isinstance(facts.dhis2, Failure):
            if facts.dhis2.status in (401, 403):
                self.add(FAIL, "credentials",
                         f"DHIS2 refused the login of user {creds.username!r} (HTTP {facts.dhis2.status}): the password "
                         f"in {creds.password.variable} (block {creds.block!r}) or the username is wrong",
                         f"set {creds.password.variable} to the DHIS2 password of {creds.username!r} (in CI: the "
                         "repository secret of that name); check `username` in the project's credentials")
            else:
                self.add(FAIL, "dhis2", f"DHIS2 at {creds.base_url} did not answer: {facts.dhis2.text}",
                         "check `base_url` in the project's credentials, and that DHIS2 is up and reachable from "
                         "here and from the workers")
            return False
        self.result.dhis2 = self.ctx.scrub(str(facts.dhis2))
        route = facts.route
        if isinstance(facts.chap, Failure):
            if facts.chap.status in (403, 404):
                listed = "" if route is None or route.seconds is not None else f"; {route.why_unknown}"
                self.add(FAIL, "route",
                         f"DHIS2 has no route {CHAP_ROUTE_CODE!r} that user {creds.username!r} may run: "
                         f"{facts.chap.text}{listed}",
                         f"create the route in DHIS2 with code `{CHAP_ROUTE_CODE}` and the URL of chap-core ending "
                         "in `/**` (responseTimeoutSeconds 60; docs/operations.md), or share it with that user")
            else:
                self.add(FAIL, "chap", f"chap-core did not answer through DHIS2's route {CHAP_ROUTE_CODE!r}: "
                                       f"{facts.chap.text}",
                         "check that chap-core is up and that the route's URL points at it (DHIS2 Maintenance > "
                         "Routes)")
            return False
        self.result.chap = self.ctx.scrub(str(facts.chap))
        if route is not None and route.seconds is not None:
            self.result.route_timeout = route.seconds
            if route.short:
                self.add(WARN, "route_timeout",
                         f"DHIS2's route {CHAP_ROUTE_CODE!r} waits only {route.seconds:g} s for chap-core "
                         f"(responseTimeoutSeconds, under {ROUTE_TIMEOUT_ADVISED_SECONDS} s): a large submit takes "
                         "longer (5.8 s measured for 700 districts), and DHIS2 then answers 504 although the job is "
                         "made", "raise the route's responseTimeoutSeconds to 60 (docs/operations.md)")
        elif route is not None:
            self.add(INFO, "route_timeout", f"the route's timeout is unknown: {route.why_unknown}")
        if isinstance(facts.setups, Failure):
            self.add(FAIL, "setups", f"chap-core's prediction setups could not be listed: {facts.setups.text}",
                     "check chap-core (GET /v1/crud/prediction-setups through the route)")
            return False
        return True

    # -- one run -------------------------------------------------------------------------------
    def _judge_run(self, run: RunSpec, facts: InstanceFacts) -> RunFacts:
        model_id, setup_id = run.parameter("configured_model_id"), run.parameter("prediction_setup_id")
        facts_run = RunFacts(run.label, run.cron, run.timezone, run.active, "", _selection_text(model_id, setup_id))
        try:
            end = run_end(run)
        except (ConfigError, ValueError, TypeError) as exc:
            self.add(FAIL, "parameters", f"its end parameters are refused: {exc}",
                     "fix `end_mode` and its value in the project (`chapctl validate` says how)")
            return facts_run
        facts_run.end_mode = end.describe()
        selection = selected(run, facts.listed)
        facts_run.left_out = [(item.raw_id, self.ctx.scrub(item.raw_name), reason)
                              for item, reason in selection.reasons()]
        if selection.error:
            fix = ("set `prediction_setup_id` to a setup chap-core lists, or remove it" if setup_id is not None
                   and "prediction_setup_id" in selection.error else
                   "set the project's `model_id` to a configured model a setup uses, or create a prediction setup "
                   "for this model in CHAP (DHIS2 Modeling App)")
            self.add(FAIL, "selection", f"no setup to run: {selection.error}", fix)
            return facts_run
        if not selection.runs:
            skipped = ", ".join(str(item.raw_id) for item in selection.chosen)
            self.add(FAIL, "selection",
                     f"would run no setup: every setup it selects ({_selection_text(model_id, setup_id)}: setup "
                     f"{skipped}) has scheduleEnabled false in chap-core, and the flow skips those; its runs would "
                     "do nothing",
                     "enable the setup's schedule in the DHIS2 Modeling App, or name the setup with "
                     "`prediction_setup_id` (which runs it whatever its schedule)")
            return facts_run
        for item in selection.runs:
            if item.setup is None:
                self.add(FAIL, "setups", f"setup {item.raw_id} ({item.raw_name}) cannot be used: {item.invalid}",
                         "fix the setup in CHAP (or leave it out with `prediction_setup_id`)", item.raw_id)
                continue
            facts_run.setups.append(self._judge_setup(item.setup, run, end, facts))
        return facts_run

    def _judge_setup(self, setup: PredictionSetup, run: RunSpec, end: EndSpec, facts: InstanceFacts) -> SetupRun:
        latest = facts.latest.get(setup.id)
        geometry = facts.geometry.get(setup.id)
        known = latest.latest if isinstance(latest, LatestPeriods) else {}
        facts_setup = SetupRun(
            setup.id, self.ctx.scrub(setup.name), setup.period_type,
            f"{self.ctx.scrub(setup.configured_model.name)} ({setup.configured_model.id})",
            covariates=tuple(Covariate(self.ctx.scrub(s.covariate), self.ctx.scrub(s.data_element_id),
                                       _canonical(known.get(s.data_element_id), setup.period_type))
                             for s in setup.covariate_sources))
        sid = setup.id
        if isinstance(latest, Failure):
            budget = "CHAP_DHIS2_MAX" in latest.text
            self.add(FAIL, "reads" if budget else "covariates",
                     f"setup {sid}: the end-period probe (each covariate's latest period with data) failed: "
                     f"{latest.text}", BUDGET_FIX if budget else "check the setup's data elements and org units in DHIS2",
                     sid)
        end_period = self._end_period(setup, run, end, latest)
        facts_setup = self._geometry(setup, geometry, facts_setup)
        if end_period is None:
            return facts_setup
        facts_setup = _with(facts_setup, end_period=end_period, first_period=periods.canonical(setup.start_period,
                                                                                             setup.period_type)
                            if _parses(setup.start_period, setup.period_type) else setup.start_period)
        try:
            input_periods = periods.period_range(setup.start_period, end_period, setup.period_type)
        except PeriodError as exc:
            self.add(FAIL, "range", f"setup {sid}: {exc}",
                     "move the setup's start period in CHAP (a new backtest), or the project's end period", sid)
            return facts_setup
        facts_setup = _with(facts_setup, periods=len(input_periods))
        data_until = self._covariates_at(setup, end, end_period, latest)
        facts_setup = _with(facts_setup, data_until=data_until)
        try:
            check_history(setup, input_periods[0], data_until)
        except NoDataError as exc:
            self.add(FAIL, "history", f"setup {sid}: {exc}",
                     "start the setup earlier in CHAP (a backtest over more years of data), or end the runs later", sid)
        facts_setup = self._reads(setup, end, input_periods, geometry, facts, facts_setup)
        self._cadence(setup, run, end)
        return facts_setup

    def _end_period(self, setup: PredictionSetup, run: RunSpec, end: EndSpec, latest: Any) -> str | None:
        sid = setup.id
        if end.mode == "calculated":
            if not isinstance(latest, LatestPeriods):
                return None
            try:
                return calculated_end_period(setup, latest.latest)
            except NoDataError as exc:
                self.add(FAIL, "covariates", f"setup {sid}: {exc}",
                         "check the data elements and DHIS2's analytics tables (run them), or the setup's covariate "
                         "sources in CHAP", sid)
                return None
        try:
            return checks.end_period(setup, end, self.ctx.today)
        except PeriodError as exc:
            self.add(FAIL, "end_period", f"setup {sid}: {exc}",
                     "use a setup of a period type the flow supports (month, week, year)", sid)
            return None

    def _covariates_at(self, setup: PredictionSetup, end: EndSpec, end_period: str, latest: Any) -> str:
        """Whether every covariate has data up to the end period; the last period the data sent reaches."""
        if not isinstance(latest, LatestPeriods) or end.mode == "calculated":
            return end_period  # calculated: the earliest covariate's latest period, which all of them reach
        sid, pt = setup.id, setup.period_type
        window = checks.probe_window(setup)
        current = periods.period_containing(self.ctx.today, pt)
        window_first = periods.shift(current, pt, -RELATIVE_PERIODS[window])
        if periods.period_start(end_period, pt) < periods.period_start(window_first, pt):
            self.add(INFO, "covariates", f"setup {sid}: the end period {end_period} is before the probe's window "
                                         f"({window}): the covariates' data there is not checked", setup=sid)
            return end_period
        sources = setup.covariate_sources
        none = [f"{s.covariate} ({s.data_element_id})" for s in sources if s.data_element_id not in latest.latest]
        if none:
            self.add(FAIL, "covariates",
                     f"setup {sid}: DHIS2 has no data within {window} for covariate(s) {', '.join(none)}: a run "
                     f"ending at {end_period} would send no value of it (the flow fails the setup before the submit)",
                     "check the data elements and DHIS2's analytics tables (run them), or the setup's covariate "
                     "sources in CHAP", sid)
            return end_period
        reach = {s.covariate: periods.earliest([periods.canonical(latest.latest[s.data_element_id], pt), end_period], pt)
                 for s in sources}
        top = periods.latest(list(reach.values()), pt)
        for source in sources:
            got = reach[source.covariate]
            if got == top:
                continue
            what = (f"setup {sid}: covariate {source.covariate} ({source.data_element_id}) has data up to {got}, "
                    f"the others up to {top}")
            if source.covariate == TARGET:
                self.add(WARN, "covariates", f"{what}: chap-core trains without the target's last periods (it does "
                                             "not check its target for gaps)",
                         "complete the data in DHIS2 (or run its analytics tables), or end the runs earlier "
                         "(end_mode calculated ends at the last period every covariate reaches)", sid)
            else:
                self.add(FAIL, "covariates", f"{what}: chap-core rejects every org unit with a gap in a covariate "
                                             "(HTTP 400 'missing values' when none is left), so the run fails",
                         "complete the data in DHIS2 (or run its analytics tables), or end the runs earlier "
                         "(end_mode calculated ends at the last period every covariate reaches)", sid)
        if top != end_period:
            self.add(INFO, "covariates", f"setup {sid}: no covariate has data for {end_period} yet; the data sent ends "
                                         f"at {top}", setup=sid)
        return top

    def _geometry(self, setup: PredictionSetup, geometry: Any, facts_setup: SetupRun) -> SetupRun:
        sid = setup.id
        if isinstance(geometry, Failure):
            budget = "CHAP_DHIS2_MAX" in geometry.text
            self.add(FAIL, "reads" if budget else "geometry", f"setup {sid}: its org units could not be read: "
                                                                f"{geometry.text}",
                     BUDGET_FIX if budget else "check the setup's org units in DHIS2 and this user's access to them",
                     sid, per_run=False)
            return facts_setup
        if not isinstance(geometry, OrgUnitGeometry):
            return facts_setup
        with_geometry = {feature["id"] for feature in geometry.geojson["features"]}
        found_without = [ou for ou in dict.fromkeys(setup.org_units)
                         if ou not in with_geometry and ou not in geometry.not_found]
        facts_setup = _with(facts_setup, org_units=len(dict.fromkeys(setup.org_units)),
                            with_geometry=len(with_geometry), without_geometry=tuple(found_without),
                            not_found=tuple(geometry.not_found))
        if geometry.not_found:
            self.add(FAIL, "geometry",
                     f"setup {sid}: DHIS2 does not know org unit(s) {', '.join(geometry.not_found)} (or this user may "
                     "not see them): the forecast would lack them, and the flow ends such a run Failed",
                     "fix the setup's org units in CHAP, or the user's data capture/view org units in DHIS2", sid,
                     per_run=False)
        try:
            check_geometry(setup, geometry.geojson)
        except NoDataError as exc:
            self.add(FAIL, "geometry", f"setup {sid}: {exc}",
                     "add geometries to the org units in DHIS2, or choose other org units in the setup", sid,
                     per_run=False)
            return facts_setup
        if found_without:
            self.add(FAIL, "geometry",
                     f"setup {sid}: org unit(s) {', '.join(found_without)} have no geometry in DHIS2: chap-core leaves "
                     "them out of the forecast without a word, and the flow then ends the run Failed (INCOMPLETE)",
                     "add their geometry in DHIS2 (Maintenance > Organisation units), or remove them from the setup "
                     "in CHAP", sid, per_run=False)
        return facts_setup

    def _reads(self, setup: PredictionSetup, end: EndSpec, input_periods: list[str], geometry: Any,
               facts: InstanceFacts, facts_setup: SetupRun) -> SetupRun:
        """The reads the run needs within the flow's budgets, as the flow plans them, and what it sends."""
        budget = self.ctx.budget
        try:
            probe = (checks.analytics_chunks(setup.data_elements, [checks.probe_window(setup)], setup.org_units,
                                             budget, facts.analytics_line) if end.mode == "calculated" else [])
            data = checks.analytics_chunks(setup.data_elements, input_periods, setup.org_units, budget,
                                           facts.analytics_line)
            units = checks.org_unit_groups(setup.org_units, budget, facts.org_unit_line)
        except ReadPlanError as exc:
            self.add(FAIL, "reads", f"setup {setup.id}: {exc}", BUDGET_FIX, setup.id)
            return facts_setup
        send = sum(_ITEM_BYTES + len(s.covariate) + len(ou) + len(pe)
                   for s in setup.covariate_sources for ou in dict.fromkeys(setup.org_units) for pe in input_periods)
        if isinstance(geometry, OrgUnitGeometry):
            send += len(json.dumps(geometry.geojson, separators=(",", ":"), ensure_ascii=False).encode())
        return _with(facts_setup, reads=len(probe) + len(data) + len(units),
                     records=sum(chunk.records for chunk in data), send_bytes=send)

    def _cadence(self, setup: PredictionSetup, run: RunSpec, end: EndSpec) -> None:
        if not run.cron or end.mode == "fixed":  # a fixed end does not move with the runs
            return
        found = cadence(run.cron, self.ctx.today)
        if found is None or found == setup.period_type:
            return
        word = CADENCE_WORDS[found]
        self.add(WARN, "cadence",
                 f"setup {setup.id} is {setup.period_type}ly (period type {setup.period_type!r}) but "
                 f"{run.label} ({run.cron!r} {run.timezone}) runs {word}: "
                 + (f"most runs would forecast the same {setup.period_type}s again from the same data"
                    if _finer(found, setup.period_type) else
                    f"the {setup.period_type}s in between would get no fresh forecast"),
                 f"make the cron {CADENCE_WORDS.get(setup.period_type, setup.period_type)}, or use a setup of the "
                 "period type the cron runs at", setup.id)

    # -- chap-core's own schedule of the setups --------------------------------------------------
    def _chap_schedule(self, facts: InstanceFacts) -> None:
        items = {item.raw_id: item for item in facts.listed}
        runs_of: dict[Any, list[RunSpec]] = {}
        left_out: dict[Any, str] = {}
        models: set[Any] = set()
        for run in self.target.runs:
            models.add(run.parameter("configured_model_id"))
            selection = selected(run, facts.listed)
            for item in selection.runs:
                runs_of.setdefault(item.raw_id, []).append(run)
            for item, reason in selection.left_out:
                left_out.setdefault(item.raw_id, reason)
        for setup_id, runs in runs_of.items():
            item = items[setup_id]
            if not item.schedule_enabled:
                self.add(WARN, "chap_schedule",
                         f"setup {setup_id} {item.raw_name!r} is disabled in chap-core (scheduleEnabled false, as the "
                         f"DHIS2 Modeling App shows it), yet this project runs it ({_labels(runs)}, by "
                         f"prediction_setup_id={setup_id})",
                         "enable the setup's schedule in the Modeling App if it should run, or stop running it here: "
                         "the two disagree", setup_id)
                continue
            scheduled = [run for run in runs if run.cron]
            if scheduled and item.schedule_cron and not any(
                    _same_cron(run.cron, item.schedule_cron) and _same_zone(run.timezone, facts.chap_time_zone)
                    for run in scheduled):
                ours = ", ".join(f"{run.cron!r} {run.timezone} ({run.label})" for run in scheduled)
                self.add(WARN, "chap_schedule",
                         f"setup {setup_id} {item.raw_name!r} is scheduled in chap-core at {item.schedule_cron!r} "
                         f"{facts.chap_time_zone or '(its server time zone)'} (scheduleCronExpression, from the DHIS2 "
                         f"Modeling App); this project runs it at {ours}",
                         "make the two agree (the Modeling App shows chap-core's as the setup's schedule; chap-core "
                         "itself runs nothing by it)", setup_id)
        running = self.ctx.running.get(facts.base_url, frozenset())
        for item in facts.listed:
            if (item.schedule_enabled and item.model_id in models and item.raw_id not in runs_of
                    and item.raw_id not in running):
                self.add(WARN, "chap_schedule",
                         f"setup {item.raw_id} {item.raw_name!r} (configured model {item.model_id}) is enabled in "
                         f"chap-core ({item.schedule_cron!r}), but no project of this repository runs it; this project "
                         f"runs that model and leaves it out ({left_out.get(item.raw_id, 'not selected')})",
                         f"run it (a project, or a schedule with prediction_setup_id={item.raw_id}), or turn its "
                         "schedule off in the DHIS2 Modeling App", item.raw_id)


def judge(target: Target, facts: InstanceFacts | None, ctx: Context, *, password_missing: bool = False) -> ProjectResult:
    """One project's verdict, findings and facts (pure)."""
    return _Judge(target, facts, ctx).judge(password_missing)


def unattended(facts: InstanceFacts, targets: Iterable[Target], ctx: Context) -> list[str]:
    """Setups enabled in chap-core that no project of the repository runs and none even selects by
    model: not one project's matter, said once per DHIS2 instance."""
    models = {run.parameter("configured_model_id") for t in targets for run in t.runs}
    running = ctx.running.get(facts.base_url, frozenset())
    return [ctx.scrub(f"{facts.base_url}: setup {item.raw_id} {item.raw_name!r} (configured model {item.model_id}) is "
                      f"enabled in chap-core ({item.schedule_cron!r}) and no project of this repository runs it")
            for item in facts.listed
            if item.schedule_enabled and item.raw_id not in running and item.model_id not in models]


# -- helpers --------------------------------------------------------------------------------------
def cadence(cron: str, today: date) -> str | None:
    """How often a cron fires, as a period type (`day` for daily or more often), from the typical gap
    between its next fires after `today` (Prefect's croniter, loaded without Prefect); None when it
    is none of them (every two weeks, say)."""
    from compiler.compile.cron import fires

    it = fires(cron, datetime(today.year, today.month, today.day))
    times = [it.get_next(datetime) for _ in range(13)]
    gaps = sorted((b - a).total_seconds() / 86400 for a, b in zip(times, times[1:]))
    typical = gaps[len(gaps) // 2]
    for name, low, high in (("day", 0.0, 1.5), ("week", 6.0, 8.0), ("month", 27.0, 32.0), ("year", 359.0, 367.0)):
        if low < typical <= high:
            return name
    return None


_ORDER = {"day": 0, "week": 1, "month": 2, "year": 3}


def _finer(cadence_found: str, period_type: str) -> bool:
    return _ORDER.get(cadence_found, 0) < _ORDER.get(period_type, 0)


def _same_cron(a: str | None, b: str | None) -> bool:
    return " ".join(str(a).split()) == " ".join(str(b).split())


def _same_zone(a: str | None, b: str | None) -> bool:
    a, b = a or "UTC", b or "UTC"
    return a == b or (a in _UTC and b in _UTC)


def _labels(runs: list[RunSpec]) -> str:
    return ", ".join(run.label for run in runs)


def _canonical(period: str | None, period_type: str) -> str | None:
    if period is None:
        return None
    try:
        return periods.canonical(period, period_type)
    except PeriodError:
        return period


def _parses(period: str, period_type: str) -> bool:
    try:
        periods.period_start(period, period_type)
        return True
    except PeriodError:
        return False


def _with(facts_setup: SetupRun, **changes: Any) -> SetupRun:
    from dataclasses import replace

    return replace(facts_setup, **changes)
