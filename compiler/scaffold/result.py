"""What `chapctl init` did, and its reporters (text lines, JSON): the CLI only prints them."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from compiler.compile.diagnostics import Diagnostic

CREATED, KEPT, SKIPPED = "created", "kept", "skipped"
_PAST = {"create": "created", "update": "updated", "delete": "deleted"}  # compile's changes, as init says them


@dataclass(frozen=True)
class InitResult:
    root: Path
    files: tuple[tuple[str, str, str], ...]  # (relative path, CREATED | KEPT | SKIPPED, why)
    version: str  # this chapctl's release, which the workflows pin
    package: str  # the pip requirement the workflows and hooks install (CHAPCTL_PACKAGE)
    owner: str | None = None  # the owner written into a created _defaults.yaml
    owner_from: str | None = None  # where that owner came from
    compiled: tuple[tuple[str, str], ...] = ()  # (create | update | delete, path) written by compile
    projects: int = 0  # projects compiled
    diagnostics: tuple[Diagnostic, ...] = ()  # the projects do not validate: nothing was compiled
    password_envs: tuple[str, ...] = ()  # the secrets apply will need for the projects compiled
    work_pool: str | None = None  # the work pool of the projects compiled (`work_pool` of _defaults.yaml)

    @property
    def ok(self) -> bool:
        return not any(d.severity == "error" for d in self.diagnostics)


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
