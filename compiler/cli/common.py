"""What every verb shares: `--root`, one output option (`--format text|json|markdown`, with the old
`-f`, `--json` and `--markdown` kept as aliases), `--strict`, the error boundary (`run_guarded`: user
error → one line, internal bug → a short line and a traceback in the debug log; `ChapctlGroup`: a
usage error → one line, `EXIT_USAGE`), and the one way out to the terminal: `run_verb` calls a
verb's entry point, hands its result to the output layer (`compiler.output.render`, the one
dispatch) and exits with the code the result carries; `emit` prints what the output layer rendered.
No output text is built here or anywhere in compiler/cli (tests/unit_plan/test_one_reporter.py).
click and rich live in this package only; the core never imports them."""

from __future__ import annotations

import functools
import os
import sys
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import click

# The exit codes (compiler/constants.py): a verb's result carries its own; the boundary here gives
# EXIT_ERROR to a user error or a bug, EXIT_INTERRUPTED to Ctrl-C/SIGTERM, EXIT_USAGE to a usage error.
from compiler.constants import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_USAGE

DEBUG_LOG = Path(os.environ.get("TMPDIR", "/tmp")) / "chapctl-debug.log"

EXIT_EPILOG = (f"Every verb exits {EXIT_USAGE} on a usage error (an unknown option, a bad value) and "
               f"{EXIT_INTERRUPTED} when interrupted (Ctrl-C, SIGTERM).")


class UsageFailed(click.ClickException):
    """A click usage error (`UsageError`, `BadParameter`, ...) with chapctl's exit code, shown as
    one line naming the problem and the help to read."""

    exit_code = EXIT_USAGE

    def __init__(self, cause: click.UsageError):
        super().__init__(cause.format_message())
        self.cause = cause

    def show(self, file=None) -> None:  # noqa: ARG002 (always stderr)
        if isinstance(self.cause, click.exceptions.NoArgsIsHelpError):  # bare `chapctl`: the help
            self.cause.show(file)
            return
        from compiler.errors import UsageProblem

        ctx = self.cause.ctx
        report(UsageProblem(self.cause.format_message(), ctx.command_path if ctx is not None else None))


class ChapctlGroup(click.Group):
    """The `chapctl` group: every usage error of the group or of a verb becomes `UsageFailed`."""

    def make_context(self, *args, **kwargs):
        try:
            return super().make_context(*args, **kwargs)
        except click.UsageError as exc:
            raise UsageFailed(exc) from exc

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            raise UsageFailed(exc) from exc


def root_option(function):
    return click.option(
        "--root", type=click.Path(file_okay=False, path_type=Path), default=None,
        help="Repository to act on (default: nearest folder upward holding projects/).",
    )(function)


def output_option(*formats: str):
    """`--format` among `formats` (default text); `-f`, `--json` and `--markdown` are aliases."""

    def decorator(function):
        @functools.wraps(function)
        def wrapper(*args, output: Optional[str] = None, json_alias: bool = False, markdown_alias: bool = False,
                    **kwargs):
            chosen = {fmt for fmt, on in (("json", json_alias), ("markdown", markdown_alias)) if on}
            if output:
                chosen.add(output)
            if len(chosen) > 1:
                raise click.UsageError(f"pick one output format: --format {'|'.join(formats)}")
            return function(*args, output=chosen.pop() if chosen else "text", **kwargs)

        wrapper = click.option("--format", "-f", "output", type=click.Choice(formats), default=None,
                               help=f"Output format: {', '.join(formats)} (default text).")(wrapper)
        if "json" in formats:
            wrapper = click.option("--json", "json_alias", is_flag=True, hidden=True)(wrapper)
        if "markdown" in formats:
            wrapper = click.option("--markdown", "markdown_alias", is_flag=True, hidden=True)(wrapper)
        return wrapper

    return decorator


def env_option(function):
    """`--env NAME` (or CHAPCTL_ENV): the environment of `environments:` in projects/_defaults.yaml
    the verb acts for; the core checks the name (an unknown one is a usage error)."""
    return click.option(
        "--env", "environment", envvar="CHAPCTL_ENV", default=None, metavar="NAME",
        help="Act for this environment of `environments:` in projects/_defaults.yaml (its server, owner, "
             "work pool, schedules, notifications); default $CHAPCTL_ENV, else none: the projects as declared.",
    )(function)


