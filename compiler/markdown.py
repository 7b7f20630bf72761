"""The one Markdown escaper of chapctl's Markdown outputs (the PR comment of `plan`, `apply`'s
summary, `status --format markdown`, `diff --format markdown`): text that comes from project files
or from a server is shown as text, never as markup.

* `text(value)`: for running text and table cells. `&`, `<`, `>` become entities (no live HTML:
  no `<script>`, no `<img onerror>`); the punctuation that makes links and code is backslash-escaped
  (`[` and `]`: no link, no image; backticks; `|` cannot end a table cell); a URL or an
  e-mail address is broken with a zero-width space after the scheme's `:`, after `www` and after
  `@`, so GitHub does not autolink it; newlines become spaces (one line, one cell).
* `code(value)`: an inline code span, which Markdown shows verbatim (no HTML, no link): the
  backticks around it are longer than any run of backticks inside, `|` is escaped for tables,
  newlines become spaces.
"""

from __future__ import annotations

import html
import re
from typing import Any

# Enough to make markup inert: no link or image without `[`…`]`, no code span, no cell break. Emphasis
# (`*`, `_`) is left alone: it changes no meaning and identifiers such as KENYA_DHIS2_PASSWORD stay
# greppable in the comment's source.
_PUNCTUATION = re.compile(r"([\\`\[\]|])")
_ZWSP = "\u200b"
_AUTOLINK = re.compile(r"(?i)(?<=[a-z]):(?=//)|(?<![\w.])www(?=\.)|@(?=[\w-]+\.[\w-])")


def text(value: Any) -> str:
    escaped = html.escape(" ".join(str(value).splitlines()), quote=False)
    escaped = _PUNCTUATION.sub(r"\\\1", escaped)
    return _AUTOLINK.sub(lambda m: m.group(0) + _ZWSP, escaped)


def code(value: Any) -> str:
    inner = " ".join(str(value).splitlines()).replace("|", "\\|")
    longest = max((len(run) for run in re.findall(r"`+", inner)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if inner.startswith("`") or inner.endswith("`") else ""
    return f"{fence}{pad}{inner}{pad}{fence}"
