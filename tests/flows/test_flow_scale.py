"""National scale against the fake with DHIS2's limits on (record cap 50,000 with 409 E7128, 414
past an 8 KB request line, values rounded unless `skipRounding=true`, a route answer of at most
256 KB, 502 past it): every value DHIS2 holds reaches CHAP exactly once, at full precision,
whatever the fake's limits, and the forecast is read within the route's limit."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from tests.fake_dhis2 import FakeAdmin, FakeDhis2Server, periods
from tests.flows.helpers import dimension

pytestmark = pytest.mark.flows

SETUP = 20
RUN = f"/api/routes/chap/run/v1/crud/prediction-setups/{SETUP}/run"
CHAP = "/api/routes/chap/run"
ROUTE_LIMIT = 256 * 1024


def _sent(fake: FakeDhis2Server) -> list[dict[str, Any]]:
    with fake.state.lock:
        posts = [r for r in fake.state.requests if r["path"] == RUN and r["method"] == "POST"]
    assert len(posts) == 1, [p["status"] for p in posts]
    return posts[0]["json"]["providedData"]


def assert_every_value_once(fake: FakeDhis2Server, setup: dict[str, Any]) -> int:
    """Every value the fake holds for the setup's input periods is in the body its built-in chap
    received, exactly once and unrounded; returns how many. (Read from the fake's state in this
    process: a national body is tens of MB, and the admin API would only copy it.)"""
    provided = _sent(fake)
    element = {source["covariate"]: source["dataElementId"] for source in setup["covariateSources"]}
    sent = Counter((element[row["featureName"]], row["period"], row["orgUnit"]) for row in provided)
    twice = [key for key, count in sent.items() if count > 1]
    assert not twice, f"{len(twice)} values sent more than once, e.g. {twice[:3]}"
    by_start = sorted({row["period"] for row in provided}, key=lambda pid: periods.parse(pid)[1])
    held = {(de, pe, ou): float(value) for de, pe, ou, value in fake.state.held_values(SETUP, by_start[0], by_start[-1])}
    got = {(element[row["featureName"]], row["period"], row["orgUnit"]): row["value"] for row in provided}
    assert set(got) == set(held), (len(got), len(held))
    differ = [(key, got[key], held[key]) for key in held if got[key] != held[key]]
    assert not differ, f"{len(differ)} values changed on the way (rounded?), e.g. {differ[:3]}"
    return len(provided)


def test_700_districts_weekly_with_4_covariates_reach_chap_exactly_once(fake: FakeAdmin, fake_server: FakeDhis2Server, run_flow) -> None:
    setup = fake.seed_scale(SETUP, "week", 700, 4, 114)

    run = run_flow(prediction_setup_id=SETUP)

    assert run.state.is_completed(), run.report
    assert assert_every_value_once(fake_server, setup) == 700 * 4 * 114
    probes = [r for r in fake.requests("/api/analytics") if dimension(r, "pe") == ["LAST_52_WEEKS"]]
    assert len(probes) > 1 and all(r["status"] == 200 for r in probes)  # the end-period probe was split
    units = fake.requests("/api/organisationUnits")
    assert len(units) > 1 and all(r["status"] == 200 for r in units)  # so was the org-unit read
    assert all(r["status"] == 200 for r in fake.requests("/api/*", "GET")), "a read went past DHIS2's limits"
    reads = run.field(setup["name"], "DHIS2 reads")
    assert run.field(setup["name"], "Analytics rows fetched") == "319,200"
    assert "464,800 records" in reads and "(0 refused" in reads, reads  # the probe: 700 × 4 × 52 more
    # the forecast's entries (700 × 12 weeks: ~0.7 MB for the median alone) cannot pass DHIS2's route:
    # its summary says which org units and periods it covers, and the report says where to read the values
    assert all(r["status"] == 200 for r in fake.requests(CHAP + "/*")), "a route answer went past 256 KB"
    assert not fake.requests(CHAP + "/v1/analytics/prediction-entry/*")
    assert run.field(setup["name"], "Org units").endswith("sent 700 (700 with geometry); predicted 700")
    assert run.field(setup["name"], "Predicted periods") == "2026W11..2026W22 (12 periods)"
    note = run.field(setup["name"], "Prediction entries")
    assert note.startswith("values not read: its entries are larger than DHIS2's route passes on (256 KB); "
                           "org units and periods from its summary; read prediction "), note
    assert "in the DHIS2 Modeling app" in note


def test_2000_facilities_monthly_with_3_covariates_reach_chap_exactly_once(fake: FakeAdmin, fake_server: FakeDhis2Server, run_flow) -> None:
    setup = fake.seed_scale(SETUP, "month", 2000, 3, 60)

    run = run_flow(prediction_setup_id=SETUP)

    assert run.state.is_completed(), run.report
    assert assert_every_value_once(fake_server, setup) == 2000 * 3 * 60
    assert all(r["status"] == 200 for r in fake.requests("/api/*", "GET"))


def test_a_fake_capped_at_10000_records_halves_the_refused_reads(fake: FakeAdmin, fake_server: FakeDhis2Server, run_flow) -> None:
    """A DHIS2 configured with a smaller cap than the flow's budget: each 409 E7128 halves only its
    own chunk, and the run still sends every value once (Laos: 148 districts, 4 weekly covariates)."""
    setup = fake.seed_scale(SETUP, "week", 148, 4, 114)
    fake.limits(max_records=10_000)

    run = run_flow(prediction_setup_id=SETUP)

    assert run.state.is_completed(), run.report
    assert assert_every_value_once(fake_server, setup) == 148 * 4 * 114
    refused = [r for r in fake.requests("/api/analytics") if r["status"] == 409]
    assert refused, "the flow's budget is above 10,000: some read must have been refused"
    assert "refused and halved" in run.field(setup["name"], "DHIS2 reads")


def test_a_proxy_with_a_short_request_line_halves_the_refused_reads(fake: FakeAdmin, fake_server: FakeDhis2Server, run_flow) -> None:
    """A proxy whose buffer is smaller than the flow's request-line budget: 414s halve the chunk,
    for analytics and for the org-unit read alike."""
    setup = fake.seed_scale(SETUP, "month", 200, 3, 30)
    fake.limits(max_request_line=1500)

    run = run_flow(prediction_setup_id=SETUP, end_mode="offset", end_period_offset=1)

    assert run.state.is_completed(), run.report
    assert assert_every_value_once(fake_server, setup) == 200 * 3 * 30
    assert any(r["status"] == 414 for r in fake.requests("/api/analytics"))
    assert any(r["status"] == 414 for r in fake.requests("/api/organisationUnits"))


def test_values_reach_chap_at_full_precision(fake: FakeAdmin, fake_server: FakeDhis2Server, run_flow) -> None:
    """DHIS2 rounds analytics values (one decimal, two below 1) unless asked not to; the scale
    seed's covariates carry three decimals."""
    setup = fake.seed_scale(SETUP, "week", 3, 2, 110)

    run = run_flow(prediction_setup_id=SETUP)

    assert run.state.is_completed(), run.report
    assert assert_every_value_once(fake_server, setup) == 3 * 2 * 110
    assert all(("skipRounding", "true") in map(tuple, r["query"]) for r in fake.requests("/api/analytics"))


