"""The `chapctl` command line: parse options, call the core, print what the output layer
(compiler.output) rendered of its result. Nothing else lives here.

One module per group of verbs, each registering its commands on `app`: `init_cmds` (init),
`compile_cmds` (validate, compile), `review_cmds` (schedule, diff), `server` (plan, apply),
`status_cmds` (status), `preflight_cmds` (preflight), `import_cmds` (import); `common` holds the
shared options and the error boundary. Built on click (typer's adapters import pydantic: ~0.1 s on every command); heavy modules are imported inside
commands so that `chapctl --help` stays instant and never imports prefect. See docs/architecture.md.
"""

from __future__ import annotations

import os

import click

from compiler.cli import compile_cmds, import_cmds, init_cmds, preflight_cmds, review_cmds, server, status_cmds
from compiler.cli.common import ChapctlGroup

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from compiler.cli.common import report
    from compiler.installed import versions

    report(versions())
    ctx.exit(0)


@click.group(name="chapctl", cls=ChapctlGroup, context_settings=CONTEXT)
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Print chapctl's version and the Prefect release it is built for, and exit.")
def app() -> None:
    """Compile DHIS2/CHAP forecast projects (projects/*.yaml) into Prefect deployments and apply
    them to a Prefect server."""


for _group in (init_cmds, compile_cmds, review_cmds, server, status_cmds, preflight_cmds, import_cmds):
    _group.register(app)


def main() -> None:
    # chapctl's models need no pydantic plugins, and discovering them scans every installed
    # package's metadata (~20 ms per command); an explicit user setting wins.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    if os.environ.get("CHAPCTL_LOG_LEVEL"):
        import logging

        logging.basicConfig(level=os.environ["CHAPCTL_LOG_LEVEL"])
    app(prog_name="chapctl")
