"""`chapctl diff`: what changed in the projects between two git revisions, in reviewer's terms.

Both sides are loaded and validated like `compile` does, then compared as *effective* settings
(defaults applied), so a change in `_defaults.yaml` shows on every project it moves. Schedule
changes come with the next runs of each side, computed by Prefect's own schedule code.
"""

from __future__ import annotations

import datetime as dt
import io
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compiler.markdown import code as md_code
from compiler.markdown import text as md_text
from compiler.errors import UserError
from compiler.compile.load import PROJECTS_DIR, load_repo
from compiler.compile.models import Project
from compiler.compile.render import SCHEDULE_SLUG, deployment_spec
from compiler.review.schedules import describe
from compiler.compile.validate import ValidatedRepo, validate

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
    secrets: tuple[str, ...] = ()  # password_env names the projects use at head: repository secrets apply needs
    new_secrets: tuple[str, ...] = ()  # ... of which the base did not use
    new_warnings: tuple[str, ...] = ()  # load hot-spots at head that the base did not have
    gone_warnings: tuple[str, ...] = ()  # hot-spots of the base that this change removes

    def counts(self) -> dict[str, int]:
        c = {k: sum(1 for ch in self.changes if ch.kind == k) for k in ("added", "changed", "removed")}
        return {**c, "unchanged": self.unchanged}


def semantic_diff(root: Path, base: str | None = None, head: str | None = None,
                  now: dt.datetime | None = None) -> SemanticDiff:
    base_rev = base or default_base(root)
    with tempfile.TemporaryDirectory(prefix="chapctl-diff-") as tmp:
        before = _validated(_checkout(root, base_rev, Path(tmp) / "base"), f"at {base_rev}")
        after_root = _checkout(root, head, Path(tmp) / "head") if head else root
        after = _validated(after_root, f"at {head}" if head else "in the working tree")
    start = now or dt.datetime.now(dt.timezone.utc)
    old = {v.project.name: _flatten(v.project, before) for v in before.projects}
    new = {v.project.name: _flatten(v.project, after) for v in after.projects}
    changes = []
    for name in sorted(old.keys() | new.keys()):
        a, b = old.get(name), new.get(name)
        if a == b:
            continue
        kind = "added" if a is None else "removed" if b is None else "changed"
        fields = tuple(FieldChange(k, (a or {}).get(k), (b or {}).get(k))
                       for k in sorted((a or {}).keys() | (b or {}).keys()) if (a or {}).get(k) != (b or {}).get(k))
        # The next runs of the first schedule that moved (`schedule.` for `schedule:`, `schedule.<slug>.`
        # for an entry of `schedules:`), before and after.
        moved = next((_schedule_prefix(f.field) for f in fields if f.field.startswith("schedule.")), None)
        if kind == "removed":
            fields = ()  # every field "→ (none)" says nothing; its last schedule is shown below
        changes.append(ProjectChange(
            name, kind, fields,
            _schedule_side(a, start, moved) if moved else None,
            _schedule_side(b, start, moved) if moved else None,
        ))
    unchanged = sum(1 for name in old.keys() & new.keys() if old[name] == new[name])
    secrets_before, secrets_after = _secrets(before), _secrets(after)
    warnings_before, warnings_after = _hotspots(before), _hotspots(after)
    return SemanticDiff(base_rev, head or "working tree", tuple(changes), unchanged,
                        secrets=secrets_after, new_secrets=tuple(s for s in secrets_after if s not in secrets_before),
                        new_warnings=tuple(w for w in warnings_after if w not in warnings_before),
                        gone_warnings=tuple(w for w in warnings_before if w not in warnings_after))


def _secrets(repo: ValidatedRepo) -> tuple[str, ...]:
    return tuple(sorted({v.project.credentials.password_env for v in repo.projects if v.project.credentials.managed}))


