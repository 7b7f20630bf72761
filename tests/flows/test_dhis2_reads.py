"""The DHIS2 read planner and executor (pure: no server; the executor runs on in-memory reads)."""

from __future__ import annotations

import gc
import threading
from itertools import product

import httpx
import pytest

from flows.api import ServiceError, error_code, error_detail
from flows.dhis2_reads import (Chunk, Page, ReadBudget, ReadPlanError, halve_ids, item_bytes, plan_analytics,
                               plan_ids, run_reads)
from flows.prediction_request import latest_period_per_element

FIXED = 120  # a request line with no items, about what the flow's analytics read has
DX = [f"D{i:010d}" for i in range(4)]
WEEKS = [f"2024W{w}" for w in range(1, 53)] + [f"2025W{w}" for w in range(1, 53)] + [f"2026W{w}" for w in range(1, 7)]
DISTRICTS = [f"S{i:010d}" for i in range(700)]


def cells(chunks: list[Chunk]) -> list[tuple[str, str, str]]:
    return [cell for chunk in chunks for cell in product(chunk.dx, chunk.pe, chunk.ou)]


def test_700_districts_by_110_weeks_by_4_covariates_split_by_org_units_within_both_budgets() -> None:
    budget = ReadBudget()
    chunks = plan_analytics(DX, WEEKS, DISTRICTS, budget, FIXED)

    every = cells(chunks)
    assert len(every) == len(set(every)) == 700 * 110 * 4  # every cell once
    assert all(chunk.records <= budget.max_records and chunk.line(FIXED) <= budget.max_request_line
               for chunk in chunks)
    assert all(chunk.dx == tuple(DX) and chunk.pe == tuple(WEEKS) for chunk in chunks)  # org units split first
    assert len(chunks) == 13  # ceil(308,000 / 25,000)
    assert max(len(c.ou) for c in chunks) - min(len(c.ou) for c in chunks) <= 1  # even


def test_one_org_unit_over_the_record_budget_is_split_by_periods_then_data_elements() -> None:
    by_periods = plan_analytics(DX, WEEKS, ["ouOne"], ReadBudget(max_records=100), FIXED)
    assert all(c.dx == tuple(DX) and c.records <= 100 for c in by_periods)
    assert len(cells(by_periods)) == 440

    by_elements = plan_analytics(DX, ["LAST_52_WEEKS"], ["ouOne"], ReadBudget(max_records=100), FIXED)
    assert [c.dx for c in by_elements] == [(DX[0],), (DX[1],), (DX[2],), (DX[3],)]  # a relative period is 52
    assert all(c.records == 52 for c in by_elements)


def test_a_short_request_line_budget_splits_the_org_units_by_length() -> None:
    budget = ReadBudget(max_request_line=2000)
    chunks = plan_analytics(DX[:1], ["LAST_52_WEEKS"], DISTRICTS, budget, FIXED)
    assert all(chunk.line(FIXED) <= 2000 for chunk in chunks)
    assert len(cells(chunks)) == 700
    assert len(chunks) > 1 and all(chunk.records <= 25_000 for chunk in chunks)


def test_a_read_that_cannot_fit_says_which_setting_to_raise() -> None:
    with pytest.raises(ReadPlanError, match="CHAP_DHIS2_MAX_RECORDS"):
        plan_analytics(DX, ["LAST_52_WEEKS"], ["ouOne"], ReadBudget(max_records=10), FIXED)
    with pytest.raises(ReadPlanError, match="CHAP_DHIS2_MAX_REQUEST_LINE"):
        plan_ids(DISTRICTS, ReadBudget(max_request_line=FIXED + 5), FIXED)


def test_org_unit_ids_are_grouped_by_request_line() -> None:
    groups = plan_ids(DISTRICTS, ReadBudget(), FIXED)
    assert [ou for group in groups for ou in group] == DISTRICTS
    assert all(FIXED + sum(item_bytes(ou) for ou in group) <= 6000 for group in groups)
    assert len(groups) == 2


def test_halving_goes_org_units_then_periods_then_data_elements() -> None:
    chunk = Chunk(("a", "b"), ("p1", "p2"), ("o1", "o2", "o3"))
    assert [c.ou for c in chunk.halves()] == [("o1",), ("o2", "o3")]
    one_unit = Chunk(("a", "b"), ("p1", "p2"), ("o1",))
    assert [c.pe for c in one_unit.halves()] == [("p1",), ("p2",)]
    assert [c.dx for c in Chunk(("a", "b"), ("p1",), ("o1",)).halves()] == [("a",), ("b",)]
    assert Chunk(("a",), ("p1",), ("o1",)).halves() is None
    assert halve_ids(("x",)) is None


