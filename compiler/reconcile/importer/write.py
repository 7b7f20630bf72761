"""Import's writing: the project files and `_defaults.yaml` rendered from the templates beside this
module, validated as chapctl would validate them, then written (never over an existing file).

Every value in the templates goes through `y`, compile's own YAML scalar (`compile.render.yaml_scalar`),
so import and compile quote a value identically; every comment through `note` (server text written
out on one line, so it can never end the comment and become YAML); the environment refuses anything
else, as compile's does."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from compiler.compile.models import DEFAULT_TIMEZONE
from compiler.compile.render import YamlText, yaml_environment, yaml_scalar
from compiler.constants import DEFAULT_OWNER, written_out
from compiler.reconcile.importer.values import Finding, ImportResult

# The order of a project file's fields (`name` first).
PROJECT_ORDER = ("description", "credentials", "model_id", "end_mode", "end_period_offset", "end_date",
                 "prediction_setup_id", "schedule", "schedules", "tags", "work_pool", "replaces")
COMMENT_COLUMN = 42  # where a value's comment starts (one space more when the line is longer)


class _Comment(str):
    """Comment text written out on one line by `note`, or a whole line with its comment by `commented`
    (whose values went through `y`)."""


def _y(value: Any) -> YamlText:
    """compile's YAML scalar, and an ISO date as a YAML date (what `end_date:` holds)."""
    if isinstance(value, dt.date):
        return YamlText(value.isoformat())
    return yaml_scalar(value)


def _note(text: str) -> _Comment:
    return _Comment(written_out(text, one_line=True))


def _commented(line: str, comment: str | None) -> _Comment:
    """`line`, with `comment` (if any) in the comment column."""
    return _Comment(f"{line:<{COMMENT_COLUMN}} # {_note(comment)}" if comment else line)


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    env = yaml_environment(jinja2.FileSystemLoader(str(Path(__file__).parent)), allowed=(_Comment,))
    env.filters.update(y=_y, note=_note, commented=_commented)
    return env


def render_project(name: str, header: list[str], fields: dict[str, Any], comments: dict[str, str]) -> str:
    """A project file: `header` comment lines, then `name` and `fields` (each value's origin from
    `comments`, keyed by field, or `field.sub` inside a mapping)."""
    ordered = {key: fields[key] for key in PROJECT_ORDER if key in fields}
    return _environment().get_template("project.yaml.j2").render(name=name, header=header, fields=ordered,
                                                                 comments=comments)


def render_defaults(work_pool: str, git: tuple[str, str] | None) -> str:
    """`_defaults.yaml`: the default owner and time zone, `work_pool`, and the flow code's source:
    the git repository (url, branch) when there is one, else a directory named by a variable."""
    return _environment().get_template("defaults.yaml.j2").render(
        owner=DEFAULT_OWNER, timezone=DEFAULT_TIMEZONE, work_pool=work_pool, git=git)


def validate_files(root: Path, result: ImportResult) -> None:
    """Validate the repository as it would be with the new files (in a scratch copy); a project
    that does not validate is not written, and said so with chapctl's own message."""
    import shutil
    import tempfile

    from compiler.compile.load import load_repo
    from compiler.compile.validate import validate

    with tempfile.TemporaryDirectory(prefix="chapctl-import-") as tmp:
        scratch = Path(tmp)
        # symlinks=True: links are copied as links (a dangling one stays dangling, and load skips it)
        shutil.copytree(root / "projects", scratch / "projects", symlinks=True)
        for path, text in result.files.items():
            (scratch / path).write_text(text, encoding="utf-8")
        diagnostics = [d for d in validate(load_repo(scratch)).diagnostics if d.severity == "error"]
    bad: dict[str, list[str]] = {}
    for d in diagnostics:
        if d.file in result.files:
            bad.setdefault(d.file, []).append(f"{d.field or 'file'}: {d.message}")
    for path, messages in sorted(bad.items()):
        project = next((p for p in result.projects if p.path == path), None)
        del result.files[path]
        if project is not None:
            result.projects.remove(project)
        result.findings.append(Finding("unmapped", project.source if project else path,
                                       "the project would not validate: " + "; ".join(messages),
                                       project.replaces[1] if project and project.replaces else None))


def write_files(root: Path, result: ImportResult, dry_run: bool) -> None:
    """Write `result.files` under `root` unless `dry_run`; a file that exists (or a link) is left
    alone, and said so."""
    for path in list(result.files):
        if (root / path).exists() or (root / path).is_symlink():  # never overwrite, nor write through a link
            result.findings.append(Finding("kept", path, "exists: left alone (not overwritten)"))
            del result.files[path]
    if dry_run:
        return
    for path, text in result.files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "x", encoding="utf-8") as handle:  # "x": refuses an existing file
            handle.write(text)
    result.written = True
