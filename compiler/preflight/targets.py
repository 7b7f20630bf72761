"""What preflight checks, read from the committed artifacts as apply reads them
(`compile.artifact.read_prefect_yaml`, `read_block`): per project, its credentials block (the base
URL, the username and the *name* of the password's environment variable) and the runs it makes —
one per schedule, its parameters merged over the deployment's as Prefect merges them, or one "when
triggered" for a project without a schedule.

The password is carried as a `Password` (the variable's name); its value is read from the
environment (and `CHAPCTL_SECRETS`, as apply reads it) only when preflight logs in, and nothing
else of the project's text is ever resolved into anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from compiler.compile.artifact import BlockDocument, DeploymentSpec, read_block, read_prefect_yaml
from compiler.errors import UserError

WHEN_TRIGGERED = "when triggered"
_BLOCK_REF_PREFIX = "{{ prefect.blocks."


@dataclass(frozen=True)
class Password:
    """A password read from the environment variable `variable` at the moment it is used."""

    variable: str

    def read(self, env: Mapping[str, str]) -> str | None:
        """The value, or None when the variable is unset or empty (CI reads an undefined secret as "")."""
        return env.get(self.variable) or None


@dataclass(frozen=True)
class Credentials:
    block: str
    base_url: str | None = None  # None: the block is managed outside chapctl (only its name is known)
    username: str | None = None
    password: Password | None = None

    @property
    def managed(self) -> bool:
        return self.base_url is not None and self.username is not None and self.password is not None

    @property
    def login(self) -> tuple[str, str, str]:
        """What identifies one login to one DHIS2: the projects sharing it share their reads."""
        return (str(self.base_url).rstrip("/"), str(self.username), self.password.variable if self.password else "")


@dataclass(frozen=True)
class RunSpec:
    """One way a project runs."""

    label: str  # "schedule <slug>", or WHEN_TRIGGERED
    slug: str | None
    cron: str | None
    timezone: str | None
    active: bool
    parameters: tuple[tuple[str, Any], ...]  # the flow's parameters (the credentials reference left out)

    def parameter(self, name: str) -> Any:
        return dict(self.parameters).get(name)


@dataclass(frozen=True)
class Target:
    name: str
    credentials: Credentials
    runs: tuple[RunSpec, ...]


def read_targets(root: Path, environment: str | None = None) -> list[Target]:
    """Every compiled project of the repository at `root`, in prefect.yaml's order, as `environment`
    (--env; None: as declared) applies it (its schedules paused there, say)."""
    from compiler.compile import environments
    from compiler.compile.load import parse_artifact

    path = root / "prefect.yaml"
    if not path.is_file():
        raise UserError(f"{path} does not exist; run `chapctl compile` first")
    compiled = read_prefect_yaml(parse_artifact(path.read_text(encoding="utf-8"), "prefect.yaml"))
    name = environments.select([e.name for e in compiled.environments], environment,
                               "prefect.yaml (compiled from projects/_defaults.yaml)")
    compiled = environments.overlay(compiled, name)
    blocks: dict[str, BlockDocument] = {}
    for block_path in sorted((root / "blocks").glob("*.yaml")):
        doc = read_block(parse_artifact(block_path.read_text(encoding="utf-8"), f"blocks/{block_path.name}"))
        blocks[doc.name] = doc
    for doc in environments.overlay_blocks(blocks.values(), environments.find(compiled.environments, name)):
        blocks[doc.name] = doc
    return [_target(spec, blocks) for spec in compiled.deployments]


def _target(spec: DeploymentSpec, blocks: Mapping[str, BlockDocument]) -> Target:
    parameters = dict(spec.parameters)
    block = _block_name(parameters.pop("credentials", None))
    doc = blocks.get(block)
    if doc is not None and doc.secret_env.get("password"):
        credentials = Credentials(block, str(doc.data.get("base_url") or "") or None,
                                  str(doc.data.get("username") or "") or None, Password(doc.secret_env["password"]))
    else:
        credentials = Credentials(block)
    runs = tuple(RunSpec(f"schedule {s.slug}", s.slug, s.cron, s.timezone, s.active,
                         tuple({**parameters, **dict(s.parameters)}.items()))
                 for s in spec.schedules)
    if not runs:
        runs = (RunSpec(WHEN_TRIGGERED, None, None, None, True, tuple(parameters.items())),)
    return Target(spec.name, credentials, runs)


def _block_name(reference: Any) -> str:
    """`{{ prefect.blocks.chap-dhis2-credentials.laos-dhis2 }}` -> `laos-dhis2` (as compile wrote it)."""
    text = str(reference or "").strip()
    if text.startswith(_BLOCK_REF_PREFIX) and text.endswith("}}"):
        return text[len(_BLOCK_REF_PREFIX):-2].strip().split(".", 1)[-1]
    return text


def end_date(value: Any) -> date | None:
    """An `end_date` parameter as prefect.yaml holds it (an ISO date string)."""
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value))
