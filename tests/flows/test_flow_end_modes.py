"""Each end mode against the fake, for the monthly setup (3) and the weekly setup (5).

The fake holds data up to the last complete period before its "today", so the expected end
periods below follow from the calendar alone. Expected period lists are built by hand-rolled
helpers, not by `flows.periods`.
"""

from __future__ import annotations

import re

import pytest

from datetime import date
from typing import Any

from tests.fake_dhis2 import FakeAdmin
from tests.flows.helpers import dimension, dimension_names, months, weeks

pytestmark = pytest.mark.flows

MONTHLY_DX = ["deCase001", "deRain001", "deTemp001"]
WEEKLY_DX = ["deCaseW01", "deRainW01"]
RUN_PATH = "/api/routes/chap/run/v1/crud/prediction-setups/{}/run"
WEEKS_IN = {2024: 52, 2025: 52, 2026: 53, 2027: 52}


def analytics_calls(fake: FakeAdmin, dx: list[str]) -> list[dict[str, Any]]:
    return [r for r in fake.requests("/api/analytics") if dimension(r, "dx") == dx]


def run_body(fake: FakeAdmin, setup_id: int) -> dict[str, Any]:
    posts = fake.requests(RUN_PATH.format(setup_id), method="POST")
    assert len(posts) == 1
    return posts[0]["json"]


def plain_name(body: dict[str, Any]) -> str:
    """The request's name without the token that makes it unique to the run (` [run 1a2b3c4d]`)."""
    name, token = re.fullmatch(r"(.*) \[run ([0-9a-f]{8})\]", body["name"]).groups()
    return name


def test_calculated_mode_probes_then_fetches_the_full_range(fake: FakeAdmin, run_flow) -> None:
    run = run_flow()

    assert run.state.name == "Completed"
    monthly_probe, monthly_fetch = analytics_calls(fake, MONTHLY_DX)
    assert dimension_names(monthly_probe) == ["dx", "pe", "ou"]
    assert dimension(monthly_probe, "pe") == ["LAST_12_MONTHS"]
    assert dimension(monthly_probe, "ou") == ["ouDist001", "ouDist002", "ouDist003"]
    assert dimension(monthly_fetch, "pe") == months("202301", "202602")
    weekly_probe, weekly_fetch = analytics_calls(fake, WEEKLY_DX)
    assert dimension(weekly_probe, "pe") == ["LAST_52_WEEKS"]
    assert dimension(weekly_fetch, "pe") == weeks("2024W01", "2026W10", WEEKS_IN)
    assert run.field("Malaria monthly", "End period") == "202602"
    assert run.field("Dengue weekly", "End period") == "2026W10"


def test_calculated_end_is_the_earliest_of_the_covariates_latest_periods(fake: FakeAdmin, run_flow) -> None:
    # Rainfall for February is not in DHIS2 yet; cases and temperature are.
    fake.faults(data_gaps=[{"dataElement": "deRain001", "periods": ["202602"]}])

    run = run_flow(configured_model_id=12)

    assert run.state.name == "Completed"
    assert run.field("Malaria monthly", "End period") == "202601"
    assert dimension(analytics_calls(fake, MONTHLY_DX)[1], "pe") == months("202301", "202601")
    assert plain_name(run_body(fake, 3)) == "Malaria monthly (chapkit-ewars-model) 202301-202601"


def test_monthly_request_body(fake: FakeAdmin, run_flow) -> None:
    run = run_flow(end_mode="offset", end_period_offset=1, configured_model_id=12)

    body = run_body(fake, 3)
    assert sorted(body) == ["geojson", "nPeriods", "name", "providedData", "type"]
    # unique to the run (the start of its flow run id), so a submit whose answer was lost is found by name
    token = str(run.state.state_details.flow_run_id).replace("-", "")[:8]
    assert body["name"] == f"Malaria monthly (chapkit-ewars-model) 202301-202602 [run {token}]"
    assert body["nPeriods"] == 3
    assert body["type"] == "forecasting"
    provided = body["providedData"]
    assert len(provided) == 38 * 3 * 3
    assert {row["featureName"] for row in provided} == {"disease_cases", "rainfall", "mean_temperature"}
    assert sorted({row["period"] for row in provided}) == months("202301", "202602")
    assert {row["orgUnit"] for row in provided} == {"ouDist001", "ouDist002", "ouDist003"}
    assert all(isinstance(row["value"], float) for row in provided)
    features = body["geojson"]["features"]
    assert body["geojson"]["type"] == "FeatureCollection"
    assert [f["id"] for f in features] == ["ouDist001", "ouDist002", "ouDist003"]
    assert features[0]["properties"] == {"id": "ouDist001", "level": 2, "displayName": "North District",
                                         "code": "ND01", "parent": "ouProv0001", "parentGraph": "ouProv0001"}
    assert features[2]["properties"] == {"id": "ouDist003", "level": 2, "displayName": "East District",
                                         "parent": "ouProv0001", "parentGraph": "ouProv0001"}
    assert features[2]["geometry"]["type"] == "MultiPolygon"
    [org_units] = fake.requests("/api/organisationUnits")
    assert dict(map(tuple, org_units["query"])) == {
        "filter": "id:in:[ouDist001,ouDist002,ouDist003]",
        "fields": "id,geometry,parent[id],level,displayName,code",
        "paging": "false",
    }


