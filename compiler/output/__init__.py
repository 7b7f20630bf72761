"""The one output layer: every verb's result, and every message the command line prints, becomes
text here, and nowhere else.

A verb's core returns a result object (a value: `ValidateResult`, `CompileResult`, `PlanResult`,
`ApplyOutcome`, `StatusReport`, `DiffResult`, `ScheduleResult`, `ImportResult`, ...). A reporter
turns one result type into what to print for one format (`text`, `json`, `markdown`): a
`Rendered`, a tuple of parts printed in order —

* `Out(text)`: text for stdout, exactly as given (JSON, Markdown, a diff);
* `Lines(lines)`: `(style, text)` lines for stdout, styled on a terminal (the CLI prints them with
  rich; the style is a rich style name, "" for none);
* `Table(columns, rows)`: a table for stdout, aligned by the CLI;
* `Err(text)`: a line for stderr (notes, warnings, "error: ...").

The CLI (compiler/cli) renders through `render(result, fmt, verb=...)` only — in one place,
`cli.common` — and prints the parts; it builds no output text itself. Reporters are pure: no
rich, no click, no I/O.

Registration: one module of this package per family of verbs registers its reporters with
`@reporter(ResultType, "text")` and names its verbs' result types in `RESULTS` (`{"plan":
(PlanResult,), ...}`: the first is what the verb returns; the others are events it reports while
it runs, such as apply's progress). `VERBS` below maps each verb to that module; a module is
imported the first time one of its verbs renders, so `chapctl validate` never imports the
reporters (or the cores) of the server verbs. Adding a verb's output = one module here plus its
line in `VERBS`; tests/unit_plan/test_one_reporter.py checks that every verb the CLI has is listed,
and that its result types have a reporter for every format its `--format` offers.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable, Union

FORMATS = ("text", "json", "markdown")

# verb -> the module of compiler.output that holds its reporters (one line per verb)
VERBS: dict[str, str] = {
    "init": "scaffold",
    "validate": "compile",
    "compile": "compile",
    "schedule": "review",
    "diff": "review",
    "plan": "plan",
    "apply": "plan",
    "status": "status",
    "import": "importer",
    "preflight": "preflight",
}
COMMON = "common"  # the error boundary, notes and --version: loaded with every verb


@dataclass(frozen=True)
class Out:
    """Text for stdout, printed exactly as given (no newline added)."""

    text: str


@dataclass(frozen=True)
class Lines:
    """Styled lines for stdout: `(style, text)` pairs (a rich style name, "" for none)."""

    lines: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Table:
    """A table for stdout: a header row and rows of cells, aligned by the printer."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Err:
    """One line (or a block of lines) for stderr."""

    text: str


Part = Union[Out, Lines, Table, Err]
Rendered = tuple[Part, ...]
Reporter = Callable[[Any], Rendered]

_REPORTERS: dict[tuple[type, str], Reporter] = {}


def reporter(result_type: type, *formats: str) -> Callable[[Reporter], Reporter]:
    """Register the decorated function as the reporter of `result_type` for each of `formats`;
    a second reporter for the same type and format is an error (one reporter per format)."""
    unknown = [f for f in formats if f not in FORMATS]
    if not formats or unknown:
        raise ValueError(f"formats must be among {FORMATS}, not {formats!r}")

    def register(function: Reporter) -> Reporter:
        for fmt in formats:
            key = (result_type, fmt)
            if key in _REPORTERS:
                raise ValueError(f"two {fmt} reporters of {result_type.__qualname__}: "
                                 f"{_REPORTERS[key].__module__} and {function.__module__}")
            _REPORTERS[key] = function
        return function

    return register


def registered() -> dict[tuple[type, str], Reporter]:
    """Every reporter registered so far: (result type, format) -> the function."""
    return dict(_REPORTERS)


def family(verb: str | None) -> ModuleType:
    """The module holding `verb`'s reporters (imported, so registered); `None`: the common one."""
    return importlib.import_module(f"{__name__}.{COMMON if verb is None else VERBS[verb]}")


def results(verb: str) -> tuple[type, ...]:
    """The result types `verb` hands to the output layer: what it returns, then its events."""
    return tuple(family(verb).RESULTS[verb])


def formats(result_type: type) -> set[str]:
    """The formats `result_type` has a reporter for (its own or a base class's)."""
    return {fmt for fmt in FORMATS if _find(result_type, fmt) is not None}


def _find(result_type: type, fmt: str) -> Reporter | None:
    for klass in result_type.__mro__:
        found = _REPORTERS.get((klass, fmt))
        if found is not None:
            return found
    return None


def render(result: Any, fmt: str = "text", *, verb: str | None = None) -> Rendered:
    """What to print for `result` in `fmt`: its reporter's parts. `verb` names the verb whose
    reporters to load (and `result` must be one of the types it declares); without it only the
    common ones (errors, notes, --version) are known."""
    family(None)
    if verb is not None and not isinstance(result, results(verb)):
        raise LookupError(f"`{verb}` reports {', '.join(t.__qualname__ for t in results(verb))}, "
                          f"not {type(result).__qualname__} (RESULTS of compiler.output.{VERBS[verb]})")
    found = _find(type(result), fmt)
    if found is None:
        raise LookupError(f"no {fmt} reporter of {type(result).__qualname__}"
                          + (f" among those of `{verb}`" if verb else ""))
    return tuple(found(result))
