"""The suite's lanes, complete and enforced (a pytest plugin, loaded by tests/conftest.py).

Every test belongs to a lane, by marker:

    pure      nothing started: compile, review, the planner on golden files, the client on a
              transport seam (`make test-fast`; the edit loop)
    flows     the flow against the fake DHIS2+CHAP and a Prefect server
    server    plan/apply/status/import against real Prefect servers
    e2e       a real worker and scheduler running deployments applied by the CLI
    chap      the real chap-core 2.5.1
    topology  the production topology (nginx, TLS, git daemon, two workers)
    slow      an exhaustive sweep whose sample runs in the default lanes: deselected by default
              (`addopts`), run by `make test` and CI

A test without a lane marker is `pure`. Fixtures that start something say so with `@lane(...)`
(under `@pytest.fixture`); a test using one without carrying that lane fails collection, and a
`pure` test that starts a process anyway (tests/processes.py) fails when it does.

(PYTEST_DONT_REWRITE: conftest.py imports this module before pytest loads it as a plugin.)

`@lane(name, group=...)` also names an xdist group: the tests sharing a costly one-of-a-kind
process (the SQLite server, the auth server, the real chap-core, a module's stack) go to one
worker, so it starts once per run (`--dist loadgroup`). The marker `sqlite` (a test that runs on
the SQLite server: tests/server/conftest.py) puts the test in the group `sqlite`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import pytest

LANES = {
    "pure": "nothing started: the edit loop's lane (make test-fast)",
    "flows": "the flow against the fake DHIS2+CHAP and a Prefect server started by the suite",
    "server": "needs a real Prefect server started by the suite",
    "e2e": "a real worker and scheduler running what the CLI applied",
    "chap": "needs a real chap-core 2.5.1 (REST API, Celery worker, Redis) started by the suite (tests/chap_real)",
    "topology": "the production topology: nginx with TLS, a git daemon, two workers",
}
SLOW = "slow"
MARKERS = {
    **LANES,
    SLOW: "an exhaustive sweep (its sample runs by default): deselected unless selected, run by make test and CI",
    "sqlite": "runs on the SQLite server (SQLite-specific behaviour): tests/server/conftest.py",
}
SERVER_LANES = frozenset(LANES) - {"pure"}
_ATTRIBUTE = "__chapctl_lane__"

F = TypeVar("F", bound=Callable[..., Any])


def lane(name: str, *, group: str | None = None) -> Callable[[F], F]:
    """Declare that a fixture starts something of lane `name` (apply under `@pytest.fixture`)."""
    if name not in SERVER_LANES:
        raise ValueError(f"unknown lane {name!r}: one of {sorted(SERVER_LANES)}")

    def mark(function: F) -> F:
        setattr(function, _ATTRIBUTE, (name, group))
        return function

    return mark


# The lanes of the test being run (None outside any test: scripts and benchmarks start what they like).
_current: frozenset[str] | None = None


class LaneError(RuntimeError):
    pass


def require_process_lane(what: str) -> None:
    if _current is not None and not (_current & SERVER_LANES):
        raise LaneError(f"a test of the pure lane started {what}: mark the test (or its module) with the lane "
                        f"of what it starts, one of {sorted(SERVER_LANES)} (tests/lanes.py)")


def item_lanes(item: pytest.Item) -> set[str]:
    return {m.name for m in item.iter_markers() if m.name in LANES}


def _fixture_tags(item: pytest.Item) -> list[tuple[str, str, str | None]]:
    """(fixture, lane, group) of every lane-tagged fixture the item uses."""
    tags = []
    info = getattr(item, "_fixtureinfo", None)
    for name in getattr(item, "fixturenames", ()):
        chain = list(info.name2fixturedefs.get(name, ())) if info else []
        # The overriding definition is the last; the ones it overrides count only when it asks for them.
        while chain:
            fixturedef = chain.pop()
            tag = getattr(fixturedef.func, _ATTRIBUTE, None)
            if tag:
                tags.append((name, tag[0], tag[1]))
            if name not in fixturedef.argnames:
                break
    return tags


def pytest_configure(config: pytest.Config) -> None:
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    problems = []
    for item in items:
        lanes = item_lanes(item)
        tags = _fixture_tags(item)
        missing = sorted({(lane_name, fixture) for fixture, lane_name, _ in tags if lane_name not in lanes})
        for lane_name, fixture in missing:
            problems.append(f"{item.nodeid}: uses the fixture {fixture!r}, which starts what the lane {lane_name!r} "
                            f"needs, without the marker: add pytest.mark.{lane_name} to the test or its module")
        if item.get_closest_marker("sqlite") and "server" not in lanes:
            problems.append(f"{item.nodeid}: marked sqlite (runs on the SQLite server) without pytest.mark.server")
        if "pure" in lanes and len(lanes) > 1:
            problems.append(f"{item.nodeid}: marked pure and {sorted(lanes - {'pure'})}: a pure test starts nothing")
        if not lanes:
            item.add_marker("pure")
        if item.get_closest_marker("xdist_group") is None:
            groups = {group for _, _, group in tags if group}
            if item.get_closest_marker("sqlite"):
                groups.add("sqlite")
            if len(groups) > 1:
                problems.append(f"{item.nodeid}: its fixtures want the xdist groups {sorted(groups)}: give the fixtures "
                                "one group")
            elif groups:
                item.add_marker(pytest.mark.xdist_group(groups.pop()))
    if problems:
        raise pytest.UsageError("lane markers (tests/lanes.py):\n  " + "\n  ".join(problems))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    global _current
    _current = frozenset(item_lanes(item))
    try:
        return (yield)
    finally:
        _current = None
