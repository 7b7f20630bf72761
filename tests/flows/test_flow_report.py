"""The run report's content and key, and the parameter schema Prefect derives from the flow."""

from __future__ import annotations

import pytest

import re

import httpx
from prefect.utilities.callables import parameter_schema

from flows.blocks import Dhis2Credentials
from flows.dhis2_chap_prediction import dhis2_chap_prediction
from tests.fake_dhis2 import FakeAdmin
from tests.flows.helpers import PASSWORD, USERNAME

pytestmark = pytest.mark.flows


def test_full_report_of_a_successful_run(fake: FakeAdmin, run_flow, fake_server) -> None:
    run = run_flow(end_mode="offset", end_period_offset=1)

    jobs = {job["prediction_setup_id"]: job["id"] for job in fake.state()["jobs"]}
    assert re.fullmatch(r"- \*\*Started:\*\* \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", run.lines[5])
    assert re.fullmatch(r"- \*\*Duration:\*\* 0m \d\ds", run.lines[6])
    assert run.lines[:5] + run.lines[7:] == [
        "# CHAP prediction run report",
        "",
        "- **Result:** SUCCEEDED -- 2 of 2 prediction setups succeeded, 1 skipped",
        "- **Project:** (run outside a deployment)",
        f"- **DHIS2:** {fake_server.url}",
        "- **End mode:** offset (end_period_offset=1)",
        "- **Today:** 2026-03-10 (from CHAP_TODAY)",
        "- **Selection:** every setup with its CHAP schedule enabled",
        "",
        "## DHIS2",
        "",
        "**REACHABLE** -- DHIS2 2.41.2 (Demo HMIS)",
        "",
        "## chap-core",
        "",
        "**REACHABLE** -- chap-core 2.5.1 (python 3.13.1)",
        "",
        "- **DHIS2 route timeout:** 5 s (`responseTimeoutSeconds` of the DHIS2 route `chap`) -- **WARNING:** under "
        "30 s. chap-core answers a submit only after checking its whole body (measured: 5.8 s for 700 districts, 110 "
        "weeks, 3 covariates), and when it is slower than this DHIS2 answers 504 although the job is made. Raise the "
        "route's responseTimeoutSeconds to 60 (see docs/operations.md)",
        "",
        "## Prediction setups (2 succeeded, 0 failed, 1 skipped)",
        "",
        "### `Malaria monthly` -- chapkit-ewars-model",
        "",
        "- **Status:** SUCCEEDED",
        "- **Setup:** 3 (month, configured model 12)",
        "- **End period:** 202602",
        "- **Input periods:** 202301..202602 (38 periods)",
        "- **Analytics rows fetched:** 342",
        "- **Values sent to chap:** 342",
        "- **DHIS2 reads:** 2 reads (0 refused and halved), 342 records, 15.1 kB",
        "- **Org units:** 3 in the setup; sent 3 (3 with geometry); predicted 3",
        f"- **Job:** `{jobs[3]}`",
        "- **Prediction:** 42",
        "- **Prediction values returned:** 45",
        "- **Predicted periods:** 202603, 202604, 202605",
        "",
        "### `Dengue weekly` -- auto-regressive-weekly",
        "",
        "- **Status:** SUCCEEDED",
        "- **Setup:** 5 (week, configured model 7)",
        "- **End period:** 2026W10",
        "- **Input periods:** 2024W01..2026W10 (114 periods)",
        "- **Analytics rows fetched:** 456",
        "- **Values sent to chap:** 456",
        "- **DHIS2 reads:** 2 reads (0 refused and halved), 456 records, 19.7 kB",
        "- **Org units:** 2 in the setup; sent 2 (2 with geometry); predicted 2",
        f"- **Job:** `{jobs[5]}`",
        "- **Prediction:** 43",
        "- **Prediction values returned:** 120",
        "- **Predicted periods:** 2026W11..2026W22 (12 periods)",
        "",
        "### `Malaria monthly (north pilot)` -- chapkit-ewars-model",
        "",
        "- **Status:** SKIPPED -- scheduleEnabled is false in CHAP",
        "- **Setup:** 8 (month, configured model 12)",
    ]
    assert run.key == "chap-report"
    assert run.state.name == "Completed"
    assert run.state.message == "SUCCEEDED -- 2 of 2 prediction setups succeeded, 1 skipped"


