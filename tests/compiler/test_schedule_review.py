"""SCHEDULES.md and schedules.svg: plain English, UTC with DST, load table, hot-spot warnings."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from click.testing import CliRunner

from compiler.cli import app
from compiler.compile.schedule_report import describe, utc_crons, utc_texts

PROJECT = """\
name: {name}
credentials:
  block: {block}
  base_url: https://{host}
  username: chap-bot
  password_env: PW_{env}
model_id: 3
schedule:
  cron: "{cron}"
  timezone: {zone}
"""


def project(name, cron, zone="UTC", host="dhis2.example.org", block=None):
    block = block or host.split(".")[0]
    return PROJECT.format(name=name, cron=cron, zone=zone, host=host, block=block,
                          env=block.upper().replace("-", "_"))


def compile_files(repo_factory, files):
    repo = repo_factory(files)
    result = CliRunner().invoke(app, ["compile", "--root", str(repo)], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    return repo, (repo / "SCHEDULES.md").read_text()


@pytest.mark.parametrize(("cron", "text"), [
    ("0 6 * * 1", "At 06:00, only on Monday"),
    ("30 5 2 * *", "At 05:30, on day 2 of the month"),
    ("*/15 * * * *", "Every 15 minutes"),
    ("@daily", "At 00:00"),
])
def test_plain_english(cron, text):
    assert describe(cron) == text


def test_utc_crons_shift_days_and_hours():
    assert utc_crons("0 6 * * 1", 7 * 60) == ["0 23 * * 0"]  # Vientiane Monday 06:00 = Sunday 23:00 UTC
    assert utc_crons("30 5 2 * *", 7 * 60) == ["30 22 1 * *"]
    assert utc_crons("0 1,23 * * *", 2 * 60) == ["0 21,23 * * *"]  # every day: midnight moves no day
    assert utc_crons("0 1,23 * * 1", 2 * 60) == ["0 23 * * 0", "0 21 * * 1"]
    assert utc_crons("0 * * * *", 330) == ["30 * * * *"]
    assert utc_crons("0 0 1 * *", 60) is None  # the day before the 1st is no fixed day of month
    # Issue 21 #19: a month field read "local times minus +02:00" in SCHEDULES.md. The months stay
    # when no run crosses midnight; when one does, the text says which way and by how much.
    assert utc_crons("0 5 1 1 *", 2 * 60) == ["0 3 1 1 *"]
    assert utc_crons("0 5 1 1,7 1", 2 * 60) == ["0 3 1 1,7 1"]
    assert utc_crons("0 1 1 1 *", 2 * 60) is None  # 31 December, the year before


@pytest.mark.parametrize(("cron", "zone", "text"), [
    ("0 5 1 1 *", "Africa/Kigali", "At 03:00, on day 1 of the month, only in January"),
    ("0 1 1 1 *", "Africa/Kigali", "the local times, 2 h earlier (the zone is UTC+02:00)"),
    ("0 1 1 1 *", "America/Santiago", "At 04:00, on day 1 of the month, only in January"),
    ("0 23 31 12 *", "America/Santiago", "the local times, 3 h later (the zone is UTC-03:00)"),
    ("0 1 1 1 *", "Asia/Kathmandu", "the local times, 5 h 45 min earlier (the zone is UTC+05:45)"),
])
def test_utc_text_of_what_cron_cannot_shift(cron, zone, text):
    assert utc_texts(cron, zone)[0].startswith(text)


def test_dst_zone_lists_both_utc_times_with_their_periods(repo_factory):
    _, text = compile_files(repo_factory, {"projects/oslo.yaml": project("oslo", "30 2 * * *", "Europe/Oslo")})
    row = next(line for line in text.splitlines() if line.startswith("| oslo "))
    assert "At 01:30 (1 Jan – 27 Mar, 31 Oct – 31 Dec)" in row
    assert "At 00:30 (28 Mar – 30 Oct)" in row


def test_row_shows_utc_instance_and_model(repo_factory):
    _, text = compile_files(repo_factory, {"projects/laos.yaml": project("laos", "0 6 * * 1", "Asia/Vientiane",
                                                                         "dhis2.la.example.org")})
    assert ("| laos | `0 6 * * 1` | Asia/Vientiane | yes | At 06:00, only on Monday | At 23:00, only on Sunday "
            "| dhis2.la.example.org | 3 |") in text
    assert "| Sun 23:00 | 1 | dhis2.la.example.org: 1 |" in text


def hot_files(count, host="dhis2.example.org"):
    # Same UTC hour from different zones: Kigali 08:10 = UTC 06:10, UTC 06:40, Vientiane 13:20 = 06:20.
    zones = [("Africa/Kigali", "10 8"), ("UTC", "40 6"), ("Asia/Vientiane", "20 13"), ("UTC", "50 6")]
    return {f"projects/p{i}.yaml": project(f"p{i}", f"{zones[i][1]} * * 3", zones[i][0], host,
                                           block="shared") for i in range(count)}


def test_hotspot_fires_above_the_threshold_and_not_at_it(repo_factory):
    defaults = {"projects/_defaults.yaml": "load_warnings:\n  per_instance: 3\n  overall: 10\n"}
    _, at_limit = compile_files(repo_factory, {**defaults, **hot_files(3)})
    assert "No hot-spots" in at_limit
    _, above = compile_files(repo_factory, {**defaults, **hot_files(4)})
    assert ("- **dhis2.example.org**: 4 runs start Wed 06:00-06:59 UTC (more than 3; all year): p0, p1, p2, p3"
            in above)
    assert "all instances" not in above  # 4 is not more than the overall limit of 10


def test_overall_threshold_counts_every_instance(repo_factory):
    files = {"projects/_defaults.yaml": "load_warnings:\n  per_instance: 5\n  overall: 1\n"}
    files["projects/a.yaml"] = project("a", "0 6 * * 1", host="a.example.org")
    files["projects/b.yaml"] = project("b", "30 6 * * 1", host="b.example.org")
    _, text = compile_files(repo_factory, files)
    assert "- **all instances**: 2 runs start Mon 06:00-06:59 UTC (more than 1; all year): a, b" in text


def test_paused_schedules_are_shown_but_not_counted(repo_factory):
    files = hot_files(4)
    files["projects/p3.yaml"] = files["projects/p3.yaml"] + "  active: false\n"
    _, text = compile_files(repo_factory, files)
    assert "**paused**" in text and "No hot-spots" in text


def test_svg_is_well_formed_names_projects_and_marks_hot_cells(repo_factory):
    repo, _ = compile_files(repo_factory, hot_files(4))
    svg = ET.parse(repo / "schedules.svg").getroot()
    titles = [t.text for t in svg.iter("{http://www.w3.org/2000/svg}title")]
    assert ("Wed 06:00-06:59 UTC: 4 run(s) at the busiest time of year, HOT-SPOT: p0, p1, p2, p3") in titles
    hot = [r for r in svg.iter("{http://www.w3.org/2000/svg}rect") if r.get("stroke") == "#d62728"]
    assert len(hot) == 2  # the cell, and the legend's sample
    labels = [t.text for t in svg.iter("{http://www.w3.org/2000/svg}text")]
    assert "4!" in labels and "hot-spot (over load_warnings)" in labels
    assert ["0", "1", "2", "3", "4-5", "6-9", "10+"] == [t for t in labels if t in SCALE_LABELS]


SCALE_LABELS = {"0", "1", "2", "3", "4-5", "6-9", "10+"}


def test_heat_map_scale_is_fixed_not_relative(repo_factory):
    """One run is the same shade whether the busiest hour has 1 run or 4."""
    def shade(repo, day_hour_title):
        svg = ET.parse(repo / "schedules.svg").getroot()
        for g in svg.iter("{http://www.w3.org/2000/svg}g"):
            if g.find("{http://www.w3.org/2000/svg}title").text.startswith(day_hour_title):
                return g.find("{http://www.w3.org/2000/svg}rect").get("fill")
        raise AssertionError(day_hour_title)

    lone = {"projects/lone.yaml": project("lone", "0 1 * * 1")}
    repo, _ = compile_files(repo_factory, lone)
    alone = shade(repo, "Mon 01:00")
    repo, _ = compile_files(repo_factory, {**lone, **hot_files(4)})
    assert shade(repo, "Mon 01:00") == alone == "#dbe9f6"


def test_svg_diff_of_one_schedule_change_is_one_line_per_cell(repo_factory):
    files = {f"projects/p{i}.yaml": project(f"p{i}", f"0 {i} * * 1") for i in range(5)}
    repo, _ = compile_files(repo_factory, files)
    before = (repo / "schedules.svg").read_text().splitlines()
    (repo / "projects/p2.yaml").write_text(project("p2", "0 2 * * 2"))
    CliRunner().invoke(app, ["compile", "--root", str(repo)], catch_exceptions=False)
    after = (repo / "schedules.svg").read_text().splitlines()
    import difflib

    changed = [line for line in difflib.unified_diff(before, after, lineterm="", n=0)
               if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    assert len(changed) == 4, changed  # the digest line twice, the old cell, the new cell
    assert any("Mon 02:00-02:59 UTC: 1 run(s)" in line for line in changed if line.startswith("-"))
    assert any("Tue 02:00-02:59 UTC: 1 run(s)" in line for line in changed if line.startswith("+"))


def test_schedule_change_moves_one_table_row(repo_factory):
    files = {f"projects/p{i}.yaml": project(f"p{i}", f"0 {i} * * 1") for i in range(5)}
    repo, before = compile_files(repo_factory, files)
    (repo / "projects/p2.yaml").write_text(project("p2", "0 2 * * 2"))
    CliRunner().invoke(app, ["compile", "--root", str(repo)], catch_exceptions=False)
    after = (repo / "SCHEDULES.md").read_text()
    changed_rows = [a for a, b in zip(after.splitlines(), before.splitlines()) if a != b and a.startswith("| p")]
    assert changed_rows == ["| p2 | `0 2 * * 2` | UTC | yes | At 02:00, only on Tuesday | At 02:00, only on Tuesday "
                            "| dhis2.example.org | 3 |"]


def test_wildcard_minute_and_hour_crons_compile_and_group_their_hotspots(repo_factory):
    files = {"projects/every-minute.yaml": project("every-minute", "* * * * *"),
             "projects/hourly.yaml": project("hourly", "0 * * * *", "Asia/Kolkata", host="b.example.org")}
    _, text = compile_files(repo_factory, files)
    assert "| every-minute | `* * * * *` | UTC | yes | Every minute | Every minute |" in text
    assert "| hourly | `0 * * * *` | Asia/Kolkata | yes | Every hour | At 30 minutes past the hour |" in text
    warnings = text.split("## Warnings")[1].strip().splitlines()
    assert warnings == ["- **dhis2.example.org**: 60 runs start in every UTC hour of the week (more than 3; "
                        "all year): every-minute",
                        "- **all instances**: 61 runs start in every UTC hour of the week (more than 10; "
                        "all year): every-minute, hourly"][::-1]


def invoke(*args):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_monthly_schedules_are_in_the_load_review_and_raise_hotspots(repo_factory):
    files = {f"projects/m{i}.yaml": project(f"m{i}", "0 2 1 * *") for i in range(5)}
    repo, text = compile_files(repo_factory, files)
    warnings = text.split("## Warnings")[1].strip().splitlines()
    assert warnings == ["- **dhis2.example.org**: 5 runs start 02:00-02:59 UTC on day 1 of every month (more than 3; "
                        "12 days a year): m0, m1, m2, m3, m4"]
    # Issue 21 #19: a monthly run was drawn on every weekday (the 1st falls on each in a year). It
    # has its own row, Dated: the busiest day it runs, not a weekly pattern.
    rows = [line for line in text.splitlines() if line.startswith("| ") and " 02:00 " in line]
    assert rows == ["| Dated 02:00 **(hot-spot)** | 5 | dhis2.example.org: 5 | m0, m1, m2, m3, m4 |"]
    svg = ET.parse(repo / "schedules.svg").getroot()
    assert sum(1 for r in svg.iter("{http://www.w3.org/2000/svg}rect") if r.get("stroke")) == 1 + 1
    titles = [t.text for t in svg.iter("{http://www.w3.org/2000/svg}title")]
    assert any(t.startswith("Dated 02:00-02:59 UTC: 5 run(s) at the busiest day they run, HOT-SPOT") for t in titles)


def test_heat_map_text_fits_its_width(repo_factory):
    """Issue 21 #19: the caption ran past the right edge. Sans-serif at 11 px averages under 6.2 px
    a character: every text line must fit the image at that width."""
    repo, _ = compile_files(repo_factory, {"projects/m.yaml": project("m", "0 2 1 * *")})
    svg = ET.parse(repo / "schedules.svg").getroot()
    width = int(svg.get("width"))
    texts = [t for t in svg.iter("{http://www.w3.org/2000/svg}text") if t.get("text-anchor") is None]
    assert texts and all(int(t.get("x")) + 6.2 * len(t.text) <= width for t in texts), \
        [t.text for t in texts if int(t.get("x")) + 6.2 * len(t.text) > width]
    assert [t.text for t in svg.iter("{http://www.w3.org/2000/svg}text") if t.get("text-anchor") == "end"] == [
        "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun", "Dated"]


def test_day_of_month_or_weekday_cron_counts_both(repo_factory):
    _, text = compile_files(repo_factory, {"projects/either.yaml": project("either", "0 2 1 * 1")})
    rows = {line.split(" |")[0][2:] for line in text.splitlines() if line.startswith("| ") and ":00 " in line}
    assert rows == {"Dated 02:00"}  # 1st-or-Monday: counted on each day it runs, in the Dated row


def test_monthly_and_weekly_add_up_on_the_days_they_meet(repo_factory):
    files = {f"projects/w{i}.yaml": project(f"w{i}", "0 2 * * 1") for i in range(3)}  # 3: at the limit
    files["projects/m.yaml"] = project("m", "30 2 1 * *")
    _, text = compile_files(repo_factory, files)
    # In 2027 (the reference year) the 1st is a Monday in February, March and November.
    assert ("- **dhis2.example.org**: 4 runs start 02:00-02:59 UTC on day 1 of Feb, Mar, Nov "
            "(more than 3; 3 days a year): m, w0, w1, w2") in text


def test_hotspots_are_warnings_in_validate_compile_and_json(repo_factory):
    repo = repo_factory({f"projects/m{i}.yaml": project(f"m{i}", "0 2 1 * *") for i in range(5)})
    result = invoke("validate", "--root", str(repo))
    assert result.exit_code == 0
    assert ("projects/m0.yaml:9:9: warning: schedule.cron: load hot-spot (and 4 other project(s)): 5 runs start "
            "02:00-02:59 UTC on day 1 of every month against dhis2.example.org") in result.stderr
    assert "5 project(s) valid (1 warning(s))" in result.stdout
    report = json.loads(invoke("validate", "--root", str(repo), "--format", "json").stdout)
    assert report["valid"] is True and report["warnings"] == 1
    assert report["diagnostics"][0]["severity"] == "warning" and report["diagnostics"][0]["line"] == 9
    result = invoke("validate", "--root", str(repo), "--strict")
    assert result.exit_code == 1 and "--strict" in result.stderr
    result = invoke("compile", "--root", str(repo))
    assert result.exit_code == 0 and "load hot-spot" in result.stderr
    doc = json.loads(invoke("compile", "--root", str(repo), "--check", "--format", "json").stdout)
    assert doc["warnings"] == 1 and doc["fresh"] is True
    assert invoke("compile", "--root", str(repo), "--strict").exit_code == 1


def test_hotspot_of_schedules_entries_is_a_warning_on_the_entry(repo_factory):
    """Issue 21 #11: five projects whose `schedules:` entries meet in one hour were an internal error
    (StopIteration) in validate, compile, plan and status; the warning points at the entry's cron."""
    def entries(name):
        return PROJECT.split("schedule:")[0].format(name=name, block="dhis2", host="dhis2.example.org",
                                                    env="DHIS2") + (
            "schedules:\n  - slug: weekly\n    cron: \"0 7 * * 2\"\n    timezone: UTC\n"
            "  - slug: monthly\n    cron: \"0 2 1 * *\"\n    timezone: UTC\n")

    repo = repo_factory({f"projects/s{i}.yaml": entries(f"s{i}") for i in range(5)})
    result = invoke("validate", "--root", str(repo))
    assert result.exit_code == 0, result.stderr
    assert "internal error" not in result.stderr
    assert ("projects/s0.yaml:10:11: warning: schedules[0].cron: load hot-spot (and 4 other project(s)): 5 runs "
            "start Tue 07:00-07:59 UTC against dhis2.example.org") in result.stderr
    assert ("projects/s0.yaml:13:11: warning: schedules[1].cron: load hot-spot (and 4 other project(s)): 5 runs "
            "start 02:00-02:59 UTC on day 1 of every month against dhis2.example.org") in result.stderr
    assert invoke("compile", "--root", str(repo)).exit_code == 0


