"""DHIS2's `chap` route in the fake: its record in `GET /api/routes`, its response timeout, and the
connection faults a route call can meet.

A call to `/api/routes/chap/run/<path>` goes to chap -- the built-in fake or, with `chap_url`, a
real chap-core -- and DHIS2 waits for chap's answer at most the route's `responseTimeoutSeconds`
(5 s by default; a route may set 1-60 s). Past it DHIS2 answers **504 with an empty body**
(dhis2-core `RouteService.retrieve`: a read timeout becomes `ResponseEntity<>(GATEWAY_TIMEOUT)`)
while chap goes on: a `POST .../run` still makes its job, seconds after the client heard 504. The
fake does the same: chap's work (the `submit_seconds` delay, then the built-in chap's handling or
the forward to the real one) runs in a task that the timeout does not cancel.

DHIS2 also buffers chap's answer in at most 256 KB ("the maximum allowed size for a route response
body is 256 kilobytes. A response body from the origin exceeding this limit will lead to the DHIS2
server returning a bad gateway error": route.md; Spring's codec buffer, 262,144 bytes). Past it the
fake answers 502 with DHIS2's error body (`too_large`), whatever chap's status, as it would for any
target answering more (the limit `max_route_body`; None turns it off).
"""

from __future__ import annotations

import re
import socket
import struct
from typing import Any

ROUTE_UID = "E8OPcc45A22"  # the dev UID chap's runbook uses
ROUTE_CODE = "chap"
DEFAULT_TIMEOUT_SECONDS = 5  # DHIS2's default (route.md); a route may set 1-60
OLD_DHIS2_TIMEOUT_SECONDS = 10  # DHIS2 before 42 (30 in 40.8-40.9 and 41.4-41.5), which has no such field
_RUN = re.compile(r"^/v1/crud/prediction-setups/(\d+)/run$")


def default_route(chap_url: str | None) -> dict[str, Any]:
    """The route as DHIS2 stores it (the fields `GET /api/routes` can list; no secrets)."""
    target = chap_url.rstrip("/") if chap_url else "http://chap-core:8000"
    return {"id": ROUTE_UID, "code": ROUTE_CODE, "name": "CHAP", "displayName": "CHAP", "disabled": False,
            "url": target + "/**", "responseTimeoutSeconds": DEFAULT_TIMEOUT_SECONDS}


def runs(route: dict[str, Any], code: str) -> bool:
    """Whether `/api/routes/<code>/run` reaches this route: by its UID or its code (the UID first, as
    DHIS2 looks it up), unless it is disabled. Otherwise DHIS2 answers 404 (a route renamed or removed:
    `FakeAdmin.route(code="chap-core")`, or `disabled=True`)."""
    return not route.get("disabled") and code in (route.get("id"), route.get("code"))


def timeout_seconds(route: dict[str, Any]) -> float:
    """How long the route waits for chap's answer. A `responseTimeoutSeconds` of None plays a
    DHIS2 that has no such field (older than 40.8): its fixed timeout."""
    value = route.get("responseTimeoutSeconds")
    return float(value) if value is not None else float(OLD_DHIS2_TIMEOUT_SECONDS)


def listing(route: dict[str, Any], query: list[tuple[str, str]]) -> tuple[int, dict[str, Any]]:
    """`GET /api/routes[?filter=code:eq:chap][&fields=code,url,responseTimeoutSeconds][&paging=false]`,
    DHIS2's metadata listing: `{"pager": {...}, "routes": [...]}`, each route with the fields
    asked for (default `id,displayName`; `*` for all), a field the route lacks left out."""
    routes = [route]
    for key, value in query:
        if key != "filter":
            continue
        prop, _, rest = value.partition(":")
        operator, _, operand = rest.partition(":")
        if operator != "eq":
            return 400, {"httpStatus": "Bad Request", "httpStatusCode": 400, "status": "ERROR",
                         "message": f"the fake supports only eq filters, got `{value}`"}
        routes = [r for r in routes if str(r.get(prop)) == operand]
    fields = dict(query).get("fields", "id,displayName")
    names = list(route) if fields.strip() == "*" else [name.strip() for name in fields.split(",") if name.strip()]
    body: dict[str, Any] = {"routes": [{name: r[name] for name in names if r.get(name) is not None} for r in routes]}
    if dict(query).get("paging", "true") != "false":
        body = {"pager": {"page": 1, "pageCount": 1, "total": len(routes), "pageSize": 50}, **body}
    return 200, body


def too_large(limit: int) -> dict[str, Any]:
    """DHIS2's 502 for a route answer past its buffer: its WebMessage shape (the message is the fake's:
    DHIS2 words it by its version; the flow relies only on the 502)."""
    return {"httpStatus": "Bad Gateway", "httpStatusCode": 502, "status": "ERROR",
            "message": f"Route response body exceeds the maximum allowed size of {limit} bytes"}


def submit_seconds(faults: dict[str, Any], method: str, chap_path: str) -> float:
    """The `submit_seconds` fault: how long chap takes to answer this `POST .../run` (else 0)."""
    match = _RUN.match(chap_path)
    if method != "POST" or match is None:
        return 0.0
    delays = faults.get("submit_seconds", {})
    return float(delays.get(match[1], delays.get("*", 0)) or 0)


def reset_connection(transport: Any) -> None:
    """Drop the client's connection with a TCP reset and no answer (linger 0, then abort)."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
