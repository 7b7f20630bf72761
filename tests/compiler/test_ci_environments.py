"""The shipped workflows promote from staging to production and apply what was reviewed (issue 25
#4, #5): the pull-request check plans for staging and keeps the plan; apply on main applies that
very plan (found through the merged pull request, downloaded from its check's run); a release tag
is planned for production, approved, then that plan is applied. The environments they name are
declared in projects/_defaults.yaml and each job hands over the variables its environment reads.
The github-script steps run under node against a stand-in of GitHub's API."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
import yaml as pyyaml

from compiler.compile.load import load_repo
from compiler.compile.validate import validate
from tests.compiler.conftest import REPO

PR = REPO / ".github/workflows/chapctl-pr.yml"
APPLY = REPO / ".github/workflows/chapctl-apply.yml"


def workflow(path) -> dict:
    return pyyaml.safe_load(path.read_text())


def steps(path, job: str) -> list[dict]:
    return workflow(path)["jobs"][job]["steps"]


def step_running(path, job: str, text: str) -> dict:
    (step,) = [s for s in steps(path, job) if text in s.get("run", "")]
    return step


def test_every_job_names_a_declared_environment_and_hands_it_the_variables_it_reads():
    declared = validate(load_repo(REPO)).defaults.environments
    jobs = {("pr", name): job for name, job in workflow(PR)["jobs"].items()}
    jobs.update({("apply", name): job for name, job in workflow(APPLY)["jobs"].items()})
    named = {}
    for key, job in jobs.items():
        environment = job["env"]["CHAPCTL_ENV"]
        assert environment in declared, (key, environment)
        named[key] = environment
        spec = declared[environment]
        reads = [spec.api_url_env, spec.auth_string_env, spec.api_key_env]
        given = set(job["env"])
        for var in filter(None, reads):  # in the job's environment, or by name in CHAPCTL_SECRETS
            assert var in given or job["env"].get("CHAPCTL_SECRETS") == "${{ toJSON(secrets) }}", (key, var)
    assert named == {("pr", "plan"): "staging", ("apply", "apply"): "staging",
                     ("apply", "plan-production"): "production", ("apply", "apply-production"): "production"}
    # The pull request's code never sees a secret map (its plan reads the server only).
    assert "CHAPCTL_SECRETS" not in workflow(PR)["jobs"]["plan"]["env"]


def test_the_pull_request_check_saves_its_plan_and_keeps_it_for_main():
    job = steps(PR, "plan")
    (plan,) = [s for s in job if "chapctl plan" in s.get("run", "")]
    assert "--out plan.json" in plan["run"] and "--format markdown" in plan["run"] and plan["id"] == "plan"
    (upload,) = [s for s in job if str(s.get("uses", "")).startswith("actions/upload-artifact@v4")]
    assert upload["with"]["name"] == "chapctl-plan" and upload["with"]["path"] == "plan.json"
    assert upload["if"] == "steps.plan.outputs.code == '0' || steps.plan.outputs.code == '2'"
    assert job.index(plan) < job.index(upload)


def test_apply_on_main_applies_the_merged_pull_requests_plan_or_fails_with_a_re_plan_hint():
    flow = workflow(APPLY)
    assert flow["permissions"]["actions"] == "read" and flow[True]["push"]["branches"] == ["main"]
    job = steps(APPLY, "apply")
    finder = next(s for s in job if s.get("id") == "reviewed")
    download = next(s for s in job if str(s.get("uses", "")).startswith("actions/download-artifact@v4"))
    assert download["with"] == {"name": "chapctl-plan", "path": "reviewed", "run-id": "${{ steps.reviewed.outputs.run }}",
                                "github-token": "${{ github.token }}"}
    applying = step_running(APPLY, "apply", "chapctl apply reviewed/plan.json")
    assert job.index(finder) < job.index(download) < job.index(applying)
    fresh = step_running(APPLY, "apply", "chapctl apply plan.json")
    assert fresh["if"] == "${{ inputs.fresh_plan }}" and "chapctl plan --format markdown --out plan.json" in fresh["run"]
    assert flow[True]["workflow_dispatch"]["inputs"]["fresh_plan"]["type"] == "boolean"
    none = next(s for s in job if s.get("name") == "No reviewed plan")
    assert "fresh_plan" in none["run"] and "exit 1" in none["run"]


@pytest.mark.parametrize("code", [0, 1])
def test_a_refused_reviewed_plan_fails_the_job_with_the_hint(tmp_path, code):
    stub = tmp_path / ".venv" / "bin" / "chapctl"
    stub.parent.mkdir(parents=True)
    stub.write_text(f"#!/bin/sh\necho '### chapctl apply'\nexit {code}\n")
    stub.chmod(0o755)
    summary = tmp_path / "summary.md"
    script = step_running(APPLY, "apply", "chapctl apply reviewed/plan.json")["run"].replace(
        "${{ steps.reviewed.outputs.pr }}", "12")
    step = subprocess.run(["bash", "-e", "-c", script], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "GITHUB_STEP_SUMMARY": str(summary)})
    assert step.returncode == code, step.stderr
    text = summary.read_text()
    assert text.startswith("Applying the plan reviewed in pull request #12.\n### chapctl apply\n")
    assert ("run this workflow by hand with fresh_plan" in text) is bool(code)


def test_a_release_tag_is_planned_then_applied_after_approval():
    flow = workflow(APPLY)
    assert flow[True]["push"]["tags"] == ["v*"]
    plan, apply = flow["jobs"]["plan-production"], flow["jobs"]["apply-production"]
    assert plan["if"] == apply.get("if", plan["if"]) == "github.ref_type == 'tag'" and "environment" not in plan
    assert apply["needs"] == "plan-production" and apply["environment"] == "production"
    assert "chapctl plan --format markdown --out plan.json" in step_running(APPLY, "plan-production", "chapctl plan")["run"]
    upload = next(s for s in plan["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact@v4"))
    download = next(s for s in apply["steps"] if str(s.get("uses", "")).startswith("actions/download-artifact@v4"))
    assert upload["with"]["name"] == download["with"]["name"] == "chapctl-production-plan"
    assert "chapctl apply plan.json" in step_running(APPLY, "apply-production", "chapctl apply")["run"]
    assert flow["jobs"]["apply"]["if"] == "github.ref_type == 'branch'"


FINDER_HARNESS = r"""
const fs = require("fs");
const [script, scenario] = process.argv.slice(2);
const given = JSON.parse(scenario);
const outputs = {};
const asked = [];
const github = { rest: {
  repos: { listPullRequestsAssociatedWithCommit: async (a) => { asked.push(["pulls", a]); return { data: given.pulls }; } },
  actions: { listWorkflowRuns: async (a) => { asked.push(["runs", a]); return { data: { workflow_runs: given.runs } }; } },
} };
const core = { setOutput: (k, v) => { outputs[k] = v; } };
const run = new Function("require", "github", "context", "core",
                         "return (async () => {\n" + fs.readFileSync(script, "utf8") + "\n})();");
