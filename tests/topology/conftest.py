"""The production topology is built once per run: on the real chap-core when the chap lane is
selected too (what `make test` and CI run), else on the fake's CHAP.

Everything the topology's tests look at (nginx and TLS, the git daemon and the pull step, the
websockets, the workers sharing the pool, chapctl's writes through the proxy) is the same whichever
CHAP answers behind the fake DHIS2's route; only the CHAP differs. Building it a second time for
the fake when the real one runs cost about a minute of the suite's budget and proved nothing more.
"""

from __future__ import annotations

import pytest


def _backend(item: pytest.Item) -> str | None:
    return getattr(getattr(item, "callspec", None), "params", {}).get("chap_backend")


@pytest.hookimpl(trylast=True)  # after `-m` and `-k` chose what runs
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "real" not in {_backend(item) for item in items}:
        return
    twice = [item for item in items if _backend(item) == "fake"]
    config.hook.pytest_deselected(items=twice)
    items[:] = [item for item in items if _backend(item) != "fake"]
