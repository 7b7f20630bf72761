"""`chapctl validate` and `chapctl compile`: the compile pipeline's verbs (compiler.compile)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import click

from compiler.cli.common import EXIT_EPILOG, env_option, find_repo, output_option, root_option, run_verb, strict_option


def register(app: click.Group) -> None:
    app.add_command(validate)
    app.add_command(compile_)


@click.command(epilog=EXIT_EPILOG, short_help="Check every project file; report all problems. Writes nothing.")
@root_option
@output_option("text", "json")
@strict_option
@env_option
def validate(root: Optional[Path], output: str, strict: bool, environment: Optional[str]) -> None:
    """Check every project file; report all problems with file:line:col. Writes nothing.

    Also reviews the schedules: load hot-spots are warnings. Exit 0 when valid (warnings allowed),
    1 when any file is invalid, or with --strict when there is any warning."""

    def call():
        from compiler.compile.build import run_validate

        return run_validate(find_repo(root), strict, environment)

    run_verb("validate", output, call)


@click.command(epilog=EXIT_EPILOG, name="compile", short_help="Validate and render the committed artifacts (--check: stale?).")
@root_option
@click.option("--check", is_flag=True, help="Write nothing; exit 1 with a diff if the committed artifacts are stale.")
@click.option("--force", is_flag=True, help="Overwrite compiled files that were edited by hand (their edits are lost).")
@output_option("text", "json")
@strict_option
@env_option
def compile_(root: Optional[Path], check: bool, force: bool, output: str, strict: bool,
             environment: Optional[str]) -> None:
    """Validate, then render prefect.yaml, blocks/*.yaml, schema/*.json, SCHEDULES.md and schedules.svg.

    Warnings (load hot-spots) are printed. Exit 0 when written (or fresh with --check); 1 on invalid
    projects, with --check on stale files, with --strict on any warning (then nothing is written)."""

    def call():
        from compiler.compile.build import run_compile

        return run_compile(find_repo(root), check=check, force=force, strict=strict, environment=environment)

    run_verb("compile", output, call)
