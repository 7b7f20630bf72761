"""The run report: what a run found and did, and its markdown rendering (pure, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flows import periods
from flows.api import Rejection
from flows.dhis2_reads import ReadStats
from flows.periods import PeriodError
from flows.setups import SetupItem

SUCCEEDED, INCOMPLETE, FAILED, SKIPPED = "succeeded", "incomplete", "failed", "skipped"
_INLINE_LIMIT = 200
# Below this the report warns about the chap route's timeout. chap-core answers a submit only once
# it has checked the whole body: measured 5.8 s for 700 districts x 110 weeks x 3 covariates (a
# 23 MB body) on a busy 2-core host -- past DHIS2's default 5 s, which then answers 504 although
# the job is made. 30 s leaves room for a bigger or busier case; DHIS2 allows up to 60.
ROUTE_TIMEOUT_ADVISED_SECONDS = 30


@dataclass
class ServiceCheck:
    reachable: bool
    text: str  # "DHIS2 2.41.2 (Demo HMIS)" when reachable, else the error
    status: int | None = None  # the HTTP status of the failed check, if it got one

    @property
    def auth_failed(self) -> bool:
        """The service answered but refused the login: a credentials problem, not an outage."""
        return not self.reachable and self.status in (401, 403)


@dataclass(frozen=True)
class LimitCheck:
    """The CHAP concurrency limit as the run found it (only when `chap_concurrency_limit` is set)."""

    name: str
    usable: bool
    word: str  # READY, INACTIVE, MISSING or NOT USABLE
    text: str  # for a usable limit its size; otherwise the problem, naming the limit


@dataclass(frozen=True)
class RouteCheck:
    """The `responseTimeoutSeconds` of DHIS2's `chap` route, as far as the user may read it."""

    seconds: float | None  # None: unknown
    why_unknown: str = ""

    @property
    def short(self) -> bool:
        return self.seconds is not None and self.seconds < ROUTE_TIMEOUT_ADVISED_SECONDS

    @property
    def text(self) -> str:
        if self.seconds is None:
            return f"unknown -- {code(self.why_unknown)}"
        text = f"{self.seconds:g} s (`responseTimeoutSeconds` of the DHIS2 route `chap`)"
        if self.short:
            text += (f" -- **WARNING:** under {ROUTE_TIMEOUT_ADVISED_SECONDS} s. chap-core answers a submit only after "
                     "checking its whole body (measured: 5.8 s for 700 districts, 110 weeks, 3 covariates), and when "
                     "it is slower than this DHIS2 answers 504 although the job is made. Raise the route's "
                     "responseTimeoutSeconds to 60 (see docs/operations.md)")
        return text


@dataclass
class SetupOutcome:
    """What happened to one setup; optional facts are filled in as its steps succeed."""

    setup_id: Any
    name: str
    model_name: str
    model_id: Any
    period_type: str | None = None
    status: str = SUCCEEDED
    step: str | None = None
    error: str | None = None
    rejections: list[Rejection] = field(default_factory=list)
    skip_reason: str | None = None
    end_period: str | None = None
    input_periods: list[str] = field(default_factory=list)
    analytics_rows: int | None = None
    observations: int | None = None
    org_units: int | None = None
    org_units_with_geometry: int | None = None
    org_units_not_found: list[str] = field(default_factory=list)
    org_units_sent: list[str] = field(default_factory=list)  # with at least one value in the request
    org_units_without_geometry: list[str] = field(default_factory=list)  # sent, but chap-core drops them
    org_units_predicted: list[str] | None = None  # in the forecast chap-core stored
    job_id: str | None = None
    submit_note: str | None = None  # how a submit whose answer was lost was recovered
    prediction_id: int | None = None
    prediction_values: int | None = None
    predicted_periods: list[str] = field(default_factory=list)
    prediction_note: str | None = None  # what of the forecast DHIS2's route could not pass on
    slot_limit: str | None = None  # the CHAP concurrency limit whose slot the setup held
    slot_wait: float | None = None  # seconds it waited for that slot
    reads: ReadStats | None = None  # what its DHIS2 reads took (end-period probe, data, org units)

    @classmethod
    def for_item(cls, item: SetupItem) -> SetupOutcome:
        setup = item.setup
        return cls(setup_id=item.raw_id, name=item.raw_name, model_name=item.model_name,
                   model_id=item.model_id, period_type=setup.period_type if setup else None)

    def fail(self, step: str, error: str, rejections: list[Rejection] | None = None) -> SetupOutcome:
        self.status, self.step, self.error = FAILED, step, error
        self.rejections = rejections or []
        return self

    @property
    def org_units_lost(self) -> list[str]:
        """Org units sent to chap-core that its forecast does not cover (dropped silently by chap-core:
        no geometry, or rejected for missing values while other org units were kept)."""
        if self.org_units_predicted is None:
            return []
        predicted = set(self.org_units_predicted)
        return [ou for ou in self.org_units_sent if ou not in predicted]

    def settle(self) -> SetupOutcome:
        """After a successful prediction: incomplete when the forecast lost org units."""
        if self.org_units_lost:
            self.status = INCOMPLETE
        return self

    def skip(self, reason: str) -> SetupOutcome:
        self.status, self.skip_reason = SKIPPED, reason
        return self


