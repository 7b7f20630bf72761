"""Golden cases: each folder under cases/ holds a repository's projects/ and the exact output
`chapctl validate` must give (expected.txt: exit code, then stderr).

Regenerate after an intended change with `CHAPCTL_REGEN_GOLDEN=1 uv run pytest tests/compiler` and
review the diff in git before committing (tests/golden.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from compiler.cli import app
from tests import golden

CASES = Path(__file__).parent / "cases"
CASE_NAMES = sorted(p.name for p in CASES.iterdir() if (p / "projects").is_dir())


def run_cli(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


@pytest.mark.parametrize("case", CASE_NAMES)
def test_bad_input_is_reported_exactly(case: str, repo_factory):
    repo = repo_factory(from_dir=CASES / case)
    (repo / "expected.txt").unlink(missing_ok=True)
    result = run_cli("validate", "--root", str(repo))
    actual = f"exit {result.exit_code}\n{result.stderr}"
    assert actual == golden.expected(CASES / case / "expected.txt", actual)
    assert result.exit_code == 1
    assert "Traceback" not in result.stderr + result.stdout
    assert "CANARY" not in result.stderr + result.stdout, "a secret value leaked into the output"
    # Nothing is rendered when any project is invalid.
    compiled = run_cli("compile", "--root", str(repo))
    assert compiled.exit_code == 1
    assert not (repo / "prefect.yaml").exists() and not (repo / "blocks").exists()


def test_every_case_has_a_golden_file():
    missing = [c for c in CASE_NAMES if not (CASES / c / "expected.txt").exists()]
    assert not missing, f"run with {golden.VARIABLE}=1 and review: {missing}"


def test_file_over_one_mebibyte(repo_factory):
    big = "name: big\n" + "# padding\n" * 110_000
    repo = repo_factory({"projects/big.yaml": big})
    result = run_cli("validate", "--root", str(repo))
    assert result.exit_code == 1
    assert f"projects/big.yaml: file is {len(big)} bytes, over the 1 MiB limit" in result.stderr


def test_json_format_lists_every_diagnostic_with_position(repo_factory):
    repo = repo_factory(from_dir=CASES / "many-files-all-reported")
    result = run_cli("validate", "--root", str(repo), "--format", "json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["valid"] is False
    places = {(d["file"], d["line"], d["column"], d["field"]) for d in report["diagnostics"]}
    assert places == {
        ("projects/a-one.yaml", 4, 11, "model_id"),
        ("projects/b-two.yaml", 5, 11, "end_mode"),
        ("projects/c-three.yaml", 1, 1, ""),
    }
    assert all(d["hint"] for d in report["diagnostics"])


def test_invalid_project_leaves_existing_artifacts_untouched(repo_factory):
    from tests.compiler.conftest import valid_project

    repo = repo_factory({"projects/good.yaml": valid_project("good")})
    assert run_cli("compile", "--root", str(repo)).exit_code == 0
    before = {p: p.read_bytes() for p in repo.rglob("*") if p.is_file()}
    (repo / "projects" / "bad.yaml").write_text("name: bad\nmodel_id: x\n")
    assert run_cli("compile", "--root", str(repo)).exit_code == 1
    after = {p: p.read_bytes() for p in repo.rglob("*") if p.is_file() and p.name != "bad.yaml"}
    assert after == before
