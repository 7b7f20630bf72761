"""`chapctl import`: a hand-made Prefect server (the chap-scheduler way) read into project files.

The chap-scheduler way: one deployment of the `dhis2-chap-prediction` flow made by `flow.serve()`
(no work pool), cron schedules added by hand in the UI, each pinning a `chap-dhis2-credentials`
block and an end mode through its parameters; sometimes a few deployments made by `prefect deploy`
(a work pool, the credentials inline, password included).

`import_server(api, root, options)` reads the server (`read_server`: a few bulk requests, block
documents without secrets) and maps it (`map_server`: pure, unit-tested) to an `ImportResult`:
the exact text of every file it writes, and findings — what could not be mapped (with the object's
id: nothing is dropped silently), the environment variables to set, what to do after the handover.

- Every cron schedule of every deployment: the parameters the schedule's runs get (the
  deployment's, overridden by the schedule's), its cron, time zone and active state, and
  `replaces: {deployment, schedule_id}` so that `apply --adopt` pauses it (never deletes it) in the
  same apply that creates the project's deployment. Schedules of one deployment that share
  credentials and model are one project with a `schedules:` entry each (each entry `replaces` its
  own); the others a project each. A served deployment's projects use the default work pool.
- A deployment made by `prefect deploy` whose schedules all map to one project keeps its name (so
  that `apply --adopt` takes it over in place, every schedule kept with its id); otherwise each
  group is a new project replacing its schedules and the deployment stays. Inline credentials become
  a block chapctl manages (base_url, username, a `password_env` to set): the password is neither
  kept nor written anywhere.
- Names are derived from the block (`laos-model-12`), made unique against the repository and the
  server, and stable for the same server state; every value carries a comment saying where it
  came from. The files are validated before anything is written; an existing file is never
  overwritten (left alone, and said so), and a schedule an existing project already replaces is
  not imported twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compiler.constants import BLOCK_TYPE_SLUG, MANAGED_TAG, OWNER_TAG_PREFIX, written_out
from compiler.reconcile.client import PrefectAPI
from compiler.reconcile.ownership import deployment_owner

FLOW_NAME = "dhis2-chap-prediction"
# The flow's parameters a project expresses (flows/dhis2_chap_prediction.py; tests/unit_plan/
# test_import_mapping.py checks they are the flow's). Any other parameter is reported, never dropped.
FLOW_PARAMETERS = ("credentials", "end_mode", "end_date", "end_period_offset", "configured_model_id",
                   "prediction_setup_id")
END_MODES = ("calculated", "fixed", "offset")
NAME = re.compile(r"^[a-z0-9-]{1,63}$")
_BLOCK_TEMPLATE = re.compile(r"^\{\{\s*prefect\.blocks\.([a-z0-9-]+)\.([A-Za-z0-9_.-]+)\s*\}\}$")
_URL = re.compile(r"^https?://[^\s/@]+(/\S*)?$")
_TAG = re.compile(r"^[A-Za-z0-9_.:/ +@()-]{1,100}$")
# The first line of a project imported from a deployment: what a second import recognises it by.
_ORIGIN = "# Imported by `chapctl import` from deployment {id}"
_ORIGIN_LINE = re.compile(r"^# Imported by `chapctl import` from deployment ([0-9a-f-]{36})$", re.M)
_HOST_NOISE = {"www", "dhis", "dhis2", "hmis", "play", "api"}
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")
HEADER = "# yaml-language-server: $schema=../schema/project.schema.json\n"
DEFAULTS_HEADER = "# yaml-language-server: $schema=../schema/defaults.schema.json\n"


# -- value objects ----------------------------------------------------------------------------------
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
    """What import needs of the server, secrets already gone (see `_safe_parameters`)."""

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


# -- reading ----------------------------------------------------------------------------------------
def read_server(api: PrefectAPI) -> ServerState:
    with api.reading():
        return _read_server(api)


def _read_server(api: PrefectAPI) -> ServerState:
    version = api.server_version()
    rows = api.filter_all("/deployments/filter", {"flows": {"name": {"any_": [FLOW_NAME]}}, "sort": "NAME_ASC"})
    deployments = [_safe_deployment(r) for r in rows]
    ids = sorted({bid for d in deployments for p in [d["parameters"]] + [s["parameters"] for s in d["schedules"]]
                  for bid in [_ref_id(p.get("credentials"))] if bid})
    blocks: dict[str, dict[str, Any]] = {}
    if ids:
        for b in api.filter_all("/block_documents/filter", {"block_documents": {"id": {"any_": ids}},
                                                             "include_secrets": False}):
            blocks[b["id"]] = {"name": b.get("name"), "slug": (b.get("block_type") or {}).get("slug"),
                               "anonymous": bool(b.get("is_anonymous"))}
    named = api.filter_all("/block_documents/filter", {
        "block_types": {"slug": {"any_": [BLOCK_TYPE_SLUG]}}, "block_documents": {"is_anonymous": {"eq_": False}},
        "include_secrets": False})
    return ServerState(api.settings.url, version, deployments, blocks, {b["name"] for b in named})


def _safe_deployment(r: dict[str, Any]) -> dict[str, Any]:
    """A deployment row with every secret dropped at once: an inline credentials object keeps only
    its base_url and username; an unknown parameter keeps only its name."""
    return {
        "id": r["id"], "name": r["name"], "work_pool_name": r.get("work_pool_name"), "paused": bool(r.get("paused")),
        "tags": [t for t in r.get("tags") or [] if isinstance(t, str)], "version": r.get("version"),
        "description": r.get("description") if isinstance(r.get("description"), str) else None,
        "parameters": _safe_parameters(r.get("parameters") or {}),
        "pull_steps": _safe_pull_steps(r.get("pull_steps") or []),
        "schedules": sorted(({"id": s["id"], "schedule": s.get("schedule") or {}, "active": s.get("active", True),
                              "slug": s.get("slug"), "parameters": _safe_parameters(s.get("parameters") or {}),
                              "max_scheduled_runs": s.get("max_scheduled_runs"), "created": s.get("created") or ""}
                             for s in r.get("schedules") or []), key=lambda s: (s["created"], s["id"])),
    }


def _safe_parameters(params: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in params.items():
        if key == "credentials":
            out[key] = _safe_credentials(value)
        elif key in FLOW_PARAMETERS and (value is None or isinstance(value, (str, int, float, bool))):
            out[key] = value
        else:
            out[key] = _UNKNOWN  # its value is never kept (it may be a secret)
    return out


_UNKNOWN = {"$unknown": True}


def _safe_credentials(value: Any) -> Any:
    if isinstance(value, dict) and "$ref" in value:
        return {"$ref": {"block_document_id": _ref_id(value)}}
    if isinstance(value, dict):
        return {"inline": True, "base_url": value.get("base_url") if isinstance(value.get("base_url"), str) else None,
                "username": value.get("username") if isinstance(value.get("username"), str) else None,
                "has_password": bool(value.get("password"))}
    if isinstance(value, str) and _BLOCK_TEMPLATE.match(value):
        return value
    return _UNKNOWN if value is not None else None


def _safe_pull_steps(steps: list[Any]) -> list[dict[str, Any]]:
    out = []
    for step in steps if isinstance(steps, list) else []:
        if isinstance(step, dict) and len(step) == 1:
            (name, args), = step.items()
            if name.endswith("git_clone") and isinstance(args, dict) and isinstance(args.get("repository"), str):
                out.append({"git_clone": {"repository": args["repository"], "branch": args.get("branch")}})
    return out


def _ref_id(value: Any) -> str | None:
    if isinstance(value, dict) and "$ref" in value:
        inner = value["$ref"]
        if isinstance(inner, dict):
            return str(inner.get("block_document_id") or "") or None
        if isinstance(inner, str):
            return inner
    return None


def read_repo(root: Path) -> RepoState:
    from compiler.compile.load import load_repo
    from compiler.compile.models import DEFAULT_TIMEZONE, DEFAULT_WORK_POOL

    loaded = load_repo(root)
    names, replaced, blocks, imported = set(), {}, set(), {}
    for path in (root / "projects").glob("*.yaml"):
        names.add(path.stem)
    for source in loaded.projects:
        for origin in _ORIGIN_LINE.findall(source.text or ""):
            imported.setdefault(origin, source.path)
        data = source.data if isinstance(source.data, dict) else {}
        entries = data.get("schedules") if isinstance(data.get("schedules"), list) else []
        for rep in [data.get("replaces")] + [e.get("replaces") for e in entries if isinstance(e, dict)]:
            if isinstance(rep, dict) and isinstance(rep.get("schedule_id"), str):
                replaced[rep["schedule_id"]] = source.path
        creds = data.get("credentials")
        if isinstance(creds, dict) and isinstance(creds.get("block"), str):
            blocks.add(creds["block"])
    defaults = loaded.defaults.data if loaded.defaults is not None and isinstance(loaded.defaults.data, dict) else {}
    return RepoState(names, replaced, blocks, (root / "projects" / "_defaults.yaml").exists(),
                     str(defaults.get("work_pool") or DEFAULT_WORK_POOL), str(defaults.get("timezone") or DEFAULT_TIMEZONE),
                     imported)


# -- mapping (pure) ---------------------------------------------------------------------------------
@dataclass
class _Draft:
    """One project before its name is chosen."""

    base: str  # the readable name before it is made unique
    fields: dict[str, Any]  # name-less project data, in file order
    comments: dict[str, str]  # dotted field -> where the value came from
    header: list[str]
    source: str
    replaces: tuple[str, str] | None
    in_place: bool
    order: tuple  # stable order among drafts with the same base
    cron: str | None = None
    schedule_ids: tuple[str, ...] = ()  # every hand-made schedule it takes over


class _Blocks:
    """Managed blocks for inline credentials: one per (base_url, username), names unique."""

    def __init__(self, taken: set[str]):
        self.taken = set(taken)
        self.by_login: dict[tuple[str, str], str] = {}

    def name_for(self, base_url: str, username: str) -> tuple[str, bool]:
        key = (base_url, username)
        if key in self.by_login:
            return self.by_login[key], False
        instance = instance_of_url(base_url)
        candidates = [f"{instance}-dhis2", _slug(f"{instance}-{username}-dhis2")]
        name = next((c for c in candidates if c and c not in self.taken), None) or _unique(candidates[0], self.taken)
        self.taken.add(name)
        self.by_login[key] = name
        return name, True


def map_server(state: ServerState, repo: RepoState) -> ImportResult:
    """The files and findings for `state` (pure: the same state gives the same bytes)."""
    result = ImportResult(state.url, state.server_version, deployments_read=len(state.deployments),
                          schedules_read=sum(len(d["schedules"]) for d in state.deployments))
    drafts: list[_Draft] = []
    blocks = _Blocks(state.block_names | repo.blocks)
    served_with_projects: dict[str, list[str]] = {}
    managed: list[str] = []
    for d in state.deployments:
        label = f"{FLOW_NAME}/{d['name']}"
        if deployment_owner(d) is not None:
            managed.append(d["name"])
            continue
        if d["work_pool_name"]:
            drafts += _plain_deployment(d, label, repo, state, blocks, result)
            continue
        made = _served_deployment(d, label, repo, state, blocks, result)
        drafts += made
        if made:
            served_with_projects[label] = [s["id"] for s in d["schedules"]]
    if managed:
        result.findings.append(Finding("kept", f"{len(managed)} deployment(s) chapctl manages",
                                       "not imported: " + ", ".join(managed)))
    taken = repo.project_names | {d["name"] for d in state.deployments}
    for draft, name in _choose_names(drafts, taken):
        path = f"projects/{name}.yaml"
        result.files[path] = _render_project(name, draft)
        result.projects.append(ImportedProject(name, path, draft.source, draft.replaces, draft.in_place,
                                               draft.schedule_ids))
    for label, ids in sorted(served_with_projects.items()):
        handed = {i for p in result.projects if p.replaces and p.replaces[0] == label for i in p.schedule_ids}
        left = [i for i in ids if i not in handed and i not in repo.replaced]
        message = ("made by flow.serve() (no work pool): its runs go to the process serving it. Its imported schedules "
                   f"run in work pool {repo.work_pool!r} once `chapctl apply --adopt` has paused them; then stop that "
                   "process (a worker must serve the pool)")
        if left:
            message += (f". {len(left)} schedule(s) of it were not imported (listed above) and keep running there "
                        "only while that process runs")
        result.findings.append(Finding("serve", f"deployment {label}", message))
    if not repo.defaults_exist and result.projects:
        result.files["projects/_defaults.yaml"] = _render_defaults(state, repo)
    result.files = dict(sorted(result.files.items()))
    return result


@dataclass
class _Mapped:
    """One cron schedule of a deployment, mapped: the project fields its runs need, and its own."""

    s: dict[str, Any]
    fields: dict[str, Any]  # credentials, model_id, end mode, setup: the parameters its runs get
    comments: dict[str, str]
    schedule: dict[str, Any]  # cron, timezone, active
    schedule_comments: dict[str, str]

    def key(self) -> tuple:
        """What one project holds for all its schedules (a schedule overrides only the end mode and
        the setup, and cannot unset the setup)."""
        return (repr(self.fields["credentials"]), self.fields["model_id"], "prediction_setup_id" in self.fields)


_END = ("end_mode", "end_period_offset", "end_date")


def _map_schedules(d: dict[str, Any], label: str, repo: RepoState, state: ServerState, blocks: _Blocks,
                   result: ImportResult) -> tuple[list[_Mapped], list[dict[str, Any]]]:
    """Every schedule of `d` not imported yet: mapped, or reported with its id (returned as left)."""
    mapped, left = [], []
    for s in d["schedules"]:
        what = f"schedule {s['id']} of deployment {label}"
        if s["id"] in repo.replaced:
            result.findings.append(Finding("kept", what, f"already imported: {repo.replaced[s['id']]} replaces it",
                                           s["id"]))
            continue
        problems: list[str] = []
        params, origin = _effective(d["parameters"], s["parameters"])
        holder = what if "credentials" in s["parameters"] else f"deployment {label}"  # who holds the credentials
        fields, comments = _map_parameters(params, origin, state, blocks, holder, problems, result)
        schedule = _map_schedule(s, d, what, problems, result)
        if problems:
            result.findings.append(Finding("unmapped", what, "; ".join(problems), s["id"]))
            left.append(s)
            continue
        mapped.append(_Mapped(s, fields, comments, *schedule))
    return mapped, left


def _groups(mapped: list[_Mapped]) -> list[list[_Mapped]]:
    """Schedules that share credentials and model (and differ at most in end mode and setup): one
    project with a `schedules:` entry each; the others a project each."""
    groups: dict[tuple, list[_Mapped]] = {}
    for m in mapped:
        groups.setdefault(m.key(), []).append(m)
    return list(groups.values())


def _group_fields(group: list[_Mapped], label: str, in_place: bool) -> tuple[dict[str, Any], dict[str, str]]:
    """The project fields of a group: the first schedule's parameters; `schedule:` and `replaces:`
    for one schedule, else `schedules:` entries (slug from the cadence, parameter overrides, the
    schedule each replaces)."""
    first = group[0]
    fields, comments = dict(first.fields), dict(first.comments)
    how = ("its own schedule: apply --adopt keeps it, with its id and runs" if in_place else
           "apply --adopt pauses it (never deletes it) as it creates this project")
    if len(group) == 1:
        fields["schedule"] = first.schedule
        comments.update(first.schedule_comments)
        fields["replaces"] = {"deployment": label, "schedule_id": first.s["id"]}
        comments["replaces"] = how
        return fields, comments
    entries, slugs = [], set()
    for m in group:
        slug = _unique(cadence(m.schedule["cron"]) or "schedule", slugs)
        slugs.add(slug)
        overrides = {}
        if any(m.fields.get(k) != first.fields.get(k) for k in _END):
            overrides.update({k: m.fields[k] for k in _END if k in m.fields})
        if m.fields.get("prediction_setup_id") != first.fields.get("prediction_setup_id"):
            overrides["prediction_setup_id"] = m.fields["prediction_setup_id"]
        entry = {"slug": slug, **m.schedule}
        if overrides:
            entry["parameters"] = overrides
        entry["replaces"] = {"deployment": label, "schedule_id": m.s["id"]}
        entries.append(entry)
    fields["schedules"] = entries
    comments["schedules"] = (f"{len(group)} schedules sharing credentials and model; each `replaces` its own: " + how)
    return fields, comments


def _served_deployment(d: dict[str, Any], label: str, repo: RepoState, state: ServerState, blocks: _Blocks,
                       result: ImportResult) -> list[_Draft]:
    if not d["schedules"]:
        result.findings.append(Finding("unmapped", f"deployment {label}", "made by flow.serve() with no schedule: "
                                       "nothing to import (it runs only when triggered)", d["id"]))
    mapped, _left = _map_schedules(d, label, repo, state, blocks, result)
    drafts = []
    for group in _groups(mapped):
        drafts.append(_new_project(d, label, group, repo, result,
                                   [f"# of deployment {label}, made by flow.serve() (no work pool):",
                                    f"# this project runs in the default work pool, {repo.work_pool!r}. Its parameters "
                                    "are the", "# ones the schedule's runs got: the schedule's own, over the "
                                    "deployment's."]))
    return drafts


def _new_project(d: dict[str, Any], label: str, group: list[_Mapped], repo: RepoState, result: ImportResult,
                 header: list[str], pool: str | None = None, name: str = "") -> _Draft:
    """A project (a new deployment) taking over the schedules of `group`, each paused by apply --adopt."""
    fields, comments = _group_fields(group, label, in_place=False)
    base = name or _base_name(fields)
    ids = [m.s["id"] for m in group]
    first = group[0].s
    fields["description"] = written_out(f"Imported from schedule{'s' if len(ids) > 1 else ''} "
                                        f"{', '.join(m.s.get('slug') or m.s['id'] for m in group)} of {label}",
                                        one_line=True)
    _pool_and_tags(d, fields, comments, repo, result, f"schedule {first['id']} of deployment {label}", pool)
    header = [f"# Imported by `chapctl import` from schedule{'s' if len(ids) > 1 else ''} {', '.join(ids)}"
              + (f" ({first['slug']})" if first.get("slug") and len(ids) == 1 else ""), *header]
    schedule = group[0].schedule
    return _Draft(base, _ordered(fields), comments, header, f"schedule{'s' if len(ids) > 1 else ''} "
                  f"{', '.join(ids)} of {label}", (label, first["id"]), False,
                  (schedule["cron"], schedule["timezone"], first["id"]), schedule["cron"], tuple(ids))


def _pool_and_tags(d: dict[str, Any], fields: dict[str, Any], comments: dict[str, str], repo: RepoState,
                   result: ImportResult, what: str, pool: str | None) -> None:
    if pool and pool != repo.work_pool:
        if NAME.match(pool):
            fields["work_pool"] = pool
            comments["work_pool"] = "the deployment's work pool"
        else:
            result.findings.append(Finding("note", what, f"work pool {pool!r} is not a valid project work_pool: the "
                                           f"project uses the default, {repo.work_pool!r}", d["id"]))
    tags, dropped = _tags(d["tags"])
    if tags:
        fields["tags"] = tags
        comments["tags"] = "the deployment's tags"
    if dropped:
        result.findings.append(Finding("note", what, f"{len(dropped)} tag(s) of the deployment not kept "
                                       "(not a plain tag)", d["id"]))


def _plain_deployment(d: dict[str, Any], label: str, repo: RepoState, state: ServerState, blocks: _Blocks,
                      result: ImportResult) -> list[_Draft]:
    """A deployment made by `prefect deploy`. When every schedule of it maps to one project (the same
    credentials and model) and its name is a project name, that project takes it over in place;
    otherwise each group of schedules becomes a new project replacing them (paused by apply
    --adopt), and the deployment stays as it is, with what could not be mapped still on it."""
    what = f"deployment {label}"
    in_place = bool(NAME.match(d["name"]))
    if in_place and d["name"] in repo.project_names:
        result.findings.append(Finding("kept", what, f"projects/{d['name']}.yaml exists: left alone (not "
                                       "overwritten)", d["id"]))
        return []
    if d["id"] in repo.imported:  # recognised by what the project records, whatever name it was given
        result.findings.append(Finding("kept", what, f"already imported: {repo.imported[d['id']]}", d["id"]))
        return []
    pool = d["work_pool_name"]
    mapped, left = _map_schedules(d, label, repo, state, blocks, result)
    groups = _groups(mapped)
    if not d["schedules"]:  # triggered only: the deployment's own parameters
        problems: list[str] = []
        fields, comments = _map_parameters(*_effective(d["parameters"], {}), state, blocks, what, problems, result)
        if problems:
            result.findings.append(Finding("unmapped", what, "; ".join(problems), d["id"]))
            return []
    elif in_place and len(groups) == 1 and not left and len(mapped) == len(d["schedules"]):
        fields, comments = _group_fields(groups[0], label, in_place=True)
    else:
        if not mapped:
            return []
        header = [f"# of deployment {label} ({d['id']}), made by `prefect deploy` (work pool {pool!r}).",
                  "# A new deployment that replaces them: the old deployment stays, its other schedules on it."]
        if left or len(groups) > 1:
            result.findings.append(Finding("note", what, f"its schedules map to {len(groups)} project(s)"
                                           + (f" and {len(left)} schedule(s) could not be mapped" if left else "")
                                           + ": it is not taken over in place; each project replaces its own "
                                           "schedules (apply --adopt pauses them), and the deployment keeps the "
                                           "others as they are", d["id"]))
        name = _slug(d["name"]) if len(groups) == 1 else ""  # the deployment's name, as a project name
        return [_new_project(d, label, g, repo, result, header, pool, name) for g in groups]
    if d["description"] and len(d["description"]) <= 2000:
        fields["description"] = written_out(d["description"])
        comments["description"] = "the deployment's description"
    _pool_and_tags(d, fields, comments, repo, result, what, pool)
    replaces = (label, d["schedules"][0]["id"]) if d["schedules"] else None
    header = [_ORIGIN.format(id=d["id"]),
              f"# ({label}), made by `prefect deploy` (work pool {pool!r}).",
              "# Same name: `chapctl apply --adopt` takes that deployment over in place, its schedules kept." if in_place
              else "# Its name is not a project name: this project is a new deployment (the old one stays)."]
    cron = (fields.get("schedule") or (fields.get("schedules") or [{}])[0]).get("cron")
    base = d["name"] if in_place else (_slug(d["name"]) or _base_name(fields))
    return [_Draft(base, _ordered(fields), comments, header, f"deployment {label}", replaces, in_place,
                   (d["name"],), cron, tuple(s["id"] for s in d["schedules"]))]


def _effective(deployment: dict[str, Any], schedule: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The parameters a scheduled run gets (the schedule's over the deployment's), and where each came from."""
    params = {**deployment, **schedule}
    origin = {k: ("the schedule's parameters" if k in schedule else "the deployment's parameters") for k in params}
    return params, origin


