"""`chapctl init [DIR]`: a new repository of projects, ready for review and apply, without forking
chapctl.

`init_repo(root, InitOptions)` renders the files (`scaffold.render`: `projects/_defaults.yaml` with
an owner, one example project, the two GitHub workflows pinned to this chapctl's release,
`.pre-commit-config.yaml`, `.gitignore`, a README), writes each one that does not exist yet (never
over an existing file: re-running reports it kept), then compiles the projects so that the
committed artifacts exist. The example project is written only into a `projects/` that holds no
project yet. What happened: `scaffold.result.InitResult`; its reporters are `compiler.output.scaffold`.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

from compiler.compile.build import compile_repo, write
from compiler.constants import CONTROL_CHARACTERS, LINE_BREAKS, OWNER_MAX_LENGTH, OWNER_PATTERN
from compiler.errors import UserError, ValidationFailed
from compiler.scaffold.render import Scaffold, default_package, scaffold_files
from compiler.scaffold.result import CREATED, KEPT, SKIPPED, InitResult

__all__ = ["InitOptions", "InitResult", "init_repo", "derive_owner"]


@dataclass(frozen=True)
class InitOptions:
    owner: str | None = None  # None: derived from the git remote `origin`, else the directory's name
    package: str | None = None  # the pip requirement the workflows install; None: this release


def init_repo(root: Path, options: InitOptions | None = None) -> InitResult:
    options = options or InitOptions()
    root = root.resolve()
    if root.exists() and not root.is_dir():
        raise UserError(f"{root} is a file: give `chapctl init` a directory (a new one is created)")
    if options.package is not None and not options.package.strip():
        raise UserError(f"--package is empty: give a pip requirement, e.g. {default_package()}")
    if options.package is not None and re.search(f"{CONTROL_CHARACTERS}|{LINE_BREAKS}", options.package):
        raise UserError("--package holds a control character, a tab or a line break: give one pip requirement, "
                        f"e.g. {default_package()}")
    package = options.package or default_package()
    defaults_path = root / "projects" / "_defaults.yaml"
    owner = owner_from = None
    if not defaults_path.exists():
        owner, owner_from = (_checked_owner(options.owner), "--owner") if options.owner is not None \
            else derive_owner(root)
    scaffold = Scaffold(owner=owner or "default", package=package)
    files = scaffold_files(scaffold)
    has_projects = any(p.name != "_defaults.yaml" for p in (root / "projects").glob("*.yaml")) \
        if (root / "projects").is_dir() else False
    report = []
    for relative, text in files.items():
        target = root / relative
        if relative == f"projects/{scaffold.example}.yaml" and has_projects and not target.exists():
            report.append((relative, SKIPPED, "projects/ already holds projects"))
            continue
        if _create(target, text):
            why = f"owner {owner}, from {owner_from}" if relative == "projects/_defaults.yaml" else ""
            report.append((relative, CREATED, why))
        else:
            report.append((relative, KEPT, "exists; never overwritten"))
    result = InitResult(root, tuple(report), scaffold.version, package, owner, owner_from)
    try:
        compiled = compile_repo(root)
    except ValidationFailed as exc:
        return replace(result, diagnostics=tuple(exc.diagnostics))
    changes = write(root, compiled.artifacts)
    needed = sorted({p.project.credentials.password_env for p in compiled.validated.projects
                     if p.project.credentials.password_env})
    return replace(result, compiled=tuple((c.kind, c.path) for c in changes),
                    projects=len(compiled.validated.projects), password_envs=tuple(needed),
                    work_pool=compiled.validated.defaults.work_pool)


def _create(target: Path, text: str) -> bool:
    """Write `text` to a new file; False when the file exists (it is never touched)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(target, "x", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
    except FileExistsError:
        return False
    return True


_OWNER = re.compile(OWNER_PATTERN)
_OWNER_RULE = "1-32 characters of a-z, 0-9 and single hyphens, e.g. laos-team"


def _checked_owner(owner: str) -> str:
    if len(owner) > OWNER_MAX_LENGTH or not _OWNER.match(owner):
        raise UserError(f"--owner {owner!r} is not an owner: use {_OWNER_RULE}")
    return owner


def owner_name(text: str) -> str | None:
    """`text` made an owner (lowercase, runs of other characters one hyphen, at most 32), or None."""
    name = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:OWNER_MAX_LENGTH].strip("-")
    return name if name and _OWNER.match(name) else None


def derive_owner(root: Path) -> tuple[str, str]:
    """The owner of a repository that names none: its git remote `origin`'s repository name, else
    the directory's name; and where it came from."""
    remote = _origin(root)
    if remote:
        name = owner_name(re.sub(r"\.git/?$", "", remote.rstrip("/")).rsplit("/", 1)[-1].rsplit(":", 1)[-1])
        if name:
            return name, "the git remote origin"
    name = owner_name(root.name)
    if name:
        return name, "the directory's name"
    raise UserError(f"cannot make an owner of {root.name!r}: pass --owner NAME ({_OWNER_RULE})")


def _origin(root: Path) -> str | None:
    """`git remote get-url origin` when `root` is the top of a git repository (not a folder inside
    another one); None without git, a repository or an origin."""
    if not root.is_dir():
        return None
    top = _git(root, "rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() != root.resolve():
        return None
    return _git(root, "remote", "get-url", "origin")


def _git(root: Path, *args: str) -> str | None:
    try:
        proc = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10,
                              env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})
    except (OSError, subprocess.SubprocessError):
        return None
    return (proc.stdout.strip() or None) if proc.returncode == 0 else None