def test_a_forecast_whose_quantiles_exceed_the_route_is_read_as_its_median(fake: FakeAdmin, run_flow) -> None:
    """150 districts weekly (the real lane's national case): the five quantiles of 12 weeks are ~0.8 MB
    through the route, the median alone ~0.16 MB."""
    setup = fake.seed_scale(SETUP, "week", 150, 3, 114)

    run = run_flow(prediction_setup_id=SETUP)

    assert run.state.is_completed(), run.report
    assert all(r["status"] == 200 for r in fake.requests(CHAP + "/*"))
    [entries] = fake.requests(CHAP + "/v1/analytics/prediction-entry/*")
    assert entries["query"] == [["quantiles", "0.5"]]
    assert run.field(setup["name"], "Prediction values returned") == "1,800"  # 150 × 12 × the median
    assert run.field(setup["name"], "Org units").endswith("predicted 150")
    assert run.field(setup["name"], "Prediction entries") == (
        "the median only: its entries are larger than DHIS2's route passes on (256 KB)")


def test_a_route_answer_refused_as_too_large_leaves_the_run_completed(fake: FakeAdmin, run_flow) -> None:
    """A DHIS2 whose route passes on less than the flow expects: the entries' 502 is not a failure,
    the forecast exists; the summary says what it covers."""
    fake.limits(max_route_body=3000)  # the setups' listing (~2.3 kB) passes, the weekly entries (~9 kB) do not

    run = run_flow(prediction_setup_id=5)

    assert run.state.is_completed(), run.report
    refused = [r for r in fake.requests(CHAP + "/v1/analytics/prediction-entry/*") if r["status"] == 502]
    assert refused, "the entries should have been refused by the route"
    assert run.field("Dengue weekly", "Status") == "SUCCEEDED"
    assert run.field("Dengue weekly", "Org units").endswith("predicted 2")
    assert run.field("Dengue weekly", "Predicted periods") == "2026W11..2026W22 (12 periods)"
    note = run.field("Dengue weekly", "Prediction entries")
    assert note.startswith("values not read: reading its entries through DHIS2's route answered HTTP 502"), note


def test_a_forecast_too_large_for_any_read_is_reported_not_failed(fake: FakeAdmin, run_flow) -> None:
    fake.limits(max_route_body=3000)
    fake.faults(http_errors=[{"path": CHAP + "/v1/crud/predictions/*", "status": 502}])

    run = run_flow(prediction_setup_id=5)

    assert run.state.is_completed(), run.report
    prediction = run.field("Dengue weekly", "Prediction")
    note = run.field("Dengue weekly", "Prediction entries")
    assert note.startswith("not read: reading its entries through DHIS2's route answered HTTP 502"), note
    assert f"read prediction {prediction} in chap-core" in note and "DHIS2 Modeling app" in note
    assert "predicted" not in run.field("Dengue weekly", "Org units")  # unknown, not "0"
