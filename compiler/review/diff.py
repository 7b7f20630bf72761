"""`chapctl diff`: what changed in the projects between two git revisions, in reviewer's terms.

Both sides are loaded and validated like `compile` does, then compared field by field: every
field of `_defaults.yaml` (listed once, under its own name), and each project's *effective*
settings (defaults applied, so a change in `_defaults.yaml` also shows on every project it moves):
every field of the deployment spec it compiles to and of its credentials. That is everything
`render` writes, so nothing plan acts on can change unseen. Schedule changes come with the next
runs of each side, computed by Prefect's own schedule code. The variables apply will need are read
from the head's compiled artifacts by `constants.artifact_env`, which apply's desired state agrees with.
"""

from __future__ import annotations

import datetime as dt
import io
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from compiler.compile.load import PROJECTS_DIR, load_repo, parse_artifact
from compiler.compile.models import Defaults, Project
from compiler.compile.environments import find as find_environment
from compiler.compile.environments import limit_names, overlay_deployment
from compiler.compile.render import (BLOCKS_DIR, PREFECT_YAML, SCHEDULE_SLUG, ScheduleSpec, deployment_spec,
                                     environment_specs, render)
from compiler.compile.validate import ValidatedRepo, validate
from compiler.constants import EXIT_CHANGES, EXIT_OK, artifact_env
from compiler.errors import UserError
from compiler.jsontree import paths
from compiler.compile.schedule_report import ScheduleReport, describe, schedule_report

MAIN_BRANCHES = ("origin/main", "main", "origin/master", "master")
PREVIEW_RUNS = 3


@dataclass(frozen=True)
class FieldChange:
    field: str
    before: Any
    after: Any


@dataclass(frozen=True)
class ScheduleSide:
    cron: str
    timezone: str
    active: bool
    description: str  # plain English, local time
    utc: tuple[str, ...]  # plain English in UTC, one per DST period
    next_runs: tuple[dt.datetime, ...]


@dataclass(frozen=True)
class ProjectChange:
    name: str
    kind: str  # "added" | "removed" | "changed"
    fields: tuple[FieldChange, ...]
    schedule_before: ScheduleSide | None
    schedule_after: ScheduleSide | None


@dataclass(frozen=True)
class SemanticDiff:
    base: str
    head: str
    changes: tuple[ProjectChange, ...]
    unchanged: int
    defaults: tuple[FieldChange, ...] = ()  # `_defaults.yaml`, every field (source, notifications, instance limits, …)
    variables: tuple[str, ...] = ()  # every environment variable apply will need at head (artifact_env)
    new_variables: tuple[str, ...] = ()  # ... of which the base did not need
    new_warnings: tuple[str, ...] = ()  # load hot-spots at head that the base did not have
    gone_warnings: tuple[str, ...] = ()  # hot-spots of the base that this change removes
    environment: str | None = None  # --env: the projects compared as that environment applies them

    def counts(self) -> dict[str, int]:
        c = {k: sum(1 for ch in self.changes if ch.kind == k) for k in ("added", "changed", "removed")}
        return {**c, "unchanged": self.unchanged}

    @property
    def changed(self) -> bool:
        return bool(self.changes or self.defaults)


def semantic_diff(root: Path, base: str | None = None, head: str | None = None,
                  now: dt.datetime | None = None, environment: str | None = None) -> SemanticDiff:
    base_rev = base or default_base(root)
    with tempfile.TemporaryDirectory(prefix="chapctl-diff-") as tmp:
        before = _validated(_checkout(root, base_rev, Path(tmp) / "base"), f"at {base_rev}")
        after_root = _checkout(root, head, Path(tmp) / "head") if head else root
        after = _validated(after_root, f"at {head}" if head else "in the working tree")
    return compare(before, after, base_rev, head or "working tree", now, environment)


