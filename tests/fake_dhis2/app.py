"""HTTP face of the fake: DHIS2's API, chap-core behind `/api/routes/chap/run`, and `/__fake__/` admin.

Every non-admin request needs HTTP Basic auth with the configured login, is recorded (method,
path, query pairs, JSON body, user, answered status) and can be answered by an injected fault.

With `state.chap_url` set, the route forwards to that chap-core instead of the built-in one, as
DHIS2's route does: `/api/routes/chap/run/<path>?<query>` goes to `<chap_url>/<path>?<query>`
with the same method and body, and chap-core's status and body come back unchanged. Either way
chap's answer must come within the route's `responseTimeoutSeconds`, else 504 (`route.py`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
from datetime import date
from fnmatch import fnmatchcase
from typing import Any, Callable

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fake_dhis2 import route as routes
from tests.fake_dhis2.state import FakeState, dhis2_error

_ROUTE = re.compile(r"^/api/routes/(?P<code>[^/]+)/run(?P<sub>/.*)?$")
_ORG_UNIT_FILTER = re.compile(r"^id:in:\[(?P<ids>[^\]]*)\]$")

Query = list[tuple[str, str]]
Answer = tuple[int, Any]


def _user(request: Request) -> tuple[str, str] | None:
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(encoded).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user, password


# ---------------------------------------------------------------------- DHIS2


def _analytics(state: FakeState, query: Query) -> Answer:
    dimensions: dict[str, list[str]] = {}
    for key, value in query:
        if key == "dimension":
            name, _, items = value.partition(":")
            dimensions[name] = [item for item in items.split(";") if item]
    flags = {key: value.lower() == "true" for key, value in query if key in ("skipRounding", "skipMeta")}
    return state.analytics(dimensions, skip_rounding=flags.get("skipRounding", False),
                           skip_meta=flags.get("skipMeta", False))


def _org_units(state: FakeState, query: Query) -> Answer:
    params = dict(query)
    ids = None
    if "filter" in params:
        match = _ORG_UNIT_FILTER.match(params["filter"])
        if match is None:
            return 409, dhis2_error(409, f"Invalid filter: {params['filter']}")
        ids = [item for item in match["ids"].split(",") if item]
    return 200, state.org_units(ids, paging=params.get("paging", "true") != "false")


def _dhis2(state: FakeState, method: str, path: str, query: Query) -> Answer:
    if method == "GET" and path == "/api/system/info":
        return 200, state.dhis2_info()
    if method == "GET" and path == "/api/analytics":
        return _analytics(state, query)
    if method == "GET" and path == "/api/organisationUnits":
        return _org_units(state, query)
    if method == "GET" and path == "/api/routes":
        return routes.listing(state.route, query)
    return 404, dhis2_error(404, f"No handler for {method} {path}")


# ---------------------------------------------------------------------- CHAP


def _chap(state: FakeState, method: str, path: str, query: Query, body: Any) -> Answer:
    if method == "GET" and path == "/system/info":
        return 200, state.chap_info()
    if method == "GET" and path == "/v1/crud/prediction-setups":
        return 200, list(state.setups.values())
    if match := re.fullmatch(r"/v1/crud/prediction-setups/(\d+)", path):
        setup = state.setups.get(int(match[1]))
        if method not in ("GET", "PATCH") or setup is None:
            return 404, {"detail": f"PredictionSetup {match[1]} not found"}
        if method == "PATCH":
            return state.update_setup(int(match[1]), body)
        return 200, {**setup, "predictions": []}
    if method == "POST" and (match := re.fullmatch(r"/v1/crud/prediction-setups/(\d+)/run", path)):
        return state.run_setup(int(match[1]), body)
    if method == "GET" and path == "/v1/jobs":
        setup = dict(query).get("predictionSetupId")
        if setup is not None and not setup.isdigit():
            return 422, {"detail": [{"type": "int_parsing", "loc": ["query", "predictionSetupId"],
                                     "msg": "Input should be a valid integer, unable to parse string as an integer"}]}
        return 200, state.public_jobs([v for k, v in query if k == "ids"], int(setup) if setup else None)
    if method == "GET" and (match := re.fullmatch(r"/v1/jobs/([^/]+)", path)):
        return state.job_status(match[1])
    if method == "GET" and (match := re.fullmatch(r"/v1/crud/predictions/(\d+)", path)):
        return state.prediction_summary(int(match[1]))
    if method == "GET" and (match := re.fullmatch(r"/v1/analytics/prediction-entry/(\d+)", path)):
        return state.prediction_entries(int(match[1]), [v for k, v in query if k == "quantiles"])
    return 404, {"detail": "Not Found"}


def _dispatch(state: FakeState, method: str, path: str, query: Query, body: Any) -> Answer:
    route = _ROUTE.match(path)
    if route is None:
        return _dhis2(state, method, path, query)
    if not routes.runs(state.route, route["code"]):
        return 404, dhis2_error(404, f"Route not found or not accessible: {route['code']}")
    return _chap(state, method, route["sub"] or "/", query, body)


# ---------------------------------------------------------------------- admin


def _checked(action: Callable[[], Any]) -> Answer:
    try:
        return 200, action()
    except (KeyError, TypeError, ValueError) as exc:
        return 422, {"detail": f"{type(exc).__name__}: {exc}"}


def _requests(state: FakeState, query: dict[str, str]) -> Answer:
    """The request log, optionally only the requests whose path matches the glob `path` and whose
    method is `method` (a national-scale body is big: send only what was asked for)."""
    pattern, method = query.get("path", "*"), query.get("method", "*")
    return 200, [r for r in state.requests if fnmatchcase(r["path"], pattern) and method in ("*", r["method"])]


def _admin(state: FakeState, method: str, path: str, body: Any, query: dict[str, str]) -> Answer:
    """`/__fake__/...`: control the fake from tests, in this process or another."""
    action = path.removeprefix("/__fake__")
    handlers: dict[tuple[str, str], Callable[[], Answer]] = {
        ("GET", "/health"): lambda: (200, {"ok": True}),
        ("POST", "/reset"): lambda: _reset(state, body or {}),
        ("POST", "/faults"): lambda: (state.set_faults(body or {}), (200, state.faults))[1],
        ("GET", "/faults"): lambda: (200, state.faults),
        ("GET", "/route"): lambda: (200, state.route),
        ("PATCH", "/route"): lambda: (state.route.update(body or {}), (200, state.route))[1],
        ("DELETE", "/faults"): lambda: (state.faults.clear(), (200, {}))[1],
        ("GET", "/requests"): lambda: _requests(state, query),
        ("DELETE", "/requests"): lambda: (state.requests.clear(), (200, []))[1],
        ("GET", "/state"): lambda: (200, {"today": state.today.isoformat(), "setups": list(state.setups.values()),
                                         "jobs": state.public_jobs(), "rejections": state.rejection_log,
                                         "job_concurrency": state.job_concurrency()}),
        ("POST", "/setups"): lambda: _put_setup(state, body),
        ("GET", "/limits"): lambda: (200, state.limits),
        ("POST", "/limits"): lambda: _checked(lambda: (state.set_limits(body or {}), state.limits)[1]),
        ("POST", "/scale"): lambda: _checked(lambda: state.seed_scale(body or {})),
        ("GET", "/values"): lambda: _checked(lambda: state.held_values(int(query["setup"]), query["first"],
                                                                       query["last"])),
    }
    if (method, action) in handlers:
        return handlers[(method, action)]()
    if match := re.fullmatch(r"/setups/(\d+)", action):
        return _change_setup(state, method, int(match[1]), body)
    if method == "PATCH" and (match := re.fullmatch(r"/org-units/([^/]+)", action)):
        return _change_org_unit(state, match[1], body)
    return 404, {"detail": f"no admin action {method} {path}"}


def _reset(state: FakeState, body: dict[str, Any]) -> Answer:
    today = body.get("today")
    state.reset(date.fromisoformat(today) if today else None)
    return 200, {"today": state.today.isoformat()}


def _put_setup(state: FakeState, body: Any) -> Answer:
    if not isinstance(body, dict) or not isinstance(body.get("id"), int):
        return 422, {"detail": "a setup object with an integer id is needed"}
    state.setups[body["id"]] = body
    return 200, body


def _change_setup(state: FakeState, method: str, setup_id: int, body: Any) -> Answer:
    if setup_id not in state.setups:
        return 404, {"detail": f"no setup {setup_id}"}
    if method == "DELETE":
        return 200, state.setups.pop(setup_id)
    if method == "PATCH" and isinstance(body, dict):
        state.setups[setup_id].update(body)
        return 200, state.setups[setup_id]
    return 405, {"detail": "use PATCH with a JSON object, or DELETE"}


def _change_org_unit(state: FakeState, org_unit: str, body: Any) -> Answer:
    """Change an org unit's fields until the next reset; a field set to null is removed (e.g. a
    district whose geometry nobody drew: `{"geometry": null}`)."""
    if org_unit not in state.units or not isinstance(body, dict):
        return 404, {"detail": f"no org unit {org_unit} (or no JSON object of fields)"}
    unit = {**state.units[org_unit], **body}
    state.units[org_unit] = {key: value for key, value in unit.items() if value is not None}
    return 200, state.units[org_unit]


# ---------------------------------------------------------------------- app


async def _body(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return {"__invalid_json__": raw[:200].decode(errors="replace")}


def _answer(state: FakeState, request: Request, body: Any) -> Answer:
    """DHIS2's answer, or status 0 for a connection to reset (an injected `reset` fault)."""
    path, method = request.url.path, request.method
    if _user(request) != (state.username, state.password):
        return 401, dhis2_error(401, "Unauthorized")
    fault = state.take_http_error(method, path)
    if fault is not None and fault.get("reset"):
        return 0, None
    if fault is not None:
        default = {"detail": f"injected HTTP {fault['status']}"} if _ROUTE.match(path) else \
            dhis2_error(fault["status"], f"injected HTTP {fault['status']}")
        return fault["status"], fault.get("body", default)
    return _dispatch(state, method, path, list(request.query_params.multi_items()), body)


