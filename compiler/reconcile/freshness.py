"""Refuse stale artifacts before talking to a server, cheaply: a cache of successful checks.

`ensure_fresh(root)` runs the compile pipeline's `check_fresh` (compiler.compile.build) only when
the inputs changed since it last passed: compiling is a pure function of the project files, the
templates, the committed artifacts and chapctl's own code, so a marker under `.chapctl/cache/`
keyed by their sha256 skips the ~0.3 s recompile of an unchanged repository.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

FRESH_INPUTS = ("projects", "templates", "schema", "blocks", "prefect.yaml")


_RENDERING_PACKAGES = ("ruamel.yaml", "jinja2", "pydantic", "cron-descriptor", "tzdata", "prefect")


def ensure_fresh(root: Path) -> None:
    """Raise StaleArtifacts/ValidationFailed/HandEdited unless the committed artifacts are current.

    Two keys, as git's index does: the files' sizes and modification times (one `stat` each,
    ~1 ms for a thousand projects) name a marker that says "these exact files were checked"; when
    a stat changed, their contents are hashed (a touched but unchanged file costs one hash, not a
    recompile), and only new contents run the compiler."""
    import hashlib

    cache = root / ".chapctl" / "cache"
    files = _inputs(root)
    by_stat = hashlib.sha256(_environment())
    newest = 0
    for f in files:
        st = f.stat()
        newest = max(newest, st.st_mtime_ns)
        by_stat.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    stat_marker = cache / f"fresh-stat-{by_stat.hexdigest()[:32]}"
    if stat_marker.exists():
        return
    by_content = hashlib.sha256(_environment())
    for f in files:
        by_content.update(str(f).encode() + b"\0" + hashlib.sha256(f.read_bytes()).digest())
    marker = cache / f"fresh-{by_content.hexdigest()[:32]}"
    if not marker.exists():
        from compiler.compile.build import check_fresh  # the full compiler only on a cache miss

        check_fresh(root)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        marker.touch()
        # "racy" files (git's word): one written in the last seconds may change again within the
        # same mtime tick and size, so only settled files earn the stat shortcut
        if newest < time.time_ns() - 2_000_000_000:
            stat_marker.touch()
    except OSError:
        pass  # a read-only checkout still works, just without the shortcut


def _inputs(root: Path) -> list[Path]:
    import compiler

    files: list[Path] = []
    for base in [root / name for name in FRESH_INPUTS] + [Path(compiler.__file__).parent]:
        found = sorted(base.rglob("*")) if base.is_dir() else [base]
        files += [f for f in found if "__pycache__" not in f.parts and f.is_file()]
    return files


def _environment() -> bytes:
    """The Python version and the installed releases of the packages that shape the output: their
    upgrades can change what compile writes (read from the dist-info folder names, no metadata)."""
    import sys

    wanted = {p.replace("-", "_").replace(".", "_").lower() for p in _RENDERING_PACKAGES}
    names = []
    for folder in sys.path:
        try:
            entries = os.listdir(folder or ".")
        except OSError:
            continue
        names += sorted(e for e in entries if e.endswith(".dist-info")
                        and e.rsplit("-", 1)[0].replace(".", "_").lower() in wanted)
    return repr((sys.version_info[:3], names)).encode()
