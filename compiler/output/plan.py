"""Reporters of plans and applies (`chapctl plan`: `PlanResult`; `chapctl apply`: `ApplyOutcome`
and its events): styled text lines for the terminal, JSON, and Markdown (a pull-request comment or
a CI step summary). No rich import here: `(style, text)` pairs are all the CLI needs.

Secrets never reach this module: the planner only ever says "changed", "unchanged" or
"not checked" about them. The next runs shown are computed beforehand
(compiler/reconcile/previews.py) and given as `next_runs`; nothing here imports Prefect.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from compiler.markdown import code as md_code
from compiler.markdown import text as md_text
from compiler.output import Err, Lines, Out, Rendered, reporter
from compiler.reconcile.actions import CREATE, DELETE, NOOP, UPDATE, Action, Change, Plan
from compiler.reconcile.kinds import LABELS
from compiler.reconcile.previews import NextRuns, Previews
from compiler.reconcile.saved import SavedFile
from compiler.reconcile.verbs import Applied, ApplyOutcome, Header, PlanResult, Waiting
from compiler.timefmt import iso, utc_minute, zoned

RESULTS = {"plan": (PlanResult,), "apply": (ApplyOutcome, Applied, Waiting)}

GROUPS = LABELS  # action kind -> the title its rows are grouped under (a view of the registry of kinds)
SIGN = {CREATE: "+", UPDATE: "~", DELETE: "-", NOOP: "="}
STYLE = {CREATE: "green", UPDATE: "yellow", DELETE: "red", NOOP: "dim"}
VERB = {CREATE: "create", UPDATE: "update", DELETE: "delete", NOOP: "no change"}
PAST = {CREATE: "created", UPDATE: "updated", DELETE: "deleted", NOOP: "unchanged"}


def when(run: dt.datetime) -> tuple[str, str]:
    """A run in its zone and in UTC, e.g. ("Mon 2026-11-30 06:00 +07", "Sun 2026-11-29 23:00 UTC")."""
    return zoned(run), f"{utc_minute(run, weekday=True)} UTC"


def _next_runs_lines(previews: list[NextRuns]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for nr in previews:
        label = f"next runs (cron {nr.cron!r} {nr.timezone})"
        if nr.note:
            out.append(("cyan", f"      {label}: {nr.note}"))
            continue
        out.append(("cyan", f"      {label}:"))
        out += [("", "        {} = {}".format(*when(r))) for r in nr.runs]
    return out


def fmt(value: Any) -> str:
    """A value in full: never cut mid-token (the terminal wraps long lines, Markdown cells wrap)."""
    if value is None:
        return "(none)"
    return value if isinstance(value, str) else json.dumps(value, sort_keys=False, default=str)


def _change_text(c: Change) -> str:
    if c.secret:
        return f"{c.field}: {c.after}" if c.before is None else f"{c.field}: {c.before} ({c.after})"
    if c.before is None:
        return f"{c.field}: {fmt(c.after)}"
    if c.after is None:
        return f"{c.field}: {fmt(c.before)} → (removed)"
    return f"{c.field}: {fmt(c.before)} → {fmt(c.after)}"


def _grouped(actions: list[Action]) -> list[tuple[str, list[Action]]]:
    order: list[str] = []
    groups: dict[str, list[Action]] = {}
    kinds = dict(GROUPS)
    for a in actions:
        title = kinds.get(a.kind, a.kind)
        if title not in groups:
            groups[title] = []
            order.append(title)
        groups[title].append(a)
    for title in groups:  # schedules next to their deployment, projects in name order; a hand-made
        if title == "Deployments":  # schedule a project replaces comes after that project's deployment
            groups[title].sort(key=lambda a: (a.project or a.name, 2 if a.handover else int(a.kind != "schedule")))
    return [(t, groups[t]) for t in order]


def _unchanged(actions: list[Action]) -> str:
    """`2 deployments, 3 schedules unchanged`: counted per kind, never schedules as deployments."""
    per_kind: dict[str, int] = {}
    for a in actions:
        if a.op == NOOP:
            per_kind[a.kind] = per_kind.get(a.kind, 0) + 1
    parts = [f"{n} {kind.replace('_', ' ')}{'s' if n > 1 else ''}" for kind, n in per_kind.items()]
    return ", ".join(parts) + " unchanged" if parts else ""


def _shown(a: Action) -> bool:
    return a.op != NOOP and not a.quiet


def summary_line(plan: Plan) -> str:
    c = plan.counts()
    text = f"{c[CREATE]} to create, {c[UPDATE]} to update, {c[DELETE]} to delete, {c[NOOP]} unchanged"
    if c["drift"]:
        text += f" ({c['drift']} reverting drift)"
    return text


def fingerprint_line(count: int, past: bool = False) -> str:
    verb = "recorded" if past else "apply also records"
    return (f"{verb} the fingerprint of the applied spec on {count} deployment(s) (no visible change: what "
            "changed is shown on their schedules or blocks, or an interrupted apply is being finished)")


# -- styled text for the terminal -----------------------------------------------------------------
def _guard_lines(guard: Any) -> list[tuple[str, str]]:
    if guard is None:
        return []
    out = []
    if guard.note:
        out.append(("yellow", f"note: {guard.note}"))
    if guard.refusal:
        out.append(("bold yellow", f"warning: apply from this checkout would refuse: {guard.refusal}"))
    return out


def plan_lines(plan: Plan, header: Header | None = None, *, show_noops: bool = False,
               next_runs: Previews | None = None, guard: Any = None) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if header:
        out.append(("bold", header.title()))
    for title, actions in _grouped(plan.actions):
        out.append(("bold", f"{title}"))
        for a in [a for a in actions if _shown(a) or (show_noops and a.op == NOOP)]:
            out += action_lines(a, next_runs=next_runs.get(a) if next_runs else None)
        if _unchanged(actions) and not show_noops:
            out.append(("dim", f"  = {_unchanged(actions)}"))
    if plan.counts()["fingerprint"]:
        out.append(("dim", "note: " + fingerprint_line(plan.counts()["fingerprint"])))
    if next_runs is not None and next_runs.note:
        out.append(("yellow", f"note: {next_runs.note}"))
    for note in plan.notes:
        out.append(("cyan", f"note: {note}"))
    for missing in plan.missing_env:
        out.append(("yellow", f"warning: {missing}; not set here, so apply would refuse here"))
    out += _guard_lines(guard)
    for blocker in plan.blockers:
        out.append(("bold red", f"blocked: {blocker}"))
    if plan.blockers:
        out.append(("bold red", f"Apply would refuse: {len(plan.blockers)} blocker(s) above; nothing would be written."))
    elif any(_shown(a) for a in plan.actions):
        out.append(("bold", f"Plan: {summary_line(plan)}."))
    elif plan.has_changes:
        out.append(("bold", "No visible changes; apply only records fingerprints (see the note above)."))
    else:
        out.append(("bold green", "No changes. The server matches the compiled projects."))
    return out


def action_lines(a: Action, past: bool = False, next_runs: list[NextRuns] | None = None) -> list[tuple[str, str]]:
    verb = (PAST if past else VERB)[a.op]
    drift = " [drift]" if a.drift else ""
    out = [(STYLE[a.op], f"  {SIGN[a.op]} {a.kind.replace('_', ' ')} {a.name}: {verb}{drift} — {a.reason}")]
    for c in a.changes:
        out.append(("", f"      {_change_text(c)}"))
    return out + _next_runs_lines(next_runs or [])


def apply_lines(result: Any, header: Header | None = None, *, include_actions: bool = True) -> list[tuple[str, str]]:
    """What apply did; `include_actions=False` when they were already printed one by one."""
    out: list[tuple[str, str]] = []
    for a in result.applied if include_actions else []:
        if not a.quiet:
            out += action_lines(a, past=True)
    quiet = sum(1 for a in result.applied if a.quiet)
    if quiet:
        out.append(("dim", "note: " + fingerprint_line(quiet, past=True)))
    for note in list(result.plan.notes) + list(result.notes):
        out.append(("cyan", f"note: {note}"))
    for text in result.recovered:
        out.append(("cyan", f"note: retried {text}"))
    c = result.counts()
    done = f"{c['created']} created, {c['updated']} updated, {c['deleted']} deleted"
    tail = f" ({header.requests} requests, {header.writes} writes" if header else ""
    if header and result.bookkeeping:
        tail += f"; lock and commit record: {result.bookkeeping} requests"
    tail += ")" if header else ""
    if result.failed is not None or result.error:
        out += [(STYLE[result.failed.op], f"  ! {result.failed.kind.replace('_', ' ')} {result.failed.name}: "
                 f"{VERB[result.failed.op]} FAILED")] if result.failed is not None else []
        out.append(("bold red", f"Apply failed after {done}{tail}: {result.error}"))
        return out
    out.append(("bold green", f"Apply complete: {done}, {c['unchanged']} unchanged{tail}."))
    return out


# -- JSON -----------------------------------------------------------------------------------------
def _guard_json(guard: Any) -> dict[str, Any]:
    return {"head": guard.head, "last_applied": guard.recorded, "apply_refusal": guard.refusal, "note": guard.note}


def _header_json(header: Header | None, saved: SavedFile | None, *fields: str) -> dict[str, Any]:
    """What plan's and apply's JSON documents open with: the server, environment and owner (and the
    header's `fields`), then the saved plan when there is one."""
    doc: dict[str, Any] = {}
    if header:
        doc["server"] = {"url": header.url, "version": header.server_version}
        doc["environment"] = header.environment
        doc["owner"] = header.owner
        doc.update({name: getattr(header, name) for name in fields})
    if saved is not None:
        doc["saved_plan"] = {"path": saved.path, "digest": saved.digest}
    return doc


def plan_json(plan: Plan, header: Header | None = None, next_runs: Previews | None = None, guard: Any = None,
              saved: SavedFile | None = None) -> str:
    doc = _header_json(header, saved, "projects")
    doc.update(plan.to_json())
    if guard is not None:
        doc["commit"] = _guard_json(guard)
    if next_runs is not None:
        doc["next_runs_from"] = iso(next_runs.start)
        if next_runs.note:
            doc["next_runs_server_note"] = next_runs.note
        for action, entry in zip(plan.actions, doc["actions"]):
            previews = next_runs.get(action)
            if len(previews) == 1:
                entry["next_runs"] = previews[0].to_json()
                if previews[0].note:
                    entry["next_runs_note"] = previews[0].note
            elif previews:  # several schedules in one new deployment: never from compiled projects
                entry["next_runs"] = sorted(
                    ({**run, "schedule": nr.schedule} for nr in previews for run in nr.to_json()), key=lambda r: r["utc"])
                notes = [f"{nr.schedule}: {nr.note}" for nr in previews if nr.note]
                if notes:
                    entry["next_runs_note"] = "; ".join(notes)
    return json.dumps(doc, indent=2, default=str)


def apply_json(result: Any, header: Header | None = None, saved: SavedFile | None = None) -> str:
    doc = _header_json(header, saved, "requests", "writes")
    doc.update(result.to_json())
    return json.dumps(doc, indent=2, default=str)


# -- Markdown -------------------------------------------------------------------------------------
_md = md_text  # the one escaper (compiler/markdown.py)


def _environment_md(header: Header) -> str:
    return f" — environment {md_code(header.environment)}" if header.environment else ""


def plan_markdown(plan: Plan, header: Header | None = None, next_runs: Previews | None = None,
                  guard: Any = None, warnings: list[str] | None = None, saved: SavedFile | None = None) -> str:
    lines = ["### chapctl plan", ""]
    if header:
        owner = f" — owner {md_code(header.owner)}" if header.owner else ""
        lines += [f"Prefect {_md(header.server_version)} at {md_code(header.url)}{_environment_md(header)}{owner} — "
                  f"{header.projects} project(s)", ""]
    if saved is not None:
        lines += [f"Saved plan {md_code(saved.path)}, digest {md_code(saved.digest)}: `chapctl apply` of this file (the "
                  "apply workflow's, after the merge) applies exactly this plan, and refuses if the server or the "
                  "compiled files changed since.", ""]
    if guard is not None and guard.refusal:
        lines += [f":warning: **Apply from this checkout would refuse:** {_md(guard.refusal)}", ""]
    if guard is not None and guard.note:
        lines += [f"> {_md(guard.note)}", ""]
    if plan.blockers:
        lines += [":no_entry: **Apply would refuse:**", ""] + [f"- {_md(b)}" for b in plan.blockers] + [""]
    if plan.missing_env:
        lines += [f":key: **Variables apply will need ({len(plan.missing_env)}), not set here:**", ""]
        lines += [f"- {_md(m)}" for m in plan.missing_env] + [""]
    if not plan.has_changes:
        lines += ["**No changes.** The server matches the compiled projects.", ""]
    elif not any(_shown(a) for a in plan.actions):
        lines += ["**No visible changes.** " + fingerprint_line(plan.counts()["fingerprint"]) + ".", ""]
    else:
        lines += [f"**{summary_line(plan)}**", ""]
        if plan.counts()["fingerprint"]:
            lines += [fingerprint_line(plan.counts()["fingerprint"]).capitalize() + ".", ""]
        lines += ["| | Object | Name | Action | Details |", "|---|---|---|---|---|"]
        for _title, actions in _grouped(plan.actions):
            for a in actions:
                if not _shown(a):
                    continue
                details = "<br>".join(_code(_change_text(c)) for c in a.changes)
                reason = _md(a.reason) + (" **(drift)**" if a.drift else "")
                lines.append(
                    f"| {SIGN[a.op]} | {a.kind.replace('_', ' ')} | {md_code(a.name)} | {VERB[a.op]}: {reason} | {details} |"
                )
        lines.append("")
        lines += _next_runs_markdown(plan, next_runs)
    if warnings:
        lines += [f":warning: **Load warnings of the compiled projects ({len(warnings)})** (`chapctl validate` "
                  "lists them with file:line:col):", ""] + [f"- {_md(w)}" for w in warnings] + [""]
    for note in plan.notes:
        lines.append(f"> {_md(note)}")
    return "\n".join(lines).rstrip() + "\n"


def _next_runs_markdown(plan: Plan, next_runs: Previews | None) -> list[str]:
    if next_runs is None:
        return []
    previews = [nr for _t, actions in _grouped(plan.actions) for a in actions for nr in next_runs.get(a)]
    if not previews:
        return []
    lines = [f"**Next {next_runs.count} runs** of each schedule this plan creates or changes "
             "(computed by Prefect's own schedule code):", ""]
    if next_runs.note:
        lines += [f":warning: {_md(next_runs.note)}", ""]
    lines += ["| Schedule | Cron | Time zone | Local time | UTC |", "|---|---|---|---|---|"]
    for nr in previews:
        first = f"| {md_code(nr.schedule)} | {md_code(nr.cron)} | {_md(nr.timezone)} |"
        if nr.note:
            lines.append(f"{first} {_md(nr.note)} | |")
            continue
        for i, run in enumerate(nr.runs):
            local, utc = when(run)
            lines.append(f"{first if i == 0 else '| | | |'} {local} | {utc} |")
    return lines + [""]


def _code(text: str) -> str:
    """`field: value` -> the field as code, the value as text (both escaped)."""
    field, sep, rest = text.partition(": ")
    return f"{md_code(field)}{sep}{md_text(rest)}" if sep else md_text(text)


def apply_markdown(result: Any, header: Header | None = None, saved: SavedFile | None = None) -> str:
    c = result.counts()
    lines = ["### chapctl apply", ""]
    if header:
        owner = f" — owner {md_code(header.owner)}" if header.owner else ""
        lines += [f"Prefect {_md(header.server_version)} at {md_code(header.url)}{_environment_md(header)}{owner}", ""]
    if saved is not None:
        lines += [f"Applied the saved plan {md_code(saved.path)}, digest {md_code(saved.digest)}.", ""]
    done = f"{c['created']} created, {c['updated']} updated, {c['deleted']} deleted"
    failed = result.failed is not None or result.error
    if failed:
        lines.append(f":x: **Apply failed after {done}:** {_md(str(result.error))}")
    else:
        lines.append(f"**{done}, {c['unchanged']} unchanged**")
    if result.applied or result.failed is not None:
        lines += ["", "| | Object | Name | Done |", "|---|---|---|---|"]
        for a in result.applied:
            if not a.quiet:
                lines.append(f"| {SIGN[a.op]} | {a.kind.replace('_', ' ')} | {md_code(a.name)} | "
                             f"{PAST[a.op]}: {_md(a.reason)} |")
        if result.failed is not None:
            a = result.failed
            lines.append(f"| ! | {a.kind.replace('_', ' ')} | {md_code(a.name)} | **failed** ({VERB[a.op]}) |")
    for note in list(result.plan.notes) + list(result.notes):
        lines += ["", f"> {_md(note)}"]
    for text in result.recovered:
        lines += ["", f"> retried {_md(text)}"]
    return "\n".join(lines).rstrip() + "\n"


# -- the registered reporters ---------------------------------------------------------------------
def _saved_lines(saved: SavedFile | None) -> tuple[tuple[str, str], ...]:
    if saved is None:
        return ()
    return (("bold", f"Saved the plan to {saved.path} ({saved.digest}): `chapctl apply {saved.path}` applies exactly "
                     "it, or refuses if the server or the files changed since."),)


@reporter(PlanResult, "text")
def plan_text(result: PlanResult) -> Rendered:
    return (Lines(tuple(plan_lines(result.plan, result.header, show_noops=result.verbose, next_runs=result.previews,
                                   guard=result.guard)) + _saved_lines(result.saved)),)


@reporter(PlanResult, "json")
def plan_json_report(result: PlanResult) -> Rendered:
    return (Out(plan_json(result.plan, result.header, result.previews, result.guard, result.saved) + "\n"),)


@reporter(PlanResult, "markdown")
def plan_markdown_report(result: PlanResult) -> Rendered:
    warnings = list(result.warnings) if result.warnings is not None else None
    return (Out(plan_markdown(result.plan, result.header, result.previews, result.guard, warnings, result.saved)),)


def _failure(outcome: ApplyOutcome) -> Rendered:
    return (Err(f"error: {outcome.failure}"),) if outcome.failure is not None else ()


@reporter(ApplyOutcome, "text")
def apply_text(outcome: ApplyOutcome) -> Rendered:
    """The summary: the actions were printed one by one as they were written (`Applied`)."""
    where = ((("dim", f"applied the saved plan {outcome.saved.path} ({outcome.saved.digest})"),)
             if outcome.saved is not None else ())
    if outcome.header.environment:
        where += (("dim", f"environment {outcome.header.environment!r}: owner {outcome.header.owner!r} at "
                          f"{outcome.header.url}"),)
    return (Lines(where + tuple(apply_lines(outcome.result, outcome.header, include_actions=False))),) + _failure(outcome)


@reporter(ApplyOutcome, "json")
def apply_json_report(outcome: ApplyOutcome) -> Rendered:
    return (Out(apply_json(outcome.result, outcome.header, outcome.saved) + "\n"),) + _failure(outcome)


@reporter(ApplyOutcome, "markdown")
def apply_markdown_report(outcome: ApplyOutcome) -> Rendered:
    return (Out(apply_markdown(outcome.result, outcome.header, outcome.saved)),) + _failure(outcome)


@reporter(Applied, "text")
def applied_text(event: Applied) -> Rendered:
    """One write as it is done (fingerprint-only writes are counted in the summary instead)."""
    return () if event.action.quiet else (Lines(tuple(action_lines(event.action, past=True))),)


@reporter(Applied, "json", "markdown")
def applied_silent(_: Applied) -> Rendered:
    return ()  # the document at the end lists every write


@reporter(Waiting, "text", "json", "markdown")
def waiting(event: Waiting) -> Rendered:
    return (Err(event.message),)
