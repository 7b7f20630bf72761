"""One output layer (issue 23 #3): every verb's result has one reporter per format its `--format`
offers, registered once in compiler/output and dispatched once; compiler/cli builds no output;
compiler/markdown.py is the one Markdown escaper and compiler/timefmt.py the one time formatter.

Read from the CLI's own commands (`app.commands`) and from the source (by AST, as
test_layout.py reads imports), so a new verb or a new module is checked without editing this file.
Each rule is also fed a line that breaks it, so that none of them can pass by checking nothing."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path

import click
import pytest

from compiler import output
from compiler.cli import app

ROOT = Path(__file__).resolve().parents[2]
COMPILER = ROOT / "compiler"
CLI = COMPILER / "cli"
OUTPUT = COMPILER / "output"


def _formats(command: click.Command) -> set[str]:
    (option,) = [p for p in command.params if p.name == "output"]
    return set(option.type.choices)


# -- every verb: a reporter for every format it offers, in its one module -------------------------
def test_every_verb_has_a_reporter_for_every_format_its_format_option_offers():
    assert {"validate", "compile", "plan", "apply", "status", "import"} <= set(app.commands)
    for verb, command in app.commands.items():  # the CLI's own list: a new verb is checked here
        assert verb in output.VERBS, f"`{verb}` has no line in compiler/output/__init__.py's VERBS"
        types = output.results(verb)
        assert types, verb
        for result_type in types:
            missing = _formats(command) - output.formats(result_type)
            assert not missing, f"`{verb}`: {result_type.__qualname__} has no {sorted(missing)} reporter"


def test_each_family_module_declares_exactly_its_verbs_and_holds_their_reporters():
    assert set(output.VERBS) == set(app.commands), "VERBS names a verb the CLI does not have (or lacks one)"
    assert output.family(None).RESULTS == {}  # the common module: the boundary's lines, no verb
    for module in set(output.VERBS.values()):
        declared = set(importlib.import_module(f"compiler.output.{module}").RESULTS)
        assert declared == {v for v, m in output.VERBS.items() if m == module}, module
    for verb in output.VERBS:
        home = output.family(verb).__name__
        for (result_type, fmt), function in output.registered().items():
            if result_type in output.results(verb):
                assert function.__module__ == home, (verb, result_type, fmt, function.__module__)


def test_a_verb_loads_only_its_own_reporters():
    """`VERBS` makes the registry lazy: `chapctl validate` imports the compile family's reporters
    and the common ones, never the server verbs' (nor their cores: httpx, the planner)."""
    import subprocess
    import sys

    probe = ("import sys\nfrom compiler.cli import main\nsys.argv = ['chapctl', 'validate']\ntry:\n    main()\n"
             "except SystemExit:\n    pass\nprint(*sorted(sys.modules), sep='\\n', file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True)
    assert "project(s) valid" in result.stdout, result.stderr[-2000:]
    imported = set(result.stderr.split())
    assert {m for m in imported if m.startswith("compiler.output")} == {
        "compiler.output", "compiler.output.common", "compiler.output.compile"}
    assert not {m for m in imported if m.startswith(("compiler.reconcile", "httpx", "rich"))}


def test_a_second_reporter_for_the_same_type_and_format_is_refused():
    class Probe:
        pass

    output.reporter(Probe, "text")(lambda r: ())
    with pytest.raises(ValueError, match="two text reporters of"):
        output.reporter(Probe, "text")(lambda r: ())


def test_render_refuses_a_result_its_verb_does_not_declare():
    from compiler.compile.build import ValidateResult

    assert output.render(ValidateResult(projects=2), "text", verb="validate")
    with pytest.raises(LookupError, match="`compile` reports CompileResult, not ValidateResult"):
        output.render(ValidateResult(projects=2), "text", verb="compile")


# -- the CLI: one dispatch, no output of its own ----------------------------------------------------
WRITERS = ("emit", "_lines", "_table")  # compiler/cli/common.py: the only functions that print
OUTPUT_MODULES = {p.stem for p in OUTPUT.glob("*.py")} - {"__init__"}
REPORTER_NAME = re.compile(r"(_lines|_json|_markdown|_rows|_text)$|^format_")


def _functions(tree: ast.AST):
    """(enclosing function name or "", node) for every node, innermost function first."""
    def walk(node: ast.AST, name: str):
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else name
            yield inner, child
            yield from walk(child, inner)

    yield from walk(tree, "")


def _writes(call: ast.Call) -> bool:
    f = call.func
    if isinstance(f, ast.Name):
        return f.id == "print"
    if isinstance(f, ast.Attribute):
        owner = ast.unparse(f.value)
        return (f.attr in ("echo", "secho") and owner == "click") or f.attr == "print" \
            or (f.attr == "write" and owner in ("sys.stdout", "sys.stderr"))
    return False


def cli_breaks(name: str, source: str) -> list[str]:
    """What in one module of compiler/cli (`name`, its source) breaks the one-dispatch rules."""
    broken = []
    for function, node in _functions(ast.parse(source)):
        where = f"{name}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "json":
                    broken.append(f"{where} imports json (JSON is the output layer's)")
                if alias.name.startswith("compiler.output") and (name != "common" or alias.name != "compiler.output"):
                    broken.append(f"{where} imports {alias.name} (only cli.common imports compiler.output)")
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "json":
                broken.append(f"{where} imports from json (JSON is the output layer's)")
            if node.module.startswith("compiler.output"):
                submodules = [a.name for a in node.names if a.name in OUTPUT_MODULES]
                if name != "common" or node.module != "compiler.output" or submodules:
                    broken.append(f"{where} imports {node.module} {submodules or ''}(only cli.common imports "
                                  "compiler.output, never one of its reporter modules)")
            elif node.module.startswith("compiler."):
                broken += [f"{where} imports the reporter {a.name} from {node.module}"
                           for a in node.names if REPORTER_NAME.search(a.name)]
        elif isinstance(node, ast.Call):
            if _writes(node) and not (name == "common" and function in WRITERS):
                broken.append(f"{where} prints ({ast.unparse(node)[:60]}): only cli.common's {WRITERS} print")
            if isinstance(node.func, ast.Name) and node.func.id == "render" and (name, function) != ("common", "report"):
                broken.append(f"{where} calls render: only cli.common.report dispatches")
            if isinstance(node.func, ast.Name) and node.func.id == "run_guarded" and (name, function) != (
                    "common", "run_verb"):
                broken.append(f"{where} calls run_guarded: a verb goes through run_verb")
    return broken


def test_the_cli_prints_only_what_the_output_layer_rendered():
    broken = [line for path in sorted(CLI.glob("*.py")) for line in cli_breaks(path.stem, path.read_text())]
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize("module, line", [
    ("server", "import json\nprint(json.dumps({}))"),
    ("status_cmds", "from compiler.output.status import status_lines"),
    ("common", "from compiler.output import plan"),
    ("review_cmds", "from compiler.review.diff import diff_markdown"),
    ("compile_cmds", "import sys\nsys.stdout.write('5 project(s) valid')"),
    ("import_cmds", "def body():\n    click.echo(f'error: {x}')"),
    ("server", "def call():\n    return render(result, 'text')"),
    ("status_cmds", "def body():\n    run_guarded(lambda: 0)"),
])
def test_the_cli_rules_catch_output_built_in_the_cli(module, line):
    assert cli_breaks(module, line), line


def test_every_verb_dispatches_once_through_run_verb_under_its_own_name():
    for verb, command in app.commands.items():
        function = inspect.unwrap(command.callback)
        calls = [node for node in ast.walk(ast.parse(inspect.getsource(function).lstrip()))
                 if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "run_verb"]
        assert len(calls) == 1, f"`{verb}` calls run_verb {len(calls)} times"
        (first, *_rest) = calls[0].args
        assert isinstance(first, ast.Constant) and first.value == verb, (verb, ast.unparse(calls[0]))


# -- one Markdown escaper, one time formatter --------------------------------------------------------
_ESCAPE = re.compile(r"^\\+(\d|[`\[\]|*_#<>!()])")


def escaper_breaks(name: str, source: str) -> list[str]:
    """A Markdown escaper outside compiler/markdown.py: html.escape, a replacement that puts a
    backslash before Markdown punctuation, or a code span glued from backticks."""
    broken = []
    for node in ast.walk(ast.parse(source)):
        where = f"{name}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
            if "html" in names:
                broken.append(f"{where} imports html (escaping is compiler/markdown.py's)")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("sub", "replace"):
            index = 1 if node.func.attr == "replace" or ast.unparse(node.func.value) == "re" else 0
            replacement = node.args[index] if len(node.args) > index else None
            if isinstance(replacement, ast.Constant) and isinstance(replacement.value, str) \
                    and _ESCAPE.match(replacement.value):
                broken.append(f"{where} escapes Markdown by hand ({ast.unparse(node)[:60]})")
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            sides = [s for s in (node.left, node.right) if isinstance(s, ast.Constant) and isinstance(s.value, str)]
            if any(s.value and set(s.value) == {"`"} for s in sides):
                broken.append(f"{where} builds a code span by hand ({ast.unparse(node)[:60]})")
    return broken


def _markdown_functions(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and ("markdown" in node.name or "_md" in node.name):
            yield node


def code_span_breaks(name: str, source: str) -> list[str]:
    """A Markdown reporter that puts a value between backticks itself, instead of `markdown.code`."""
    broken = []
    for function in _markdown_functions(ast.parse(source)):
        for node in ast.walk(function):
            if isinstance(node, ast.JoinedStr):
                for before, after in zip(node.values, node.values[1:]):
                    if isinstance(before, ast.Constant) and str(before.value).endswith("`") \
                            and isinstance(after, ast.FormattedValue):
                        broken.append(f"{name}:{node.lineno} {function.name} wraps a value in backticks by hand")
    return broken


def test_compiler_markdown_is_the_one_markdown_escaper():
    broken = []
    for path in sorted(COMPILER.rglob("*.py")):
        if path != COMPILER / "markdown.py":
            name = str(path.relative_to(ROOT))
            broken += escaper_breaks(name, path.read_text()) + code_span_breaks(name, path.read_text())
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize("line", [
    "import html",
    "from html import escape",
    "_MD_SPECIAL.sub(r'\\\\\\1', text)",
    "re.sub(r'([|])', r'\\\\\\1', text)",
    "text.replace('|', '\\\\|')",
    "code = '`' + str(v).replace('`', '') + '`'",
])
def test_the_escaper_rule_catches_a_second_escaper(line):
    assert escaper_breaks("probe", line), line


def test_the_code_span_rule_catches_backticks_by_hand():
    assert code_span_breaks("probe", "def plan_markdown(h):\n    return f'at `{h.url}`'")
    assert not code_span_breaks("probe", "def plan_markdown(h):\n    return f'at {md_code(h.url)}'")


def time_breaks(name: str, source: str, *, in_output: bool) -> list[str]:
    """Times formatted outside compiler/timefmt.py: strftime, a `%` format spec (f"{t:%H:%M}",
    format(t, "%Y")); in the output layer and the CLI also isoformat (JSON times: timefmt)."""
    broken = []
    for node in ast.walk(ast.parse(source)):
        where = f"{name}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "strftime":
            broken.append(f"{where} strftime")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "format" \
                and len(node.args) > 1 and "%" in ast.unparse(node.args[1]):
            broken.append(f"{where} format(…, '%…')")
        elif isinstance(node, ast.FormattedValue) and node.format_spec is not None \
                and "%" in ast.unparse(node.format_spec):
            broken.append(f"{where} a '%' format spec")
        elif in_output and isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr == "isoformat":
            broken.append(f"{where} isoformat (use compiler.timefmt)")
    return broken


def test_compiler_timefmt_is_the_one_time_formatter():
    broken = []
    for path in sorted(COMPILER.rglob("*.py")):
        if path != COMPILER / "timefmt.py":
            in_output = path.is_relative_to(OUTPUT) or path.is_relative_to(CLI)
            broken += time_breaks(str(path.relative_to(ROOT)), path.read_text(), in_output=in_output)
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize("line", [
    "t.strftime('%H:%M')",
    "f'{t:%a %H:%M}'",
    "format(t, '%Y-%m-%d')",
])
def test_the_time_rule_catches_a_second_formatter(line):
    assert time_breaks("probe", line, in_output=False), line
    assert time_breaks("probe", "doc['from'] = start.isoformat()", in_output=True)
