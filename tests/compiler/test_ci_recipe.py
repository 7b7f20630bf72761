"""The CI recipe shipped for users: workflow and pre-commit files are valid and call real commands."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

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
    order = [text.index(s) for s in ("chapctl validate", "chapctl compile --check", "chapctl plan --format markdown")]
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


def test_the_check_and_apply_see_the_same_variables_but_secrets():
    """Issue 21 #15: a fork's check stayed green while apply on main refused for CHAPCTL_FLOWS_DIR.
    Plan refuses without a variable the pull steps read (tests/unit_plan/test_markdown.py); the
    two workflows must then give it the same, and the check everything apply gets but secrets."""
    def env(name, job):
        return pyyaml.safe_load((REPO / ".github/workflows" / name).read_text())["jobs"][job]["env"]

    pr, apply = env("chapctl-pr.yml", "plan"), env("chapctl-apply.yml", "apply")
    assert {k: v for k, v in apply.items() if k != "CHAPCTL_SECRETS"} == pr
    assert pr["CHAPCTL_FLOWS_DIR"] == "${{ vars.CHAPCTL_FLOWS_DIR }}"


def test_pull_request_workflow_posts_one_comment_updated_in_place_and_no_password():
    workflow = pyyaml.safe_load((REPO / ".github/workflows/chapctl-pr.yml").read_text())
    assert workflow["permissions"]["pull-requests"] == "write"
    job = workflow["jobs"]["plan"]
    assert not [k for k in job["env"] if k.endswith("_PASSWORD") or k == "CHAPCTL_SECRETS"]
    poster = next(s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/github-script"))
    script = poster["with"]["script"]
    assert "updateComment" in script and "createComment" in script and "<!-- chapctl-plan -->" in script
    assert "diff.md" in script and "plan.md" in script and poster["if"] == "always()"


NODE_HARNESS = r"""
const fs = require("fs");
const [script, workdir, existing] = process.argv.slice(2);
process.chdir(workdir);
process.env.GITHUB_STEP_SUMMARY = workdir + "/summary.md";
const run = new Function("require", "github", "context", "process",
                         "return (async () => {\n" + fs.readFileSync(script, "utf8") + "\n})();");
const calls = [];
const github = {
  paginate: async () => JSON.parse(existing),
  rest: { issues: { listComments: null,
    updateComment: async (a) => calls.push({ op: "update", ...a }),
    createComment: async (a) => calls.push({ op: "create", ...a }) } },
};
run(require, github, { repo: { owner: "o", repo: "r" }, issue: { number: 5 } }, process)
  .then(() => console.log(JSON.stringify(calls)));
