"""What a reviewer reads: plan text and Markdown from golden plans (no server)."""

from __future__ import annotations

import json
from pathlib import Path

from compiler.output import plan as plan_report
from compiler.reconcile.desired import load_desired
from compiler.reconcile.facts import Facts
from compiler.reconcile.plan import plan
from compiler.reconcile.live import Live

HERE = Path(__file__).resolve().parent


def golden_plan(name: str):
    case = HERE / "cases" / name
    facts = Facts.from_json(json.loads((HERE / "facts.json").read_text()))
    env = json.loads((case / "env.json").read_text())
    options = json.loads((case / "options.json").read_text()) if (case / "options.json").exists() else {}
    return plan(load_desired(case / "desired", env, facts=facts), Live.from_json(json.loads((case / "live.json").read_text())),
                **options)


def text(p) -> str:
    return "\n".join(t for _, t in plan_report.plan_lines(p))


def test_a_fingerprint_only_write_is_not_a_row_and_not_an_update():
    p = golden_plan("fingerprint_only_after_interrupted_apply")
    assert p.has_changes  # it writes
    out = text(p)
    assert "deployment laos-malaria" not in out
    assert "note: apply also records the fingerprint of the applied spec on 1 deployment(s)" in out
    assert "No visible changes; apply only records fingerprints" in out
    md = plan_report.plan_markdown(p)
    assert "| ~ |" not in md and "**No visible changes.** apply also records the fingerprint" in md
    assert p.counts()["update"] == 0 and p.counts()["fingerprint"] == 1


def test_unchanged_objects_are_counted_per_kind():
    out = text(golden_plan("yaml_change_one_project"))
    assert "  = 2 schedules, 2 deployments unchanged" in out  # three projects, one of them changed
    assert "Plan: 0 to create, 2 to update, 0 to delete, 10 unchanged." in out


def test_values_are_shown_in_full_and_parameters_one_per_line():
    p = golden_plan("long_values_are_never_cut")
    out = text(p)
    assert ("description: Forecast laos-malaria → Weekly malaria forecast for the Lao PDR from the national HMIS, "
            "offset by one week so that late district reports are in; owner: the MoH surveillance unit") in out
    assert "…" not in out
    created = text(golden_plan("first_apply_empty_server"))
    assert "      parameters.credentials: block laos-dhis2 (new)" in created
    assert "      parameters.end_mode: offset" in created and "      parameters.end_period_offset: 1" in created
    assert "schedule chapctl-cron: cron '0 6 * * 1' Asia/Vientiane (At 06:00, only on Monday)" in created
    md = plan_report.plan_markdown(p)
    assert "the MoH surveillance unit" in md and "…" not in md


def test_every_markdown_row_has_details():
    for case in ("first_apply_empty_server", "yaml_change_one_project", "drift_made_in_ui",
                 "project_removed_prunes_and_orphans_block", "prune_reports_runs"):
        md = plan_report.plan_markdown(golden_plan(case))
        rows = [r for r in md.splitlines() if r.startswith("| ") and r[2] in "+~-" and r[3] == " "]
        assert rows, case
        assert all(not r.rstrip().endswith("|  |") for r in rows), (case, [r for r in rows if r.endswith("|  |")])


def test_an_automation_action_edited_on_the_server_shows_the_changed_part():
    """Issue 21 #19: the actions were cut at 77 characters, before the subject someone edited in the UI,
    so the row read the same text on both sides of the arrow."""
    case = HERE / "cases" / "automation_edited_in_ui_is_reverted"
    facts = Facts.from_json(json.loads((HERE / "facts.json").read_text()))
    live = json.loads((case / "live.json").read_text())
    (edited,) = [a for a in live["automations"] if "chapctl-alert:laos-dengue/failed" in a["tags"]]
    edited["actions"][0]["subject"] = "edited in the UI"
    p = plan(load_desired(case / "desired", json.loads((case / "env.json").read_text()), facts=facts),
             Live.from_json(live))
    (action,) = [a for a in p.actions if a.kind == "automation" and a.name == "laos-dengue/failed"]
    assert [(c.field, c.before, c.after) for c in action.changes] == [
        ("actions[0].subject", "edited in the UI", "chap project laos-dengue: run {{ flow_run.name }} {{ flow_run.state.name }}")]
    assert ("actions[0].subject: edited in the UI → chap project laos-dengue: run {{ flow_run.name }} "
            "{{ flow_run.state.name }}") in text(p)
