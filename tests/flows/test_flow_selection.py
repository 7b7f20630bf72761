"""Which prediction setups a run works on: configured_model_id, prediction_setup_id, scheduleEnabled."""

from __future__ import annotations

import pytest

from tests.fake_dhis2 import FakeAdmin

pytestmark = pytest.mark.flows

RUN_GLOB = "/api/routes/chap/run/v1/crud/prediction-setups/*/run"


def submitted(fake: FakeAdmin) -> list[str]:
    return [r["path"].split("/")[-2] for r in fake.requests(RUN_GLOB, method="POST")]


def titles(run) -> list[str]:
    return [line for line in run.lines if line.startswith("### ")]


def test_without_filters_every_enabled_setup_runs_and_disabled_ones_are_skipped(fake: FakeAdmin, run_flow) -> None:
    run = run_flow(end_mode="offset", end_period_offset=1)

    assert run.state.name == "Completed"
    assert submitted(fake) == ["3", "5"]
    assert titles(run) == ["### `Malaria monthly` -- chapkit-ewars-model",
                           "### `Dengue weekly` -- auto-regressive-weekly",
                           "### `Malaria monthly (north pilot)` -- chapkit-ewars-model"]
    assert run.section("Malaria monthly (north pilot)") == [
        "- **Status:** SKIPPED -- scheduleEnabled is false in CHAP",
        "- **Setup:** 8 (month, configured model 12)",
    ]
    assert "## Prediction setups (2 succeeded, 0 failed, 1 skipped)" in run.lines


def test_configured_model_id_selects_the_setups_of_that_model(fake: FakeAdmin, run_flow) -> None:
    run = run_flow(end_mode="offset", end_period_offset=1, configured_model_id=12)

    assert run.state.name == "Completed"
    assert submitted(fake) == ["3"]
    assert titles(run) == ["### `Malaria monthly` -- chapkit-ewars-model",
                           "### `Malaria monthly (north pilot)` -- chapkit-ewars-model"]
    assert "- **Selection:** configured_model_id=12" in run.lines


def test_configured_model_id_of_the_weekly_model(fake: FakeAdmin, run_flow) -> None:
    run = run_flow(end_mode="offset", end_period_offset=1, configured_model_id=7)

    assert submitted(fake) == ["5"]
    assert titles(run) == ["### `Dengue weekly` -- auto-regressive-weekly"]
    assert run.state.name == "Completed"


def test_prediction_setup_id_runs_that_setup_even_if_its_schedule_is_disabled(fake: FakeAdmin, run_flow) -> None:
    run = run_flow(end_mode="offset", end_period_offset=1, prediction_setup_id=8)

    assert run.state.name == "Completed"
    assert submitted(fake) == ["8"]
    assert titles(run) == ["### `Malaria monthly (north pilot)` -- chapkit-ewars-model"]
    assert run.field("Malaria monthly (north pilot)", "Status") == "SUCCEEDED"


def test_unknown_prediction_setup_id_fails_the_run(fake: FakeAdmin, run_flow) -> None:
    run = run_flow(prediction_setup_id=99)

    assert run.state.name == "Failed"
    # The reason is in the state message (what the UI, the worker log and `make run` show).
    assert run.state.message == ("FAILED -- no prediction setup selected: prediction_setup_id=99 not found; "
                                 "available ids: [3, 5, 8]")
    assert run.lines[-1] == "**NOTHING SELECTED** -- `prediction_setup_id=99 not found; available ids: [3, 5, 8]`"
    assert submitted(fake) == []
    assert fake.requests("/api/analytics") == []


def test_configured_model_id_that_no_setup_uses_fails_the_run(fake: FakeAdmin, run_flow) -> None:
    run = run_flow(configured_model_id=99)

    assert run.state.name == "Failed"
    reason = ("no prediction setup uses configured_model_id=99; the setups on this CHAP use configured model ids "
              "[7, 12] (setup ids [3, 5, 8]): set the project's model_id to one of those, or create a prediction "
              "setup for this model in CHAP")
    assert run.lines[-1] == f"**NOTHING SELECTED** -- `{reason}`"
    assert run.state.message == f"FAILED -- no prediction setup selected: {reason}"


def test_setup_id_of_another_model_fails_the_run(fake: FakeAdmin, run_flow) -> None:
    run = run_flow(configured_model_id=12, prediction_setup_id=5)

    assert run.state.name == "Failed"
    assert run.lines[-1] == ("**NOTHING SELECTED** -- `prediction_setup_id=5 uses configured model 7, "
                             "not configured_model_id=12`")
    assert submitted(fake) == []


def test_only_disabled_setups_selected_completes_without_running_anything(fake: FakeAdmin, run_flow) -> None:
    fake.patch_setup(3, scheduleEnabled=False)

    run = run_flow(configured_model_id=12)

    # A setup disabled in CHAP on purpose is not an incident: Completed, and the report says why.
    assert run.state.name == "Completed"
    assert run.state.message == ("NOTHING RUN -- every selected prediction setup is disabled in CHAP "
                                 "(scheduleEnabled=false)")
    assert submitted(fake) == []


def test_empty_setup_listing_fails_the_run(fake: FakeAdmin, run_flow) -> None:
    for setup_id in (3, 5, 8):
        fake.delete_setup(setup_id)

    run = run_flow()

    assert run.state.name == "Failed"
    assert run.lines[-1] == "**NOTHING SELECTED** -- `chap returned no prediction setups`"
