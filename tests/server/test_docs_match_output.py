"""The README quotes real output: the lines of its `<!-- output: … -->` blocks are checked here
against what chapctl prints, on a real server, for the walkthrough the README describes."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.server.repo import Repo

pytestmark = pytest.mark.server

REPO = Path(__file__).resolve().parents[2]


def quoted(name: str) -> list[str]:
    text = (REPO / "README.md").read_text()
    block = re.search(rf"<!-- output: {re.escape(name)} .*?-->\n```text\n(.*?)```", text, re.S)
    assert block, f"README has no output block {name!r}"
    return [line for line in block.group(1).splitlines() if line.strip() != "[…]"]  # […]: lines left out


def test_readme_walkthrough_plan_output_is_verbatim(chapctl, clean_server, tmp_path, warm_cache):
    repo, env = apply_examples(chapctl, clean_server, tmp_path / "repo", warm_cache, owner="demo")  # as scripts/demo.py
    root = repo.root
    assert chapctl.cli(repo, "apply", env=env).returncode == 0
    # The README's step: copy laos-malaria to my-malaria and edit name, model_id and cron.
    text = (root / "projects" / "laos-malaria.yaml").read_text()
    text = text.replace("name: laos-malaria", "name: my-malaria").replace("model_id: 12", "model_id: 7")
    (root / "projects" / "my-malaria.yaml").write_text(text.replace('"0 6 * * 1"', '"0 5 * * 2"'))
    repo.compile()
    proc = chapctl.cli(repo, "plan", env=env)
    assert proc.returncode == 0, proc.stderr
    printed = proc.stdout.replace(clean_server.api_url, "http://127.0.0.1:4200/api").splitlines()
    missing = [line for line in quoted("demo-plan") if line not in printed]
    assert not missing, "README lines not in the output:\n" + "\n".join(missing) + "\n--- output:\n" + proc.stdout


def apply_examples(chapctl, server, root: Path, warm_cache: Path, owner: str | None = None,
) -> tuple[Repo, dict[str, str]]:
    """The repository's example projects, copied to `root` and applied to `server` as the README
    walkthroughs do: the project whose block is "managed elsewhere" waits until that block exists
    (created here, as its owner would)."""
    for name in ("projects", "flows", "schema"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(warm_cache / ".chapctl", root / ".chapctl")
    if owner:
        defaults = root / "projects" / "_defaults.yaml"
        defaults.write_text(defaults.read_text() + f"owner: {owner}\n")
    repo = Repo(root)
    env = dict(chapctl.env, CHAPCTL_FLOWS_DIR=str(root))
    external = root / "projects" / "sierra-leone-malaria.yaml"
    kept = external.read_text()
    external.unlink()
    repo.compile()
    assert chapctl.cli(repo, "apply", env=env).returncode == 0
    _create_external_block(server)
    external.write_text(kept)
    repo.compile()
    return repo, env


def _create_external_block(server) -> None:
    with server.client() as c:
        bt = c.get("/block_types/slug/chap-dhis2-credentials").json()
        schema = c.post("/block_schemas/filter", json={"block_schemas": {"block_type_id": {"any_": [bt["id"]]}}}).json()[0]
        c.post("/block_documents/", json={
            "name": "sierra-leone-dhis2", "block_type_id": bt["id"], "block_schema_id": schema["id"],
            "data": {"base_url": "https://sl.example.org", "username": "u", "password": "p"}}).raise_for_status()
