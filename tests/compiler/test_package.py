"""Issue 25 #1 and #3: chapctl is an installable tool. Its version and the Prefect release it is
built for are constants held equal to pyproject.toml and uv.lock; what compile needs ships in the
package; `source: {package: chapctl}` runs the installed chapctl's flow, at the release the
repository was compiled with, and says so in every deployment (plan shows an upgrade)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from compiler import __version__
from compiler.constants import PREFECT_RELEASE
from tests.compiler.conftest import REPO, valid_project

PACKAGE_DEFAULTS = "owner: ministry\nsource:\n  package: chapctl\n"


def test_version_and_prefect_release_agree_with_pyproject_and_the_lock():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert pyproject["project"]["version"] == __version__
    assert f"prefect=={PREFECT_RELEASE}" in pyproject["project"]["dependencies"]
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    locked = {p["name"]: p.get("version") for p in lock["package"]}
    assert locked["prefect"] == PREFECT_RELEASE
    assert locked["chapctl"] == __version__


def test_the_templates_ship_in_the_package_and_the_wheel_takes_the_packages_whole():
    """The wheel is the two packages as they are on disk (hatchling takes every file of them): the
    templates compile needs are files of `compiler/`, not of the repository."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == ["compiler", "flows"]
    from compiler.compile.render import TEMPLATES

    assert TEMPLATES == REPO / "compiler" / "templates"
    assert {p.name for p in TEMPLATES.glob("*.j2")} == {
        "prefect.yaml.j2", "block.yaml.j2", "notification.yaml.j2", "SCHEDULES.md.j2", "schedules.svg.j2"}
    assert not (REPO / "templates").exists()


def test_compile_and_diff_need_nothing_but_projects(tmp_path):
    """The issue's first finding: an installed chapctl's compile ended in TemplateNotFound in a
    repository holding only projects/. Run from elsewhere, as an installed tool is."""
    repo = tmp_path / "repo"
    (repo / "projects").mkdir(parents=True)
    (repo / "projects" / "_defaults.yaml").write_text(PACKAGE_DEFAULTS)
    (repo / "projects" / "demo-malaria.yaml").write_text(valid_project("demo-malaria"))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for args in (["validate"], ["compile"], ["compile", "--check"]):
        proc = subprocess.run([sys.executable, "-m", "compiler", *args, "--root", str(repo)], cwd=tmp_path,
                              env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert {p.name for p in repo.iterdir()} == {"projects", "prefect.yaml", "blocks", "schema", "SCHEDULES.md",
                                                 "schedules.svg", ".chapctl"}


def test_a_package_source_runs_the_installed_flow_and_names_its_release(tmp_path):
    from compiler.compile.artifact import read_prefect_yaml
    from compiler.compile.build import compile_repo
    from compiler.compile.load import parse_artifact

    repo = tmp_path / "repo"
    (repo / "projects").mkdir(parents=True)
    (repo / "projects" / "_defaults.yaml").write_text(PACKAGE_DEFAULTS)
    (repo / "projects" / "demo-malaria.yaml").write_text(valid_project("demo-malaria"))
    text = compile_repo(repo).artifacts.files["prefect.yaml"]
    doc = read_prefect_yaml(parse_artifact(text, "prefect.yaml"))
    assert [step.to_json() for step in doc.pull] == [{"flows.installed.require_chapctl": {"version": __version__}}]
    assert {d.entrypoint for d in doc.deployments} == {"flows.dhis2_chap_prediction.dhis2_chap_prediction"}
    # the module Prefect imports after the pull step is the flow the file entrypoint names
    import importlib

    module, _, name = doc.deployments[0].entrypoint.rpartition(".")
    assert getattr(importlib.import_module(module), name).name == "dhis2-chap-prediction"


def test_the_pull_step_passes_for_this_release_and_refuses_another_with_the_fix():
    from flows.installed import WrongChapctl, require_chapctl

    ran = require_chapctl(__version__)
    assert ran == {"chapctl_version": __version__, "flows_package": str(REPO / "flows")}
    with pytest.raises(WrongChapctl) as err:
        require_chapctl("9.9.9")
    message = str(err.value)
    assert f"runs the flow of chapctl 9.9.9" in message and f"this worker has chapctl {__version__}" in message
    assert "pip install 'chapctl==9.9.9'" in message


def test_the_pull_step_refuses_a_flows_folder_that_shadows_the_installed_package(tmp_path):
    """A worker started in a checkout holding another `flows/` would import that one: refused."""
    shadow = tmp_path / "flows"
    shadow.mkdir()
    (shadow / "__init__.py").write_text("")
    shutil.copy(REPO / "flows" / "installed.py", shadow / "installed.py")
    code = ("import sys; sys.path.insert(0, sys.argv[1])\n"
            "from flows.installed import WrongChapctl, require_chapctl\n"
            "try:\n    require_chapctl(sys.argv[2])\nexcept WrongChapctl as e:\n    print(e)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path), __version__], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"would be imported from {shadow}" in proc.stdout and "start the worker from a directory" in proc.stdout


def test_plan_shows_a_chapctl_upgrade_as_a_change_of_every_deployments_flow_release():
    """The golden case `flow_release_upgraded`: applied by chapctl 0.0.9, compiled by this one."""
    from compiler.output import plan as report
    from tests.plan_golden.test_plan_golden import HERE, _load

    _, plan = _load(HERE / "cases" / "flow_release_upgraded")
    text = "\n".join(line for _, line in report.plan_lines(plan))
    for name in ("laos-malaria", "laos-dengue", "rwanda-malaria"):
        assert f"~ deployment {name}: update" in text
    before = json.dumps([{"flows.installed.require_chapctl": {"version": "0.0.9"}}])
    after = json.dumps([{"flows.installed.require_chapctl": {"version": __version__}}])
    assert text.count("pull_steps:") == 3 and "0.0.9" in text and __version__ in text, text
    assert not plan.blockers
    assert before != after
