"""`chapctl import`: write project files from a hand-made Prefect server (options only; the core is
`compiler.reconcile.importer`, imported inside the command so `--help` stays instant)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import click

from compiler.cli.common import EXIT_EPILOG, env_option, find_repo, open_api, output_option, root_option, run_verb


def register(app: click.Group) -> None:
    app.add_command(import_command)


@click.command(epilog=EXIT_EPILOG, name="import", short_help="Write projects/*.yaml from a hand-made server (flow.serve(), UI schedules).")
@root_option
@output_option("text", "json")
@click.option("--dry-run", is_flag=True, help="Print the files import would write; write nothing.")
@env_option
def import_command(root: Optional[Path], output: str, dry_run: bool, environment: Optional[str]) -> None:
    """Read the Prefect server (same connection settings as plan) and write projects for every
    hand-made cron schedule of every `dhis2-chap-prediction` deployment (one project per group of
    schedules sharing credentials and model, a `schedules:` entry each; a `prefect deploy`
    deployment whose schedules all fit one project keeps its name), plus projects/_defaults.yaml
    when it is missing.

    Credentials become references to the existing block documents (no secret is read or written);
    inline credentials become a block chapctl manages, whose password you set in an environment
    variable. What cannot be mapped is listed with its id. Existing files are never overwritten.
    Then: `chapctl compile`, `chapctl plan --adopt`, `chapctl apply --adopt` (each replaced schedule
    is paused, never deleted, in the apply that creates its successor)."""

    def call():
        from compiler.reconcile.importer import ImportOptions, import_server

        repo = find_repo(root)
        with open_api(repo, environment) as api:  # --env: read that environment's server
            return import_server(api, repo, ImportOptions(dry_run=dry_run))

    run_verb("import", output, call)