def test_prediction_entries_are_asked_for_the_default_quantiles(fake: FakeAdmin, run_flow) -> None:
    run_flow(end_mode="offset", end_period_offset=1, configured_model_id=7)

    [entries] = fake.requests("/api/routes/chap/run/v1/analytics/prediction-entry/*")
    assert entries["query"] == [["quantiles", q] for q in ("0.1", "0.25", "0.5", "0.75", "0.9")]


def test_org_units_missing_from_dhis2_are_named(fake: FakeAdmin, run_flow) -> None:
    fake.patch_setup(5, orgUnits=["ouDist001", "ouGone0001", "ouDist003"])

    run = run_flow(end_mode="offset", end_period_offset=1, configured_model_id=7)

    # DHIS2 analytics refuses unknown org units, so the setup fails, but the report says why.
    assert run.field("Dengue weekly", "Status") == "FAILED at `fetch_dhis2_for_setup`"
    assert run.field("Dengue weekly", "Error") == \
        "`DHIS2 GET /api/analytics -> HTTP 409: Dimension items not found: ouGone0001`"


def test_report_key_comes_from_the_credentials_block_name(fake: FakeAdmin, run_flow, prefect_api, fake_server) -> None:
    def saved(name: str) -> Dhis2Credentials:
        Dhis2Credentials(base_url=fake_server.url, username=USERNAME, password=PASSWORD).save(name, overwrite=True)
        return Dhis2Credentials.load(name)

    laos = run_flow(credentials=saved("laos-dhis2"), end_mode="offset", end_period_offset=1, configured_model_id=12)
    rwanda = run_flow(credentials=saved("rwanda-dhis2"), prediction_setup_id=99)

    assert (laos.key, rwanda.key) == ("chap-report-laos-dhis2", "chap-report-rwanda-dhis2")
    assert "- **Project:** laos-dhis2" in laos.lines
    # Each project's latest report survives the other project's run.
    latest = httpx.post(f"{prefect_api}/artifacts/latest/filter",
                        json={"artifacts": {"key": {"any_": [laos.key, rwanda.key]}}}).json()
    assert {a["key"]: a["data"].splitlines()[2] for a in latest} == {
        "chap-report-laos-dhis2": "- **Result:** SUCCEEDED -- 1 of 1 prediction setups succeeded, 1 skipped",
        "chap-report-rwanda-dhis2": "- **Result:** FAILED -- no prediction setup selected: prediction_setup_id=99 "
                                    "not found; available ids: [3, 5, 8]",
    }


def test_parameter_schema() -> None:
    schema = parameter_schema(dhis2_chap_prediction).model_dump()

    assert schema["required"] == ["credentials"]
    credentials = schema["properties"]["credentials"]
    definition = schema["definitions"][credentials["$ref"].split("/")[-1]]
    assert definition["block_type_slug"] == "chap-dhis2-credentials"
    assert definition["secret_fields"] == ["password"]
    assert schema["properties"]["end_mode"]["enum"] == ["calculated", "fixed", "offset"]
    assert schema["properties"]["end_mode"]["default"] == "calculated"
    assert list(schema["properties"]) == ["credentials", "end_mode", "end_date", "end_period_offset",
                                          "configured_model_id", "prediction_setup_id", "chap_concurrency_limit"]
    limit = schema["properties"]["chap_concurrency_limit"]
    assert (limit["anyOf"], limit["default"]) == ([{"type": "string"}, {"type": "null"}], None)
    assert "global concurrency limit" in limit["description"]
    assert schema["properties"]["end_date"]["anyOf"][0] == {"format": "date", "type": "string"}
    assert all(schema["properties"][name].get("description") for name in schema["properties"])

