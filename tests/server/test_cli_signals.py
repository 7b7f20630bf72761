"""A CI job cancelled while a long verb waits on the server sends it SIGTERM: every verb ends as
Ctrl-C does (exit 130, "interrupted", no traceback; apply releases its lock on the way out, see
test_concurrency.py), never killed mid-way by the signal's default action."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest

from tests.server.repo import project

pytestmark = pytest.mark.server


@pytest.fixture
def silent_server():
    """A listening socket that accepts connections and never answers: a hung Prefect server."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(60)
        yield listener


@pytest.mark.parametrize("verb", ["plan", "apply", "status", "import"])
def test_sigterm_interrupts_a_verb_waiting_on_the_server(verb, chapctl, make_repo, silent_server):
    """Issue 23 #4/#6: only apply turned SIGTERM into an interruption; plan, status and import died
    of the signal (exit -15, no word on stderr)."""
    repo = make_repo([project("one", "laos-dhis2")], name=f"signal-{verb}")
    env = dict(chapctl.env, PREFECT_API_URL=f"http://127.0.0.1:{silent_server.getsockname()[1]}/api")
    proc = subprocess.Popen([sys.executable, "-m", "compiler", verb], cwd=repo.root,
                            env=chapctl.process_env(repo, env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        connection, _ = silent_server.accept()  # the verb is waiting for the server's first answer
        with connection:
            started = time.monotonic()
            proc.terminate()
            out, err = proc.communicate(timeout=60)
    finally:
        proc.kill() if proc.poll() is None else None
    assert proc.returncode == 130, (proc.returncode, err)
    assert err.strip().splitlines()[-1] == "interrupted" and "Traceback" not in err, err
    assert time.monotonic() - started < 5, "the interruption waited for the server"
