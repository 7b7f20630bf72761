"""The package layout is the architecture (docs/architecture.md): no import cycle anywhere in
compiler/, counting imports inside functions too, and the dependency directions it documents."""

from __future__ import annotations

import ast
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


def test_dependency_directions():
    """compile and review know nothing of reconcile or cli (compile's build uses review's schedule
    report for SCHEDULES.md); the core never imports the command line (click and rich stay in
    compiler/cli)."""
    edges = graph()
    forbidden = {
        "compiler.compile": ("compiler.reconcile", "compiler.cli"),
        "compiler.review": ("compiler.reconcile", "compiler.cli"),
        "compiler.reconcile": ("compiler.cli",),
    }
    for source, targets in edges.items():
        for prefix, banned in forbidden.items():
            if source == prefix or source.startswith(prefix + "."):
                bad = sorted(t for t in targets if t.startswith(banned))
                assert not bad, f"{source} imports {bad}"
    for path in PACKAGE.rglob("*.py"):
        if "cli" not in path.relative_to(PACKAGE).parts:
            text = path.read_text()
            assert "import click" not in text and "from rich" not in text and "import rich" not in text, path
