"""What one flow run works with: checked parameters plus settings read from the environment.

Environment variables (all optional):
- `CHAP_TODAY=YYYY-MM-DD` — the date the run treats as today (default: the worker's local date).
  Lets tests and back-fills pin "today" without changing the deployment's parameters.
- `CHAP_SCHEDULER_PREDICTION_TIMEOUT_SECONDS` — how long to wait for a CHAP job (default 3600).
- `CHAP_SCHEDULER_POLL_INTERVAL_SECONDS` — pause between job status checks (default 5).
- `CHAP_SLOT_TIMEOUT_SECONDS` — with `chap_concurrency_limit`, how long one setup waits for a slot
  of that limit before it fails without submitting anything (default: the prediction timeout).
- `CHAP_SUBMIT_LOOKUP_SECONDS` — after a submit whose answer was lost (a 502/504 or a broken
  connection), how long to look for its job by name before giving up on it (default 120).
- `CHAP_DHIS2_MAX_RECORDS` — the most analytics records one DHIS2 read may answer (default 25,000;
  DHIS2 refuses more than 50,000 by default).
- `CHAP_DHIS2_MAX_REQUEST_LINE` — the longest request line one DHIS2 read may send, in bytes
  (default 6,000; a proxy such as nginx refuses more than 8 KB by default).
- `CHAP_DHIS2_CONCURRENT_READS` — how many DHIS2 reads of one setup run at once (default 4).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Mapping

from flows.dhis2_reads import DEFAULT_CONCURRENCY, DEFAULT_MAX_RECORDS, DEFAULT_MAX_REQUEST_LINE, ReadBudget

TODAY_ENV = "CHAP_TODAY"
TIMEOUT_ENV = "CHAP_SCHEDULER_PREDICTION_TIMEOUT_SECONDS"
POLL_INTERVAL_ENV = "CHAP_SCHEDULER_POLL_INTERVAL_SECONDS"
SLOT_TIMEOUT_ENV = "CHAP_SLOT_TIMEOUT_SECONDS"
SUBMIT_LOOKUP_ENV = "CHAP_SUBMIT_LOOKUP_SECONDS"
MAX_RECORDS_ENV = "CHAP_DHIS2_MAX_RECORDS"
MAX_REQUEST_LINE_ENV = "CHAP_DHIS2_MAX_REQUEST_LINE"
CONCURRENT_READS_ENV = "CHAP_DHIS2_CONCURRENT_READS"
DEFAULT_TIMEOUT_SECONDS = 3600.0
DEFAULT_POLL_INTERVAL_SECONDS = 5.0
# chap-core makes a job at the end of its `/run` handler, which for a national-scale body may end
# well after DHIS2's route gave up (at most 60 s): look for that long, and then some.
DEFAULT_SUBMIT_LOOKUP_SECONDS = 120.0

REPORT_KEY_PREFIX = "chap-report"


class ConfigError(ValueError):
    """A parameter or environment setting the run cannot work with."""


@dataclass(frozen=True)
class EndSpec:
    """How to find each setup's end period."""

    mode: str
    end_date: date | None = None
    offset: int | None = None

    def describe(self) -> str:
        if self.mode == "fixed":
            return f"fixed (end_date={self.end_date.isoformat()})"
        if self.mode == "offset":
            return f"offset (end_period_offset={self.offset})"
        return "calculated (latest period with data for every covariate)"


@dataclass(frozen=True)
class RunSettings:
    today: date
    today_from_env: bool
    job_timeout: float
    poll_interval: float
    slot_timeout: float  # how long a setup waits for a slot of the CHAP concurrency limit
    submit_lookup: float = DEFAULT_SUBMIT_LOOKUP_SECONDS  # how long to look for a job whose submit lost its answer
    run_token: str = ""  # makes this run's prediction names unique (the start of the flow run's id)
    reads: ReadBudget = ReadBudget()  # how big and how many DHIS2 reads may be


