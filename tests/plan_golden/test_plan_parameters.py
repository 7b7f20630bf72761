"""Parameters that do not fit their flow's schema stop the plan before any write; a no-op checks
nothing (and imports no JSON Schema library)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from compiler.reconcile.desired import load_desired
from compiler.reconcile.facts import Facts
from compiler.reconcile.live import Live
from compiler.reconcile.plan import plan

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def _case(name: str):
    case = HERE / "cases" / name
    facts = Facts.from_json(json.loads((HERE / "facts.json").read_text()))
    env = json.loads((case / "env.json").read_text()) if (case / "env.json").exists() else {}
    return load_desired(case / "desired", env, facts=facts), Live.from_json(json.loads((case / "live.json").read_text()))


def test_parameters_that_do_not_fit_the_flow_are_blockers():
    desired, live = _case("first_apply_empty_server")
    bad = desired.deployments[0]
    bad.parameters["end_mode"] = "sometimes"
    bad.parameters["configured_model_id"] = "twelve"
    p = plan(desired, live)
    mine = [b for b in p.blockers if b.startswith(f"projects/{bad.name}.yaml:")]
    assert len(mine) == 2, p.blockers
    assert "parameter configured_model_id: 'twelve' is not valid" in mine[0]
    assert "parameter end_mode: 'sometimes' is not one of" in mine[1]
    assert all(bad.entrypoint in b and "chapctl compile" in b for b in mine)
    assert len(p.blockers) == 2  # the other projects are fine


def test_updated_parameters_are_checked_too():
    desired, live = _case("yaml_change_one_project")
    changed = next(a.project for a in plan(desired, live).actions if a.kind == "deployment" and a.op == "update")
    d = next(d for d in desired.deployments if d.name == changed)
    d.parameters["end_period_offset"] = "one"
    assert any("parameter end_period_offset" in b for b in plan(desired, live).blockers)


def test_a_noop_plan_checks_nothing():
    code = (
        "import sys, json\n"
        "from tests.plan_golden.test_plan_parameters import _case\n"
        "from compiler.reconcile.plan import plan\n"
        "p = plan(*_case('noop_everything_in_sync'))\n"
        "assert not p.has_changes and not p.blockers, p.blockers\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'jsonschema')))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []
