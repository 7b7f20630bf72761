"""Issue 25 against a real Prefect server: a ministry adopts chapctl without forking it.

* #1/#2: the README's "Adopt it for your ministry" block, run as it is: the wheel built from a
  copy of this source tree, installed as a tool (`uv tool install`, its dependencies pinned by the
  lock through UV_CONSTRAINT), `chapctl init` writing a repository that holds no chapctl source,
  then validate, compile --check, plan and apply; a second apply writes nothing; the shipped
  pre-commit hooks run from that install.
* #6: the scaffolded pull-request check, its own steps run as GitHub's runner would, fails before
  a red apply: a secret apply will need that the repository lacks, and the issue's last finding
  (a `_defaults.yaml` reading the flows' directory from a variable the check does not have)."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml as pyyaml

from compiler import __version__
from tests.server.adopting import clean_environment, copy_source, lock_constraints, run_workflow
from tests.server.conftest import CANARY, all_deployments, updated_stamps
from tests.server.server_envs import REPO

pytestmark = pytest.mark.server

MARKER = "<!-- adopt: tests/server/test_adopt.py runs this block as it is, against a real Prefect server -->"
PASSWORD = CANARY + "-example"


def readme_block() -> str:
    text = (REPO / "README.md").read_text()
    assert MARKER in text, "README.md lost its adoption block"
    after = text.split(MARKER, 1)[1].lstrip("\n")
    assert after.startswith("```sh\n")
    return after[len("```sh\n"):].split("\n```", 1)[0] + "\n"


def test_the_readme_block_is_short_and_installs_from_the_wheel():
    block = readme_block()
    commands = [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]
    assert "uv build --wheel --out-dir dist" in commands and "uv tool install dist/chapctl-*.whl" in commands
    assert commands[-2:] == ["chapctl plan", "chapctl apply"] and len(commands) <= 15
    section = (REPO / "README.md").read_text().split("## Adopt it for your ministry", 1)[1].split("\n## ", 1)[0]
    assert len(section.splitlines()) < 60  # shorter than a page


def test_a_ministry_adopts_chapctl_from_its_wheel_as_the_readme_says(clean_server, tmp_path):
    copy_source(tmp_path / "chapctl")
    tools = tmp_path / "tools"
    env = clean_environment(tmp_path, **clean_server.client_env(), EXAMPLE_DHIS2_PASSWORD=PASSWORD,
                            UV_TOOL_DIR=str(tools), UV_TOOL_BIN_DIR=str(tmp_path / "bin"),
                            UV_CONSTRAINT=str(lock_constraints(tmp_path / "constraints.txt")))
    env["PATH"] = f"{tmp_path / 'bin'}:{env['PATH']}"
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", readme_block()], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=900)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert f"chapctl {__version__} (for Prefect 3.9.1)" in output
    assert "created projects/_defaults.yaml (owner laos-team, from --owner)" in output
    assert "1 project(s) valid" in output and "compiled artifacts are fresh (1 projects)" in output
    assert "+ deployment example-malaria: create" in output and "Plan: " in output
    assert PASSWORD not in output

    repo = tmp_path / "chap-projects"
    # a repository of projects, with no chapctl in it: the tool ran from its own environment
    assert not {"compiler", "flows", "templates"} & {p.name for p in repo.iterdir()}
    where = subprocess.run([str(tools / "chapctl" / "bin" / "python"), "-c", "import compiler, flows; "
                            "print(compiler.__file__); print(flows.__file__)"], cwd=repo, env=env, capture_output=True,
                           text=True)
    assert where.returncode == 0 and all(Path(line).is_relative_to(tools) for line in where.stdout.split()), where

    # what was applied runs the installed chapctl's flow at this release
    (deployment,) = all_deployments(clean_server)
    assert deployment["entrypoint"] == "flows.dhis2_chap_prediction.dhis2_chap_prediction"
    assert deployment["pull_steps"] == [{"flows.installed.require_chapctl": {"version": __version__}}]
    assert "chapctl-owner:laos-team" in deployment["tags"] and deployment["work_pool_name"] == "chap"

    # a second apply, from the installed tool, writes nothing
    before = updated_stamps(clean_server)
    again = subprocess.run(["chapctl", "apply"], cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "0 created, 0 updated, 0 deleted" in again.stdout and "0 writes" in again.stdout
    assert updated_stamps(clean_server) == before

    # the shipped pre-commit hooks, run as pre-commit runs them: their entry, from the install
    hooks = pyyaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    for hook in hooks:
        ran = subprocess.run(shlex.split(hook["entry"]), cwd=repo, env=env, capture_output=True, text=True)
        assert ran.returncode == 0, (hook["id"], ran.stdout + ran.stderr)
    example = repo / "projects" / "example-malaria.yaml"
    example.write_text(example.read_text().replace("model_id: 1 ", "model_id: 2 "))
    results = {h["id"]: subprocess.run(shlex.split(h["entry"]), cwd=repo, env=env, capture_output=True, text=True)
               for h in hooks}
    assert results["chapctl-validate"].returncode == 0
    stale = results["chapctl-compile-check"]
    assert stale.returncode == 1 and "prefect.yaml" in stale.stderr and "internal error" not in stale.stderr


# -- the pull-request check ------------------------------------------------------------------------
def _scaffolded(tmp_path: Path, env: dict[str, str]) -> Path:
    repo = tmp_path / "projects-repo"
    subprocess.run(["chapctl", "init", str(repo), "--owner", "kenya-team"], env=env, check=True, capture_output=True)
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "chapctl init"],
                 ["update-ref", "refs/remotes/origin/main", "main"], ["checkout", "-qb", "a-pull-request"]):
        subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)
    return repo


def _check(repo: Path, env: dict[str, str], secrets: dict[str, str], variables: dict[str, str] | None = None):
    """The scaffolded chapctl-pr.yml's steps (its install aside: chapctl is on PATH)."""
    results = run_workflow(repo / ".github/workflows/chapctl-pr.yml", "plan", repo, env, secrets, variables,
                           skip=("Install chapctl",))
    return results, (repo / "plan.md").read_text() if (repo / "plan.md").exists() else ""


