"""Client for the fake's `/__fake__/` admin endpoints; works the same against another process."""

from __future__ import annotations

from datetime import date
from typing import Any

import httpx


class FakeAdmin:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def _call(self, method: str, action: str, body: Any = None, params: dict[str, str] | None = None) -> Any:
        response = httpx.request(method, f"{self.url}/__fake__{action}", json=body, params=params, timeout=60)
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
        """Recorded requests, oldest first, whose path matches the glob `path` (filtered by the fake)."""
        return self._call("GET", "/requests", params={"path": path, "method": method})

    def clear_requests(self) -> None:
        self._call("DELETE", "/requests")

    def patch_setup(self, setup_id: int, **fields: Any) -> dict[str, Any]:
        return self._call("PATCH", f"/setups/{setup_id}", fields)

    def put_setup(self, setup: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", "/setups", setup)

    def delete_setup(self, setup_id: int) -> None:
        self._call("DELETE", f"/setups/{setup_id}")

    def org_unit(self, org_unit: str, **fields: Any) -> dict[str, Any]:
        """Change an org unit until the next reset; a field given as None is removed (`geometry=None`)."""
        return self._call("PATCH", f"/org-units/{org_unit}", fields)

    def limits(self, **limits: int | None) -> dict[str, Any]:
        """Change DHIS2's limits until the next reset (`max_records`, `max_request_line`; None = off);
        with no argument, read them."""
        return self._call("POST", "/limits", limits) if limits else self._call("GET", "/limits")

    def seed_scale(self, setup_id: int, period_type: str, org_units: int, covariates: int, periods: int,
                   name: str | None = None) -> dict[str, Any]:
        """Add a national-scale setup (`tests.fake_dhis2.scale`) and return it."""
        return self._call("POST", "/scale", {"id": setup_id, "periodType": period_type, "orgUnits": org_units,
                                             "covariates": covariates, "periods": periods, "name": name})

    def held_values(self, setup_id: int, first: str, last: str) -> list[list[str]]:
        """Every value DHIS2 holds for the setup from `first` to `last`: `[de, pe, ou, value]`."""
        return self._call("GET", "/values", params={"setup": str(setup_id), "first": first, "last": last})

    def state(self) -> dict[str, Any]:
        return self._call("GET", "/state")

    def job_concurrency(self) -> dict[str, Any]:
        """CHAP jobs active now, the peak active at once, and each job's interval
        (`{"job", "setup", "start", "end"}`, Unix seconds; see `tests.fake_dhis2.state`)."""
        return self.state()["job_concurrency"]
