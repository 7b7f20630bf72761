"""What `chapctl init` did (`InitResult`); its reporters are compiler/output/scaffold.py."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from compiler.compile.diagnostics import Diagnostic

CREATED, KEPT, SKIPPED = "created", "kept", "skipped"


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

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1
