"""Reporters of the review verbs: `chapctl schedule` (`ScheduleResult`: a table of the next runs,
or JSON) and `chapctl diff` (`DiffResult`: text, JSON, or Markdown for a pull request)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict
from typing import Any

from compiler.markdown import code as md_code
from compiler.markdown import text as md_text
from compiler.output import Err, Out, Rendered, Table, reporter
from compiler.review.diff import DiffResult, ProjectChange, ScheduleSide, SemanticDiff
from compiler.review.preview import Preview, ScheduleResult
from compiler.timefmt import iso, run_json, utc_clock, utc_minute, zoned

RESULTS = {"schedule": (ScheduleResult,), "diff": (DiffResult,)}


# -- schedule -------------------------------------------------------------------------------------
PREVIEW_COLUMNS = ("project", "schedule", "local time", "UTC")


def preview_json(previews: tuple[Preview, ...]) -> list[dict]:
    return [
        {"project": p.project, "cron": p.cron, "timezone": p.timezone, "active": p.active,
         "runs": [run_json(r) for r in p.runs]}
        for p in previews
    ]


def preview_rows(previews: tuple[Preview, ...]) -> list[tuple[str, str, str, str]]:
    """The text table of `chapctl schedule`, one row per run (PREVIEW_COLUMNS): the project and its
    schedule on the first run's row only."""
    rows = []
    for preview in previews:
        label = f"{preview.cron} {preview.timezone}" + ("" if preview.active else " (paused: no runs)")
        for index, run in enumerate(preview.runs):
            rows.append((preview.project if index == 0 else "", label if index == 0 else "",
                         zoned(run), utc_minute(run, weekday=True)))
    return rows


def _note(result: ScheduleResult) -> Rendered:
    paused = (Err(f"note: environment {result.environment!r} applies every schedule paused: none of these runs "
                  "happens there"),) if result.paused_by_environment else ()
    return paused + ((Err(f"note: {result.note}"),) if result.note else ())


@reporter(ScheduleResult, "text")
def schedule_text(result: ScheduleResult) -> Rendered:
    return (Table(PREVIEW_COLUMNS, tuple(preview_rows(result.previews))),) + _note(result)


@reporter(ScheduleResult, "json")
def schedule_json(result: ScheduleResult) -> Rendered:
    return (Out(json.dumps(preview_json(result.previews), indent=2) + "\n"),) + _note(result)


# -- diff -----------------------------------------------------------------------------------------
@reporter(DiffResult, "text")
def diff_text(result: DiffResult) -> Rendered:
    return (Out("\n".join(diff_lines(result.diff)) + "\n"),)


@reporter(DiffResult, "json")
def diff_json_report(result: DiffResult) -> Rendered:
    return (Out(diff_json(result.diff) + "\n"),)


@reporter(DiffResult, "markdown")
def diff_markdown_report(result: DiffResult) -> Rendered:
    return (Out(diff_markdown(result.diff)),)


def _when(run: dt.datetime) -> str:
    return f"{zoned(run)} = {utc_clock(run)} UTC"


def _side_text(side: ScheduleSide | None) -> str:
    if side is None:
        return "no schedule"
    state = "" if side.active else " (paused: no runs)"
    utc = "; ".join(side.utc)
    return f"`{side.cron}` {side.timezone}: {side.description} (UTC: {utc}){state}"


def _summary(diff: SemanticDiff) -> str:
    c = diff.counts()
    return f"{c['added']} added, {c['changed']} changed, {c['removed']} removed, {c['unchanged']} unchanged"


DEFAULTS_FILE = "_defaults.yaml"


def _entries(diff: SemanticDiff) -> list[ProjectChange]:
    """`_defaults.yaml` first (what it changes for the whole repository), then the projects."""
    defaults = [ProjectChange(DEFAULTS_FILE, "changed", diff.defaults, None, None)] if diff.defaults else []
    return defaults + list(diff.changes)


def diff_lines(diff: SemanticDiff) -> list[str]:
    where = f" (environment {diff.environment!r})" if diff.environment else ""
    lines = [f"Projects: {diff.base[:12]} → {diff.head}{where}"]
    if not diff.changed:
        lines.append("No project changes.")
    for change in _entries(diff):
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
    if diff.changed:
        lines.append(_summary(diff))
    lines += [f"warning: new load hot-spot: {w}" for w in diff.new_warnings]
    lines += [f"resolved load hot-spot: {w}" for w in diff.gone_warnings]
    if diff.new_variables:
        lines.append("variables apply will need that the base did not: " + ", ".join(diff.new_variables)
                     + " (set each where apply runs before merge: a repository secret in CI)")
    return lines


def diff_markdown(diff: SemanticDiff) -> str:
    where = f" — environment {md_code(diff.environment)}" if diff.environment else ""
    out = [f"### chapctl diff: projects {md_code(diff.base[:12])} → {_md_text(diff.head)}{where}", ""]
    if not diff.changed:
        out += ["No project changes.", ""]
    else:
        out += [f"**{_summary(diff)}**", ""]
    for change in _entries(diff):
        out.append(f"#### {_md_text(change.name)} — {change.kind}")
        out.append("")
        rows = [(_md_text(f.field), _md(f.before), _md(f.after)) for f in change.fields]
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
    if diff.variables:
        marked = [md_code(v) + (" **(new)**" if v in diff.new_variables else "") for v in diff.variables]
        out += [":key: **Variables apply will need** (each must be set where apply runs — a repository secret in "
                f"CI): {', '.join(marked)}", ""]
    return "\n".join(line for i, line in enumerate(out) if line or (i and out[i - 1])).rstrip() + "\n"


def diff_json(diff: SemanticDiff) -> str:
    doc = asdict(diff)
    doc["counts"] = diff.counts()
    return json.dumps(doc, indent=2, default=lambda o: iso(o) if isinstance(o, dt.datetime) else str(o))


def _md_side(side: ScheduleSide | None) -> str:
    if side is None:
        return "no schedule"
    state = "" if side.active else " **(paused: no runs)**"
    return f"{_md(side.cron)} {_md_text(side.timezone)}: {_md_text(side.description)} (UTC: {_md_text('; '.join(side.utc))}){state}"


_md_text = md_text  # the one escaper (compiler/markdown.py)


def _text(value: Any) -> str:
    """A value as a project file writes it: true/false, lists and mappings as JSON (YAML's flow style)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return str(value)


def _value(value: Any) -> str:
    return "(none)" if value is None else _text(value)


def _md(value: Any) -> str:
    return "—" if value is None else md_code(_text(value))