def compare(before: ValidatedRepo, after: ValidatedRepo, base: str = "base", head: str = "head",
            now: dt.datetime | None = None, environment: str | None = None) -> SemanticDiff:
    """The semantic diff of two validated repositories (compiled with this chapctl's templates), each
    side as `environment` (--env; declared at head) applies it, where that side declares it.

    Complete by construction: what reaches the server is rendered from each project's deployment
    spec and credentials and from `_defaults.yaml`, and every field of those three is compared."""
    from compiler.compile.environments import select

    environment = select(list(after.defaults.environments), environment, f"_defaults.yaml at {head}")
    start = now or dt.datetime.now(dt.timezone.utc)
    old = {v.project.name: _effective(v.project, before.defaults, environment) for v in before.projects}
    new = {v.project.name: _effective(v.project, after.defaults, environment) for v in after.projects}
    changes = []
    for name in sorted(old.keys() | new.keys()):
        a, b = old.get(name), new.get(name)
        if a == b:
            continue
        kind = "added" if a is None else "removed" if b is None else "changed"
        shown = () if kind == "removed" else _changes(a[0] if a else {}, b[0])  # removed: its last schedule, below
        schedules_a, schedules_b = a[1] if a else {}, b[1] if b else {}
        # The first schedule that moved (in the project's order), with its next runs before and after.
        moved = next((slug for slug in [*schedules_b, *schedules_a] if schedules_a.get(slug) != schedules_b.get(slug)),
                     None)
        changes.append(ProjectChange(name, kind, shown, _schedule_side(schedules_a.get(moved), start),
                                     _schedule_side(schedules_b.get(moved), start)))
    unchanged = sum(1 for name in old.keys() & new.keys() if old[name] == new[name])
    report_before, report_after = schedule_report(before), schedule_report(after)
    warnings_before = [spot.text() for spot in report_before.hotspots]
    warnings_after = [spot.text() for spot in report_after.hotspots]
    variables_before = _variables(before, report_before)
    variables_after = _variables(after, report_after)
    return SemanticDiff(base, head, tuple(changes), unchanged,
                        defaults=_changes(_defaults_fields(before.defaults), _defaults_fields(after.defaults)),
                        variables=variables_after,
                        new_variables=tuple(v for v in variables_after if v not in variables_before),
                        new_warnings=tuple(w for w in warnings_after if w not in warnings_before),
                        gone_warnings=tuple(w for w in warnings_before if w not in warnings_after),
                        environment=environment)


def _changes(a: dict[str, Any], b: dict[str, Any]) -> tuple[FieldChange, ...]:
    return tuple(FieldChange(k, a.get(k), b.get(k)) for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k))


def _variables(repo: ValidatedRepo, report: ScheduleReport) -> tuple[str, ...]:
    """What apply will read from its environment for these projects: found in their compiled
    artifacts by the function apply's desired state agrees with (`constants.artifact_env`)."""
    files = render(repo, report).files
    blocks = [parse_artifact(text, path) for path, text in files.items()
              if path.startswith(f"{BLOCKS_DIR}/") and path.endswith(".yaml")]
    return tuple(sorted(artifact_env(parse_artifact(files[PREFECT_YAML], PREFECT_YAML), blocks)))


def default_base(root: Path) -> str:
    """The merge base of HEAD with the main branch, like a pull request's diff."""
    for branch in MAIN_BRANCHES:
        if _git(root, "rev-parse", "--verify", "--quiet", branch + "^{commit}", check=False).returncode == 0:
            return _git(root, "merge-base", "HEAD", branch).stdout.decode().strip()
    raise UserError("no main branch (main, master, origin/main, origin/master) to diff against; "
                    "pass --base REV")


