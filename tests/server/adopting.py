"""What the adoption tests share (tests/server/test_adopt.py, tests/e2e/test_installed_flow.py): a
copy of this source tree, the lock as pip constraints, an environment with no chapctl of this
checkout on it, chapctl's wheel installed into a cached environment, and the scaffolded GitHub
workflow's steps run as the runner runs them."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml as pyyaml

from tests.cachedir import CACHE_ROOT
from tests.server.server_envs import REPO, _uv, cached_env

# What a clone of chapctl holds that a build never reads: environments, caches, local state.
NOT_SOURCE = (".git", ".venv", ".tools", ".chapctl", ".local", "dist", "build", "__pycache__", "*.pyc",
              ".pytest_cache", ".coverage", ".prefect-home", ".env")


def copy_source(dest: Path) -> Path:
    """This working tree (uncommitted edits included), as a clone would hold it."""
    shutil.copytree(REPO, dest, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    return dest


def lock_constraints(dest: Path) -> Path:
    """uv.lock's pins of chapctl's dependencies as pip constraints (UV_CONSTRAINT): an install from
    the wheel resolves to exactly the locked releases, as `make setup` does."""
    proc = subprocess.run([_uv(), "export", "--frozen", "--no-hashes", "--no-dev", "--no-emit-project",
                           "--quiet", "-o", str(dest)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return dest


def clean_environment(tmp: Path, **extra: str) -> dict[str, str]:
    """This process's environment without Prefect's, uv's or chapctl's settings and without this
    checkout's environments on PATH; `uv` on PATH; git able to commit; then `extra`."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PREFECT_", "UV_", "CHAPCTL_")) and k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    tools = tmp / "uv-bin"
    tools.mkdir(exist_ok=True)
    if not (tools / "uv").exists():
        (tools / "uv").symlink_to(Path(_uv()).resolve())
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep)
            if p and not Path(p).resolve().is_relative_to(REPO.resolve())]
    env.update(PATH=os.pathsep.join([str(tools), *path]), UV_PYTHON_DOWNLOADS="never",
               GIT_AUTHOR_NAME="ministry", GIT_AUTHOR_EMAIL="ops@example.org", GIT_COMMITTER_NAME="ministry",
               GIT_COMMITTER_EMAIL="ops@example.org", GIT_CONFIG_GLOBAL=os.devnull, PREFECT_HOME=str(tmp / "prefect-home"))
    env.update(extra)
    return env


def build_wheel(out: Path) -> Path:
    proc = subprocess.run([_uv(), "build", "--wheel", "--quiet", "--out-dir", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (wheel,) = out.glob("chapctl-*.whl")
    return wheel


def installed_chapctl(tmp: Path) -> Path:
    """The `bin/` of an environment holding chapctl's wheel (built now) with the locked dependencies,
    cached in the suite's cache by the wheel's and the pins' content (the wheel is reproducible)."""
    wheel = build_wheel(tmp / "dist")
    constraints = lock_constraints(tmp / "constraints.txt")
    pins = tmp / "requirements.txt"
    pins.write_text(f"-c {constraints}\n{wheel}\n")
    key = hashlib.sha256(wheel.read_bytes() + constraints.read_bytes() + sys.version.encode()).hexdigest()[:16]
    home = CACHE_ROOT / "installed-chapctl" / f"chapctl-{key}"
    return cached_env(home, sys.executable, pins, "chapctl installed from its wheel").parent


# -- the scaffolded pull-request check, step by step ------------------------------------------------
_EXPRESSION = re.compile(r"\$\{\{\s*([^}]*?)\s*\}\}")


def _expand(text: str, secrets: dict[str, str], variables: dict[str, str], base_ref: str) -> str:
    def one(m: re.Match[str]) -> str:
        expr = m.group(1)
        if expr == "toJSON(secrets)":
            return json.dumps(secrets)
        if expr == "github.base_ref":
            return base_ref
        kind, _, name = expr.partition(".")
        if kind in ("secrets", "vars"):
            return (secrets if kind == "secrets" else variables).get(name, "")
        raise AssertionError(f"the workflow uses an expression this runner does not know: {expr}")

    return _EXPRESSION.sub(one, text)


def run_workflow(path: Path, job: str, cwd: Path, env: dict[str, str], secrets: dict[str, str],
                 variables: dict[str, str] | None = None, base_ref: str = "main",
                 skip: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The `run:` steps of a workflow's job, in order, as GitHub's runner runs them: bash -e, the
    job's and the step's `env:` with `secrets`/`vars`/`toJSON(secrets)` filled in, GITHUB_ENV read
    back after each step; stops at the first failing step. Steps whose name starts with one of
    `skip` are left out (the install: chapctl is on PATH already). Each result: name, code, output."""
    workflow = pyyaml.safe_load(path.read_text())
    variables = variables or {}
    spec = workflow["jobs"][job]
    base = {**env, **{k: _expand(str(v), secrets, variables, base_ref) for k, v in (workflow.get("env") or {}).items()},
            **{k: _expand(str(v), secrets, variables, base_ref) for k, v in (spec.get("env") or {}).items()}}
    github_env, github_output = cwd / ".github-env", cwd / ".github-output"
    results = []
    for step in spec["steps"]:
        if "run" not in step or str(step.get("name", "")).startswith(skip):
            continue
        step_env = {**base, **{k: _expand(str(v), secrets, variables, base_ref) for k, v in (step.get("env") or {}).items()},
                    "GITHUB_ENV": str(github_env), "GITHUB_OUTPUT": str(github_output),
                    "GITHUB_STEP_SUMMARY": str(cwd / ".github-summary")}
        github_env.write_text("")
        proc = subprocess.run(["bash", "-e", "-c", _expand(step["run"], secrets, variables, base_ref)], cwd=cwd,
                              env=step_env, capture_output=True, text=True, timeout=600)
        results.append({"name": step["name"], "code": proc.returncode, "output": proc.stdout + proc.stderr})
        for line in github_env.read_text().splitlines():
            name, _, value = line.partition("=")
            base[name] = value
        if proc.returncode != 0:
            break
    return results