@dataclass
class RunReport:
    project: str
    key: str
    dhis2_url: str
    started: datetime
    end_mode: str = ""
    today: str = ""
    selection: str = ""
    finished: datetime | None = None
    config_error: str | None = None
    dhis2: ServiceCheck | None = None
    chap: ServiceCheck | None = None
    chap_limit: LimitCheck | None = None
    chap_route: RouteCheck | None = None
    listing_error: str | None = None
    selection_error: str | None = None
    internal_error: str | None = None
    outcomes: list[SetupOutcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for outcome in self.outcomes if outcome.status == status)

    def _run_problem(self) -> str | None:
        """What stopped the run as a whole, if anything did."""
        checks = [
            (self.config_error, "invalid parameters or settings"),
            (self.dhis2 and self.dhis2.auth_failed,
             f"DHIS2 authentication failed (HTTP {self.dhis2.status if self.dhis2 else ''}): check the "
             "username and password of the credentials block"),
            (self.dhis2 and not self.dhis2.reachable, "DHIS2 is not reachable"),
            (self.chap and not self.chap.reachable, "chap-core is not reachable"),
            (self.chap_limit and not self.chap_limit.usable, self.chap_limit.text if self.chap_limit else ""),
            (self.listing_error, f"could not list prediction setups: {self.listing_error}"),
            (self.selection_error, f"no prediction setup selected: {self.selection_error}"),
            (self.internal_error, "the flow itself failed"),
        ]
        return next((text for problem, text in checks if problem), None)

    @property
    def failed(self) -> bool:
        """True when operators should be alerted: anything failed or nothing could be done."""
        return self._run_problem() is not None or self.count(FAILED) + self.count(INCOMPLETE) > 0

    @property
    def headline(self) -> str:
        problem = self._run_problem()
        if problem:
            return f"FAILED -- {problem}"
        ran = self.count(SUCCEEDED) + self.count(INCOMPLETE) + self.count(FAILED)
        skipped = f", {self.count(SKIPPED)} skipped" if self.count(SKIPPED) else ""
        incomplete = self.count(INCOMPLETE)
        if self.count(FAILED):
            also = f", {incomplete} incomplete" if incomplete else ""
            return f"FAILED -- {self.count(FAILED)} of {ran} prediction setups failed{also}{skipped}"
        if incomplete:
            # A forecast that silently lost org units is not a success: the run ends Failed.
            return (f"FAILED -- {incomplete} of {ran} prediction setups incomplete: org units missing from "
                    f"the forecast{skipped}")
        if ran == 0:
            return "NOTHING RUN -- every selected prediction setup is disabled in CHAP (scheduleEnabled=false)"
        return f"SUCCEEDED -- {ran} of {ran} prediction setups succeeded{skipped}"

    def summary(self) -> dict[str, Any]:
        """A JSON-friendly digest, returned as the flow run's result."""
        return {
            "result": self.headline,
            "report_key": self.key,
            **({"chap_route_timeout_seconds": self.chap_route.seconds} if self.chap_route else {}),
            "setups": [
                {"id": o.setup_id, "name": o.name, "status": o.status, "step": o.step, "error": o.error,
                 "end_period": o.end_period, "job_id": o.job_id, "prediction_id": o.prediction_id,
                 "prediction_values": o.prediction_values, "org_units_sent": len(o.org_units_sent),
                 "org_units_predicted": None if o.org_units_predicted is None else len(o.org_units_predicted),
                 "org_units_lost": o.org_units_lost,
                 **({"submit": o.submit_note} if o.submit_note else {}),
                 **({"prediction_entries": o.prediction_note} if o.prediction_note else {}),
                 **({"dhis2_reads": {"reads": o.reads.reads, "refused": o.reads.refused, "records": o.reads.records,
                                     "bytes": o.reads.bytes}} if o.reads is not None else {}),
                 **({"chap_slot_wait_seconds": round(o.slot_wait, 1)} if o.slot_wait is not None else {})}
                for o in self.outcomes
            ],
        }


