"""The fork path of compiler.compile.parallel (taken from 256 files up) gives exactly what the
sequential path gives: the same artifacts, byte for byte, and the same diagnostics."""

from __future__ import annotations

import os

from compiler.compile import build, parallel

PROJECT = """\
name: p-{i:03d}
credentials:
  block: dhis2-{block}
  base_url: https://dhis2-{block}.example.org
  username: chap-bot
  password_env: DHIS2_{block}_PASSWORD
model_id: {model}
schedule:
  cron: "{minute} {hour} * * {dow}"
  timezone: {zone}
"""
ZONES = ["UTC", "Africa/Kigali", "Asia/Vientiane", "Europe/Oslo", "America/Bogota"]


def many(count: int) -> dict[str, str]:
    files = {f"projects/p-{i:03d}.yaml": PROJECT.format(i=i, block=i % 7, model=i % 13 + 1, minute=i % 60,
                                                         hour=(i * 7) % 24, dow=i % 7, zone=ZONES[i % 5])
             for i in range(count)}
    files["projects/p-005.yaml"] = files["projects/p-005.yaml"].replace("model_id: 6", "model_id: zero")
    files["projects/p-290.yaml"] = files["projects/p-290.yaml"].replace('"50 14', '"61 14')  # a bad cron
    return files


def run(repo, monkeypatch, *, threshold: int):
    forks = []
    real_fork = os.fork

    def counting_fork():
        forks.append(1)
        return real_fork()

    monkeypatch.setattr(parallel, "FORK_THRESHOLD", threshold)
    monkeypatch.setattr(os, "fork", counting_fork)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    validated = build.validate(build.load_repo(repo))
    return validated, forks


def test_fork_path_equals_sequential_path_byte_for_byte(repo_factory, monkeypatch):
    files = many(300)
    repo = repo_factory(files)
    forked, forks = run(repo, monkeypatch, threshold=256)
    assert forks, "300 files must take the fork path"
    sequential, none = run(repo, monkeypatch, threshold=10**9)
    assert not none
    assert forked.diagnostics == sequential.diagnostics and len(forked.diagnostics) >= 2
    assert [v.project for v in forked.projects] == [v.project for v in sequential.projects]

    del files["projects/p-005.yaml"], files["projects/p-290.yaml"]  # now valid: compile both ways
    repo = repo_factory(files)
    monkeypatch.setattr(parallel, "FORK_THRESHOLD", 256)
    forked = build.compile_repo(repo).artifacts.files
    monkeypatch.setattr(parallel, "FORK_THRESHOLD", 10**9)
    sequential = build.compile_repo(repo).artifacts.files
    assert forked == sequential and len(forked["prefect.yaml"]) > 100_000
