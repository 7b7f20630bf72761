"""What every verb shares: `--root`, one output option (`--format text|json|markdown`, with the old
`-f`, `--json` and `--markdown` kept as aliases), `--strict`, the exit codes (`run_guarded`: user
error → one line, internal bug → a short line and a traceback in the debug log; `ChapctlGroup`: a
usage error → one line, `EXIT_USAGE`) and printing. click and rich live in this package only; the
core never imports them."""

from __future__ import annotations

import functools
import os
import re
import sys
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Optional

import click

DEBUG_LOG = Path(os.environ.get("TMPDIR", "/tmp")) / "chapctl-debug.log"

# Exit codes, decided here once: 0 ok, 1 error, 2 changes (--detailed-exitcode), 3 failing or late
# and 4 out of sync (status), 130 interrupted (Ctrl-C, SIGTERM). A usage error (unknown option, bad
# value) is none of those: sysexits' EX_USAGE, so that a CI step can tell `plan --bogus` from changes.
EXIT_ERROR = 1
EXIT_INTERRUPTED = 130
EXIT_USAGE = 64
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
        message = " ".join(self.cause.format_message().split()).rstrip(".")
        ctx = self.cause.ctx
        hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        err(f"error: {message[:1].lower()}{message[1:]}{hint}")


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


strict_option = click.option("--strict", is_flag=True,
                             help="Treat warnings (load hot-spots, an empty projects/) as errors: exit 1.")


def find_repo(explicit: Optional[Path]) -> Path:
    from compiler.root import find_root

    return find_root(explicit)


def open_api(repo: Path):
    """The Prefect API client of a server verb, from the environment; first a note when the
    repository's `.env` sets variables the environment lacks (the make targets read it, chapctl
    does not: the only environment it reads is the process's)."""
    from compiler.reconcile.client import ApiSettings, PrefectAPI

    unset = sorted(name for name in _dotenv_names(repo / ".env") if name not in os.environ)
    if unset:
        err(f"note: {repo / '.env'} sets {', '.join(unset)}, which the environment lacks: chapctl does not read "
            ".env (the make targets do); use `make plan`/`make apply`, or export it first: set -a; . ./.env; set +a")
    return PrefectAPI(ApiSettings.from_env())


def _dotenv_names(path: Path) -> list[str]:
    """The names `path` assigns (`NAME=…` or `export NAME=…`), never their values; [] without the file."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    return re.findall(r"(?m)^[ \t]*(?:export[ \t]+)?([A-Za-z_][A-Za-z0-9_]*)[ \t]*=", text)


def run_guarded(action: Callable[[], int]) -> None:
    """Run a command body; map errors to one clean line and an exit code decided here, once.
    SIGTERM interrupts it as Ctrl-C does (exit 130)."""
    from compiler.errors import UserError

    try:
        with sigterm_interrupts():
            code = action()
    except UserError as exc:
        err(f"error: {exc}")
        code = EXIT_ERROR
    except KeyboardInterrupt:
        err("interrupted")
        code = EXIT_INTERRUPTED
    except Exception as exc:  # an internal bug: short message, traceback to the debug log
        DEBUG_LOG.write_text(traceback.format_exc())
        err(f"internal error: {type(exc).__name__}: {exc} (traceback in {DEBUG_LOG}; please report it)")
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


def err(message: str) -> None:
    print(printable(message), file=sys.stderr)


def print_diagnostics(diagnostics, output: str) -> None:
    from compiler.compile.diagnostics import format_json, format_text

    if output == "json":
        print(format_json(diagnostics))
    elif diagnostics:
        err(format_text(diagnostics))


def strict_exit(strict: bool, warnings) -> int:
    if strict and warnings:
        err(f"error: {len(warnings)} warning(s) and --strict")
        return 1
    return 0


def console():
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def print_lines(lines: list[tuple[str, str]]) -> None:
    """Styled `(style, text)` lines from the reporters; never interpreted as markup."""
    out = console()
    for style, text in lines:
        out.print(printable(text), style=style or None, markup=False, highlight=False)
