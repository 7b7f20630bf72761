"""The files of a new projects repository, rendered from the templates beside this module (pure).

`scaffold_files(Scaffold)` gives every file `chapctl init` writes (relative path -> exact text);
`workflow_files(Workflows)` the two GitHub workflows alone, which chapctl's own repository renders
with its checkout's parameters (`Workflows.checkout()`), so that the workflows a ministry gets and
the ones chapctl runs are one template and cannot drift (tests/compiler/test_scaffold.py).

Every value reaches a file through a filter that makes it safe where it lands: `y` (a YAML scalar,
compile's `yaml_scalar`), `ylist` (a YAML flow list of such scalars), `sh` (a shell word), `code`
and `md` (Markdown, compiler/markdown.py), `note` (a YAML comment's text, on one line). The environment refuses a value that went through none.
The delimiters are `<< >>` and `<% %>`: the workflows hold GitHub's own `${{ }}` expressions.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from compiler import __version__
from compiler.compile.render import YamlText, yaml_scalar
from compiler.constants import OWNER_MAX_LENGTH, written_out
from compiler.markdown import code, text

TEMPLATES = Path(__file__).resolve().parent / "templates"
PR_WORKFLOW = ".github/workflows/chapctl-pr.yml"
APPLY_WORKFLOW = ".github/workflows/chapctl-apply.yml"
# What the workflows watch: the projects and everything compile writes from them.
WATCHED = ("projects/**", "prefect.yaml", "blocks/**", "schema/**")

# The pre-commit hooks, as chapctl's .pre-commit-hooks.yaml declares them (a test holds them equal);
# `chapctl init` writes them as local hooks that install the pinned chapctl.
HOOKS = (
    {"id": "chapctl-validate", "name": "chapctl validate",
     "description": "Validate every project file (file:line:col errors); writes nothing.",
     "entry": "chapctl validate", "language": "python", "pass_filenames": False,
     "files": r"^projects/.*\.ya?ml$"},
    {"id": "chapctl-compile-check", "name": "chapctl compile --check",
     "description": "Fail when prefect.yaml, blocks/, schema/ or SCHEDULES.md are stale; run `chapctl compile`.",
     "entry": "chapctl compile --check", "language": "python", "pass_filenames": False,
     "files": r"^(projects/|prefect\.yaml$|blocks/|schema/|SCHEDULES\.md$|schedules\.svg$)"},
)


def default_package(version: str = __version__) -> str:
    """The pip requirement the workflows install: this chapctl's release."""
    return f"chapctl=={version}"


@dataclass(frozen=True)
class Workflows:
    """How the workflows install and call chapctl, and what they watch."""

    package: str | None  # a pip requirement (CHAPCTL_PACKAGE); None: `install` from a checkout
    install: str = ""  # the install command of a checkout (package None)
    chapctl: str = "chapctl"  # the command the steps run
    also_watch: tuple[str, ...] = ()  # more paths than WATCHED (a checkout's own flows/)

    @classmethod
    def checkout(cls) -> Workflows:
        """chapctl's own repository: chapctl and its flow from the checkout, locked dependencies."""
        return cls(package=None, install="make setup", chapctl=".venv/bin/chapctl", also_watch=("flows/**",))


@dataclass(frozen=True)
class Scaffold:
    owner: str
    package: str = field(default_factory=default_package)
    version: str = __version__
    example: str = "example-malaria"
    block: str = "example-dhis2"
    password_env: str = "EXAMPLE_DHIS2_PASSWORD"


class ShText(str):
    """A shell word made safe by the `sh` filter."""


class MdText(str):
    """Markdown made inert by the `code` or `md` filter."""


class CommentText(str):
    """Text for a YAML comment, written out on one line by the `note` filter."""


def _refuse_raw(value: Any) -> Any:
    if isinstance(value, (YamlText, ShText, MdText, CommentText)):
        return value
    raise TypeError(f"template emitted {value!r} without a filter (y, ylist, sh, code, md, note)")


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)), undefined=jinja2.StrictUndefined, autoescape=False,
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, finalize=_refuse_raw,
        variable_start_string="<<", variable_end_string=">>", block_start_string="<%", block_end_string="%>",
        comment_start_string="<#", comment_end_string="#>")
    env.filters.update(
        y=yaml_scalar,
        ylist=lambda items: YamlText("[" + ", ".join(json.dumps(str(i), ensure_ascii=False) for i in items) + "]"),
        sh=lambda value: ShText(shlex.quote(str(value))),
        code=lambda value: MdText(code(value)),
        md=lambda value: MdText(text(value)),
        note=lambda value: CommentText(written_out(str(value), one_line=True)),
    )
    return env


def _render(template: str, **values: Any) -> str:
    return _environment().get_template(template).render(**values)


def workflow_files(workflows: Workflows) -> dict[str, str]:
    watched = [*WATCHED[:1], *workflows.also_watch, *WATCHED[1:]]
    values = {"package": workflows.package, "install": workflows.install, "chapctl": workflows.chapctl}
    return {
        PR_WORKFLOW: _render("chapctl-pr.yml.j2", paths_pr=[*watched, "SCHEDULES.md"], **values),
        APPLY_WORKFLOW: _render("chapctl-apply.yml.j2", paths_apply=watched, **values),
    }


def staging_suffix(owner: str) -> str | None:
    """The staging environment's `owner_suffix` that keeps `<owner>-<suffix>` within the owner's
    length (OWNER_MAX_LENGTH); None when even a short one does not fit (staging then keeps the owner:
    apply refuses to take one server's objects over for another environment)."""
    return next((s for s in ("staging", "stg") if len(owner) + 1 + len(s) <= OWNER_MAX_LENGTH), None)


def scaffold_files(scaffold: Scaffold) -> dict[str, str]:
    """Every file of a new projects repository, by relative path, in the order they are reported."""
    values = {"owner": scaffold.owner, "version": scaffold.version, "package": scaffold.package,
              "example": scaffold.example, "block": scaffold.block, "password_env": scaffold.password_env}
    return {
        "projects/_defaults.yaml": _render("_defaults.yaml.j2", staging_suffix=staging_suffix(scaffold.owner),
                                           **values),
        f"projects/{scaffold.example}.yaml": _render("example.yaml.j2", name=scaffold.example, **{
            k: v for k, v in values.items() if k != "example"}),
        **workflow_files(Workflows(package=scaffold.package)),
        ".pre-commit-config.yaml": _render("pre-commit-config.yaml.j2", hooks=HOOKS,
                                           dependencies=[scaffold.package]),
        ".gitignore": _render("gitignore.j2"),
        "README.md": _render("README.md.j2", **values),
    }
