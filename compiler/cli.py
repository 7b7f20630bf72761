"""The `chapctl` command line: parse options, call the core, print. Nothing else lives here.

Built on click (typer's adapters import pydantic: ~0.1 s on every command); heavy modules are
imported inside commands so that `chapctl --help` stays instant and never imports prefect.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import Callable, Optional

import click

from compiler.cli_options import format_option, root_option

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
DEBUG_LOG = Path(os.environ.get("TMPDIR", "/tmp")) / "chapctl-debug.log"


@click.group(name="chapctl", context_settings=CONTEXT)
def app() -> None:
    """Compile DHIS2/CHAP forecast projects (projects/*.yaml) into Prefect deployments and apply
    them to a Prefect server."""


def run_guarded(action: Callable[[], int]) -> None:
    """Run a command body; map errors to one clean line and an exit code decided here, once."""
    from compiler.errors import UserError

    try:
        code = action()
    except UserError as exc:
        _err(f"error: {exc}")
        code = 1
    except KeyboardInterrupt:
        _err("interrupted")
        code = 130
    except Exception as exc:  # an internal bug: short message, traceback to the debug log
        DEBUG_LOG.write_text(traceback.format_exc())
        _err(f"internal error: {type(exc).__name__}: {exc} (traceback in {DEBUG_LOG}; please report it)")
        code = 1
    sys.exit(code)


def _err(message: str) -> None:
    print(message, file=sys.stderr)


def _print_diagnostics(diagnostics, output: str) -> None:
    from compiler.diagnostics import format_json, format_text

    if output == "json":
        print(format_json(diagnostics))
    elif diagnostics:
        _err(format_text(diagnostics))


def _root(explicit: Optional[Path]) -> Path:
    from compiler.root import find_root

    return find_root(explicit)


strict_option = click.option("--strict", is_flag=True,
                             help="Treat warnings (load hot-spots, an empty projects/) as errors: exit 1.")


@app.command(short_help="Check every project file; report all problems. Writes nothing.")
@root_option
@format_option
@strict_option
def validate(root: Optional[Path], output: str, strict: bool) -> None:
    """Check every project file; report all problems with file:line:col. Writes nothing.

    Also reviews the schedules: load hot-spots are warnings. Exit 0 when valid (warnings allowed),
    1 when any file is invalid, or with --strict when there is any warning."""

    def body() -> int:
        from compiler.build import check_repo
        from compiler.errors import ValidationFailed

        try:
            checked = check_repo(_root(root))
        except ValidationFailed as exc:
            _print_diagnostics(exc.diagnostics, output)
            _err(f"error: {exc}")
            return 1
        _print_diagnostics(list(checked.warnings), output)
        if output == "text":
            warned = f" ({len(checked.warnings)} warning(s))" if checked.warnings else ""
            print(f"{len(checked.validated.projects)} project(s) valid{warned}")
        return _strict_exit(strict, checked.warnings)

    run_guarded(body)


def _strict_exit(strict: bool, warnings) -> int:
    if strict and warnings:
        _err(f"error: {len(warnings)} warning(s) and --strict")
        return 1
    return 0


@app.command(name="compile", short_help="Validate and render the committed artifacts (--check: stale?).")
@root_option
@click.option("--check", is_flag=True, help="Write nothing; exit 1 with a diff if the committed artifacts are stale.")
@click.option("--force", is_flag=True, help="Overwrite compiled files that were edited by hand (their edits are lost).")
@format_option
@strict_option
def compile_(root: Optional[Path], check: bool, force: bool, output: str, strict: bool) -> None:
    """Validate, then render prefect.yaml, blocks/*.yaml, schema/*.json, SCHEDULES.md and schedules.svg.

    Warnings (load hot-spots) are printed. Exit 0 when written (or fresh with --check); 1 on invalid
    projects, with --check on stale files, with --strict on any warning (then nothing is written)."""

    def body() -> int:
        import json
        from dataclasses import asdict

        from compiler import build
        from compiler.errors import ValidationFailed

        repo = _root(root)
        try:
            compiled = build.compile_repo(repo)
        except ValidationFailed as exc:
            _print_diagnostics(exc.diagnostics, output)
            _err(f"error: {exc}")
            return 1
        if output == "text":
            _print_diagnostics(list(compiled.warnings), output)
        if strict and compiled.warnings and not check:
            return _strict_exit(strict, compiled.warnings)
        pending = build.changes(repo, compiled.artifacts) if check else build.write(repo, compiled.artifacts,
                                                                                      force=force)
        if output == "json":
            print(json.dumps({"check": check, "fresh": not pending if check else None,
                              "changes": [{"path": c.path, "kind": c.kind, "edited_by_hand": bool(c.hand_edit)}
                                          for c in pending],
                              "warnings": len(compiled.warnings),
                              "diagnostics": [asdict(d) for d in compiled.warnings]}, indent=2))
        elif check and pending:
            sys.stdout.write("".join(c.diff for c in pending))
            _err(f"error: {len(pending)} compiled file(s) are stale: {', '.join(c.label() for c in pending)}; "
                 "run `chapctl compile` and commit the result")
        elif check:
            print(f"compiled artifacts are fresh ({len(compiled.validated.projects)} projects)")
        else:
            for change in pending:
                print(f"{change.kind:>7} {change.path}")
            print(f"compiled {len(compiled.validated.projects)} project(s): "
                  f"{len(pending)} file(s) changed, {len(compiled.artifacts.files) - len(pending)} unchanged")
        if check and pending:
            return 1
        return _strict_exit(strict, compiled.warnings)

    run_guarded(body)


@app.command(short_help="Next runs of each project, local time and UTC (Prefect's own code).")
@root_option
@click.option("--next", "-n", "count", type=click.IntRange(1, 1000), default=5, show_default=True,
              help="How many runs per project.")
@click.option("--project", "-p", default=None, help="Only this project.")
@click.option("--from", "start", default=None, help="Start from this ISO date or date-time (naive = UTC); default now.")
@click.option("--json", "json_", is_flag=True, help="Print JSON.")
def schedule(root: Optional[Path], count: int, project: Optional[str], start: Optional[str], json_: bool) -> None:
    """Preview the next runs of each project, in its time zone and in UTC.

    Computed by the installed Prefect's own schedule code (DST gaps and overlaps, day_or), exactly
    as the server's scheduler will. Exit 0; 1 on invalid projects or an unknown --project."""

    def body() -> int:
        import json

        from compiler.build import validate_repo
        from compiler.preview import next_runs, parse_start, preview_json

        validated = validate_repo(_root(root))
        previews = next_runs(validated, count, parse_start(start), project)
        if json_:
            print(json.dumps(preview_json(previews), indent=2))
        else:
            _print_previews(previews)
        return 0

    run_guarded(body)


def _print_previews(previews) -> None:
    import datetime as dt

    from rich.console import Console
    from rich.table import Table

    table = Table(show_lines=False, box=None, pad_edge=False)
    for column in ("project", "schedule", "local time", "UTC"):
        table.add_column(column, no_wrap=True)
    for preview in previews:
        label = f"{preview.cron} {preview.timezone}" + ("" if preview.active else " (paused: no runs)")
        for index, run in enumerate(preview.runs):
            utc = run.astimezone(dt.timezone.utc)
            table.add_row(preview.project if index == 0 else "", label if index == 0 else "",
                          f"{run:%a %Y-%m-%d %H:%M %Z}", f"{utc:%a %Y-%m-%d %H:%M}")
    console = Console()
    if not console.is_terminal:  # piped: no 80-column wrapping of a table meant to be read whole
        console = Console(width=200)
    console.print(table)


@app.command(short_help="What changed in the projects between two git revisions.")
@root_option
@click.option("--base", default=None, help="Git revision to compare from (default: the merge base of HEAD with main).")
@click.option("--head", default=None, help="Git revision to compare to (default: the working tree).")
@click.option("--markdown", is_flag=True, help="Print Markdown for a PR comment.")
@click.option("--detailed-exitcode", is_flag=True, help="Exit 2 when projects changed.")
def diff(root: Optional[Path], base: Optional[str], head: Optional[str], markdown: bool,
         detailed_exitcode: bool) -> None:
    """Show what changed in the projects between two git revisions: projects added and removed,
    field changes with effective values, and the next 3 runs before and after each schedule change.

    Exit 0 (or with --detailed-exitcode: 0 no change, 2 changes); 1 on error."""

    def body() -> int:
        from compiler.gitdiff import diff_lines, diff_markdown, semantic_diff

        result = semantic_diff(_root(root), base, head)
        if markdown:
            print(diff_markdown(result), end="")
        else:
            print("\n".join(diff_lines(result)))
        return 2 if detailed_exitcode and result.changes else 0

    run_guarded(body)


def _register_server_commands() -> None:
    from compiler import cli_server

    cli_server.register(app)


_register_server_commands()


def main() -> None:
    # chapctl's models need no pydantic plugins, and discovering them scans every installed
    # package's metadata (~20 ms per command); an explicit user setting wins.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    if os.environ.get("CHAPCTL_LOG_LEVEL"):
        import logging

        logging.basicConfig(level=os.environ["CHAPCTL_LOG_LEVEL"])
    app(prog_name="chapctl")
