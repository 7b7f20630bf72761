"""The fake DHIS2+CHAP server on its own, started the way the demo starts it: another process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from tests import processes
from tests.fake_dhis2 import FakeAdmin

pytestmark = pytest.mark.flows

REPO_ROOT = Path(__file__).resolve().parents[2]
CHAP = "/api/routes/chap/run"


@pytest.fixture(scope="module")
def standalone() -> Iterator[str]:
    with processes.spawn("the standalone fake", [sys.executable, "-m", "tests.fake_dhis2", "--port", "0", "--password",
                                                 "X", "--today", "2026-03-10"],
                         cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True) as process:
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        yield url


@pytest.fixture
def api(standalone: str) -> Iterator[httpx.Client]:
    FakeAdmin(standalone).reset()
    with httpx.Client(base_url=standalone, auth=("admin", "X")) as client:
        yield client


def test_basic_auth_is_checked(api: httpx.Client, standalone: str) -> None:
    assert api.get("/api/system/info").json()["version"] == "2.41.2"
    wrong = httpx.get(standalone + "/api/system/info", auth=("admin", "Y"))
    assert wrong.status_code == 401
    assert wrong.json()["httpStatusCode"] == 401
    assert httpx.get(standalone + CHAP + "/system/info").status_code == 401


def test_faults_are_controlled_over_http_and_requests_are_recorded(api: httpx.Client, standalone: str) -> None:
    admin = FakeAdmin(standalone)
    admin.faults(http_errors=[{"method": "GET", "path": "/api/system/info", "status": 503, "times": 1}])

    assert [api.get("/api/system/info").status_code for _ in range(2)] == [503, 200]
    assert [(r["method"], r["path"], r["status"], r["user"]) for r in admin.requests()] == [
        ("GET", "/api/system/info", 503, "admin"), ("GET", "/api/system/info", 200, "admin")]


def test_weekly_analytics_periods_are_unpadded_like_dhis2(api: httpx.Client) -> None:
    rows = api.get("/api/analytics", params=[("dimension", "dx:deCaseW01"), ("dimension", "pe:2025W05;2025W10"),
                                              ("dimension", "ou:ouDist001")]).json()["rows"]
    assert sorted(row[1] for row in rows) == ["2025W10", "2025W5"]
    assert all(isinstance(cell, str) for row in rows for cell in row)


def test_org_units_with_and_without_geometry(api: httpx.Client) -> None:
    units = api.get("/api/organisationUnits", params={"filter": "id:in:[ouDist001,ouDist004]",
                                                      "paging": "false"}).json()["organisationUnits"]
    assert [(u["id"], "geometry" in u) for u in units] == [("ouDist001", True), ("ouDist004", False)]


def test_a_job_goes_pending_started_success_and_yields_entries(api: httpx.Client) -> None:
    feature = {"type": "Feature", "id": "ouDist001", "geometry": {"type": "Point", "coordinates": [30.1, -1.9]},
               "properties": {"id": "ouDist001"}}
    body = {"name": "t", "geojson": {"type": "FeatureCollection", "features": [feature]}, "nPeriods": 2,
            "type": "forecasting",
            # two whole years, 2024W9..2026W9, as chap-core's training-data check requires
            "providedData": [{"featureName": feature, "orgUnit": "ouDist001", "period": f"{year}W{week}", "value": 1.5}
                             for feature in ("disease_cases", "rainfall")
                             for year, week in [(2024, w) for w in range(9, 53)] + [(2025, w) for w in range(1, 53)]
                             + [(2026, w) for w in range(1, 10)]]}
    job_id = api.post(CHAP + "/v1/crud/prediction-setups/5/run", json=body).json()["id"]

    polls = [api.get(f"{CHAP}/v1/jobs/{job_id}").json() for _ in range(4)]
    assert polls == ["PENDING", "STARTED", "SUCCESS", "SUCCESS"]
    [job] = api.get(CHAP + "/v1/jobs", params={"ids": job_id}).json()
    assert (job["id"], job["status"], job["result"], job["prediction_setup_id"], job["error"]) == \
        (job_id, "SUCCESS", "42", 5, None)
    assert api.get(CHAP + "/v1/jobs", params={"ids": "another"}).json() == []
    entries = api.get(CHAP + "/v1/analytics/prediction-entry/42", params=[("quantiles", "0.5")]).json()
    assert [(e["period"], e["quantile"]) for e in entries] == [("2026W10", 0.5), ("2026W11", 0.5)]


@pytest.mark.parametrize(("body", "status", "detail"), [
    ({"name": "t", "geojson": {}, "providedData": [], "dataSources": []}, 422,
     [{"type": "extra_forbidden", "loc": ["body", "dataSources"], "msg": "Extra inputs are not permitted"}]),
    ({"name": "t", "geojson": {}, "providedData": []}, 422, "provided_data cannot be empty"),
])
def test_run_rejects_what_chap_core_rejects(api: httpx.Client, body: dict, status: int, detail) -> None:
    answer = api.post(CHAP + "/v1/crud/prediction-setups/3/run", json=body)
    assert answer.status_code == status
    expected = {"detail": detail}  # pydantic errors too: chap-core wraps them in "detail"
    assert answer.json() == expected


def test_unknown_route_code_is_a_dhis2_404(api: httpx.Client) -> None:
    answer = api.get("/api/routes/nochap/run/system/info")
    assert answer.status_code == 404
    assert answer.json()["message"] == "Route not found or not accessible: nochap"


# ---------------------------------------------------------------------- the chap route


RUN_3 = CHAP + "/v1/crud/prediction-setups/3/run"


def test_the_chap_route_is_listed_as_dhis2_lists_routes(api: httpx.Client, standalone: str) -> None:
    asked = api.get("/api/routes", params={"filter": "code:eq:chap", "fields": "code,url,responseTimeoutSeconds"})
    assert asked.json() == {"pager": {"page": 1, "pageCount": 1, "total": 1, "pageSize": 50},
                            "routes": [{"code": "chap", "url": "http://chap-core:8000/**", "responseTimeoutSeconds": 5}]}
    assert api.get("/api/routes", params={"paging": "false"}).json() == {
        "routes": [{"id": "E8OPcc45A22", "displayName": "CHAP"}]}
    assert api.get("/api/routes", params={"filter": "code:eq:other"}).json()["routes"] == []
    FakeAdmin(standalone).route(responseTimeoutSeconds=None)  # a DHIS2 without the field
    assert api.get("/api/routes", params={"fields": "code,responseTimeoutSeconds"}).json()["routes"] == [
        {"code": "chap"}]


def test_a_route_slower_than_its_timeout_answers_504_and_chap_still_makes_the_job(api: httpx.Client,
                                                                                   standalone: str) -> None:
    admin = FakeAdmin(standalone)
    admin.route(responseTimeoutSeconds=0.3)
    admin.faults(submit_seconds={"3": 0.6})
    body = {"name": "late", "geojson": {"type": "FeatureCollection", "features": []}, "nPeriods": 3,
            "providedData": [{"featureName": "disease_cases", "orgUnit": "ouDist001", "period": "202501", "value": 1}]}

    answer = api.post(RUN_3, json=body)

    assert (answer.status_code, answer.content) == (504, b"")  # DHIS2's own 504: no body
    assert admin.state()["jobs"] == []
    (job,) = processes.wait_until(lambda: admin.state()["jobs"], what="the job made after the 504")
    assert (job["name"], job["prediction_setup_id"]) == ("late", 3)
    assert api.get(CHAP + "/v1/jobs", params={"predictionSetupId": "3"}).json()[0]["id"] == job["id"]
    assert api.get(CHAP + "/v1/jobs", params={"predictionSetupId": "5"}).json() == []
    admin.faults(submit_seconds={"3": 0.1})  # faster than the route: chap's own answer
    assert api.post(RUN_3, json=body).status_code == 200


@pytest.mark.parametrize("fault", [{"status": 502}, {"status": 0, "reset": True}], ids=["502", "reset"])
def test_an_answer_lost_after_the_request_was_handled(api: httpx.Client, standalone: str, fault) -> None:
    admin = FakeAdmin(standalone)
    admin.faults(http_errors=[{"method": "POST", "path": RUN_3, "after": True, "times": 1, **fault}])
    body = {"name": "lost", "geojson": {"type": "FeatureCollection", "features": []},
            "providedData": [{"featureName": "disease_cases", "orgUnit": "ouDist001", "period": "202501", "value": 1}]}

    if fault.get("reset"):
        with pytest.raises(httpx.ReadError):
            api.post(RUN_3, json=body)
    else:
        answer = api.post(RUN_3, json=body)
        assert (answer.status_code, answer.json()["httpStatusCode"]) == (502, 502)

    assert [job["name"] for job in admin.state()["jobs"]] == ["lost"]  # the job was made all the same
    assert [r["status"] for r in admin.requests(RUN_3)] == [fault["status"]]
# ------------------------------------------------------------------ DHIS2's limits


def _analytics(api: httpx.Client, ou: list[str], *extra: tuple[str, str]) -> httpx.Response:
    return api.get("/api/analytics", params=[("dimension", "dx:deCaseW01;deRainW01"), ("dimension", "pe:LAST_52_WEEKS"),
                                             ("dimension", "ou:" + ";".join(ou)), *extra])


def test_the_record_cap_is_refused_with_dhis2s_e7128(api: httpx.Client, standalone: str) -> None:
    admin = FakeAdmin(standalone)
    assert admin.limits() == {"max_records": 50_000, "max_request_line": 8192, "max_route_body": 262_144}  # on by default
    assert _analytics(api, ["ouDist001", "ouDist003"]).json()["height"] == 208
    admin.limits(max_records=207)

    answer = _analytics(api, ["ouDist001", "ouDist003"])

    assert answer.status_code == 409
    assert answer.json() == {"httpStatus": "Conflict", "httpStatusCode": 409, "status": "ERROR",
                             "message": "Query result set exceeded max limit: `207`", "errorCode": "E7128"}
    admin.reset()
    assert admin.limits()["max_records"] == 50_000  # a reset restores the limits the fake started with


def test_a_request_line_past_the_proxys_buffer_is_answered_414(api: httpx.Client, standalone: str) -> None:
    admin = FakeAdmin(standalone)
    admin.seed_scale(20, "week", 700, 1, 110)
    ids = [unit for unit in admin.state()["setups"] if unit["id"] == 20][0]["orgUnits"]

    long_read = api.get("/api/organisationUnits", params={"filter": "id:in:[" + ",".join(ids) + "]"})
    assert long_read.status_code == 414 and "414 Request-URI Too Large" in long_read.text
    assert api.get("/api/organisationUnits",
                   params={"filter": "id:in:[" + ",".join(ids[:400]) + "]", "paging": "false"}).status_code == 200
    assert admin.requests("/api/organisationUnits")[0]["status"] == 414

    admin.limits(max_request_line=None)
    everything = api.get("/api/organisationUnits", params={"filter": "id:in:[" + ",".join(ids) + "]",
                                                           "paging": "false"})
    assert len(everything.json()["organisationUnits"]) == 700
    assert all(unit["geometry"]["type"] == "Polygon" for unit in everything.json()["organisationUnits"])


def test_values_are_rounded_unless_skip_rounding_and_skip_meta_drops_the_metadata(api: httpx.Client,
                                                                                  standalone: str) -> None:
    admin = FakeAdmin(standalone)
    setup = admin.seed_scale(21, "month", 2, 2, 30)
    rainfall = setup["covariateSources"][1]["dataElementId"]
    query = [("dimension", f"dx:{rainfall}"), ("dimension", "pe:202601"), ("dimension", "ou:" + setup["orgUnits"][0])]

    rounded = api.get("/api/analytics", params=query).json()
    exact = api.get("/api/analytics", params=query + [("skipRounding", "true"), ("skipMeta", "true")]).json()

    [held] = [value for de, _, ou, value in admin.held_values(21, "202601", "202601")
              if de == rainfall and ou == setup["orgUnits"][0]]
    assert exact["rows"][0][3] == held and len(held.split(".")[1]) == 3
    assert rounded["rows"][0][3] == repr(round(float(held), 2 if float(held) < 1 else 1))
    assert "metaData" in rounded and "metaData" not in exact


def test_the_limits_come_from_the_command_line_or_the_environment() -> None:
    env = {**os.environ, "FAKE_DHIS2_MAX_RECORDS": "1234", "FAKE_DHIS2_MAX_ROUTE_BODY": "4096"}
    with processes.spawn("a fake with its own limits", [sys.executable, "-m", "tests.fake_dhis2", "--port", "0",
                                                        "--max-request-line", "0"],
                         env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True) as process:
        url = process.stdout.readline().strip()
        assert FakeAdmin(url).limits() == {"max_records": 1234, "max_request_line": None, "max_route_body": 4096}


def test_a_route_answer_past_256_kb_is_dhis2s_502(api: httpx.Client, standalone: str) -> None:
    admin = FakeAdmin(standalone)
    admin.limits(max_route_body=1000)  # the setups' listing is ~2 kB; the next test's reset restores 256 KB

    answer = api.get("/api/routes/chap/run/v1/crud/prediction-setups")
    assert answer.status_code == 502
    assert answer.json() == {"httpStatus": "Bad Gateway", "httpStatusCode": 502, "status": "ERROR",
                             "message": "Route response body exceeds the maximum allowed size of 1000 bytes"}
    assert api.get("/api/routes/chap/run/system/info").status_code == 200  # a small answer passes
