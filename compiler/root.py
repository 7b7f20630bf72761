"""Find the repository chapctl acts on: `--root DIR`, else the nearest folder upward holding `projects/`.

Like git with `.git`, so an installed chapctl always acts on the copy you stand in, never on the
source tree it was installed from.
"""

from __future__ import annotations

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
