"""The package layout is the architecture (docs/architecture.md): no import cycle anywhere in
compiler/, counting imports inside functions too, and the dependency directions it documents."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "compiler"


def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def imports(path: Path, known: dict[str, Path]) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name.startswith("compiler"):
                found.add(name)
    return found


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(path, known) - {name} for name, path in known.items()}


def test_no_import_cycle_in_compiler():
    edges = graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)


def imported_names(path: Path) -> set[str]:
    """Every dotted name `path` imports (`import a.b` → a.b; `from a import b` → a, a.b), inside
    functions too, in or outside compiler/, found or not."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return found


def import_rules() -> list[tuple[str, tuple[str, ...], tuple[str, ...]]]:
    """docs/architecture.md's table of import rules: (modules, never import, except in), each a
    module name or prefix in backticks; text in parentheses is commentary."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    marker = "<!-- import rules: read by tests/unit_plan/test_layout.py -->"
    assert marker in text, "docs/architecture.md lost its table of import rules"
    rows = []
    for line in text.split(marker, 1)[1].lstrip("\n").splitlines()[2:]:
        if not line.startswith("|"):
            break
        cells = [re.findall(r"`([\w.]+)`", re.sub(r"\([^)]*\)", "", cell))
                 for cell in line.strip().strip("|").split("|")]
        (source,), banned, allowed = cells
        rows.append((source, tuple(banned), tuple(allowed)))
    return rows


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def all_imports() -> dict[str, set[str]]:
    """Every module of compiler/ → what it imports: modules of compiler/ and outside packages."""
    edges = graph()
    return {name: edges[name] | imported_names(path) for name, path in modules().items()}


def broken_rules(rules, imported: dict[str, set[str]]) -> list[str]:
    broken = []
    for source, banned, allowed in rules:
        for name, targets in imported.items():
            if within(name, source) and not any(within(name, a) for a in allowed):
                broken += [f"{name} imports {t} ({source} never imports {b})"
                           for t in sorted(targets) for b in banned if within(t, b)]
    return broken


def test_the_documented_import_rules_hold():
    """Every row of docs/architecture.md's import rules, against every module's imports: compile
    never imports review (the schedule report is compile's own), reconcile or cli; the core never
    imports the command line (click and rich stay in compiler/cli); Prefect only where the table
    says."""
    rules = import_rules()
    assert [r[0] for r in rules][:3] == ["compiler.compile", "compiler.review", "compiler.reconcile"], rules
    assert not (broken := broken_rules(rules, all_imports())), "\n".join(broken)


def test_the_import_rules_catch_an_arrow_up():
    """The check can fail: compile's build importing review (the arrow issue 23 removed), the
    planner importing click, the reporter importing Prefect, a kind importing the planner that
    iterates the kinds, the core importing its reporters, the CLI writing JSON itself."""
    imported = all_imports()
    for module, target in (("compiler.compile.build", "compiler.review.schedules"),
                           ("compiler.reconcile.plan", "click"), ("compiler.output.plan", "prefect"),
                           ("compiler.reconcile.kinds.block", "compiler.reconcile.plan"),
                           ("compiler.reconcile.status", "compiler.output.status"),
                           ("compiler.cli.server", "json")):
        broken = broken_rules(import_rules(), {**imported, module: imported[module] | {target}})
        assert broken and all(line.startswith(f"{module} imports {target} ") for line in broken), broken


def test_prefect_is_imported_where_the_table_says_and_nowhere_else():
    """The exceptions of the `prefect` row are real: each listed module does import Prefect (a
    stale exception would let the rule drift)."""
    (allowed,) = [allowed for _, banned, allowed in import_rules() if banned == ("prefect",)]
    importers = [n for n, targets in all_imports().items() if any(within(t, "prefect") for t in targets)]
    assert sorted(allowed) == sorted(importers)
