"""Helpers for compiler tests: build throwaway repositories (the templates ship in the package)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def make_repo(where: Path, files: dict[str, str | bytes] | None = None, from_dir: Path | None = None) -> Path:
    """A minimal chapctl repository: the given project files (and `from_dir`'s)."""
    (where / "projects").mkdir(parents=True, exist_ok=True)
    if from_dir is not None:
        shutil.copytree(from_dir, where, dirs_exist_ok=True)
    for name, content in (files or {}).items():
        target = where / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return where


@pytest.fixture
def repo_factory(tmp_path):
    counter = iter(range(1000))

    def factory(files=None, from_dir=None) -> Path:
        return make_repo(tmp_path / f"repo{next(counter)}", files, from_dir)

    return factory


VALID_PROJECT = """\
name: {name}
credentials:
  block: {block}
  base_url: https://dhis2.example.org
  username: chap-bot
  password_env: TEST_DHIS2_PASSWORD
model_id: 12
end_mode: offset
end_period_offset: 1
schedule:
  cron: "0 6 * * 1"
  timezone: Africa/Kigali
"""


def valid_project(name: str = "test-project", block: str = "test-dhis2") -> str:
    return VALID_PROJECT.format(name=name, block=block)
