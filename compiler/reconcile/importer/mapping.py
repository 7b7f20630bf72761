"""Import's mapping (pure: the same `ServerState` and `RepoState` give the same bytes): every cron
schedule of every `dhis2-chap-prediction` deployment to project fields, grouped into projects, named
(`naming`) and rendered (`write`), with a finding for everything not imported.

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
- Every value carries a comment saying where it came from; a schedule an existing project already
  replaces, or a deployment a project was imported from, is not imported twice.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from compiler.constants import BLOCK_TYPE_SLUG, DEFAULT_TIMEZONE, MANAGED_TAG, OWNER_TAG_PREFIX, written_out
from compiler.reconcile.importer.naming import BlockNames, base_name, cadence, choose_names, slug, unique
from compiler.reconcile.importer.read import BLOCK_TEMPLATE, UNKNOWN, ref_id
from compiler.reconcile.importer.values import (FLOW_NAME, FLOW_PARAMETERS, ORIGIN, Finding, ImportedProject,
                                                ImportResult, RepoState, ServerState)
from compiler.reconcile.importer.write import render_defaults, render_project
from compiler.reconcile.ownership import deployment_owner

END_MODES = ("calculated", "fixed", "offset")
NAME = re.compile(r"^[a-z0-9-]{1,63}$")
_URL = re.compile(r"^https?://[^\s/@]+(/\S*)?$")
_TAG = re.compile(r"^[A-Za-z0-9_.:/ +@()-]{1,100}$")
_GIT_URL = re.compile(r"^(https?|ssh|git)://[^@\s]+$|^git@\S+:\S+$")


@dataclass
class _Draft:
    """One project before its name is chosen."""

    base: str  # the readable name before it is made unique
    fields: dict[str, Any]  # name-less project data (write.PROJECT_ORDER orders it in the file)
    comments: dict[str, str]  # dotted field -> where the value came from
    header: list[str]
    source: str
    replaces: tuple[str, str] | None
    in_place: bool
    order: tuple  # stable order among drafts with the same base
    cron: str | None = None
    schedule_ids: tuple[str, ...] = ()  # every hand-made schedule it takes over


def map_server(state: ServerState, repo: RepoState) -> ImportResult:
    """The files and findings for `state` (pure: the same state gives the same bytes)."""
    result = ImportResult(state.url, state.server_version, deployments_read=len(state.deployments),
                          schedules_read=sum(len(d["schedules"]) for d in state.deployments))
    drafts: list[_Draft] = []
    blocks = BlockNames(state.block_names | repo.blocks)
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
    for draft, name in choose_names(drafts, taken):
        path = f"projects/{name}.yaml"
        result.files[path] = render_project(name, draft.header, draft.fields, draft.comments)
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
        result.files["projects/_defaults.yaml"] = render_defaults(repo.work_pool, _flow_source(state))
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


def _map_schedules(d: dict[str, Any], label: str, repo: RepoState, state: ServerState, blocks: BlockNames,
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
        word = unique(cadence(m.schedule["cron"]) or "schedule", slugs)
        slugs.add(word)
        overrides = {}
        if any(m.fields.get(k) != first.fields.get(k) for k in _END):
            overrides.update({k: m.fields[k] for k in _END if k in m.fields})
        if m.fields.get("prediction_setup_id") != first.fields.get("prediction_setup_id"):
            overrides["prediction_setup_id"] = m.fields["prediction_setup_id"]
        entry = {"slug": word, **m.schedule}
        if overrides:
            entry["parameters"] = overrides
        entry["replaces"] = {"deployment": label, "schedule_id": m.s["id"]}
        entries.append(entry)
    fields["schedules"] = entries
    comments["schedules"] = (f"{len(group)} schedules sharing credentials and model; each `replaces` its own: " + how)
    return fields, comments


def _served_deployment(d: dict[str, Any], label: str, repo: RepoState, state: ServerState, blocks: BlockNames,
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
    base = name or base_name(fields)
    ids = [m.s["id"] for m in group]
    first = group[0].s
    fields["description"] = written_out(f"Imported from schedule{'s' if len(ids) > 1 else ''} "
                                        f"{', '.join(m.s.get('slug') or m.s['id'] for m in group)} of {label}",
                                        one_line=True)
    _pool_and_tags(d, fields, comments, repo, result, f"schedule {first['id']} of deployment {label}", pool)
    header = [f"# Imported by `chapctl import` from schedule{'s' if len(ids) > 1 else ''} {', '.join(ids)}"
              + (f" ({first['slug']})" if first.get("slug") and len(ids) == 1 else ""), *header]
    schedule = group[0].schedule
    return _Draft(base, fields, comments, header, f"schedule{'s' if len(ids) > 1 else ''} "
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


def _plain_deployment(d: dict[str, Any], label: str, repo: RepoState, state: ServerState, blocks: BlockNames,
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
        name = slug(d["name"]) if len(groups) == 1 else ""  # the deployment's name, as a project name
        return [_new_project(d, label, g, repo, result, header, pool, name) for g in groups]
    if d["description"] and len(d["description"]) <= 2000:
        fields["description"] = written_out(d["description"])
        comments["description"] = "the deployment's description"
    _pool_and_tags(d, fields, comments, repo, result, what, pool)
    replaces = (label, d["schedules"][0]["id"]) if d["schedules"] else None
    header = [ORIGIN.format(id=d["id"]),
              f"# ({label}), made by `prefect deploy` (work pool {pool!r}).",
              "# Same name: `chapctl apply --adopt` takes that deployment over in place, its schedules kept." if in_place
              else "# Its name is not a project name: this project is a new deployment (the old one stays)."]
    cron = (fields.get("schedule") or (fields.get("schedules") or [{}])[0]).get("cron")
    base = d["name"] if in_place else (slug(d["name"]) or base_name(fields))
    return [_Draft(base, fields, comments, header, f"deployment {label}", replaces, in_place,
                   (d["name"],), cron, tuple(s["id"] for s in d["schedules"]))]


def _effective(deployment: dict[str, Any], schedule: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The parameters a scheduled run gets (the schedule's over the deployment's), and where each came from."""
    params = {**deployment, **schedule}
    origin = {k: ("the schedule's parameters" if k in schedule else "the deployment's parameters") for k in params}
    return params, origin