def _map_parameters(params: dict[str, Any], origin: dict[str, str], state: ServerState, blocks: _Blocks, what: str,
                    problems: list[str], result: ImportResult) -> tuple[dict[str, Any], dict[str, str]]:
    fields: dict[str, Any] = {}
    comments: dict[str, str] = {}
    unknown = sorted(k for k, v in params.items() if k not in FLOW_PARAMETERS)
    if unknown:
        problems.append(f"parameter(s) a project cannot hold: {', '.join(unknown)}")
    for key in FLOW_PARAMETERS:
        if params.get(key) is _UNKNOWN:
            problems.append(f"parameter {key} has a value of the wrong type")
    creds = params.get("credentials")
    from_ = origin.get("credentials", "")
    block_id = _ref_id(creds)
    if creds is None:
        problems.append("no credentials parameter (the flow needs a DHIS2 credentials block)")
    elif block_id:
        block = state.blocks.get(block_id)
        if block is None:
            problems.append(f"its credentials name block document {block_id}, which is not on the server")
        elif block["slug"] != BLOCK_TYPE_SLUG:
            problems.append(f"its credentials name block document {block_id} of type {block['slug']!r}, "
                            f"not {BLOCK_TYPE_SLUG!r}")
        elif block["anonymous"] or not NAME.match(str(block["name"] or "")):
            problems.append(f"its credentials name block document {block_id}, whose name {block['name']!r} a "
                            "project cannot refer to (1-63 of a-z, 0-9, '-')")
        else:
            fields["credentials"] = {"block": block["name"]}
            comments["credentials.block"] = f"block document {block_id}, in {from_}"
    elif isinstance(creds, str) and (m := _BLOCK_TEMPLATE.match(creds)) and m.group(1) == BLOCK_TYPE_SLUG \
            and NAME.match(m.group(2)):
        fields["credentials"] = {"block": m.group(2)}
        comments["credentials.block"] = f"block reference in {from_}"
    elif isinstance(creds, dict) and creds.get("inline"):
        base_url, username = (creds.get("base_url") or "").strip().rstrip("/"), creds.get("username") or ""
        if not _URL.match(base_url) or not username:
            problems.append("its inline credentials have no usable base_url (http(s), no user:password) or username")
        else:
            name, new = blocks.name_for(base_url, username)
            variable = name.upper().replace("-", "_") + "_PASSWORD"
            fields["credentials"] = {"block": name, "base_url": base_url, "username": username,
                                     "password_env": variable}
            comments["credentials.block"] = f"new block chapctl manages: inline in {from_}"
            comments["credentials.base_url"] = f"from {from_}"
            comments["credentials.username"] = f"from {from_}"
            comments["credentials.password_env"] = "set it before apply: the password is not copied"
            if new:
                result.findings.append(Finding(
                    "secret", what, f"its credentials were inline (password included): block {name!r} ({base_url}, "
                    f"user {username}) is created with the password from ${variable}: export the DHIS2 password in "
                    "it (import keeps it in no file and no output)", variable=variable))
    else:
        problems.append("its credentials parameter is neither a block reference nor inline credentials")
    model = params.get("configured_model_id")
    if model is None:
        problems.append("no configured_model_id (a project runs one CHAP configured model: add `model_id` by hand "
                        "in a project of your own)")
    elif not _positive(model):
        problems.append("configured_model_id is not a positive integer")
    else:
        fields["model_id"] = model
        comments["model_id"] = f"configured_model_id, from {origin['configured_model_id']}"
    mode = params.get("end_mode")
    if mode is None:
        mode = "calculated"
        comments["end_mode"] = "not set: the flow's default"
    elif mode not in END_MODES:
        problems.append(f"end_mode {mode!r} is not one of {', '.join(END_MODES)}")
    else:
        comments["end_mode"] = f"from {origin['end_mode']}"
    fields["end_mode"] = mode
    offset, end_date = params.get("end_period_offset"), params.get("end_date")
    if mode == "offset":
        if not (isinstance(offset, int) and not isinstance(offset, bool) and offset >= 0):
            problems.append("end_mode offset without a whole end_period_offset >= 0")
        else:
            fields["end_period_offset"] = offset
            comments["end_period_offset"] = f"from {origin['end_period_offset']}"
    elif offset is not None:
        problems.append(f"end_period_offset is set but end_mode is {mode} (the flow refuses that)")
    if mode == "fixed":
        if not (isinstance(end_date, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", end_date) and _date_ok(end_date)):
            problems.append("end_mode fixed without an ISO end_date (YYYY-MM-DD)")
        else:
            fields["end_date"] = _Date(end_date)
            comments["end_date"] = f"from {origin['end_date']}"
    elif end_date is not None:
        problems.append(f"end_date is set but end_mode is {mode} (the flow refuses that)")
    setup = params.get("prediction_setup_id")
    if setup is not None:
        if not _positive(setup):
            problems.append("prediction_setup_id is not a positive integer")
        else:
            fields["prediction_setup_id"] = setup
            comments["prediction_setup_id"] = f"from {origin['prediction_setup_id']}"
    return fields, comments


def _map_schedule(s: dict[str, Any], d: dict[str, Any], what: str, problems: list[str],
                  result: ImportResult) -> tuple[dict[str, Any], dict[str, str]] | None:
    from compiler.compile.cron import cron_problem
    from compiler.compile.timezones import timezones

    sched = s["schedule"]
    if "cron" not in sched:
        kind = "an interval" if "interval" in sched else "an rrule" if "rrule" in sched else "a non-cron"
        detail = f" (every {_seconds(sched['interval'])} s)" if "interval" in sched else ""
        problems.append(f"{kind} schedule{detail}: chapctl projects use cron schedules")
        return None
    cron, zone = str(sched["cron"]), sched.get("timezone") or "UTC"
    problem = cron_problem(cron)
    if problem:
        problems.append(f"cron {cron!r}: {problem}")
    if zone not in timezones():
        problems.append(f"time zone {zone!r} is not in the IANA list chapctl uses")
    if sched.get("day_or") is False:
        problems.append("day_or is false (a day must match both day-of-month and day-of-week): projects cannot say so")
    if problems:
        return None
    active = s.get("active") is not False and not d["paused"]
    comments = {"schedule.cron": f"schedule {s['id']}", "schedule.timezone": f"schedule {s['id']}"
                + ("" if sched.get("timezone") else " (none set: Prefect uses UTC)"),
                "schedule.active": "the schedule is " + ("paused" if s.get("active") is False else "active")
                + (" and its deployment is paused" if d["paused"] else "")}
    if s.get("max_scheduled_runs") is not None:
        result.findings.append(Finding("note", what, f"max_scheduled_runs {s['max_scheduled_runs']} is not kept: "
                                       "chapctl schedules use the server's scheduler settings", s["id"]))
    return {"cron": cron, "timezone": zone, "active": active}, comments


def _seconds(value: Any) -> str:
    return str(int(value)) if isinstance(value, (int, float)) and float(value).is_integer() else str(value)


class _Date(str):
    """An ISO date written as a plain YAML date."""


def _positive(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _date_ok(text: str) -> bool:
    import datetime as dt

    try:
        dt.date.fromisoformat(text)
        return True
    except ValueError:
        return False


def _tags(tags: list[str]) -> tuple[list[str], list[str]]:
    kept, dropped = [], []
    for tag in tags:
        if tag in (MANAGED_TAG, "auto-scheduled") or tag.startswith(OWNER_TAG_PREFIX):
            continue
        (kept if _TAG.match(tag) else dropped).append(tag)
    return sorted(dict.fromkeys(kept)), dropped


_ORDER = ("description", "credentials", "model_id", "end_mode", "end_period_offset", "end_date",
          "prediction_setup_id", "schedule", "schedules", "tags", "work_pool", "replaces")


def _ordered(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: fields[k] for k in _ORDER if k in fields}


# -- names ------------------------------------------------------------------------------------------
def _slug(text: str) -> str:
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9]+", "-", text.lower())).strip("-")[:63].strip("-")


def instance_of_block(name: str) -> str:
    """`laos-dhis2` -> `laos`: the DHIS2 instance a credentials block names, for project names."""
    text = name
    for suffix in ("-dhis2-credentials", "-dhis2-creds", "-credentials", "-creds", "-dhis2", "-dhis"):
        if text.endswith(suffix) and len(text) > len(suffix):
            text = text[: -len(suffix)]
            break
    for prefix in ("dhis2-", "dhis-"):
        if text.startswith(prefix) and len(text) > len(prefix):
            text = text[len(prefix):]
    return _slug(text) or _slug(name) or "dhis2"


def instance_of_url(url: str) -> str:
    """`https://dhis2.la.example.org/dhis` -> `la`: the distinctive part of a DHIS2 host name."""
    from urllib.parse import urlsplit

    host = (urlsplit(url).hostname or "").lower()
    if re.fullmatch(r"[\d.]+|localhost", host):
        return _slug(host) or "dhis2"
    labels = [label for label in host.split(".") if label and label not in _HOST_NOISE]
    if len(labels) > 2:
        labels = labels[:-2]  # drop the registered domain (example.org)
    return _slug("-".join(labels)) or "dhis2"


def _base_name(fields: dict[str, Any]) -> str:
    creds = fields.get("credentials") or {}
    instance = instance_of_url(creds["base_url"]) if creds.get("base_url") else instance_of_block(creds.get("block", ""))
    name = f"{instance}-model-{fields.get('model_id')}"
    if fields.get("prediction_setup_id") is not None:
        name += f"-setup-{fields['prediction_setup_id']}"
    return _slug(name)


def cadence(cron: str) -> str:
    """A short, name-safe word for when a cron runs: `0 6 * * 1` -> `mon-0600`, `30 5 2 * *` ->
    `day2-0530`, `0 6 * * *` -> `daily-0600`, `@weekly` -> `weekly`."""
    text = cron.strip().lower()
    if text.startswith("@"):
        return _slug(text[1:])
    fields = text.split()
    if len(fields) != 5:
        return ""
    minute, hour, dom, _month, dow = fields
    time = f"{int(hour):02d}{int(minute):02d}" if minute.isdigit() and hour.isdigit() else ""
    if dow != "*" and dom == "*":
        day = _days(dow)
    elif dom != "*" and dow == "*":
        day = "day" + dom.replace(",", "-") if re.fullmatch(r"[\d,]+", dom) else "monthly"
    elif dom == "*" and dow == "*":
        day = "daily" if hour.isdigit() else "hourly"
    else:
        day = "custom"
    return _slug("-".join(part for part in (day, time) if part))


def _days(dow: str) -> str:
    if re.fullmatch(r"\d(-\d)?(,\d(-\d)?)*", dow):
        return "-".join("to".join(_DAYS[int(x) % 8] for x in part.split("-")) for part in dow.split(","))
    return "weekly"


def _unique(name: str, taken: set[str]) -> str:
    if name not in taken:
        return name
    n = 2
    while f"{name[:59]}-{n}" in taken:
        n += 1
    return f"{name[:59]}-{n}"


def _choose_names(drafts: list[_Draft], taken: set[str]) -> list[tuple[_Draft, str]]:
    """Readable, unique, stable names: the base name; when several share it, the cadence of their
    cron; then a number, in the order of (cron, time zone, schedule id)."""
    taken = set(taken)
    out: list[tuple[_Draft, str]] = []
    in_place = [d for d in drafts if d.in_place]
    for d in in_place:  # the deployment's own name: already unique on the server
        taken.add(d.base)
        out.append((d, d.base))
    groups: dict[str, list[_Draft]] = {}
    for d in drafts:
        if not d.in_place:
            groups.setdefault(d.base, []).append(d)
    for base in sorted(groups):
        members = sorted(groups[base], key=lambda d: d.order)
        for d in members:
            wanted = base
            if len(members) > 1 or base in taken:
                wanted = _slug(f"{base}-{cadence(d.cron or '')}") if d.cron and cadence(d.cron) else base
            name = _unique(wanted, taken)
            taken.add(name)
            out.append((d, name))
    return sorted(out, key=lambda pair: pair[1])


# -- rendering --------------------------------------------------------------------------------------
def _scalar(value: Any) -> str:
    from compiler.compile.render import yaml_scalar

    if isinstance(value, _Date):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(yaml_scalar(v) for v in value) + "]" if value else "[]"
    return yaml_scalar(value)


def _comment(text: str) -> str:
    """Text for a YAML comment: server text in it (names, slugs) can never end the comment."""
    return written_out(text, one_line=True)


def _line(indent: int, key: str, value: str, comment: str | None) -> str:
    text = f"{' ' * indent}{key}:{(' ' + value) if value else ''}"
    if comment:
        text = f"{text:<42} # {_comment(comment)}"
    return text


def _render_project(name: str, draft: _Draft) -> str:
    lines = [HEADER.rstrip("\n"), *map(_comment, draft.header),
             _line(0, "name", _scalar(name), "= file name = deployment name")]
    for key, value in draft.fields.items():
        if key == "schedules":
            lines.append(_line(0, key, "", draft.comments.get(key)))
            for entry in value:
                lines += _entry_lines(entry)
        elif isinstance(value, dict):
            lines.append(_line(0, key, "", draft.comments.get(key)))
            for sub, item in value.items():
                lines.append(_line(2, sub, _scalar(item), draft.comments.get(f"{key}.{sub}")))
        else:
            lines.append(_line(0, key, _scalar(value), draft.comments.get(key)))
    return "\n".join(lines) + "\n"


def _entry_lines(entry: dict[str, Any]) -> list[str]:
    """One `schedules:` entry: `- slug: …`, its cron, time zone, active, then its parameters and replaces."""
    lines = []
    for key, value in entry.items():
        prefix = "- " if not lines else "  "
        if isinstance(value, dict):
            lines.append(f"{prefix}{key}:")
            lines += [f"    {sub}: {_scalar(item)}" for sub, item in value.items()]
        else:
            lines.append(f"{prefix}{key}: {_scalar(value)}")
    return lines


def _render_defaults(state: ServerState, repo: RepoState) -> str:
    repos = sorted({(s["git_clone"]["repository"], s["git_clone"].get("branch") or "main")
                    for d in state.deployments if d["work_pool_name"] and deployment_owner(d) is None
                    for s in d["pull_steps"] if "git_clone" in s})
    lines = [DEFAULTS_HEADER.rstrip("\n"),
             "# Written by `chapctl import` (it writes this file only when it is missing).",
             "# owner: the name of this repository on the Prefect server; plan/apply act only on its objects.",
             "owner: default",
             "timezone: UTC",
             "# The work pool of every project that names none, among them the successors of flow.serve()",
             "# schedules: start a worker for it (`prefect worker start --pool default`).",
             f"work_pool: {_scalar(repo.work_pool)}"]
    usable = [(url, branch) for url, branch in repos if re.match(r"^(https?|ssh|git)://[^@\s]+$|^git@\S+:\S+$", url)]
    if len(usable) == 1:
        url, branch = usable[0]
        lines += ["# Where workers find the flow code: the repository the `prefect deploy` deployments clone.",
                  "source:", "  git:", f"    repository: {_scalar(url)}", f"    branch: {_scalar(branch)}"]
    else:
        lines += ["# Where workers find the flow code: a directory named by an environment variable apply resolves.",
                  "# In production, clone a repository instead:",
                  "#   source: {git: {repository: https://github.com/example/chap-projects.git, branch: main}}",
                  "source:", "  directory_env: CHAPCTL_FLOWS_DIR"]
    return "\n".join(lines) + "\n"


# -- the verb ---------------------------------------------------------------------------------------
def import_server(api: PrefectAPI, root: Path, options: ImportOptions | None = None) -> ImportResult:
    """Read the server, map it, validate the files, and write them unless `options.dry_run`.
    Existing files are never overwritten."""
    options = options or ImportOptions()
    repo = read_repo(root)
    result = map_server(read_server(api), repo)
    _validate(root, result)
    for path in list(result.files):
        if (root / path).exists() or (root / path).is_symlink():  # never overwrite, nor write through a link
            result.findings.append(Finding("kept", path, "exists: left alone (not overwritten)"))
            del result.files[path]
    if not options.dry_run:
        for path, text in result.files.items():
            target = root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "x", encoding="utf-8") as handle:  # "x": refuses an existing file
                handle.write(text)
        result.written = True
    return result


def _validate(root: Path, result: ImportResult) -> None:
    """Validate the repository as it would be with the new files (in a scratch copy); a project
    that does not validate is not written, and said so with chapctl's own message."""
    import shutil
    import tempfile

    from compiler.compile.load import load_repo
    from compiler.compile.validate import validate

    with tempfile.TemporaryDirectory(prefix="chapctl-import-") as tmp:
        scratch = Path(tmp)
        # symlinks=True: links are copied as links (a dangling one stays dangling, and load skips it)
        shutil.copytree(root / "projects", scratch / "projects", symlinks=True)
        for path, text in result.files.items():
            (scratch / path).write_text(text, encoding="utf-8")
        diagnostics = [d for d in validate(load_repo(scratch)).diagnostics if d.severity == "error"]
    bad: dict[str, list[str]] = {}
    for d in diagnostics:
        if d.file in result.files:
            bad.setdefault(d.file, []).append(f"{d.field or 'file'}: {d.message}")
    for path, messages in sorted(bad.items()):
        project = next((p for p in result.projects if p.path == path), None)
        del result.files[path]
        if project is not None:
            result.projects.remove(project)
        result.findings.append(Finding("unmapped", project.source if project else path,
                                       "the project would not validate: " + "; ".join(messages),
                                       project.replaces[1] if project and project.replaces else None))
