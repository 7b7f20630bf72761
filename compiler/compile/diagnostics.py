"""User-facing problems, collected rather than raised one at a time (their reporters: compiler/output/compile.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

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

    def headline(self) -> str:
        """`path:line:col: [warning: ]field: message`: the diagnostic in one line, without its hint."""
        prefix = "" if self.severity == "error" else "warning: "
        where = f"{self.field}: " if self.field else ""
        return f"{self.location()}: {prefix}{where}{self.message}"


def dotted_path(path: tuple) -> str:
    """("schedule", "cron") -> "schedule.cron"; list indexes as [i]: ("tags", 0) -> "tags[0]"."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def sort_key(d: Diagnostic) -> tuple:
    return (d.file, d.line, d.column, d.field, d.message)