run(require, github, { repo: { owner: "o", repo: "r" }, sha: "abc123def4567890" }, core)
  .then(() => console.log(JSON.stringify({ outputs, asked })));
"""
MERGED = {"number": 12, "merged_at": "2026-05-01T10:00:00Z", "merge_commit_sha": "abc123def4567890",
          "head": {"sha": "feed"}}


@pytest.mark.parametrize(("pulls", "runs", "expected"), [
    ([MERGED], [{"id": 99}], {"pr": "12", "run": "99", "why": ""}),
    ([MERGED], [], {"pr": "12", "run": "", "why": "pull request #12 has no successful chapctl plan check of its last commit"}),
    ([{**MERGED, "merge_commit_sha": "other"}], [{"id": 99}],
     {"run": "", "why": "commit abc123def456 is not the merge of a pull request"}),
    ([], [], {"run": "", "why": "commit abc123def456 is not the merge of a pull request"}),
], ids=["merged-with-a-plan", "no-successful-check", "another-commit", "direct-push"])
def test_the_finder_script_finds_the_merged_pull_requests_last_successful_check(tmp_path, pulls, runs, expected):
    node = shutil.which("node")
    assert node, "node is needed to run the workflow's github-script step"
    finder = next(s for s in steps(APPLY, "apply") if s.get("id") == "reviewed")
    (tmp_path / "script.js").write_text(finder["with"]["script"])
    (tmp_path / "harness.js").write_text(FINDER_HARNESS)
    proc = subprocess.run([node, str(tmp_path / "harness.js"), str(tmp_path / "script.js"),
                           json.dumps({"pulls": pulls, "runs": runs})], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["outputs"] == expected
    if expected.get("pr"):
        (_, query) = doc["asked"][1]
        assert query == {"owner": "o", "repo": "r", "workflow_id": "chapctl-pr.yml", "event": "pull_request",
                         "head_sha": "feed", "status": "success", "per_page": 1}


def test_without_a_reviewed_plan_main_fails_and_fresh_plan_applies_a_plan_made_now(tmp_path):
    """The staging job's steps run in order (tests/compiler/test_ci_recipe.py's runner): no plan
    found for the merge → the job fails before any apply; run by hand with fresh_plan → plan --out,
    then apply of that file."""
    from tests.compiler.test_ci_recipe import run_apply_job

    calls, _, failed = run_apply_job(tmp_path / "none", preflight_code=0, reviewed_run="")
    assert failed and calls == ["preflight --format markdown"]
    calls, summary, failed = run_apply_job(tmp_path / "fresh", preflight_code=0, reviewed_run="", fresh_plan=True)
    assert not failed and [c.split()[:2] for c in calls] == [["preflight", "--format"], ["plan", "--format"],
                                                             ["apply", "plan.json"]]
    assert "--out plan.json" in calls[1] and "### chapctl apply" in summary
    calls, _, failed = run_apply_job(tmp_path / "refused", preflight_code=0, apply_code=1)
    assert failed and calls[-1].startswith("apply reviewed/plan.json")


def test_chapctl_init_declares_the_environments_its_workflows_name():
    """A repository `chapctl init` writes carries the same workflows: its _defaults.yaml declares
    the environments they name, each with the variables they hand over; a long owner keeps within
    the owner's length."""
    from compiler.compile.models import Defaults
    from compiler.scaffold.render import APPLY_WORKFLOW, PR_WORKFLOW, Scaffold, scaffold_files, staging_suffix

    files = scaffold_files(Scaffold(owner="laos-team"))
    declared = Defaults.model_validate(pyyaml.safe_load(files["projects/_defaults.yaml"])).environments
    for path in (PR_WORKFLOW, APPLY_WORKFLOW):
        for name, job in pyyaml.safe_load(files[path])["jobs"].items():
            spec = declared[job["env"]["CHAPCTL_ENV"]]
            assert spec.api_url_env in job["env"] or "CHAPCTL_SECRETS" in job["env"], (path, name)
    assert declared["staging"].owner_suffix == "staging" and declared["staging"].schedules == "paused"
    assert staging_suffix("a" * 24) == "staging" and staging_suffix("a" * 25) == "stg"  # 32 characters at most
    assert staging_suffix("a" * 28) == "stg" and staging_suffix("a" * 29) is None
