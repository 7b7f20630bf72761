"""Phase 2: check loaded files against the schema and the rules beyond types.

Every problem in every file is collected; nothing stops at the first. The structural check runs
the pydantic models (the source of the JSON Schema editors use); semantic rules (cron, time zone, end mode, file
name, cross-file uniqueness, secrets) run in Python with messages written for people.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from typing import Any, get_args, get_origin

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError
from pydantic.fields import FieldInfo

from compiler.constants import CONTROL_CHARACTERS, OWNER_MAX_LENGTH, OWNER_PATTERN, OWNER_TAG_PREFIX, environment_owner
from compiler.compile.cron import cron_problem
from compiler.compile.cron import expand as cron_expansion
from compiler.compile.cron import remember as remember_cron
from compiler.compile.diagnostics import Diagnostic, dotted_path
from compiler.compile.load import LoadedRepo, SourceFile
from compiler.compile.timezones import timezones
from compiler.compile.models import NAME_PATTERN, Defaults, Project, duration_seconds
from compiler.compile.parallel import map_split

_SECRET_KEY = re.compile(r"(^|[_-])(pass(word|wd|phrase)?|secret|token|api[_-]?key|private[_-]?key|pat|auth)$", re.I)
# Secret-shaped text anywhere in a string (free text included): well-known token formats, JWTs,
# private keys, and URLs carrying a user:password (userinfo). Boundaries keep "xd2pat_" words out.
_SECRET_VALUE = re.compile(
    r"(?<![A-Za-z0-9_])(d2p(at)?_[A-Za-z0-9]{16,}|pnu_[A-Za-z0-9]{16,}|pnb_[A-Za-z0-9]{16,}"
    r"|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_\w{20,}|glpat-[\w-]{20,}|xox[abposr]-[\w-]{10,}"
    r"|AKIA[0-9A-Z]{16}|eyJ[\w-]{8,}\.[\w-]{8,}\.[\w-]*)"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----"
    r"|[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@"
)
# Values under these top-level keys are never echoed in messages: they sit next to secrets.
_QUIET = {"credentials"}


@dataclass(frozen=True)
class ValidProject:
    source: SourceFile
    project: Project


@dataclass(frozen=True)
class ValidatedRepo:
    defaults: Defaults
    defaults_source: SourceFile | None
    projects: tuple[ValidProject, ...]  # sorted by project name
    diagnostics: tuple[Diagnostic, ...]

    @property
    def ok(self) -> bool:
        return not any(d.severity == "error" for d in self.diagnostics)


def validate(loaded: LoadedRepo) -> ValidatedRepo:
    diagnostics = list(loaded.diagnostics)
    defaults = _validate_defaults(loaded.defaults, diagnostics)
    # Invalid defaults are replaced by the built-in ones: then a project naming a notification
    # target declared there is not reported again (the defaults' own errors say what to fix).
    defaults_ok = loaded.defaults is None or not any(
        d.file == loaded.defaults.path and d.severity == "error" for d in diagnostics)
    valid: list[ValidProject] = []  # every project that has the right shape, for cross-file checks

    def check(source: SourceFile) -> tuple[Project | None, list[Diagnostic], list[tuple]]:
        problems: list[Diagnostic] = []
        project = _validate_project(source, defaults, problems, defaults_ok)
        crons = sorted({e.cron for e in project.schedule_entries}) if project is not None else []
        return project, problems, [(cron, cron_expansion(cron)) for cron in crons]

    for source, (project, problems, expansions) in zip(loaded.projects, map_split(check, loaded.projects)):
        diagnostics.extend(problems)
        for expansion in expansions:  # computed in a forked child: keep it for the schedule review
            remember_cron(*expansion)
        if project is not None:
            valid.append(ValidProject(source, project))
    if not loaded.projects and not any(d.severity == "error" for d in loaded.diagnostics):
        diagnostics.append(Diagnostic(
            "projects/", 0, 0, "", f"no project files: apply would delete every deployment of owner {defaults.owner!r}",
            "add projects/<name>.yaml; apply refuses an emptying plan unless given --allow-delete-all",
            severity="warning"))
    _check_unique_names(valid, diagnostics)
    _check_shared_blocks(valid, diagnostics)
    _check_replaced_once(valid, diagnostics)
    _check_instance_limits_used(loaded, defaults, diagnostics)
    valid.sort(key=lambda v: v.project.name)
    return ValidatedRepo(defaults, loaded.defaults, tuple(valid), tuple(diagnostics))


# --- per file ---------------------------------------------------------------------------------


def _validate_defaults(source: SourceFile | None, out: list[Diagnostic]) -> Defaults:
    if source is None:
        return Defaults()
    data = _without_secrets(source, out)  # the defaults reach every deployment: same rules
    _check_text(source, data, out)
    timezone = data.get("timezone")
    tz_problem = _timezone_problem(timezone) if isinstance(timezone, str) else None
    if tz_problem:
        _emit(out, source, ("timezone",), *tz_problem)
    defaults = _model_check(source, data, Defaults, out)
    if defaults is not None:
        _check_reserved_tags(source, defaults.tags, out)
        _check_defaults_names(source, defaults, out)
        _check_environments(source, defaults, out)
        if defaults.alerts is not None:
            _check_alerts(source, defaults.alerts, defaults, out)
    return defaults if defaults is not None else Defaults()


def _validate_project(source: SourceFile, defaults: Defaults, out: list[Diagnostic],
                      defaults_ok: bool = True) -> Project | None:
    data = _without_secrets(source, out)
    _check_text(source, data, out)
    project = _model_check(source, data, Project, out)
    if project is None:
        _check_file_name(source, data.get("name"), out)
        return None
    _check_file_name(source, project.name, out)
    _check_end_mode(source, project, out)
    _check_credentials(source, project, out)
    _check_schedule(source, project, defaults, out)
    if project.alerts is not None:
        _check_alerts(source, project.alerts, defaults, out, targets_known=defaults_ok)
    _check_reserved_tags(source, project.tags, out)
    return project


def _without_secrets(source: SourceFile, out: list[Diagnostic]) -> dict:
    """Report literal secrets (by key name or by value shape) and drop them, so that no later
    message echoes them. Never include the value in the message."""
    cleaned = _strip(source.data, (), source, out)
    return cleaned if isinstance(cleaned, dict) else {}


def _strip(value: Any, path: tuple, source: SourceFile, out: list[Diagnostic]) -> Any:
    if isinstance(value, list):
        return [_strip(item, (*path, i), source, out) for i, item in enumerate(value) if not
                _secret_value(item, (*path, i), source, out)]
    if not isinstance(value, dict):
        return value
    kept = {}
    for key, item in value.items():
        here = (*path, key)
        if isinstance(key, str) and _SECRET_KEY.search(key) and not key.endswith("_env"):
            _emit(out, source, here, "literal secrets are not allowed in project files",
                  "delete it and name an environment variable instead, e.g. "
                  "`credentials.password_env: MY_DHIS2_PASSWORD`; apply reads it from the environment",
                  key=True)
        elif _secret_value(item, here, source, out):
            if key in ("base_url", "repository"):  # keep required URLs present: no "missing" error follows
                kept[key] = "https://redacted.invalid"
        else:
            kept[key] = _strip(item, here, source, out)
    return kept


def _secret_value(value: Any, path: tuple, source: SourceFile, out: list[Diagnostic]) -> bool:
    if isinstance(value, str) and _SECRET_VALUE.search(value):
        hint = ("remove the user:password from the URL; workers authenticate to git with their own "
                "credentials (a git credential helper or an SSH key on the worker)") if path[-1:] == ("repository",) \
            else "remove it; secrets live in environment variables named by `credentials.password_env`"
        _emit(out, source, path, "this value looks like a secret (a token, a key or a password in a URL)", hint)
        return True
    return False


def _check_file_name(source: SourceFile, name: Any, out: list[Diagnostic]) -> None:
    stem = source.path.rsplit("/", 1)[-1].removesuffix(".yaml")
    if isinstance(name, str) and name != stem:
        _emit(out, source, ("name",), f"name {name!r} differs from the file name {stem + '.yaml'!r}",
              f"rename the file to {name}.yaml, or set `name: {stem}`")


def _check_end_mode(source: SourceFile, project: Project, out: list[Diagnostic]) -> None:
    mode = project.end_mode
    data = source.data
    for field, wanted in (("end_period_offset", "offset"), ("end_date", "fixed")):
        if mode == wanted and field not in data:
            where = ("end_mode",) if "end_mode" in data else ()
            example = "end_period_offset: 1" if field == "end_period_offset" else "end_date: 2026-06-30"
            _emit(out, source, where, f"end_mode {wanted} requires {field}", f"add `{example}`")
        elif mode != wanted and field in data:
            _emit(out, source, (field,), f"{field} is only allowed with end_mode: {wanted} (end_mode is {mode})",
                  f"remove {field}, or set `end_mode: {wanted}`", key=True)


_CONTROL = re.compile(CONTROL_CHARACTERS)


def _check_text(source: SourceFile, data: Any, out: list[Diagnostic]) -> None:
    """Every string of a project file, keys included: no template markers (`{{ … }}` would be
    resolved by Prefect from the environment when prefect.yaml is deployed: chapctl reads the
    environment only through the `*_env` fields) and no control characters."""

    def check(text: str, path: tuple, key: bool) -> None:
        if "{{" in text or "}}" in text:
            _emit(out, source, path, "holds '{{' or '}}': project files are never templates (Prefect would fill "
                  "{{ $VARIABLE }} from the environment when it reads prefect.yaml)",
                  "remove the braces; a value read from the environment is named by a `*_env` field "
                  "(e.g. password_env, url_env, directory_env)", key=key)
        bad = _CONTROL.search(text)
        if bad:
            _emit(out, source, path, f"holds the control character U+{ord(bad.group()):04X} at character "
                  f"{bad.start() + 1}", "remove it (it may be invisible in an editor; tab and newline are allowed)",
                  key=key)

    def walk(value: Any, path: tuple) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                if isinstance(k, str):
                    check(k, path + (k,), True)
                walk(v, path + (k,))
        elif isinstance(value, list):
            for index, v in enumerate(value):
                walk(v, path + (index,))
        elif isinstance(value, str):
            check(value, path, False)

    walk(data, ())


def _check_credentials(source: SourceFile, project: Project, out: list[Diagnostic]) -> None:
    trio = {"base_url": project.credentials.base_url, "username": project.credentials.username,
            "password_env": project.credentials.password_env}
    given = [k for k, v in trio.items() if v is not None]
    if given and len(given) != 3:
        missing = [k for k in trio if k not in given]
        _emit(out, source, ("credentials",), "base_url, username and password_env go together; "
              f"missing {', '.join(missing)}",
              "give all three to let chapctl manage the block, or only `block` if it is managed elsewhere",
              key=True)
    if project.credentials.base_url is not None and not _parses_as_url(project.credentials.base_url):
        _emit(out, source, ("credentials", "base_url"), f"{project.credentials.base_url!r} is not a URL that parses "
              "(a bracket, a port or a character out of place)", _PATTERN_HINTS["base_url"])


def _parses_as_url(url: str) -> bool:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises on a bad port)
        return bool(parts.hostname)
    except ValueError:
        return False


def _check_reserved_tags(source: SourceFile, tags: list[str], out: list[Diagnostic]) -> None:
    """`chapctl-owner:…` decides what apply owns and prunes: only `owner:` in _defaults.yaml sets it."""
    for index, tag in enumerate(tags):
        if tag.startswith(OWNER_TAG_PREFIX):
            _emit(out, source, ("tags", index), f"tags starting with {OWNER_TAG_PREFIX!r} are reserved",
                  "remove it; set `owner:` in projects/_defaults.yaml to name this repository's owner")


def _check_schedule(source: SourceFile, project: Project, defaults: Defaults, out: list[Diagnostic]) -> None:
    if project.schedule is not None and project.schedules is not None:
        _emit(out, source, ("schedules",), "a project has either `schedule` or `schedules`, not both",
              "move the `schedule` into `schedules` as an entry with `slug: chapctl-cron` (that keeps its id on "
              "the server), or remove one", key=True)
    entries = [(("schedule",), project.schedule)] if project.schedules is None and project.schedule else \
        [(("schedules", i), entry) for i, entry in enumerate(project.schedules or [])]
    seen: dict[str, int] = {}
    for where, entry in entries:
        problem = cron_problem(entry.cron)
        if problem:
            _emit(out, source, (*where, "cron"), problem,
                  "five fields: minute hour day-of-month month day-of-week, e.g. \"0 6 * * 1\" (06:00 every Monday)")
        if entry.timezone is not None:
            tz_problem = _timezone_problem(entry.timezone)
            if tz_problem:
                _emit(out, source, (*where, "timezone"), *tz_problem)
        if where[0] != "schedules":
            continue
        first = seen.setdefault(entry.slug, where[1])
        if first != where[1]:
            line, _ = source.position(("schedules", first, "slug"))
            _emit(out, source, (*where, "slug"), f"slug {entry.slug!r} is already used by the schedule on line {line}",
                  "each schedule of a project needs its own slug; rename one")
        if entry.parameters is not None and not entry.parameters.model_fields_set:
            _emit(out, source, (*where, "parameters"), "parameters overrides nothing",
                  "remove it, or give end_mode (with end_period_offset or end_date) or prediction_setup_id")
        elif entry.parameters is not None:
            _check_schedule_end_mode(source, project, where, entry.parameters, out)


def _check_schedule_end_mode(source: SourceFile, project: Project, where: tuple, params, out: list[Diagnostic]) -> None:
    """A schedule's end-mode override is whole: `end_mode` with what it needs, or only the value
    that the project's own end mode takes."""
    given = source.data
    for key in where + ("parameters",):
        given = given[key] if isinstance(given, (dict, list)) else {}
    mode = params.end_mode or project.end_mode
    for field, wanted in (("end_period_offset", "offset"), ("end_date", "fixed")):
        if field in given and mode != wanted:
            _emit(out, source, (*where, "parameters", field),
                  f"{field} is only allowed with end_mode: {wanted} (this schedule's end_mode is {mode})",
                  f"remove {field}, or set `end_mode: {wanted}` in this schedule's parameters", key=True)
        elif params.end_mode == wanted and field not in given:
            example = "end_period_offset: 1" if field == "end_period_offset" else "end_date: 2026-06-30"
            _emit(out, source, (*where, "parameters", "end_mode"), f"end_mode {wanted} requires {field}",
                  f"add `{example}` to this schedule's parameters")