def _checkout_env(tmp_path: Path) -> dict[str, str]:
    env = clean_environment(tmp_path)
    env["PATH"] = f"{REPO / '.venv' / 'bin'}:{env['PATH']}"  # this checkout's chapctl: the code under test
    env.pop("PREFECT_API_URL", None)
    return env


def test_the_pull_request_check_goes_green_when_apply_would_succeed(clean_server, tmp_path):
    env = _checkout_env(tmp_path)
    repo = _scaffolded(tmp_path, env)
    secrets = {"PREFECT_API_URL": clean_server.api_url, "EXAMPLE_DHIS2_PASSWORD": PASSWORD, "GITHUB_TOKEN": "ghs_x"}
    results, plan = _check(repo, env, secrets)
    assert [r["code"] for r in results] == [0] * len(results), results
    assert [r["name"] for r in results][-1] == "Plan against the Prefect server" and len(results) == 5
    # green although no step but the names' has the password: the names reached plan, the value did not
    assert re.search(r"\*\*\d+ to create", plan) and ":no_entry:" not in plan and ":key:" not in plan
    assert PASSWORD not in json.dumps(results) + plan


def test_the_pull_request_check_fails_when_apply_would_miss_a_secret(clean_server, tmp_path):
    env = _checkout_env(tmp_path)
    repo = _scaffolded(tmp_path, env)
    results, plan = _check(repo, env, {"PREFECT_API_URL": clean_server.api_url})
    assert results[-1]["name"] == "Plan against the Prefect server" and results[-1]["code"] == 1, results
    assert ":no_entry: **Apply would refuse:**" in plan and "apply will need EXAMPLE_DHIS2_PASSWORD" in plan
    # the repository may say otherwise
    defaults = repo / "projects" / "_defaults.yaml"
    defaults.write_text(defaults.read_text().replace("# ci:\n#   allow_unset:", "ci:\n  allow_unset:"))
    subprocess.run(["chapctl", "compile"], cwd=repo, env=env, check=True, capture_output=True)
    results, plan = _check(repo, env, {"PREFECT_API_URL": clean_server.api_url})
    assert results[-1]["code"] == 0, results
    assert ":key: **Variables apply will need (1), not set here:**" in plan and "allowed unset by" in plan
    assert all_deployments(clean_server) == []  # the check only reads


def test_the_issues_last_finding_fails_the_pull_request_check(clean_server, tmp_path):
    """Issue 25: "the shipped `_defaults.yaml` reads the flow directory from CHAPCTL_FLOWS_DIR; plan
    only warns when it is unset, apply refuses". The check has what apply has but the secrets' values,
    and the repository variable is not set: red, saying how to fix it."""
    env = _checkout_env(tmp_path)
    repo = _scaffolded(tmp_path, env)
    defaults = repo / "projects" / "_defaults.yaml"
    defaults.write_text(defaults.read_text().replace("source:\n  package: chapctl\n",
                                                     "source:\n  directory_env: CHAPCTL_FLOWS_DIR\n"))
    subprocess.run(["chapctl", "compile"], cwd=repo, env=env, check=True, capture_output=True)
    secrets = {"PREFECT_API_URL": clean_server.api_url, "EXAMPLE_DHIS2_PASSWORD": PASSWORD}
    results, plan = _check(repo, env, secrets)
    assert results[-1]["code"] == 1, results
    assert "CHAPCTL_FLOWS_DIR is not set" in plan and "source: {package: chapctl}" in plan
    # with the repository variable both workflows read, the check passes (and apply would)
    results, _ = _check(repo, env, secrets, {"CHAPCTL_FLOWS_DIR": "/srv/chap"})
    assert results[-1]["code"] == 0, results
