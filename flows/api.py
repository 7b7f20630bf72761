"""Thin, typed calls to the DHIS2 and CHAP endpoints the prediction flow uses.

Every failure becomes a `ServiceError` whose message says which service, method and path failed
and why (HTTP status plus the server's own detail, or the connection problem), so the run
report can show it as one readable line.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from collections.abc import Sequence
from typing import Any

import httpx

from flows.dhis2_reads import Page

DEFAULT_QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)
# DHIS2's route passes on at most 256 KB of chap's answer and answers 502 past it (route.md).
ROUTE_BODY_LIMIT = 256 * 1024
# Bytes of one prediction entry as chap-core 2.5.1 writes it, beyond its org unit id: measured 74
# for `{"orgUnit":"S0200000001","period":"2026W11","quantile":0.5,"value":254.0},`; a value can
# take 18 digits (`201.10000000000002`), so this is an upper bound, not an average.
_ENTRY_BYTES = 80
ORG_UNIT_FIELDS = "id,geometry,parent[id],level,displayName,code"
CHAP_ROUTE_CODE = "chap"
# A gateway's answers that say nothing about what the server behind it did (DHIS2's route answers
# 504 when chap-core is slower than the route's timeout, and chap-core still makes the job).
LOST_ANSWER_STATUSES = frozenset({502, 504})
# Connection failures before the request left: the server cannot have done it.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout)
_MAX_DETAIL_CHARS = 300
_HTML_TITLE = re.compile(r"<title>([^<]*)</title>", re.IGNORECASE)


class ServiceError(Exception):
    """A DHIS2 or CHAP request that gave no usable answer."""

    def __init__(self, service: str, method: str, path: str, problem: str,
                 status: int | None = None, detail: Any = None, code: str | None = None,
                 answer_lost: bool = False) -> None:
        super().__init__(f"{service} {method} {path} -> {problem}")
        self.service = service
        self.status = status
        self.detail = detail
        self.code = code  # DHIS2's `errorCode` (e.g. E7128), when it gave one
        # The server may have done the request although the client heard no answer from it: a
        # gateway's 502/504, or a connection that broke after the request was sent.
        self.answer_lost = answer_lost


@dataclass(frozen=True)
class Rejection:
    """One entry of chap-core's "missing values" 400: a covariate rejected in one org unit."""

    feature: str
    org_unit: str
    reason: str
    periods: tuple[str, ...]


def missing_value_rejections(error: BaseException) -> list[Rejection]:
    """The rejected (covariate, org unit) pairs of a chap-core missing-values 400, else []."""
    detail = getattr(error, "detail", None)
    if getattr(error, "status", None) != 400 or not isinstance(detail, dict):
        return []
    rejected = detail.get("rejected")
    if not isinstance(rejected, list):
        return []
    return [
        Rejection(
            feature=str(item.get("featureName", "?")),
            org_unit=str(item.get("orgUnit", "?")),
            reason=str(item.get("reason", "")),
            periods=tuple(str(p) for p in item.get("timePeriods") or ()),
        )
        for item in rejected
        if isinstance(item, dict)
    ]


def error_detail(response: httpx.Response) -> Any:
    """What a failed answer says, as sent: chap-core's and FastAPI's `detail`, DHIS2's `message`,
    Prefect's 422 `exception_detail` (never its echoed `request_body`), else the text."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        title = _HTML_TITLE.search(text) if text.startswith("<") else None  # a proxy's HTML error page
        return (title[1].strip() if title else text[:_MAX_DETAIL_CHARS]) or response.reason_phrase
    if isinstance(body, dict):
        for key in ("detail", "message", "exception_detail"):
            if key in body:
                return body[key]
        return None if "request_body" in body else body
    return body


def error_code(response: httpx.Response) -> str | None:
    """DHIS2's `errorCode` of a failed answer (`E7128`: over the analytics record cap)."""
    try:
        body = response.json()
    except ValueError:
        return None
    code = body.get("errorCode") if isinstance(body, dict) else None
    return code if isinstance(code, str) else None


def error_text(detail: Any, limit: int = _MAX_DETAIL_CHARS) -> str:
    """One line for an `error_detail`: validation errors as `where: what; …` (their echoed input
    dropped, it may hold a secret), messages as they are, anything else as compact JSON."""
    if detail is None:
        return "(response body withheld)"
    if isinstance(detail, dict) and isinstance(detail.get("message"), str):
        text = detail["message"]
    elif isinstance(detail, list) and all(isinstance(e, dict) and "msg" in e for e in detail):
        text = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', []))}: {e['msg']}" for e in detail)
    else:
        text = detail if isinstance(detail, str) else json.dumps(detail, separators=(",", ":"))
    return text if len(text) <= limit else text[:limit] + "..."


