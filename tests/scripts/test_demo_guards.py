"""The local stack's guards (scripts/demo.py, scripts/stack.py): every trap a newcomer met."""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
import demo  # noqa: E402
import stack  # noqa: E402


@pytest.fixture
def running_local_server(tmp_path, monkeypatch):
    monkeypatch.setattr(stack, "PIDS", tmp_path / "pids")
    (tmp_path / "pids").mkdir()
    (tmp_path / "pids" / "server.pid").write_text(str(os.getpid()))  # a live process
    monkeypatch.delenv("ALLOW_LOCAL_SERVER", raising=False)
    monkeypatch.delenv("PREFECT_PORT", raising=False)


def test_make_plan_and_apply_refuse_to_aim_the_real_projects_at_the_demo_server(running_local_server, monkeypatch):
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4200/api")
    with pytest.raises(SystemExit) as err:
        stack.check_target()
    assert "the local demo server that `make run` started" in str(err.value)
    assert "make demo-plan" in str(err.value) and "ALLOW_LOCAL_SERVER=1" in str(err.value)
    monkeypatch.setenv("ALLOW_LOCAL_SERVER", "1")
    stack.check_target()  # said on purpose
    monkeypatch.delenv("ALLOW_LOCAL_SERVER")
    monkeypatch.setenv("PREFECT_API_URL", "https://prefect.example.org/api")
    stack.check_target()  # a real server


def test_makefile_runs_the_guard_before_plan_and_apply():
    makefile = (REPO / "Makefile").read_text()
    for target in ("plan", "apply"):
        recipe = re.search(rf"^{target}:.*\n((?:\t.*\n)+)", makefile, re.M).group(1)
        assert recipe.index("check-target") < recipe.index(f"$(CHAPCTL) {target}")


def test_unknown_demo_project_is_refused_before_anything_is_applied(monkeypatch):
    monkeypatch.setattr(demo, "DEMO_PROJECT", "laos-malria")
    with pytest.raises(SystemExit) as err:
        demo.check_inputs(plan_only=False)
    message = str(err.value)
    assert "DEMO_PROJECT='laos-malria' is not a project" in message and "did you mean 'laos-malaria'?" in message
    assert "Nothing was applied" in message


def test_demo_refuses_a_hand_edited_prefect_yaml(tmp_path, monkeypatch, capsys):
    copy = tmp_path / "repo"
    for name in ("projects", "schema", "blocks"):
        shutil.copytree(REPO / name, copy / name)
    for name in ("prefect.yaml", "SCHEDULES.md", "schedules.svg"):
        shutil.copy(REPO / name, copy / name)
    prefect_yaml = copy / "prefect.yaml"
    prefect_yaml.write_text(prefect_yaml.read_text().replace("configured_model_id: 7", "configured_model_id: 8", 1))
    monkeypatch.setattr(demo, "ROOT", copy)
    with pytest.raises(SystemExit) as err:
        demo.check_inputs(plan_only=True)
    assert "nothing was applied" in str(err.value)
    assert "prefect.yaml (edited by hand: edit projects/laos-dengue.yaml instead)" in capsys.readouterr().err


def test_run_ends_by_saying_what_keeps_running_and_how_to_stop_it(monkeypatch, capsys):
    monkeypatch.setattr(stack, "pid_of", lambda name: {"server": 11, "worker": 12, "fake-dhis2": 13}.get(name))
    demo.what_keeps_running()
    out = capsys.readouterr().out
    assert "Still running (until `make stop`; `make clean` also deletes .local/):" in out
    assert "Prefect server http://127.0.0.1:4200/api (pid 11" in out and "process worker (pid 12" in out
    assert "fake DHIS2+CHAP http://127.0.0.1:18080 (pid 13" in out
    assert "chap-core" not in out

    # CHAP=real: the real chap-core keeps running too, and `make stop` stops it
    monkeypatch.setattr(stack, "pid_of", lambda name: {"server": 11, "worker": 12, "fake-dhis2": 13,
                                                       "chap-core": 14}.get(name))
    monkeypatch.setattr(stack, "chap_state", lambda: {"url": "http://127.0.0.1:45678"})
    demo.what_keeps_running()
    assert "real chap-core http://127.0.0.1:45678 (pid 14" in capsys.readouterr().out
    assert "chap-core" in stack.NAMES


@pytest.mark.parametrize("value", ["Real", "chap-core", "1"])
def test_an_unknown_chap_mode_is_refused(monkeypatch, value):
    monkeypatch.setenv("CHAP", value)
    with pytest.raises(SystemExit) as err:
        stack.chap_mode()
    assert f"CHAP={value!r}" in str(err.value) and "CHAP=fake" in str(err.value) and "CHAP=real" in str(err.value)


def test_chap_real_without_a_running_chap_core_is_refused_before_the_fake_starts(monkeypatch, tmp_path):
    monkeypatch.setenv("CHAP", "real")
    monkeypatch.setattr(stack, "PIDS", tmp_path / "pids")
    spawned = []
    monkeypatch.setattr(stack, "spawn", lambda *a: spawned.append(a))
    with pytest.raises(SystemExit) as err:
        stack.start_fake()
    assert "no chap-core is running" in str(err.value) and "start-chap" in str(err.value)
    assert spawned == []


class _Answers:
    """A loopback HTTP server in a thread answering every GET with `status` and `body`."""

    def __init__(self, status: int, body: bytes):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("status, body, said", [
    (200, b"true", "a Prefect server that `make run` did not start"),
    (404, b"<html>nginx</html>", "another program"),
])
def test_start_server_refuses_a_port_someone_else_holds(tmp_path, monkeypatch, status, body, said):
    """Issue 21 #14: with another Prefect server on the port, `make run` said "Prefect server started"
    and applied the demo to that server; with another program there it hung 90 s."""
    other = _Answers(status, body)
    try:
        monkeypatch.setattr(stack, "PIDS", tmp_path / "pids")
        monkeypatch.delenv("PREFECT_API_URL", raising=False)
        monkeypatch.setenv("PREFECT_PORT", str(other.port))
        with pytest.raises(SystemExit) as err:
            stack.start_server()
    finally:
        other.close()
    message = str(err.value)
    assert said in message and f"127.0.0.1:{other.port}" in message and "PREFECT_PORT" in message
    assert not (tmp_path / "pids" / "server.pid").exists()  # nothing started


def test_demo_plan_leaves_a_running_fake_as_it_is(tmp_path, monkeypatch, capsys):
    """Issue 21 #18: `make demo-plan` restarted the running fake (a CHAP=real stack fell back to the
    built-in fake). With `keep`, a running fake is left alone whatever it forwards to."""
    monkeypatch.setattr(stack, "PIDS", tmp_path / "pids")
    (tmp_path / "pids").mkdir()
    (tmp_path / "pids" / "fake-dhis2.pid").write_text(str(os.getpid()))  # a live process
    (tmp_path / "pids" / "fake-dhis2.chap").write_text("http://127.0.0.1:9999")  # forwards to a real chap-core
    monkeypatch.delenv("CHAP", raising=False)
    stopped = []
    monkeypatch.setattr(stack, "stop", lambda name: stopped.append(name))
    monkeypatch.setattr(stack, "spawn", lambda *a, **k: pytest.fail("started a fake"))
    stack.start_fake(keep=True)
    assert stopped == [] and "left as it is" in capsys.readouterr().out
