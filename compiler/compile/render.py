"""Phase 3: render the committed artifacts from validated projects.

Output is a pure function of the validated repository: sorted by name, no timestamps, no paths,
no locale, so the same inputs give the same bytes on every machine.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from compiler import markdown
from compiler import __version__
from compiler.constants import (BLOCK_TYPE_SLUG, CHAP_LIMIT_PARAMETER, INSTANCE_LIMIT, MANAGED_TAG, OWNER_TAG_PREFIX,
                                environment_owner, owner_tag)
from compiler.compile.artifact import (SCHEDULE_SLUG, AlertSpec, BlockDocument, BlockRef,  # noqa: F401  (review.diff)
                                       ConcurrencyLimitSpec, DeploymentSpec, EnvironmentSpec, PullStep, Replaces,
                                       ScheduleSpec)
from compiler.compile.environments import describe as describe_environment
from compiler.compile.models import Alerts, Defaults, Notification, Project, ScheduleParameters, duration_seconds
from compiler.compile.schedule_report import HEATMAP_ROWS, HOT_COLOUR, REFERENCE_YEAR, SCALE, ScheduleReport, schedule_report
from compiler.compile.schema import render_schemas
from compiler.compile.validate import ValidatedRepo

ENTRYPOINT = "flows/dhis2_chap_prediction.py:dhis2_chap_prediction"  # a file in the clone or directory
# `source: {package: chapctl}`: the module of the chapctl installed on the worker, which Prefect imports
# after the pull step (REQUIRE_CHAPCTL) checked that it is the release this repository compiled with.
PACKAGE_ENTRYPOINT = "flows.dhis2_chap_prediction.dhis2_chap_prediction"
REQUIRE_CHAPCTL = "flows.installed.require_chapctl"
# The templates of every artifact ship inside the package (an installed chapctl compiles a repository
# that holds only projects/): they are chapctl's code, not the repository's.
TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
PREFECT_YAML = "prefect.yaml"
BLOCKS_DIR = "blocks"
SCHEDULES_MD = "SCHEDULES.md"
SCHEDULES_SVG = "schedules.svg"


@dataclass(frozen=True)
class Artifacts:
    """Relative path -> exact file text, for every file `compile` owns."""

    files: dict[str, str]


def render(validated: ValidatedRepo, review: ScheduleReport | None = None, cache: Path | None = None) -> Artifacts:
    """The artifacts of `validated`. `cache` (a repository's `.chapctl/cache`) keeps the compiled
    templates between runs; None compiles them every time."""
    env = _environment(cache)
    projects = [v.project for v in validated.projects]
    deployments = [deployment_spec(project, validated.defaults) for project in projects]
    blocks = block_specs(projects)
    environments = environment_specs(validated.defaults)
    files = {
        PREFECT_YAML: env.get_template("prefect.yaml.j2").render(
            owner=validated.defaults.owner, allow_unset=sorted(set(validated.defaults.ci.allow_unset)),
            pull=pull_steps(validated.defaults), deployments=deployments,
            limits=concurrency_limit_specs(projects, validated.defaults), environments=environments,
        ),
        **{
            f"{BLOCKS_DIR}/{block.name}.yaml": env.get_template("block.yaml.j2").render(block=block)
            for block in blocks
        },
        **{
            f"{BLOCKS_DIR}/notification-{spec.name}.yaml": env.get_template("notification.yaml.j2").render(block=spec)
            for spec in notification_specs(projects, validated.defaults)
        },
        **render_schemas(),
        **render_schedule_review(review or schedule_report(validated), cache,
                                 [(e.name, describe_environment(e, validated.defaults.owner)) for e in environments]),
    }
    return Artifacts({path: stamp(text) for path, text in sorted(files.items())})


# Every artifact says "Do not edit by hand" once; the stamp appends a digest of the whole file
# there, so that compile can tell a file it wrote from one edited since (and refuse to discard
# the edit silently). Any format works: the digest is computed with its own hex zeroed.
_DO_NOT_EDIT = "Do not edit by hand."
_DIGEST = re.compile(r"chapctl-digest: ([0-9a-f]{16})")
_ZERO = "0" * 16


def stamp(text: str) -> str:
    if _DO_NOT_EDIT not in text:
        return text
    zeroed = text.replace(_DO_NOT_EDIT, f"Do not edit by hand (chapctl-digest: {_ZERO}).", 1)
    return zeroed.replace(_ZERO, _digest(zeroed), 1)


def edited_by_hand(text: str) -> bool:
    """True when a stamped file no longer matches its digest (an unstamped file: False)."""
    m = _DIGEST.search(text)
    if m is None:
        return False
    return _digest(text[: m.start(1)] + _ZERO + text[m.end(1):]) != m.group(1)


def _digest(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def render_schedule_review(report: ScheduleReport, cache: Path | None = None,
                           environments: list[tuple[str, tuple[str, ...]]] | None = None) -> dict[str, str]:
    """SCHEDULES.md and schedules.svg. `environments`: each declared environment's name and what it
    changes (SCHEDULES.md shows the projects as declared, and says so when there are any)."""
    markdown = _markdown_environment(cache).get_template("SCHEDULES.md.j2").render(
        report=report, rows=HEATMAP_ROWS, reference_year=REFERENCE_YEAR, scale_labels=[s[1] for s in SCALE],
        environments=environments or [])
    svg_env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                                 bytecode_cache=_bytecode_cache(cache),
                                 undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                                 keep_trailing_newline=True)
    svg = svg_env.get_template("schedules.svg.j2").render(
        cells=report.cells, rows=HEATMAP_ROWS, scale=SCALE, hot_colour=HOT_COLOUR,
        left=40, top=24, cell_w=30, cell_h=24, width=40 + 24 * 30 + 10, height=24 + len(HEATMAP_ROWS) * 24 + 74)
    return {SCHEDULES_MD: markdown, SCHEDULES_SVG: svg}


def deployment_spec(project: Project, defaults: Defaults) -> DeploymentSpec:
    schedules = tuple(
        ScheduleSpec(cron=e.cron, timezone=e.timezone or defaults.timezone, active=e.active, slug=e.slug,
                     parameters=schedule_parameters(e.parameters),
                     replaces=Replaces.of(e.replaces.deployment, e.replaces.schedule_id, e.slug)
                     if e.replaces is not None else None)
        for e in project.schedule_entries
    )
    return DeploymentSpec(
        name=project.name,
        entrypoint=PACKAGE_ENTRYPOINT if defaults.source.package else ENTRYPOINT,
        description=project.description,
        tags=_tags(defaults.tags, project.tags, defaults.owner),
        work_pool=project.work_pool or defaults.work_pool,
        parameters=flow_parameters(project, defaults),
        schedules=schedules,
        replaces=Replaces.of(project.replaces.deployment, project.replaces.schedule_id)
        if project.replaces is not None else None,
        concurrency=(project.limits.concurrency, project.limits.collision_strategy) if project.limits else None,
        alerts=alert_specs(project, defaults),
    )


def flow_parameters(project: Project, defaults: Defaults | None = None) -> tuple[tuple[str, Any], ...]:
    """The flow's parameters in a fixed order; the credentials block is a reference, never values."""
    params: list[tuple[str, Any]] = [
        ("credentials", "{{ prefect.blocks.%s.%s }}" % (BLOCK_TYPE_SLUG, project.credentials.block)),
        ("configured_model_id", project.model_id),
        ("end_mode", project.end_mode),
    ]
    if project.end_date is not None:
        params.append(("end_date", project.end_date.isoformat()))
    if project.end_period_offset is not None:
        params.append(("end_period_offset", project.end_period_offset))
    if project.prediction_setup_id is not None:
        params.append(("prediction_setup_id", project.prediction_setup_id))
    if defaults is not None and project.credentials.block in defaults.instance_limits:
        params.append((CHAP_LIMIT_PARAMETER, instance_limit_name(defaults.owner, project.credentials.block)))
    return tuple(params)


def schedule_parameters(params: ScheduleParameters | None) -> tuple[tuple[str, Any], ...]:
    """A schedule's overrides as flow parameters. An end mode is overridden whole: the other
    mode's value is sent as null, so the project's own (merged in by Prefect) cannot linger."""
    if params is None:
        return ()
    out: list[tuple[str, Any]] = []
    if params.end_mode is not None:
        out.append(("end_mode", params.end_mode))
        out.append(("end_date", params.end_date.isoformat() if params.end_date else None))
        out.append(("end_period_offset", params.end_period_offset))
    else:
        if params.end_date is not None:
            out.append(("end_date", params.end_date.isoformat()))
        if params.end_period_offset is not None:
            out.append(("end_period_offset", params.end_period_offset))
    if params.prediction_setup_id is not None:
        out.append(("prediction_setup_id", params.prediction_setup_id))
    return tuple(out)


NOTIFICATION_TYPES = {"webhook": "custom-webhook", "slack": "slack-webhook", "email": "sendgrid-email"}
def instance_limit_name(owner: str, block: str) -> str:
    """The global concurrency limit of one DHIS2 instance: chapctl owns the names it prefixes."""
    return INSTANCE_LIMIT.format(owner=owner, block=block)


def effective_alerts(project: Project, defaults: Defaults) -> Alerts | None:
    return project.alerts if project.alerts is not None else defaults.alerts


def alert_specs(project: Project, defaults: Defaults) -> tuple[AlertSpec, ...]:
    alerts = effective_alerts(project, defaults)
    if alerts is None:
        return ()
    targets = tuple(BlockRef(NOTIFICATION_TYPES[defaults.notifications[n].kind], n) for n in alerts.notify
                    if n in defaults.notifications)
    specs = []
    if alerts.failed:
        specs.append(AlertSpec("failed", targets))
    if alerts.missed is not None:
        specs.append(AlertSpec("missed", targets, duration_seconds(alerts.missed)))
    return tuple(specs)


def notification_specs(projects: list[Project], defaults: Defaults) -> list[BlockDocument]:
    """One managed block per declared notification target (named by a project or not)."""
    users: dict[str, list[str]] = {name: [] for name in defaults.notifications}
    for project in projects:
        alerts = effective_alerts(project, defaults)
        for name in alerts.notify if alerts else ():
            if name in users:
                users[name].append(project.name)
    return [notification_block(name, target, tuple(sorted(set(users[name]))))
            for name, target in sorted(defaults.notifications.items())]


def notification_block(name: str, target: Notification, used_by: tuple[str, ...] = ()) -> BlockDocument:
    """The managed block of one notification target: its data, and its secret as a variable's name."""
    if target.webhook is not None:
        data = {"name": name, "url": "{{url}}", "method": "POST",
                "json_data": {"subject": "{{subject}}", "body": "{{body}}"}}
        secrets = {"secrets.url": target.webhook.url_env}
    elif target.slack is not None:
        data, secrets = {}, {"url": target.slack.url_env}
    else:
        data = {"sender_email": target.email.sender, "to_emails": list(target.email.to)}
        secrets = {"api_key": target.email.api_key_env}
    return BlockDocument(NOTIFICATION_TYPES[target.kind], name, data, secrets, used_by)


def environment_specs(defaults: Defaults) -> tuple[EnvironmentSpec, ...]:
    """`environments:` as prefect.yaml lists them (compiler/compile/environments.py lays one over
    the rest): each with its owner in full and the notification blocks it replaces."""
    return tuple(
        EnvironmentSpec(
            name=name,
            owner=environment_owner(defaults.owner, env.owner_suffix),
            api_url_env=env.api_url_env,
            auth_string_env=env.auth_string_env,
            api_key_env=env.api_key_env,
            work_pool=env.work_pool,
            schedules=env.schedules,
            notifications=tuple(notification_block(n, target) for n, target in sorted(env.notifications.items())),
        )
        for name, env in defaults.environments.items()  # in the file's order: the order of promotion
    )


def concurrency_limit_specs(projects: list[Project], defaults: Defaults) -> list[ConcurrencyLimitSpec]:
    users: dict[str, list[str]] = {}
    for project in projects:
        if project.credentials.block in defaults.instance_limits:
            users.setdefault(project.credentials.block, []).append(project.name)
    return [ConcurrencyLimitSpec(instance_limit_name(defaults.owner, block), limit, block,
                                 tuple(sorted(users.get(block, ()))))
            for block, limit in sorted(defaults.instance_limits.items()) if block in users]


def block_specs(projects: list[Project]) -> list[BlockDocument]:
    """One spec per managed block; validation already proved that sharers agree."""
    users: dict[str, list[str]] = {}
    first: dict[str, Project] = {}
    for project in projects:
        creds = project.credentials
        if creds.managed:
            users.setdefault(creds.block, []).append(project.name)
            first.setdefault(creds.block, project)
    return [
        BlockDocument(
            type_slug=BLOCK_TYPE_SLUG,
            name=name,
            data={"base_url": first[name].credentials.base_url.rstrip("/"),
                  "username": first[name].credentials.username},
            secret_env={"password": first[name].credentials.password_env},
            used_by=tuple(sorted(users[name])),
        )
        for name in sorted(users)
    ]


def pull_steps(defaults: Defaults) -> list[PullStep]:
    """The deployments' pull steps. From the package, the step names the chapctl release whose flow
    the workers must run (this chapctl's): upgrading chapctl changes every deployment, as plan shows."""
    source = defaults.source
    if source.package is not None:
        return [PullStep(REQUIRE_CHAPCTL, (("version", __version__),))]
    if source.git is not None:
        return [PullStep("prefect.deployments.steps.git_clone",
                         (("repository", source.git.repository), ("branch", source.git.branch)))]
    return [PullStep("prefect.deployments.steps.set_working_directory",
                     (("directory", "{{ $%s }}" % source.directory_env),))]


def _tags(default_tags: list[str], project_tags: list[str], owner: str) -> tuple[str, ...]:
    """The user's tags in order, then the two markers: chapctl's and its owner's (validation
    refuses user tags that imitate an owner tag)."""
    ordered = dict.fromkeys(t for t in [*default_tags, *project_tags] if not t.startswith(OWNER_TAG_PREFIX))
    ordered.pop(MANAGED_TAG, None)
    return (*ordered, MANAGED_TAG, owner_tag(owner))


# --- YAML-safe templating --------------------------------------------------------------------


class YamlText(str):
    """Text already made safe for YAML by the `y` filter."""


_PLAIN = re.compile(r"[A-Za-z_/][A-Za-z0-9_./@+:(),' -]*")
_RESERVED = {"true", "false", "yes", "no", "on", "off", "null", "y", "n"}


@lru_cache(maxsize=8192, typed=True)  # typed: True and 1 must not share an entry
def yaml_scalar(value: Any) -> YamlText:
    """A YAML scalar for `value` that both YAML 1.1 (PyYAML, used by `prefect deploy`) and 1.2
    read back as the same value: plain when unambiguous, else a JSON string (valid YAML)."""
    if value is None:
        return YamlText("null")
    if isinstance(value, bool):
        return YamlText("true" if value else "false")
    if isinstance(value, int):
        return YamlText(str(value))
    if not isinstance(value, str):
        raise TypeError(f"cannot render {type(value).__name__} as a YAML scalar")
    if (_PLAIN.fullmatch(value) and ": " not in value and not value.endswith((":", " "))
            and value.casefold() not in _RESERVED):
        return YamlText(value)
    # U+2028/U+2029 stay escaped: YAML 1.1 (PyYAML) reads them as line breaks.
    return YamlText(json.dumps(value, ensure_ascii=False).replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _bytecode_cache(cache: Path | None) -> jinja2.BytecodeCache | None:
    """Compiled templates kept under the repository's .chapctl/cache (git-ignored): compiling the
    four templates from source costs ~0.08 s per run. Jinja checks each template's mtime, so an
    upgraded chapctl's templates are seen."""
    if cache is None:
        return None
    folder = cache / "jinja"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:  # a read-only checkout: compile templates every time
        return None
    return jinja2.FileSystemBytecodeCache(str(folder))


class MdText(str):
    """Text already made safe for Markdown by the `md`/`code` filters (compiler/markdown.py, the
    one escaper)."""


def markdown_text(value: Any) -> MdText:
    return MdText(markdown.text(" ".join(str(value).split())))  # one line: tables cannot hold newlines


def _markdown_environment(cache: Path | None) -> jinja2.Environment:
    def refuse_raw(value: Any) -> Any:
        if isinstance(value, MdText):
            return value
        raise TypeError(f"template emitted {value!r} without the `md` filter")

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=False,
                             bytecode_cache=_bytecode_cache(cache),
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True, finalize=refuse_raw)
    env.filters["md"] = markdown_text
    env.filters["code"] = lambda v: MdText(markdown.code(v))
    env.filters["bold"] = lambda v: MdText("**" + markdown_text(v) + "**")
    env.filters["mdjoin"] = lambda items, sep: MdText(sep.join(markdown_text(i) for i in items))
    return env


def _environment(cache: Path | None) -> jinja2.Environment:
    return yaml_environment(jinja2.FileSystemLoader(str(TEMPLATES)), _bytecode_cache(cache))


def yaml_environment(loader: jinja2.BaseLoader, bytecode_cache: jinja2.BytecodeCache | None = None,
                     allowed: tuple[type, ...] = ()) -> jinja2.Environment:
    """A jinja2 environment for YAML templates (compile's, import's): every value a template emits
    must have gone through the `y` filter (`yaml_scalar`), or be of an `allowed` type."""
    def refuse_raw(value: Any) -> Any:
        if isinstance(value, (YamlText, *allowed)):
            return value
        raise TypeError(f"template emitted {value!r} without the `y` filter; every value must be quoted")

    env = jinja2.Environment(
        loader=loader,
        bytecode_cache=bytecode_cache,
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # YAML, not HTML: escaping is done by the `y` filter, enforced by finalize
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        finalize=refuse_raw,
    )
    env.filters["y"] = yaml_scalar
    return env