class _Service:
    """Sends requests for one service and turns every failure into a ServiceError."""

    name = "service"

    def __init__(self, client: httpx.Client) -> None:
        self._client = client

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._json(method, path, self._response(method, path, **kwargs))

    def _response(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The answer, if it is a success (below 300); every failure a ServiceError."""
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ServiceError(self.name, method, path, f"no response ({type(exc).__name__}: {exc})",
                               answer_lost=not isinstance(exc, _NOT_SENT)) from None
        if response.status_code >= 300:
            detail = error_detail(response)
            problem = f"HTTP {response.status_code}: {error_text(detail)}"
            raise ServiceError(self.name, method, path, problem, response.status_code, detail, error_code(response),
                               answer_lost=response.status_code in LOST_ANSWER_STATUSES)
        return response

    def _json(self, method: str, path: str, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise self._unexpected(method, path, f"a non-JSON body {response.text[:80]!r}") from None

    def _unexpected(self, method: str, path: str, what: str) -> ServiceError:
        return ServiceError(self.name, method, path, f"unexpected answer: {what}")


class Dhis2Api(_Service):
    name = "DHIS2"

    def system_info(self) -> dict[str, Any]:
        info = self._call("GET", "/api/system/info")
        if not isinstance(info, dict) or not isinstance(info.get("version"), str):
            raise self._unexpected("GET", "/api/system/info", "no 'version' in the system info")
        return info

    ANALYTICS = "/api/analytics"
    ORG_UNITS = "/api/organisationUnits"

    def request_line(self, path: str, params: list[tuple[str, str]]) -> int:
        """Bytes of the request line a GET sends (`GET <target> HTTP/1.1`), the context path included."""
        target = self._client.build_request("GET", path, params=params).url.raw_path
        return len("GET ") + len(target) + len(" HTTP/1.1")

    @staticmethod
    def analytics_params(dx: Sequence[str], pe: Sequence[str], ou: Sequence[str]) -> list[tuple[str, str]]:
        # skipMeta: no metadata to build or send; skipRounding: values as stored, not rounded
        return [("dimension", "dx:" + ";".join(dx)), ("dimension", "pe:" + ";".join(pe)),
                ("dimension", "ou:" + ";".join(ou)), ("skipMeta", "true"), ("skipRounding", "true")]

    def analytics(self, dx: Sequence[str], pe: Sequence[str], ou: Sequence[str]) -> Page:
        """One analytics read: rows `[dx, pe, ou, value, ...]`, every cell a string as DHIS2 sends
        them. Its size is the caller's business (`flows.dhis2_reads`)."""
        response = self._response("GET", self.ANALYTICS, params=self.analytics_params(dx, pe, ou))
        body = self._json("GET", self.ANALYTICS, response)
        rows = body.get("rows") if isinstance(body, dict) else None
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise self._unexpected("GET", self.ANALYTICS, "no 'rows' list")
        rows = [["" if cell is None else str(cell) for cell in row] for row in rows]
        return Page(rows, len(response.content), len(rows))

    def routes(self, code: str) -> list[dict[str, Any]]:
        """The routes with this code the user may read, each with its `responseTimeoutSeconds` when
        DHIS2 has that field (DHIS2 >= 40.10 / 41.6)."""
        params = {"filter": f"code:eq:{code}", "fields": "id,code,responseTimeoutSeconds", "paging": "false"}
        body = self._call("GET", "/api/routes", params=params)
        routes = body.get("routes") if isinstance(body, dict) else None
        if not isinstance(routes, list):
            raise self._unexpected("GET", "/api/routes", "no 'routes' list")
        return [route for route in routes if isinstance(route, dict)]

    @staticmethod
    def org_unit_params(ids: Sequence[str]) -> list[tuple[str, str]]:
        return [("filter", "id:in:[" + ",".join(ids) + "]"), ("fields", ORG_UNIT_FIELDS), ("paging", "false")]

    def org_units(self, ids: Sequence[str]) -> Page:
        response = self._response("GET", self.ORG_UNITS, params=self.org_unit_params(ids))
        body = self._json("GET", self.ORG_UNITS, response)
        units = body.get("organisationUnits") if isinstance(body, dict) else None
        if not isinstance(units, list):
            raise self._unexpected("GET", self.ORG_UNITS, "no 'organisationUnits' list")
        return Page([unit for unit in units if isinstance(unit, dict) and isinstance(unit.get("id"), str)],
                    len(response.content))


class ChapApi(_Service):
    """chap-core, reached through the DHIS2 route; paths are chap's own (no route prefix)."""

    name = "chap"
    REQUIRED_INFO = ("chap_core_version", "python_version", "server_date", "server_time_zone_id")

    def system_info(self) -> dict[str, Any]:
        info = self._call("GET", "/system/info")
        missing = [key for key in self.REQUIRED_INFO if not isinstance(info, dict) or key not in info]
        if missing:
            raise self._unexpected("GET", "/system/info", f"missing {', '.join(missing)}")
        return info

    def prediction_setups(self) -> list[Any]:
        setups = self._call("GET", "/v1/crud/prediction-setups")
        if not isinstance(setups, list):
            raise self._unexpected("GET", "/v1/crud/prediction-setups", "not a list")
        return setups

    def run_setup(self, setup_id: int, body: dict[str, Any]) -> str:
        """Submit a prediction and return chap's job id. Never retried: a retry could run it twice
        (a failure with `answer_lost` may have made the job: look for it with `find_job`)."""
        path = f"/v1/crud/prediction-setups/{setup_id}/run"
        answer = self._call("POST", path, json=body)
        job_id = answer.get("id") if isinstance(answer, dict) else None
        if not isinstance(job_id, str) or not job_id:
            raise self._unexpected("POST", path, "no job 'id'")
        return job_id

    def find_job(self, setup_id: int, name: str) -> dict[str, Any] | None:
        """The job chap-core lists for this setup under this name (its request's `name`), if any.

        `?predictionSetupId=` narrows chap-core 2.5's listing to the setup's jobs (it still reads
        every job it tracks, so this is for the rare lost answer, not for polling)."""
        jobs = self._call("GET", "/v1/jobs", params={"predictionSetupId": setup_id})
        if not isinstance(jobs, list):
            raise self._unexpected("GET", "/v1/jobs", "not a list")
        return next((job for job in jobs if isinstance(job, dict) and job.get("name") == name
                     and job.get("prediction_setup_id") in (setup_id, None) and isinstance(job.get("id"), str)), None)

    def job(self, job_id: str) -> dict[str, Any]:
        """One job's description (status, result, error). `?ids=` asks for just this job: the bare
        listing returns every job the server tracks, and would grow with the server's history."""
        jobs = self._call("GET", "/v1/jobs", params={"ids": job_id})
        if not isinstance(jobs, list):
            raise self._unexpected("GET", "/v1/jobs", "not a list")
        job = next((job for job in jobs if isinstance(job, dict) and job.get("id") == job_id), None)
        if job is None:
            raise self._unexpected("GET", f"/v1/jobs?ids={job_id}", "the job is not listed")
        return job

    def job_status(self, job_id: str) -> str:
        path = f"/v1/jobs/{job_id}"
        status = self._call("GET", path)
        if not isinstance(status, str):
            raise self._unexpected("GET", path, f"expected a bare status string, got {status!r:.80}")
        return status

    def prediction(self, prediction_id: int) -> dict[str, Any]:
        """A prediction's summary, without its values (`GET /v1/crud/predictions/{id}`): `orgUnits`
        (those forecast), `nPeriods`, `dataset.lastPeriod` (the last period sent), ...; about 30
        bytes per org unit."""
        path = f"/v1/crud/predictions/{prediction_id}"
        summary = self._call("GET", path)
        if not isinstance(summary, dict) or not isinstance(summary.get("orgUnits"), list):
            raise self._unexpected("GET", path, "no 'orgUnits' list")
        return summary

    @staticmethod
    def entries_size(org_units: Sequence[str], n_periods: int, quantiles: Sequence[float]) -> int:
        """At most how many bytes `prediction_entries` answers for a forecast of these org units."""
        return n_periods * len(quantiles) * sum(_ENTRY_BYTES + len(ou) for ou in org_units)

    def prediction_entries(self, prediction_id: int,
                           quantiles: tuple[float, ...] = DEFAULT_QUANTILES) -> list[dict[str, Any]]:
        path = f"/v1/analytics/prediction-entry/{prediction_id}"
        entries = self._call("GET", path, params=[("quantiles", str(q)) for q in quantiles])
        if not isinstance(entries, list):
            raise self._unexpected("GET", path, "not a list")
        return [entry for entry in entries if isinstance(entry, dict)]
