"""`.chapctl/cache/` keeps the newest entries of each kind and never a half-written file."""

from __future__ import annotations

import os

from compiler.cachedir import KEEP, store


def test_store_keeps_the_newest_of_each_kind(tmp_path):
    for i in range(KEEP + 4):
        store(tmp_path / f"artifact-prefect-{i:032x}.json", "{}")
        os.utime(tmp_path / f"artifact-prefect-{i:032x}.json", ns=(i * 10**9, i * 10**9))
    store(tmp_path / "artifact-laos-dhis2-0.json", "{}")  # another kind: its own count
    store(tmp_path / "fresh-1", "")
    store(tmp_path / "fresh-stat-1", "")
    store(tmp_path / f"artifact-prefect-{99:032x}.json", "{}")
    kept = sorted(p.name for p in tmp_path.glob("artifact-prefect-*"))
    assert len(kept) == KEEP and f"artifact-prefect-{99:032x}.json" in kept
    assert f"artifact-prefect-{0:032x}.json" not in kept  # the oldest went first
    assert {p.name for p in tmp_path.glob("fresh-*")} == {"fresh-1", "fresh-stat-1"}
    assert (tmp_path / "artifact-laos-dhis2-0.json").exists()
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


def test_an_unwritable_cache_is_no_error(tmp_path):
    blocked = tmp_path / ".chapctl"
    blocked.write_text("a file where the cache folder would go")
    store(blocked / "cache" / "fresh-1")  # must not raise: plan works without its cache
    assert blocked.read_text().startswith("a file")
