"""`chapctl preflight`'s reporters: a `PreflightReport` (compiler.preflight.model) as aligned text
lines for the terminal (`(style, text)` pairs the CLI prints with rich; control characters are
written out there), JSON (`{"projects": [{"name", "verdict", …}], "summary": …}`) and Markdown (a
job summary or a pull-request comment; every server or project text through compiler.markdown, the
one escaper). Pure; no rich import here. Nothing here shows a time of day: the same answers give the
same bytes.
"""

from __future__ import annotations

import json
from typing import Any

from compiler.markdown import code as md_code
from compiler.markdown import text as md_text
from compiler.output import Lines, Out, Rendered, reporter
from compiler.preflight.model import FAIL, OK, WARN, Finding, PreflightReport, ProjectResult, RunFacts, SetupRun
from compiler.timefmt import iso_date

VERDICT_STYLE = {OK: "green", WARN: "yellow", FAIL: "bold red"}
VERDICT_ICON = {OK: ":white_check_mark:", WARN: ":warning:", FAIL: ":x:"}
RESULTS = {"preflight": (PreflightReport,)}
READS_ONLY = "reads only: nothing submitted to CHAP, nothing written to DHIS2 or Prefect"


def summary_text(report: PreflightReport) -> str:
    counts = report.counts()
    return f"{len(report.projects)} project(s): " + ", ".join(f"{counts[v]} {v}" for v in (OK, WARN, FAIL))


def verdict_text(report: PreflightReport) -> str:
    if report.exit_code:
        what = "would fail or warn (--strict)" if report.strict else "would fail"
        return f"exit {report.exit_code}: {len(report.failing)} project(s) {what}"
    return "exit 0: no project would fail" + ("" if report.strict else " (warnings allowed; --strict fails them)")


