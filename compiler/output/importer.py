"""Reporters of `chapctl import` (`ImportResult`): `(style, text)` lines for the terminal, and
JSON (the document `ImportResult.to_json` gives)."""

from __future__ import annotations

import json

from compiler.constants import written_out
from compiler.output import Lines, Out, Rendered, reporter
from compiler.reconcile.importer.values import ImportResult

RESULTS = {"import": (ImportResult,)}


def import_lines(result: ImportResult, dry_run: bool) -> list[tuple[str, str]]:
    """One finding per line: server text in it (a name holding a newline) is written out (`\\n`)."""
    title = (f"Prefect {result.server_version} at {result.url}: {result.deployments_read} deployment(s) of flow "
             f"dhis2-chap-prediction, {result.schedules_read} schedule(s)")
    out: list[tuple[str, str]] = [("bold", title)]
    if dry_run:
        for path, text in result.files.items():
            out.append(("bold", f"--- {path} (would write)"))
            out += [("", line) for line in text.rstrip("\n").split("\n")]
    sources = {p.path: p.source for p in result.projects}
    if result.files:
        out.append(("bold", "Would write:" if dry_run else "Wrote:"))
        for path in result.files:
            what = sources.get(path, "defaults every project inherits" if path.endswith("_defaults.yaml") else "")
            out.append(("green", f"  + {path}" + (f" — from {what}" if path in sources else f" — {what}")))
    else:
        out.append(("bold", "Nothing to write."))
    titles = (("unmapped", "Not imported (each stays on the server as it is):", "yellow"),
              ("kept", "Left alone:", "dim"),
              ("note", "Notes:", "cyan"),
              ("secret", "Set before `chapctl apply --adopt` (never written by import):", "bold yellow"),
              ("serve", "After the handover:", "bold yellow"))
    for kind, title, style in titles:
        findings = result.of_kind(kind)
        if findings:
            out.append(("bold", title))
            for f in findings:
                out.append((style, written_out(f"  - {f.object}: {f.message}", one_line=True)))
    if result.projects:
        out.append(("bold", ("Then: " if dry_run else "Next: ") + "review the files, `chapctl compile`, "
                    "`chapctl plan --adopt` (the handover, schedule by schedule), `chapctl apply --adopt`"))
    return out


@reporter(ImportResult, "text")
def import_text(result: ImportResult) -> Rendered:
    return (Lines(tuple(import_lines(result, result.dry_run))),)


@reporter(ImportResult, "json")
def import_json(result: ImportResult) -> Rendered:
    return (Out(json.dumps(result.to_json(), indent=2) + "\n"),)
