"""`chapctl validate` and `chapctl compile`: the compile pipeline's verbs (compiler.compile)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import click

from compiler.cli.common import (
    EXIT_EPILOG,
    find_repo,
    err,
    output_option,
    print_diagnostics,
    root_option,
    run_guarded,
    strict_exit,
    strict_option,
)


def register(app: click.Group) -> None:
    app.add_command(validate)
    app.add_command(compile_)


@click.command(epilog=EXIT_EPILOG, short_help="Check every project file; report all problems. Writes nothing.")
@root_option
@output_option("text", "json")
@strict_option
def validate(root: Optional[Path], output: str, strict: bool) -> None:
    """Check every project file; report all problems with file:line:col. Writes nothing.

    Also reviews the schedules: load hot-spots are warnings. Exit 0 when valid (warnings allowed),
    1 when any file is invalid, or with --strict when there is any warning."""

    def body() -> int:
        from compiler.compile.build import check_repo
        from compiler.errors import ValidationFailed

        try:
            checked = check_repo(find_repo(root))
        except ValidationFailed as exc:
            print_diagnostics(exc.diagnostics, output)
            err(f"error: {exc}")
            return 1
        print_diagnostics(list(checked.warnings), output)
        if output == "text":
            warned = f" ({len(checked.warnings)} warning(s))" if checked.warnings else ""
            print(f"{len(checked.validated.projects)} project(s) valid{warned}")
        return strict_exit(strict, checked.warnings)

    run_guarded(body)


@click.command(epilog=EXIT_EPILOG, name="compile", short_help="Validate and render the committed artifacts (--check: stale?).")
@root_option
@click.option("--check", is_flag=True, help="Write nothing; exit 1 with a diff if the committed artifacts are stale.")
@click.option("--force", is_flag=True, help="Overwrite compiled files that were edited by hand (their edits are lost).")
@output_option("text", "json")
@strict_option
def compile_(root: Optional[Path], check: bool, force: bool, output: str, strict: bool) -> None:
    """Validate, then render prefect.yaml, blocks/*.yaml, schema/*.json, SCHEDULES.md and schedules.svg.

    Warnings (load hot-spots) are printed. Exit 0 when written (or fresh with --check); 1 on invalid
    projects, with --check on stale files, with --strict on any warning (then nothing is written)."""

    def body() -> int:
        import json

        from compiler.compile import build
        from compiler.errors import ValidationFailed

        repo = find_repo(root)
        try:
            compiled = build.compile_repo(repo)
        except ValidationFailed as exc:
            print_diagnostics(exc.diagnostics, output)
            err(f"error: {exc}")
            return 1
        if output == "text":
            print_diagnostics(list(compiled.warnings), output)
        if strict and compiled.warnings and not check:
            return strict_exit(strict, compiled.warnings)
        pending = build.changes(repo, compiled.artifacts) if check else build.write(repo, compiled.artifacts,
                                                                                      force=force)
        if output == "json":
            print(json.dumps(build.compile_json(compiled, pending, check), indent=2))
        elif check and pending:
            sys.stdout.write("".join(c.diff for c in pending))
            err(f"error: {len(pending)} compiled file(s) are stale: {', '.join(c.label() for c in pending)}; "
                 "run `chapctl compile` and commit the result")
        elif check:
            print(f"compiled artifacts are fresh ({len(compiled.validated.projects)} projects)")
        else:
            print("\n".join(build.written_lines(compiled, pending)))
        if check and pending:
            return 1
        return strict_exit(strict, compiled.warnings)

    run_guarded(body)