def _check_alerts(source: SourceFile, alerts, defaults: Defaults, out: list[Diagnostic], *,
                  targets_known: bool = True) -> None:
    known = sorted(defaults.notifications)
    for index, name in enumerate(alerts.notify):
        if targets_known and name not in defaults.notifications:
            hint = _did_you_mean(name, known) if known else \
                "declare it in projects/_defaults.yaml, e.g. `notifications: {ops-webhook: {webhook: {url_env: " \
                "OPS_WEBHOOK_URL}}}`"
            _emit(out, source, ("alerts", "notify", index), f"unknown notification target {name!r}", hint)
    if alerts.missed is not None and duration_seconds(alerts.missed) < 10:
        _emit(out, source, ("alerts", "missed"), f"missed: {alerts.missed} is shorter than Prefect allows (10 s)",
              "Prefect evaluates a missed run after at least 10 seconds; use e.g. `missed: 30m`")
    if not alerts.failed and alerts.missed is None:
        _emit(out, source, ("alerts",), "these alerts never notify anyone (failed: false and no missed)",
              "set `failed: true` or `missed: 30m`, or remove `alerts`", key=True)


_NAME = re.compile(NAME_PATTERN)



def _check_defaults_names(source: SourceFile, defaults: Defaults, out: list[Diagnostic]) -> None:
    for name in defaults.notifications:
        if not _NAME.match(name):
            _emit(out, source, ("notifications", name), f"notification name {name!r} has the wrong form",
                  "use 1-63 characters of lowercase a-z, 0-9 and '-', e.g. ops-webhook", key=True)
    flows_dir = defaults.source.directory_env
    for index, name in enumerate(defaults.ci.allow_unset):
        if name == flows_dir:
            _emit(out, source, ("ci", "allow_unset", index),
                  f"{name} names where workers find the flows (`source.directory_env`), which plan compares",
                  f"set {name} where plan runs (in CI: a repository variable), or declare `source: {{package: "
                  "chapctl}` (workers run the installed chapctl's flow)")
    for block, limit in defaults.instance_limits.items():
        if not _NAME.match(block):
            _emit(out, source, ("instance_limits", block), f"{block!r} is not a credentials block name",
                  "use the `credentials.block` of the projects it limits, e.g. laos-dhis2", key=True)
        if limit < 1:
            _emit(out, source, ("instance_limits", block), f"must be at least 1, got {limit}",
                  "the most runs doing CHAP work at once against this instance, e.g. 1")


