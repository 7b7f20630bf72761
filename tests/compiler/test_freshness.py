"""plan/apply's freshness check: the stat shortcut never hides an edit, and an unchanged repository
is not recompiled."""

from __future__ import annotations

import os
import time

import pytest

from compiler.compile.build import compile_repo, write
from compiler.errors import StaleArtifacts
from compiler.reconcile import freshness
from tests.compiler.conftest import valid_project


@pytest.fixture
def compiled_repo(repo_factory):
    root = repo_factory({"projects/laos-malaria.yaml": valid_project("laos-malaria", "laos-dhis2")})
    write(root, compile_repo(root).artifacts)
    return root


@pytest.fixture
def compiles(monkeypatch):
    import compiler.compile.build as build

    calls = []
    real = build.check_fresh
    monkeypatch.setattr(build, "check_fresh", lambda root: calls.append(root) or real(root))
    return calls


def _settle(root, seconds=10):
    """Backdate every file as if it had been written a while ago (no longer "racy")."""
    past = time.time() - seconds
    for f in root.rglob("*"):
        if f.is_file():
            os.utime(f, (past, past))


def test_unchanged_repository_is_compiled_once(compiled_repo, compiles):
    _settle(compiled_repo)
    freshness.ensure_fresh(compiled_repo)
    freshness.ensure_fresh(compiled_repo)
    assert len(compiles) == 1
    assert list((compiled_repo / ".chapctl" / "cache").glob("fresh-stat-*"))


def test_touched_but_unchanged_file_is_hashed_not_recompiled(compiled_repo, compiles):
    _settle(compiled_repo)
    freshness.ensure_fresh(compiled_repo)
    os.utime(compiled_repo / "projects" / "laos-malaria.yaml", (time.time() - 5, time.time() - 5))
    freshness.ensure_fresh(compiled_repo)
    assert len(compiles) == 1


def test_same_size_same_mtime_edit_is_still_caught(compiled_repo):
    """The trap of any stat cache: an edit that keeps the size within one mtime tick."""
    project = compiled_repo / "projects" / "laos-malaria.yaml"
    freshness.ensure_fresh(compiled_repo)  # files just written: racy, so no stat marker is kept
    assert not list((compiled_repo / ".chapctl" / "cache").glob("fresh-stat-*"))
    before = project.stat()
    project.write_text(project.read_text().replace("model_id: 12", "model_id: 13"))
    os.utime(project, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert project.stat().st_size == before.st_size
    with pytest.raises(StaleArtifacts):
        freshness.ensure_fresh(compiled_repo)


def test_edit_after_the_shortcut_is_caught(compiled_repo):
    _settle(compiled_repo)
    freshness.ensure_fresh(compiled_repo)
    project = compiled_repo / "projects" / "laos-malaria.yaml"
    project.write_text(project.read_text().replace("model_id: 12", "model_id: 13"))
    with pytest.raises(StaleArtifacts):
        freshness.ensure_fresh(compiled_repo)
