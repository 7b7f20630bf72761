"""The suite's lanes are enforced (tests/lanes.py): a test that uses a fixture starting a server
without the lane's marker fails collection; a pure test that starts a process fails; an unmarked
test is pure; the fixtures' xdist groups are applied. And the kill sweep's sample
(tests/server/conftest.py `kill_points`) covers every stage boundary."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

CONFTEST = textwrap.dedent("""
    import sys
    import pytest
    from tests import processes
    from tests.lanes import lane

    pytest_plugins = ["tests.lanes"]

    @pytest.fixture(scope="session")
    @lane("server", group="shared")
    def a_server():
        return "server"

    @pytest.fixture
    def starts_a_process():
        with processes.spawn("a sleeper", [sys.executable, "-c", "import time; time.sleep(30)"]):
            yield
""")


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the sub-suite imports tests.lanes and tests.processes
    pytester.makeconftest(CONFTEST)
    return pytester


def test_a_server_fixture_without_its_lane_marker_fails_collection(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_x="""
        def test_uses_a_server(a_server):
            assert a_server
    """)
    result = suite.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*test_uses_a_server: uses the fixture 'a_server'*add pytest.mark.server*"])


def test_marked_tests_collect_with_their_group_and_unmarked_ones_are_pure(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_x="""
        import pytest

        @pytest.mark.server
        def test_uses_a_server(a_server, request):
            assert request.node.get_closest_marker("xdist_group").args == ("shared",)

        def test_plain(request):
            assert request.node.get_closest_marker("pure") is not None
    """)
    assert suite.runpytest_subprocess("-p", "no:cacheprovider", "-m", "pure").parseoutcomes() == {
        "passed": 1, "deselected": 1}
    assert suite.runpytest_subprocess("-p", "no:cacheprovider").parseoutcomes() == {"passed": 2}


def test_a_group_runs_on_one_xdist_worker(suite: pytest.Pytester) -> None:
    """The groups the fixtures name really keep their tests on one worker (a pytest that stopped
    honouring xdist's groups would spread them, and start a one-of-a-kind server twice)."""
    suite.makepyfile(**{f"test_{n}": f"""
        import os, pytest

        @pytest.mark.server
        @pytest.mark.parametrize("i", range(4))
        def test_in_group(a_server, i, tmp_path_factory):
            (tmp_path_factory.getbasetemp().parent / f"{n}-{{i}}").write_text(os.environ["PYTEST_XDIST_WORKER"])

        @pytest.mark.parametrize("i", range(4))
        def test_anywhere(i):
            pass
    """ for n in ("a", "b")})
    result = suite.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", "--dist", "loadgroup")
    assert result.parseoutcomes()["passed"] == 16
    marks = list(suite.path.rglob("[ab]-[0-3]"))  # under the sub-run's --basetemp
    assert len(marks) == 8 and len({f.read_text() for f in marks}) == 1, {f.name: f.read_text() for f in marks}


def test_a_pure_test_that_starts_a_process_fails(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_x="""
        import pytest

        def test_pure(starts_a_process):
            pass

        @pytest.mark.server
        def test_server(starts_a_process):
            pass
    """)
    result = suite.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.parseoutcomes() == {"passed": 1, "errors": 1}
    result.stdout.fnmatch_lines(["*LaneError: a test of the pure lane started a sleeper*"])


def test_the_kill_sample_holds_both_ends_and_every_stage_boundary() -> None:
    from tests.server.conftest import kill_points

    writes = [("POST", "/work_pools/"), ("POST", "/block_types/"), ("POST", "/block_documents/"),
              ("POST", "/variables/"), ("POST", "/flows/"), ("POST", "/deployments/"),
              ("POST", "/deployments/1/schedules"), ("POST", "/deployments/"), ("POST", "/automations/"),
              ("DELETE", "/deployments/2")]
    assert kill_points(writes, "all") == list(range(1, 10))
    # after the first; after the last of each stage (pools+types 2, blocks 4, flows 5, deployments 8,
    # automations 9); after the last but one (9)
    assert kill_points(writes, "sample") == [1, 2, 4, 5, 8, 9]


def collected(marks: str, *paths: str) -> list[str]:
    """The node ids this repository's suite collects from `paths` under `-m marks`."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-m", marks,
                           *paths], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return [line for line in proc.stdout.splitlines() if "::" in line]


@pytest.mark.parametrize(("marks", "built_on"), [("slow or not slow", "real"), ("(slow or not slow) and not chap", "fake")])
def test_the_topology_is_built_once_on_the_real_chap_core_when_its_lane_runs(marks: str, built_on: str) -> None:
    """tests/topology/conftest.py: with the chap lane selected (make test, CI) the topology's tests
    run on the real chap-core only; without it, on the fake's CHAP."""
    ids = collected(marks, "tests/topology")
    assert len(ids) == 3 and all(line.endswith(f"[{built_on}]") for line in ids), ids


@pytest.mark.parametrize(("marks", "runs"), [("slow or not slow", "all"), ("not slow", "sample")])
def test_a_kill_sweeps_sample_is_left_out_when_the_whole_sweep_runs(marks: str, runs: str) -> None:
    """tests/server/conftest.py: the sample's kill points are a subset of the sweep's."""
    ids = [i for i in collected(marks, "tests/server/test_server_apply.py", "tests/server/test_run_settings.py")
           if "killed_apply" in i]
    assert len(ids) == 3 and all(i.endswith(f"{runs}]") for i in ids), ids
