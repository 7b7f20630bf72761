"""Rendering: Prefect accepts what we write, values cannot inject YAML, output is byte-stable."""

from __future__ import annotations

import io
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml as pyyaml  # PyYAML: what `prefect deploy` reads prefect.yaml with
from ruamel.yaml import YAML
from click.testing import CliRunner

from compiler.cli import app
from compiler.compile.render import yaml_scalar
from tests.compiler.conftest import REPO, valid_project

NASTY = [
    "a: b", "{{x}}", "{{ prefect.blocks.x.y }}", "#", "x #y", "'quoted'", '"double"', "it's", "yes", "No",
    "null", "~", "123", "0o17", "1e3", "2026-06-30", "- item", "[list]", "{map}", "*alias", "&anchor",
    "!tag", "%directive", "@at", "`tick", "|", ">", "multi\nline", "tab\there", " leading", "trailing ",
    "ünïcödé ✓ 日本語", "back\\slash", "", ":", "a:", "---", "...", "? key", "\u2028sep", "true", "on",
]


@pytest.mark.parametrize("value", NASTY)
def test_yaml_scalar_round_trips_in_yaml_1_1_and_1_2(value):
    text = f"key: {yaml_scalar(value)}\n"
    assert pyyaml.safe_load(text) == {"key": value}
    assert YAML(typ="safe", pure=True).load(text) == {"key": value}