# ---------------------------------------------------------------- rendering


def code(text: str) -> str:
    """Inline code that survives backticks in the text."""
    text = " ".join(str(text).split())
    fence = "``" if "`" in text else "`"
    pad = " " if fence == "``" else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _error_lines(label: str, error: str) -> list[str]:
    if len(error) <= _INLINE_LIMIT and "\n" not in error:
        return [f"- **{label}:** {code(error)}"]
    return [f"- **{label}:**", "", "```", error.replace("```", "'''"), "```", ""]


def _sort_periods(ids: set[str] | list[str], period_type: str | None) -> list[str]:
    def key(pid: str) -> tuple[int, Any]:
        try:
            return (0, periods.period_start(pid, period_type or ""))
        except (PeriodError, KeyError):
            return (1, pid)
    return sorted(set(ids), key=key)


def period_list(ids: list[str], limit: int) -> str:
    if len(ids) <= limit:
        return ", ".join(ids)
    return f"{ids[0]}..{ids[-1]} ({len(ids)} periods)"


def _rejection_lines(outcome: SetupOutcome) -> list[str]:
    by_feature: dict[str, list[Rejection]] = {}
    for rejection in outcome.rejections:
        by_feature.setdefault(rejection.feature, []).append(rejection)
    lines = ["- **Rejected for missing values:**"]
    for feature, items in sorted(by_feature.items()):
        units = len({item.org_unit for item in items})
        span = period_list(_sort_periods({p for item in items for p in item.periods}, outcome.period_type), 4)
        reasons = "; ".join(dict.fromkeys(item.reason for item in items if item.reason))
        lines.append(f"  - {code(feature)}: {units} org unit{'s' if units != 1 else ''}, "
                     f"periods {span or 'none listed'}" + (f" -- {reasons}" if reasons else ""))
    return lines


def _fact_lines(o: SetupOutcome) -> list[str]:
    facts: list[tuple[str, Any]] = [
        ("End period", o.end_period),
        ("Input periods", period_list(o.input_periods, 4) if o.input_periods else None),
        ("Analytics rows fetched", f"{o.analytics_rows:,}" if o.analytics_rows is not None else None),
        ("Values sent to chap", f"{o.observations:,}" if o.observations is not None else None),
        ("DHIS2 reads", _reads_text(o.reads)),
        ("Org units", _org_unit_text(o)),
        ("Waited for CHAP slot", _slot_wait_text(o)),
        ("Submit", o.submit_note),
        ("Job", code(o.job_id) if o.job_id else None),
        ("Prediction", o.prediction_id),
        ("Prediction values returned", f"{o.prediction_values:,}" if o.prediction_values is not None else None),
        ("Predicted periods", period_list(o.predicted_periods, 6) if o.predicted_periods else None),
        ("Prediction entries", o.prediction_note),
    ]
    return [f"- **{label}:** {value}" for label, value in facts if value is not None]


def _reads_text(reads: ReadStats | None) -> str | None:
    """`14 reads (0 refused and halved), 319,200 analytics records, 12.3 MB`."""
    if reads is None or not reads.reads + reads.refused:
        return None
    size = f"{reads.bytes / 1e6:.1f} MB" if reads.bytes >= 1e5 else f"{reads.bytes / 1e3:.1f} kB"
    return (f"{reads.reads:,} reads ({reads.refused} refused and halved), {reads.records:,} records, "
            f"{size}")


def _slot_wait_text(o: SetupOutcome) -> str | None:
    """Shown only when the setup really waited (a second or more) for a slot of the CHAP limit."""
    if o.slot_wait is None or o.slot_wait < 1:
        return None
    return f"{o.slot_wait:.0f} s (limit {code(o.slot_limit or '?')})"


def _org_unit_text(o: SetupOutcome) -> str | None:
    """`3 in the setup; sent 3 (2 with geometry); predicted 2; missing from the forecast: ouX (no
    geometry in DHIS2)` -- counts of what was sent, rejected and predicted."""
    if o.org_units is None:
        return None
    parts = [f"{o.org_units} in the setup"]
    if o.org_units_not_found:
        parts.append("not found in DHIS2: " + ", ".join(o.org_units_not_found))
    if o.org_units_sent:
        parts.append(f"sent {len(o.org_units_sent)} ({o.org_units_with_geometry} with geometry)")
    else:
        parts.append(f"{o.org_units_with_geometry} with geometry")
    if o.org_units_predicted is not None:
        parts.append(f"predicted {len(o.org_units_predicted)}")
    if o.org_units_lost:
        no_geometry = set(o.org_units_without_geometry)
        rejected = [ou for ou in o.org_units_lost if ou not in no_geometry]
        why = [f"{ou} (no geometry in DHIS2)" for ou in o.org_units_lost if ou in no_geometry]
        why += [f"{ou} (rejected by chap-core: incomplete covariates)" for ou in rejected]
        parts.append(f"rejected {len(rejected)}; missing from the forecast: " + ", ".join(why))
    return "; ".join(parts)