_OWNER = re.compile(OWNER_PATTERN)


def _check_environments(source: SourceFile, defaults: Defaults, out: list[Diagnostic]) -> None:
    """`environments:`: names of the owner's form, owners that fit, no two environments that would
    own each other's objects, and notification targets replaced by ones of the same kind."""
    seen: dict[tuple[str, str], str] = {}
    for name, environment in defaults.environments.items():
        where = ("environments", name)
        if not _OWNER.match(name) or len(name) > OWNER_MAX_LENGTH:
            _emit(out, source, where, f"environment name {name!r} has the wrong form",
                  "use 1-32 characters of lowercase a-z, 0-9 and single hyphens, e.g. staging", key=True)
        owner = environment_owner(defaults.owner, environment.owner_suffix)
        if len(owner) > OWNER_MAX_LENGTH:
            _emit(out, source, (*where, "owner_suffix"),
                  f"the owner of environment {name!r} would be {owner!r}, longer than {OWNER_MAX_LENGTH} characters",
                  "shorten `owner_suffix` (or `owner`), e.g. `owner_suffix: stg`")
        other = seen.setdefault((owner, environment.api_url_env), name)
        if other != name:
            _emit(out, source, (*where, "owner_suffix") if environment.owner_suffix else where,
                  f"environments {other!r} and {name!r} both apply as owner {owner!r} to the server in "
                  f"${environment.api_url_env}: each would change and prune the other's objects",
                  f"give {name!r} its own `owner_suffix` (e.g. `owner_suffix: {name if _OWNER.match(name) else 'qa'}`)", key=not environment.owner_suffix)
        for target, notification in environment.notifications.items():
            declared = defaults.notifications.get(target)
            if declared is None:
                hint = _did_you_mean(target, sorted(defaults.notifications)) if defaults.notifications else \
                    "declare it under `notifications` first; an environment only replaces a declared target"
                _emit(out, source, (*where, "notifications", target), f"unknown notification target {target!r}",
                      hint, key=True)
            elif declared.kind != notification.kind:
                _emit(out, source, (*where, "notifications", target),
                      f"{target!r} is a {declared.kind} target; an environment replaces it with another {declared.kind}, "
                      f"not a {notification.kind}",
                      f"give `{declared.kind}:` here, or declare another target for this environment's alerts", key=True)


