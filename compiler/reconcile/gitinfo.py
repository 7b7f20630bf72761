"""What git says about the checkout apply runs from: its HEAD, whether it is shallow, and whether
a commit is in its history. Used by apply's applied-commit guard; never raises for a missing git."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Checkout:
    commit: str | None  # HEAD, None outside git
    shallow: bool = False
    reason: str = ""  # why there is no commit


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None


def checkout(root: Path) -> Checkout:
    # One git call: shallow?, inside a work tree?, HEAD (printed as "HEAD" and exit 128 before
    # the first commit; nothing outside a repository).
    found = _git(root, "rev-parse", "--is-shallow-repository", "--is-inside-work-tree", "HEAD")
    if found is None:
        return Checkout(None, reason="git is not installed")
    lines = found.stdout.split()
    if found.returncode == 0 and len(lines) == 3:
        return Checkout(lines[2], shallow=lines[0] == "true")
    reason = "no commit yet" if len(lines) >= 2 and lines[1] == "true" else "not a git checkout"
    return Checkout(None, reason=reason)


def contains(root: Path, commit: str) -> bool | None:
    """True when `commit` is HEAD or an ancestor of it; False when it is known but not in HEAD's
    history; None when this checkout does not have that commit at all."""
    known = _git(root, "cat-file", "-e", f"{commit}^{{commit}}")
    if known is None or known.returncode != 0:
        return None
    result = _git(root, "merge-base", "--is-ancestor", commit, "HEAD")
    return result is not None and result.returncode == 0


def tree(root: Path) -> str | None:
    """The tree of HEAD (what its files are, whatever commit holds them), or None outside git."""
    found = _git(root, "rev-parse", "HEAD^{tree}")
    return found.stdout.strip() if found is not None and found.returncode == 0 and found.stdout.strip() else None
