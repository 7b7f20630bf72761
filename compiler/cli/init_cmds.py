"""`chapctl init [DIR]`: scaffold a projects repository (options and printing only; the core is
`compiler.scaffold`, imported inside the command so `--help` stays instant)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import click

from compiler.cli.common import EXIT_EPILOG, output_option, run_verb


def register(app: click.Group) -> None:
    app.add_command(init_command)


@click.command(epilog=EXIT_EPILOG, name="init",
               short_help="Scaffold a projects repository (defaults, an example, CI workflows); never overwrites.")
@click.argument("directory", required=False, default=".", type=click.Path(path_type=Path))
@click.option("--owner", default=None, metavar="NAME",
              help="The repository's owner on the Prefect server (default: the git remote origin's repository "
                   "name, else the directory's name).")
@click.option("--package", default=None, metavar="REQUIREMENT",
              help="How the workflows and pre-commit hooks install chapctl, a pip requirement (default: "
                   "chapctl==<this release>; a wheel URL or `chapctl @ git+https://...@<tag>` work too).")
@output_option("text", "json")
def init_command(directory: Path, owner: Optional[str], package: Optional[str], output: str) -> None:
    """Write a new repository of projects into DIRECTORY (default: here; created when missing):
    projects/_defaults.yaml (the owner; workers run this chapctl's flow), one example project, the
    GitHub workflows (the pull-request check: validate, compile --check, diff, plan and a comment;
    apply on main) pinned to this chapctl's release, .pre-commit-config.yaml, .gitignore and a
    README; then compile the projects. A file that exists is never overwritten (reported as kept):
    re-running is safe. Exit 0, or 1 when the projects there do not validate."""

    def call():
        from compiler.scaffold import InitOptions, init_repo

        return init_repo(directory, InitOptions(owner=owner, package=package))

    run_verb("init", output, call)