def _hotspots(repo: ValidatedRepo) -> tuple[str, ...]:
    from compiler.review.schedules import schedule_report

    return tuple(spot.text() for spot in schedule_report(repo).hotspots)


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
    from compiler.compile.diagnostics import format_text

    result = validate(load_repo(root))
    if not result.ok:
        errors = [d for d in result.diagnostics if d.severity == "error"]
        first = format_text(errors[:1]).splitlines()[0]
        raise UserError(f"projects {where} are invalid ({len(errors)} error(s), first: {first}); "
                        "fix them, or diff against another revision")
    return result


def _flatten(project: Project, repo: ValidatedRepo) -> dict[str, Any]:
    """The effective settings of a project as dotted fields."""
    spec = deployment_spec(project, repo.defaults)
    creds = project.credentials
    flat: dict[str, Any] = {
        "description": spec.description,
        "tags": ", ".join(spec.tags),
        "work_pool": spec.work_pool,
        "credentials.block": creds.block,
    }
    if creds.managed:
        flat.update({"credentials.base_url": creds.base_url.rstrip("/"), "credentials.username": creds.username,
                     "credentials.password_env": creds.password_env})
    for key, value in spec.parameters:
        if key != "credentials":
            flat[f"parameters.{key}"] = value
    for schedule in spec.schedules:
        prefix = "schedule." if schedule.slug == SCHEDULE_SLUG else f"schedule.{schedule.slug}."
        flat.update({prefix + "cron": schedule.cron, prefix + "timezone": schedule.timezone,
                     prefix + "active": schedule.active})
        flat.update({f"{prefix}parameters.{k}": v for k, v in schedule.parameters})
    if spec.concurrency is not None:
        flat.update({"limits.concurrency": spec.concurrency[0], "limits.collision_strategy": spec.concurrency[1]})
    for alert in spec.alerts:
        flat[f"alerts.{alert.kind}"] = ", ".join(name for _, name in alert.notify) + (
            f" (after {alert.grace_seconds} s late)" if alert.grace_seconds is not None else "")
    if project.replaces is not None:
        flat.update({"replaces.deployment": project.replaces.deployment,
                     "replaces.schedule_id": project.replaces.schedule_id})
    return {k: v for k, v in flat.items() if v is not None}


def _schedule_prefix(field: str) -> str:
    """`schedule.` of `schedule.cron`, `schedule.weekly.` of `schedule.weekly.parameters.end_mode`."""
    parts = field.split(".")
    return "schedule." if parts[1] in ("cron", "timezone", "active", "parameters") else f"schedule.{parts[1]}."


def _schedule_side(flat: dict[str, Any] | None, start: dt.datetime, prefix: str = "schedule.") -> ScheduleSide | None:
    if not flat or prefix + "cron" not in flat:
        return None
    from compiler.review.preview import schedule_runs

    from compiler.review.schedules import utc_texts

    cron, zone = flat[prefix + "cron"], flat[prefix + "timezone"]
    return ScheduleSide(cron, zone, flat[prefix + "active"], describe(cron), utc_texts(cron, zone),
                        tuple(schedule_runs(cron, zone, PREVIEW_RUNS, start)))


# --- reporters ---------------------------------------------------------------------------------


def _when(run: dt.datetime) -> str:
    utc = run.astimezone(dt.timezone.utc)
    return f"{run:%a %Y-%m-%d %H:%M} {run.tzname()} = {utc:%a %H:%M} UTC"


def _side_text(side: ScheduleSide | None) -> str:
    if side is None:
        return "no schedule"
    state = "" if side.active else " (paused: no runs)"
    utc = "; ".join(side.utc)
    return f"`{side.cron}` {side.timezone}: {side.description} (UTC: {utc}){state}"


def _summary(diff: SemanticDiff) -> str:
    c = diff.counts()
    return f"{c['added']} added, {c['changed']} changed, {c['removed']} removed, {c['unchanged']} unchanged"


