"""Issue 25 #2: `chapctl init [DIR]` scaffolds a projects repository that validates and compiles at
once, never overwrites a file, and carries the same workflows and hooks chapctl ships (one template:
they cannot drift). Against a real server: tests/server/test_adopt.py."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest
import yaml as pyyaml
from click.testing import CliRunner

from compiler import __version__
from compiler.cli import app
from compiler.scaffold import InitOptions, derive_owner, init_repo
from compiler.scaffold.render import APPLY_WORKFLOW, HOOKS, PR_WORKFLOW, Scaffold, Workflows, scaffold_files, \
    workflow_files
from tests import golden
from tests.compiler.conftest import REPO
from tests.compiler.test_ci_recipe import assert_command_exists, chapctl_calls

SCAFFOLD = {"projects/_defaults.yaml", "projects/example-malaria.yaml", PR_WORKFLOW, APPLY_WORKFLOW,
            ".pre-commit-config.yaml", ".gitignore", "README.md"}
COMPILED = {"prefect.yaml", "blocks/example-dhis2.yaml", "schema/project.schema.json", "schema/defaults.schema.json",
            "SCHEDULES.md", "schedules.svg"}


def init(*args: str):
    return CliRunner().invoke(app, ["init", *args], catch_exceptions=False)


def files_of(root) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".chapctl" not in p.parts}


def test_this_repositorys_workflows_are_the_scaffolds_own_with_the_checkouts_parameters():
    """chapctl's .github/workflows are rendered from the templates `chapctl init` writes (regenerate
    them with CHAPCTL_REGEN_GOLDEN=1 after editing compiler/scaffold/templates/)."""
    for path, text in workflow_files(Workflows.checkout()).items():
        assert golden.expected(REPO / path, text) == text, path


def test_the_scaffolds_hooks_are_the_shipped_pre_commit_hooks():
    shipped = pyyaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    assert shipped == [dict(h) for h in HOOKS]
    config = pyyaml.safe_load(scaffold_files(Scaffold(owner="team"))[".pre-commit-config.yaml"])
    (local,) = config["repos"]
    assert local["repo"] == "local"
    assert [{k: v for k, v in h.items() if k != "additional_dependencies"} for h in local["hooks"]] == shipped
    assert {tuple(h["additional_dependencies"]) for h in local["hooks"]} == {(f"chapctl=={__version__}",)}


def test_init_writes_a_repository_that_validates_and_compiles(tmp_path):
    root = tmp_path / "ministry-projects"
    result = init(str(root), "--owner", "laos-team")
    assert result.exit_code == 0, result.output
    assert set(files_of(root)) == SCAFFOLD | COMPILED
    for path in SCAFFOLD:
        assert f"created {path}" in result.stdout
    assert "created projects/_defaults.yaml (owner laos-team, from --owner)" in result.stdout
    assert "compiled 1 project(s): 6 file(s) written" in result.stdout
    assert "EXAMPLE_DHIS2_PASSWORD" in result.stdout and f"pip install 'chapctl=={__version__}'" in result.stdout
    defaults = pyyaml.safe_load((root / "projects/_defaults.yaml").read_text())
    assert defaults == {"owner": "laos-team", "timezone": "UTC", "work_pool": "chap", "tags": ["chap"],
                        "source": {"package": "chapctl"}, "environments": {
                            "staging": {"api_url_env": "PREFECT_API_URL", "auth_string_env": "PREFECT_API_AUTH_STRING",
                                        "api_key_env": "PREFECT_API_KEY", "owner_suffix": "staging",
                                        "schedules": "paused"},
                            "production": {"api_url_env": "PRODUCTION_PREFECT_API_URL",
                                           "auth_string_env": "PRODUCTION_PREFECT_API_AUTH_STRING",
                                           "api_key_env": "PRODUCTION_PREFECT_API_KEY"}}}  # the workflows' two
    # the artifacts are fresh and valid, from anywhere (an installed tool needs nothing but the repository)
    for args in (["validate", "--strict"], ["compile", "--check"]):
        proc = CliRunner().invoke(app, [*args, "--root", str(root)], catch_exceptions=False)
        assert proc.exit_code == 0, proc.output
    prefect_yaml = (root / "prefect.yaml").read_text()
    assert f'flows.installed.require_chapctl:\n    version: "{__version__}"' in prefect_yaml
    # the example is paused until it points at a real DHIS2
    assert "active: false" in prefect_yaml


def test_re_running_init_never_overwrites_and_says_so(tmp_path):
    root = tmp_path / "repo"
    assert init(str(root), "--owner", "team").exit_code == 0
    (root / "README.md").write_text("# ours\n")
    example = (root / "projects/example-malaria.yaml").read_text()
    (root / "projects/kenya-malaria.yaml").write_text(example.replace("name: example-malaria", "name: kenya-malaria"))
    (root / "projects/example-malaria.yaml").unlink()  # the team replaced the example by its own project
    assert CliRunner().invoke(app, ["compile", "--root", str(root)]).exit_code == 0
    before = files_of(root)
    result = init(str(root), "--owner", "other")
    assert result.exit_code == 0, result.output
    assert files_of(root) == before
    for path in SCAFFOLD - {"projects/example-malaria.yaml"}:
        assert f"kept {path} (exists; never overwritten)" in result.stdout
    assert "skipped projects/example-malaria.yaml (projects/ already holds projects)" in result.stdout
    assert "compiled 1 project(s): 0 file(s) written" in result.stdout


def test_init_in_an_existing_repository_adds_what_is_missing_and_no_example(tmp_path):
    root = tmp_path / "existing"
    (root / "projects").mkdir(parents=True)
    (root / "projects" / "kenya-malaria.yaml").write_text(
        (REPO / "projects/laos-malaria.yaml").read_text().replace("name: laos-malaria", "name: kenya-malaria"))
    result = init(str(root), "--owner", "kenya-team", "-f", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    states = {f["path"]: f["state"] for f in doc["files"]}
    assert states["projects/example-malaria.yaml"] == "skipped" and not (root / "projects/example-malaria.yaml").exists()
    assert states["projects/_defaults.yaml"] == "created" and doc["owner"] == "kenya-team"
    assert doc["valid"] and doc["projects"] == 1 and doc["secrets_apply_needs"] == ["LAOS_DHIS2_PASSWORD"]


def test_init_over_invalid_projects_writes_its_files_reports_the_problems_and_exits_1(tmp_path):
    root = tmp_path / "broken"
    (root / "projects").mkdir(parents=True)
    (root / "projects" / "bad.yaml").write_text("name: bad\nmodel_id: x\n")
    result = init(str(root), "--owner", "team")
    assert result.exit_code == 1
    assert "projects/bad.yaml:" in result.stderr and "not compiled" in result.stdout
    assert (root / "projects/_defaults.yaml").exists() and not (root / "prefect.yaml").exists()


@pytest.mark.parametrize("owner", ["Bad Owner", "team--x", "x" * 33, ""])
def test_a_bad_owner_is_one_line_naming_the_rule(tmp_path, owner):
    result = init(str(tmp_path / "r"), "--owner", owner)
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert "single hyphens" in result.stderr and not (tmp_path / "r").exists()


def test_the_owner_comes_from_the_git_remote_else_the_directory(tmp_path):
    assert derive_owner(tmp_path / "Ministry of Health_Laos") == ("ministry-of-health-laos", "the directory's name")
    repo = tmp_path / "checkout"
    repo.mkdir()
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull}
    subprocess.run(["git", "init", "-q", str(repo)], check=True, env=env)
    subprocess.run(["git", "-C", str(repo), "remote", "add", "origin", "git@github.com:moh-rw/Chap.Projects.git"],
                   check=True, env=env)
    assert derive_owner(repo) == ("chap-projects", "the git remote origin")
    # a folder inside another repository is not that repository: its own name
    assert derive_owner(repo / "sub") == ("sub", "the directory's name")
    with pytest.raises(Exception) as err:
        derive_owner(tmp_path / "___")
    assert "--owner" in str(err.value)


@pytest.mark.parametrize("path", sorted([PR_WORKFLOW, APPLY_WORKFLOW]))
def test_the_scaffolds_workflows_are_valid_and_call_existing_commands(path):
    text = scaffold_files(Scaffold(owner="team"))[path]
    workflow = pyyaml.safe_load(text)
    assert workflow["env"]["CHAPCTL_PACKAGE"] == f"chapctl=={__version__}"
    runs = [step["run"] for job in workflow["jobs"].values() for step in job["steps"] if "run" in step]
    assert 'python -m pip install "$CHAPCTL_PACKAGE"' in runs
    calls = [c for run in runs for c in chapctl_calls(run)]
    assert calls and all(not re.search(r"\.venv|make ", run) for run in runs)
    for call in calls:
        assert_command_exists(call)


def test_the_package_requirement_is_a_documented_variable_quoted_wherever_it_lands(tmp_path):
    """`--package` (a wheel URL, a git requirement) reaches YAML, shell and Markdown safely."""
    package = "chapctl @ https://example.org/dist/chapctl-0.1.0-py3-none-any.whl#sha256=ab'c"
    files = scaffold_files(Scaffold(owner="team", package=package))
    for path in (PR_WORKFLOW, APPLY_WORKFLOW):
        assert pyyaml.safe_load(files[path])["env"]["CHAPCTL_PACKAGE"] == package
    hooks = pyyaml.safe_load(files[".pre-commit-config.yaml"])["repos"][0]["hooks"]
    assert {tuple(h["additional_dependencies"]) for h in hooks} == {(package,)}
    readme = files["README.md"]
    line = next(line for line in readme.splitlines() if line.startswith("python -m pip install "))
    import shlex

    assert shlex.split(line.rsplit("   # ", 1)[0])[-1] == package


def test_the_names_step_gives_plan_the_secrets_names_never_their_values(tmp_path):
    """The PR check's step that turns GitHub's `toJSON(secrets)` into CHAPCTL_SECRET_NAMES."""
    workflow = pyyaml.safe_load(scaffold_files(Scaffold(owner="team"))[PR_WORKFLOW])
    (step,) = [s for s in workflow["jobs"]["plan"]["steps"] if "CHAPCTL_SECRET_NAMES" in s.get("run", "")]
    assert step["env"] == {"SECRETS": "${{ toJSON(secrets) }}"}
    github_env = tmp_path / "github_env"
    secrets = {"KENYA_DHIS2_PASSWORD": "hunter2-canary", "GITHUB_TOKEN": "ghs_canary", "PREFECT_API_URL": "u"}
    proc = subprocess.run(["bash", "-e", "-c", step["run"]], capture_output=True, text=True,
                          env={**os.environ, "SECRETS": json.dumps(secrets), "GITHUB_ENV": str(github_env)})
    assert proc.returncode == 0, proc.stderr
    assert github_env.read_text() == "CHAPCTL_SECRET_NAMES=GITHUB_TOKEN,KENYA_DHIS2_PASSWORD,PREFECT_API_URL\n"
    assert "canary" not in proc.stdout + proc.stderr


@pytest.mark.parametrize("package", ["chapctl==0.1.0\nrm -rf /", "chapctl\x1b[2J==0.1.0", "  "])
def test_a_package_requirement_that_is_no_single_line_is_refused(tmp_path, package):
    result = init(str(tmp_path / "r"), "--owner", "team", "--package", package)
    assert result.exit_code == 1 and result.stderr.count("\n") == 1 and "--package" in result.stderr
    assert "\x1b" not in result.stderr and not (tmp_path / "r").exists()
