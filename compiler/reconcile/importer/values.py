"""The value objects between import's parts: what `read` gives (`ServerState`, `RepoState`), what
`map_server` gives (`ImportResult`, its `ImportedProject`s and `Finding`s), and the names they share."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from compiler.constants import EXIT_OK

FLOW_NAME = "dhis2-chap-prediction"
# The flow's parameters a project expresses (flows/dhis2_chap_prediction.py; tests/unit_plan/
# test_import_mapping.py checks they are the flow's). Any other parameter is reported, never dropped.
FLOW_PARAMETERS = ("credentials", "end_mode", "end_date", "end_period_offset", "configured_model_id",
                   "prediction_setup_id")
# The first line of a project imported from a deployment: what a second import recognises it by.
ORIGIN = "# Imported by `chapctl import` from deployment {id}"
ORIGIN_LINE = re.compile(r"^# Imported by `chapctl import` from deployment ([0-9a-f-]{36})$", re.M)


@dataclass(frozen=True)
class ImportOptions:
    dry_run: bool = False  # compute and report; write nothing


@dataclass(frozen=True)
class Finding:
    """Something the operator must know: `kind` is `unmapped` (not imported, with the object's id),
    `secret` (an environment variable to set), `serve` (a flow.serve() process to stop), `kept`
    (an existing file or project left alone) or `note`."""

    kind: str
    object: str  # e.g. "schedule 0b7e… of deployment dhis2-chap-prediction/chap-scheduler"
    message: str
    id: str | None = None
    variable: str | None = None  # for `secret`: the environment variable's name (never its value)

    def to_json(self) -> dict[str, Any]:
        out = {"kind": self.kind, "object": self.object, "message": self.message}
        if self.id:
            out["id"] = self.id
        if self.variable:
            out["variable"] = self.variable
        return out


@dataclass(frozen=True)
class ImportedProject:
    name: str
    path: str  # projects/<name>.yaml
    source: str  # what it was made from, in words
    replaces: tuple[str, str] | None  # (deployment, schedule id) of its first schedule
    in_place: bool  # the deployment itself is taken over under its own name
    schedule_ids: tuple[str, ...] = ()  # every hand-made schedule it takes over (one per `schedules:` entry)


@dataclass
class ImportResult:
    url: str
    server_version: str
    files: dict[str, str] = field(default_factory=dict)  # relative path -> exact text (written, or to write)
    projects: list[ImportedProject] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    deployments_read: int = 0
    schedules_read: int = 0
    written: bool = False
    dry_run: bool = False  # `--dry-run`: `files` are what import would write

    @property
    def exit_code(self) -> int:
        return EXIT_OK  # what cannot be imported is a finding, not a failure

    def of_kind(self, kind: str) -> list[Finding]:
        return [f for f in self.findings if f.kind == kind]

    def to_json(self) -> dict[str, Any]:
        return {
            "server": {"url": self.url, "version": self.server_version},
            "read": {"deployments": self.deployments_read, "schedules": self.schedules_read},
            "written": self.written,
            "files": self.files,
            "projects": [{"name": p.name, "path": p.path, "source": p.source, "in_place": p.in_place,
                          "replaces": {"deployment": p.replaces[0], "schedule_id": p.replaces[1]} if p.replaces else None,
                          "schedule_ids": list(p.schedule_ids)}
                         for p in self.projects],
            "findings": [f.to_json() for f in self.findings],
        }


@dataclass
class ServerState:
    """What import needs of the server, secrets already gone (see `read.safe_parameters`)."""

    url: str
    server_version: str
    deployments: list[dict[str, Any]]  # of FLOW_NAME: id, name, work_pool_name, paused, tags, description,
    #                                    parameters (safe), pull_steps, version, schedules (id, schedule, active,
    #                                    slug, parameters (safe), max_scheduled_runs, created)
    blocks: dict[str, dict[str, Any]]  # block document id -> {name, slug, anonymous}
    block_names: set[str]  # named documents of the credentials block type
    other_flows: int = 0  # deployments of other flows (not imported)


@dataclass
class RepoState:
    """What import needs of the repository: names in use, schedules already replaced, defaults."""

    project_names: set[str]
    replaced: dict[str, str]  # schedule id -> project file replacing it
    blocks: set[str]  # block names projects use
    defaults_exist: bool
    work_pool: str
    timezone: str
    imported: dict[str, str] = field(default_factory=dict)  # deployment id -> project file imported from it
