"""Reporters of the compile verbs: `chapctl validate` (`ValidateResult`) and `chapctl compile`
(`CompileResult`), text and JSON, and the diagnostics both show (`path:line:col: field: message`
and a hint line; or a JSON document)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any, Iterable

from compiler.compile.build import CompileResult, ValidateResult
from compiler.compile.diagnostics import Diagnostic, sort_key
from compiler.output import Err, Out, Rendered, reporter

RESULTS = {"validate": (ValidateResult,), "compile": (CompileResult,)}


# -- diagnostics ----------------------------------------------------------------------------------
def diagnostics_text(diagnostics: Iterable[Diagnostic]) -> str:
    """`path:line:col: field: message` plus an indented hint line, sorted by place."""
    lines = []
    for d in sorted(diagnostics, key=sort_key):
        lines.append(d.headline())
        if d.hint:
            lines.append(f"    hint: {d.hint}")
    return "\n".join(lines)


def diagnostics_json(diagnostics: Iterable[Diagnostic]) -> str:
    items = [asdict(d) for d in sorted(diagnostics, key=sort_key)]
    errors = sum(1 for d in items if d["severity"] == "error")
    return json.dumps(
        {"valid": errors == 0, "errors": errors, "warnings": len(items) - errors, "diagnostics": items},
        indent=2,
        ensure_ascii=False,
    )


def _diagnostics_err(diagnostics: tuple[Diagnostic, ...]) -> Rendered:
    return (Err(diagnostics_text(diagnostics)),) if diagnostics else ()


def _strict(warnings: tuple[Diagnostic, ...]) -> Err:
    return Err(f"error: {len(warnings)} warning(s) and --strict")


# -- validate -------------------------------------------------------------------------------------
@reporter(ValidateResult, "text")
def validate_text(result: ValidateResult) -> Rendered:
    if result.error is not None:
        return _diagnostics_err(result.diagnostics) + (Err(f"error: {result.error}"),)
    warned = f" ({len(result.warnings)} warning(s))" if result.warnings else ""
    where = f", environment {result.environment!r} declared" if result.environment else ""
    out = _diagnostics_err(result.diagnostics) + (Out(f"{result.projects} project(s) valid{where}{warned}\n"),)
    return out + ((_strict(result.warnings),) if result.strict_failed else ())


@reporter(ValidateResult, "json")
def validate_json(result: ValidateResult) -> Rendered:
    out: Rendered = (Out(diagnostics_json(result.diagnostics) + "\n"),)
    if result.error is not None:
        return out + (Err(f"error: {result.error}"),)
    return out + ((_strict(result.warnings),) if result.strict_failed else ())


# -- compile --------------------------------------------------------------------------------------
def compile_json(result: CompileResult) -> dict[str, Any]:
    """`chapctl compile --format json`: what was written (or, with --check, what is stale)."""
    pending = result.pending or ()
    return {"check": result.check, "fresh": not pending if result.check else None,
            "changes": [{"path": c.path, "kind": c.kind, "edited_by_hand": bool(c.hand_edit)} for c in pending],
            "warnings": len(result.diagnostics),
            "diagnostics": [asdict(d) for d in result.diagnostics]}


def written_lines(result: CompileResult) -> list[str]:
    """`chapctl compile`'s text after a write: each changed file, then the count."""
    pending = result.pending or ()
    return [f"{change.kind:>7} {change.path}" for change in pending] + [
        f"compiled {result.projects} project(s): {len(pending)} file(s) changed, {result.files - len(pending)} unchanged"]


def _stale(result: CompileResult) -> Err:
    pending = result.pending or ()
    return Err(f"error: {len(pending)} compiled file(s) are stale: {', '.join(c.label() for c in pending)}; "
               "run `chapctl compile` and commit the result")


@reporter(CompileResult, "text")
def compile_text(result: CompileResult) -> Rendered:
    if result.error is not None:
        return _diagnostics_err(result.diagnostics) + (Err(f"error: {result.error}"),)
    out = _diagnostics_err(result.diagnostics)
    if result.pending is None:  # --strict stopped it before writing
        return out + (_strict(result.warnings),)
    if result.stale:
        out += (Out("".join(c.diff for c in result.pending)), _stale(result))
    elif result.check:
        out += (Out(f"compiled artifacts are fresh ({result.projects} projects)\n"),)
    else:
        out += (Out("\n".join(written_lines(result)) + "\n"),)
    return out + ((_strict(result.warnings),) if result.strict_failed else ())


@reporter(CompileResult, "json")
def compile_json_report(result: CompileResult) -> Rendered:
    if result.error is not None:
        return Out(diagnostics_json(result.diagnostics) + "\n"), Err(f"error: {result.error}")
    if result.pending is None:
        return (_strict(result.warnings),)
    out: Rendered = (Out(json.dumps(compile_json(result), indent=2) + "\n"),)
    return out + ((_strict(result.warnings),) if result.strict_failed else ())