def _routed(state: FakeState, request: Request) -> str | None:
    """chap's own path for a route call that passed DHIS2's own checks (login, injected faults,
    route code), else None (DHIS2 answers it itself)."""
    route = _ROUTE.match(request.url.path)
    if route is None or not routes.runs(state.route, route["code"]):
        return None
    if _user(request) != (state.username, state.password):
        return None
    if state.take_http_error(request.method, request.url.path, consume=False) is not None:
        return None
    return route["sub"] or "/"


async def _forward(client: httpx.AsyncClient, url: str, request: Request, raw: bytes) -> httpx.Response:
    headers = {k: v for k, v in request.headers.items() if k.lower() in ("content-type", "accept")}
    return await client.request(request.method, url, params=list(request.query_params.multi_items()),
                                content=raw or None, headers=headers)


Reply = tuple[int, bytes, str | None]  # status, body, media type
# nginx's answer when a request line does not fit its buffer (large_client_header_buffers 4 8k)
_TOO_LONG = ("<html>\r\n<head><title>414 Request-URI Too Large</title></head>\r\n<body>\r\n"
             "<center><h1>414 Request-URI Too Large</h1></center>\r\n<hr><center>nginx</center>\r\n"
             "</body>\r\n</html>\r\n")


def _request_line_too_long(state: FakeState, request: Request) -> Response | None:
    """A proxy in front of DHIS2 refuses a request line longer than its buffer, before DHIS2 sees it."""
    query = request.scope.get("query_string", b"")
    target = len(request.scope.get("raw_path", request.url.path.encode())) + (1 + len(query) if query else 0)
    length = len(request.method) + 1 + target + len(" HTTP/1.1")
    with state.lock:
        too_long = state.request_line_too_long(length)
    return Response(_TOO_LONG, status_code=414, media_type="text/html") if too_long else None


def _json(status: int, payload: Any) -> Reply:
    return status, JSONResponse(payload).body, "application/json"


async def _chap_work(state: FakeState, client: httpx.AsyncClient, request: Request, body: Any, raw: bytes,
                     chap_path: str, delay: float, generation: int) -> Reply:
    """chap's side of a route call: `delay` seconds of work (`submit_seconds`), then the built-in
    chap's answer or the real chap-core's. Runs to the end even when the route gave up on it."""
    if delay:
        await asyncio.sleep(delay)
    if state.chap_url is not None:
        try:
            answer = await _forward(client, state.chap_url.rstrip("/") + chap_path, request, raw)
        except httpx.HTTPError as exc:  # DHIS2 answers 502 when the route's target is down
            return _json(502, dhis2_error(502, f"Route target not reachable: {type(exc).__name__}"))
        return answer.status_code, answer.content, answer.headers.get("content-type", "application/json")
    with state.lock:
        if state.generation != generation:  # the fake was reset meanwhile: this work is not its state's
            return _json(503, dhis2_error(503, "the fake was reset"))
        return _json(*_chap(state, request.method, chap_path, list(request.query_params.multi_items()), body))


def _record(state: FakeState, request: Request, body: Any, status: int) -> None:
    user = _user(request)
    with state.lock:
        state.requests.append({
            "method": request.method, "path": request.url.path,
            "query": [list(pair) for pair in request.query_params.multi_items()],
            "json": body, "user": user[0] if user else None, "status": status,
        })


