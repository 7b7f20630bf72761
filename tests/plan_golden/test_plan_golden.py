"""Golden planner cases: `cases/<name>/{desired/, live.json, env.json, options.json?}` -> expected_plan.json.

Discovered automatically. Regenerate the expected files with `CHAPCTL_REGEN_GOLDEN=1 pytest
tests/plan_golden` and review the diff; rebuild inputs with `python -m tests.plan_golden.make_cases`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from compiler.reconcile.desired import load_desired
from compiler.reconcile.facts import Facts
from compiler.reconcile.plan import plan
from compiler.reconcile.live import Live
from tests import golden

HERE = Path(__file__).resolve().parent
CASES = sorted(p for p in (HERE / "cases").iterdir() if p.is_dir()) if (HERE / "cases").is_dir() else []


def _load(case: Path):
    facts = Facts.from_json(json.loads((HERE / "facts.json").read_text()))
    env = json.loads((case / "env.json").read_text()) if (case / "env.json").exists() else {}
    options = json.loads((case / "options.json").read_text()) if (case / "options.json").exists() else {}
    desired = load_desired(case / "desired", env, facts=facts)
    live = Live.from_json(json.loads((case / "live.json").read_text()))
    return env, plan(desired, live, **options)


def test_cases_exist():
    assert len(CASES) >= 10


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_golden_plan(case: Path):
    env, p = _load(case)
    got = p.to_json(include_requests=True)
    text = json.dumps(got, indent=1, sort_keys=True) + "\n"
    assert json.loads(golden.expected(case / "expected_plan.json", text)) == got
    # Secrets never reach a plan: neither the environment's nor an inline one found on the server.
    for key, value in env.items():
        if "PASSWORD" in key:
            assert value not in text
    assert "golden-canary" not in text


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_plan_is_pure_and_deterministic(case: Path):
    _, first = _load(case)
    _, second = _load(case)
    assert first.to_json(include_requests=True) == second.to_json(include_requests=True)
