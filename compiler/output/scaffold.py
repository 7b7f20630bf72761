"""`chapctl init`'s reporters: what it created or kept, what compile wrote, and what to do next
(text), or the same as a JSON document."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from compiler.output import Err, Lines, Out, Rendered, reporter
from compiler.output.compile import diagnostics_text
from compiler.scaffold.result import InitResult

RESULTS = {"init": (InitResult,)}
_PAST = {"create": "created", "update": "updated", "delete": "deleted"}  # compile's changes, as init says them


def init_lines(result: InitResult) -> list[str]:
    """The text report: each file, what compile wrote, and what to do next."""
    out = []
    for path, state, why in result.files:
        note = f" ({why})" if why else ""
        out.append(f"{state:>7} {path}{note}")
    if not result.ok:
        out.append(f"not compiled: the projects in {result.root / 'projects'} are invalid (above); fix them, then "
                   "run `chapctl compile`")
        return out
    out += [f"{_PAST.get(kind, kind):>7} {path}" for kind, path in result.compiled]
    out.append(f"compiled {result.projects} project(s): {len(result.compiled)} file(s) written")
    secrets = ", ".join(("PREFECT_API_URL", "PREFECT_API_AUTH_STRING (or PREFECT_API_KEY)", *result.password_envs))
    out += [
        f"next: commit it all (git init; git add -A; git commit), push, and create the repository secrets {secrets}",
        f"      on every worker: pip install '{result.package}'; prefect worker start --pool "
        f"{result.work_pool or '<work_pool>'} --type process",
    ]
    return out


def init_json(result: InitResult) -> dict[str, Any]:
    return {
        "root": str(result.root),
        "version": result.version,
        "package": result.package,
        "owner": result.owner,
        "owner_from": result.owner_from,
        "files": [{"path": path, "state": state, "why": why} for path, state, why in result.files],
        "compiled": [{"kind": kind, "path": path} for kind, path in result.compiled],
        "projects": result.projects,
        "valid": result.ok,
        "diagnostics": [asdict(d) for d in result.diagnostics],
        "secrets_apply_needs": list(result.password_envs),
        "work_pool": result.work_pool,
    }


@reporter(InitResult, "text")
def init_text(result: InitResult) -> Rendered:
    shown: Rendered = (Err(diagnostics_text(result.diagnostics)),) if result.diagnostics else ()
    return shown + (Lines(tuple(("", line) for line in init_lines(result))),)  # printed printable


@reporter(InitResult, "json")
def init_json_report(result: InitResult) -> Rendered:
    return (Out(json.dumps(init_json(result), indent=2) + "\n"),)
