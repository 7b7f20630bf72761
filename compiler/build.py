"""The compile pipeline: load -> validate -> render, and the freshness check of committed output."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from compiler.diagnostics import Diagnostic
from compiler.errors import StaleArtifacts, ValidationFailed
from compiler.load import load_repo
from compiler.render import BLOCKS_DIR, Artifacts, render
from compiler.validate import ValidatedRepo, validate

TEMPLATES_DIR = "templates"


@dataclass(frozen=True)
class Compiled:
    validated: ValidatedRepo
    artifacts: Artifacts

    @property
    def warnings(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.validated.diagnostics if d.severity == "warning")


def validate_repo(root: Path) -> ValidatedRepo:
    """Load and validate; raise ValidationFailed carrying every diagnostic if anything is wrong."""
    validated = validate(load_repo(root))
    if not validated.ok:
        raise ValidationFailed(list(validated.diagnostics))
    return validated


def compile_repo(root: Path) -> Compiled:
    validated = validate_repo(root)
    return Compiled(validated, render(validated, root / TEMPLATES_DIR))


@dataclass(frozen=True)
class Change:
    path: str
    kind: str  # "create" | "update" | "delete"
    diff: str


def changes(root: Path, artifacts: Artifacts) -> list[Change]:
    """What writing `artifacts` would change on disk, with a unified diff per file."""
    result = []
    for path, text in artifacts.files.items():
        current = _read(root / path)
        if current != text:
            result.append(Change(path, "update" if current is not None else "create",
                                 _diff(path, current or "", text)))
    blocks = root / BLOCKS_DIR
    if blocks.is_dir():
        for file in sorted(blocks.glob("*.yaml")):
            path = f"{BLOCKS_DIR}/{file.name}"
            if path not in artifacts.files:
                result.append(Change(path, "delete", _diff(path, _read(file) or "", "")))
    return result


def write(root: Path, artifacts: Artifacts) -> list[Change]:
    """Write only files whose bytes differ; remove block files no project declares any more."""
    applied = changes(root, artifacts)
    for change in applied:
        target = root / change.path
        if change.kind == "delete":
            target.unlink()
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(artifacts.files[change.path].encode("utf-8"))
    return applied


def check_fresh(root: Path) -> Compiled:
    """Raise StaleArtifacts (with a unified diff) unless the committed artifacts are current."""
    compiled = compile_repo(root)
    stale = changes(root, compiled.artifacts)
    if stale:
        raise StaleArtifacts([c.path for c in stale], "".join(c.diff for c in stale))
    return compiled


def _read(path: Path) -> str | None:
    try:
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        return "<not UTF-8>\n"


def _diff(path: str, before: str, after: str) -> str:
    lines = difflib.unified_diff(
        before.splitlines(keepends=True), after.splitlines(keepends=True),
        fromfile=f"a/{path} (committed)", tofile=f"b/{path} (compiled)",
    )
    text = "".join(lines)
    return text if text.endswith("\n") or not text else text + "\n"
