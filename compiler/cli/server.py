"""`chapctl plan` and `chapctl apply`: the commands that talk to a Prefect server.

Registered on the main app by `compiler.cli`. Nothing imported at module import time touches
prefect, so `chapctl --help` stays instant; the core (compiler.reconcile) is imported inside the
command bodies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import click

from compiler.constants import DEFAULT_WORKERS
from compiler.cli.common import (EXIT_EPILOG, console, env_option, find_repo, open_api, output_option, report, root_option,
                                run_verb)

adopt_option = click.option(
    "--adopt", is_flag=True,
    help="Take over unmanaged deployments whose name a project uses, and pause (never delete) the hand-made "
         "schedules projects replace (`replaces:`, see `chapctl import`).")
delete_all_option = click.option(
    "--allow-delete-all", is_flag=True,
    help="Allow a plan that deletes every deployment of this owner (e.g. an emptied projects/).")
cancel_option = click.option(
    "--cancel-in-flight", is_flag=True,
    help="Cancel the running, pending and paused runs of deployments being pruned (default: let them finish).")


def register(app: click.Group) -> None:
    app.add_command(plan_command)
    app.add_command(apply_command)


@click.command(epilog=EXIT_EPILOG, name="plan", short_help="Show what apply would change on the Prefect server (drift marked).")
@root_option
@output_option("text", "json", "markdown")
@click.option("--detailed-exitcode", is_flag=True,
              help="Exit 0 when there is nothing to change, 2 when there is, 1 on error.")
@adopt_option
@delete_all_option
@cancel_option
@click.option("--verbose", "-v", is_flag=True, help="Also list unchanged objects.")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="FILE",
              help="Also save the plan to FILE (JSON, no secrets): `chapctl apply FILE` applies exactly it, or "
                   "refuses if the server or the files changed since.")
@env_option
def plan_command(root: Optional[Path], output: str, detailed_exitcode: bool, adopt: bool,
                 allow_delete_all: bool, cancel_in_flight: bool, verbose: bool, out: Optional[Path],
                 environment: Optional[str]) -> None:
    """Read the Prefect server and show what `apply` would change. Writes nothing to the server.

    Drift (a change made on the server since the last apply) is marked as such. Exit 0, or with
    --detailed-exitcode 0 no changes / 2 changes; 1 on error or when apply would refuse."""

    def call():
        from compiler.reconcile.actions import PlanOptions
        from compiler.reconcile.verbs import run_plan

        repo = find_repo(root)
        with open_api(repo, environment) as api:
            return run_plan(repo, api, PlanOptions(adopt, allow_delete_all, cancel_in_flight),
                            detailed_exitcode=detailed_exitcode, verbose=verbose, load_warnings=output == "markdown",
                            environment=environment, out=out)

    run_verb("plan", output, call)


@click.command(epilog=EXIT_EPILOG, name="apply", short_help="Make the Prefect server match the projects; write only what differs.")
@root_option
@output_option("text", "json", "markdown")
@adopt_option
@delete_all_option
@cancel_option
@click.option("--lock-timeout", type=click.FloatRange(min=0), default=300, show_default=True, metavar="SECONDS",
              help="How long to wait for another apply of the same owner to finish.")
@click.option("--parallel", type=click.IntRange(1, 32), default=DEFAULT_WORKERS, show_default=True, metavar="N",
              help="Write up to N independent objects at once (projects, blocks, prunes); 1 = one at a time. "
                   "A server that answers 503 (SQLite) is written one at a time anyway.")
@click.option("--ignore-applied-commit", is_flag=True,
              help="Apply even if this checkout does not contain the commit the server last applied "
                   "(a deliberate roll-back, or history rewritten by a force-push).")
@env_option
@click.argument("plan_file", required=False, metavar="[PLAN_FILE]",
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
def apply_command(root: Optional[Path], output: str, adopt: bool, allow_delete_all: bool,
                  cancel_in_flight: bool, lock_timeout: float, parallel: int, ignore_applied_commit: bool,
                  environment: Optional[str], plan_file: Optional[Path]) -> None:
    """Make the Prefect server match the compiled projects, then print what changed.

    Writes only where something differs; a second run with no edits writes nothing. Acts only on
    this repository's owner's objects; removes its deployments whose project is gone. One apply
    per owner at a time (a lock on the server); refuses a checkout older than the last apply.

    With PLAN_FILE (saved by `chapctl plan --out`): applies exactly that plan, with its options, or
    refuses (exit 1, nothing written) when the environment, the server, the compiled files or the
    server's state differ from when it was made."""
    if plan_file is not None and (adopt or allow_delete_all or cancel_in_flight):
        raise click.UsageError("--adopt, --allow-delete-all and --cancel-in-flight are the plan's: give them to "
                               "`chapctl plan --out`, not with a saved plan")

    def call():
        from compiler.reconcile.actions import PlanOptions
        from compiler.reconcile.apply import ApplyOptions
        from compiler.reconcile.verbs import Applied, run_apply

        options = ApplyOptions(PlanOptions(adopt, allow_delete_all, cancel_in_flight), lock_timeout,
                               ignore_applied_commit, parallel)
        repo = find_repo(root)
        with open_api(repo, environment) as api, _ProgressBar(console() if output == "text" else None) as bar:
            def event(happened) -> None:  # a write done (the bar advances) or a wait for the lock
                report(happened, output, verb="apply", out=bar.console)
                if isinstance(happened, Applied):
                    bar.advance()

            return run_apply(repo, api, options, events=event, on_plan=bar.start, environment=environment,
                             plan_file=plan_file)

    run_verb("apply", output, call)


# -- helpers --------------------------------------------------------------------------------------
class _ProgressBar:
    """A rich progress bar under the lines apply prints, for long applies in a terminal only
    (never in --format json/markdown, never when the output is a pipe or a CI log)."""

    LONG = 20  # writes

    def __init__(self, out):
        self.out = out
        self.progress = None
        self.task = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.stop()

    def start(self, plan) -> None:
        total = sum(1 for a in plan.actions if a.writes)
        if self.out is None or not self.out.is_terminal or total < self.LONG:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn("applying"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                 console=self.out, transient=True)
        self.task = self.progress.add_task("apply", total=total)
        self.progress.start()

    @property
    def console(self):
        """Where styled lines go: above the bar while it shows."""
        return self.progress.console if self.progress is not None else self.out

    def advance(self) -> None:
        if self.progress is not None:
            self.progress.advance(self.task)