strict_option = click.option("--strict", is_flag=True,
                             help="Treat warnings (load hot-spots, an empty projects/) as errors: exit 1.")


def find_repo(explicit: Optional[Path]) -> Path:
    from compiler.root import find_root

    return find_root(explicit)


def open_api(repo: Path, environment: Optional[str] = None):
    """The Prefect API client of a server verb: the server of `environment` (--env), else Prefect's
    own settings; first a note when the repository's `.env` sets variables the environment lacks
    (chapctl reads no `.env`)."""
    from compiler.reconcile.client import PrefectAPI
    from compiler.reconcile.desired import api_settings
    from compiler.root import unread_dotenv

    unread = unread_dotenv(repo, os.environ)
    if unread is not None:
        report(unread)
    return PrefectAPI(api_settings(repo, environment))


def run_verb(verb: str, fmt: str, call: Callable[[], Any]) -> None:
    """The one dispatch of every verb: `call()` its entry point (inside the error boundary), render
    the result it returns with `verb`'s reporter for `fmt`, print that, and exit with the code
    the result carries (`result.exit_code`)."""

    def body() -> int:
        result = call()
        report(result, fmt, verb=verb)
        return result.exit_code

    run_guarded(body)


def report(value: Any, fmt: str = "text", *, verb: Optional[str] = None, out=None) -> None:
    """Render `value` through the output layer and print it (`out`: a rich console, for styled
    lines printed under a progress bar). Events a verb reports while it runs go through here too."""
    from compiler.output import render

    emit(render(value, fmt, verb=verb), out)


def run_guarded(action: Callable[[], int]) -> None:
    """Run a command body; map errors to one clean line and an exit code decided here, once.
    SIGTERM interrupts it as Ctrl-C does (exit 130)."""
    from compiler.errors import InternalError, Interrupted, UserError

    try:
        with sigterm_interrupts():
            code = action()
    except UserError as exc:
        from compiler.errors import BadUsage

        report(exc)
        code = EXIT_USAGE if isinstance(exc, BadUsage) else EXIT_ERROR
    except KeyboardInterrupt:
        report(Interrupted())
        code = EXIT_INTERRUPTED
    except Exception as exc:  # an internal bug: short message, traceback to the debug log
        DEBUG_LOG.write_text(traceback.format_exc())
        report(InternalError(type(exc).__name__, str(exc), str(DEBUG_LOG)))
        code = EXIT_ERROR
    sys.exit(code)


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """A CI job cancelled mid-verb gets SIGTERM: turn it into KeyboardInterrupt, so that the verb
    ends as Ctrl-C ends it (exit 130, "interrupted") and apply releases its lock on the way out
    (the server converges on the next apply either way)."""
    import signal

    def interrupt(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread (tests): nothing to install
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def printable(text: str) -> str:
    """`text` with what a terminal would act on instead of showing (compiler.constants'
    CONTROL_CHARACTERS) written out as `\x1b`, `\u202e`: never an escape sequence, never text shown
    other than it is."""
    from compiler.constants import written_out

    return written_out(text)


def console():
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def emit(rendered, out=None) -> None:
    """Print what the output layer rendered, part by part in order: `Out` to stdout as it is,
    `Lines` styled through rich (`out`, or a console of its own), `Table` through rich, `Err` to
    stderr. Text from lines, tables and stderr is `printable`; `Out` is JSON, Markdown or a diff."""
    from compiler.output import Err, Lines, Out, Table

    for part in rendered:
        if isinstance(part, Out):
            sys.stdout.write(part.text)
        elif isinstance(part, Lines):
            _lines(part.lines, out or console())
        elif isinstance(part, Table):
            _table(part.columns, part.rows)
        elif isinstance(part, Err):
            print(printable(part.text), file=sys.stderr)
        else:
            raise TypeError(f"not an output part: {part!r}")


def _lines(lines, out) -> None:
    """Styled `(style, text)` lines; never interpreted as markup."""
    for style, text in lines:
        out.print(printable(text), style=style or None, markup=False, highlight=False)


def _table(columns, rows) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(show_lines=False, box=None, pad_edge=False)
    for column in columns:
        table.add_column(column, no_wrap=True)
    for cells in rows:
        table.add_row(*(Text(printable(cell)) for cell in cells))  # Text: `[slug]` is no markup
    out = Console()
    if not out.is_terminal:  # piped: no 80-column wrapping of a table meant to be read whole
        out = Console(width=200)
    out.print(table)