def _check_instance_limits_used(loaded: LoadedRepo, defaults: Defaults, out: list[Diagnostic]) -> None:
    source = loaded.defaults
    used = set()  # from every project file, valid or not: an invalid one still names its block
    for project in loaded.projects:
        creds = project.data.get("credentials") if isinstance(project.data, dict) else None
        if isinstance(creds, dict) and isinstance(creds.get("block"), str):
            used.add(creds["block"])
    # An error, not a warning: a misspelt block name would leave its instance without the limit the
    # file promises, and CI green (issue 21).
    for block in defaults.instance_limits:
        if source is not None and block not in used and _NAME.match(block):
            out.append(_diagnostic(source, ("instance_limits", block),
                                   f"no project uses the credentials block {block!r}",
                                   _did_you_mean(block, sorted(used)) if used else "remove it", key=True))


def _timezone_problem(name: str) -> tuple[str, str] | None:
    if name in timezones():
        return None
    from compiler.compile.timezones import suggestion  # only on the error path

    return f"unknown time zone {name!r}", suggestion(name)


# --- across files -----------------------------------------------------------------------------


def _check_unique_names(valid: list[ValidProject], out: list[Diagnostic]) -> None:
    seen: dict[str, ValidProject] = {}
    for item in valid:
        first = seen.setdefault(item.project.name, item)
        if first is not item:
            line, _ = first.source.position(("name",))
            _emit(out, item.source, ("name",), f"project name {item.project.name!r} is already used by "
                  f"{first.source.path}:{line}", "project names must be unique; rename one of them")


