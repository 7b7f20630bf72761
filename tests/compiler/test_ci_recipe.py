"""The CI recipe shipped for users: workflow and pre-commit files are valid and call real commands."""

from __future__ import annotations

import re
import shlex

import pytest
import yaml as pyyaml
from click.testing import CliRunner

from compiler.cli import app
from tests.compiler.conftest import REPO

WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))


def chapctl_calls(text: str) -> list[list[str]]:
    calls = []
    for match in re.finditer(r"(?:\.venv/bin/)?chapctl ([^\n|>&;]+)", text):
        calls.append(shlex.split(match.group(1).replace('"$GITHUB_STEP_SUMMARY"', "")))
    return calls


def assert_command_exists(args: list[str]) -> None:
    verb, options = args[0], [a for a in args[1:] if a.startswith("--")]
    result = CliRunner().invoke(app, [verb, "--help"], catch_exceptions=False, env={"COLUMNS": "200"})
    assert result.exit_code == 0, f"chapctl {verb} does not exist"
    for option in options:
        assert option.split("=")[0] in result.stdout, f"chapctl {verb} has no option {option}"


def test_workflows_exist_for_pull_requests_and_main():
    names = {p.name for p in WORKFLOWS}
    assert names == {"chapctl-pr.yml", "chapctl-apply.yml"}


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_is_valid_yaml_and_calls_existing_commands(path):
    workflow = pyyaml.safe_load(path.read_text())
    assert workflow["jobs"] and True in workflow  # PyYAML reads the `on:` key as True
    runs = [step["run"] for job in workflow["jobs"].values() for step in job["steps"] if "run" in step]
    calls = [c for run in runs for c in chapctl_calls(run)]
    assert calls, "the workflow runs no chapctl command"
    for call in calls:
        assert_command_exists(call)
    for run in runs:
        for target in re.findall(r"\bmake (\w[\w-]*)", run):
            assert re.search(rf"^{target}:", (REPO / "Makefile").read_text(), re.M), f"no make target {target}"


def test_pull_request_workflow_checks_before_planning():
    text = (REPO / ".github/workflows/chapctl-pr.yml").read_text()
    order = [text.index(s) for s in ("chapctl validate", "chapctl compile --check", "chapctl plan --markdown")]
    assert order == sorted(order)


def test_pre_commit_hooks_call_existing_commands():
    hooks = pyyaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    assert {h["id"] for h in hooks} == {"chapctl-validate", "chapctl-compile-check"}
    for hook in hooks:
        args = shlex.split(hook["entry"])
        assert args[0] == "chapctl"
        assert_command_exists(args[1:])
        assert hook["pass_filenames"] is False and re.compile(hook["files"])


def test_apply_workflow_fetches_the_history_the_commit_guard_needs():
    workflow = pyyaml.safe_load((REPO / ".github/workflows/chapctl-apply.yml").read_text())
    steps = [s for job in workflow["jobs"].values() for s in job["steps"]]
    checkout = next(s for s in steps if str(s.get("uses", "")).startswith("actions/checkout"))
    assert checkout["with"]["fetch-depth"] == 0


def test_apply_workflow_needs_no_edit_for_a_new_country():
    text = (REPO / ".github/workflows/chapctl-apply.yml").read_text()
    workflow = pyyaml.safe_load(text)
    env = workflow["jobs"]["apply"]["env"]
    assert env["CHAPCTL_SECRETS"] == "${{ toJSON(secrets) }}"
    assert not [k for k in env if k.endswith("_PASSWORD")], "per-country secrets listed by hand"


def test_pull_request_workflow_posts_one_comment_updated_in_place_and_no_password():
    workflow = pyyaml.safe_load((REPO / ".github/workflows/chapctl-pr.yml").read_text())
    assert workflow["permissions"]["pull-requests"] == "write"
    job = workflow["jobs"]["plan"]
    assert not [k for k in job["env"] if k.endswith("_PASSWORD") or k == "CHAPCTL_SECRETS"]
    poster = next(s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/github-script"))
    script = poster["with"]["script"]
    assert "updateComment" in script and "createComment" in script and "<!-- chapctl-plan -->" in script
    assert "diff.md" in script and "plan.md" in script and poster["if"] == "always()"
