"""Report rendering details that the fake cannot easily provoke."""

from __future__ import annotations

from datetime import datetime, timezone

from flows.report import RunReport, ServiceCheck, SetupOutcome, code, period_list, render

T0 = datetime(2026, 3, 10, 6, 0, tzinfo=timezone.utc)


def report_with(outcome: SetupOutcome) -> list[str]:
    report = RunReport(project="p", key="chap-report-p", dhis2_url="https://d", started=T0,
                       finished=datetime(2026, 3, 10, 6, 2, 5, tzinfo=timezone.utc),
                       dhis2=ServiceCheck(True, "DHIS2 2.41"), chap=ServiceCheck(True, "chap-core 2.1"),
                       outcomes=[outcome])
    return render(report).splitlines()


def test_long_or_multi_line_errors_are_fenced() -> None:
    error = "first line\nsecond line"
    lines = report_with(SetupOutcome(1, "S", "m", 2).fail("wait_for_prediction", error))

    assert lines[lines.index("- **Error:**"):][:5] == ["- **Error:**", "", "```", "first line", "second line"]
    assert "- **Duration:** 2m 05s" in lines


def test_backticks_in_names_do_not_break_code_spans() -> None:
    assert code("a `b` c") == "`` a `b` c ``"
    assert code("plain") == "`plain`"
    assert "### `` odd `name` `` -- m" in report_with(SetupOutcome(1, "odd `name`", "m", 2))


def test_period_lists_shorten_after_the_limit() -> None:
    assert period_list(["202601", "202602", "202603"], 4) == "202601, 202602, 202603"
    assert period_list([f"2026{m:02d}" for m in range(1, 8)], 6) == "202601..202607 (7 periods)"
