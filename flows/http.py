"""The HTTP clients of one DHIS2 instance and of chap-core behind its `chap` route, with the one retry
policy (`flows.retrying`). No Prefect import: the flow builds them through its credentials block
(`flows.blocks.Dhis2Credentials`), and `chapctl preflight` builds the same clients from a project's
compiled credentials, so both read DHIS2 and CHAP the same way.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable
from urllib.parse import urlsplit

import httpx

from flows.retrying import policy

CHAP_ROUTE_PATH = "/api/routes/chap/run"
"""DHIS2 route (by its code `chap`) that proxies every CHAP call."""

# DHIS2 analytics can take minutes on big instances; the CHAP route itself gives up after at
# most 60 s (DHIS2 caps `responseTimeoutSeconds` at 60), so a little more than that is enough.
DHIS2_TIMEOUT = httpx.Timeout(120.0, connect=10.0)
CHAP_TIMEOUT = httpx.Timeout(75.0, connect=10.0)

RETRY_ATTEMPTS = 3
RETRY_BACKOFF_SECONDS = 0.5
RETRY_BACKOFF_CAP_SECONDS = 8.0

# Only methods whose repetition cannot change server state are retried. A POST to CHAP's
# `/run` creates a job; retrying it after a lost response would start a second prediction.
RETRYABLE_METHODS = frozenset({"GET", "HEAD"})
RETRYABLE_ERRORS = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.ReadError,
    httpx.ReadTimeout,
    httpx.RemoteProtocolError,
)


class RetryingClient(httpx.Client):
    """An httpx client that retries idempotent requests on connection errors and 5xx.

    Retrying in `send` rather than in a transport also covers requests that httpx routes
    through proxy mounts taken from the environment.
    """

    def __init__(
        self,
        *,
        attempts: int = RETRY_ATTEMPTS,
        backoff: float = RETRY_BACKOFF_SECONDS,
        backoff_cap: float = RETRY_BACKOFF_CAP_SECONDS,
        logger: logging.Logger | logging.LoggerAdapter | None = None,
        sleep: Callable[[float], None] = time.sleep,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._attempts = max(1, attempts)
        self._backoff = backoff
        self._backoff_cap = backoff_cap
        self._logger = logger or logging.getLogger(__name__)
        self._sleep = sleep

    def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        if request.method not in RETRYABLE_METHODS:
            return super().send(request, **kwargs)

        def retryable(state) -> bool:
            outcome = state.outcome
            if outcome.failed:
                return isinstance(outcome.exception(), RETRYABLE_ERRORS)
            return outcome.result().status_code >= 500

        def announce(state, delay: float) -> None:
            outcome = state.outcome
            if outcome.failed:
                problem = f"{type(outcome.exception()).__name__}: {outcome.exception()}"
            else:
                problem = f"HTTP {outcome.result().status_code}"
                outcome.result().close()  # its body is not read: another attempt follows
            self._logger.warning("%s %s failed (%s); retry %d of %d in %.1f s", request.method, request.url.path,
                                 problem, state.attempt_number, self._attempts - 1, delay)

        retrying = policy(attempts=self._attempts, backoff=self._backoff, cap=self._backoff_cap,
                          retry_if=retryable, sleep=self._sleep, before_sleep=announce)
        return retrying(super().send, request, **kwargs)


def normalise_base_url(value: str) -> str:
    """One canonical form of a DHIS2 base URL (no trailing slash; a context path is kept), so that
    chapctl's compiled value and the stored value compare equal. Raises ValueError for anything but
    an http(s) URL with a host."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"base_url must be an http(s) URL with a host, got {value!r}")
    return value.strip().rstrip("/")


def dhis2_client(base_url: str, username: str, password: str, **options: Any) -> RetryingClient:
    """A client for DHIS2 itself; request paths such as `/api/system/info` keep the context path.
    `options` (e.g. `logger`, `attempts`, `backoff`) go to `RetryingClient`."""
    return _client(normalise_base_url(base_url), username, password, DHIS2_TIMEOUT, options)


def chap_client(base_url: str, username: str, password: str, **options: Any) -> RetryingClient:
    """A client for chap-core through the DHIS2 route; paths are chap's own, e.g. `/v1/jobs`."""
    return _client(normalise_base_url(base_url) + CHAP_ROUTE_PATH, username, password, CHAP_TIMEOUT, options)


def _client(base_url: str, username: str, password: str, timeout: httpx.Timeout,
            options: dict[str, Any]) -> RetryingClient:
    # httpx joins a base URL that ends in "/" with a request path minus its leading "/",
    # which keeps a DHIS2 context path such as https://host/dhis in every request.
    return RetryingClient(
        base_url=base_url + "/",
        auth=httpx.BasicAuth(username, password),
        timeout=timeout,
        headers={"Accept": "application/json"},
        **options,
    )
