"""Find the repository chapctl acts on: `--root DIR`, else the nearest folder upward holding `projects/`;
and the variables its `.env` sets that the environment lacks (chapctl reads no `.env`).

Like git with `.git`, so an installed chapctl always acts on the copy you stand in, never on the
source tree it was installed from.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from compiler.errors import RootNotFound

MARKER = "projects"


def find_root(explicit: Path | None = None, start: Path | None = None) -> Path:
    if explicit is not None:
        root = explicit.resolve()
        if not (root / MARKER).is_dir():
            raise RootNotFound(f"--root {explicit}: no `{MARKER}/` folder there; point --root at a chapctl repository")
        return root
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / MARKER).is_dir():
            return candidate
    raise RootNotFound(
        f"no `{MARKER}/` folder in {here} or any parent; run chapctl inside a chapctl repository or pass --root DIR"
    )


@dataclass(frozen=True)
class DotenvUnread:
    """The repository's `.env` sets variables the environment lacks: the make targets read it,
    chapctl does not (the only environment it reads is the process's). Names only, never values."""

    path: str
    names: tuple[str, ...]


def unread_dotenv(root: Path, environ: Mapping[str, str]) -> DotenvUnread | None:
    """What `root/.env` sets that `environ` lacks; None when nothing (or no `.env`)."""
    path = root / ".env"
    unset = tuple(sorted(name for name in _dotenv_names(path) if name not in environ))
    return DotenvUnread(str(path), unset) if unset else None


def _dotenv_names(path: Path) -> list[str]:
    """The names `path` assigns (`NAME=…` or `export NAME=…`), never their values; [] without the file."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    return re.findall(r"(?m)^[ \t]*(?:export[ \t]+)?([A-Za-z_][A-Za-z0-9_]*)[ \t]*=", text)
