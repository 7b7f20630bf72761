"""Fixtures for `chapctl preflight` against the fake DHIS2+CHAP (with DHIS2's limits on, as always):
three fakes of the session — the main one (its route waits 60 s, as docs/operations.md asks), one
whose `chap` route is gone, and one whose route keeps DHIS2's default 5 s — each reset before every
test with today pinned to `scenario.TODAY`.
"""

from __future__ import annotations

import pytest

from tests.fake_dhis2 import FakeDhis2Server
from tests.preflight.scenario import PASSWORD, TODAY, USERNAME


def _fake() -> FakeDhis2Server:
    return FakeDhis2Server(username=USERNAME, password=PASSWORD, today=TODAY)


@pytest.fixture(scope="session")
def fakes():
    with _fake() as main, _fake() as no_route, _fake() as slow_route:
        yield {"main": main, "no_route": no_route, "slow_route": slow_route}


@pytest.fixture
def fake(fakes) -> FakeDhis2Server:
    """The main fake, reset; the route's timeout as advised (60 s)."""
    for name, server in fakes.items():
        server.admin.reset(TODAY)
    fakes["main"].admin.route(responseTimeoutSeconds=60)
    fakes["no_route"].admin.route(code="chap-core", id="Zy0ChapCore")  # renamed: /api/routes/chap/run is a 404
    return fakes["main"]


@pytest.fixture
def env(monkeypatch) -> dict[str, str]:
    """The environment preflight reads: today pinned, the read budgets left at the flow's defaults."""
    for name in ("CHAP_DHIS2_MAX_RECORDS", "CHAP_DHIS2_MAX_REQUEST_LINE", "CHAP_DHIS2_CONCURRENT_READS",
                 "CHAPCTL_SECRETS"):
        monkeypatch.delenv(name, raising=False)
    return {"CHAP_TODAY": TODAY.isoformat(), "PATH": "/usr/bin:/bin"}
