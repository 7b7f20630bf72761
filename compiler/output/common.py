"""What every verb may print besides its result: the error boundary's lines (a user error, a usage
error, an interruption, an internal error), the note about an unread `.env`, and `--version`.
Text only: these go to stderr whatever `--format` says (`--version` to stdout)."""

from __future__ import annotations

from compiler.errors import InternalError, Interrupted, UsageProblem, UserError
from compiler.installed import Versions
from compiler.output import Err, Out, Rendered, reporter
from compiler.root import DotenvUnread

RESULTS: dict[str, tuple[type, ...]] = {}  # no verb of its own


@reporter(UserError, "text")
def user_error(exc: UserError) -> Rendered:
    return (Err(f"error: {exc}"),)


@reporter(UsageProblem, "text")
def usage_problem(problem: UsageProblem) -> Rendered:
    """One line naming the problem and the help to read."""
    message = " ".join(problem.message.split()).rstrip(".")
    hint = f" (see `{problem.command} --help`)" if problem.command is not None else ""
    return (Err(f"error: {message[:1].lower()}{message[1:]}{hint}"),)


@reporter(Interrupted, "text")
def interrupted(_: Interrupted) -> Rendered:
    return (Err("interrupted"),)


@reporter(InternalError, "text")
def internal_error(error: InternalError) -> Rendered:
    return (Err(f"internal error: {error.kind}: {error.message} (traceback in {error.log}; please report it)"),)


@reporter(DotenvUnread, "text")
def dotenv_unread(unread: DotenvUnread) -> Rendered:
    return (Err(f"note: {unread.path} sets {', '.join(unread.names)}, which the environment lacks: chapctl does "
                "not read .env (the make targets do); use `make plan`/`make apply`, or export it first: "
                "set -a; . ./.env; set +a"),)


@reporter(Versions, "text")
def versions(found: Versions) -> Rendered:
    note = "" if found.prefect == found.target else f"; Prefect {found.prefect or 'is not'} installed"
    return (Out(f"chapctl {found.chapctl} (for Prefect {found.target}{note})\n"),)
