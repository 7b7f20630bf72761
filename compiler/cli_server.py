"""`chapctl plan` and `chapctl apply`: the commands that talk to a Prefect server.

Registered on the main app by `compiler.cli`. click and rich live only here (and in cli.py);
nothing imported at module import time touches prefect, so `chapctl --help` stays instant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import click

from compiler.cli_options import root_option

json_option = click.option("--json", "json_", is_flag=True, help="Print a JSON document instead of text.")
markdown_option = click.option("--markdown", is_flag=True,
                               help="Print Markdown for a pull-request comment or a CI step summary.")
adopt_option = click.option("--adopt", is_flag=True, help="Take over unmanaged deployments whose name a project uses.")


def register(app: click.Group) -> None:
    app.add_command(plan_command)
    app.add_command(apply_command)


@click.command(name="plan", short_help="Show what apply would change on the Prefect server (drift marked).")
@root_option
@json_option
@markdown_option
@click.option("--detailed-exitcode", is_flag=True,
              help="Exit 0 when there is nothing to change, 2 when there is, 1 on error.")
@adopt_option
@click.option("--verbose", "-v", is_flag=True, help="Also list unchanged objects.")
def plan_command(root: Optional[Path], json_: bool, markdown: bool, detailed_exitcode: bool, adopt: bool,
                 verbose: bool) -> None:
    """Read the Prefect server and show what `apply` would change. Writes nothing.

    Drift (a change made on the server since the last apply) is marked as such. Exit 0, or with
    --detailed-exitcode 0 no changes / 2 changes; 1 on error or when apply would refuse."""

    def body() -> int:
        from compiler import plan_report

        _exclusive(json_, markdown)
        prepared, header = _prepare(root, adopt)
        p = prepared.plan
        # Next runs of every schedule the plan creates or changes, from Prefect's own schedule
        # code; None (and prefect never imported) when no schedule is created or changed.
        runs = plan_report.schedule_previews(p)
        if json_:
            print(plan_report.plan_json(p, header, runs))
        elif markdown:
            print(plan_report.plan_markdown(p, header, runs), end="")
        else:
            _print_lines(plan_report.plan_lines(p, header, show_noops=verbose, next_runs=runs))
        if p.blockers:
            return 1
        return 2 if detailed_exitcode and p.has_changes else 0

    _guarded(body)


@click.command(name="apply", short_help="Make the Prefect server match the projects; write only what differs.")
@root_option
@json_option
@markdown_option
@adopt_option
def apply_command(root: Optional[Path], json_: bool, markdown: bool, adopt: bool) -> None:
    """Make the Prefect server match the compiled projects, then print what changed.

    Writes only where something differs; a second run with no edits writes nothing. Never touches
    objects chapctl does not own; removes managed deployments whose project is gone."""

    def body() -> int:
        from compiler import plan_report
        from compiler.apply import apply

        _exclusive(json_, markdown)
        prepared, header = _prepare(root, adopt)
        console = None if (json_ or markdown) else _console()

        def progress(action) -> None:
            if console is not None:
                for style, text in plan_report.action_lines(action, past=True):
                    console.print(text, style=style or None, markup=False, highlight=False)

        result = apply(prepared.plan, _API, progress=progress)
        header = plan_report.Header(header.url, header.server_version, header.projects,
                                    _API.stats.requests, _API.stats.writes)
        if json_:
            print(plan_report.apply_json(result, header))
        elif markdown:
            print(plan_report.apply_markdown(result, header), end="")
        else:
            _print_lines(plan_report.apply_lines(result, header, include_actions=False))
        return 0

    _guarded(body)


# -- helpers --------------------------------------------------------------------------------------
_API = None  # the client of the running command, for request counts in the summary


def _prepare(root: Optional[Path], adopt: bool):
    global _API
    from compiler import plan_report
    from compiler.apply import prepare
    from compiler.prefect_api import ApiSettings, PrefectAPI
    from compiler.root import find_root

    repo = find_root(root)
    settings = ApiSettings.from_env()
    _API = PrefectAPI(settings)
    prepared = prepare(repo, _API, adopt=adopt)
    header = plan_report.Header(settings.url, prepared.live.server_version, len(prepared.desired.deployments),
                                _API.stats.requests, _API.stats.writes)
    return prepared, header


def _exclusive(json_: bool, markdown: bool) -> None:
    if json_ and markdown:
        from compiler.errors import UserError

        raise UserError("--json and --markdown are mutually exclusive; pick one")


def _console():
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def _print_lines(lines: list[tuple[str, str]]) -> None:
    console = _console()
    for style, text in lines:
        console.print(text, style=style or None, markup=False, highlight=False)


def _guarded(body) -> None:
    global _API
    from compiler.cli import run_guarded

    try:
        run_guarded(body)
    finally:
        if _API is not None:
            _API.close()
            _API = None