def size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit, scale in (("MB", 1_000_000), ("KB", 1_000)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _services(p: ProjectResult) -> str:
    if p.dhis2_url is None:
        return "not checked"
    parts = [p.dhis2 or "DHIS2 not reached"]
    if p.dhis2:
        parts.append(p.chap or "chap-core not reached")
    if p.route_timeout is not None:
        parts.append(f"route timeout {p.route_timeout:g} s")
    return ", ".join(parts)


def setup_line(s: SetupRun) -> str:
    """One setup of one run: its end period, range, covariates, org units and reads."""
    text = f"setup {s.setup} {s.name!r} ({s.period_type}, {s.model})"
    if s.end_period:
        text += f": end {s.end_period}"
        if s.periods:
            text += f", {s.first_period}..{s.end_period} ({s.periods} periods)"
        if s.data_until and s.data_until != s.end_period:
            text += f", data to {s.data_until}"
    if s.covariates:
        text += "; latest data: " + ", ".join(f"{c.covariate} {c.latest or 'none'}" for c in s.covariates)
    if s.org_units is not None:
        text += f"; {s.org_units} org unit(s), {s.with_geometry} with geometry"
    if s.reads is not None:
        text += f"; {s.reads} DHIS2 read(s), at most {s.records:,} records, about {size(s.send_bytes)} to send"
    return text


def run_line(run: RunFacts) -> str:
    when = f" ({run.cron!r} {run.timezone}{'' if run.active else ', paused'})" if run.cron else ""
    return f"{run.label}{when}: {run.end_mode or 'end mode refused'}; {run.selection}"


def left_out_text(run: RunFacts) -> str:
    return "; ".join(f"setup {i} {n!r}: {why}" for i, n, why in run.left_out)


def finding_lines(f: Finding, indent: str) -> list[tuple[str, str]]:
    style = VERDICT_STYLE.get(f.level, "dim") if f.level != "info" else "dim"
    out = [(style, f"{indent}{f.level} ({f.check}): {f.text}")]
    if f.fix:
        out.append(("", f"{indent}  fix: {f.fix}"))
    return out


# -- text -----------------------------------------------------------------------------------------
def preflight_lines(report: PreflightReport) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = [("bold", f"chapctl preflight — {len(report.projects)} project(s) — today "
                                           f"{iso_date(report.today)} — {READS_ONLY}")]
    for p in report.projects:
        out.append((VERDICT_STYLE[p.verdict], f"{p.name}: {p.verdict.upper()} — {_services(p)}"))
        for run in p.runs:
            out.append(("", f"  {run_line(run)}"))
            out += [("", f"    {setup_line(s)}") for s in run.setups]
            if run.left_out:
                out.append(("dim", f"    left out: {left_out_text(run)}"))
        for finding in p.causes + p.notes:
            out += finding_lines(finding, "  ")
    for note in report.notes:
        out.append(("cyan", f"note: {note}"))
    style = "bold red" if report.exit_code else "bold yellow" if report.counts()[WARN] else "bold green"
    out.append((style, f"{summary_text(report)} — {verdict_text(report)}."))
    return out


# -- JSON -----------------------------------------------------------------------------------------
def preflight_json(report: PreflightReport) -> str:
    return json.dumps(report.to_json(), indent=2)


# -- Markdown -------------------------------------------------------------------------------------
def _cause_md(p: ProjectResult, f: Finding) -> str:
    fix = f" — fix: {md_text(f.fix)}" if f.fix else ""
    return f"- {md_code(p.name)} **{f.level}** ({md_text(f.check)}): {md_text(f.text)}{fix}"


def _setups_md(p: ProjectResult) -> str:
    ids: dict[Any, None] = {}
    for run in p.runs:
        for s in run.setups:
            ids.setdefault(f"{s.setup} ({s.period_type})", None)
    return ", ".join(md_text(i) for i in ids) or "—"


def preflight_markdown(report: PreflightReport) -> str:
    icon = ":x:" if report.exit_code else ":warning:" if report.counts()[WARN] else ":white_check_mark:"
    lines = ["### chapctl preflight", "",
             f"{icon} **{summary_text(report)}** — {verdict_text(report)} (today {iso_date(report.today)}; "
             f"{READS_ONLY})", ""]
    if report.projects:
        lines += ["| Project | Verdict | DHIS2 | chap-core | Route timeout | Setups it runs |",
                  "|---|---|---|---|---|---|"]
        for p in report.projects:
            timeout = f"{p.route_timeout:g} s" if p.route_timeout is not None else "—"
            lines.append(f"| {md_code(p.name)} | {VERDICT_ICON[p.verdict]} {p.verdict} | {md_text(p.dhis2 or '—')} | "
                         f"{md_text(p.chap or '—')} | {timeout} | {_setups_md(p)} |")
        lines.append("")
        causes = [_cause_md(p, f) for p in report.projects for f in p.causes]
        if causes:
            lines += causes + [""]
        details = []
        for p in report.projects:
            for run in p.runs:
                details.append(f"- {md_code(p.name)} {md_text(run_line(run))}")
                details += [f"  - {md_text(setup_line(s))}" for s in run.setups]
                if run.left_out:
                    details.append(f"  - left out: {md_text(left_out_text(run))}")
                details += [f"  - {md_text(f.text)}" for f in p.notes if f.run in (None, run.label)]
        if details:
            lines += ["<details><summary>What each project's runs would do</summary>", ""] + details + ["",
                                                                                                    "</details>", ""]
    for note in report.notes:
        lines.append(f"> {md_text(note)}")
    return "\n".join(lines).rstrip() + "\n"


@reporter(PreflightReport, "text")
def preflight_text_report(report: PreflightReport) -> Rendered:
    return (Lines(tuple(preflight_lines(report))),)


@reporter(PreflightReport, "json")
def preflight_json_report(report: PreflightReport) -> Rendered:
    return (Out(preflight_json(report) + "\n"),)


@reporter(PreflightReport, "markdown")
def preflight_markdown_report(report: PreflightReport) -> Rendered:
    return (Out(preflight_markdown(report)),)
