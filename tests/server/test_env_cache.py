"""The suite's cached environments (a second Prefect, chap-core) are built once, also when several
processes ask for the same one at the same time (two suites, a suite and `make run`)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.server.server_envs import REPO

# No server: an empty environment built three times at once (uv, no network).
pytestmark = pytest.mark.pure

BUILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from tests.server.server_envs import cached_env

    home, pins, builds = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])

    def finish(python):
        with builds.open("a") as log:
            log.write(f"{python}\\n")
        time.sleep(1.0)  # a slow last step: another process must not take the half-built env

    print(cached_env(home, sys.executable, pins, "a test environment", finish))
""")


def test_concurrent_callers_build_one_environment(tmp_path: Path) -> None:
    pins, builds, home = tmp_path / "pins.txt", tmp_path / "builds.log", tmp_path / "cache" / "env-abc"
    pins.write_text("# nothing pinned: an empty environment\n")
    procs = [subprocess.Popen([sys.executable, "-c", BUILD, str(home), str(pins), str(builds)], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outputs = [proc.communicate(timeout=300) for proc in procs]

    assert [proc.returncode for proc in procs] == [0, 0, 0], [err for _, err in outputs]
    assert {out.strip() for out, _ in outputs} == {str(home / "bin" / "python")}
    assert builds.read_text().splitlines() == [str(home / "bin" / "python")]  # one build, not three
    assert (home / ".complete").is_file()
    assert subprocess.run([home / "bin" / "python", "-c", "print('ok')"], capture_output=True, text=True).stdout == "ok\n"