def _drop_connection(request: Request) -> Response:
    """A TCP reset and no answer; the response returned after it is never sent."""
    transport = request.scope.get(_TRANSPORT)
    if transport is None:
        raise RuntimeError("the fake can reset connections only under uvicorn")
    routes.reset_connection(transport)
    return Response(status_code=500)


_TRANSPORT = "fake_dhis2.transport"


def create_app(state: FakeState) -> Any:
    # chap-core jobs can take a while to accept a request (it validates the whole dataset); the
    # route's own timeout decides how long a caller waits for it.
    client = httpx.AsyncClient(timeout=httpx.Timeout(120.0, connect=5.0))
    left_running: set[asyncio.Task] = set()  # chap work the route gave up on, kept until it ends

    async def route_call(request: Request, body: Any, chap_path: str) -> Response:
        with state.lock:
            delay = routes.submit_seconds(state.faults, request.method, chap_path)
            timeout = routes.timeout_seconds(state.route)
            generation = state.generation
        work = asyncio.ensure_future(_chap_work(state, client, request, body, await request.body(), chap_path,
                                                delay, generation))
        left_running.add(work)
        work.add_done_callback(left_running.discard)
        try:
            status, content, media = await asyncio.wait_for(asyncio.shield(work), timeout)
        except asyncio.TimeoutError:  # DHIS2's own 504 has no body; chap goes on
            status, content, media = 504, b"", None
        with state.lock:
            limit = state.limits.get("max_route_body")
        if limit is not None and len(content) > limit:  # DHIS2 buffers at most this much of chap's answer
            status, content, media = _json(502, routes.too_large(limit))
        fault = state.take_http_error(request.method, request.url.path, after=True)
        if fault is not None and fault.get("reset"):
            _record(state, request, body, 0)
            return _drop_connection(request)
        if fault is not None:
            status = fault["status"]
            if "body" in fault:
                status, content, media = _json(status, fault["body"])
            else:
                status, content, media = (504, b"", None) if status == 504 else \
                    _json(status, dhis2_error(status, f"injected HTTP {status}"))
        _record(state, request, body, status)
        return Response(content, status_code=status, media_type=media)

    async def endpoint(request: Request) -> Response:
        body = await _body(request)
        path = request.url.path
        if path.startswith("/__fake__/"):
            with state.lock:
                status, payload = _admin(state, request.method, path, body, dict(request.query_params))
            return JSONResponse(payload, status_code=status)
        if too_long := _request_line_too_long(state, request):
            _record(state, request, body, 414)
            return too_long
        with state.lock:
            chap_path = _routed(state, request)
        if chap_path is not None:
            return await route_call(request, body, chap_path)
        with state.lock:
            status, payload = _answer(state, request, body)
        _record(state, request, body, status)
        if status == 0:
            return _drop_connection(request)
        headers = {"WWW-Authenticate": 'Basic realm="DHIS2"'} if status == 401 else None
        return JSONResponse(payload, status_code=status, headers=headers)

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]
    app = Starlette(routes=[Route("/{path:path}", endpoint, methods=methods)])

    async def with_transport(scope: dict[str, Any], receive: Any, send: Any) -> None:
        # uvicorn's `send` is bound to the request's cycle, which holds the connection: the
        # `reset` fault needs it to drop the connection without an answer.
        if scope["type"] == "http":
            scope[_TRANSPORT] = getattr(getattr(send, "__self__", None), "transport", None)
        await app(scope, receive, send)

    return with_transport
