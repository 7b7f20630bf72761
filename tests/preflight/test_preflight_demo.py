"""`make run` runs `chapctl preflight` on the demo before its first run (scripts/demo.py): against the
fake DHIS2+CHAP, with the demo's own environment, and the demo goes on whatever it finds."""

from __future__ import annotations

import sys

import pytest

from tests.fake_dhis2 import FakeDhis2Server
from tests.preflight.scenario import REPO, TODAY
from tests.preflight.test_preflight_readme import DEMO_PASSWORD, demo_copy

sys.path.insert(0, str(REPO / "scripts"))
import demo  # noqa: E402  (the script under test)

pytestmark = pytest.mark.flows


def test_the_demo_runs_preflight_before_it_applies(monkeypatch):
    done: list[str] = []
    monkeypatch.setattr(sys, "argv", ["demo.py"])
    for name in ("check_inputs", "prepare_demo_repo", "ensure_external_block", "preflight", "start_worker",
                 "trigger_and_wait", "what_keeps_running"):
        target = demo.stack if name == "start_worker" else demo
        monkeypatch.setattr(target, name, lambda *a, _name=name, **k: done.append(_name))
    monkeypatch.setattr(demo, "chapctl", lambda *args: done.append("chapctl " + " ".join(args)))
    demo.main()
    assert done.index("preflight") < done.index("chapctl apply") < done.index("trigger_and_wait")
    done.clear()
    monkeypatch.setattr(sys, "argv", ["demo.py", "plan"])
    demo.main()
    assert "preflight" not in done and "chapctl plan" in done  # `make demo-plan` only plans


def test_the_demo_preflight_reads_the_demo_projects(tmp_path, monkeypatch, capfd):
    with FakeDhis2Server(username="chap-bot", password=DEMO_PASSWORD, today=TODAY) as fake:
        monkeypatch.setattr(demo, "DEMO", demo_copy(tmp_path / "demo", fake.url))
        monkeypatch.setenv("CHAP_TODAY", TODAY.isoformat())
        monkeypatch.delenv("DEMO_DHIS2_PASSWORD", raising=False)
        code = demo.preflight()
        requests = fake.admin.requests()
    out = capfd.readouterr().out
    assert code == 0
    assert out.startswith("$ chapctl preflight --root .local/demo\nchapctl preflight — 5 project(s) — today 2026-03-10")
    assert "5 project(s): 0 ok, 5 warn, 0 fail — exit 0" in out
    assert requests and {r["method"] for r in requests} == {"GET"}
