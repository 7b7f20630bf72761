"""CLI behaviour: compile --check, exit codes, repository discovery, and never importing prefect."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from compiler.cli import app
from compiler.cli.common import EXIT_USAGE
from tests.compiler.conftest import REPO, valid_project


def cli(*args: str, cwd: Path | None = None):
    return subprocess.run([sys.executable, "-m", "compiler", *args], cwd=cwd or REPO, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(REPO)})


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_repository_artifacts_are_fresh():
    result = invoke("compile", "--check", "--root", str(REPO))
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "fresh" in result.stdout


def test_check_reports_stale_files_with_a_unified_diff_and_writes_nothing(repo_factory):
    repo = repo_factory({"projects/one.yaml": valid_project("one")})
    assert invoke("compile", "--root", str(repo)).exit_code == 0
    assert invoke("compile", "--check", "--root", str(repo)).exit_code == 0
    project = repo / "projects/one.yaml"
    project.write_text(project.read_text().replace('"0 6 * * 1"', '"0 7 * * 1"'))
    (repo / "schema/project.schema.json").write_text("{}\n")
    before = (repo / "prefect.yaml").read_bytes()
    result = invoke("compile", "--check", "--root", str(repo))
    assert result.exit_code == 1
    assert "--- a/prefect.yaml (committed)\n+++ b/prefect.yaml (compiled)\n" in result.stdout
    assert '-  - cron: "0 6 * * 1"\n+  - cron: "0 7 * * 1"\n' in result.stdout
    assert "+++ b/schema/project.schema.json (compiled)" in result.stdout
    assert ("4 compiled file(s) are stale: SCHEDULES.md, prefect.yaml, schedules.svg, "
            "schema/project.schema.json") in result.stderr
    assert (repo / "prefect.yaml").read_bytes() == before


def test_check_notices_a_block_file_no_project_declares(repo_factory):
    repo = repo_factory({"projects/one.yaml": valid_project("one")})
    assert invoke("compile", "--root", str(repo)).exit_code == 0
    (repo / "blocks/left-over.yaml").write_text("name: left-over\n")
    result = invoke("compile", "--check", "--root", str(repo))
    assert result.exit_code == 1
    assert "blocks/left-over.yaml" in result.stderr


def test_second_compile_writes_nothing(repo_factory):
    repo = repo_factory({"projects/one.yaml": valid_project("one")})
    invoke("compile", "--root", str(repo))
    mtimes = {p: p.stat().st_mtime_ns for p in repo.rglob("*") if p.is_file()}
    result = invoke("compile", "--root", str(repo))
    assert "0 file(s) changed" in result.stdout
    assert {p: p.stat().st_mtime_ns for p in repo.rglob("*") if p.is_file()} == mtimes


def test_root_is_found_upward_from_a_subdirectory_and_on_a_copy(tmp_path, repo_factory):
    repo = repo_factory({"projects/one.yaml": valid_project("one")})
    nested = repo / "docs" / "deep"
    nested.mkdir(parents=True)
    result = cli("compile", cwd=nested)
    assert result.returncode == 0, result.stderr
    assert (repo / "prefect.yaml").exists()  # the copy, not the source tree chapctl runs from


def test_outside_any_repository_is_a_clean_error(tmp_path):
    result = cli("validate", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("error: no `projects/` folder in ")
    assert "Traceback" not in result.stderr
    bad_root = cli("validate", "--root", str(tmp_path))
    assert bad_root.returncode == 1 and "--root" in bad_root.stderr


def test_validate_compile_and_help_never_import_prefect(tmp_path):
    for args in (["--help"], ["validate"], ["compile", "--check"], ["compile", "--help"], ["--version"],
                 ["init", str(tmp_path / "new"), "--owner", "team"]):  # init compiles too
        result = subprocess.run([sys.executable, "-X", "importtime", "-m", "compiler", *args], cwd=REPO,
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-2000:]
        imported = [line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if "|" in line]
        assert imported, "importtime printed nothing"
        assert not [m for m in imported if m == "prefect" or m.startswith("prefect.")], args


def test_validate_prints_a_count_and_exits_zero():
    result = invoke("validate", "--root", str(REPO))
    assert result.exit_code == 0
    assert result.stdout.strip() == "5 project(s) valid"


def test_an_empty_projects_folder_warns_that_apply_would_delete_everything(repo_factory):
    repo = repo_factory({"projects/_defaults.yaml": "owner: laos-team\n"})
    result = invoke("compile", "--root", str(repo))
    assert result.exit_code == 0
    assert "projects/: warning: no project files: apply would delete every deployment of owner 'laos-team'" \
        in result.stderr and "--allow-delete-all" in result.stderr
    assert "owner: laos-team" in (repo / "prefect.yaml").read_text()


def test_compile_refuses_to_discard_a_hand_edit_and_names_the_project_to_edit(repo_factory):
    repo = repo_factory({"projects/one.yaml": valid_project("one"), "projects/two.yaml": valid_project("two")})
    assert invoke("compile", "--root", str(repo)).exit_code == 0
    prefect_yaml = repo / "prefect.yaml"
    edited = prefect_yaml.read_text().replace("configured_model_id: 12", "configured_model_id: 13", 1)
    prefect_yaml.write_text(edited)
    result = invoke("compile", "--root", str(repo))
    assert result.exit_code == 1 and prefect_yaml.read_text() == edited  # the edit is still there
    assert "prefect.yaml (edited by hand: edit projects/one.yaml instead)" in result.stderr
    assert "chapctl compile --force" in result.stderr
    check = invoke("compile", "--check", "--root", str(repo))
    assert check.exit_code == 1 and "edited by hand" in check.stderr
    assert invoke("compile", "--force", "--root", str(repo)).exit_code == 0
    assert "configured_model_id: 13" not in prefect_yaml.read_text()
    assert invoke("compile", "--check", "--root", str(repo)).exit_code == 0


def test_one_output_option_on_every_verb_with_the_old_spellings_as_aliases(repo_factory):
    repo = repo_factory({"projects/one.yaml": valid_project("one")})
    assert {"import", "plan", "validate"} <= set(app.commands)
    for verb in app.commands:  # the CLI's own list: a new verb is checked without editing this test
        assert "--format" in invoke(verb, "--help").stdout, verb
    as_format = invoke("validate", "--root", str(repo), "--format", "json")
    assert as_format.exit_code == 0
    for alias in (["-f", "json"], ["--json"]):
        assert invoke("validate", "--root", str(repo), *alias).stdout == as_format.stdout
    assert invoke("schedule", "--root", str(repo), "--json").stdout.startswith("[")
    both = CliRunner().invoke(app, ["schedule", "--root", str(repo), "--json", "--format", "text"])
    assert both.exit_code == EXIT_USAGE and "pick one output format" in both.stderr


def usage_error(*args: str) -> str:
    """The one line a usage error prints; asserts its exit code and that nothing else is printed."""
    result = CliRunner().invoke(app, list(args), env={"PREFECT_API_URL": "http://127.0.0.1:9/api"})
    assert result.exit_code == EXIT_USAGE, (args, result.exit_code, result.output)
    assert result.stdout == "" and len(result.stderr.splitlines()) == 1, (args, result.stderr)
    return result.stderr


def test_a_usage_error_has_its_own_exit_code_on_every_verb():
    """Issue 23 #4: a usage error exited 2, the code of "changes" under --detailed-exitcode, so the
    pull-request check passed on `chapctl plan --bogus`."""
    assert EXIT_USAGE not in (0, 1, 2, 3, 4, 130)
    for verb in app.commands:  # every verb the CLI has, not a hand-kept list
        assert f"exits {EXIT_USAGE} on a usage error" in invoke(verb, "--help").stdout, verb
        line = usage_error(verb, "--bogus")
        assert line.startswith("error: no such option '--bogus'") and f"(see `chapctl {verb} --help`)" in line, line
    assert usage_error("--bogus").startswith("error: no such option '--bogus'")
    assert usage_error("plna").startswith("error: no such command 'plna'. Did you mean 'plan'?")
    assert "'15' is not a duration" in usage_error("status", "--grace", "15")
    assert "--parallel': 0 is not in the range" in usage_error("apply", "--parallel", "0")


def test_a_duration_too_long_for_a_calendar_is_a_usage_error(tmp_path):
    """Issue 21 #12: `status --grace 99999999d` was an internal OverflowError."""
    for option in ("--grace", "--lookback"):
        result = CliRunner().invoke(app, ["status", "--root", str(REPO), option, "99999999d"],
                                    env={"PREFECT_API_URL": "http://127.0.0.1:9/api"})
        assert result.exit_code == EXIT_USAGE, result.output
        assert "is too long: at most 3650d" in result.stderr and "internal error" not in result.stderr


