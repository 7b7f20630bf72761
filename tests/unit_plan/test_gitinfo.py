"""What apply's commit guard learns from git, in each state a checkout can be in."""

from __future__ import annotations

import subprocess

from compiler.reconcile.gitinfo import checkout, contains


def _git(cwd, *args):
    return subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True, text=True).stdout.strip()


def _commit(cwd, message):
    _git(cwd, "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-q", "--allow-empty", "-m", message)
    return _git(cwd, "rev-parse", "HEAD")


def test_outside_git(tmp_path):
    assert checkout(tmp_path).commit is None and checkout(tmp_path).reason == "not a git checkout"


def test_before_the_first_commit(tmp_path):
    _git(tmp_path, "init", "-q")
    assert checkout(tmp_path).commit is None and checkout(tmp_path).reason == "no commit yet"


def test_head_shallow_and_history(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    first = _commit(repo, "one")
    second = _commit(repo, "two")
    here = checkout(repo)
    assert (here.commit, here.shallow) == (second, False)
    assert contains(repo, first) is True
    shallow = tmp_path / "shallow"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{repo}", str(shallow)], check=True)
    there = checkout(shallow)
    assert (there.commit, there.shallow) == (second, True)
    assert contains(shallow, first) is None  # not in this checkout at all
