"""Reporters for plans and apply results: JSON, Markdown (a pull-request comment or a CI step
summary), and styled lines that the CLI prints with rich. No rich import here: the core and its
reporters stay free of UI libraries; `(style, text)` pairs are all the CLI needs.

Secrets never reach this module: the planner only ever says "changed", "unchanged" or
"not checked" about them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from compiler.plan import CREATE, DELETE, NOOP, UPDATE, Action, Change, Plan

GROUPS = (
    ("work_pool", "Work pools"),
    ("block_type", "Block type"),
    ("block_schema", "Block type"),
    ("block_document", "Block documents"),
    ("flow", "Flows"),
    ("deployment", "Deployments"),
    ("schedule", "Deployments"),
)
SIGN = {CREATE: "+", UPDATE: "~", DELETE: "-", NOOP: "="}
STYLE = {CREATE: "green", UPDATE: "yellow", DELETE: "red", NOOP: "dim"}
VERB = {CREATE: "create", UPDATE: "update", DELETE: "delete", NOOP: "no change"}
PAST = {CREATE: "created", UPDATE: "updated", DELETE: "deleted", NOOP: "unchanged"}


@dataclass(frozen=True)
class Header:
    url: str
    server_version: str
    projects: int
    requests: int = 0
    writes: int = 0


def fmt(value: Any, limit: int = 100) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=False, default=str)
    if value is None:
        text = "(none)"
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
    for title in groups:  # schedules next to their deployment, projects in name order
        if title == "Deployments":
            groups[title].sort(key=lambda a: (a.project or a.name, a.kind != "schedule"))
    return [(t, groups[t]) for t in order]


def summary_line(plan: Plan) -> str:
    c = plan.counts()
    text = f"{c[CREATE]} to create, {c[UPDATE]} to update, {c[DELETE]} to delete, {c[NOOP]} unchanged"
    if c["drift"]:
        text += f" ({c['drift']} reverting drift)"
    return text


# -- styled text for the terminal -----------------------------------------------------------------
def plan_lines(plan: Plan, header: Header | None = None, *, show_noops: bool = False) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if header:
        out.append(("bold", f"Prefect {header.server_version} at {header.url} — {header.projects} project(s)"))
    for title, actions in _grouped(plan.actions):
        changed = [a for a in actions if a.op != NOOP]
        same = len(actions) - len(changed)
        out.append(("bold", f"{title}"))
        for a in changed if not show_noops else actions:
            out += action_lines(a)
        if same and not show_noops:
            out.append(("dim", f"  = {same} unchanged"))
    for note in plan.notes:
        out.append(("cyan", f"note: {note}"))
    for missing in plan.missing_env:
        out.append(("yellow", f"warning: {missing}; apply would refuse here"))
    for blocker in plan.blockers:
        out.append(("bold red", f"blocked: {blocker}"))
    if plan.has_changes:
        out.append(("bold", f"Plan: {summary_line(plan)}."))
    else:
        out.append(("bold green", "No changes. The server matches the compiled projects."))
    return out


def action_lines(a: Action, past: bool = False) -> list[tuple[str, str]]:
    verb = (PAST if past else VERB)[a.op]
    drift = " [drift]" if a.drift else ""
    out = [(STYLE[a.op], f"  {SIGN[a.op]} {a.kind.replace('_', ' ')} {a.name}: {verb}{drift} — {a.reason}")]
    for c in a.changes:
        out.append(("", f"      {_change_text(c)}"))
    return out


def apply_lines(result: Any, header: Header | None = None, *, include_actions: bool = True) -> list[tuple[str, str]]:
    """What apply did; `include_actions=False` when they were already printed one by one."""
    out: list[tuple[str, str]] = []
    for a in result.applied if include_actions else []:
        out += action_lines(a, past=True)
    for note in result.plan.notes:
        out.append(("cyan", f"note: {note}"))
    c = result.counts()
    tail = f"Apply complete: {c['created']} created, {c['updated']} updated, {c['deleted']} deleted, {c['unchanged']} unchanged"
    if header:
        tail += f" ({header.requests} requests, {header.writes} writes)"
    out.append(("bold green", tail + "."))
    return out


# -- JSON -----------------------------------------------------------------------------------------
def plan_json(plan: Plan, header: Header | None = None) -> str:
    doc: dict[str, Any] = {}
    if header:
        doc["server"] = {"url": header.url, "version": header.server_version}
        doc["projects"] = header.projects
    doc.update(plan.to_json())
    return json.dumps(doc, indent=2, default=str)


def apply_json(result: Any, header: Header | None = None) -> str:
    doc: dict[str, Any] = {}
    if header:
        doc["server"] = {"url": header.url, "version": header.server_version}
        doc["requests"] = header.requests
        doc["writes"] = header.writes
    doc.update(result.to_json())
    return json.dumps(doc, indent=2, default=str)


# -- Markdown -------------------------------------------------------------------------------------
def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def plan_markdown(plan: Plan, header: Header | None = None) -> str:
    lines = ["### chapctl plan", ""]
    if header:
        lines += [f"Prefect {header.server_version} at `{header.url}` — {header.projects} project(s)", ""]
    if plan.blockers:
        lines += [":no_entry: **Apply would refuse:**", ""] + [f"- {_md(b)}" for b in plan.blockers] + [""]
    if plan.missing_env:
        lines += [":warning: **Not set in this environment (apply needs them):**", ""]
        lines += [f"- {_md(m)}" for m in plan.missing_env] + [""]
    if not plan.has_changes:
        lines += ["**No changes.** The server matches the compiled projects.", ""]
    else:
        lines += [f"**{summary_line(plan)}**", ""]
        lines += ["| | Object | Name | Action | Details |", "|---|---|---|---|---|"]
        for _title, actions in _grouped(plan.actions):
            for a in actions:
                if a.op == NOOP:
                    continue
                details = "<br>".join(_md(_code(_change_text(c))) for c in a.changes)
                reason = _md(a.reason) + (" **(drift)**" if a.drift else "")
                lines.append(
                    f"| {SIGN[a.op]} | {a.kind.replace('_', ' ')} | `{_md(a.name)}` | {VERB[a.op]}: {reason} | {details} |"
                )
        lines.append("")
    for note in plan.notes:
        lines.append(f"> {_md(note)}")
    return "\n".join(lines).rstrip() + "\n"


def _code(text: str) -> str:
    field, sep, rest = text.partition(": ")
    return f"`{field}`{sep}{rest}" if sep else text


def apply_markdown(result: Any, header: Header | None = None) -> str:
    c = result.counts()
    lines = ["### chapctl apply", ""]
    if header:
        lines += [f"Prefect {header.server_version} at `{header.url}`", ""]
    lines.append(
        f"**{c['created']} created, {c['updated']} updated, {c['deleted']} deleted, {c['unchanged']} unchanged**"
    )
    if result.applied:
        lines += ["", "| | Object | Name | Done |", "|---|---|---|---|"]
        for a in result.applied:
            lines.append(f"| {SIGN[a.op]} | {a.kind.replace('_', ' ')} | `{_md(a.name)}` | {PAST[a.op]}: {_md(a.reason)} |")
    for note in result.plan.notes:
        lines += ["", f"> {_md(note)}"]
    return "\n".join(lines).rstrip() + "\n"