def test_utc_crons_fire_when_the_local_cron_does():
    """Every UTC cron utc_crons gives fires exactly when the local cron fires at that offset
    (Prefect's own croniter on both sides), over a sweep of fields and offsets, months included."""
    import datetime as dt
    import itertools

    from prefect._vendor.croniter import croniter

    def fires(cron, start, until):
        it, out = croniter(cron, start), []
        while (t := it.get_next(dt.datetime).astimezone(dt.timezone.utc)) <= until:
            out.append(t)
        return out

    checked = 0
    for minute, hour, dom, month, dow, offset in itertools.product(
            ("0", "15,45"), ("1", "5", "23", "1,23"), ("*", "1", "28"), ("*", "1", "1,7"), ("*", "0,3"),
            (120, -180, 345)):
        cron = f"{minute} {hour} {dom} {month} {dow}"
        shifted = utc_crons(cron, offset)
        if shifted is None:
            continue
        start = dt.datetime(2026, 1, 1, tzinfo=dt.timezone(dt.timedelta(minutes=offset)))
        until = start + dt.timedelta(days=400)
        in_utc = start.astimezone(dt.timezone.utc)
        assert sorted({t for c in shifted for t in fires(c, in_utc, until)}) == fires(cron, start, until), (cron, offset)
        checked += 1
    assert checked > 100
