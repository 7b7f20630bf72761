"""`python -m tests.chap_real serve` (what `make run CHAP=real` starts): ready, described, stopped by PID."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.server.server_envs import REPO

pytestmark = [pytest.mark.chap, pytest.mark.timeout(900)]


def processes_in(folder: Path) -> list[int]:
    """PIDs whose working directory is `folder` (chap-core's Redis, API and worker run there)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if Path(os.readlink(entry / "cwd")) == folder:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_serve_seeds_describes_and_stops_everything(tmp_path: Path) -> None:
    home, state_file = tmp_path / "chap", tmp_path / "chap-core.json"
    serve = subprocess.Popen([sys.executable, "-m", "tests.chap_real", "serve", "--home", str(home),
                              "--state-file", str(state_file)], cwd=REPO, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while not state_file.is_file():
            assert serve.poll() is None, serve.communicate()
            assert time.monotonic() < deadline, "serve did not get ready"
            time.sleep(0.5)
        state = json.loads(state_file.read_text())
        assert sorted(state["setups"]) == ["monthly", "weekly"]
        listed = {s["id"]: s for s in httpx.get(f"{state['url']}/v1/crud/prediction-setups", timeout=30).json()}
        for kind, setup in state["setups"].items():
            assert listed[setup["id"]]["configuredModel"]["id"] == setup["configured_model_id"], kind
            assert setup["period_type"] == {"monthly": "month", "weekly": "week"}[kind]
        assert httpx.get(f"{state['url']}/health/ready", timeout=30).status_code == 200
        assert len(processes_in(home)) == 3  # redis, API, worker
    finally:
        os.killpg(serve.pid, signal.SIGTERM) if serve.poll() is None else None
        out, err = serve.communicate(timeout=120)
    assert serve.returncode == 0, err
    assert "chap-core 2.5.1 serving at" in out
    assert not state_file.exists()
    assert processes_in(home) == []
