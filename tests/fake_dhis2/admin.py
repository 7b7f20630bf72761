"""Client for the fake's `/__fake__/` admin endpoints; works the same against another process."""

from __future__ import annotations

from datetime import date
from fnmatch import fnmatchcase
from typing import Any

import httpx


class FakeAdmin:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def _call(self, method: str, action: str, body: Any = None) -> Any:
        response = httpx.request(method, f"{self.url}/__fake__{action}", json=body, timeout=10)
        response.raise_for_status()
        return response.json()

    def reset(self, today: date | None = None) -> None:
        """Back to the seed data, with no faults, jobs or recorded requests."""
        self._call("POST", "/reset", {"today": today.isoformat() if today else None})

    def faults(self, **faults: Any) -> dict[str, Any]:
        """Add faults (see `tests.fake_dhis2.state` for the keys)."""
        return self._call("POST", "/faults", faults)

    def route(self, **fields: Any) -> dict[str, Any]:
        """The `chap` route as `GET /api/routes` lists it; fields given are changed first (e.g.
        `responseTimeoutSeconds=1`; None plays a DHIS2 without the field). `reset` restores it."""
        return self._call("PATCH", "/route", fields) if fields else self._call("GET", "/route")

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def requests(self, path: str = "*", method: str = "*") -> list[dict[str, Any]]:
        """Recorded requests, oldest first, whose path matches the glob `path`."""
        return [r for r in self._call("GET", "/requests")
                if fnmatchcase(r["path"], path) and method in ("*", r["method"])]

    def clear_requests(self) -> None:
        self._call("DELETE", "/requests")

    def patch_setup(self, setup_id: int, **fields: Any) -> dict[str, Any]:
        return self._call("PATCH", f"/setups/{setup_id}", fields)

    def put_setup(self, setup: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", "/setups", setup)

    def delete_setup(self, setup_id: int) -> None:
        self._call("DELETE", f"/setups/{setup_id}")

    def state(self) -> dict[str, Any]:
        return self._call("GET", "/state")

    def job_concurrency(self) -> dict[str, Any]:
        """CHAP jobs active now, the peak active at once, and each job's interval
        (`{"job", "setup", "start", "end"}`, Unix seconds; see `tests.fake_dhis2.state`)."""
        return self.state()["job_concurrency"]
