"""The value objects of `chapctl preflight`: what each project's checks found (`Finding`s, with a
level, a cause and its fix), the facts behind them (per run and setup: end period, covariates,
org units, reads), the verdict per project and the report with its exit code. Pure data, JSON-able;
no secret ever enters them (texts from servers are scrubbed before they get here).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

FAIL, WARN, INFO = "fail", "warn", "info"
OK = "ok"
VERDICTS = (OK, WARN, FAIL)
EXIT_OK, EXIT_WOULD_FAIL = 0, 3

# What each finding is about (its `check`), in the order a run meets them.
CHECKS = (
    "not_checked",    # the project's credentials block is managed outside chapctl
    "credentials",    # the password variable, DHIS2's verdict on the login
    "dhis2",          # DHIS2 reachable
    "route",          # the `chap` route exists and may be run
    "chap",           # chap-core reachable through it
    "route_timeout",  # the route's responseTimeoutSeconds
    "setups",         # chap-core's prediction setups listed and readable
    "parameters",     # the run's end mode and values
    "selection",      # which setups a run works on, and a run that works on none
    "end_period",     # the end period each run picks
    "range",          # start..end within the flow's 120-period cap
    "covariates",     # every covariate's latest period with data
    "history",        # the two whole years chap-core trains on
    "geometry",       # org units found, with and without geometry
    "reads",          # the reads within the flow's budgets; what is sent
    "cadence",        # the setup's period type against the schedule's cadence
    "chap_schedule",  # chap-core's scheduleEnabled/scheduleCronExpression against the project
)


@dataclass(frozen=True)
class Finding:
    level: str  # FAIL, WARN or INFO
    check: str  # one of CHECKS
    text: str  # the cause, in words
    fix: str = ""  # what to do about it
    setup: Any = None  # the prediction setup it is about, if any
    run: str | None = None  # the run it is about ("schedule weekly", "when triggered"), if only one

    def to_json(self) -> dict[str, Any]:
        return {"level": self.level, "check": self.check, "text": self.text, "fix": self.fix, "setup": self.setup,
                "run": self.run}


@dataclass(frozen=True)
class Covariate:
    covariate: str
    data_element: str
    latest: str | None  # the latest period with data in the probe window (None: none there)


@dataclass(frozen=True)
class SetupRun:
    """One setup as one of the project's runs would work on it."""

    setup: Any
    name: str
    period_type: str
    model: str  # "chapkit-ewars-model (12)"
    end_period: str | None = None
    first_period: str | None = None
    periods: int | None = None
    data_until: str | None = None  # the last period the data sent reaches (the end period, or earlier)
    covariates: tuple[Covariate, ...] = ()
    org_units: int | None = None
    with_geometry: int | None = None
    without_geometry: tuple[str, ...] = ()
    not_found: tuple[str, ...] = ()
    reads: int | None = None  # DHIS2 reads the run needs: end-period probe, data, org units
    records: int | None = None  # at most this many analytics records (every cell with a value)
    send_bytes: int | None = None  # about this many bytes of request body to chap-core

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.setup, "name": self.name, "period_type": self.period_type, "model": self.model,
            "end_period": self.end_period, "first_period": self.first_period, "periods": self.periods,
            "data_until": self.data_until,
            "covariates": [{"covariate": c.covariate, "data_element": c.data_element, "latest": c.latest}
                           for c in self.covariates],
            "org_units": {"total": self.org_units, "with_geometry": self.with_geometry,
                          "without_geometry": list(self.without_geometry), "not_found": list(self.not_found)},
            "reads": {"reads": self.reads, "records": self.records, "send_bytes": self.send_bytes},
        }


@dataclass
class RunFacts:
    """One way the project runs: a schedule (with its overrides) or, without one, when triggered."""

    label: str  # "schedule weekly" / "when triggered"
    cron: str | None
    timezone: str | None
    active: bool
    end_mode: str  # as the flow's report says it: "offset (end_period_offset=1)"
    selection: str  # "configured_model_id=12" / "prediction_setup_id=3" / "every setup with ..."
    setups: list[SetupRun] = field(default_factory=list)
    left_out: list[tuple[Any, str, str]] = field(default_factory=list)  # (setup id, name, why)

    def to_json(self) -> dict[str, Any]:
        return {"run": self.label, "cron": self.cron, "timezone": self.timezone, "active": self.active,
                "end_mode": self.end_mode, "selection": self.selection,
                "setups": [s.to_json() for s in self.setups],
                "left_out": [{"id": i, "name": n, "reason": r} for i, n, r in self.left_out]}


@dataclass
class ProjectResult:
    name: str
    block: str
    dhis2_url: str | None = None  # the block's base_url (never with credentials)
    dhis2: str | None = None  # "DHIS2 2.41.2 (Demo HMIS)" once it answered
    chap: str | None = None  # "chap-core 2.5.1 (python 3.13.1)" once it answered through the route
    route_timeout: float | None = None  # the route's responseTimeoutSeconds, when readable
    runs: list[RunFacts] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    def add(self, finding: Finding) -> None:
        if finding not in self.findings:  # the same cause met by two runs is one cause
            self.findings.append(finding)

    @property
    def verdict(self) -> str:
        levels = {f.level for f in self.findings}
        return FAIL if FAIL in levels else WARN if WARN in levels else OK

    @property
    def causes(self) -> list[Finding]:
        """The fails first, then the warnings: what makes the verdict."""
        return [f for f in self.findings if f.level == FAIL] + [f for f in self.findings if f.level == WARN]

    @property
    def notes(self) -> list[Finding]:
        return [f for f in self.findings if f.level == INFO]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "verdict": self.verdict, "block": self.block, "dhis2_url": self.dhis2_url,
            "dhis2": self.dhis2, "chap": self.chap, "route_timeout_seconds": self.route_timeout,
            "causes": [f.to_json() for f in self.causes], "notes": [f.to_json() for f in self.notes],
            "runs": [r.to_json() for r in self.runs],
        }


@dataclass
class PreflightReport:
    today: date  # the day each end period is computed for (CHAP_TODAY, else the local date)
    budget: dict[str, int]  # the read budgets the plan used (CHAP_DHIS2_MAX_RECORDS, ...)
    projects: list[ProjectResult]
    strict: bool = False  # warnings count as failures
    notes: list[str] = field(default_factory=list)  # about instances, not one project

    def counts(self) -> dict[str, int]:
        counts = {verdict: 0 for verdict in VERDICTS}
        for p in self.projects:
            counts[p.verdict] += 1
        return counts

    @property
    def failing(self) -> list[ProjectResult]:
        """The projects that make the exit code 3: every fail, and with --strict every warning."""
        bad = (FAIL, WARN) if self.strict else (FAIL,)
        return [p for p in self.projects if p.verdict in bad]

    @property
    def exit_code(self) -> int:
        return EXIT_WOULD_FAIL if self.failing else EXIT_OK

    def to_json(self) -> dict[str, Any]:
        return {
            "today": self.today.isoformat(),
            "budget": dict(self.budget),
            "strict": self.strict,
            "summary": {"projects": len(self.projects), **self.counts(), "exit_code": self.exit_code},
            "projects": [p.to_json() for p in self.projects],
            "notes": list(self.notes),
        }
