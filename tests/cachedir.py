"""Where the suite keeps what it builds once: the environments of a second Prefect release and of
chap-core, Debian's nginx, Prefect's template databases.

They live outside the checkout, so that a fresh clone on the same machine (CI's, a second
worktree) reuses them as it reuses uv's own cache: `$CHAPCTL_TEST_CACHE`, else
`$XDG_CACHE_HOME/chapctl-tests`, else `~/.cache/chapctl-tests`. Every entry is keyed by what it was
built from (a pin file's hash, a release), so a changed pin builds a new one beside the old; each
builder publishes its entry whole (a marker written last, or a rename) under a lock, so two
suites building at once make one. `make distclean` removes it.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    explicit = os.environ.get("CHAPCTL_TEST_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "chapctl-tests"


CACHE_ROOT = cache_root()
