"""Reporters of `chapctl status` (`StatusReport`, compiler.reconcile.status): aligned text lines for
the terminal (`(style, text)` pairs the CLI prints with rich), JSON (stable keys, ISO 8601 UTC times)
and Markdown (a table for a pull-request comment or a status page). Pure; no rich import here."""

from __future__ import annotations

import datetime as dt
import json

from compiler.markdown import code as md_code
from compiler.markdown import text as md_text
from compiler.constants import EXIT_OUT_OF_SYNC, EXIT_UNHEALTHY
from compiler.output import Lines, Out, Rendered, reporter
from compiler.reconcile.status import ProjectStatus, Run, StatusReport
from compiler.timefmt import span, utc_minute

RESULTS = {"status": (StatusReport,)}

HEALTH_STYLE = {"healthy": "green", "failing": "bold red", "late": "bold red", "never_run": "", "unknown": "yellow"}
HEALTH_ICON = {"healthy": ":white_check_mark:", "failing": ":x:", "late": ":alarm_clock:",
               "never_run": ":white_circle:", "unknown": ":grey_question:"}
SYNC_SIGN = {"in_sync": "=", "changed": "~", "drift": "~", "not_applied": "+", "conflict": "!"}
COLUMNS = ("PROJECT", "HEALTH", "SYNC", "SCHEDULE", "LAST RUN", "STARTED (UTC)", "TOOK", "NEXT RUN (UTC)", "FAILS")
PREFLIGHT_ICON = {"ok": ":white_check_mark:", "warn": ":warning:", "fail": ":x:"}


def _preflight(p: ProjectStatus, report: StatusReport) -> str:
    """The project's preflight verdict (`status --preflight`), `—` when it has none."""
    found = (report.preflight or {}).get(p.name)
    return found["verdict"] if found else "—"


def _preflight_details(p: ProjectStatus, report: StatusReport) -> list[tuple[str, str, str | None]]:
    found = (report.preflight or {}).get(p.name)
    if not found or not found["causes"]:
        return []
    first, more = found["causes"][0], len(found["causes"]) - 1
    rest = f" (+{more} more: chapctl preflight -p {p.name})" if more else ""
    return [("red" if first["level"] == "fail" else "yellow", f"preflight {first['level']}: {first['text']}{rest}",
             None)]


def words(value: str) -> str:
    """`never_run` -> `never run`: JSON keeps identifiers, people read words."""
    return value.replace("_", " ")


def _when(t: dt.datetime | None) -> str:
    return "—" if t is None else utc_minute(t)


def _schedule(p: ProjectStatus) -> str:
    return {"not_applied": "—", "deployment_paused": "paused (deployment)"}.get(p.schedule, p.schedule)


def _took(run: Run | None, now: dt.datetime) -> str:
    took = run.duration(now) if run else None
    if took is None:
        return "—"
    return span(took) + ("" if run.end else " so far")


def _next(p: ProjectStatus) -> str:
    if p.next_run is not None:
        return _when(p.next_run.scheduled)
    return "none" if p.schedule == "active" else "—"


def _cells(p: ProjectStatus, now: dt.datetime) -> list[str]:
    last = p.last_run
    return [p.name, words(p.health), words(p.sync), _schedule(p), last.state_name if last else "never",
            _when((last.start or last.expected_start) if last else None), _took(last, now),
            _next(p), str(p.failures_in_a_row)]


def _columns(report: StatusReport) -> tuple[str, ...]:
    """The table's columns: PREFLIGHT after HEALTH with --preflight."""
    return COLUMNS[:2] + ("PREFLIGHT",) + COLUMNS[2:] if report.preflight is not None else COLUMNS


def _row(p: ProjectStatus, report: StatusReport) -> list[str]:
    cells = _cells(p, report.generated_at)
    return cells[:2] + [_preflight(p, report)] + cells[2:] if report.preflight is not None else cells


def summary_text(report: StatusReport) -> str:
    counts = report.counts()
    health = ", ".join(f"{n} {words(h)}" for h, n in counts["health"].items() if n)
    sync = ", ".join(f"{n} {words(s)}" for s, n in counts["sync"].items() if n)
    return f"{len(report.projects)} project(s): {health or 'none'}; {sync or 'none'}"


def verdict(report: StatusReport) -> str:
    code = report.exit_code
    if code == EXIT_UNHEALTHY:
        return f"exit {code}: {len(report.unhealthy)} project(s) failing or late"
    if code == EXIT_OUT_OF_SYNC:
        return f"exit {code}: {len(report.out_of_sync)} project(s) not in sync (--require-sync)"
    return "exit 0: no project failing or late"


def _applied(report: StatusReport) -> str | None:
    """`last apply of commit 1a2b3c4d5e6f at … by …`, from the record apply keeps on the server."""
    a = report.applied
    if not a:
        return None
    text = "last apply" + (f" of commit {str(a['commit'])[:12]}" if a.get("commit") else " (outside git)")
    if a.get("applied_at"):
        text += f" at {a['applied_at']}"
    if a.get("by"):
        text += f" by {a['by']}"
    if report.head and report.head != a.get("commit"):
        text += f"; this checkout is at {report.head[:12]}"
    return text


def _options(report: StatusReport) -> str:
    o = report.options
    return f"grace {span(o.grace)}, lookback {span(o.lookback)}, {report.requests} requests"


