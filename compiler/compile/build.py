"""The compile pipeline: load -> validate -> render, and the freshness check of committed output.

`run_validate` and `run_compile` are the entry points of `chapctl validate` and `chapctl compile`:
each returns a result (`ValidateResult`, `CompileResult`) that carries its exit code; its reporters
are in compiler/output/compile.py."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from compiler.cachedir import cache_dir
from compiler.compile.diagnostics import Diagnostic
from compiler.constants import EXIT_ERROR, EXIT_OK
from compiler.errors import HandEdited, StaleArtifacts, ValidationFailed
from compiler.compile.load import load_repo
from compiler.compile.render import BLOCKS_DIR, PREFECT_YAML, Artifacts, edited_by_hand, render
from compiler.compile.models import SINGLE_SCHEDULE_SLUG
from compiler.compile.schedule_report import ScheduleReport, schedule_label, schedule_report
from compiler.compile.validate import ValidatedRepo, validate


@dataclass(frozen=True)
class Checked:
    """A valid repository and its schedule review; `warnings` includes the load hot-spots."""

    validated: ValidatedRepo
    review: ScheduleReport
    warnings: tuple[Diagnostic, ...]


@dataclass(frozen=True)
class Compiled:
    checked: Checked
    artifacts: Artifacts

    @property
    def validated(self) -> ValidatedRepo:
        return self.checked.validated

    @property
    def warnings(self) -> tuple[Diagnostic, ...]:
        return self.checked.warnings


def validate_repo(root: Path) -> ValidatedRepo:
    """Load and validate; raise ValidationFailed carrying every diagnostic if anything is wrong."""
    validated = validate(load_repo(root))
    if not validated.ok:
        raise ValidationFailed(list(validated.diagnostics))
    return validated


def check_repo(root: Path) -> Checked:
    """Validate, then review the schedules: hot-spots become warnings placed on a project's cron."""
    validated = validate_repo(root)
    review = schedule_report(validated)
    warnings = tuple(d for d in validated.diagnostics if d.severity == "warning")
    return Checked(validated, review, warnings + hotspot_warnings(validated, review))


def hotspot_warnings(validated: ValidatedRepo, review: ScheduleReport) -> tuple[Diagnostic, ...]:
    """One warning per hot-spot, placed on the cron of its first schedule: a project's `schedule:`
    or an entry of its `schedules:` (a hot-spot names them as `schedule_label` does)."""
    places: dict[str, tuple[Any, tuple, str]] = {}
    for v in validated.projects:
        if v.project.schedules is not None:
            for index, entry in enumerate(v.project.schedules):
                places[schedule_label(v.project.name, entry.slug)] = (
                    v.source, ("schedules", index, "cron"), f"schedules[{index}].cron")
        elif v.project.schedule is not None:
            places[schedule_label(v.project.name, SINGLE_SCHEDULE_SLUG)] = (
                v.source, ("schedule", "cron"), "schedule.cron")
    out = []
    for spot in review.hotspots:
        first = next((label for label in spot.projects if label in places), None)
        if first is None:  # every label comes from a schedule above; nothing to place it on otherwise
            continue
        source, path, field = places[first]
        line, column = source.position(path)
        others = f" (and {len(spot.projects) - 1} other project(s))" if len(spot.projects) > 1 else ""
        out.append(Diagnostic(
            source.path, line, column, field,
            f"load hot-spot{others}: {spot.text()}",
            "spread these schedules over other hours or days, or raise `load_warnings` in projects/_defaults.yaml "
            "if the DHIS2 instance and CHAP can take it", severity="warning"))
    return tuple(out)


def compile_repo(root: Path) -> Compiled:
    checked = check_repo(root)
    return Compiled(checked, render(checked.validated, checked.review, cache_dir(root)))


@dataclass(frozen=True)
class Change:
    path: str
    kind: str  # "create" | "update" | "delete"
    diff: str
    hand_edit: str | None = None  # set when the file on disk was edited by hand: where to edit instead

    def label(self) -> str:
        return f"{self.path} (edited by hand: {self.hand_edit})" if self.hand_edit else self.path


def changes(root: Path, artifacts: Artifacts) -> list[Change]:
    """What writing `artifacts` would change on disk, with a unified diff per file."""
    result = []
    for path, text in artifacts.files.items():
        current = _read(root / path)
        if current != text:
            result.append(Change(path, "update" if current is not None else "create",
                                 _diff(path, current or "", text), _hand_edit(path, current, text)))
    blocks = root / BLOCKS_DIR
    if blocks.is_dir():
        for file in sorted(blocks.glob("*.yaml")):
            path = f"{BLOCKS_DIR}/{file.name}"
            if path not in artifacts.files:
                current = _read(file) or ""
                result.append(Change(path, "delete", _diff(path, current, ""), _hand_edit(path, current, "")))
    return result