def test_analytics_values_arrive_as_numbers_and_odd_rows_are_dropped(fake: FakeAdmin, run_flow) -> None:
    fake.faults(odd_rows=True)

    run = run_flow(end_mode="offset", end_period_offset=1, configured_model_id=12)

    assert run.state.name == "Completed"
    provided = run_body(fake, 3)["providedData"]
    assert len(provided) == 38 * 3 * 3  # the short, empty, non-numeric and unknown rows are gone
    assert run.field("Malaria monthly", "Analytics rows fetched") == str(38 * 3 * 3 + 4)
    assert run.field("Malaria monthly", "Values sent to chap") == "342"


def test_fixed_mode_uses_the_period_containing_end_date(fake: FakeAdmin, run_flow) -> None:
    # 2025-12-30 is in December 2025 but in ISO week 2026W01.
    run = run_flow(end_mode="fixed", end_date=date(2025, 12, 30))

    assert run.state.name == "Completed"
    assert run.field("Malaria monthly", "End period") == "202512"
    assert run.field("Dengue weekly", "End period") == "2026W01"
    assert dimension(analytics_calls(fake, MONTHLY_DX)[0], "pe") == months("202301", "202512")
    assert dimension(analytics_calls(fake, WEEKLY_DX)[0], "pe") == weeks("2024W01", "2026W01", WEEKS_IN)
    assert len(analytics_calls(fake, MONTHLY_DX)) == 1  # no probe outside calculated mode
    assert plain_name(run_body(fake, 5)) == "Dengue weekly (auto-regressive-weekly) 2024W01-2026W01"


def test_offset_mode_counts_back_from_the_current_period(fake: FakeAdmin, run_flow) -> None:
    run = run_flow(end_mode="offset", end_period_offset=2)

    assert run.state.name == "Completed"
    assert run.field("Malaria monthly", "End period") == "202601"
    assert run.field("Dengue weekly", "End period") == "2026W09"
    assert dimension(analytics_calls(fake, WEEKLY_DX)[0], "pe") == weeks("2024W01", "2026W09", WEEKS_IN)


def test_weekly_calculated_across_a_53_week_year(fake: FakeAdmin, use_today, run_flow) -> None:
    use_today(date(2027, 1, 12))  # 2027W02: the last complete week is 2027W01, after 2026W53
    fake.patch_setup(5, startPeriod="2025W01")  # within the flow's 120-week cap

    run = run_flow(configured_model_id=7)

    assert run.state.name == "Completed"
    probe, fetch = analytics_calls(fake, WEEKLY_DX)
    assert dimension(probe, "pe") == ["LAST_52_WEEKS"]
    assert dimension(fetch, "pe") == weeks("2025W01", "2027W01", WEEKS_IN)
    assert "2026W53" in dimension(fetch, "pe")
    assert run.field("Dengue weekly", "Input periods") == "2025W01..2027W01 (106 periods)"
    body = run_body(fake, 5)
    assert body["nPeriods"] == 12
    # DHIS2 writes weeks unpadded; the flow passes them on as DHIS2 wrote them.
    sent = {row["period"] for row in body["providedData"]}
    assert {"2025W1", "2026W9", "2026W53", "2027W1"} <= sent
    assert not any(period.split("W")[1].startswith("0") for period in sent)


def test_weekly_fixed_end_in_week_53(fake: FakeAdmin, use_today, run_flow) -> None:
    use_today(date(2027, 1, 12))
    fake.patch_setup(5, startPeriod="2025W01")  # within the flow's 120-week cap

    run = run_flow(end_mode="fixed", end_date=date(2026, 12, 31), prediction_setup_id=5)

    assert run.state.name == "Completed"
    assert run.field("Dengue weekly", "End period") == "2026W53"
    assert dimension(analytics_calls(fake, WEEKLY_DX)[0], "pe") == weeks("2025W01", "2026W53", WEEKS_IN)
    assert run.field("Dengue weekly", "Predicted periods") == "2027W01..2027W12 (12 periods)"


def test_weekly_offset_across_the_year_boundary(fake: FakeAdmin, use_today, run_flow) -> None:
    use_today(date(2027, 1, 5))  # 2027W01; one week back is 2026W53
    fake.patch_setup(5, startPeriod="2025W01")  # within the flow's 120-week cap

    run = run_flow(end_mode="offset", end_period_offset=1, configured_model_id=7)

    assert run.state.name == "Completed"
    assert run.field("Dengue weekly", "End period") == "2026W53"
    assert run.field("Dengue weekly", "Input periods") == "2025W01..2026W53 (105 periods)"
    assert plain_name(run_body(fake, 5)) == "Dengue weekly (auto-regressive-weekly) 2025W01-2026W53"


def test_monthly_offset_across_the_year_boundary(fake: FakeAdmin, use_today, run_flow) -> None:
    use_today(date(2026, 1, 15))

    run = run_flow(end_mode="offset", end_period_offset=1, configured_model_id=12)

    assert run.state.name == "Completed"
    assert run.field("Malaria monthly", "End period") == "202512"
    assert dimension(analytics_calls(fake, MONTHLY_DX)[0], "pe") == months("202301", "202512")
