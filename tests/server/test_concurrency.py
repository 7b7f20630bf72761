"""One apply per owner at a time, never backwards: the apply lock held on the server and the
applied-commit guard, with real `chapctl apply` processes racing against a real server."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.server.conftest import Chapctl, all_deployments, normalized_state
from tests.server.repo import Repo, project

pytestmark = pytest.mark.server

THREE = [
    project("laos-malaria", "laos-dhis2", model_id=12, cron="0 6 * * 1"),
    project("laos-dengue", "laos-dhis2", model_id=7, cron="30 5 2 * *"),
    project("rwanda-malaria", "rwanda-dhis2", model_id=3, cron="0 4 * * 2", timezone="Africa/Kigali"),
]
TRIALS = 3
LOCK = "chapctl-lock--default"


def start(runner: Chapctl, repo: Repo, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "compiler", *args], cwd=repo.root,
                            env=runner.process_env(repo, env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, err_before: str = "") -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=180)
    return proc.returncode, out, err_before + err


def read_err_until(proc: subprocess.Popen, text: str) -> str:
    """What the process wrote to stderr up to the line holding `text` (no fixed wait: the line is the
    signal; the test's timeout bounds it)."""
    seen = ""
    while text not in seen:
        line = proc.stderr.readline()
        assert line, f"the process ended without saying {text!r}: {seen}"
        seen += line
    return seen


def writes_of_an_apply(runner: Chapctl, repo: Repo) -> int:
    proc = runner.cli(repo, "apply", "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["writes"]


# -- the lock ---------------------------------------------------------------------------------------
def test_two_applies_started_together_converge_to_one_apply(chapctl, make_repo, clean_server):
    repo = make_repo(THREE)
    chapctl.apply(repo)
    reference = normalized_state(clean_server)
    for trial in range(TRIALS):
        clean_server.wipe()
        first, second = start(chapctl, repo, "apply"), start(chapctl, repo, "apply")
        results = [finish(first), finish(second)]
        codes = sorted(code for code, _, _ in results)
        assert codes in ([0, 0], [0, 1]), results
        if codes == [0, 1]:  # only a lock timeout may fail one of them, and it says so
            (_, _, err), = [r for r in results if r[0] == 1]
            assert "holds the apply lock" in err, results
        assert "Traceback" not in "".join(out + err for _, out, err in results)
        assert normalized_state(clean_server) == reference, f"trial {trial}"
        assert writes_of_an_apply(chapctl, repo) == 0


def test_two_applies_pruning_the_same_projects_both_succeed(chapctl, make_repo, clean_server):
    repo = make_repo(THREE)
    for trial in range(TRIALS):
        clean_server.wipe()
        for doc in THREE:
            repo.write_project(doc, compile=False)
        repo.compile()
        chapctl.apply(repo)
        for name in ("laos-dengue", "rwanda-malaria"):
            (repo.root / "projects" / f"{name}.yaml").unlink()
        repo.compile()
        results = [finish(p) for p in (start(chapctl, repo, "apply"), start(chapctl, repo, "apply"))]
        assert [code for code, _, _ in results] == [0, 0], results
        assert "internal error" not in "".join(err for _, _, err in results)
        assert [d["name"] for d in all_deployments(clean_server)] == ["laos-malaria"]


def test_a_held_lock_makes_apply_wait_visibly_then_time_out(chapctl, make_repo, clean_server):
    repo = make_repo(THREE[:1])
    with clean_server.client() as c:
        held = c.post("/variables/", json={"name": LOCK, "value": {
            "holder": "ci@runner-7 (pid 4242)", "commit": "0123456789abcdef", "ttl_seconds": 600,
            "since": "2026-12-01T02:00:00+00:00", "token": "theirs"}}).json()
    code, out, err = finish(start(chapctl, repo, "apply", "--lock-timeout", "2"))
    assert code == 1
    assert "waiting for the apply lock of owner 'default': held by ci@runner-7 (pid 4242), commit 0123456789ab" in err
    assert "holds the apply lock" in err and "--lock-timeout 2s" in err and "nothing was written" not in out
    assert all_deployments(clean_server) == []

    # Released while we wait: apply goes ahead and says it waited.
    proc = start(chapctl, repo, "apply", "--lock-timeout", "60")
    waited = read_err_until(proc, "waiting for the apply lock")
    with clean_server.client() as c:
        c.delete(f"/variables/{held['id']}").raise_for_status()
    code, out, err = finish(proc, waited)
    assert code == 0, err
    assert "waiting for the apply lock" in err and "note: waited" in out
    assert [d["name"] for d in all_deployments(clean_server)] == ["laos-malaria"]
    with clean_server.client() as c:  # released on exit
        assert c.get(f"/variables/name/{LOCK}").status_code == 404


def test_a_dead_holders_lock_expires(chapctl, make_repo, clean_server):
    repo = make_repo(THREE[:1])
    with clean_server.client() as c:
        c.post("/variables/", json={"name": LOCK, "value": {
            "holder": "laptop@gone (pid 1)", "ttl_seconds": 1, "token": "dead"}}).raise_for_status()
    code, out, err = finish(start(chapctl, repo, "apply", "--lock-timeout", "10"))
    assert code == 0, err
    assert "waiting for the apply lock" in err  # it watched the lock go unrenewed for its ttl
    assert "took over an expired apply lock (laptop@gone (pid 1))" in out


def test_apply_killed_with_sigkill_leaves_a_lock_that_expires_and_converges(chapctl, make_repo, clean_server):
    repo = make_repo(THREE)
    chapctl.apply(repo)
    reference = normalized_state(clean_server)
    clean_server.wipe()
    env = dict(chapctl.env, CHAPCTL_LOCK_TTL="3")
    proc = start(chapctl, repo, "apply", env=env)
    deadline = time.monotonic() + 60
    with clean_server.client() as c:
        while c.get(f"/variables/name/{LOCK}").status_code != 200:  # it holds the lock: kill it now
            assert time.monotonic() < deadline and proc.poll() is None, "apply never took the lock"
            time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with clean_server.client() as c:
        assert c.get(f"/variables/name/{LOCK}").status_code == 200  # nobody released it
    code, out, err = finish(start(chapctl, repo, "apply", "--lock-timeout", "30", env=env))
    assert code == 0, err
    assert normalized_state(clean_server) == reference
    assert writes_of_an_apply(chapctl, repo) == 0


def test_sigterm_releases_the_lock(chapctl, make_repo, clean_server):
    repo = make_repo(THREE)
    with clean_server.client() as c:  # hold the lock so that apply sits waiting for it
        held = c.post("/variables/", json={"name": LOCK, "value": {"holder": "x", "ttl_seconds": 600}}).json()
    proc = start(chapctl, repo, "apply", "--lock-timeout", "60")
    waited = read_err_until(proc, "waiting for the apply lock")
    proc.send_signal(signal.SIGTERM)
    code, out, err = finish(proc, waited)
    assert code == 130 and "interrupted" in err and "Traceback" not in err
    with clean_server.client() as c:
        assert c.get(f"/variables/name/{LOCK}").json()["id"] == held["id"]  # theirs, untouched


# -- the applied-commit guard ---------------------------------------------------------------------
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.org", "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}


def git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, env={**os.environ, **GIT_ENV}, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def commit(repo: Repo, message: str) -> str:
    git(repo.root, "add", "-A")
    git(repo.root, "commit", "-qm", message)
    return git(repo.root, "rev-parse", "HEAD")


@pytest.fixture
def history(make_repo):
    """A git repository with three commits: c0 (one project), c1 (three), c2 (one edited, one
    removed, one added)."""
    repo = make_repo(THREE[:1])
    (repo.root / ".gitignore").write_text(".chapctl/\n.prefect-home/\n")
    git(repo.root, "init", "-q", "-b", "main")
    c0 = commit(repo, "c0")
    for doc in THREE[1:]:
        repo.write_project(doc, compile=False)
    repo.compile()
    c1 = commit(repo, "c1")
    repo.write_project(project("laos-malaria", "laos-dhis2", model_id=13, cron="0 8 * * 1"), compile=False)
    (repo.root / "projects" / "laos-dengue.yaml").unlink()
    repo.write_project(project("sl-malaria", "sl-dhis2", model_id=5, password_env="LAOS_DHIS2_PASSWORD"), compile=False)
    repo.compile()
    c2 = commit(repo, "c2")
    return repo, {"c0": c0, "c1": c1, "c2": c2}


def worktree(repo: Repo, rev: str, name: str) -> Repo:
    path = repo.root.parent / name
    git(repo.root, "worktree", "add", "-q", "--detach", str(path), rev)
    shutil.copytree(repo.root / ".chapctl", path / ".chapctl", dirs_exist_ok=True)  # the warm facts cache
    return Repo(path)


def test_applies_of_different_commits_never_leave_a_mixed_state(chapctl, history, clean_server):
    repo, commits = history
    old, base = worktree(repo, commits["c1"], "old"), worktree(repo, commits["c0"], "base")
    chapctl.apply(repo)
    newest = normalized_state(clean_server)
    for trial in range(TRIALS):
        clean_server.wipe()
        chapctl.apply(base)  # the server already holds projects, from an older commit
        older, newer = start(chapctl, old, "apply"), start(chapctl, repo, "apply")
        (old_code, _, old_err), (new_code, _, new_err) = finish(older), finish(newer)
        assert new_code == 0, new_err
        assert old_code in (0, 1), old_err
        if old_code == 1:  # it came second: refused, naming both commits
            assert commits["c2"][:12] in old_err and commits["c1"][:12] in old_err, old_err
        assert normalized_state(clean_server) == newest, f"trial {trial}: mixed state"


def test_an_older_checkout_is_refused_after_a_newer_apply(chapctl, history, clean_server):
    repo, commits = history
    old = worktree(repo, commits["c1"], "old")
    assert chapctl.cli(repo, "apply").returncode == 0
    before = normalized_state(clean_server)
    proc = chapctl.cli(old, "apply")
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert f"this checkout (HEAD {commits['c1'][:12]}) does not contain commit {commits['c2'][:12]}" in proc.stderr
    assert "--ignore-applied-commit" in proc.stderr
    assert normalized_state(clean_server) == before
    proc = chapctl.cli(old, "plan")  # plan says it too, without failing a pull request
    assert proc.returncode == 0 and "apply from this checkout would refuse" in proc.stdout
    proc = chapctl.cli(old, "apply", "--ignore-applied-commit")
    assert proc.returncode == 0, proc.stderr
    assert {d["name"] for d in all_deployments(clean_server)} == {p["name"] for p in THREE}


def test_shallow_checkout_and_rewritten_history(chapctl, history, clean_server, tmp_path):
    repo, commits = history
    assert chapctl.cli(repo, "apply").returncode == 0
    repo.write_project(project("laos-malaria", "laos-dhis2", model_id=14, cron="0 8 * * 1"))
    commits["c3"] = commit(repo, "c3")
    shallow = Repo(tmp_path / "shallow")
    git(tmp_path, "clone", "-q", "--depth", "1", f"file://{repo.root}", str(shallow.root))
    shutil.copytree(repo.root / ".chapctl", shallow.root / ".chapctl")
    proc = chapctl.cli(shallow, "apply")
    assert proc.returncode == 1
    assert f"commit {commits['c2'][:12]}" in proc.stderr and "shallow" in proc.stderr and "--unshallow" in proc.stderr
    git(shallow.root, "fetch", "-q", "--unshallow")
    proc = chapctl.cli(shallow, "apply")
    assert proc.returncode == 0, proc.stderr

    # A force-push rewrites c3 away; a fresh clone of the rewritten history does not know it.
    git(repo.root, "reset", "-q", "--hard", commits["c2"])
    repo.write_project(project("laos-malaria", "laos-dhis2", model_id=15, cron="0 8 * * 1"))
    commit(repo, "c3 rewritten")
    fresh = Repo(tmp_path / "fresh")
    git(tmp_path, "clone", "-q", "--no-local", f"file://{repo.root}", str(fresh.root))
    shutil.copytree(repo.root / ".chapctl", fresh.root / ".chapctl")
    proc = chapctl.cli(fresh, "apply")
    assert proc.returncode == 1 and f"commit {commits['c3'][:12]}" in proc.stderr
    assert "force-push" in proc.stderr and "--ignore-applied-commit" in proc.stderr
    assert chapctl.cli(fresh, "apply", "--ignore-applied-commit").returncode == 0
    assert chapctl.cli(fresh, "apply").returncode == 0  # its commit is the one recorded now


def test_outside_git_apply_says_the_guard_is_off(chapctl, make_repo):
    repo = make_repo(THREE[:1])
    proc = chapctl.cli(repo, "apply")
    assert proc.returncode == 0, proc.stderr
    assert "is not a git checkout: the applied-commit guard is off" in proc.stdout


def test_two_owners_applying_together_to_a_fresh_server_share_what_both_create(chapctl, make_repo, clean_server):
    """Two repositories, one work pool and one block type: each apply creates them unless the
    other did first; a create that meets the other's ("already exists") is fine."""
    from tests.server.repo import DEFAULTS

    laos = make_repo(THREE[:2], {**DEFAULTS, "owner": "laos-team"}, name="laos")
    rwanda = make_repo(THREE[2:], {**DEFAULTS, "owner": "rwanda-team"}, name="rwanda")
    for trial in range(TRIALS):
        clean_server.wipe(registrations=True)  # a fresh server: the block type and the flow are created too
        results = [finish(p) for p in (start(chapctl, laos, "apply"), start(chapctl, rwanda, "apply"))]
        assert [code for code, _, _ in results] == [0, 0], results
        assert {d["name"] for d in all_deployments(clean_server)} == {p["name"] for p in THREE}
        assert writes_of_an_apply(chapctl, laos) == 0 and writes_of_an_apply(chapctl, rwanda) == 0
