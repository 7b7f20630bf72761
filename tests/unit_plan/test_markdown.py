"""Issue 21 #6: the Markdown outputs (the PR comment of plan, status's and diff's reports) show text
from projects and servers as text: no live HTML, no link or image, no autolinked URL, no broken
table. The escaper itself, and a plan of a project whose description is hostile."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from compiler import markdown

HOSTILE = ("<script>alert(1)</script> <img src=x onerror=alert(1)> [click](javascript:alert(1)) "
           "![pixel](https://tracker.example/p.png) https://evil.example/x www.evil.example mail@evil.example "
           "a|b `tick` **bold**")


def live_markup(md: str) -> list[str]:
    """What a Markdown renderer would turn into markup or a link."""
    found = [needle for needle in ("<script", "<img", "https://evil", "www.evil", "mail@evil", "https://tracker")
             if needle in md]
    return found + re.findall(r"(?<!\\)\]\(", md)  # a `](` whose bracket is not escaped: a link


def test_text_is_inert():
    out = markdown.text(HOSTILE + "\nsecond line")
    assert live_markup(out) == [] and "\n" not in out
    assert "&lt;script&gt;" in out and "\\[click\\]" in out and "a\\|b" in out


@pytest.mark.parametrize("value", ["plain", "a`b", "``x``", "`edge`", "a|b", "line\nbreak"])
def test_code_spans_hold_any_text(value):
    span = markdown.code(value)
    fence = re.match(r"`+", span).group()
    assert span.endswith(fence)
    inner = span[len(fence):-len(fence)]
    assert all(len(run) < len(fence) for run in re.findall(r"`+", inner))  # nothing inside closes it
    assert "\n" not in span and "|" not in inner.replace("\\|", "")


def test_a_plan_comment_of_a_hostile_project_has_no_live_markup(tmp_path):
    from compiler.output import plan as report
    from compiler.reconcile.desired import load_desired
    from compiler.reconcile.facts import Facts
    from compiler.reconcile.live import Live
    from compiler.reconcile.plan import plan
    from tests.server.repo import Repo, project

    golden = Path(__file__).resolve().parents[1] / "plan_golden"
    repo = Repo.create(tmp_path / "repo", [project("laos-malaria", description=HOSTILE, tags=["<b>x</b>"])])
    facts = Facts.from_json(json.loads((golden / "facts.json").read_text()))
    desired = load_desired(repo.root, {"CHAPCTL_FLOWS_DIR": "/x", "LAOS_DHIS2_PASSWORD": "pw"}, facts=facts)
    empty = Live.from_json(json.loads((golden / "cases" / "first_apply_empty_server" / "live.json").read_text()))
    md = report.plan_markdown(plan(desired, empty))
    assert "description" in md and "tracker" in md  # the text is there, inert
    assert live_markup(md) == [] and "<b>" not in md, md


def test_a_missing_webhook_url_is_not_called_a_password_nor_the_flows_dir_a_secret(tmp_path):
    """Issue 21 #19: plan said a notification block "is created with the password read from"
    OPS_WEBHOOK_URL, and listed CHAPCTL_FLOWS_DIR under "Secrets apply will need"."""
    from compiler.output import plan as report
    from compiler.reconcile.desired import load_desired
    from compiler.reconcile.live import Live
    from compiler.reconcile.plan import plan
    from tests.server.repo import Repo, project

    golden = Path(__file__).resolve().parents[1] / "plan_golden"
    defaults = {"timezone": "UTC", "source": {"directory_env": "CHAPCTL_FLOWS_DIR"},
                "notifications": {"ops": {"webhook": {"url_env": "OPS_WEBHOOK_URL"}}}, "alerts": {"notify": ["ops"]}}
    repo = Repo.create(tmp_path / "repo", [project("laos-malaria")], defaults)
    desired = load_desired(repo.root, {"LAOS_DHIS2_PASSWORD": "pw"})
    empty = Live.from_json(json.loads((golden / "cases" / "first_apply_empty_server" / "live.json").read_text()))
    p = plan(desired, empty)
    webhook = [m for m in p.missing_env if "OPS_WEBHOOK_URL" in m]
    assert webhook and "password" not in webhook[0] and "webhook URL" in webhook[0], p.missing_env
    md = report.plan_markdown(p)
    assert "Secrets apply will need" not in md and "Variables apply will need (1), not set here" in md, md


def test_an_unset_flows_directory_variable_blocks_the_plan(tmp_path):
    """Issue 21 #15: a fork's pull-request check stayed green (plan warned) while apply on main
    refused for CHAPCTL_FLOWS_DIR. It is no secret: the check has it exactly when apply will, so
    plan refuses as apply does, and says what to do instead."""
    from compiler.reconcile.desired import load_desired
    from compiler.reconcile.live import Live
    from compiler.reconcile.plan import plan
    from tests.server.repo import Repo, project

    golden = Path(__file__).resolve().parents[1] / "plan_golden"
    repo = Repo.create(tmp_path / "repo", [project("laos-malaria")],
                       {"timezone": "UTC", "source": {"directory_env": "CHAPCTL_FLOWS_DIR"}})
    empty = Live.from_json(json.loads((golden / "cases" / "first_apply_empty_server" / "live.json").read_text()))
    p = plan(load_desired(repo.root, {"LAOS_DHIS2_PASSWORD": "pw"}), empty)
    (blocker,) = p.blockers
    assert blocker.startswith("CHAPCTL_FLOWS_DIR is not set: prefect.yaml's pull steps read it "
                              "(`source.directory_env` in projects/_defaults.yaml)"), blocker
    assert "source: {git: {repository:" in blocker and not p.missing_env
    assert not plan(load_desired(repo.root, {"LAOS_DHIS2_PASSWORD": "pw", "CHAPCTL_FLOWS_DIR": "/srv"}), empty).blockers
