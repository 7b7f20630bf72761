"""`chapctl plan` and `chapctl apply`: the commands that talk to a Prefect server.

Registered on the main app by `compiler.cli`. Nothing imported at module import time touches
prefect, so `chapctl --help` stays instant; the core (compiler.reconcile) is imported inside the
command bodies.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import click

from compiler.constants import DEFAULT_WORKERS
from compiler.cli.common import EXIT_EPILOG, console, find_repo, open_api, output_option, print_lines, root_option, run_guarded

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
def plan_command(root: Optional[Path], output: str, detailed_exitcode: bool, adopt: bool,
                 allow_delete_all: bool, cancel_in_flight: bool, verbose: bool) -> None:
    """Read the Prefect server and show what `apply` would change. Writes nothing.

    Drift (a change made on the server since the last apply) is marked as such. Exit 0, or with
    --detailed-exitcode 0 no changes / 2 changes; 1 on error or when apply would refuse."""

    def body() -> int:
        from compiler.reconcile import report as plan_report
        from compiler.reconcile.prepare import prepare
        from compiler.reconcile.actions import PlanOptions

        repo = find_repo(root)
        with open_api(repo) as api:
            prepared = prepare(repo, api, options=PlanOptions(adopt, allow_delete_all, cancel_in_flight),
                               require_env=True)
            header = _header(api, prepared)
        p = prepared.plan
        # Next runs of every schedule the plan creates or changes, from Prefect's own schedule
        # code; None (and prefect never imported) when no schedule is created or changed.
        runs = plan_report.schedule_previews(p, server_version=prepared.live.server_version)
        if output == "json":
            print(plan_report.plan_json(p, header, runs, prepared.guard))
        elif output == "markdown":
            from compiler.compile.build import check_repo  # the compile pipeline: only for the pull-request comment

            warnings = [d.message for d in check_repo(prepared.root).warnings]
            print(plan_report.plan_markdown(p, header, runs, prepared.guard, warnings), end="")
        else:
            print_lines(plan_report.plan_lines(p, header, show_noops=verbose, next_runs=runs, guard=prepared.guard))
        if p.blockers:
            return 1
        return 2 if detailed_exitcode and p.has_changes else 0

    run_guarded(body)


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
def apply_command(root: Optional[Path], output: str, adopt: bool, allow_delete_all: bool,
                  cancel_in_flight: bool, lock_timeout: float, parallel: int, ignore_applied_commit: bool) -> None:
    """Make the Prefect server match the compiled projects, then print what changed.

    Writes only where something differs; a second run with no edits writes nothing. Acts only on
    this repository's owner's objects; removes its deployments whose project is gone. One apply
    per owner at a time (a lock on the server); refuses a checkout older than the last apply."""

    def body() -> int:
        from compiler.reconcile import report as plan_report
        from compiler.reconcile.apply import ApplyOptions, apply
        from compiler.errors import ApplyFailed
        from compiler.reconcile.actions import PlanOptions

        out = console() if output == "text" else None
        bar = _ProgressBar(out)

        def progress(action) -> None:
            if out is not None and not action.quiet:
                for style, text in plan_report.action_lines(action, past=True):
                    bar.print(text, style=style or None)
            bar.advance()

        def waiting(message: str) -> None:
            print(message, file=sys.stderr, flush=True)

        options = ApplyOptions(PlanOptions(adopt, allow_delete_all, cancel_in_flight), lock_timeout,
                               ignore_applied_commit, parallel)
        repo = find_repo(root)
        with open_api(repo) as api, bar:
            try:
                prepared, result = apply(repo, api, options=options, progress=progress, on_wait=waiting,
                                         on_plan=bar.start)
                failure = None
            except ApplyFailed as exc:
                prepared, result, failure = exc.prepared, exc.result, exc
            header = _header(api, prepared)
        if output == "json":
            print(plan_report.apply_json(result, header))
        elif output == "markdown":
            print(plan_report.apply_markdown(result, header), end="")
        else:
            print_lines(plan_report.apply_lines(result, header, include_actions=False))
        if failure is not None:
            raise failure
        return 0

    run_guarded(body)


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

    def print(self, text: str, style=None) -> None:
        target = self.progress.console if self.progress is not None else self.out
        target.print(text, style=style, markup=False, highlight=False)

    def advance(self) -> None:
        if self.progress is not None:
            self.progress.advance(self.task)


def _header(api, prepared):
    from compiler.reconcile import report as plan_report

    return plan_report.Header(api.settings.url, prepared.live.server_version, len(prepared.desired.deployments),
                              api.stats.requests, api.stats.writes, prepared.desired.owner)