def _check_shared_blocks(valid: list[ValidProject], out: list[Diagnostic]) -> None:
    owners: dict[str, ValidProject] = {}
    for item in valid:
        creds = item.project.credentials
        if not creds.managed:
            continue
        first = owners.setdefault(creds.block, item)
        if first is item:
            continue
        other = first.project.credentials
        for field in ("base_url", "username", "password_env"):
            mine, theirs = getattr(creds, field), getattr(other, field)
            if field == "base_url":
                mine, theirs = mine.rstrip("/"), theirs.rstrip("/")
            if mine != theirs:
                line, _ = first.source.position(("credentials", field))
                _emit(out, item.source, ("credentials", field),
                      f"block {creds.block!r} is also defined by {first.source.path}:{line} with a different {field}",
                      f"projects sharing a block must agree on base_url, username and password_env; "
                      f"make {item.source.path} and {first.source.path} match, or use another block name")


def _check_replaced_once(valid: list[ValidProject], out: list[Diagnostic]) -> None:
    """A hand-made schedule is taken over by one project: two successors would both run."""
    seen: dict[str, tuple[ValidProject, tuple]] = {}
    for item in sorted(valid, key=lambda v: v.source.path):
        named = [(("replaces",), item.project.replaces)] + [
            (("schedules", i, "replaces"), e.replaces) for i, e in enumerate(item.project.schedules or [])]
        for where, replaces in named:
            if replaces is None:
                continue
            first, first_where = seen.setdefault(replaces.schedule_id, (item, where))
            if (first, first_where) != (item, where):
                line, _ = first.source.position((*first_where, "schedule_id"))
                _emit(out, item.source, (*where, "schedule_id"),
                      f"schedule {replaces.schedule_id} is already replaced by {first.source.path}:{line}",
                      "one project takes over a hand-made schedule; remove `replaces` from one of them")


