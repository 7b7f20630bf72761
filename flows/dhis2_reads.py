"""DHIS2 reads that fit DHIS2's limits, for a setup of any size.

DHIS2 answers at most 50,000 analytics records per request (`keyAnalyticsMaxLimit`; more is
refused with 409 E7128) and a proxy in front of it refuses a request line longer than its buffer
(nginx: 8 KB; 414). Every dimension of an analytics read is in its URL, and so are the ids of the
org-unit read. So every read is planned from the setup's size:

- **Planner** (pure): `plan_analytics` cuts (data elements × periods × org units) into chunks
  that each stay under a record budget (counting every cell as a record, the most DHIS2 could
  answer) and a request-line budget, splitting org units first, then periods, then data
  elements, into groups as even as the budgets allow. `plan_ids` does the same for the org-unit
  read, by its URL alone.
- **Executor**: `run_reads` sends the chunks a few at a time (a bounded thread pool; the httpx
  client is thread-safe and retries each read under `flows.retrying`'s policy). A chunk refused
  anyway (a DHIS2 with a smaller cap, a shorter proxy buffer: 409 E7128 or 414) is halved and
  only its halves are read again. Each answer is handed to `consume` in this thread as it comes,
  so the caller turns it into its own form at once and no full copy of the raw answers is kept.
  Python's cyclic garbage collector is paused meanwhile (`collector_paused`).

Budgets: `ReadBudget`, from the environment (`flows.run_config`).
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar
from urllib.parse import quote

DEFAULT_MAX_RECORDS = 25_000  # half of DHIS2's default cap (50,000)
DEFAULT_MAX_REQUEST_LINE = 6_000  # bytes; nginx's buffer is 8 KB, and a proxy may add a path prefix
DEFAULT_CONCURRENCY = 4

# Relative periods the flow asks for (the end-period probe), by how many periods each covers.
RELATIVE_PERIODS = {"LAST_12_MONTHS": 12, "LAST_52_WEEKS": 52, "LAST_5_YEARS": 5}
RECORD_CAP_ERROR = "E7128"  # DHIS2: "Query result set exceeded max limit"
_SEPARATOR = len(quote(";", safe=""))  # ";" between dimension items and "," between ids: 3 bytes each


@dataclass(frozen=True)
class ReadBudget:
    max_records: int = DEFAULT_MAX_RECORDS
    max_request_line: int = DEFAULT_MAX_REQUEST_LINE
    concurrency: int = DEFAULT_CONCURRENCY


class ReadPlanError(ValueError):
    """Even the smallest read does not fit the budgets."""


def item_bytes(item: str) -> int:
    """What one dimension item adds to a request line: itself percent-encoded (the most any
    client encodes it) and its separator."""
    return len(quote(item, safe="")) + _SEPARATOR


def period_weight(period: str) -> int:
    return RELATIVE_PERIODS.get(period, 1)


@dataclass(frozen=True)
class Chunk:
    """One analytics read."""

    dx: tuple[str, ...]
    pe: tuple[str, ...]
    ou: tuple[str, ...]

    @property
    def records(self) -> int:
        """The most records DHIS2 could answer: one per data element, period and org unit."""
        return len(self.dx) * sum(period_weight(p) for p in self.pe) * len(self.ou)

    def line(self, fixed: int) -> int:
        """The request line's length, given that of the same request with no items."""
        return fixed + sum(item_bytes(item) for dim in (self.dx, self.pe, self.ou) for item in dim)

    def halves(self) -> tuple[Chunk, Chunk] | None:
        """The chunk cut in two along the first dimension that has two items: org units, then
        periods, then data elements; None for one data element, period and org unit."""
        for dim in ("ou", "pe", "dx"):
            items = getattr(self, dim)
            if len(items) > 1:
                middle = len(items) // 2
                return replace(self, **{dim: items[:middle]}), replace(self, **{dim: items[middle:]})
        return None


_SPLIT_ORDER = ("ou", "pe", "dx")


def plan_analytics(dx: Sequence[str], pe: Sequence[str], ou: Sequence[str], budget: ReadBudget,
                   fixed_line: int) -> list[Chunk]:
    """Chunks covering every (data element, period, org unit) exactly once, each within the record
    and request-line budgets. `fixed_line` is the request line with every dimension empty."""
    return _split(Chunk(tuple(dx), tuple(pe), tuple(ou)), _SPLIT_ORDER, budget, fixed_line)


def _fits(chunk: Chunk, budget: ReadBudget, fixed: int) -> bool:
    return chunk.records <= budget.max_records and chunk.line(fixed) <= budget.max_request_line


def _split(chunk: Chunk, order: tuple[str, ...], budget: ReadBudget, fixed: int) -> list[Chunk]:
    if _fits(chunk, budget, fixed):
        return [chunk]
    if not order:
        raise ReadPlanError(
            f"one analytics read of a single data element, period and org unit needs {chunk.records} records and "
            f"a {chunk.line(fixed)}-byte request line, over the budget of {budget.max_records} records "
            f"(CHAP_DHIS2_MAX_RECORDS) or {budget.max_request_line} bytes (CHAP_DHIS2_MAX_REQUEST_LINE); raise it")
    dim, rest = order[0], order[1:]
    weights = {"dx": [1] * len(chunk.dx), "pe": [period_weight(p) for p in chunk.pe], "ou": [1] * len(chunk.ou)}
    others = 1
    for other in _SPLIT_ORDER:
        others *= sum(weights[other]) if other != dim else 1
    records = [others * weight for weight in weights[dim]]
    line_room = budget.max_request_line - replace(chunk, **{dim: ()}).line(fixed)
    groups = _groups(getattr(chunk, dim), records, budget.max_records, line_room)
    return [piece for group in groups for piece in _split(replace(chunk, **{dim: group}), rest, budget, fixed)]


