"""`chapctl schedule` and `chapctl diff`: the review's verbs (compiler.review)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import click

from compiler.cli.common import EXIT_EPILOG, env_option, find_repo, output_option, root_option, run_verb


def register(app: click.Group) -> None:
    app.add_command(schedule)
    app.add_command(diff)


@click.command(epilog=EXIT_EPILOG, short_help="Next runs of each project, local time and UTC (Prefect's own code).")
@root_option
@click.option("--next", "-n", "count", type=click.IntRange(1, 1000), default=5, show_default=True,
              help="How many runs per project.")
@click.option("--project", "-p", "projects", multiple=True, metavar="NAME", help="Only this project (repeatable).")
@click.option("--from", "start", default=None, help="Start from this ISO date or date-time (naive = UTC); default now.")
@output_option("text", "json")
@env_option
def schedule(root: Optional[Path], count: int, projects: tuple[str, ...], start: Optional[str], output: str,
             environment: Optional[str]) -> None:
    """Preview the next runs of each project, in its time zone and in UTC.

    Computed by the installed Prefect's own schedule code (DST gaps and overlaps, day_or), exactly
    as the server's scheduler will. Exit 0; 1 on invalid projects or an unknown --project."""

    def call():
        from compiler.reconcile.client import probe_server_version
        from compiler.reconcile.desired import api_settings
        from compiler.review.preview import run_schedule

        repo = find_repo(root)
        return run_schedule(repo, count, start, projects, environment=environment,
                            server_version=lambda: probe_server_version(settings=lambda: api_settings(repo, environment)))

    run_verb("schedule", output, call)


@click.command(epilog=EXIT_EPILOG, short_help="What changed in the projects between two git revisions.")
@root_option
@click.option("--base", default=None, help="Git revision to compare from (default: the merge base of HEAD with main).")
@click.option("--head", default=None, help="Git revision to compare to (default: the working tree).")
@output_option("text", "json", "markdown")
@click.option("--detailed-exitcode", is_flag=True, help="Exit 2 when projects changed.")
@env_option
def diff(root: Optional[Path], base: Optional[str], head: Optional[str], output: str,
         detailed_exitcode: bool, environment: Optional[str]) -> None:
    """Show what changed in the projects between two git revisions: projects added and removed,
    field changes with effective values, and the next 3 runs before and after each schedule change.

    Exit 0 (or with --detailed-exitcode: 0 no change, 2 changes); 1 on error."""

    def call():
        from compiler.review.diff import run_diff

        return run_diff(find_repo(root), base, head, detailed_exitcode, environment)

    run_verb("diff", output, call)