"""


@pytest.mark.parametrize("existing", [[], [{"id": 7, "body": "<!-- chapctl-plan -->\nold"}, {"id": 8, "body": "hi"}]])
def test_the_comment_script_creates_one_comment_then_updates_it(existing, tmp_path):
    import json
    import shutil
    import subprocess

    node = shutil.which("node")
    assert node, "node is needed to run the workflow's github-script step"
    workflow = pyyaml.safe_load((REPO / ".github/workflows/chapctl-pr.yml").read_text())
    step = next(s for s in workflow["jobs"]["plan"]["steps"] if "github-script" in str(s.get("uses")))
    (tmp_path / "script.js").write_text(step["with"]["script"])
    (tmp_path / "harness.js").write_text(NODE_HARNESS)
    (tmp_path / "diff.md").write_text("### chapctl diff: projects `abc` → working tree\n")
    (tmp_path / "plan.md").write_text("### chapctl plan\n")
    (tmp_path / "SCHEDULES.md").write_text((REPO / "SCHEDULES.md").read_text())
    proc = subprocess.run([node, str(tmp_path / "harness.js"), str(tmp_path / "script.js"), str(tmp_path),
                           json.dumps(existing)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    (call,) = json.loads(proc.stdout)
    assert call["op"] == ("update" if existing else "create")
    if existing:
        assert call["comment_id"] == 7
    body = call["body"]
    assert body.startswith("<!-- chapctl-plan -->\n### chapctl diff") and "### chapctl plan" in body
    assert "<summary>When every project runs" in body and "| laos-malaria |" in body
    assert "schedules.svg" not in body  # an image a comment cannot show
    assert (tmp_path / "summary.md").read_text() == body


def plan_step() -> str:
    workflow = pyyaml.safe_load((REPO / ".github/workflows/chapctl-pr.yml").read_text())
    (step,) = [s for s in workflow["jobs"]["plan"]["steps"] if "chapctl plan" in s.get("run", "")]
    return step["run"]


@pytest.mark.parametrize("chapctl, passes", [
    ("exit 0", True), ("exit 2", True), ("exit 1", False), ("exit 3", False), ("exit 130", False),
    (f'exec {sys.executable} -m compiler "$@" --bogus', False),  # the real CLI's usage error
], ids=["no-changes", "changes", "error", "other", "interrupted", "usage-error"])
def test_the_pull_request_check_passes_on_no_changes_and_changes_only(tmp_path, chapctl, passes):
    """Issue 23 #4: the step failed only on exit 1, so `chapctl plan --bogus` (then exit 2, the
    code of changes) passed the pull-request check."""
    stub = tmp_path / ".venv" / "bin" / "chapctl"
    stub.parent.mkdir(parents=True)
    stub.write_text(f"#!/bin/sh\n{chapctl}\n")
    stub.chmod(0o755)
    output = tmp_path / "github_output"
    step = subprocess.run(["bash", "-e", "-c", plan_step()], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "GITHUB_OUTPUT": str(output), "PYTHONPATH": str(REPO)})
    assert (step.returncode == 0) is passes, (step.returncode, step.stderr)
    assert output.read_text().startswith("code=")


def run_apply_job(tmp_path, preflight_code: int, apply_code: int = 0, reviewed_run: str = "99",
                  fresh_plan: bool = False) -> tuple[list[str], str, bool]:
    """The apply job's run steps in order, as GitHub runs them (`bash -e`), with a stub chapctl that logs
    its calls: (the calls, the job summary, whether the job failed). `if:` conditions on the
    preflight step's output, on the reviewed plan found (`reviewed_run`: the run id the finder
    script gave, "" for none) and on the `fresh_plan` input are evaluated as GitHub would."""
    workflow = pyyaml.safe_load((REPO / ".github/workflows/chapctl-apply.yml").read_text())
    stub = tmp_path / ".venv" / "bin" / "chapctl"
    stub.parent.mkdir(parents=True)
    stub.write_text(f'#!/bin/sh\necho "$*" >> {tmp_path}/calls\n'
                    f'case "$1" in preflight) echo "### chapctl preflight"; exit {preflight_code};; '
                    f'apply) echo "### chapctl apply"; exit {apply_code};; esac\n')
    stub.chmod(0o755)
    summary, outputs = tmp_path / "summary.md", {"reviewed": {"run": reviewed_run, "pr": "12", "why": "none"}}
    (tmp_path / "reviewed").mkdir()
    found = bool(reviewed_run) and not fresh_plan
    conditions = {"${{ !inputs.fresh_plan }}": not fresh_plan, "${{ inputs.fresh_plan }}": fresh_plan,
                  "${{ !inputs.fresh_plan && steps.reviewed.outputs.run != '' }}": found,
                  "${{ !inputs.fresh_plan && steps.reviewed.outputs.run == '' }}": not fresh_plan and not reviewed_run}
    failed = False
    for step in workflow["jobs"]["apply"]["steps"]:
        if "run" not in step or "make setup" in step["run"] or "compile --check" in step["run"]:
            continue
        condition = step.get("if")
        if condition == "steps.preflight.outputs.code != '0'":
            if outputs.get("preflight", {}).get("code") == "0":
                continue
        elif condition:
            assert condition in conditions, condition
            if not conditions[condition]:
                continue
        output = tmp_path / "github_output"
        output.write_text("")
        script = step["run"].replace("${{ steps.preflight.outputs.code }}", outputs.get("preflight", {}).get("code", ""))
        for key, value in outputs["reviewed"].items():
            script = script.replace("${{ steps.reviewed.outputs.%s }}" % key, value)
        proc = subprocess.run(["bash", "-e", "-c", script], cwd=tmp_path, capture_output=True, text=True,
                              env={**os.environ, "GITHUB_OUTPUT": str(output), "GITHUB_STEP_SUMMARY": str(summary)})
        if step.get("id"):
            outputs[step["id"]] = dict(line.split("=", 1) for line in output.read_text().splitlines() if "=" in line)
        if proc.returncode != 0:
            failed = True
            if not condition:  # GitHub stops at a failed step (the verdict step is the last one)
                break
    return (tmp_path / "calls").read_text().splitlines(), summary.read_text(), failed


@pytest.mark.parametrize("code, fails", [(0, False), (3, True), (1, True)], ids=["ok", "would-fail", "cannot-run"])
def test_the_apply_workflow_runs_preflight_first_then_applies_whatever_it_found(tmp_path, code, fails):
    """Issue 24: preflight on main before apply, its Markdown in the job summary; apply still runs,
    and the job fails afterwards when a project would fail."""
    calls, summary, failed = run_apply_job(tmp_path, preflight_code=code)
    assert [call.split()[0] for call in calls] == ["preflight", "apply"]
    assert calls[0] == "preflight --format markdown" and calls[1].startswith("apply reviewed/plan.json")
    assert summary.index("### chapctl preflight") < summary.index("### chapctl apply")
    assert failed is fails