def _groups(items: Sequence[str], records: Sequence[int], max_records: int, line_room: int) -> list[tuple[str, ...]]:
    """Consecutive groups within both budgets, as few as a greedy fill gives, then made even when
    they still fit (so that parallel reads are alike). An item too big alone is a group alone
    (the caller splits it along the next dimension)."""
    def fits(lo: int, hi: int) -> bool:
        return (sum(records[lo:hi]) <= max_records
                and sum(item_bytes(item) for item in items[lo:hi]) <= line_room)

    bounds, start, total_records, total_bytes = [], 0, 0, 0
    for index, item in enumerate(items):
        size = item_bytes(item)
        if index > start and (total_records + records[index] > max_records or total_bytes + size > line_room):
            bounds.append((start, index))
            start, total_records, total_bytes = index, 0, 0
        total_records += records[index]
        total_bytes += size
    bounds.append((start, len(items)))
    count = len(bounds)
    even = [(len(items) * k // count, len(items) * (k + 1) // count) for k in range(count)]
    if all(fits(lo, hi) for lo, hi in even):
        bounds = even
    return [tuple(items[lo:hi]) for lo, hi in bounds]


def plan_ids(ids: Sequence[str], budget: ReadBudget, fixed_line: int) -> list[tuple[str, ...]]:
    """Groups of ids for a read that lists them in its URL (the org-unit read), each within the
    request-line budget."""
    if not ids:
        return []
    groups = _groups(ids, [0] * len(ids), budget.max_records, budget.max_request_line - fixed_line)
    too_long = [group for group in groups if len(group) == 1 and fixed_line + item_bytes(group[0]) >
                budget.max_request_line]
    if too_long:
        raise ReadPlanError(f"a read of the one id {too_long[0][0]!r} needs a {fixed_line + item_bytes(too_long[0][0])}"
                            f"-byte request line, over the budget of {budget.max_request_line} bytes "
                            "(CHAP_DHIS2_MAX_REQUEST_LINE); raise it")
    return groups


def halve_ids(ids: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    return (ids[:len(ids) // 2], ids[len(ids) // 2:]) if len(ids) > 1 else None


# ---------------------------------------------------------------- executor


@dataclass
class ReadStats:
    """What a setup's DHIS2 reads took: answered reads, reads refused as too big (each then
    halved), analytics records and bytes received."""

    reads: int = 0
    refused: int = 0
    records: int = 0
    bytes: int = 0

    def add(self, other: ReadStats) -> ReadStats:
        self.reads += other.reads
        self.refused += other.refused
        self.records += other.records
        self.bytes += other.bytes
        return self


@dataclass(frozen=True)
class Page:
    """One read's answer: its items (analytics rows, org units) and its size on the wire."""

    items: list[Any]
    bytes: int
    records: int = 0  # analytics records (rows) in it


def too_big(exc: BaseException) -> bool:
    """DHIS2's 409 E7128 (over its record cap) or a proxy's 414 (request line too long)."""
    status = getattr(exc, "status", None)
    return status == 414 or (status == 409 and getattr(exc, "code", None) == RECORD_CAP_ERROR)


C = TypeVar("C")


@dataclass
class _Reads(Generic[C]):
    read: Callable[[C], Page]
    halve: Callable[[C], tuple[C, C] | None]
    consume: Callable[[Page], None]
    stats: ReadStats


def run_reads(chunks: Sequence[C], read: Callable[[C], Page], halve: Callable[[C], tuple[C, C] | None],
              consume: Callable[[Page], None], concurrency: int) -> ReadStats:
    """Read every chunk, `concurrency` at a time; `consume` gets each page in this thread as it
    arrives. A chunk refused as too big is halved and its halves read instead; any other error
    (after the client's own retries) stops the reads and is raised."""
    reads = _Reads(read, halve, consume, ReadStats())
    pool = ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="dhis2-read")
    try:
        with collector_paused():
            pending: dict[Future[Page], C] = {pool.submit(read, chunk): chunk for chunk in chunks}
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    _settle(reads, pool, pending, pending.pop(future), future)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return reads.stats


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for the block (as it was after it). A national read
    makes hundreds of thousands of small containers (answer rows, request items) and keeps most
    of them: each collection would walk the whole growing dataset again (measured: about half
    of the data phase of 700 districts, `bench/flow.py`). None of them is in a cycle, so
    reference counting frees them all the same."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _settle(reads: _Reads[C], pool: ThreadPoolExecutor, pending: dict[Future[Page], C], chunk: C,
            future: Future[Page]) -> None:
    try:
        page = future.result()
    except Exception as exc:
        halves = reads.halve(chunk) if too_big(exc) else None
        if halves is None:
            raise
        reads.stats.refused += 1
        for half in halves:
            pending[pool.submit(reads.read, half)] = half
        return
    reads.stats.reads += 1
    reads.stats.bytes += page.bytes
    reads.stats.records += page.records
    reads.consume(page)
