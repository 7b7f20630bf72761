"""The CHAP concurrency limit: one slot of a Prefect global concurrency limit, held around each
setup's CHAP work so the projects sharing a chap-core host never run more jobs there at once than
the limit allows (one model run takes 5-8 GiB of memory).

chapctl creates the limit (one per DHIS2 instance, shared by every project that uses it) and
passes its name to the flow as the parameter `chap_concurrency_limit`. Without it nothing here
talks to the Prefect server.

A slot is asked for with Prefect's own `prefect.concurrency.sync.concurrency` (`strict=True`: a
limit that does not exist is an error, not a silent "no limit"). Prefect holds it with a lease
(renewed in a background thread every 225 s; a run that dies frees its slot when the lease
expires, 300 s later) and waits for a free slot by retrying after the server's `Retry-After`
(at most `PREFECT_SERVER_CONCURRENCY_MAXIMUM_CONCURRENCY_SLOT_WAIT_SECONDS`, 30 s by default).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from flows.report import LimitCheck

LEASE_SECONDS = 300.0  # Prefect's default lease; the server accepts 60 s .. 1 day

_MISSING_MARK = "must be created before acquiring slots"  # Prefect 3.9's strict-mode error


class SlotError(RuntimeError):
    """No slot of the CHAP concurrency limit: the limit is missing or unusable, or none came free in time."""

    def __init__(self, message: str, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing  # the limit does not exist on the Prefect server


def missing_limit_text(limit: str) -> str:
    return (f"the CHAP concurrency limit {limit!r} does not exist on the Prefect server; run `chapctl apply` "
            "to create it")


@dataclass(frozen=True)
class Slot:
    limit: str
    waited: float  # seconds from asking for the slot to getting it


def _holder() -> Any:
    """The flow run holding the slot, so the Prefect UI can say who holds it."""
    from prefect.client.schemas.objects import ConcurrencyLeaseHolder
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return None
    return ConcurrencyLeaseHolder(type="flow_run", id=context.flow_run.id)


@contextmanager
def chap_slot(limit: str | None, timeout: float, logger: Any) -> Iterator[Slot | None]:
    """Hold one slot of the global concurrency limit `limit` for the block's duration.

    `None` yields `None` and makes no request at all. Otherwise waits up to `timeout` seconds for
    a slot and raises `SlotError` (with a message for operators) when the limit does not exist,
    cannot be used, or no slot came free in time; nothing has been sent to chap-core then.
    Releasing the slot never fails the block: if the release request fails, the lease expires.
    """
    if limit is None:
        yield None
        return
    from prefect.concurrency.asyncio import (
        AcquireConcurrencySlotTimeoutError,
        ConcurrencySlotAcquisitionError,
    )
    from prefect.concurrency.sync import concurrency

    held = concurrency(
        limit, occupy=1, timeout_seconds=timeout, lease_duration=LEASE_SECONDS, strict=True,
        holder=_holder(),
        # The job is already running in chap-core when a renewal can fail: stopping the run would
        # neither free chap-core's memory nor keep the forecast, so a renewal failure only warns.
        raise_on_lease_renewal_failure=False,
    )
    asked = time.monotonic()
    try:
        held.__enter__()
    except AcquireConcurrencySlotTimeoutError:
        raise SlotError(f"no slot of the CHAP concurrency limit {limit!r} came free within {timeout:g} s "
                        "(CHAP_SLOT_TIMEOUT_SECONDS, default CHAP_SCHEDULER_PREDICTION_TIMEOUT_SECONDS); "
                        "the prediction was not submitted") from None
    except ConcurrencySlotAcquisitionError as exc:
        if _MISSING_MARK in str(exc):
            raise SlotError(missing_limit_text(limit), missing=True) from None
        raise SlotError(f"could not take a slot of the CHAP concurrency limit {limit!r}: {exc}") from None
    slot = Slot(limit, time.monotonic() - asked)
    if slot.waited >= 1:
        logger.info("waited %.0f s for a slot of the CHAP concurrency limit %r", slot.waited, limit)
    try:
        yield slot
    except BaseException as exc:
        _release(held, exc, limit, logger)
        raise
    _release(held, None, limit, logger)


def _release(held: Any, exc: BaseException | None, limit: str, logger: Any) -> None:
    try:
        held.__exit__(type(exc) if exc else None, exc, exc.__traceback__ if exc else None)
    except Exception as problem:
        if problem is exc:
            return
        logger.warning("could not release the slot of the CHAP concurrency limit %r (%s); the Prefect server "
                       "frees it when its lease expires, within %.0f s", limit, problem, LEASE_SECONDS)


def read_limit(limit: str) -> LimitCheck:
    """Read the limit as the run starts; `SlotError` when the run cannot use it (missing, or
    allowing no job at all). An inactive limit limits nothing in Prefect: the run goes on and the
    report says so."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    try:
        with get_client(sync_client=True) as client:
            found = client.read_global_concurrency_limit_by_name(limit)
    except ObjectNotFound:
        raise SlotError(missing_limit_text(limit), missing=True) from None
    if not found.active:
        return LimitCheck(limit, True, "INACTIVE", "turned off on the Prefect server: CHAP jobs are not limited")
    if found.limit < 1:
        raise SlotError(f"the CHAP concurrency limit {limit!r} allows {found.limit} jobs at a time, so no "
                        "prediction could run; give it a limit of 1 or more")
    return LimitCheck(limit, True, "READY", f"{found.limit} CHAP job{'s' if found.limit != 1 else ''} at a time "
                                            f"({found.active_slots} in use as the run started)")
