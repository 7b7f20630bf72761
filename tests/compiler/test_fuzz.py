"""Fuzz of bad inputs (issue 21: "the fuzz of bad inputs finds no internal error and no crash").

Hypothesis mutates a valid project and a valid `_defaults.yaml`: any field replaced by any value
(strings with control and bidi characters, `{{ }}`, huge numbers, NaN, nested lists and maps),
unknown keys added, fields dropped, and raw text spliced into the YAML. Whatever it writes,
`validate` answers with exit 0 or 1 and no internal error, and a repository it calls valid
compiles. A sample runs in the default lanes; the `slow` lane (make test, CI) runs many more.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compiler.cli import app
from tests.compiler.conftest import REPO, valid_project

PROJECT = {
    "name": "fuzz-project",
    "description": "Weekly malaria",
    "credentials": {"block": "fuzz-dhis2", "base_url": "https://dhis2.example.org", "username": "chap-bot",
                    "password_env": "FUZZ_DHIS2_PASSWORD"},
    "model_id": 12,
    "end_mode": "offset",
    "end_period_offset": 1,
    "schedule": {"cron": "0 6 * * 1", "timezone": "Africa/Kigali"},
    "tags": ["malaria"],
}
DEFAULTS = {
    "owner": "fuzz-team",
    "timezone": "UTC",
    "work_pool": "chap",
    "source": {"directory_env": "CHAPCTL_FLOWS_DIR"},
    "notifications": {"ops": {"webhook": {"url_env": "OPS_WEBHOOK_URL"}}},
    "alerts": {"notify": ["ops"], "missed": "30m"},
    "instance_limits": {"fuzz-dhis2": 2},
}
TRICKY = ["{{ $PREFECT_API_AUTH_STRING }}", "\x00", "\x1b[31m", "\u202e", "*/5 * * * *", "https://[x]", "../..",
          "a" * 300, "9" * 40, "-1", "0", "3650d", "99999999d", "Africa/Malawi", "team--x", "", " ", "~", "null",
          "<script>x</script>", "[x](javascript:alert(1))", "2026-02-30", "@daily", "60 * * * *"]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40), st.sampled_from(TRICKY))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.one_of(st.text(max_size=12), st.sampled_from(TRICKY)), inner,
                                                 max_size=4)), max_leaves=12)


def _paths(doc: dict, prefix: tuple = ()) -> list[tuple]:
    out = []
    for key, value in doc.items():
        out.append((*prefix, key))
        if isinstance(value, dict):
            out += _paths(value, (*prefix, key))
    return out


@st.composite
def mutated(draw, base: dict) -> dict:
    doc = json.loads(json.dumps(base))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(doc) or [("name",)]))
        parent = doc
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent.get(key), dict) else {}
        what = draw(st.sampled_from(["replace", "drop", "add"]))
        if what == "replace":
            parent[path[-1]] = draw(values)
        elif what == "drop":
            parent.pop(path[-1], None)
        else:
            parent[draw(st.one_of(st.text(min_size=1, max_size=12), st.sampled_from(TRICKY)))] = draw(values)
    return doc


@st.composite
def spliced(draw, text: str) -> str:
    at = draw(st.integers(0, len(text)))
    return text[:at] + draw(st.one_of(st.text(max_size=30), st.sampled_from(TRICKY + ["\n  - ", ": [", "&a", "*a",
                                                                                     "!!python/object", "\t"])))
    + text[at:]


def _yaml(doc: dict) -> str:
    return json.dumps(doc, ensure_ascii=False, allow_nan=True)  # JSON is YAML (NaN as a bare word)


inputs = st.one_of(
    st.tuples(mutated(PROJECT).map(_yaml), st.just(_yaml(DEFAULTS))),
    st.tuples(st.just(_yaml(PROJECT)), mutated(DEFAULTS).map(_yaml)),
    st.tuples(spliced(valid_project("fuzz-project", "fuzz-dhis2")), st.just(_yaml(DEFAULTS))),
)


@pytest.fixture(scope="module")
def scratch():
    with tempfile.TemporaryDirectory() as where:
        root = Path(where)
        (root / "projects").mkdir()
        yield root


def _check(root: Path, project: str, defaults: str) -> None:
    for stale in ("prefect.yaml", "blocks", "schema", "SCHEDULES.md", "schedules.svg"):
        target = root / stale
        shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
    (root / "projects/fuzz-project.yaml").write_text(project, encoding="utf-8", errors="surrogatepass")
    (root / "projects/_defaults.yaml").write_text(defaults, encoding="utf-8", errors="surrogatepass")
    runner = CliRunner()
    validated = runner.invoke(app, ["validate", "--root", str(root)])
    said = validated.stdout + validated.stderr
    assert validated.exit_code in (0, 1) and "internal error" not in said and "Traceback" not in said, \
        (project, defaults, said, validated.exception)
    if validated.exit_code == 0:
        compiled = runner.invoke(app, ["compile", "--root", str(root)])
        said = compiled.stdout + compiled.stderr
        assert compiled.exit_code == 0 and "internal error" not in said, (project, defaults, said, compiled.exception)


@pytest.mark.parametrize("examples", [120, pytest.param(2000, marks=pytest.mark.slow)])
def test_no_input_makes_an_internal_error(examples, scratch):
    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(inputs)
    def one(files):
        _check(scratch, *files)

    one()
