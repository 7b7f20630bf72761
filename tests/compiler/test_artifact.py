"""One artifact schema (compiler/compile/artifact.py): what render writes, desired reads back as
the very same values — every field of a project and of _defaults.yaml set, every kind of block."""

from __future__ import annotations

from compiler.compile.artifact import BlockDocument, PrefectFile, read_block, read_prefect_yaml
from compiler.compile.build import compile_repo, write
from compiler.compile.load import parse_artifact
from compiler.compile.render import (block_specs, concurrency_limit_specs, deployment_spec, environment_specs,
                                     notification_specs, pull_steps)
from tests.compiler.test_diff_and_schedule import EVERY_DEFAULT, EVERY_ENTRY, EVERY_PROJECT


def test_render_and_desired_share_one_schema(repo_factory):
    repo = repo_factory({"projects/_defaults.yaml": EVERY_DEFAULT, "projects/one.yaml": EVERY_PROJECT,
                         "projects/two.yaml": EVERY_ENTRY})
    compiled = compile_repo(repo)
    write(repo, compiled.artifacts)
    validated = compiled.validated
    defaults, projects = validated.defaults, [v.project for v in validated.projects]

    written = PrefectFile(owner=defaults.owner, pull=tuple(pull_steps(defaults)),
                          deployments=tuple(deployment_spec(p, defaults) for p in projects),
                          concurrency_limits=tuple(concurrency_limit_specs(projects, defaults)),
                          environments=environment_specs(defaults), allow_unset=tuple(defaults.ci.allow_unset))
    assert written.environments and written.environments[0].notifications  # every field of an environment
    read = read_prefect_yaml(parse_artifact((repo / "prefect.yaml").read_text(), "prefect.yaml"))
    assert read == written
    # what the round trip must carry: every optional part is there
    two = next(d for d in read.deployments if d.name == "two")
    assert [s.replaces.slug if s.replaces else None for s in two.schedules] == [None, "monthly"]
    assert read.deployments[0].replaces is not None and read.deployments[0].alerts and read.concurrency_limits
    assert read.allow_unset == ("SENDGRID_KEY",)

    blocks: list[BlockDocument] = [*block_specs(projects), *notification_specs(projects, defaults)]
    back = {b.name: b for b in (read_block(parse_artifact(p.read_text(), p.name))
                                for p in (repo / "blocks").glob("*.yaml"))}
    assert {b.name: b for b in blocks} == back
    assert {b.type_slug for b in blocks} >= {"custom-webhook", "slack-webhook", "sendgrid-email"}