def _git(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    try:
        result = subprocess.run(["git", *args], cwd=root, capture_output=True, check=False)
    except FileNotFoundError:
        raise UserError("git is not installed; chapctl diff needs it") from None
    if check and result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip().splitlines()
        raise UserError(f"git {' '.join(args)} failed: {message[-1] if message else 'unknown error'}")
    return result


def _checkout(root: Path, rev: str, target: Path) -> Path:
    """The revision's projects/ (as `git archive` gives it) in `target`, which acts as a repo root."""
    prefix = _git(root, "rev-parse", "--show-prefix").stdout.decode().strip()
    if _git(root, "rev-parse", "--verify", "--quiet", rev + "^{commit}", check=False).returncode != 0:
        raise UserError(f"unknown git revision {rev!r}; give a commit, branch or tag to --base/--head")
    archive = _git(root, "archive", "--format=tar", rev, "--", f"{prefix}{PROJECTS_DIR}", check=False)
    target.mkdir(parents=True)
    if archive.returncode == 0:
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(target, filter="data")
    moved = target / prefix / PROJECTS_DIR if prefix else target / PROJECTS_DIR
    if prefix and moved.is_dir():
        moved.rename(target / PROJECTS_DIR)
    (target / PROJECTS_DIR).mkdir(exist_ok=True)  # a revision before the first project
    return target


def _validated(root: Path, where: str) -> ValidatedRepo:
    result = validate(load_repo(root))
    if not result.ok:
        errors = [d for d in result.diagnostics if d.severity == "error"]
        first = errors[0].headline()
        raise UserError(f"projects {where} are invalid ({len(errors)} error(s), first: {first}); "
                        "fix them, or diff against another revision")
    return result


def _defaults_fields(defaults: Defaults) -> dict[str, Any]:
    """Every field of `_defaults.yaml` (its defaults filled in) as dotted paths."""
    return {k: v for k, v in paths(defaults.model_dump(mode="json")).items() if v is not None and v != {}}


def _effective(project: Project, defaults: Defaults,
               environment: str | None = None) -> tuple[dict[str, Any], dict[str, ScheduleSpec]]:
    """A project's effective settings as dotted fields (every field of the deployment it compiles to,
    defaults applied, and `environment` laid over it where these defaults declare it; and of its
    credentials block), and its schedules by slug."""
    spec = deployment_spec(project, defaults)
    env = find_environment(environment_specs(defaults), environment)
    if env is not None:
        spec = overlay_deployment(spec, env, defaults.owner, limit_names(defaults.owner, env, defaults.instance_limits))
    doc: dict[str, Any] = {f.name: getattr(spec, f.name) for f in fields(spec)}  # a new field shows as it is
    del doc["name"]  # the project's identity
    doc["tags"] = ", ".join(spec.tags)
    doc["parameters"] = {k: v for k, v in spec.parameters if k != "credentials"}  # a block reference: see below
    creds = project.credentials
    doc["credentials"] = {**creds.model_dump(mode="json"),
                          **({"base_url": creds.base_url.rstrip("/")} if creds.managed else {})}
    # `schedule.cron` for `schedule:`, `schedule.<slug>.cron` for an entry of `schedules:`.
    del doc["schedules"]
    doc["schedule"] = {}
    for s in spec.schedules:
        side = {f.name: getattr(s, f.name) for f in fields(s) if f.name not in ("slug", "parameters")}
        side["parameters"] = dict(s.parameters)
        side["replaces"] = s.replaces.items() if s.replaces else None
        doc["schedule"].update(side if s.slug == SCHEDULE_SLUG else {s.slug: side})
    concurrency = doc.pop("concurrency")
    doc["limits"] = dict(zip(("concurrency", "collision_strategy"), concurrency)) if concurrency else None
    doc["alerts"] = {a.kind: {"notify": ", ".join(f"{r.name} ({r.slug})" for r in a.notify),
                              "grace_seconds": a.grace_seconds} for a in spec.alerts}
    doc["replaces"] = dict(spec.replaces.items()) if spec.replaces else None
    flat = {k: v for k, v in paths(doc).items() if v is not None and v != {}}
    return flat, {s.slug: s for s in spec.schedules}


def _schedule_side(spec: ScheduleSpec | None, start: dt.datetime) -> ScheduleSide | None:
    if spec is None:
        return None
    from compiler.review.preview import schedule_runs
    from compiler.compile.schedule_report import utc_texts

    return ScheduleSide(spec.cron, spec.timezone, spec.active, describe(spec.cron), utc_texts(spec.cron, spec.timezone),
                        tuple(schedule_runs(spec.cron, spec.timezone, PREVIEW_RUNS, start)))


@dataclass(frozen=True)
class DiffResult:
    """`chapctl diff`: the semantic diff; `detailed_exitcode` makes a change exit 2."""

    diff: SemanticDiff
    detailed_exitcode: bool = False

    @property
    def exit_code(self) -> int:
        return EXIT_CHANGES if self.detailed_exitcode and self.diff.changed else EXIT_OK


def run_diff(root: Path, base: str | None = None, head: str | None = None,
             detailed_exitcode: bool = False, environment: str | None = None) -> DiffResult:
    """The entry point of `chapctl diff` (its reporters: compiler/output/review.py); `environment`
    (--env): compare the projects as that environment applies them."""
    return DiffResult(semantic_diff(root, base, head, environment=environment), detailed_exitcode)
