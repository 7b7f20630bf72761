"""`chapctl preflight`: before a project's first scheduled run, prove by reading that its DHIS2 and
CHAP can give a forecast (compiler.preflight). Registered on the main app by `compiler.cli`; the core
is imported inside the command so that `chapctl --help` stays instant (and preflight never imports
Prefect at all)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import click

from compiler.cli.common import EXIT_EPILOG, env_option, find_repo, output_option, root_option, run_verb


def register(app: click.Group) -> None:
    app.add_command(preflight_command)


@click.command(epilog=EXIT_EPILOG, name="preflight",
               short_help="Would each project's run work? DHIS2, login, route, setups, data, geometry (reads only; exit 3).")
@root_option
@output_option("text", "json", "markdown")
@click.option("--strict", is_flag=True, help="Treat warnings as failures: exit 3 when any project warns.")
@click.option("--project", "-p", "projects", multiple=True, metavar="NAME", help="Only this project (repeatable).")
@env_option
def preflight_command(root: Optional[Path], output: str, strict: bool, projects: tuple[str, ...],
                      environment: Optional[str]) -> None:
    """Check, for every project, what its first run will meet — without submitting anything to CHAP
    and without writing to DHIS2 or Prefect (Prefect is not even asked): DHIS2 reachable and the
    login (the password from the block's password_env, as apply reads it, CHAPCTL_SECRETS too);
    the `chap` route, its timeout and chap-core behind it; which prediction setups each run would
    work on and why the others are left out; per setup the end period each schedule picks today
    (CHAP_TODAY, as in the flow), every covariate's latest period with data, chap-core's two whole
    years, the org units with and without geometry, the period type against the schedule's cadence,
    the DHIS2 reads and records within the flow's budgets (CHAP_DHIS2_*) and the size it would send;
    and chap-core's own schedule fields (scheduleEnabled, scheduleCronExpression) against the
    project's. One verdict per project: ok, warn or fail, each with its cause and fix.

    \b
    Exit codes:
      0  no project would fail (warnings allowed, unless --strict)
      1  preflight itself cannot run (no repository, no prefect.yaml, a bad CHAP_* setting, …)
      3  a project would fail (with --strict: or warns)"""

    def call():
        from compiler.preflight import PreflightOptions, preflight

        return preflight(find_repo(root), PreflightOptions(projects=projects, strict=strict, environment=environment),
                         os.environ)

    run_verb("preflight", output, call)
