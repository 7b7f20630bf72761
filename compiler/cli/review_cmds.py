"""`chapctl schedule` and `chapctl diff`: the review's verbs (compiler.review)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import click

from compiler.cli.common import EXIT_EPILOG, find_repo, output_option, printable, root_option, run_guarded


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
def schedule(root: Optional[Path], count: int, projects: tuple[str, ...], start: Optional[str], output: str) -> None:
    """Preview the next runs of each project, in its time zone and in UTC.

    Computed by the installed Prefect's own schedule code (DST gaps and overlaps, day_or), exactly
    as the server's scheduler will. Exit 0; 1 on invalid projects or an unknown --project."""

    def body() -> int:
        import json

        from compiler.compile.build import validate_repo
        from compiler.reconcile.client import probe_server_version
        from compiler.review.preview import (PREVIEW_COLUMNS, next_runs, parse_start, preview_json, preview_rows,
                                             semantics_note)

        validated = validate_repo(find_repo(root))
        previews = next_runs(validated, count, parse_start(start), projects)
        note = semantics_note(probe_server_version())
        if output == "json":
            print(json.dumps(preview_json(previews), indent=2))
        else:
            _print_table(PREVIEW_COLUMNS, preview_rows(previews))
        if note:
            import sys

            print(f"note: {note}", file=sys.stderr)
        return 0

    run_guarded(body)


def _print_table(columns: tuple[str, ...], rows) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(show_lines=False, box=None, pad_edge=False)
    for column in columns:
        table.add_column(column, no_wrap=True)
    for cells in rows:
        table.add_row(*(Text(printable(cell)) for cell in cells))  # Text: `[slug]` is no markup
    console = Console()
    if not console.is_terminal:  # piped: no 80-column wrapping of a table meant to be read whole
        console = Console(width=200)
    console.print(table)


@click.command(epilog=EXIT_EPILOG, short_help="What changed in the projects between two git revisions.")
@root_option
@click.option("--base", default=None, help="Git revision to compare from (default: the merge base of HEAD with main).")
@click.option("--head", default=None, help="Git revision to compare to (default: the working tree).")
@output_option("text", "json", "markdown")
@click.option("--detailed-exitcode", is_flag=True, help="Exit 2 when projects changed.")
def diff(root: Optional[Path], base: Optional[str], head: Optional[str], output: str,
         detailed_exitcode: bool) -> None:
    """Show what changed in the projects between two git revisions: projects added and removed,
    field changes with effective values, and the next 3 runs before and after each schedule change.

    Exit 0 (or with --detailed-exitcode: 0 no change, 2 changes); 1 on error."""

    def body() -> int:
        from compiler.review.diff import diff_json, diff_lines, diff_markdown, semantic_diff

        result = semantic_diff(find_repo(root), base, head)
        if output == "markdown":
            print(diff_markdown(result), end="")
        elif output == "json":
            print(diff_json(result))
        else:
            print("\n".join(diff_lines(result)))
        return 2 if detailed_exitcode and result.changed else 0

    run_guarded(body)