def compile_repo_with(repo_factory, files: dict[str, str]) -> Path:
    repo = repo_factory(files)
    result = CliRunner().invoke(app, ["compile", "--root", str(repo)], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    return repo


def test_description_and_tags_cannot_inject_yaml(repo_factory):
    # '{{ }}' is refused at validate (tests/compiler/cases/templates-and-control-characters): not here
    tricky = [v for v in NASTY if v.strip() and v != "managed-by:chapctl" and "{{" not in v]
    project = valid_project("tricky") + "description: " + yaml_scalar("a: b\n{x} # 'q' \"dq\" ünï") + "\n"
    project += "tags:\n" + "".join(f"- {yaml_scalar(v)}\n" for v in tricky)
    repo = compile_repo_with(repo_factory, {"projects/tricky.yaml": project})
    loaded = pyyaml.safe_load((repo / "prefect.yaml").read_text())
    (deployment,) = loaded["deployments"]
    assert deployment["description"] == "a: b\n{x} # 'q' \"dq\" ünï"
    assert deployment["tags"] == list(dict.fromkeys(tricky)) + ["managed-by:chapctl", "chapctl-owner:default"]


def test_prefect_own_loader_accepts_prefect_yaml(repo_factory):
    from prefect.cli.deploy._config import _load_deploy_configs_and_actions
    from rich.console import Console

    repo = compile_repo_with(repo_factory, {"projects/_defaults.yaml": (REPO / "projects/_defaults.yaml").read_text(),
                                            **{f"projects/{p.name}": p.read_text()
                                               for p in (REPO / "projects").glob("*.yaml")}})
    console = Console(file=io.StringIO(), width=200)
    configs, actions = _load_deploy_configs_and_actions(repo / "prefect.yaml", console=console)
    assert console.file.getvalue() == "", "Prefect printed a warning about the file"
    assert [c["name"] for c in configs] == sorted(p.stem for p in (REPO / "projects").glob("[!_]*.yaml"))
    by_name = {c["name"]: c for c in configs}
    malaria = by_name["laos-malaria"]
    assert malaria["entrypoint"] == "flows/dhis2_chap_prediction.py:dhis2_chap_prediction"
    assert malaria["parameters"]["credentials"] == "{{ prefect.blocks.chap-dhis2-credentials.laos-dhis2 }}"
    assert malaria["parameters"]["end_period_offset"] == 1
    assert malaria["schedules"] == [{"cron": "0 6 * * 1", "timezone": "Asia/Vientiane", "active": True,
                                     "slug": "chapctl-cron"}]
    assert by_name["rwanda-malaria"]["parameters"]["end_date"] == "2026-06-30"
    assert by_name["rwanda-malaria"]["schedules"] == []
    assert by_name["sierra-leone-malaria"]["schedules"][0]["active"] is False
    assert all("managed-by:chapctl" in c["tags"] for c in configs)
    assert actions["pull"] == [{"prefect.deployments.steps.set_working_directory":
                                {"directory": "{{ $CHAPCTL_FLOWS_DIR }}"}}]
    # The schedule entries are valid Prefect schedule objects, not just parseable YAML.
    from prefect.cli.deploy._models import PrefectYamlModel

    model = PrefectYamlModel.model_validate(pyyaml.safe_load((repo / "prefect.yaml").read_text()))
    assert model.deployments[0].schedules[0].slug == "chapctl-cron"


def test_blocks_hold_env_references_never_secrets(repo_factory):
    repo = compile_repo_with(repo_factory, {"projects/one.yaml": valid_project("one", "shared"),
                                            "projects/two.yaml": valid_project("two", "shared")})
    assert sorted(p.name for p in (repo / "blocks").iterdir()) == ["shared.yaml"]
    block = pyyaml.safe_load((repo / "blocks/shared.yaml").read_text())
    assert block == {
        "block_type_slug": "chap-dhis2-credentials",
        "name": "shared",
        "data": {"base_url": "https://dhis2.example.org", "username": "chap-bot"},
        "secret_env": {"password": "TEST_DHIS2_PASSWORD"},
        "used_by": ["one", "two"],
    }


def test_external_block_gets_no_file_and_removed_block_file_is_deleted(repo_factory):
    repo = compile_repo_with(repo_factory, {"projects/one.yaml": valid_project("one", "mine")})
    assert (repo / "blocks/mine.yaml").exists()
    (repo / "projects/one.yaml").write_text("name: one\ncredentials:\n  block: theirs\nmodel_id: 3\n")
    result = CliRunner().invoke(app, ["compile", "--root", str(repo)], catch_exceptions=False)
    assert result.exit_code == 0
    assert "delete blocks/mine.yaml" in result.stdout
    assert not (repo / "blocks").exists() or list((repo / "blocks").iterdir()) == []


def test_output_is_byte_identical_across_file_order_locale_and_hash_seed(tmp_path):
    sources = {p.name: p.read_bytes() for p in (REPO / "projects").glob("*.yaml")}
    outputs = []
    for attempt, (locale, seed) in enumerate([("C", "0"), ("C.UTF-8", "12345"), ("POSIX", "random")]):
        repo = tmp_path / f"copy{attempt}"
        (repo / "projects").mkdir(parents=True)
        names = list(sources)
        random.Random(attempt).shuffle(names)  # different creation (directory) order
        for name in names:
            (repo / "projects" / name).write_bytes(sources[name])
        env = {**os.environ, "LC_ALL": locale, "LANG": locale, "PYTHONHASHSEED": seed, "TZ": "Pacific/Kiritimati"}
        subprocess.run([sys.executable, "-m", "compiler", "compile", "--root", str(repo)], env=env, check=True,
                       capture_output=True)
        outputs.append({str(p.relative_to(repo)): p.read_bytes() for p in sorted(repo.rglob("*"))
                        if p.is_file() and not {"projects", ".chapctl"} & set(p.parts)})
    assert outputs[0] == outputs[1] == outputs[2]
    committed = {k: (REPO / k).read_bytes() for k in outputs[0]}
    assert outputs[0] == committed


def test_yaml_scalar_keeps_booleans_and_integers_apart():
    # 1 == True in Python: a cache keyed by value alone would render `active: 1`.
    assert [yaml_scalar(v) for v in (1, True, 0, False, 1, True)] == ["1", "true", "0", "false", "1", "true"]


def test_replaces_is_carried_to_prefect_yaml_for_chapctl_and_ignored_by_prefect(repo_factory):
    from prefect.cli.deploy._config import _load_deploy_configs_and_actions
    from rich.console import Console

    sid = "2ffd4ea1-2489-44ea-a6d8-42d70da2c4a5"
    project = valid_project("imported") + (
        f"replaces:\n  deployment: dhis2-chap-prediction/chap-scheduler\n  schedule_id: {sid}\n")
    repo = compile_repo_with(repo_factory, {"projects/imported.yaml": project, "projects/plain.yaml": valid_project("plain")})
    loaded = pyyaml.safe_load((repo / "prefect.yaml").read_text())
    by_name = {d["name"]: d for d in loaded["deployments"]}
    assert by_name["imported"]["chapctl"] == {
        "replaces": {"deployment": "dhis2-chap-prediction/chap-scheduler", "schedule_id": sid}}
    assert "chapctl" not in by_name["plain"]
    console = Console(file=io.StringIO(), width=200)
    configs, _ = _load_deploy_configs_and_actions(repo / "prefect.yaml", console=console)
    assert console.file.getvalue() == "" and [c["name"] for c in configs] == ["imported", "plain"]

    import json

    from compiler.reconcile.desired import Replaces, fingerprint, load_desired
    from compiler.reconcile.facts import Facts

    facts = Facts.from_json(json.loads((REPO / "tests/plan_golden/facts.json").read_text()))
    desired = {d.name: d for d in load_desired(repo, {"CHAPCTL_FLOWS_DIR": "/x"}, facts=facts).deployments}
    assert desired["imported"].replaces == Replaces("dhis2-chap-prediction", "chap-scheduler", sid)
    assert desired["plain"].replaces is None and not desired["imported"].in_place(desired["imported"].replaces)
    without = fingerprint(desired["imported"].__class__(**{**desired["imported"].__dict__, "replaces": None}), {}, "x")
    assert fingerprint(desired["imported"], {}, "x") != without  # the fingerprint covers it