def check_end(mode: str, end_date: date | None, offset: int | None) -> EndSpec:
    """Each mode takes exactly its own value; a stray value is refused rather than ignored,
    so a run never silently uses a different end period than the operator wrote down."""
    if mode == "fixed" and end_date is None:
        raise ConfigError("end_mode='fixed' needs end_date (an ISO date such as 2026-06-30)")
    if mode == "offset" and offset is None:
        raise ConfigError("end_mode='offset' needs end_period_offset (0 = the current period)")
    if offset is not None and offset < 0:
        raise ConfigError(f"end_period_offset must be >= 0, got {offset}")
    if mode != "fixed" and end_date is not None:
        raise ConfigError(f"end_date is only used with end_mode='fixed', not {mode!r}; remove it or change end_mode")
    if mode != "offset" and offset is not None:
        raise ConfigError(f"end_period_offset is only used with end_mode='offset', not {mode!r}; "
                          "remove it or change end_mode")
    if mode not in ("calculated", "fixed", "offset"):
        raise ConfigError(f"end_mode must be calculated, fixed or offset, got {mode!r}")
    return EndSpec(mode=mode, end_date=end_date, offset=offset)


def check_limit_name(name: str | None) -> str | None:
    """The CHAP concurrency limit's name as given; a blank name is refused rather than read as
    "no limit", so a typo in a deployment never silently turns the protection off."""
    if name is not None and not name.strip():
        raise ConfigError(f"chap_concurrency_limit must be the name of a Prefect global concurrency limit, "
                          f"got {name!r}; leave it out for no limit")
    return name


def _seconds(environ: Mapping[str, str], name: str, default: float) -> float:
    text = environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, got {text!r}") from None
    if not value > 0:
        raise ConfigError(f"{name} must be more than 0 seconds, got {text!r}")
    return value


def _count(environ: Mapping[str, str], name: str, default: int, lowest: int, highest: int, unit: str) -> int:
    text = environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise ConfigError(f"{name} must be a whole number of {unit}, got {text!r}") from None
    if not lowest <= value <= highest:
        raise ConfigError(f"{name} must be from {lowest:,} to {highest:,} {unit}, got {text!r}")
    return value


def read_budget(environ: Mapping[str, str]) -> ReadBudget:
    return ReadBudget(
        max_records=_count(environ, MAX_RECORDS_ENV, DEFAULT_MAX_RECORDS, 100, 10_000_000, "records"),
        max_request_line=_count(environ, MAX_REQUEST_LINE_ENV, DEFAULT_MAX_REQUEST_LINE, 1024, 1_000_000, "bytes"),
        concurrency=_count(environ, CONCURRENT_READS_ENV, DEFAULT_CONCURRENCY, 1, 32, "reads"),
    )


def read_settings(environ: Mapping[str, str], clock_today: date) -> RunSettings:
    text = environ.get(TODAY_ENV, "").strip()
    today = clock_today
    if text:
        try:
            today = date.fromisoformat(text)
        except ValueError:
            raise ConfigError(f"{TODAY_ENV} must be a date like 2026-03-10, got {text!r}") from None
    job_timeout = _seconds(environ, TIMEOUT_ENV, DEFAULT_TIMEOUT_SECONDS)
    return RunSettings(
        today=today,
        today_from_env=bool(text),
        job_timeout=job_timeout,
        poll_interval=_seconds(environ, POLL_INTERVAL_ENV, DEFAULT_POLL_INTERVAL_SECONDS),
        slot_timeout=_seconds(environ, SLOT_TIMEOUT_ENV, job_timeout),
        submit_lookup=_seconds(environ, SUBMIT_LOOKUP_ENV, DEFAULT_SUBMIT_LOOKUP_SECONDS),
        reads=read_budget(environ),
    )


def _slug(name: str | None) -> str:
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9]", "-", (name or "").lower())).strip("-")[:100].strip("-")


def report_key(deployment_name: str | None, credentials_name: str | None) -> str:
    """Artifact key for the run report, one per project so projects never overwrite each other.

    The deployment name is the project name in chapctl; a run started outside a deployment falls
    back to the credentials block's name (one per DHIS2 instance), then to the bare prefix.
    Prefect allows only lowercase letters, digits and dashes in keys.
    """
    for name in (deployment_name, credentials_name):
        slug = _slug(name)
        if slug:
            return f"{REPORT_KEY_PREFIX}-{slug}"
    return REPORT_KEY_PREFIX