def _capped_reads(cap: int):
    """An in-memory DHIS2 with a record cap: 409 E7128 over it, else one row per cell."""
    seen: list[Chunk] = []
    lock = threading.Lock()

    def read(chunk: Chunk) -> Page:
        with lock:
            seen.append(chunk)
        if chunk.records > cap:
            raise ServiceError("DHIS2", "GET", "/api/analytics", "HTTP 409", 409, "exceeded", "E7128")
        rows = [list(cell) + ["1"] for cell in product(chunk.dx, chunk.pe, chunk.ou)]
        return Page(rows, 10 * len(rows), len(rows))
    return read, seen


def test_a_refused_chunk_is_halved_and_only_it_is_read_again() -> None:
    read, seen = _capped_reads(cap=1000)
    chunks = plan_analytics(DX, WEEKS[:10], DISTRICTS[:100], ReadBudget(max_records=2000), FIXED)
    rows: list[list[str]] = []

    stats = run_reads(chunks, read, Chunk.halves, lambda page: rows.extend(page.items), concurrency=3)

    assert sorted(map(tuple, rows)) == sorted(cell + ("1",) for cell in cells(chunks))  # each cell once
    assert stats.refused == len(chunks) and stats.reads == 2 * len(chunks)  # each halved once
    assert stats.records == 4000 and stats.bytes == 40_000
    assert len(seen) == 3 * len(chunks)


def test_an_error_that_halving_cannot_cure_is_raised() -> None:
    def read(chunk: Chunk) -> Page:
        raise ServiceError("DHIS2", "GET", "/api/analytics", "HTTP 500", 500)

    with pytest.raises(ServiceError, match="HTTP 500"):
        run_reads([Chunk(("a",), ("p",), ("o1", "o2"))], read, Chunk.halves, lambda page: None, concurrency=2)

    read_capped, _ = _capped_reads(cap=0)
    with pytest.raises(ServiceError, match="409"):  # one cell still refused: nothing left to halve
        run_reads([Chunk(("a",), ("p",), ("o1",))], read_capped, Chunk.halves, lambda page: None, concurrency=2)


def test_the_cyclic_collector_is_paused_while_reads_run_and_restored_after() -> None:
    """A national read makes hundreds of thousands of small acyclic containers (rows, items); the
    collector would walk the growing dataset again and again (measured: about half of the data
    phase, bench/flow.py). Refcounting frees them all the same."""
    enabled: list[bool] = []

    def read(chunk: Chunk) -> Page:
        return Page([["a", "p", chunk.ou[0], "1"]], 10, 1)

    run_reads([Chunk(("a",), ("p",), (ou,)) for ou in ("o1", "o2")], read, Chunk.halves,
              lambda page: enabled.append(gc.isenabled()), concurrency=2)
    assert enabled == [False, False] and gc.isenabled()

    def failing(chunk: Chunk) -> Page:
        raise ServiceError("DHIS2", "GET", "/api/analytics", "HTTP 500", 500)

    with pytest.raises(ServiceError):
        run_reads([Chunk(("a",), ("p",), ("o1",))], failing, Chunk.halves, lambda page: None, concurrency=1)
    assert gc.isenabled()
    gc.disable()  # a caller that had it off keeps it off
    try:
        run_reads([Chunk(("a",), ("p",), ("o1",))], read, Chunk.halves, lambda page: None, concurrency=1)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_the_latest_period_of_each_element_is_by_start_and_merged_across_reads() -> None:
    rows = [["a", "2025W9", "o1", "1"], ["a", "2025W10", "o2", "1"], ["b", "2025W5", "o1", "1"],
            ["b", "2025W05", "o2", "1"], ["a", "not-a-week", "o1", "1"], ["c", "2025W30", "o1"]]
    latest = latest_period_per_element(rows, "week")
    assert latest == {"a": "2025W10", "b": "2025W5"}  # unpadded weeks by date; a short row is no value

    latest_period_per_element([["a", "2025W8", "o3", "2"], ["b", "2025W6", "o3", "2"]], "week", latest)
    assert latest == {"a": "2025W10", "b": "2025W6"}
    assert latest_period_per_element([["m", "202412", "o", "1"], ["m", "202501", "o", "1"]], "month") == {"m": "202501"}


def test_a_proxys_html_error_page_is_said_by_its_title() -> None:
    page = ("<html>\r\n<head><title>414 Request-URI Too Large</title></head>\r\n<body>\r\n"
            "<center><h1>414 Request-URI Too Large</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")
    response = httpx.Response(414, text=page, headers={"content-type": "text/html"})
    assert error_detail(response) == "414 Request-URI Too Large"
    assert error_code(response) is None
    capped = httpx.Response(409, json={"httpStatusCode": 409, "message": "Query result set exceeded max limit: `50000`",
                                       "errorCode": "E7128"})
    assert (error_detail(capped), error_code(capped)) == ("Query result set exceeded max limit: `50000`", "E7128")
