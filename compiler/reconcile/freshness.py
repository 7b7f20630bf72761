"""Refuse stale artifacts before talking to a server, cheaply: a cache of successful checks.

`ensure_fresh(root)` runs the compile pipeline's `check_fresh` (compiler.compile.build) only when
the inputs changed since it last passed: compiling is a pure function of the project files, the
committed artifacts and chapctl's own code (its templates included), so a marker under `.chapctl/cache/`
keyed by their sha256 skips the ~0.3 s recompile of an unchanged repository.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from compiler.cachedir import cache_dir, store

FRESH_INPUTS = ("projects", "schema", "blocks", "prefect.yaml")  # and the package (compiler/, its templates)


_RENDERING_PACKAGES = ("ruamel.yaml", "jinja2", "pydantic", "cron-descriptor", "tzdata", "prefect")


def ensure_fresh(root: Path) -> None:
    """Raise StaleArtifacts/ValidationFailed/HandEdited unless the committed artifacts are current.

    Two keys, as git's index does: the files' sizes and modification times (one `stat` each,
    ~1 ms for a thousand projects) name a marker that says "these exact files were checked"; when
    a stat changed, their contents are hashed (a touched but unchanged file costs one hash, not a
    recompile), and only new contents run the compiler."""
    import hashlib

    cache = cache_dir(root)
    files = _inputs(root)
    by_stat = hashlib.sha256(_environment())
    newest = 0
    for path, st in files:
        newest = max(newest, st.st_mtime_ns)
        by_stat.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    stat_marker = cache / f"fresh-stat-{by_stat.hexdigest()[:32]}"
    if stat_marker.exists():
        return
    by_content = hashlib.sha256(_environment())
    for path, _ in files:
        with open(path, "rb") as fh:
            by_content.update(path.encode() + b"\0" + hashlib.sha256(fh.read()).digest())
    marker = cache / f"fresh-{by_content.hexdigest()[:32]}"
    if not marker.exists():
        from compiler.compile.build import check_fresh  # the full compiler only on a cache miss

        check_fresh(root)
    store(marker)
    # "racy" files (git's word): one written in the last seconds may change again within the same
    # mtime tick and size, so only settled files earn the stat shortcut
    if newest < time.time_ns() - 2_000_000_000:
        store(stat_marker)


def _inputs(root: Path) -> list[tuple[str, os.stat_result]]:
    """(path, stat) of every input file, in a fixed order (os.scandir: a third of pathlib's cost)."""
    import compiler

    out: list[tuple[str, os.stat_result]] = []
    for base in [str(root / name) for name in FRESH_INPUTS] + [os.path.dirname(compiler.__file__)]:
        if os.path.isdir(base):
            _walk(base, out)
        elif os.path.isfile(base):
            out.append((base, os.stat(base)))
    return out


def _walk(folder: str, out: list[tuple[str, os.stat_result]]) -> None:
    with os.scandir(folder) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        if entry.name == "__pycache__":
            continue
        if entry.is_dir():
            _walk(entry.path, out)
        elif entry.is_file():
            out.append((entry.path, entry.stat()))


def _environment() -> bytes:
    """The Python version and the installed releases of the packages that shape the output: their
    upgrades can change what compile writes."""
    import sys

    from compiler.installed import version

    return repr((sys.version_info[:3], [(p, version(p)) for p in _RENDERING_PACKAGES])).encode()
