"""Options shared by every chapctl command (kept apart so command modules import no cycles)."""

from __future__ import annotations

from pathlib import Path

import click


def root_option(function):
    return click.option(
        "--root", type=click.Path(file_okay=False, path_type=Path), default=None,
        help="Repository to act on (default: nearest folder upward holding projects/).",
    )(function)


def format_option(function):
    return click.option("--format", "-f", "output", type=click.Choice(["text", "json"]), default="text",
                        show_default=True, help="Output format.")(function)
