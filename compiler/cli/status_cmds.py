"""`chapctl status`: per project, sync with the files and run health, from one bulk read of the
Prefect server. Registered on the main app by `compiler.cli`; the core (compiler.reconcile.status)
is imported inside the command so that `chapctl --help` stays instant."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Optional

import click

from compiler.cli.common import EXIT_EPILOG, env_option, find_repo, open_api, output_option, root_option, run_verb

_PART = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
MAX_DURATION = dt.timedelta(days=3650)


class Duration(click.ParamType):
    """`90s`, `15m`, `2h`, `35d`, `1w`, or combined: `1h30m`."""

    name = "duration"

    def convert(self, value, param, ctx):
        if isinstance(value, dt.timedelta):
            return value
        text = str(value).strip().lower().replace(" ", "")
        parts = _PART.findall(text)
        if not text or "".join(n + u for n, u in parts) != text:
            self.fail(f"{value!r} is not a duration: give a number and a unit, e.g. 15m, 2h, 35d, 1h30m "
                      "(s, m, h, d, w)", param, ctx)
        try:
            total = sum((dt.timedelta(**{_UNITS[u]: int(n)}) for n, u in parts), dt.timedelta())
        except OverflowError:
            total = dt.timedelta.max
        if total > MAX_DURATION:  # past it, dates around now leave the calendar
            self.fail(f"{value!r} is too long: at most {MAX_DURATION.days}d", param, ctx)
        return total


def register(app: click.Group) -> None:
    app.add_command(status_command)


@click.command(epilog=EXIT_EPILOG, name="status", short_help="Per project: in sync with the files? ran? failing or late? (exit 3)")
@root_option
@output_option("text", "json", "markdown")
@click.option("--grace", type=Duration(), default="15m", show_default=True, metavar="DURATION",
              help="How long past its start time a scheduled run may wait before the project is late (15m, 2h).")
@click.option("--lookback", type=Duration(), default="35d", show_default=True, metavar="DURATION",
              help="How far back runs are read: the last run and the failures in a row are found within it.")
@click.option("--require-sync", is_flag=True,
              help="Also exit 4 when a project is not in sync (changed, drift, not applied, conflict) "
                   "and none is failing or late.")
@click.option("--project", "-p", "projects", multiple=True, metavar="NAME",
              help="Only this project (repeatable). The requests are the same.")
@click.option("--preflight", "with_preflight", is_flag=True,
              help="Also each project's `chapctl preflight` verdict, checked live (DHIS2 and CHAP reads only, in "
                   "parallel with the Prefect reads; the DHIS2 passwords are read as preflight reads them). It does "
                   "not change the exit code.")
@env_option
def status_command(root: Optional[Path], output: str, grace: dt.timedelta, lookback: dt.timedelta,
                   require_sync: bool, projects: tuple[str, ...], with_preflight: bool,
                   environment: Optional[str]) -> None:
    """One row per project: sync with the files (in sync, changed, drift, not applied), the
    schedule (active, paused, none), the last run (state, start, duration, link to the UI), the
    next scheduled run, the failures in a row, and whether it is late. Reads only, in bulk: the
    number of requests does not depend on the number of projects.

    \b
    Exit codes:
      0  no project failing or late (changed/drift/not applied do not count, unless --require-sync)
      1  error (server unreachable, authentication refused, no repository, …)
      3  a project is failing (its last finished run failed or crashed) or late (a scheduled run
         did not start within --grace, or its schedule fired and no run exists)
      4  with --require-sync: a project is not in sync, and none is failing or late"""

    def call():
        from compiler.reconcile.status import StatusOptions, project_status

        options = StatusOptions(grace=grace, lookback=lookback, require_sync=require_sync, projects=projects,
                                preflight=with_preflight, environment=environment)
        repo = find_repo(root)
        with open_api(repo, environment) as api:
            return project_status(repo, api, options)

    run_verb("status", output, call)