# --- model errors as diagnostics ----------------------------------------------------------


def _model_check(source: SourceFile, data: Any, model: type[BaseModel], out: list[Diagnostic]) -> Any:
    """The model instance, or None after reporting every error pydantic found."""
    try:
        return model.model_validate(data)
    except PydanticValidationError as exc:
        for error in exc.errors(include_url=False):
            diagnostic = _describe(error, source, model)
            if diagnostic is not None:
                out.append(diagnostic)
        return None


_EXPECTED = {
    "string_type": "a string", "int_type": "an integer", "int_from_float": "an integer",
    "bool_type": "true or false", "float_type": "a number", "list_type": "a list",
    "model_type": "a mapping", "model_attributes_type": "a mapping", "dict_type": "a mapping",
    "date_type": "a date (YYYY-MM-DD)",
}


def _describe(error: dict, source: SourceFile, model: type[BaseModel]) -> Diagnostic | None:
    path = tuple(error["loc"])
    kind = error["type"]
    value = error.get("input")
    context = error.get("ctx") or {}
    quiet = bool(path) and path[0] in _QUIET
    shown = "this value" if quiet else _show(value)
    parent, info = _field_info(model, path)
    example = _example(info)
    hint = f"e.g. `{path[-1]}: {example}`" if example and path and isinstance(path[-1], str) else ""
    if kind == "extra_forbidden":
        allowed = list(parent.model_fields) if parent else []
        return _diagnostic(source, path, f"unknown field {path[-1]!r}", _did_you_mean(str(path[-1]), allowed),
                           key=True)
    if kind == "missing":
        hint = _MISSING_HINTS.get(str(path[-1])) or (f"add `{path[-1]}: {example}`" if example else f"add `{path[-1]}`")
        return _diagnostic(source, path[:-1], f"missing required field {path[-1]!r}", hint)
    if kind in _EXPECTED:
        message = f"expected {_EXPECTED[kind]}, got {_type_name_of(value)}" + ("" if quiet else f" ({shown})")
        if kind == "bool_type" and isinstance(value, str):
            hint = "write true or false (YAML 1.2: yes/no/on/off are strings)"
        return _diagnostic(source, path, message, hint)
    if kind == "literal_error":
        options = [o.strip(" '") for o in str(context.get("expected", "")).replace(" or ", ",").split(",")]
        options = [o for o in options if o]
        return _diagnostic(source, path, f"{shown} is not one of: {', '.join(options)}",
                           _did_you_mean(str(value), options))
    if kind == "string_pattern_mismatch":
        return _diagnostic(source, path, f"{shown} has the wrong form", _pattern_hint(path, example))
    if kind in ("greater_than_equal", "greater_than"):
        bound = context.get("ge", context.get("gt"))
        return _diagnostic(source, path, f"must be at least {bound}, got {shown}", hint)
    if kind == "string_too_short":
        return _diagnostic(source, path, "must not be empty", hint)
    if kind == "string_too_long":
        return _diagnostic(source, path, f"is longer than {context.get('max_length')} characters", "shorten it")
    if kind.startswith("date_"):
        return _diagnostic(source, path, f"{shown} is not a valid date",
                           "write an ISO date: YYYY-MM-DD, e.g. 2026-06-30")
    if kind == "too_short":
        return _diagnostic(source, path, f"must list at least {context.get('min_length', 1)} item(s)", hint)
    if kind == "value_error" and len(path) == 2 and path[0] == "notifications":
        return _diagnostic(source, path, "a notification needs exactly one of `webhook`, `slack` or `email`",
                           "e.g. `webhook: {url_env: OPS_WEBHOOK_URL}`", key=True)
    if kind == "value_error" and path and path[-1] == "source":
        return _diagnostic(source, path, "source needs exactly one of `package`, `git` or `directory_env`",
                           "e.g. `source: {package: chapctl}` (workers run the installed chapctl's flow)")
    message = error["msg"] if not quiet else f"invalid value ({kind})"
    return _diagnostic(source, path, message, hint)


