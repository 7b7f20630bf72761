"""`chapctl import`: write project files from a hand-made Prefect server (options and printing only;
the core is `compiler.reconcile.importer`, imported inside the command so `--help` stays instant)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import click

from compiler.cli.common import EXIT_EPILOG, find_repo, open_api, output_option, print_lines, root_option, run_guarded


def register(app: click.Group) -> None:
    app.add_command(import_command)


@click.command(epilog=EXIT_EPILOG, name="import", short_help="Write projects/*.yaml from a hand-made server (flow.serve(), UI schedules).")
@root_option
@output_option("text", "json")
@click.option("--dry-run", is_flag=True, help="Print the files import would write; write nothing.")
def import_command(root: Optional[Path], output: str, dry_run: bool) -> None:
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

    def body() -> int:
        from compiler.reconcile.importer import ImportOptions, import_server

        repo = find_repo(root)
        with open_api(repo) as api:
            result = import_server(api, repo, ImportOptions(dry_run=dry_run))
        if output == "json":
            print(json.dumps(result.to_json(), indent=2))
        else:
            print_lines(import_lines(result, dry_run))
        return 0

    run_guarded(body)


def import_lines(result, dry_run: bool) -> list[tuple[str, str]]:
    """One finding per line: server text in it (a name holding a newline) is written out (`\\n`)."""
    from compiler.constants import written_out

    title = (f"Prefect {result.server_version} at {result.url}: {result.deployments_read} deployment(s) of flow "
             f"dhis2-chap-prediction, {result.schedules_read} schedule(s)")
    out: list[tuple[str, str]] = [("bold", title)]
    if dry_run:
        for path, text in result.files.items():
            out.append(("bold", f"--- {path} (would write)"))
            out += [("", line) for line in text.rstrip("\n").split("\n")]
    sources = {p.path: p.source for p in result.projects}
    if result.files:
        out.append(("bold", "Would write:" if dry_run else "Wrote:"))
        for path in result.files:
            what = sources.get(path, "defaults every project inherits" if path.endswith("_defaults.yaml") else "")
            out.append(("green", f"  + {path}" + (f" — from {what}" if path in sources else f" — {what}")))
    else:
        out.append(("bold", "Nothing to write."))
    titles = (("unmapped", "Not imported (each stays on the server as it is):", "yellow"),
              ("kept", "Left alone:", "dim"),
              ("note", "Notes:", "cyan"),
              ("secret", "Set before `chapctl apply --adopt` (never written by import):", "bold yellow"),
              ("serve", "After the handover:", "bold yellow"))
    for kind, title, style in titles:
        findings = result.of_kind(kind)
        if findings:
            out.append(("bold", title))
            for f in findings:
                out.append((style, written_out(f"  - {f.object}: {f.message}", one_line=True)))
    if result.projects:
        out.append(("bold", ("Then: " if dry_run else "Next: ") + "review the files, `chapctl compile`, "
                    "`chapctl plan --adopt` (the handover, schedule by schedule), `chapctl apply --adopt`"))
    return out
