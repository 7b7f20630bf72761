"""The lanes plugin (tests/lanes.py: every test's lane, enforced; xdist groups), session-wide
reporting (which server backends this run covers, said at the start and the end) and the session's
one real chap-core 2.5.1 (`real_chap`, tests/chap_real/): defined here so that tests/chap_real and
tests/topology share a single instance (the xdist group `chap` keeps them on one worker).

Provisioning that fails (no Python 3.13, the environment build, a process that does not come
up, a seeding job that fails) fails the tests that use it, with the reason; it never skips them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.lanes import lane

pytest_plugins = ["tests.lanes", "pytester"]


def pytest_report_header(config):
    from tests.server.prefect_server import backends_report

    return backends_report()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    from tests.server.prefect_server import backends_report

    line = backends_report()
    terminalreporter.write_line(line, yellow="only" in line or "fail" in line)


@pytest.fixture(scope="session")
@lane("chap", group="chap")
def real_chap(tmp_path_factory) -> Iterator["ChapCore"]:  # noqa: F821 (imported inside: lazily)
    """A started chap-core: `.url` (the REST API's base URL), `.setups` ({"monthly", "weekly"} -> Setup)."""
    from tests.chap_real.chap import ChapCore
    from tests.chap_real.seed import seed_setups

    chap = problem = None
    try:
        chap = ChapCore.start(tmp_path_factory.mktemp("chap-core"))
        chap.setups = seed_setups(chap)
    except Exception as exc:  # the start's own errors carry the logs' tails; the seeding's do not
        problem = f"{exc}\n{chap.log_tails()}" if chap else str(exc)
        if chap:
            chap.stop()
    if problem:
        pytest.fail(f"could not provision the real chap-core lane: {problem}", pytrace=False)
    yield chap
    chap.stop()
