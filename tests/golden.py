"""Golden files, one rule for all of them: a test compares with the committed file and fails when
it is missing. `CHAPCTL_REGEN_GOLDEN=1` (the only regeneration switch) rewrites them instead; the
diff is then reviewed in git like any change."""

from __future__ import annotations

import os
from pathlib import Path

VARIABLE = "CHAPCTL_REGEN_GOLDEN"
REGEN = os.environ.get(VARIABLE) == "1"


def expected(path: Path, actual: str) -> str:
    """The committed text of `path` (after rewriting it with `actual` when regenerating)."""
    if REGEN:
        path.write_text(actual)
    assert path.exists(), f"{path} is missing: run the tests with {VARIABLE}=1 and review the new file"
    return path.read_text()