def _map_parameters(params: dict[str, Any], origin: dict[str, str], state: ServerState, blocks: BlockNames, what: str,
                    problems: list[str], result: ImportResult) -> tuple[dict[str, Any], dict[str, str]]:
    fields: dict[str, Any] = {}
    comments: dict[str, str] = {}
    unknown = sorted(k for k, v in params.items() if k not in FLOW_PARAMETERS)
    if unknown:
        problems.append(f"parameter(s) a project cannot hold: {', '.join(unknown)}")
    for key in FLOW_PARAMETERS:
        if params.get(key) is UNKNOWN:
            problems.append(f"parameter {key} has a value of the wrong type")
    creds = params.get("credentials")
    from_ = origin.get("credentials", "")
    block_id = ref_id(creds)
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
    elif isinstance(creds, str) and (m := BLOCK_TEMPLATE.match(creds)) and m.group(1) == BLOCK_TYPE_SLUG \
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
        date = _iso_date(end_date)
        if date is None:
            problems.append("end_mode fixed without an ISO end_date (YYYY-MM-DD)")
        else:
            fields["end_date"] = date
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
    cron, zone = str(sched["cron"]), sched.get("timezone") or DEFAULT_TIMEZONE
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


def _positive(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _iso_date(value: Any) -> dt.date | None:
    """`value` as a date if it is one written YYYY-MM-DD (written back as a YAML date)."""
    if not (isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value)):
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return None


def _tags(tags: list[str]) -> tuple[list[str], list[str]]:
    kept, dropped = [], []
    for tag in tags:
        if tag in (MANAGED_TAG, "auto-scheduled") or tag.startswith(OWNER_TAG_PREFIX):
            continue
        (kept if _TAG.match(tag) else dropped).append(tag)
    return sorted(dict.fromkeys(kept)), dropped


def _flow_source(state: ServerState) -> tuple[str, str] | None:
    """The git repository (url, branch) the `prefect deploy` deployments clone, when there is
    exactly one usable: where workers find the flow code."""
    repos = sorted({(s["git_clone"]["repository"], s["git_clone"].get("branch") or "main")
                    for d in state.deployments if d["work_pool_name"] and deployment_owner(d) is None
                    for s in d["pull_steps"] if "git_clone" in s})
    usable = [(url, branch) for url, branch in repos if _GIT_URL.match(url)]
    return usable[0] if len(usable) == 1 else None