def _field_info(model: type[BaseModel], path: tuple) -> tuple[type[BaseModel] | None, FieldInfo | None]:
    """The model owning the last field of `path`, and that field's info (for examples). A key of
    a mapping of models (`notifications.<name>`) or an index of a list of them is stepped over."""
    owner: type[BaseModel] | None = model
    info: FieldInfo | None = None
    keyed = False  # the previous field is a mapping or list of models: this part is a key or index
    for index, part in enumerate(path):
        if keyed:
            keyed = False
            if index == len(path) - 1:
                return None, None
            continue
        if owner is None or not isinstance(part, str) or part not in owner.model_fields:
            return (owner if index == len(path) - 1 else None), info
        info = owner.model_fields[part]
        if index < len(path) - 1:
            owner = _nested_model(info.annotation)
            keyed = get_origin(info.annotation) in (dict, list) or any(
                get_origin(a) in (dict, list) for a in get_args(info.annotation))
    return owner, info


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _nested_model(arg)
        if found is not None:
            return found
    return None


def _example(info: FieldInfo | None) -> str | None:
    if info is None or not info.examples:
        return None
    return json.dumps(info.examples[0], ensure_ascii=False, default=str)


def _diagnostic(source: SourceFile, path: tuple, message: str, hint: str, *, key: bool = False) -> Diagnostic:
    line, column = source.position(path, key=key)
    return Diagnostic(source.path, line, column, dotted_path(path), message, hint)