def diff_lines(diff: SemanticDiff) -> list[str]:
    lines = [f"Projects: {diff.base[:12]} → {diff.head}"]
    if not diff.changes:
        lines.append("No project changes.")
    for change in diff.changes:
        lines.append(f"{ {'added': '+', 'removed': '-', 'changed': '~'}[change.kind]} {change.name} ({change.kind})")
        for f in change.fields:
            lines.append(f"    {f.field}: {_value(f.before)} → {_value(f.after)}")
        if change.schedule_before or change.schedule_after:
            for label, side in (("before", change.schedule_before), ("after", change.schedule_after)):
                if change.kind == "added" and label == "before" or change.kind == "removed" and label == "after":
                    continue
                lines.append(f"    schedule {label}: {_side_text(side)}")
                for run in side.next_runs if side else ():
                    lines.append(f"        {_when(run)}")
    if diff.changes:
        lines.append(_summary(diff))
    lines += [f"warning: new load hot-spot: {w}" for w in diff.new_warnings]
    lines += [f"resolved load hot-spot: {w}" for w in diff.gone_warnings]
    if diff.new_secrets:
        lines.append("secrets apply will need that the base did not: " + ", ".join(diff.new_secrets)
                     + " (repository secrets of these names must exist before merge)")
    return lines


def diff_markdown(diff: SemanticDiff) -> str:
    out = [f"### chapctl diff: projects `{diff.base[:12]}` → {diff.head}", ""]
    if not diff.changes:
        out += ["No project changes.", ""]
    else:
        out += [f"**{_summary(diff)}**", ""]
    for change in diff.changes:
        out.append(f"#### {change.name} — {change.kind}")
        out.append("")
        rows = [(f.field, _md(f.before), _md(f.after)) for f in change.fields]
        before, after = change.schedule_before, change.schedule_after
        if before or after:
            rows.append(("when", _md_side(before), _md_side(after)))
            runs_before = before.next_runs if before else ()
            runs_after = after.next_runs if after else ()
            for i in range(max(len(runs_before), len(runs_after))):
                rows.append((f"next run {i + 1}", _when(runs_before[i]) if i < len(runs_before) else "",
                             _when(runs_after[i]) if i < len(runs_after) else ""))
        if rows:
            out += ["| | before | after |", "|---|---|---|"]
            out += [f"| {field} | {b} | {a} |" for field, b, a in rows]
            out.append("")
    if diff.new_warnings or diff.gone_warnings:
        out += [":warning: **Load hot-spots this change adds:**" if diff.new_warnings else "", ""]
        out += [f"- {_md_text(w)}" for w in diff.new_warnings]
        out += [f"- resolved: {_md_text(w)}" for w in diff.gone_warnings]
        out.append("")
    if diff.secrets:
        marked = [f"`{s}`" + (" **(new)**" if s in diff.new_secrets else "") for s in diff.secrets]
        out += [f":key: **Repository secrets apply needs** (each must exist before merge): {', '.join(marked)}", ""]
    return "\n".join(line for i, line in enumerate(out) if line or (i and out[i - 1])).rstrip() + "\n"


def diff_json(diff: SemanticDiff) -> str:
    import json
    from dataclasses import asdict

    doc = asdict(diff)
    doc["counts"] = diff.counts()
    return json.dumps(doc, indent=2, default=lambda o: o.isoformat() if isinstance(o, dt.datetime) else str(o))


def _md_side(side: ScheduleSide | None) -> str:
    if side is None:
        return "no schedule"
    state = "" if side.active else " **(paused: no runs)**"
    return f"{_md(side.cron)} {side.timezone}: {_md_text(side.description)} (UTC: {_md_text('; '.join(side.utc))}){state}"


_md_text = md_text  # the one escaper (compiler/markdown.py)


def _text(value: Any) -> str:
    """A value as a project file writes it: true/false, lists and mappings as JSON (YAML's flow style)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        import json

        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return str(value)


def _value(value: Any) -> str:
    return "(none)" if value is None else _text(value)


def _md(value: Any) -> str:
    return "—" if value is None else md_code(_text(value))
