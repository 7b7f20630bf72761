"""User-facing problems, collected rather than raised one at a time, and their reporters."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Iterable, Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, order=True)
class Diagnostic:
    """One problem in one file. `line`/`column` are 1-based; 0 means "the whole file"."""

    file: str
    line: int
    column: int
    field: str  # dotted JSON path, e.g. "schedule.cron"; "" for the document itself
    message: str
    hint: str = ""
    severity: Severity = field(default="error", compare=False)

    def location(self) -> str:
        return f"{self.file}:{self.line}:{self.column}" if self.line else self.file


def dotted_path(path: tuple) -> str:
    """("schedule", "cron") -> "schedule.cron"; list indexes as [i]: ("tags", 0) -> "tags[0]"."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def sort_key(d: Diagnostic) -> tuple:
    return (d.file, d.line, d.column, d.field, d.message)


def format_text(diagnostics: Iterable[Diagnostic]) -> str:
    """`path:line:col: field: message` plus an indented hint line, sorted by place."""
    lines = []
    for d in sorted(diagnostics, key=sort_key):
        prefix = "" if d.severity == "error" else "warning: "
        where = f"{d.field}: " if d.field else ""
        lines.append(f"{d.location()}: {prefix}{where}{d.message}")
        if d.hint:
            lines.append(f"    hint: {d.hint}")
    return "\n".join(lines)


def format_json(diagnostics: Iterable[Diagnostic]) -> str:
    items = [asdict(d) for d in sorted(diagnostics, key=sort_key)]
    errors = sum(1 for d in items if d["severity"] == "error")
    return json.dumps(
        {"valid": errors == 0, "errors": errors, "warnings": len(items) - errors, "diagnostics": items},
        indent=2,
        ensure_ascii=False,
    )
