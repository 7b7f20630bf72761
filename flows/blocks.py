"""The `chap-dhis2-credentials` block type: one DHIS2 instance's base URL and login.

CHAP is reached through the DHIS2 route `/api/routes/chap/run`, so one credential set covers both.
The block also builds the HTTP clients the prediction flow uses for each service.
"""

from __future__ import annotations

from typing import Any

from prefect.blocks.core import Block
from pydantic import Field, SecretStr, field_validator

from flows import http
from flows.constants import BLOCK_TYPE_SLUG
# The clients and their settings live in flows.http (no Prefect import: chapctl preflight uses them).
from flows.http import (CHAP_ROUTE_PATH, CHAP_TIMEOUT, DHIS2_TIMEOUT, RETRY_ATTEMPTS,  # noqa: F401
                        RETRY_BACKOFF_CAP_SECONDS, RETRY_BACKOFF_SECONDS, RETRYABLE_ERRORS, RETRYABLE_METHODS,
                        RetryingClient)


class Dhis2Credentials(Block):
    """Credentials for a DHIS2 instance (and the CHAP server behind its `chap` route)."""

    _block_type_name = "CHAP DHIS2 Credentials"
    _block_type_slug = BLOCK_TYPE_SLUG
    _description = "Base URL, username and password of a DHIS2 instance that routes to CHAP."

    base_url: str = Field(..., description="DHIS2 base URL, e.g. https://dhis2.example.org (a context path is kept).")
    username: str = Field(..., description="DHIS2 username used with HTTP Basic auth.")
    password: SecretStr = Field(..., description="DHIS2 password.")

    @field_validator("base_url")
    @classmethod
    def _normalise_base_url(cls, value: str) -> str:
        # One canonical form (no trailing slash) so that chapctl's compiled value and the stored
        # value compare equal and plan shows no spurious drift.
        return http.normalise_base_url(value)

    def dhis2_client(self, **options: Any) -> RetryingClient:
        """A client for DHIS2 itself; request paths such as `/api/system/info` keep the context path.

        `options` (e.g. `logger`, `attempts`, `backoff`) go to `RetryingClient`.
        """
        return http.dhis2_client(self.base_url, self.username, self.password.get_secret_value(), **options)

    def chap_client(self, **options: Any) -> RetryingClient:
        """A client for chap-core through the DHIS2 route; paths are chap's own, e.g. `/v1/jobs`."""
        return http.chap_client(self.base_url, self.username, self.password.get_secret_value(), **options)