def details(p: ProjectStatus, report: StatusReport, *, links: bool = True) -> list[tuple[str, str, str | None]]:
    """What to look at for one project, problems first: (style, text, the run to open or None).
    `links`: also the last run of a project that is not failing (the text table has no link column)."""
    now, out = report.generated_at, []
    if p.health == "failing":
        since = ("since the last Completed run" if p.completed_in_lookback
                 else f"(no Completed run in the last {span(report.options.lookback)})")
        last = p.last_run if p.last_run is not None and p.last_run.state_type in ("FAILED", "CRASHED") else None
        out.append(("red", f"failing: {p.failures_in_a_row} failed run(s) in a row {since}",
                    last.url if last else None))
    if p.late is not None:
        out.append(("red", f"late: {p.late.reason(now)}", p.late.run.url if p.late.run else None))
    if p.sync != "in_sync":
        out.append(("yellow", f"{words(p.sync)}: {p.sync_detail}", None))
    out += [("yellow", hint, None) for hint in p.hints]
    out += _preflight_details(p, report)
    if links and p.last_run is not None and p.health != "failing":
        out.append(("dim", f"last run {p.last_run.name} ({p.last_run.state_name}):", p.last_run.url))
    return out


# -- text -----------------------------------------------------------------------------------------
def status_lines(report: StatusReport) -> list[tuple[str, str]]:
    now = report.generated_at
    out: list[tuple[str, str]] = [(
        "bold", f"Prefect {report.server_version} at {report.url}"
                f"{f' — environment {report.environment!r}' if report.environment else ''} — owner {report.owner!r} — "
                f"{len(report.projects)} project(s) — {utc_minute(now)} UTC")]
    applied = _applied(report)
    if applied:
        out.append(("dim", applied))
    if not report.projects:
        out.append(("", "No projects."))
    else:
        columns = _columns(report)
        table = [list(columns)] + [_row(p, report) for p in report.projects]
        widths = [max(len(row[i]) for row in table) for i in range(len(columns))]

        def line(cells: list[str]) -> str:
            return "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

        out.append(("bold", line(table[0])))
        for p, cells in zip(report.projects, table[1:]):
            out.append((HEALTH_STYLE[p.health], line(cells)))
            for style, text, url in details(p, report):
                if url and text.endswith(":"):  # a link line
                    out.append((style, f"    {text} {url}"))
                else:
                    out += [(style, f"    {text}")] + ([("dim", f"      {url}")] if url else [])
    for note in report.notes:
        out.append(("cyan", f"note: {note}"))
    style = "bold red" if report.exit_code == EXIT_UNHEALTHY else "bold yellow" if report.exit_code else "bold green"
    out.append((style, f"{summary_text(report)} ({_options(report)}) — {verdict(report)}."))
    return out


# -- JSON -----------------------------------------------------------------------------------------
def status_json(report: StatusReport) -> str:
    return json.dumps(report.to_json(), indent=2)


# -- Markdown -------------------------------------------------------------------------------------
_md = md_text  # the one escaper (compiler/markdown.py)


def _schedule_md(p: ProjectStatus) -> str:
    text = _schedule(p)
    crons = [f"{md_code(s['cron'])} {_md(s['timezone'])}" for s in p.schedules if s.get("cron")]
    return f"{text} {', '.join(crons)}" if crons and p.schedule != "none" else text


def _run_md(run: Run | None) -> str:
    return "never" if run is None else f"[{_md(run.state_name)}]({run.url})"


def status_markdown(report: StatusReport) -> str:
    now = report.generated_at
    lines = ["### chapctl status", "",
             f"Prefect {_md(report.server_version)} at {md_code(report.url)}"
             f"{f' — environment {md_code(report.environment)}' if report.environment else ''} — owner {md_code(report.owner)} — "
             f"{utc_minute(now)} UTC"]
    applied = _applied(report)
    if applied:
        lines[-1] += f" — {_md(applied)}"
    icon = ":x:" if report.exit_code == EXIT_UNHEALTHY else ":warning:" if report.exit_code else ":white_check_mark:"
    lines += ["", f"{icon} **{summary_text(report)}** ({_options(report)}) — {verdict(report)}", ""]
    if report.projects:
        checked = report.preflight is not None
        lines += ["| Project | Health | " + ("Preflight | " if checked else "") + "Sync | Schedule | Last run | "
                  "Started (UTC) | Took | Next run (UTC) | Failures in a row |",
                  "|---|---|" + ("---|" if checked else "") + "---|---|---|---|---|---|---|"]
        for p in report.projects:
            cells = _cells(p, now)
            judged = _preflight(p, report)
            preflight = f"{PREFLIGHT_ICON.get(judged, '')} {judged} | ".lstrip() if checked else ""
            lines.append(f"| {md_code(p.name)} | {HEALTH_ICON[p.health]} {cells[1]} | {preflight}{SYNC_SIGN[p.sync]} "
                         f"{cells[2]} | {_schedule_md(p)} | {_run_md(p.last_run)} | {cells[5]} | {cells[6]} | "
                         f"{cells[7]} | {cells[8]} |")
        lines.append("")
        problems = [f"- {md_code(p.name)} {_md(text)}" + (f" ([run]({url}))" if url else "")
                    for p in report.projects for _style, text, url in details(p, report, links=False)]
        if problems:
            lines += problems + [""]
    for note in report.notes:
        lines.append(f"> {_md(note)}")
    return "\n".join(lines).rstrip() + "\n"


# -- the registered reporters ---------------------------------------------------------------------
@reporter(StatusReport, "text")
def status_text(report: StatusReport) -> Rendered:
    return (Lines(tuple(status_lines(report))),)


@reporter(StatusReport, "json")
def status_json_report(report: StatusReport) -> Rendered:
    return (Out(status_json(report) + "\n"),)


@reporter(StatusReport, "markdown")
def status_markdown_report(report: StatusReport) -> Rendered:
    return (Out(status_markdown(report)),)
