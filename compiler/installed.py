"""Installed releases of Python packages, read from their `*.dist-info` folder names.

`importlib.metadata` costs ~5 ms to import and scans every distribution; plan and apply only need
a handful of versions for their cache keys and notes, on every run (the no-op budget)."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from functools import cache


def _normal(name: str) -> str:
    return name.replace("-", "_").replace(".", "_").lower()


@cache
def _dist_infos() -> tuple[str, ...]:
    names: list[str] = []
    for folder in sys.path:
        try:
            entries = os.listdir(folder or ".")
        except OSError:
            continue
        names += sorted(e for e in entries if e.endswith(".dist-info"))
    return tuple(names)


def version(package: str) -> str | None:
    """The installed release of `package` (first on sys.path, as `import` finds it), or None."""
    wanted = _normal(package)
    for entry in _dist_infos():
        name, _, release = entry.removesuffix(".dist-info").rpartition("-")
        if _normal(name) == wanted:
            return release
    return None


@dataclass(frozen=True)
class Versions:
    """`chapctl --version`: chapctl's release, the Prefect release it is built for, and the one
    installed beside it (None: not installed)."""

    chapctl: str
    target: str
    prefect: str | None


def versions() -> Versions:
    from compiler import __version__
    from compiler.constants import PREFECT_RELEASE

    return Versions(__version__, PREFECT_RELEASE, version("prefect"))
