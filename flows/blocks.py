"""The `chap-dhis2-credentials` block type: one DHIS2 instance's base URL and login.

CHAP is reached through the DHIS2 route `/api/routes/chap/run`, so one credential set covers both.
"""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field, SecretStr, field_validator

BLOCK_TYPE_SLUG = "chap-dhis2-credentials"


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
        from urllib.parse import urlsplit

        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"base_url must be an http(s) URL with a host, got {value!r}")
        return value.strip().rstrip("/")