def _outcome_lines(o: SetupOutcome) -> list[str]:
    lines = [f"### {code(o.name)} -- {o.model_name}", ""]
    if o.status == SKIPPED:
        lines.append(f"- **Status:** SKIPPED -- {o.skip_reason}")
    elif o.status == FAILED:
        lines.append(f"- **Status:** FAILED at {code(o.step or '?')}")
    elif o.status == INCOMPLETE:
        lines.append(f"- **Status:** INCOMPLETE -- the forecast covers {len(o.org_units_predicted or [])} of the "
                     f"{len(o.org_units_sent)} org units sent")
    else:
        lines.append("- **Status:** SUCCEEDED")
    type_text = f"{o.period_type}, " if o.period_type else ""
    lines.append(f"- **Setup:** {o.setup_id} ({type_text}configured model {o.model_id})")
    if o.error:
        lines += _error_lines("Error", o.error)
    if o.rejections:
        lines += _rejection_lines(o)
    return lines + _fact_lines(o) + [""]


def _duration(report: RunReport) -> str:
    seconds = int(((report.finished or report.started) - report.started).total_seconds())
    return f"{seconds // 60}m {seconds % 60:02d}s"


def _header_lines(report: RunReport) -> list[str]:
    lines = [
        "# CHAP prediction run report",
        "",
        f"- **Result:** {report.headline}",
        f"- **Project:** {report.project}",
        f"- **DHIS2:** {report.dhis2_url}",
        f"- **Started:** {report.started.isoformat(timespec='seconds')}",
        f"- **Duration:** {_duration(report)}",
    ]
    for label, value in (("End mode", report.end_mode), ("Today", report.today), ("Selection", report.selection)):
        if value:
            lines.append(f"- **{label}:** {value}")
    return lines + [""]


def _service_lines(title: str, check: ServiceCheck) -> list[str]:
    if check.reachable:
        return [f"## {title}", "", f"**REACHABLE** -- {check.text}", ""]
    if check.auth_failed:
        return [f"## {title}", "", f"**AUTHENTICATION FAILED** -- {code(check.text)}", ""]
    return [f"## {title}", "", f"**NOT REACHABLE** -- {code(check.text)}", ""]


def _body_lines(report: RunReport) -> list[str]:
    # Sections stop at the first thing that prevented the rest of the run.
    if report.config_error:
        return ["## Parameters", "", f"**INVALID** -- {code(report.config_error)}", ""]
    lines: list[str] = []
    for title, check in (("DHIS2", report.dhis2), ("chap-core", report.chap)):
        if check is None:
            return lines
        lines += _service_lines(title, check)
        if not check.reachable:
            return lines
    if report.chap_route:
        lines += [f"- **DHIS2 route timeout:** {report.chap_route.text}", ""]
    if report.chap_limit:
        limit = report.chap_limit
        text = f"{code(limit.name)}: {limit.text}" if limit.usable else limit.text  # the text names the limit
        lines += ["## CHAP concurrency limit", "", f"**{limit.word}** -- {text}", ""]
        if not limit.usable:
            return lines
    if report.listing_error:
        return lines + ["## Prediction setups", "",
                        f"Could not list prediction setups: {code(report.listing_error)}", ""]
    if report.selection_error:
        return lines + ["## Prediction setups", "", f"**NOTHING SELECTED** -- {code(report.selection_error)}", ""]
    incomplete = f"{report.count(INCOMPLETE)} incomplete, " if report.count(INCOMPLETE) else ""
    counts = (f"{report.count(SUCCEEDED)} succeeded, {incomplete}{report.count(FAILED)} failed, "
              f"{report.count(SKIPPED)} skipped")
    lines += [f"## Prediction setups ({counts})", ""]
    for outcome in report.outcomes:
        lines += _outcome_lines(outcome)
    return lines


def render(report: RunReport) -> str:
    lines = _header_lines(report) + _body_lines(report)
    if report.internal_error:
        lines += ["## Flow error", ""] + _error_lines("Error", report.internal_error)
    return "\n".join(lines).rstrip() + "\n"