def test_version_names_chapctl_and_its_prefect_release():
    """Issue 21 #19: there was no --version. Issue 25 #1: it names the Prefect release chapctl is
    built for (not merely the one installed), read without importing prefect."""
    import re

    from compiler import __version__

    result = cli("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"chapctl {__version__} (for Prefect 3.9.1)\n", result.stdout
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", __version__)


def test_server_text_reaches_the_terminal_with_its_control_characters_escaped(capsys):
    """Issue 21 #8: control and bidi characters in a server's names reached the terminal raw (an
    escape sequence can rewrite the screen; a bidi override shows other text than what is there)."""
    from compiler.cli.common import emit
    from compiler.output import Err, Lines, Table

    emit((Lines((("", "deployment \x1b[2Jgone\u202eevil\x07 bell"), ("bold", "tab\tok"))),
          Table(("name",), (("cell \x1b[31mred\u2066",),)), Err("error: \x1b]0;title\x07 and \x9b")))
    out, errors = capsys.readouterr()
    for text in (out, errors):
        assert not [c for c in text if (ord(c) < 32 and c not in "\n\t") or 0x7f <= ord(c) <= 0x9f
                    or c in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"], repr(text)
    assert "\\x1b[2Jgone\\u202eevil\\x07 bell" in out and "tab" in out  # rich expands the tab
    assert "cell \\x1b[31mred\\u2066" in out
    assert "\\x1b]0;title\\x07 and \\x9b" in errors


def test_a_server_verb_says_that_dotenv_is_not_read(repo_factory, monkeypatch):
    """Issue 21 #19: `chapctl plan` beside a .env that sets PREFECT_API_URL said only that it is not set."""
    repo = repo_factory({"projects/one.yaml": valid_project("one"),
                         ".env": "# local settings\nPREFECT_API_URL=http://127.0.0.1:9/api\n"
                                 "export LAOS_DHIS2_PASSWORD=s3cret-in-dotenv\nWORK_POOL=chap\n"})
    for name in ("PREFECT_API_URL", "LAOS_DHIS2_PASSWORD", "PREFECT_PROFILES_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WORK_POOL", "chap")
    monkeypatch.setenv("PREFECT_HOME", str(repo / ".no-prefect-home"))
    for verb in ("plan", "apply", "status", "import"):
        result = invoke(verb, "--root", str(repo))
        assert result.exit_code == 1
        note, error = result.stderr.splitlines()
        assert note.startswith(f"note: {repo / '.env'} sets LAOS_DHIS2_PASSWORD, PREFECT_API_URL, which the "
                               "environment lacks: chapctl does not read .env"), verb
        assert "set -a; . ./.env; set +a" in note and "s3cret" not in note
        assert error.startswith("error: PREFECT_API_URL is not set")


def test_project_is_repeatable_with_p_on_every_verb_that_takes_it(repo_factory):
    """Issue 23 #4: `schedule --project` took one name and `status` had no `-p`."""
    takers = {verb: [o for o in command.params if o.name in ("project", "projects")]
              for verb, command in app.commands.items()}
    takers = {verb: options for verb, options in takers.items() if options}
    assert {"schedule", "status"} <= set(takers)
    for verb, (option,) in takers.items():
        assert option.opts == ["--project", "-p"] and option.multiple, (verb, option.opts, option.multiple)
    repo = repo_factory({f"projects/{n}.yaml": valid_project(n) for n in ("one", "two", "three")})
    result = invoke("schedule", "--root", str(repo), "-p", "one", "--project", "three", "--json", "-n", "1")
    assert result.exit_code == 0, result.stderr
    assert [p["project"] for p in json.loads(result.stdout)] == ["one", "three"]
    unknown = CliRunner().invoke(app, ["schedule", "--root", str(repo), "-p", "one", "-p", "four", "-p", "five"])
    assert unknown.exit_code == 1 and "no scheduled project named 'five', 'four'" in unknown.stderr


def test_the_docs_state_the_exit_codes_and_defaults_the_cli_has():
    """Issue 23 #6: docs/apply.md said writes are sequential (the default is 4 at a time) and the
    README gave usage errors exit 2. The claims are now read back from the CLI itself."""
    import re

    from compiler.cli.common import EXIT_INTERRUPTED

    readme, apply_doc = (REPO / "README.md").read_text(), (REPO / "docs/apply.md").read_text()
    table = [line for line in readme.splitlines() if line.startswith("| `chapctl ") or line.startswith("| every verb")]
    for verb in app.commands:
        assert [line for line in table if line.startswith(f"| `chapctl {verb}")], f"README's table lacks {verb}"
    (every,) = [line for line in table if line.startswith("| every verb")]
    assert every.endswith(f"| {EXIT_USAGE} usage error, {EXIT_INTERRUPTED} interrupted |"), every
    assert f"| {EXIT_USAGE} | usage error" in apply_doc and f"| {EXIT_INTERRUPTED} | interrupted" in apply_doc
    parallel = next(p for p in app.commands["apply"].params if p.name == "parallel").default
    stated = re.findall(r"--parallel N`?,? (?:at a time )?\(?default (\d+)", readme + apply_doc
                        + (REPO / "docs/performance.md").read_text())
    assert len(stated) >= 3 and set(stated) == {str(parallel)}, stated
    assert "sequential." not in apply_doc
