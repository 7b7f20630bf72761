"""The one retry policy of every HTTP client in this repository: the flow's DHIS2 and CHAP clients
(`flows.http.RetryingClient`) and chapctl's Prefect API client (`compiler.reconcile.client`).

Exponential backoff with jitter (attempt n waits between b·2ⁿ⁻¹ and 1.5·b·2ⁿ⁻¹, capped, so that
many clients hitting one outage do not retry in lockstep), a bounded number of attempts, built on
tenacity.
What is retryable stays each caller's call (only what cannot change server state twice, or what
the caller checks afterwards); a server's `Retry-After` is honoured up to the cap. No Prefect
import here: chapctl loads this on its fast path, and only once a request has failed.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import tenacity

DEFAULT_CAP_SECONDS = 8.0


def retry_after(outcome: Any) -> float:
    """Seconds a response's `Retry-After` header asks for (0 when none or unreadable)."""
    response = getattr(outcome, "response", outcome)
    header = getattr(getattr(response, "headers", None), "get", lambda _: None)("Retry-After")
    try:
        return max(0.0, float(header)) if header is not None else 0.0
    except ValueError:
        return 0.0


def policy(*, attempts: int, backoff: float, retry_if: Callable[[tenacity.RetryCallState], bool],
           cap: float = DEFAULT_CAP_SECONDS, sleep: Callable[[float], None] = time.sleep,
           before_sleep: Callable[[tenacity.RetryCallState, float], None] | None = None,
           seconds: float | None = None) -> tenacity.Retrying:
    """A tenacity loop: `for attempt in policy(...): with attempt: ...`.

    `retry_if(state)` decides from the attempt's outcome (an exception, or a result such as an
    HTTP response). After the last attempt the last outcome is returned (or its exception
    re-raised), so the caller turns it into its own error. `seconds` also ends the loop once an
    attempt ends that long after the first began (a look that must end in bounded time)."""
    def wait(state: tenacity.RetryCallState) -> float:
        base = min(cap, backoff * 2 ** (state.attempt_number - 1))
        outcome = state.outcome
        asked = retry_after(outcome.result()) if outcome is not None and not outcome.failed else 0.0
        delay = max(base + random.uniform(0, base / 2), min(asked, cap))
        if seconds is not None:  # the last attempt comes at the deadline, not a whole backoff after it
            delay = min(delay, max(0.0, seconds - (state.seconds_since_start or 0.0)))
        return delay

    def announce(state: tenacity.RetryCallState) -> None:
        if before_sleep is not None:
            before_sleep(state, state.next_action.sleep if state.next_action else 0.0)

    return tenacity.Retrying(
        stop=tenacity.stop_after_attempt(max(1, attempts)) | (
            tenacity.stop_after_delay(seconds) if seconds is not None else tenacity.stop_never),
        wait=wait,
        retry=_Predicate(retry_if),
        sleep=sleep,
        before_sleep=announce,
        reraise=True,
        retry_error_callback=lambda state: state.outcome.result(),
    )


class _Predicate(tenacity.retry_base):
    def __init__(self, decide: Callable[[tenacity.RetryCallState], bool]):
        self.decide = decide

    def __call__(self, state: tenacity.RetryCallState) -> bool:
        return self.decide(state)
