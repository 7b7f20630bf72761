"""Refuse stale artifacts before talking to a server, cheaply: a cache of successful checks.

`ensure_fresh(root)` runs the compile pipeline's `check_fresh` (compiler.compile.build) only when
the inputs changed since it last passed: compiling is a pure function of the project files, the
templates, the committed artifacts and chapctl's own code, so a marker under `.chapctl/cache/`
keyed by their sha256 skips the ~0.3 s recompile of an unchanged repository.
"""

from __future__ import annotations

from pathlib import Path

FRESH_INPUTS = ("projects", "templates", "schema", "blocks", "prefect.yaml")


_RENDERING_PACKAGES = ("ruamel.yaml", "jinja2", "pydantic", "cron-descriptor", "tzdata", "prefect")


def ensure_fresh(root: Path) -> None:
    """Raise StaleArtifacts/ValidationFailed/HandEdited unless the committed artifacts are current."""
    import hashlib
    import sys

    from importlib.metadata import version

    import compiler

    h = hashlib.sha256(repr(sys.version_info[:3]).encode())
    for package in _RENDERING_PACKAGES:  # their upgrades can change the output too
        h.update(f"{package}={version(package)}".encode())
    sources = [Path(compiler.__file__).parent]
    files = []
    for base in [root / name for name in FRESH_INPUTS] + sources:
        files += sorted(base.rglob("*")) if base.is_dir() else [base]
    for f in files:
        if f.is_file() and "__pycache__" not in f.parts:
            h.update(str(f).encode() + b"\0" + hashlib.sha256(f.read_bytes()).digest())
    marker = root / ".chapctl" / "cache" / f"fresh-{h.hexdigest()[:32]}"
    if marker.exists():
        return
    from compiler.compile.build import check_fresh  # the full compiler only on a cache miss

    check_fresh(root)
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    except OSError:
        pass  # a read-only checkout still works, just without the shortcut
