"""`chapctl preflight`: before a project's first scheduled run, prove that its DHIS2 and CHAP can give
a forecast — by reading only. Nothing is submitted to CHAP, nothing is written to DHIS2 or Prefect,
and Prefect is neither imported nor asked anything.

    report = preflight(root, PreflightOptions(projects=("laos-malaria",)), os.environ)

`preflight(root, options, env)` is the one entry point; it returns a `model.PreflightReport` that
`compiler.output.preflight` renders as text, JSON or Markdown. The steps:

1. `targets.read_targets`: the committed artifacts (prefect.yaml, blocks/) as apply reads them;
   per project its credentials (the password only as the name of its variable) and its runs.
2. The passwords, from the environment and `CHAPCTL_SECRETS` (`reconcile.secrets`, as apply): a
   missing variable is that project's failure, naming it.
3. `instance.read_services` / `read_setups`, once per DHIS2 login (projects sharing one share the
   reads), a few logins at a time (`PreflightOptions.parallel`); one that does not answer fails its
   projects only. Only GETs, each within the flow's read budgets (`CHAP_DHIS2_*`, read here as the
   workers read them); "today" is `CHAP_TODAY` or the local date, as in the flow.
4. `judge.judge` per project (pure): the flow's own rules, from the same code (`flows.checks`,
   `flows.setups`, `flows.prediction_request`, `flows.periods`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from compiler.errors import UserError
from compiler.preflight.instance import Failure, InstanceFacts, read_services, read_setups
from compiler.preflight.judge import Context, judge, setups_run, unattended
from compiler.preflight.model import PreflightReport
from compiler.preflight.targets import Target, read_targets

DEFAULT_PARALLEL = 4


@dataclass(frozen=True)
class PreflightOptions:
    projects: tuple[str, ...] = ()  # only these projects (default: every one)
    strict: bool = False  # a warning fails too (exit 3)
    parallel: int = DEFAULT_PARALLEL  # DHIS2 logins read at once
    today: date | None = None  # the day end periods are computed for; default CHAP_TODAY, else the local date
    environment: str | None = None  # --env: the projects as that environment applies them


def preflight(root: Path, options: PreflightOptions | None = None,
              env: Mapping[str, str] | None = None) -> PreflightReport:
    """Check every project (or `options.projects`) of the repository at `root`; see the module docstring."""
    from compiler.reconcile.client import secret_forms
    from compiler.reconcile.secrets import with_secrets
    from flows.run_config import ConfigError, read_settings

    options = options or PreflightOptions()
    env = with_secrets(os.environ if env is None else env)
    try:
        settings = read_settings(env, date.today())
    except ConfigError as exc:
        raise UserError(f"preflight reads the flow's settings from the environment, as a worker does: {exc}") from None
    today = options.today or settings.today
    targets = read_targets(root, options.environment)
    names = [t.name for t in targets]
    unknown = sorted(set(options.projects) - set(names))
    if unknown:
        raise UserError(f"no project named {', '.join(unknown)} (the compiled projects: {', '.join(names) or 'none'})")
    chosen = [t for t in targets if not options.projects or t.name in options.projects]

    secrets: set[str] = set()
    missing: set[str] = set()
    logins: dict[tuple[str, str, str], tuple[str, list[Target]]] = {}
    for target in chosen:
        creds = target.credentials
        if not creds.managed:
            continue
        password = creds.password.read(env)
        if password is None:
            missing.add(target.name)
            continue
        secrets |= secret_forms(f"{creds.username}:{password}")  # and the password alone (secret_forms)
        logins.setdefault(creds.login, (password, []))[1].append(target)

    def scrub(text: str) -> str:
        for secret in sorted(secrets, key=len, reverse=True):  # the longest form first
            text = text.replace(secret, "********")
        return text

    facts = _read_all(logins, settings.reads, max(1, options.parallel))
    by_url: dict[str, InstanceFacts] = {}
    for login, found in facts.items():
        by_url.setdefault(login[0], found)
    running = {url: frozenset(setup_id for t in targets if t.credentials.managed
                              and t.credentials.login[0] == url for setup_id in setups_run(t, found.listed))
               for url, found in by_url.items()}
    ctx = Context(today, settings.reads, scrub, running)
    results = [judge(t, facts.get(t.credentials.login) if t.credentials.managed else None, ctx,
                     password_missing=t.name in missing) for t in chosen]
    notes = [note for url, found in sorted(by_url.items()) for note in
             unattended(found, [t for t in targets if t.credentials.managed and t.credentials.login[0] == url], ctx)]
    budget = {"CHAP_DHIS2_MAX_RECORDS": settings.reads.max_records,
              "CHAP_DHIS2_MAX_REQUEST_LINE": settings.reads.max_request_line,
              "CHAP_DHIS2_CONCURRENT_READS": settings.reads.concurrency}
    return PreflightReport(today, budget, results, options.strict, notes)


def _read_all(logins: Mapping[tuple[str, str, str], tuple[str, list[Target]]], budget: Any,
              parallel: int) -> dict[tuple[str, str, str], InstanceFacts]:
    """Every login's reads, `parallel` logins at a time; each login's failure stays its own."""
    if not logins:
        return {}
    with ThreadPoolExecutor(max_workers=min(parallel, len(logins)), thread_name_prefix="preflight") as pool:
        futures = {login: pool.submit(_read_login, login, password, group, budget)
                   for login, (password, group) in logins.items()}
        return {login: future.result() for login, future in futures.items()}


def _read_login(login: tuple[str, str, str], password: str, targets: list[Target], budget: Any) -> InstanceFacts:
    base_url, username, _ = login
    try:
        facts = read_services(base_url, username, password, budget)
    except Exception as exc:  # noqa: BLE001 (a bad URL, say: this login's projects fail, the others go on)
        return InstanceFacts(base_url, username, dhis2=Failure(f"{type(exc).__name__}: {exc}"))
    if facts.listed:
        wanted = set()
        for target in targets:
            wanted |= setups_run(target, facts.listed)
        read_setups(facts, password, sorted(wanted, key=str), budget)
    return facts