def _emit(out: list[Diagnostic], source: SourceFile, path: tuple, message: str, hint: str, *, key: bool = False):
    out.append(_diagnostic(source, path, message, hint, key=key))


def _did_you_mean(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]!r}?"
    return "allowed: " + ", ".join(options)


# Fields whose value must come from elsewhere: a hint never proposes a specific value for them.
_MISSING_HINTS = {
    "model_id": "add `model_id: <id>`, the id of the configured model in CHAP whose prediction setups this project "
                "runs (each prediction setup in CHAP names its configured model)",
    "block": "add `block: <name>`, the name of the DHIS2 credentials block (e.g. the country's DHIS2)",
}


_PATTERN_HINTS = {
    "name": "use 1-63 characters of lowercase a-z, 0-9 and '-', e.g. laos-malaria",
    "block": "use 1-63 characters of lowercase a-z, 0-9 and '-', e.g. laos-dhis2",
    "work_pool": "use 1-63 characters of lowercase a-z, 0-9 and '-', e.g. default",
    "owner": "use 1-32 characters of lowercase a-z, 0-9 and single hyphens ('--' separates the owner from a name in "
             "what chapctl creates: owners 'team' and 'team--x' would collide), not starting or ending with '-', "
             "e.g. laos-team",
    "base_url": "an http(s) URL without user or password, e.g. https://dhis2.example.org",
    "password_env": "the NAME of an environment variable (letters, digits, _), e.g. LAOS_DHIS2_PASSWORD — "
    "never the password itself",
    "directory_env": "the NAME of an environment variable, e.g. CHAPCTL_FLOWS_DIR",
    "api_url_env": "the NAME of the environment variable holding the server's API URL, e.g. STAGING_PREFECT_API_URL "
    "— never the URL itself",
    "auth_string_env": "the NAME of an environment variable, e.g. STAGING_PREFECT_API_AUTH_STRING — never the "
    "user:password itself",
    "api_key_env": "the NAME of an environment variable, e.g. STAGING_PREFECT_API_KEY — never the key itself",
    "owner_suffix": "1-32 characters of lowercase a-z, 0-9 and single hyphens, not starting or ending with '-', "
    "e.g. staging",
    "allow_unset": "the NAME of an environment variable (letters, digits, _), e.g. KENYA_DHIS2_PASSWORD",
    "repository": "a git URL, e.g. https://github.com/example/chap-projects.git",
    "deployment": "<flow name>/<deployment name>, e.g. dhis2-chap-prediction/chap-scheduler",
    "slug": "1-63 characters of lowercase a-z, 0-9 and '-', starting with a letter or digit, e.g. monthly-fixed",
    "missed": "a number and a unit: s, m, h or d, e.g. 30m",
    "schedule_id": "the schedule's id on the Prefect server, a lowercase UUID such as "
    "0b7e5f5c-8d1e-4a51-9a43-0c7c1b0e9f11",
}


def _pattern_hint(path: tuple, example: str | None) -> str:
    named = [p for p in path if not isinstance(p, int)]  # an item of a list: its list's hint
    field = named[-1] if named else ""
    return _PATTERN_HINTS.get(str(field), f"e.g. {example}" if example else "")


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


_TYPE_NAMES = ((bool, "a boolean"), (int, "an integer"), (float, "a number"), (str, "a string"),
               (list, "a list"), (dict, "a mapping"))  # bool before int: True is an int too


def _type_name_of(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    return next((name for kind, name in _TYPE_NAMES if isinstance(value, kind)), type(value).__name__)
