"""The exception tree of chapctl.

    ChapctlError                 root; never raised directly
    ├── UserError                the user can fix it; the CLI prints one clean line, no traceback
    │   ├── RootNotFound         no `projects/` folder upward from the working directory
    │   ├── ValidationFailed     project files are invalid; carries every Diagnostic
    │   ├── StaleArtifacts       committed artifacts differ from what `compile` would write
    │   ├── HandEdited           compile would overwrite an artifact someone edited by hand
    │   ├── ServerError          the Prefect API is unreachable, refuses auth, or answers nonsense
    │   │   ├── NotFound         404: an object is not (or no longer) there
    │   │   └── Conflict         409: an object with that name already exists
    │   ├── BadUsage             a usage error found by the core (an unknown --env): exit 64, as click's
    │   ├── ApplyRefused         apply would be unsafe (missing secret, clash, prune-all, older commit, lock busy,
    │   │                        a saved plan the server or the files no longer match)
    │   └── ApplyFailed          the server failed a write half-way; carries what was already written
    └── (anything else)          an internal bug; the CLI prints a short message and logs the traceback
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from compiler.compile.diagnostics import Diagnostic


class ChapctlError(Exception):
    """Root of every error chapctl raises on purpose."""


class UserError(ChapctlError):
    """An error the user can fix; its message is one line that says what and how."""


class RootNotFound(UserError):
    pass


class ValidationFailed(UserError):
    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = diagnostics
        n = sum(1 for d in diagnostics if d.severity == "error")
        super().__init__(f"{n} error(s) in project files; nothing was written")


class StaleArtifacts(UserError):
    def __init__(self, stale: list[str], diff: str = ""):
        self.stale = stale
        self.diff = diff
        super().__init__(
            "compiled artifacts are stale: " + ", ".join(stale) + "; run `chapctl compile` and commit the result"
        )


class HandEdited(UserError):
    def __init__(self, files: list[str]):
        self.files = files
        super().__init__(
            "compiled file(s) were edited by hand since `chapctl compile` wrote them: " + "; ".join(files)
            + ". Compiling would discard those edits: make them in projects/ instead, then run "
            "`chapctl compile --force` to overwrite the hand-edited files"
        )


class ServerError(UserError):
    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class NotFound(ServerError):
    def __init__(self, message: str, path: str = ""):
        super().__init__(message, 404)
        self.path = path


class Conflict(ServerError):
    def __init__(self, message: str):
        super().__init__(message, 409)


class BadUsage(UserError):
    """A usage error the core finds (an unknown `--env`): the CLI exits EXIT_USAGE, as for an unknown option."""


class ApplyRefused(UserError):
    pass


class ApplyFailed(UserError):
    """A write failed after others succeeded; `result` (an ApplyResult) says which."""

    def __init__(self, message: str, result: object, prepared: object = None):
        super().__init__(message)
        self.result = result
        self.prepared = prepared


# -- what the CLI's error boundary reports besides a UserError (compiler/output/common.py words them) --
@dataclass(frozen=True)
class UsageProblem:
    """A usage error (unknown option, bad value) as the command line's parser gave it."""

    message: str
    command: str | None = None  # e.g. "chapctl plan": whose --help to read


@dataclass(frozen=True)
class Interrupted:
    """Ctrl-C or SIGTERM ended the verb."""


@dataclass(frozen=True)
class InternalError:
    """An exception no one raised on purpose: a bug. Its traceback went to `log`."""

    kind: str  # the exception's class name
    message: str
    log: str
