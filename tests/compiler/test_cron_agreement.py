"""chapctl's cron verdict must match Prefect's own CronSchedule validation.

chapctl loads Prefect's vendored croniter without importing prefect; this test imports the real
thing and compares. chapctl is deliberately stricter in one documented way: it wants 5 fields (or
an @-macro), so for other field counts it must reject whatever Prefect says.
"""

from __future__ import annotations

import pytest

from compiler.compile.cron import MACROS, cron_problem

FIVE_FIELD_CORPUS = [
    # valid
    "0 6 * * 1", "*/5 * * * *", "0 0 1 * *", "30 2 * * *", "0 0 * * 0", "0 0 * * 7", "15,45 * * * *",
    "0 9-17 * * 1-5", "0 0 1 1 *", "0 12 * * MON", "0 12 * * mon-fri", "0 0 * JAN *", "0 0 * jan,jul *",
    "59 23 31 12 *", "0 0 L * *", "0 0 * * 5L", "0 0 * * 1#2", "0 */2 * * *", "1-59/2 * * * *",
    "0 0 29 2 *", "0 0 30 2 *", "* * * * *", "0 0 1,15 * 1", "0 6 * * SUN", "00 06 * * 01",
    "0 0 1-7 * 1", "0 0 * * 1-5/2", "30 4 1,15 * 5", "5 4 * * sun", "0 0,12 1 */2 *", "23 0-20/2 * * *",
    "0 2 1 * 1", "0 2 L * *",
    # invalid
    "61 * * * *", "* 24 * * *", "* * 32 * *", "* * 0 * *", "* * * 13 * ", "* * * 0 *", "* * * * 8",
    "a b c d e", "H * * * *", "R * * * *", "0 H * * *", "*/0 * * * *", "5-1 * * * *", "0 0 * * 1#6",
    "0 0 * * MONDAY", "0 0 ? * *", "-1 * * * *", "0 0 * * 1,,2", "0 0 1-32 * *", "1.5 * * * *",
    "60 0 * * *", "0 0 * 1-13 *", "0 0 * * 1#0",
]
OTHER_CORPUS = [
    "@daily", "@hourly", "@weekly", "@monthly", "@yearly", "@annually", "@midnight", "@reboot", "@every_day",
    "0 0 6 * * 1", "0 0 6 * * 1 2026", "0 6 * *", "0", "",
]


def prefect_verdict(expression: str) -> bool:
    from prefect.server.schemas.schedules import CronSchedule

    try:
        CronSchedule(cron=expression)
    except Exception:
        return False
    return True


def test_corpus_is_large_and_mixed_and_the_readme_says_how_large():
    import re
    from pathlib import Path

    verdicts = [prefect_verdict(e) for e in FIVE_FIELD_CORPUS]
    assert len(set(FIVE_FIELD_CORPUS)) == len(FIVE_FIELD_CORPUS) and len(set(OTHER_CORPUS)) == len(OTHER_CORPUS)
    assert sum(verdicts) >= 15 and verdicts.count(False) >= 15
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    claimed = int(re.search(r"on a corpus of (\d+) expressions", readme).group(1))
    assert claimed == len(FIVE_FIELD_CORPUS) + len(OTHER_CORPUS)


@pytest.mark.parametrize("expression", FIVE_FIELD_CORPUS)
def test_five_field_verdicts_equal_prefects(expression):
    assert (cron_problem(expression) is None) == prefect_verdict(expression)


@pytest.mark.parametrize("expression", OTHER_CORPUS)
def test_other_shapes_accepted_only_when_prefect_accepts(expression):
    ours = cron_problem(expression) is None
    if ours:
        assert prefect_verdict(expression), "chapctl must never accept what Prefect rejects"
    if expression.lower() in MACROS:
        assert ours == prefect_verdict(expression)
    else:
        assert not ours


def test_rejection_names_the_bad_field():
    assert "hour field '24'" in cron_problem("0 24 * * *")
    assert "5 fields" in cron_problem("0 0 6 * * 1")
