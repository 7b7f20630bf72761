"""`chapctl import`: a hand-made Prefect server (the chap-scheduler way) read into project files.

The chap-scheduler way: one deployment of the `dhis2-chap-prediction` flow made by `flow.serve()`
(no work pool), cron schedules added by hand in the UI, each pinning a `chap-dhis2-credentials`
block and an end mode through its parameters; sometimes a few deployments made by `prefect deploy`
(a work pool, the credentials inline, password included).

`import_server(api, root, options)` runs the parts in order:

- `read`: the server (`read_server`: a few bulk requests, block documents without secrets, every
  secret dropped as it is read) and the repository (`read_repo`: names in use, schedules already
  replaced, defaults), into `ServerState` and `RepoState` (`values`);
- `mapping`: `map_server(ServerState, RepoState)`, pure and unit-tested, to an `ImportResult`: the
  exact text of every file, and findings — what could not be mapped (with the object's id: nothing
  is dropped silently), the environment variables to set, what to do after the handover. Names
  come from `naming` (derived from the block, `laos-model-12`; unique against the repository and
  the server; stable for the same server state);
- `write`: the files rendered from `project.yaml.j2` and `defaults.yaml.j2` beside it, with
  compile's YAML scalar quoting; validated before anything is written; an existing file never
  overwritten (left alone, and said so).

The `ImportResult` is `chapctl import`'s result; its reporters are in compiler/output/importer.py.
"""

from __future__ import annotations

from pathlib import Path

from compiler.reconcile.client import PrefectAPI
from compiler.reconcile.importer.mapping import map_server
from compiler.reconcile.importer.naming import cadence, instance_of_block, instance_of_url
from compiler.reconcile.importer.read import read_repo, read_server
from compiler.reconcile.importer.values import (FLOW_NAME, FLOW_PARAMETERS, Finding, ImportedProject, ImportOptions,
                                                ImportResult, RepoState, ServerState)
from compiler.reconcile.importer.write import validate_files, write_files

__all__ = ["FLOW_NAME", "FLOW_PARAMETERS", "Finding", "ImportOptions", "ImportResult", "ImportedProject", "RepoState",
           "ServerState", "cadence", "import_server", "instance_of_block", "instance_of_url", "map_server",
           "read_repo", "read_server"]


def import_server(api: PrefectAPI, root: Path, options: ImportOptions | None = None) -> ImportResult:
    """Read the server, map it, validate the files, and write them unless `options.dry_run`.
    Existing files are never overwritten."""
    options = options or ImportOptions()
    repo = read_repo(root)
    result = map_server(read_server(api), repo)
    result.dry_run = options.dry_run
    validate_files(root, result)
    write_files(root, result, options.dry_run)
    return result