def _hand_edit(path: str, current: str | None, wanted: str) -> str | None:
    """Where the edit belongs, when `current` was changed by hand after compile wrote it."""
    if current is None or not edited_by_hand(current):
        return None
    if path == PREFECT_YAML:
        names = _edited_deployments(current, wanted)
        if names:
            return "edit " + ", ".join(f"projects/{n}.yaml" for n in names) + " instead"
        return "edit projects/_defaults.yaml or projects/*.yaml instead"
    if path.startswith(BLOCKS_DIR + "/"):
        return "edit the `credentials` of the projects that use this block instead"
    if path.startswith("schema/"):
        return "the schema comes from compiler/models.py"
    return "edit projects/*.yaml (schedules, load_warnings in _defaults.yaml) instead"


def _edited_deployments(current: str, wanted: str) -> list[str]:
    from ruamel.yaml import YAML

    try:
        mine = {d.get("name"): d for d in (YAML(typ="safe").load(current) or {}).get("deployments") or []}
    except Exception:  # not even YAML any more: no names to give
        return []
    theirs = {d.get("name"): d for d in (YAML(typ="safe").load(wanted) or {}).get("deployments") or []}
    return sorted(str(n) for n in set(mine) | set(theirs) if n is not None and mine.get(n) != theirs.get(n))


def write(root: Path, artifacts: Artifacts, *, force: bool = False) -> list[Change]:
    """Write only files whose bytes differ; remove block files no project declares any more.

    A file edited by hand since compile wrote it is not overwritten (its edit would be lost
    without a word) unless `force`: HandEdited says where the change belongs."""
    applied = changes(root, artifacts)
    edited = [c for c in applied if c.hand_edit]
    if edited and not force:
        raise HandEdited([c.label() for c in edited])
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
        raise StaleArtifacts([c.label() for c in stale], "".join(c.diff for c in stale))
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


# -- the verbs ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ValidateResult:
    """`chapctl validate`: the projects checked, and every diagnostic to show — all of them when
    a file is invalid (`error` is then ValidationFailed's message), the warnings otherwise."""

    projects: int = 0
    diagnostics: tuple[Diagnostic, ...] = ()
    error: str | None = None
    strict: bool = False  # --strict: a warning fails
    environment: str | None = None  # --env: the environment checked to be declared

    @property
    def warnings(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity == "warning")

    @property
    def strict_failed(self) -> bool:
        return self.error is None and self.strict and bool(self.warnings)

    @property
    def exit_code(self) -> int:
        return EXIT_ERROR if self.error is not None or self.strict_failed else EXIT_OK


def run_validate(root: Path, strict: bool = False, environment: str | None = None) -> ValidateResult:
    """Validate; `environment` (--env) must be one `_defaults.yaml` declares (BadUsage otherwise)."""
    try:
        checked = check_repo(root)
    except ValidationFailed as exc:
        return ValidateResult(diagnostics=tuple(exc.diagnostics), error=str(exc), strict=strict)
    name = select_environment(checked.validated, environment)
    return ValidateResult(len(checked.validated.projects), checked.warnings, strict=strict, environment=name)


def select_environment(validated: ValidatedRepo, requested: str | None) -> str | None:
    """The environment a compile-side verb acts for (--env/CHAPCTL_ENV), among `_defaults.yaml`'s."""
    from compiler.compile.environments import select

    return select(list(validated.defaults.environments), requested)


@dataclass(frozen=True)
class CompileResult:
    """`chapctl compile` (`check`: `--check`): what was written, or with `check` what is stale
    (`pending`, a unified diff each); `pending` is None when `--strict` stopped it before writing.
    When a file is invalid, `error` is ValidationFailed's message and `diagnostics` all of them."""

    check: bool = False
    strict: bool = False
    projects: int = 0
    files: int = 0  # artifacts compiled
    diagnostics: tuple[Diagnostic, ...] = ()  # the warnings; every diagnostic when invalid
    pending: tuple[Change, ...] | None = None
    error: str | None = None

    @property
    def warnings(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity == "warning")

    @property
    def stale(self) -> bool:
        return self.check and bool(self.pending)

    @property
    def strict_failed(self) -> bool:
        """`--strict` with warnings fails it (unless it already failed as stale)."""
        return self.error is None and self.strict and bool(self.warnings) and not self.stale

    @property
    def exit_code(self) -> int:
        return EXIT_ERROR if self.error is not None or self.stale or self.strict_failed else EXIT_OK


def run_compile(root: Path, check: bool = False, force: bool = False, strict: bool = False,
                environment: str | None = None) -> CompileResult:
    """Validate and render; then with `check` compare with what is committed, else write what
    differs (HandEdited, unless `force`, when that would discard a hand edit). `strict` with
    warnings writes nothing. The artifacts are the same for every environment (each is laid over
    them where plan and apply read them); `environment` (--env) must be declared."""
    try:
        compiled = compile_repo(root)
    except ValidationFailed as exc:
        return CompileResult(check, strict, diagnostics=tuple(exc.diagnostics), error=str(exc))
    select_environment(compiled.validated, environment)
    done = CompileResult(check, strict, len(compiled.validated.projects), len(compiled.artifacts.files),
                         compiled.warnings)
    if strict and compiled.warnings and not check:
        return done
    pending = changes(root, compiled.artifacts) if check else write(root, compiled.artifacts, force=force)
    return replace(done, pending=tuple(pending))
