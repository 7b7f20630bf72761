"""`.chapctl/cache/`: what plan and apply keep between runs so that a no-op stays instant.

Every entry is keyed by the sha256 of what it was computed from, so a stale entry is never read,
only left behind; `store` keeps the newest few of each kind (a laptop that applies every commit
for a year does not collect a thousand copies of prefect.yaml). Deleting the folder is always safe.
"""

from __future__ import annotations

import os
from pathlib import Path

KEEP = 8  # entries of one kind kept: enough for switching between a few branches


def cache_dir(root: Path) -> Path:
    return root / ".chapctl" / "cache"


def store(path: Path, text: str = "") -> None:
    """Write `path` atomically (a concurrent or killed run never reads half a file), then drop
    the oldest entries of its kind (same name up to the last `-`). A read-only checkout simply
    keeps no cache."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        tmp.write_text(text)
        tmp.replace(path)
        _trim(path)
    except OSError:
        pass


def _trim(path: Path) -> None:
    kind = path.name.rsplit("-", 1)[0] + "-"
    entries = []
    for entry in os.scandir(path.parent):
        if entry.name.startswith(kind) and entry.name.count("-") == path.name.count("-") and entry.is_file():
            entries.append((entry.stat().st_mtime_ns, entry.name))
    for _, name in sorted(entries, reverse=True)[KEEP:]:
        try:
            (path.parent / name).unlink()
        except OSError:
            pass
