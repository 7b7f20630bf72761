"""The production topology is built once per run: on the real chap-core when the chap lane is
selected too (what `make test` and CI run), else on the fake's CHAP.

Everything the topology's tests look at (nginx and TLS, the git daemon and the pull step, the
websockets, the workers sharing the pool, chapctl's writes through the proxy) is the same whichever
CHAP answers behind the fake DHIS2's route; only the CHAP differs. Building it a second time for
the fake when the real one runs cost about a minute of the suite's budget and proved nothing more.
"""

from __future__ import annotations

import pytest


@pytest.hookimpl(trylast=True)  # after `-m` and `-k` chose what runs
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    topology = [item for item in items if item.get_closest_marker("topology")]
    backends = {getattr(item, "callspec", None) and item.callspec.params.get("chap_backend") for item in topology}
    if "real" not in backends:
        return
    twice = [item for item in topology if item.callspec.params.get("chap_backend") == "fake"]
    if twice:
        config.hook.pytest_deselected(items=twice)
        items[:] = [item for item in items if item not in twice]
